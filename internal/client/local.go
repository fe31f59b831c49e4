package client

// Published tracks: each LocalTrack has one sender goroutine (sendLoop)
// and one RTCP reader (readRTCP), both ended by stop; its other fields are
// atomics or set before they start.

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"
)

// LocalTrack is a synthetic track the client publishes.
type LocalTrack struct {
	track  *webrtc.TrackLocalStaticRTP
	sender *webrtc.RTPSender
	index  byte
	video  bool
	cfg    Config
	id     func() string
	rid    string // simulcast layer, "" for a plain track
	pc     *webrtc.PeerConnection
	width  int
	height int
	ppf    int    // packets per frame
	file   string // real media to send (Config.AudioFile, VideoFile)

	fileDone chan struct{} // closed when the file is sent (or failed)
	fileErr  atomic.Value  // error

	Sent atomic.Uint64 // RTP packets written
	// LastCounter is the payload counter (Payload.Counter) of the newest
	// packet written: counters from 1 to it were sent, but for write errors.
	LastCounter  atomic.Uint64
	PLIsReceived atomic.Uint64
	NACKs        atomic.Uint64
	RRs          atomic.Uint64 // receiver reports about this track
	REMB         atomic.Uint64 // the last REMB bitrate naming this track's SSRC, bits/s
	wantKey      atomic.Bool
	paused       atomic.Bool  // SetActive(false): nothing is sent
	level        atomic.Int32 // RFC 6464 level in -dBov sent on audio; 127 = silence
	pliMu        sync.Mutex
	pliTimes     []time.Time
	done         chan struct{}
	rtcpDone     chan struct{} // closed when readRTCP returns
	stopOnce     sync.Once
	wg           sync.WaitGroup
}

func (c *Client) addLocal(kind webrtc.RTPCodecType, index int) error {
	codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	name := fmt.Sprintf("audio%d", index)
	if kind == webrtc.RTPCodecTypeVideo {
		codec = webrtc.RTPCodecCapability{MimeType: c.cfg.VideoCodec, ClockRate: 90000}
		if c.cfg.VideoCodec == webrtc.MimeTypeH264 {
			codec.SDPFmtpLine = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
		}
		name = fmt.Sprintf("video%d", index)
	}
	tr, err := webrtc.NewTrackLocalStaticRTP(codec, name, "local")
	if err != nil {
		return fmt.Errorf("local track: %w", err)
	}
	video := kind == webrtc.RTPCodecTypeVideo
	if video && c.cfg.Simulcast {
		return c.addSimulcast(codec, name)
	}
	sender, err := c.pc.AddTrack(tr)
	if err != nil {
		return fmt.Errorf("add track: %w", err)
	}
	l := &LocalTrack{track: tr, sender: sender, index: byte(index), video: video,
		width: 640, height: 360, ppf: c.cfg.PacketsPerFrame}
	if file := c.cfg.AudioFile; !video && index == 0 && file != "" {
		l.file = file
	}
	if file := c.cfg.VideoFile; video && index == c.cfg.Audio && file != "" {
		l.file = file
	}
	c.startLocal(l)
	return nil
}

// idNow is the participant id, which a WHIP publisher learns after its
// tracks started.
func (c *Client) idNow() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ID
}

func (c *Client) startLocal(l *LocalTrack) {
	l.cfg, l.done, l.id, l.pc = c.cfg, make(chan struct{}), c.idNow, c.pc
	l.rtcpDone = make(chan struct{})
	l.fileDone = make(chan struct{})
	c.mu.Lock()
	c.local = append(c.local, l)
	c.mu.Unlock()
	l.wg.Add(2)
	go l.readRTCP()
	if l.file != "" {
		go l.sendFile()
	} else {
		go l.sendLoop()
	}
}

// addSimulcast publishes one video track as rid layers on one sender
// (Config.SimulcastLayers, in that order). A layer's payloads carry its rank
// by frame size (0 smallest) as their track index.
func (c *Client) addSimulcast(codec webrtc.RTPCodecCapability, name string) error {
	specs := c.cfg.SimulcastLayers
	var sender *webrtc.RTPSender
	for _, sp := range specs {
		rank := 0
		for _, o := range specs {
			if o.Width*o.Height < sp.Width*sp.Height {
				rank++
			}
		}
		tr, err := webrtc.NewTrackLocalStaticRTP(codec, name, "local", webrtc.WithRTPStreamID(sp.RID))
		if err != nil {
			return fmt.Errorf("simulcast track: %w", err)
		}
		if sender == nil {
			if sender, err = c.pc.AddTrack(tr); err != nil {
				return fmt.Errorf("add simulcast track: %w", err)
			}
		} else if err := sender.AddEncoding(tr); err != nil {
			return fmt.Errorf("add encoding %s: %w", sp.RID, err)
		}
		c.startLocal(&LocalTrack{track: tr, sender: sender, index: byte(rank), video: true, rid: sp.RID,
			width: sp.Width, height: sp.Height, ppf: max(1, sp.PacketsPerFrame*c.cfg.PacketsPerFrame/2)})
	}
	return nil
}

// RID returns the simulcast layer's rid ("" for a plain track).
func (l *LocalTrack) RID() string { return l.rid }

// SetActive stops (false) or resumes (true) sending, as a browser does with
// a simulcast encoding set to active: false, or under CPU or bandwidth
// pressure. It resumes with a keyframe.
func (l *LocalTrack) SetActive(active bool) {
	if l.paused.Swap(!active) && active {
		l.wantKey.Store(true)
	}
}

// Local returns the published tracks.
func (c *Client) Local() []*LocalTrack {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*LocalTrack(nil), c.local...)
}

// SetAudioLevel sets the RFC 6464 level (0 loudest .. 127 silence) that
// this audio track's packets carry from now on.
func (l *LocalTrack) SetAudioLevel(dBov uint8) { l.level.Store(int32(dBov & 0x7f)) }

// simulcastIDs returns the negotiated ids of the mid and rid header
// extensions and this sender's mid: a simulcast sender must tag every
// packet with them (RFC 8852) so the receiver can tell the layers apart,
// and pion leaves that to the application.
func (l *LocalTrack) simulcastIDs(pc *webrtc.PeerConnection) (midID, ridID uint8, mid string) {
	for _, e := range l.sender.GetParameters().HeaderExtensions {
		switch e.URI {
		case sdp.SDESMidURI:
			midID = uint8(e.ID)
		case sdp.SDESRTPStreamIDURI:
			ridID = uint8(e.ID)
		}
	}
	for _, t := range pc.GetTransceivers() {
		if t.Sender() == l.sender {
			mid = t.Mid()
		}
	}
	return midID, ridID, mid
}

// audioLevelID is the negotiated id of the audio-level extension, or 0.
func (l *LocalTrack) audioLevelID() uint8 {
	for _, e := range l.sender.GetParameters().HeaderExtensions {
		if e.URI == sdp.AudioLevelURI {
			return uint8(e.ID)
		}
	}
	return 0
}

// PLITimes returns when each keyframe request (PLI or FIR) arrived.
func (l *LocalTrack) PLITimes() []time.Time {
	l.pliMu.Lock()
	defer l.pliMu.Unlock()
	return append([]time.Time(nil), l.pliTimes...)
}

// Video reports whether the track is video.
func (l *LocalTrack) Video() bool { return l.video }

// stop ends the track's goroutines: the send loop at once, the RTCP reader
// by a read deadline in the past. A sender that never started sending
// ignores deadlines; its reader ends when the PeerConnection closes, so
// stop waits for it only briefly: call wait after closing. Setting the
// deadline itself blocks in pion v3.3.6 until DTLS is up or the sender
// stops (srtpWriterFuture.init), so it runs on its own goroutine, which
// the PeerConnection's close ends.
func (l *LocalTrack) stop() {
	l.stopOnce.Do(func() {
		close(l.done)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			if l.rid == "" {
				_ = l.sender.SetReadDeadline(time.Now())
			} else {
				_ = l.sender.SetReadDeadlineSimulcast(time.Now(), l.rid)
			}
		}()
	})
	select {
	case <-l.rtcpDone:
	case <-time.After(200 * time.Millisecond):
	}
}

// wait waits for the track's goroutines after stop and the close.
func (l *LocalTrack) wait() { l.wg.Wait() }

func (l *LocalTrack) readRTCP() {
	defer l.wg.Done()
	defer close(l.rtcpDone)
	buf := make([]byte, 1500)
	for {
		var n int
		var err error
		if l.rid == "" {
			n, _, err = l.sender.Read(buf)
		} else {
			n, _, err = l.sender.ReadSimulcast(buf, l.rid)
		}
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				l.PLIsReceived.Add(1)
				l.pliMu.Lock()
				l.pliTimes = append(l.pliTimes, time.Now())
				l.pliMu.Unlock()
				l.wantKey.Store(true)
			case *rtcp.TransportLayerNack:
				l.NACKs.Add(1)
			case *rtcp.ReceiverEstimatedMaximumBitrate:
				l.REMB.Store(uint64(p.Bitrate))
			case *rtcp.ReceiverReport:
				l.RRs.Add(1)
			}
		}
	}
}

// sendLoop writes synthetic media: video frames at VideoFPS (a keyframe at
// start, every KeyframeInterval and after a PLI), audio every 20 ms.
func (l *LocalTrack) sendLoop() {
	defer l.wg.Done()
	interval := 20 * time.Millisecond
	clock := uint32(960)
	if l.video {
		interval = time.Second / time.Duration(l.cfg.VideoFPS)
		clock = 90000 / uint32(l.cfg.VideoFPS)
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var (
		seq     uint16
		ts      uint32
		counter uint64
		lastKey time.Time
		buf     []byte
	)
	l.wantKey.Store(true)
	l.level.Store(127)
	var levelID, midID, ridID uint8
	var mid string
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2}}
	for {
		select {
		case <-l.done:
			return
		case <-tick.C:
		}
		if l.paused.Load() {
			continue
		}
		id := l.id()
		n := 1
		key := false
		if l.video {
			n = l.ppf
			if l.wantKey.Swap(false) || time.Since(lastKey) >= l.cfg.KeyframeInterval {
				key, lastKey = true, time.Now()
				n *= 3
			}
		}
		size := l.cfg.PacketSize
		if !l.video {
			size = 120
		}
		for i := 0; i < n; i++ {
			counter++
			buf = AppendPayload(buf[:0], Payload{Video: l.video, Start: i == 0, Keyframe: key, ID: id,
				Track: l.index, Counter: counter, Sent: time.Now(), Size: size, Width: l.width, Height: l.height})
			pkt.SequenceNumber = seq
			pkt.Timestamp = ts
			pkt.Marker = !l.video || i == n-1
			pkt.Payload = buf
			if l.rid != "" {
				if ridID == 0 || mid == "" {
					midID, ridID, mid = l.simulcastIDs(l.pc)
				}
				if ridID != 0 && mid != "" {
					_ = pkt.Header.SetExtension(midID, []byte(mid))
					_ = pkt.Header.SetExtension(ridID, []byte(l.rid))
				}
			}
			if !l.video {
				if levelID == 0 && counter%25 == 1 {
					levelID = l.audioLevelID()
				}
				if levelID != 0 {
					_ = pkt.Header.SetExtension(levelID, []byte{byte(l.level.Load())})
				}
			}
			seq++
			if err := l.track.WriteRTP(pkt); err != nil {
				if errors.Is(err, errClosed) {
					return
				}
				continue
			}
			l.Sent.Add(1)
			l.LastCounter.Store(counter)
		}
		ts += clock
	}
}

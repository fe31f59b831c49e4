package sfu

// Ownership: one read loop goroutine per layer (one layer for a plain track,
// up to three for simulcast) owns that layer's read buffer and sequence
// unwrapper. The subscriber and layer lists are copy-on-write slices:
// readers Load them without a lock, writers swap them under mu. DownTrack
// enqueue state is behind each DownTrack's own enqueue mutex, since every
// layer's loop calls it.

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"
)

// KeyframeInterval is the minimum time between two keyframe requests sent to
// the publisher of one track.
const KeyframeInterval = 500 * time.Millisecond

// Cache sizes per kind: about 1.7 s of 2.5 Mbit/s video, 1.3 s of audio.
const (
	videoCacheSize = 512
	audioCacheSize = 64
)

// UpTrack is one track a participant publishes.
type UpTrack struct {
	id        string
	remoteID  string // the publisher's own msid track id
	streamID  string
	kind      webrtc.RTPCodecType
	codec     webrtc.RTPCodecParameters
	receiver  *webrtc.RTPReceiver
	stats     *Stats
	simulcast bool
	// rids are the simulcast layers the publisher announced, in its order
	// (a relay carries each on an m-line of its own: relaylayers.go).
	rids      []string
	writeRTCP func([]rtcp.Packet) error
	refused   atomic.Bool // PeerConfig.OnTrack said no: read and drop
	relayed   bool        // it came by a relay from another node (set before its loops start)
	muted     atomic.Bool // SetMuted: read, cached for nobody, dropped

	mu       sync.Mutex
	downs    atomic.Pointer[[]*DownTrack]
	layers   atomic.Pointer[[]*layer] // ranked, lowest first (rerank)
	loops    int                      // read loops running, under mu
	rankedAt time.Time                // last rerank, under mu
	// expected is how many simulcast layers the publisher announced;
	// allLayers closes when that many have arrived (see drainRTCP).
	expected  int
	allLayers chan struct{}

	// isKeyframe tells whether a payload starts a keyframe of this codec.
	isKeyframe func([]byte) bool
	// frameSize reads the frame size from a keyframe packet, if it has one.
	frameSize func([]byte) (w, h int, ok bool)

	// RFC 6464 audio levels: the read loop adds, LevelSample takes.
	levelID    uint8 // negotiated extension id, 0 if none
	levelSum   atomic.Uint64
	levelCount atomic.Uint64

	done chan struct{}
}

// newUpTrack builds an UpTrack with its first layer (rid "" for a plain
// track). The caller sets receiver and the layers' remote tracks; tests and
// benchmarks leave them nil and call forward directly.
func newUpTrack(id, streamID string, kind webrtc.RTPCodecType, codec webrtc.RTPCodecParameters, ssrc uint32,
	stats *Stats, writeRTCP func([]rtcp.Packet) error) *UpTrack {
	return newSimulcastUpTrack(id, streamID, kind, codec, "", ssrc, stats, writeRTCP)
}

func newSimulcastUpTrack(id, streamID string, kind webrtc.RTPCodecType, codec webrtc.RTPCodecParameters,
	rid string, ssrc uint32, stats *Stats, writeRTCP func([]rtcp.Packet) error) *UpTrack {
	u := &UpTrack{
		id: id, streamID: streamID, kind: kind, codec: codec, stats: stats,
		simulcast: rid != "", writeRTCP: writeRTCP, done: make(chan struct{}),
		allLayers: make(chan struct{}), expected: 1,
	}
	u.downs.Store(&[]*DownTrack{})
	u.layers.Store(&[]*layer{})
	u.isKeyframe, u.frameSize = videoParsers(codec.MimeType)
	u.addLayer(rid, ssrc)
	return u
}

// addLayer adds a simulcast layer, ranks the layers again and returns it.
func (u *UpTrack) addLayer(rid string, ssrc uint32) *layer {
	size := audioCacheSize
	video := u.kind == webrtc.RTPCodecTypeVideo
	if video {
		size = videoCacheSize
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	old := *u.layers.Load()
	l := newLayer(rid, video, len(old), ssrc, size, u.writeRTCP)
	l.owner = u
	next := append(append(make([]*layer, 0, len(old)+1), old...), l)
	u.layers.Store(&next)
	u.rerankLocked(time.Time{})
	if len(next) == u.expected {
		close(u.allLayers)
	}
	return l
}

// rerank orders the layers by what they carry (rankLayers) at most once
// per rerankInterval, or at once when force is set (a layer's size
// changed). The list is copy-on-write: readers keep the order they loaded.
func (u *UpTrack) rerank(now time.Time, force bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !force && now.Sub(u.rankedAt) < rerankInterval {
		return
	}
	u.rerankLocked(now)
}

// rerankInterval bounds how often bitrates may reorder the layers.
const rerankInterval = time.Second

func (u *UpTrack) rerankLocked(now time.Time) {
	u.rankedAt = now
	old := *u.layers.Load()
	if len(old) < 2 {
		return
	}
	infos := make([]rankInfo, len(old))
	for i, l := range old {
		infos[i] = rankInfo{sent: l.bytes.Load() > 0, area: int(l.width.Load()) * int(l.height.Load()), guess: l.guess, arrival: l.arrival}
		if !now.IsZero() {
			infos[i].bitrate = l.bitrate(now)
		}
	}
	order := rankLayers(infos)
	next := make([]*layer, len(old))
	changed := false
	for i, j := range order {
		next[i] = old[j]
		changed = changed || i != j
	}
	if changed {
		u.layers.Store(&next)
	}
}

// redecide lets every subscriber choose its layer again now (a layer
// arrived), rather than at its allocator's next tick.
func (u *UpTrack) redecide() {
	now := time.Now()
	for _, d := range *u.downs.Load() {
		d.decide(0, now)
	}
}

// expectLayers sets how many layers the publisher announced (a=simulcast);
// call it before adding the second layer.
func (u *UpTrack) expectLayers(n int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if n > u.expected && len(*u.layers.Load()) < n {
		if len(*u.layers.Load()) >= u.expected { // allLayers was closed for 1
			u.allLayers = make(chan struct{})
		}
		u.expected = n
	}
}

// SetMuted stops (true) or resumes (false) forwarding the track to every
// subscriber, whatever its publisher sends: the packets are read and
// dropped (DropServerMuted), and a muted track does not speak for the
// active speaker. On resume every subscription starts a new run (its
// sequence numbers go on without a gap; video at the next keyframe) and
// each layer's publisher is asked for a keyframe, so subscribers decode at
// once. Safe for any goroutine.
func (u *UpTrack) SetMuted(muted bool) {
	if u.muted.Swap(muted) == muted || muted {
		return
	}
	for _, d := range *u.downs.Load() {
		d.resync()
	}
	for _, l := range *u.layers.Load() {
		l.requestKeyframe()
	}
}

// Muted reports whether SetMuted(true) is in force.
func (u *UpTrack) Muted() bool { return u.muted.Load() }

// ID is the server-assigned track id, unique within the server.
func (u *UpTrack) ID() string { return u.id }

// RemoteID is the track id the publisher gave the track (its msid track
// id, a browser's MediaStreamTrack.id); publishers refer to their tracks
// by it.
func (u *UpTrack) RemoteID() string { return u.remoteID }

// StreamID is the publisher's participant id; subscribers see it as the
// msid stream id of every track of that participant.
func (u *UpTrack) StreamID() string { return u.streamID }

// Kind is audio or video.
func (u *UpTrack) Kind() webrtc.RTPCodecType { return u.kind }

// Codec is the codec the publisher sends.
func (u *UpTrack) Codec() webrtc.RTPCodecParameters { return u.codec }

// Done is closed when the publisher stopped sending the track.
func (u *UpTrack) Done() <-chan struct{} { return u.done }

// LevelSample returns the mean loudness (127 minus the RFC 6464 level in
// -dBov: 0 is silence, 127 is full scale) of the audio packets since the
// previous call, and how many packets carried a level.
func (u *UpTrack) LevelSample() (loudness float64, packets int) {
	sum, n := u.levelSum.Swap(0), u.levelCount.Swap(0)
	if n == 0 {
		return 0, 0
	}
	return float64(sum) / float64(n), int(n)
}

func (u *UpTrack) addDown(d *DownTrack) {
	u.mu.Lock()
	old := *u.downs.Load()
	next := make([]*DownTrack, 0, len(old)+1)
	next = append(append(next, old...), d)
	u.downs.Store(&next)
	u.mu.Unlock()
}

func (u *UpTrack) removeDown(d *DownTrack) {
	u.mu.Lock()
	old := *u.downs.Load()
	next := make([]*DownTrack, 0, len(old))
	for _, x := range old {
		if x != d {
			next = append(next, x)
		}
	}
	u.downs.Store(&next)
	u.mu.Unlock()
}

// startLoop counts a layer's read loop; endLoop reports whether it was the
// last, when the track as a whole has ended.
func (u *UpTrack) startLoop() {
	u.mu.Lock()
	u.loops++
	u.mu.Unlock()
}

func (u *UpTrack) endLoop() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.loops--
	if u.loops == 0 {
		close(u.done)
		return true
	}
	return false
}

// readLoop is one layer's goroutine: read, cache, hand to subscribers.
// It allocates nothing per packet and never blocks on a subscriber.
func (u *UpTrack) readLoop(l *layer) {
	defer l.keyframe.Stop()
	buf := make([]byte, maxPacketSize)
	var hdr rtp.Header
	hdr.CSRC = make([]uint32, 0, 15)
	var unwrap SeqUnwrapper
	k := kindOf(u.kind)
	for {
		n, _, err := l.remote.Read(buf)
		if err != nil {
			return
		}
		u.forward(l, buf[:n], &hdr, &unwrap, k)
	}
}

// forward is one step of a layer's read loop, separated for benchmarks.
func (u *UpTrack) forward(l *layer, pkt []byte, hdr *rtp.Header, unwrap *SeqUnwrapper, k Kind) {
	hl, err := hdr.Unmarshal(pkt)
	if err != nil {
		return
	}
	u.stats.PacketsIn[k].Add(1)
	u.stats.BytesIn[k].Add(uint64(len(pkt)))
	if u.relayed {
		u.stats.RelayPacketsIn.Add(1)
	}
	ext := unwrap.Unwrap(hdr.SequenceNumber)
	l.arrived(ext)
	if u.muted.Load() {
		l.bytes.Add(uint64(len(pkt))) // the layer flows: its liveness holds for the unmute
		u.stats.Drop(DropServerMuted)
		return
	}
	if u.levelID != 0 {
		// RFC 6464 §3: one byte, V bit and the level in -dBov (127 = silence).
		if b := hdr.GetExtension(u.levelID); len(b) > 0 {
			u.levelSum.Add(uint64(127 - b[0]&0x7f))
			u.levelCount.Add(1)
		}
	}
	if u.refused.Load() {
		// Nobody subscribes to a refused track, so the cache has no reader
		// but this loop: free it.
		l.cache = nil
		u.stats.Drop(DropTrackRefused)
		return
	}
	l.bytes.Add(uint64(len(pkt)))
	if !l.cache.Put(ext, pkt) {
		return
	}
	key := false
	if k == KindVideo {
		end := len(pkt)
		if hdr.Padding && end > hl {
			end -= int(pkt[end-1])
		}
		if end > hl {
			payload := pkt[hl:end]
			if key = u.isKeyframe(payload); key {
				if w, h, ok := u.frameSize(payload); ok && (int32(w) != l.width.Load() || int32(h) != l.height.Load()) {
					l.width.Store(int32(w))
					l.height.Store(int32(h))
					if u.simulcast {
						u.rerank(time.Now(), true) // rare: a layer's size changed
					}
				}
			}
		}
	}
	for _, d := range *u.downs.Load() {
		d.enqueue(l, ext, hdr.Marker, key)
	}
}

// drainRTCP reads the receiver's RTCP so the interceptors (reports, NACK
// generator, TWCC) see it; the packets themselves are not needed here.
//
// For simulcast it starts only once every announced layer has arrived:
// pion v3.3.6's ReadSimulcast reads the receiver's per-rid state without
// its lock while a later layer is being set up (a data race), and a layer's
// arrival is what orders the two.
func (u *UpTrack) drainRTCP(l *layer) {
	if l.rid != "" && l.receiver == nil {
		u.mu.Lock()
		all := u.allLayers
		u.mu.Unlock()
		select {
		case <-all:
		case <-u.done:
			return
		}
	}
	buf := make([]byte, maxPacketSize)
	for failed := 0; ; {
		var err error
		var n int
		var attrs interceptor.Attributes
		switch {
		case l.receiver != nil:
			n, attrs, err = l.receiver.Read(buf)
		case l.rid == "":
			n, attrs, err = u.receiver.Read(buf)
		default:
			n, attrs, err = u.receiver.ReadSimulcast(buf, l.rid)
		}
		if err == nil {
			failed = 0
			l.senderReports(buf[:n], attrs)
		} else if rtcpReadEnds(err, &failed) {
			return
		} else {
			u.stats.RTCPReadErrors.Add(1)
		}
	}
}

// senderReports notes the publisher's sender report about l in an RTCP
// compound packet (about once a second; the interceptors parsed it
// already). A compound packet that carries one starts with it (RFC 3550
// §6.1).
func (l *layer) senderReports(b []byte, attrs interceptor.Attributes) {
	if len(b) < 2 || b[1] != uint8(rtcp.TypeSenderReport) {
		return
	}
	var pkts []rtcp.Packet
	var err error
	if attrs != nil {
		pkts, err = attrs.GetRTCPPackets(b)
	} else {
		pkts, err = rtcp.Unmarshal(b)
	}
	if err != nil {
		return
	}
	for _, p := range pkts {
		if sr, ok := p.(*rtcp.SenderReport); ok && sr.SSRC == l.ssrc {
			l.noteSenderReport(sr.NTPTime, sr.RTPTime)
		}
	}
}

// maxRTCPErrors consecutive failed reads end an RTCP reader loop.
const maxRTCPErrors = 100

// rtcpReadEnds reports whether an RTCP reader loop should end after err:
// when pion closed the stream, or after maxRTCPErrors failures in a row
// (failed counts them). An interceptor refusing one compound packet (pion's
// estimator rejects feedback it cannot parse) must not end the loop, or
// the interceptors, NACKs and keyframe requests would stop for the track.
func rtcpReadEnds(err error, failed *int) bool {
	*failed++
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) || *failed >= maxRTCPErrors
}

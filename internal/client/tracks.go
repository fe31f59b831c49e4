package client

// Received tracks and the data channel: each RemoteTrack has one reader
// goroutine (onTrack); its mu guards what the reader observed, which
// tests read from any goroutine.

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/sfu"
)

// RemoteTrack is a track the server forwards to the client, with what the
// client observed of it.
type RemoteTrack struct {
	StreamID string // the publisher's participant id (msid stream id)
	TrackID  string // the server's track id (msid track id)
	Kind     webrtc.RTPCodecType
	SSRC     uint32
	Codec    string // MIME type
	Mid      string // the m-line the track arrived on

	SRs atomic.Uint64 // sender reports received for this track

	mu            sync.Mutex
	packets       int
	bytes         int
	bad           int
	dups          int
	keyframes     int
	readErrors    int           // packets pion refused (e.g. a payload type not negotiated on the m-line)
	payloadTypes  map[uint8]int // packets by payload type
	started       time.Time
	firstPacket   time.Time
	firstKeyframe time.Time
	keyframeTimes []time.Time // arrivals of keyframes' first packets, newest last (at most 64)
	ended         bool
	unwrap        sfu.SeqUnwrapper
	lastSeq       uint64              // extended: 65,536 packets do not wrap the counts
	counters      map[uint64]struct{} // the publisher's payload counters received (Payload.Counter)
	firstSeq      uint64
	seqGaps       int
	latency       []time.Duration
	seen          map[uint64]bool
	payloadIDs    map[string]int
	gapSince      map[uint64]time.Time // missing seq -> when a later one arrived
	maxRepair     time.Duration
	mark          time.Time
	afterMark     *Arrival
	layer         int // simulcast layer of the newest packet, -1 before any
	layerChanges  int
	badSwitches   int // layer changes not at a keyframe
}

// Arrival is one packet's arrival, as Mark/AfterMark report it.
type Arrival struct {
	At       time.Time
	Keyframe bool // the packet starts a keyframe
}

// Mark forgets the packet recorded by AfterMark; the next packet to arrive
// is recorded.
func (r *RemoteTrack) Mark() {
	r.mu.Lock()
	r.mark, r.afterMark = time.Now(), nil
	r.mu.Unlock()
}

// AfterMark returns the first packet that arrived after Mark, if any, and
// when Mark was called.
func (r *RemoteTrack) AfterMark() (first *Arrival, mark time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.afterMark, r.mark
}

// Stats is a snapshot of a RemoteTrack.
type Stats struct {
	Packets, Bad, Dups, Keyframes, SeqGaps int
	Bytes                                  int // payload bytes of unique packets
	// Missing counts sequence numbers between the first and the highest
	// received that never arrived.
	Missing int
	// MaxRepair is the longest a missing packet took to arrive after a
	// later one had (the longest a decoder would have waited).
	MaxRepair time.Duration
	// Layer is the simulcast layer (payload track index) of the newest
	// packet; LayerChanges counts changes, BadSwitches those that did not
	// start with a keyframe.
	Layer, LayerChanges, BadSwitches    int
	Started, FirstPacket, FirstKeyframe time.Time
	Ended                               bool
	PayloadIDs                          map[string]int // publisher ids found in payloads
	// PayloadTypes counts packets by payload type; ReadErrors counts
	// packets pion refused to read (a payload type not negotiated).
	PayloadTypes map[uint8]int
	ReadErrors   int
}

// CountersIn returns how many distinct packets with a publisher's payload
// counter in [lo, hi] arrived (its LocalTrack.LastCounter tells what it
// sent): delivery over a window, whatever the latency.
func (r *RemoteTrack) CountersIn(lo, hi uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for c := range r.counters {
		if c >= lo && c <= hi {
			n++
		}
	}
	return n
}

// KeyframeAfter returns when the first keyframe that arrived after t
// did, or the zero time if none has (yet).
func (r *RemoteTrack) KeyframeAfter(t time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.keyframeTimes {
		if k.After(t) {
			return k
		}
	}
	return time.Time{}
}

// Stats returns what was observed so far.
func (r *RemoteTrack) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make(map[string]int, len(r.payloadIDs))
	for k, v := range r.payloadIDs {
		ids[k] = v
	}
	pts := make(map[uint8]int, len(r.payloadTypes))
	for k, v := range r.payloadTypes {
		pts[k] = v
	}
	missing := 0
	if r.packets > 0 {
		span := int(r.lastSeq-r.firstSeq) + 1
		missing = span - len(r.seen)
	}
	return Stats{Bytes: r.bytes, Layer: r.layer, LayerChanges: r.layerChanges, BadSwitches: r.badSwitches,
		Missing: missing, MaxRepair: r.maxRepair, Packets: r.packets, Bad: r.bad, Dups: r.dups, Keyframes: r.keyframes, SeqGaps: r.seqGaps,
		Started: r.started, FirstPacket: r.firstPacket, FirstKeyframe: r.firstKeyframe, Ended: r.ended, PayloadIDs: ids,
		PayloadTypes: pts, ReadErrors: r.readErrors}
}

// Remote returns the tracks received so far (ended ones included).
func (c *Client) Remote() []*RemoteTrack {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*RemoteTrack, 0, len(c.remote))
	for _, r := range c.remote {
		out = append(out, r)
	}
	return out
}

// ActiveRemote returns the received tracks that have not ended.
func (c *Client) ActiveRemote() []*RemoteTrack {
	var out []*RemoteTrack
	for _, r := range c.Remote() {
		if !r.Stats().Ended {
			out = append(out, r)
		}
	}
	return out
}

// ReceivesFrom reports whether the client receives both audio and video
// from participant id: a track of each kind that has not ended, started at
// or after since (the zero time: any), with at least n packets.
func (c *Client) ReceivesFrom(id string, n int, since time.Time) bool {
	var audio, video bool
	for _, r := range c.ActiveRemote() {
		st := r.Stats()
		if r.StreamID != id || st.Packets < n || st.Started.Before(since) {
			continue
		}
		audio = audio || r.Kind == webrtc.RTPCodecTypeAudio
		video = video || r.Kind == webrtc.RTPCodecTypeVideo
	}
	return audio && video
}

func newRemoteTrack() *RemoteTrack {
	return &RemoteTrack{started: time.Now(), seen: map[uint64]bool{}, payloadIDs: map[string]int{}, gapSince: map[uint64]time.Time{}, counters: map[uint64]struct{}{},
		layer: -1, payloadTypes: map[uint8]int{}}
}

func (c *Client) onTrack(t *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	r := newRemoteTrack()
	r.StreamID, r.TrackID, r.Kind, r.SSRC, r.Codec = t.StreamID(), t.ID(), t.Kind(), uint32(t.SSRC()), t.Codec().MimeType
	for _, tr := range c.pc.GetTransceivers() {
		if tr.Receiver() == recv {
			r.Mid = tr.Mid()
		}
	}
	c.mu.Lock()
	c.remote[t.ID()+"/"+fmt.Sprint(t.SSRC())] = r
	c.mu.Unlock()
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		buf := make([]byte, 1500)
		for {
			n, _, err := recv.Read(buf)
			if err != nil {
				return
			}
			pkts, err := rtcp.Unmarshal(buf[:n])
			if err != nil {
				continue
			}
			for _, p := range pkts {
				if _, ok := p.(*rtcp.SenderReport); ok {
					r.SRs.Add(1)
				}
			}
		}
	}()
	go func() {
		defer c.wg.Done()
		video := t.Kind() == webrtc.RTPCodecTypeVideo
		buf := make([]byte, 1500)
		var p rtp.Packet
		for refused := 0; ; {
			n, _, err := t.Read(buf)
			if err == nil {
				err = p.Unmarshal(buf[:n])
				if err != nil {
					continue
				}
			}
			if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) && refused < 1000 {
				// pion refuses a packet whose payload type this
				// PeerConnection did not negotiate; the next may be fine.
				refused++
				r.mu.Lock()
				r.readErrors++
				r.mu.Unlock()
				continue
			}
			if err != nil {
				r.mu.Lock()
				r.ended = true
				r.mu.Unlock()
				return
			}
			refused = 0
			if on := c.cfg.OnPacket; on != nil {
				pl, perr := ParsePayload(p.Payload, video)
				on(r, &p, pl, perr)
				continue
			}
			r.observe(&p, video)
		}
	}()
}

func (r *RemoteTrack) observe(p *rtp.Packet, video bool) {
	pl, err := ParsePayload(p.Payload, video)
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	seq := r.unwrap.Unwrap(p.SequenceNumber)
	if r.seen[seq] {
		r.dups++
		return
	}
	r.seen[seq] = true
	if since, ok := r.gapSince[seq]; ok {
		if d := now.Sub(since); d > r.maxRepair {
			r.maxRepair = d
		}
		delete(r.gapSince, seq)
	}
	if r.packets > 0 && seq > r.lastSeq+1 {
		r.seqGaps++
		if seq-r.lastSeq-1 < 1000 {
			for s := r.lastSeq + 1; s != seq; s++ {
				r.gapSince[s] = now
			}
		}
	}
	if r.packets == 0 || seq < r.firstSeq {
		r.firstSeq = seq
	}
	if r.packets == 0 || seq > r.lastSeq {
		r.lastSeq = seq
	}
	r.packets++
	r.payloadTypes[p.PayloadType]++
	r.bytes += len(p.Payload)
	if r.firstPacket.IsZero() {
		r.firstPacket = now
	}
	if err != nil {
		r.bad++
		return
	}
	r.payloadIDs[pl.ID]++
	r.counters[pl.Counter] = struct{}{}
	if video && seq == r.lastSeq { // the newest packet
		if r.layer >= 0 && int(pl.Track) != r.layer {
			r.layerChanges++
			if !pl.Keyframe {
				r.badSwitches++
			}
		}
		r.layer = int(pl.Track)
	}
	if !r.mark.IsZero() && r.afterMark == nil {
		r.afterMark = &Arrival{At: now, Keyframe: pl.Keyframe}
	}
	if pl.Keyframe && pl.Start {
		r.keyframeTimes = append(r.keyframeTimes[max(0, len(r.keyframeTimes)-63):], now)
	}
	if pl.Keyframe {
		r.keyframes++
		if r.firstKeyframe.IsZero() {
			r.firstKeyframe = now
		}
	}
}

// WaitDataChannel waits until the data channel is open.
func (c *Client) WaitDataChannel(timeout time.Duration) error {
	c.mu.Lock()
	open := c.dcOpen
	c.mu.Unlock()
	select {
	case <-open:
		return nil
	case <-time.After(timeout):
		return errClosed
	}
}

// SendText sends a text data-channel message.
func (c *Client) SendText(s string) error { return c.dataChannel().SendText(s) }

// SendBinary sends a binary data-channel message.
func (c *Client) SendBinary(b []byte) error { return c.dataChannel().Send(b) }

func (c *Client) onData(m webrtc.DataChannelMessage) {
	from, data := "", m.Data
	for i, b := range m.Data {
		if b == ':' {
			from, data = string(m.Data[:i]), m.Data[i+1:]
			break
		}
	}
	c.mu.Lock()
	c.data = append(c.data, DataMsg{From: from, Data: append([]byte(nil), data...), IsString: m.IsString})
	c.mu.Unlock()
}

// Data returns the data-channel messages received so far.
func (c *Client) Data() []DataMsg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]DataMsg(nil), c.data...)
}

// LastSeq returns the highest sequence number received.
func (r *RemoteTrack) LastSeq() uint16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return uint16(r.lastSeq)
}

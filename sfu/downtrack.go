package sfu

// Ownership: enqueue runs on the read loops of the UpTrack's layers, and its
// state (current layer, skipping, skipped) is behind emu; it asks for
// keyframes only after releasing emu. The layer policy (layerpolicy.go) is
// behind pmu: decide runs it on the Peer's allocator goroutine and on
// SetViewport's caller, and publishes its choice in want, which enqueue
// reads. The writer goroutine owns hdr, buf, sent and the rewriting offsets,
// and is the only one that writes to pion. The RTCP goroutine
// (downtrack_rtcp.go) only reads RTCP, posts to the rtx channel, asks for
// keyframes and stores the quality counters. Bind/Unbind come from pion.

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"
)

// Queue depths per subscriber and track, in packets. A video queue holds
// several frames; past that the subscriber is too slow and loses frames.
const (
	videoQueueLen = 256
	audioQueueLen = 64
	rtxQueueLen   = 128
	sentHistory   = 512 // outgoing seq -> upstream ext seq, for NACKs
)

type queued struct {
	layer    *layer
	ext      uint64 // upstream extended sequence number, in the layer
	skipped  uint64 // packets dropped for this subscriber in this layer run
	switched bool   // first packet after a layer switch or a pause: rebase
}

// sentPacket lets the writer resend what it sent under an outgoing seq.
// 32 bytes, ordered to stay so (the history is most of a DownTrack).
type sentPacket struct {
	layer    *layer
	ext      uint64
	resentAt int64 // unix nanos of the last retransmission
	tsDelta  uint32
	seq      uint16 // outgoing: the slot may hold an older packet (a hole since)
	resent   uint8  // times retransmitted
	// late: sent after a newer one (a hole the publisher's retransmission
	// filled): the subscriber NACKed it before it left, so its first NACK
	// is no sign of loss on the way down (quality.go).
	late bool
}

// A packet is retransmitted at most maxResends times, and not twice within
// resendGap: on a congested link every repeated NACK answered in full would
// keep the link saturated with retransmissions (congestion collapse).
const (
	maxResends = 2
	resendGap  = 40 * time.Millisecond
)

// DownTrack is one subscriber's copy of an UpTrack: a webrtc.TrackLocal with
// its own SSRC, sequence space, queue and writer goroutine. A playback
// track (playback.go) changes UpTrack as a WHEP viewer's source changes.
type DownTrack struct {
	src      atomic.Pointer[UpTrack] // the source: forwarded, or switched to at its next keyframe
	id       string                  // the TrackLocal's id and stream id (msid)
	streamID string
	rtpKind  webrtc.RTPCodecType
	stats    *Stats
	kind     Kind
	est      *estimator // the subscriber's; nil in tests
	relay    bool       // a relay's Peer sends it (Stats.RelayPacketsOut)
	// pin is the rid of the one layer it forwards, "" any (relaylayers.go);
	// set, the relay's DownTracks of all the track's layers, on the first.
	pin string
	set []*DownTrack

	queue chan queued
	rtx   chan uint16
	done  chan struct{}
	wg    sync.WaitGroup

	mu     sync.Mutex // guards bound, closed and ups (Bind vs close vs SetSource)
	bound  bool
	closed bool
	// ups are the UpTracks whose subscriber lists hold this DownTrack
	// once bound: the source, and while a playback track switches, the
	// one it still forwards until the new source's keyframe.
	ups []*UpTrack

	// enqueue side, behind emu
	emu      sync.Mutex
	current  *layer // the layer being forwarded, nil none (wait for a keyframe)
	switched bool   // the next queued packet starts a new run
	skipping bool
	skipped  uint64

	paused   atomic.Bool           // set by SetPaused from any goroutine
	unusable atomic.Bool           // Bind found no codec of its m-line: it forwards nothing
	want     atomic.Pointer[layer] // the layer to forward (decide)
	width    atomic.Int32          // the subscriber's tile (SetViewport), 0 no hint
	height   atomic.Int32          //
	pmu      sync.Mutex            // guards policy
	policy   layerPolicy

	// Quality counters (quality.go): the writer counts what it sent and
	// the holes it left (upstream loss), the RTCP reader first NACKs of
	// sent packets, PLIs and the receiver reports, decide the deficit.
	sentPackets, sentBytes atomic.Uint64 // first transmissions
	dropped                atomic.Uint64 // packets this subscriber's queue could not take (Tap.Dropped)
	nacked                 atomic.Uint64
	holes                  atomic.Uint64
	plis                   atomic.Uint64
	rrLost                 atomic.Int64  // cumulative, as last reported
	rrHighest              atomic.Uint64 // extended highest sequence number, as last reported
	rrJitter               atomic.Int64  // nanoseconds
	rtt                    atomic.Int64  // nanoseconds, 0 unknown
	rrAt                   atomic.Int64  // unix nanos of the last report block
	limited                atomic.Bool
	boundSSRC              atomic.Uint32 // ssrc, for the RTCP reader

	// codec is the publisher's codec as this subscriber's m-line carries it
	// (its payload type); set by Peer.subscribe before negotiation.
	codec webrtc.RTPCodecParameters

	// set by Bind before the writer starts
	ssrc   uint32
	pt     uint8
	writer webrtc.TrackLocalWriter

	// writer goroutine only
	waiting  bool   // pion dropped writes: the transport is not ready yet
	sentFrom *layer // the layer of the newest packet sent (Tap.SenderReport)
	hdr      rtp.Header
	buf      [maxPacketSize]byte
	sent     [sentHistory]sentPacket // by outgoing seq
	started  bool                    // something was sent: offsets are set
	seqDelta uint16                  // outgoing = upstream - skipped + seqDelta
	tsDelta  uint32                  // outgoing = upstream + tsDelta
	rebaseTS bool
	lastSeq  uint16
	runLen   uint16 // packets sent since the current run's keyframe, at most sentHistory
	lastTS   uint32
	lastAt   time.Time
	clock    uint32 // codec clock rate
}

func newDownTrack(up *UpTrack, stats *Stats) *DownTrack {
	d := makeDownTrack(up.kind, up.id, up.streamID, up.codec, stats)
	d.src.Store(up)
	d.ups = []*UpTrack{up}
	d.decide(0, time.Now())
	if !up.simulcast {
		d.current = d.want.Load() // the only layer: no keyframe to wait for
	} // simulcast starts at a keyframe of the chosen layer
	return d
}

// makeDownTrack is a DownTrack without a source yet; codec gives the clock.
func makeDownTrack(kind webrtc.RTPCodecType, id, streamID string, codec webrtc.RTPCodecParameters, stats *Stats) *DownTrack {
	n := audioQueueLen
	if kind == webrtc.RTPCodecTypeVideo {
		n = videoQueueLen
	}
	d := &DownTrack{
		id: id, streamID: streamID, rtpKind: kind, stats: stats, kind: kindOf(kind),
		queue: make(chan queued, n), rtx: make(chan uint16, rtxQueueLen),
		done: make(chan struct{}), clock: codec.ClockRate,
	}
	d.policy = newLayerPolicy()
	d.hdr.CSRC = make([]uint32, 0, 15)
	// A new subscriber needs a keyframe to start decoding: it is requested
	// as soon as the first packet actually reaches the subscriber.
	d.waiting = true
	return d
}

// ID implements webrtc.TrackLocal: the publisher's track id.
func (d *DownTrack) ID() string { return d.id }

// StreamID implements webrtc.TrackLocal: the publisher's participant id.
func (d *DownTrack) StreamID() string { return d.streamID }

// RID implements webrtc.TrackLocal.
func (d *DownTrack) RID() string { return "" }

// Kind implements webrtc.TrackLocal.
func (d *DownTrack) Kind() webrtc.RTPCodecType { return d.rtpKind }

// Bind implements webrtc.TrackLocal: pick the codec of this subscriber's
// m-line (the same payload type; without one, the negotiated codec that
// fits the publisher's best), start the writer and join the UpTrack's
// subscribers.
func (d *DownTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	negotiated := ctx.CodecParameters()
	publisher := d.codec
	if up := d.src.Load(); up != nil {
		publisher = up.codec
	}
	match, ok := bindCodec(d.codec, publisher, negotiated)
	if !ok {
		if len(negotiated) == 0 {
			return webrtc.RTPCodecParameters{}, fmt.Errorf("bind %s: %w", publisher.MimeType, ErrCodecNotNegotiated)
		}
		// An error here would make pion abandon the description it is
		// applying, already stable, and fail every later one the same way:
		// bind to something, forward nothing, and let the Peer drop the
		// subscription (dropUnusable).
		d.unusable.Store(true)
		return negotiated[0], nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.bound || d.closed {
		return match, nil
	}
	d.bound = true
	d.ssrc = uint32(ctx.SSRC())
	d.boundSSRC.Store(d.ssrc)
	d.pt = uint8(match.PayloadType)
	d.writer = ctx.WriteStream()
	d.wg.Add(1)
	go d.writeLoop()
	for _, up := range d.ups {
		up.addDown(d)
	}
	d.stats.Subscriptions.Add(1)
	d.decide(0, time.Now()) // layers may have arrived since the subscription
	return match, nil
}

// bindCodec finds the codec of the m-line (line, when known) in the
// negotiated list, else the one that fits the publisher's codec best.
func bindCodec(line, publisher webrtc.RTPCodecParameters, negotiated []webrtc.RTPCodecParameters) (webrtc.RTPCodecParameters, bool) {
	if line.MimeType != "" {
		for _, c := range negotiated {
			if c.PayloadType == line.PayloadType && strings.EqualFold(c.MimeType, line.MimeType) {
				return c, true
			}
		}
	}
	return pickCodec(publisher, negotiated)
}

// Unbind implements webrtc.TrackLocal.
func (d *DownTrack) Unbind(webrtc.TrackLocalContext) error {
	d.close()
	return nil
}

// close stops forwarding and waits for the writer. Safe to call twice.
func (d *DownTrack) close() {
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		if d.bound {
			for _, up := range d.ups {
				up.removeDown(d)
			}
			d.stats.Subscriptions.Add(-1)
		}
		if d.paused.Swap(false) {
			d.stats.PausedSubscriptions.Add(-1)
		}
		close(d.done)
	}
	d.mu.Unlock()
	d.wg.Wait()
}

// enqueue is called by a layer's read loop for every packet. It never
// blocks: when the queue is full the packet is dropped and, for video, so
// is the rest of its frame, and a keyframe is requested. Dropped packets
// are removed from the outgoing sequence space so the subscriber sees a
// contiguous stream.
//
// It also follows the layer policy's choice (want): packets of other layers
// are ignored, and a switch to the wanted layer (or a restart after a
// pause) happens only at a keyframe of that layer, which is asked for until
// it comes.
func (d *DownTrack) enqueue(l *layer, ext uint64, marker, keyframe bool) {
	d.emu.Lock()
	from := d.current
	ask := d.enqueueLocked(l, ext, marker, keyframe)
	switched := d.current != from && d.current != nil && (from == nil || from.owner != l.owner)
	d.emu.Unlock()
	ask.requestKeyframe() // outside emu: it may write a PLI through pion
	if switched {
		d.settle(l.owner) // a playback track reached its new source
	}
}

// enqueueLocked is enqueue under emu; it returns the layer to ask a
// keyframe of, or nil.
func (d *DownTrack) enqueueLocked(l *layer, ext uint64, marker, keyframe bool) (ask *layer) {
	if d.paused.Load() {
		d.current = nil
		return nil
	}
	if l != d.current {
		want := d.want.Load()
		if l != want {
			return nil
		}
		if !keyframe && d.kind == KindVideo { // audio switches at any packet
			return want
		}
		if d.current != nil {
			d.stats.LayerSwitches.Add(1)
		}
		d.current, d.switched, d.skipping, d.skipped = l, true, false, 0
	} else if want := d.want.Load(); want != l && want != nil {
		ask = want // switch at its next keyframe
	}
	if d.skipping {
		d.skipped++
		d.dropped.Add(1)
		d.stats.Drop(DropFrameSkip)
		if marker {
			d.skipping = false
		}
		return ask
	}
	select {
	case d.queue <- queued{layer: l, ext: ext, skipped: d.skipped, switched: d.switched}:
		d.switched = false
	default:
		d.skipped++
		d.dropped.Add(1)
		d.stats.Drop(DropQueueFull)
		if d.kind == KindVideo {
			d.skipping = !marker
			ask = l
			if d.switched {
				// The keyframe that started this run is lost: the run has
				// not begun, so wait for the next keyframe.
				d.current, d.skipping = nil, false
			}
		}
	}
	return ask
}

// decide runs the layer policy on the track's layers as they are now and
// publishes its choice for enqueue. Any goroutine may call it (pmu): the
// allocator every tick, SetViewport's caller, Bind, and UpTrack.redecide
// when a layer arrives. share is the subscriber's bandwidth
// share for this track in bits per second, 0 when there is none or the
// caller only changed the tile. A plain track's one layer is always it.
func (d *DownTrack) decide(share int, now time.Time) {
	up := d.src.Load()
	if up == nil {
		return
	}
	layers := *up.layers.Load()
	if len(layers) == 0 {
		return
	}
	if d.pin != "" {
		d.want.Store(d.pinned(layers))
		return
	}
	if !up.simulcast || len(layers) == 1 {
		d.want.Store(layers[0])
		return
	}
	var views [maxLayers]layerView
	n := min(len(layers), maxLayers)
	for i, l := range layers[:n] {
		views[i] = layerView{width: int(l.width.Load()), height: int(l.height.Load()), bitrate: l.bitrate(now), live: l.live(now)}
	}
	d.pmu.Lock()
	w, h := int(d.width.Load()), int(d.height.Load())
	r := d.policy.choose(views[:n], w, h, share, now)
	d.pmu.Unlock()
	if r >= 0 {
		d.want.Store(layers[r])
	}
	// Below the layer the tile asks for while that one is sent: the
	// bandwidth holds the subscriber down (a quality signal).
	asked := viewportRank(views[:n], w, h)
	if asked < 0 {
		asked = n - 1
	}
	d.limited.Store(r >= 0 && r < asked && views[asked].live)
}

func (d *DownTrack) writeLoop() {
	defer d.wg.Done()
	for {
		select {
		case q := <-d.queue:
			base := uint16(q.ext - q.skipped)
			if q.switched && d.started {
				// Continue the subscriber's sequence and timestamp spaces
				// across a layer switch or a pause.
				d.seqDelta = d.lastSeq + 1 - base
				d.rebaseTS = true
			}
			seq := base + d.seqDelta
			if q.switched {
				d.runLen = 0
			}
			d.send(q.layer, q.ext, seq, false)
		case seq := <-d.rtx:
			// Only packets of the current run, and still in the history:
			// one from before the run's keyframe is of no use to the
			// decoder (after a layer switch it would only crowd the link
			// that made us switch), and an older slot holds another packet.
			if d.lastSeq-seq >= d.runLen {
				continue
			}
			sp := &d.sent[seq%sentHistory]
			now := time.Now().UnixNano()
			if sp.layer == nil || sp.seq != seq || sp.resent >= maxResends {
				continue // never sent (the server lacked it), or given up
			}
			// The first NACK of a packet sent in order counts it lost on
			// the way down (quality.go).
			if sp.resent == 0 && !sp.late {
				d.nacked.Add(1)
			}
			if sp.resent > 0 && now-sp.resentAt < int64(resendGap) {
				continue
			}
			sp.resent++
			sp.resentAt = now
			if d.send(sp.layer, sp.ext, seq, true) {
				d.stats.Retransmits.Add(1)
			}
		case <-d.done:
			return
		}
	}
}

// send copies one packet out of the cache, rewrites its header for this
// subscriber and writes it. Header extensions are removed: their ids were
// negotiated with the publisher, not with this subscriber.
func (d *DownTrack) send(l *layer, ext uint64, seq uint16, retransmit bool) bool {
	n, ok := l.cache.Get(ext, d.buf[:])
	if !ok {
		d.stats.Drop(DropCacheMiss)
		return false
	}
	hl, err := d.hdr.Unmarshal(d.buf[:n])
	if err != nil {
		return false
	}
	tsDelta := d.tsDelta
	if retransmit {
		tsDelta = d.sent[seq%sentHistory].tsDelta
	} else {
		now := time.Now()
		if d.rebaseTS {
			// The new run continues from the last timestamp sent, advanced
			// by the wall-clock time since (at least 1 tick).
			step := uint32(now.Sub(d.lastAt).Seconds() * float64(d.clock))
			d.tsDelta = d.lastTS + max(step, 1) - d.hdr.Timestamp
			d.rebaseTS = false
			tsDelta = d.tsDelta
		}
		// Only a newer packet moves the run on; one that fills a hole
		// (late) leaves the newest sequence number and timestamp be.
		newer := !d.started || int16(seq-d.lastSeq) > 0
		if gap := seq - d.lastSeq - 1; d.started && newer && gap != 0 {
			d.holes.Add(uint64(gap)) // upstream loss: the subscriber will miss these too
		}
		d.sent[seq%sentHistory] = sentPacket{layer: l, ext: ext, seq: seq, tsDelta: tsDelta, late: !newer}
		if newer {
			d.started, d.lastSeq, d.lastTS, d.lastAt = true, seq, d.hdr.Timestamp+tsDelta, now
			d.sentFrom = l
		}
		if d.runLen < sentHistory {
			d.runLen++
		}
	}
	Rewrite(&d.hdr, d.ssrc, d.pt, seq)
	d.hdr.Timestamp += tsDelta
	written, err := d.writer.WriteRTP(&d.hdr, d.buf[hl:n])
	if err != nil {
		d.stats.Drop(DropWriteError)
		return false
	}
	if written == 0 {
		// pion drops writes until DTLS/SRTP is up; a keyframe sent now
		// would be lost, so wait for the first write that goes through.
		d.waiting = true
		return false
	}
	if d.waiting {
		d.waiting = false
		l.requestKeyframe()
	}
	d.stats.PacketsOut[d.kind].Add(1)
	d.stats.BytesOut[d.kind].Add(uint64(n))
	if d.relay {
		d.stats.RelayPacketsOut.Add(1)
	}
	if !retransmit {
		d.sentPackets.Add(1)
		d.sentBytes.Add(uint64(n))
	}
	return true
}

// resync makes the next packet start a new run, continuing the
// subscriber's sequence and timestamp spaces (as after a pause): video at
// its next keyframe, audio at once. After a gap the subscriber did not see
// coming (the track was muted by the server), it sees no loss.
func (d *DownTrack) resync() {
	d.emu.Lock()
	if d.kind == KindVideo {
		d.current = nil
	} else {
		d.switched = true
	}
	d.emu.Unlock()
}

// SetPaused pauses (for a hidden tile) or resumes a video subscription.
// While paused nothing is sent; on resume a keyframe is requested and
// forwarding restarts at the next keyframe, so the subscriber decodes at
// once. Audio is never paused. It reports whether anything changed.
func (d *DownTrack) SetPaused(paused bool) bool {
	if d.kind != KindVideo {
		return false
	}
	d.mu.Lock() // the gauge moves with close's
	if d.closed || d.paused.Swap(paused) == paused {
		d.mu.Unlock()
		return false
	}
	if paused {
		d.stats.PausedSubscriptions.Add(1)
	} else {
		d.stats.PausedSubscriptions.Add(-1)
	}
	d.mu.Unlock()
	if !paused {
		d.want.Load().requestKeyframe()
	}
	return true
}

// SetViewport records the size in pixels at which the subscriber renders
// the track and, for simulcast, chooses again at once (the smallest layer
// that fills it; 0x0: no preference, the highest layer).
func (d *DownTrack) SetViewport(width, height int) {
	d.width.Store(int32(width))
	d.height.Store(int32(height))
	d.decide(0, time.Now())
}

// Rewrite turns a publisher's RTP header into a subscriber's: its SSRC, its
// payload type, its sequence number, and no header extensions. It reuses the
// header's extension slice and allocates nothing.
func Rewrite(h *rtp.Header, ssrc uint32, pt uint8, seq uint16) {
	h.SSRC = ssrc
	h.PayloadType = pt
	h.SequenceNumber = seq
	h.Extension = false
	h.ExtensionProfile = 0
	if h.Extensions != nil {
		h.Extensions = h.Extensions[:0]
	}
}

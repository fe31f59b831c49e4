package sfu

// Ownership: enqueue runs on the read loops of the UpTrack's layers, and its
// state (current layer, skipping, skipped) is behind emu. The writer
// goroutine owns hdr, buf, sent and the rewriting offsets, and is the only
// one that writes to pion. The RTCP goroutine only reads RTCP and posts to
// the rtx channel or asks for keyframes. Bind/Unbind come from pion.

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
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
type sentPacket struct {
	layer    *layer
	ext      uint64
	tsDelta  uint32
	resent   uint8 // times retransmitted
	resentAt int64 // unix nanos of the last retransmission
}

// A packet is retransmitted at most maxResends times, and not twice within
// resendGap: on a congested link every repeated NACK answered in full would
// keep the link saturated with retransmissions (congestion collapse).
const (
	maxResends = 2
	resendGap  = 40 * time.Millisecond
)

// DownTrack is one subscriber's copy of an UpTrack: a webrtc.TrackLocal with
// its own SSRC, sequence space, queue and writer goroutine.
type DownTrack struct {
	up    *UpTrack
	stats *Stats
	kind  Kind
	est   *estimator // the subscriber's; nil in tests

	queue chan queued
	rtx   chan uint16
	done  chan struct{}
	wg    sync.WaitGroup

	mu     sync.Mutex // guards bound and closed (Bind vs close)
	bound  bool
	closed bool

	// enqueue side, behind emu
	emu      sync.Mutex
	current  int  // rank of the layer being forwarded, -1 none (wait for a keyframe)
	switched bool // the next queued packet starts a new run
	skipping bool
	skipped  uint64

	paused atomic.Bool  // set by SetPaused from any goroutine
	target atomic.Int32 // wanted layer rank from the viewport, -1 the highest
	budget atomic.Int32 // highest layer rank the bandwidth allows, -1 no limit
	// budget hysteresis, allocator goroutine only
	upSince, overSince, upAt time.Time
	upHold                   time.Duration
	probeUntil               time.Time // a probe's grace ends
	probeBits                int       // the estimate when the probe began
	width                    atomic.Int32
	height                   atomic.Int32

	// set by Bind before the writer starts
	ssrc   uint32
	pt     uint8
	writer webrtc.TrackLocalWriter

	// writer goroutine only
	waiting  bool // pion dropped writes: the transport is not ready yet
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
	n := audioQueueLen
	if up.kind == webrtc.RTPCodecTypeVideo {
		n = videoQueueLen
	}
	d := &DownTrack{
		up: up, stats: stats, kind: kindOf(up.kind),
		queue: make(chan queued, n), rtx: make(chan uint16, rtxQueueLen),
		done: make(chan struct{}), clock: up.codec.ClockRate,
	}
	d.target.Store(-1)
	d.budget.Store(-1)
	if up.simulcast {
		d.current = -1 // start at a keyframe of the chosen layer
	}
	d.hdr.CSRC = make([]uint32, 0, 15)
	// A new subscriber needs a keyframe to start decoding: it is requested
	// as soon as the first packet actually reaches the subscriber.
	d.waiting = true
	return d
}

// ID implements webrtc.TrackLocal: the publisher's track id.
func (d *DownTrack) ID() string { return d.up.id }

// StreamID implements webrtc.TrackLocal: the publisher's participant id.
func (d *DownTrack) StreamID() string { return d.up.streamID }

// RID implements webrtc.TrackLocal.
func (d *DownTrack) RID() string { return "" }

// Kind implements webrtc.TrackLocal.
func (d *DownTrack) Kind() webrtc.RTPCodecType { return d.up.kind }

// Bind implements webrtc.TrackLocal: pick the publisher's codec among the
// negotiated ones, start the writer and join the UpTrack's subscribers.
func (d *DownTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	want := d.up.codec
	var match *webrtc.RTPCodecParameters
	for _, c := range ctx.CodecParameters() {
		if !strings.EqualFold(c.MimeType, want.MimeType) {
			continue
		}
		if match == nil || c.SDPFmtpLine == want.SDPFmtpLine {
			c := c
			match = &c
		}
	}
	if match == nil {
		return webrtc.RTPCodecParameters{}, fmt.Errorf("bind %s: %w", want.MimeType, ErrCodecNotNegotiated)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.bound || d.closed {
		return *match, nil
	}
	d.bound = true
	d.ssrc = uint32(ctx.SSRC())
	d.pt = uint8(match.PayloadType)
	d.writer = ctx.WriteStream()
	d.wg.Add(1)
	go d.writeLoop()
	d.up.addDown(d)
	d.stats.Subscriptions.Add(1)
	return *match, nil
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
			d.up.removeDown(d)
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
// It also picks the layer: packets of other layers are ignored, and a
// switch to the wanted layer (or a restart after a pause) happens only at
// a keyframe of that layer, which is asked for until it comes.
func (d *DownTrack) enqueue(l *layer, ext uint64, marker, keyframe bool) {
	d.emu.Lock()
	defer d.emu.Unlock()
	if d.paused.Load() {
		d.current = -1
		return
	}
	if l.index != d.current {
		want := d.wantLayer()
		if l.index != want {
			return
		}
		if !keyframe {
			d.up.requestKeyframe(want)
			return
		}
		if d.current >= 0 {
			d.stats.LayerSwitches.Add(1)
		}
		d.current, d.switched, d.skipping, d.skipped = l.index, true, false, 0
	} else if d.up.simulcast {
		if want := d.wantLayer(); want != d.current {
			d.up.requestKeyframe(want) // switch at its next keyframe
		}
	}
	if d.skipping {
		d.skipped++
		d.stats.Drop(DropFrameSkip)
		if marker {
			d.skipping = false
		}
		return
	}
	select {
	case d.queue <- queued{layer: l, ext: ext, skipped: d.skipped, switched: d.switched}:
		d.switched = false
	default:
		d.skipped++
		d.stats.Drop(DropQueueFull)
		if d.kind == KindVideo {
			d.skipping = !marker
			d.up.requestKeyframe(l.index)
		}
	}
}

// wantLayer is the rank of the layer to forward: the target if the
// publisher sends it, else the best one below it, else the lowest.
func (d *DownTrack) wantLayer() int {
	layers := *d.up.layers.Load()
	if len(layers) == 0 {
		return -1
	}
	t := int(d.target.Load())
	if b := int(d.budget.Load()); b >= 0 && (t < 0 || b < t) {
		t = b
	}
	if t < 0 {
		return layers[len(layers)-1].index
	}
	best := layers[0].index
	for _, l := range layers {
		if l.index <= t {
			best = l.index
		}
	}
	return best
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
			if sp.layer == nil || sp.resent >= maxResends {
				continue
			}
			now := time.Now().UnixNano()
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
		d.sent[seq%sentHistory] = sentPacket{layer: l, ext: ext, tsDelta: tsDelta}
		d.started, d.lastSeq, d.lastTS, d.lastAt = true, seq, d.hdr.Timestamp+tsDelta, now
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
		d.up.requestKeyframe(l.index)
	}
	d.stats.PacketsOut[d.kind].Add(1)
	d.stats.BytesOut[d.kind].Add(uint64(n))
	return true
}

// SetPaused pauses (for a hidden tile) or resumes a video subscription.
// While paused nothing is sent; on resume a keyframe is requested and
// forwarding restarts at the next keyframe, so the subscriber decodes at
// once. Audio is never paused. It reports whether anything changed.
func (d *DownTrack) SetPaused(paused bool) bool {
	if d.kind != KindVideo || d.paused.Swap(paused) == paused {
		return false
	}
	if paused {
		d.stats.PausedSubscriptions.Add(1)
	} else {
		d.stats.PausedSubscriptions.Add(-1)
		d.up.requestKeyframe(d.wantLayer())
	}
	return true
}

// SetViewport records the size in pixels at which the subscriber renders
// the track and, for simulcast, targets the smallest layer that fills it
// (0x0: no preference, the highest layer).
func (d *DownTrack) SetViewport(width, height int) {
	d.width.Store(int32(width))
	d.height.Store(int32(height))
	d.target.Store(int32(chooseLayer(*d.up.layers.Load(), width, height)))
}

// allocate caps the layer to what bits per second allow. It goes down when
// the current layer's bitrate has exceeded the share for a second. It goes
// up when the next layer fits with 15 % to spare, or, since an estimate
// rarely grows far above what is actually sent, when the estimate has
// stayed 20 % above the current layer's bitrate: a probe. Either must hold
// for upHold (2 s, doubled after each probe that had to be undone within
// 3 s, up to 8 s, back to 2 s after one that held), so the choice does not
// flap. For probeGrace after a probe, a layer above the estimate is kept
// as long as the estimate has not fallen since the probe began: the
// estimator is then still climbing toward what is now sent (pion's GCC
// grows by 5 to 8 % per step), and only a fall means congestion.
// Called by the Peer's allocator goroutine only.
func (d *DownTrack) allocate(bits int, now time.Time) {
	layers := *d.up.layers.Load()
	if len(layers) < 2 {
		return
	}
	cur := int(d.budget.Load())
	if cur < 0 {
		cur = layers[len(layers)-1].index
	}
	var curL, next *layer
	for _, l := range layers {
		if l.index <= cur {
			curL = l
		} else if next == nil {
			next = l
		}
	}
	if curL == nil {
		curL = layers[0]
	}
	curRate := curL.bitrate(now)
	if d.upHold == 0 || !d.upAt.IsZero() && now.Sub(d.upAt) >= 3*time.Second {
		d.upHold, d.upAt = 2*time.Second, time.Time{}
	}
	switch {
	case curRate > bits && curL != layers[0]:
		d.upSince = time.Time{}
		if now.Before(d.probeUntil) && bits >= d.probeBits {
			d.overSince = time.Time{}
			return
		}
		d.probeUntil = time.Time{}
		if d.overSince.IsZero() {
			d.overSince = now
			return
		}
		if now.Sub(d.overSince) < time.Second {
			return
		}
		fit := layers[0].index
		for _, l := range layers {
			if r := l.bitrate(now); r > 0 && r <= bits {
				fit = l.index
			}
		}
		d.budget.Store(int32(fit))
		d.overSince = time.Time{}
		if !d.upAt.IsZero() && now.Sub(d.upAt) < 3*time.Second {
			d.upHold = min(2*d.upHold, 8*time.Second)
		}
	case next != nil && (next.bitrate(now)*100 <= bits*85 || curRate > 0 && bits*10 >= curRate*12):
		d.overSince = time.Time{}
		if d.upSince.IsZero() {
			d.upSince = now
		} else if now.Sub(d.upSince) >= d.upHold {
			d.budget.Store(int32(next.index))
			d.upSince, d.upAt = time.Time{}, now
			if next.bitrate(now)*100 > bits*85 {
				d.probeUntil, d.probeBits = now.Add(probeGrace), bits
			}
		}
	default:
		d.upSince, d.overSince = time.Time{}, time.Time{}
	}
}

// chooseLayer returns the rank of the smallest layer whose frame size
// covers width x height (within 10 %), -1 (the highest) when none does.
// A layer's size is the one its last keyframe announced; a layer not seen
// with a size yet is assumed to be half the size of the next one up (the
// usual 1:2:4 simulcast), counted from the best layer whose size is known.
func chooseLayer(layers []*layer, width, height int) int {
	if width <= 0 && height <= 0 {
		return -1
	}
	sizes := make([][2]int, len(layers))
	for i := len(layers) - 1; i >= 0; i-- {
		w, h := int(layers[i].width.Load()), int(layers[i].height.Load())
		if (w == 0 || h == 0) && i+1 < len(layers) {
			w, h = sizes[i+1][0]/2, sizes[i+1][1]/2
		}
		sizes[i] = [2]int{w, h}
	}
	if known := sizes[len(sizes)-1]; known[0] == 0 {
		// Sizes are known below the top only: fill upward by doubling.
		for i := 1; i < len(sizes); i++ {
			if sizes[i][0] == 0 {
				sizes[i] = [2]int{sizes[i-1][0] * 2, sizes[i-1][1] * 2}
			}
		}
	}
	for i, l := range layers {
		w, h := sizes[i][0], sizes[i][1]
		if w > 0 && h > 0 && w*10 >= width*9 && h*10 >= height*9 {
			return l.index
		}
	}
	return -1
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

// readRTCP reads the subscriber's RTCP for this track until the sender
// stops: PLI and FIR become a (throttled) keyframe request to the publisher,
// NACKs are answered from the cache (RFC 4585 §6.2.1).
func (d *DownTrack) readRTCP(sender *webrtc.RTPSender) {
	buf := make([]byte, maxPacketSize)
	for failed := 0; ; {
		n, attrs, err := sender.Read(buf)
		if err != nil {
			if rtcpReadEnds(err, &failed) {
				return
			}
			d.stats.RTCPReadErrors.Add(1)
			continue
		}
		failed = 0
		// The interceptors parsed this batch already and left the packets
		// in the attributes; parsing again would double the allocations
		// (a TWCC feedback is a pointer per reported packet).
		var pkts []rtcp.Packet
		if attrs != nil {
			pkts, err = attrs.GetRTCPPackets(buf[:n])
		} else {
			pkts, err = rtcp.Unmarshal(buf[:n])
		}
		if err != nil {
			d.stats.RTCPReadErrors.Add(1)
			continue
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication:
				d.stats.PLIsReceived.Add(1)
				d.up.requestKeyframe(d.wantLayer())
			case *rtcp.FullIntraRequest:
				d.stats.FIRsReceived.Add(1)
				d.up.requestKeyframe(d.wantLayer())
			case *rtcp.TransportLayerNack:
				d.stats.NACKsReceived.Add(1)
				d.nack(p)
			case *rtcp.TransportLayerCC:
				if d.est != nil {
					d.est.twcc.Store(true)
				}
			case *rtcp.ReceiverEstimatedMaximumBitrate:
				if d.est != nil {
					d.est.remb.Store(uint64(p.Bitrate))
				}
			}
		}
	}
}

func (d *DownTrack) nack(p *rtcp.TransportLayerNack) {
	for _, pair := range p.Nacks {
		for _, seq := range pair.PacketList() {
			select {
			case d.rtx <- seq:
			case <-d.done:
				return
			default: // retransmission queue full: the subscriber will ask again
			}
		}
	}
}

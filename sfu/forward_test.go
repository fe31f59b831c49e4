package sfu

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"
)

var vp8 = webrtc.RTPCodecParameters{
	RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
	PayloadType:        96,
}

// fakeWriter stands for pion's SRTP write stream: it counts packets and,
// when block is set, waits for release before each write.
type fakeWriter struct {
	n       atomic.Uint64
	block   chan struct{}
	lastSeq atomic.Uint32
}

func (w *fakeWriter) WriteRTP(h *rtp.Header, p []byte) (int, error) {
	if w.block != nil {
		<-w.block
	}
	w.lastSeq.Store(uint32(h.SequenceNumber))
	w.n.Add(1)
	return 12 + len(p), nil
}
func (w *fakeWriter) Write(b []byte) (int, error) { return len(b), nil }

// bindTo is a bound sender as pion would describe it (a tap's binding):
// VP8, numbered 100 on the subscriber's m-line.
func bindTo(ssrc webrtc.SSRC, w webrtc.TrackLocalWriter) tapContext {
	return tapContext{codec: webrtc.RTPCodecParameters{RTPCodecCapability: vp8.RTPCodecCapability, PayloadType: 100}, w: w, ssrc: ssrc}
}

// rig is one UpTrack with n bound DownTracks.
type rig struct {
	up               *UpTrack
	downs            []*DownTrack
	writers          []*fakeWriter
	stats            *Stats
	keyframeRequests atomic.Int64
	hdr              rtp.Header
	unwrap           SeqUnwrapper
	pkt              []byte
	seq              uint16
}

func newRig(t testing.TB, n int, blocked ...int) *rig {
	r := &rig{stats: &Stats{}}
	r.up = newUpTrack("TR1", "pub", webrtc.RTPCodecTypeVideo, vp8, 1234, r.stats,
		func([]rtcp.Packet) error { r.keyframeRequests.Add(1); return nil })
	isBlocked := map[int]bool{}
	for _, b := range blocked {
		isBlocked[b] = true
	}
	for i := 0; i < n; i++ {
		w := &fakeWriter{}
		if isBlocked[i] {
			w.block = make(chan struct{})
		}
		d := newDownTrack(r.up, r.stats)
		d.waiting = false // no keyframe request: the rig has no publisher
		if _, err := d.Bind(bindTo(webrtc.SSRC(5000+i), w)); err != nil {
			t.Fatal(err)
		}
		r.downs = append(r.downs, d)
		r.writers = append(r.writers, w)
	}
	h := rtp.Header{Version: 2, PayloadType: 96, SSRC: 1234, Timestamp: 1}
	payload := make([]byte, 1100)
	r.pkt, _ = (&rtp.Packet{Header: h, Payload: payload}).Marshal()
	r.hdr.CSRC = make([]uint32, 0, 15)
	t.Cleanup(r.close)
	return r
}

// send forwards one packet; every packet ends a frame.
func (r *rig) send() {
	r.pkt[2], r.pkt[3] = byte(r.seq>>8), byte(r.seq)
	r.pkt[1] |= 0x80 // marker
	r.seq++
	r.up.forward((*r.up.layers.Load())[0], r.pkt, &r.hdr, &r.unwrap, KindVideo)
}

// sendFrame forwards one single-packet VP8 frame, a keyframe or not.
func (r *rig) sendFrame(key bool) {
	hl := 12
	r.pkt[hl] = 0x10 // S bit, partition 0
	r.pkt[hl+1] = 0x01
	if key {
		r.pkt[hl+1] = 0x00
	}
	r.send()
}

// wait spins until every unblocked writer has written want packets.
func (r *rig) wait(want uint64) {
	for _, w := range r.writers {
		if w.block != nil {
			continue
		}
		for w.n.Load() < want {
			runtime.Gosched()
		}
	}
}

func (r *rig) close() {
	for _, w := range r.writers {
		if w.block != nil {
			close(w.block) // a closed channel never blocks again
		}
	}
	for _, d := range r.downs {
		d.close()
	}
}

// BenchmarkForward measures one packet in, N out through the real
// forwarding code (cache, queues, writer goroutines, header rewriting); the
// writer stands in for pion's SRTP. ns/pkt-out is the cost per forwarded
// packet; allocs/op must be 0.
func BenchmarkForward(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			r := newRig(b, n)
			b.ReportAllocs()
			b.SetBytes(int64(len(r.pkt) * n))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r.send()
				if i%64 == 63 {
					r.wait(uint64(i + 1))
				}
			}
			r.wait(uint64(b.N))
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/pkt-out")
			if d := r.stats.Dropped[DropQueueFull].Load(); d > 0 {
				b.Fatalf("%d packets dropped", d)
			}
		})
	}
}

// BenchmarkPacketCache measures Put and Get of a 1,200-byte packet.
func BenchmarkPacketCache(b *testing.B) {
	c := NewPacketCache(videoCacheSize)
	pkt := make([]byte, 1200)
	dst := make([]byte, maxPacketSize)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Put(uint64(i), pkt)
		c.Get(uint64(i), dst)
	}
}

// BenchmarkRewrite measures parsing and rewriting one header.
func BenchmarkRewrite(b *testing.B) {
	p := &rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 1}, Payload: make([]byte, 1100)}
	if err := p.SetExtension(1, []byte{1}); err != nil {
		b.Fatal(err)
	}
	pkt, _ := p.Marshal()
	var h rtp.Header
	h.CSRC = make([]uint32, 0, 15)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := h.Unmarshal(pkt); err != nil {
			b.Fatal(err)
		}
		Rewrite(&h, 77, 96, uint16(i))
	}
}

// A subscriber whose writes never return must not stop the publisher's
// loop nor the other subscribers: its queue fills, its packets are dropped
// and counted, and the others get every packet with contiguous numbers.
func TestBlockedSubscriberNeverBlocksForwarding(t *testing.T) {
	r := newRig(t, 3, 1)
	const packets = 2000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < packets; i++ {
			r.send()
			if i%32 == 31 {
				r.wait(uint64(i + 1))
			}
		}
		r.wait(packets)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("forwarding blocked behind a subscriber that does not drain")
	}
	for _, i := range []int{0, 2} {
		if n := r.writers[i].n.Load(); n != packets {
			t.Errorf("subscriber %d got %d packets, want %d", i, n, packets)
		}
		if s := r.writers[i].lastSeq.Load(); s != packets-1 {
			t.Errorf("subscriber %d last seq %d, want %d", i, s, packets-1)
		}
	}
	queued := uint64(videoQueueLen + 1) // the queue plus the write in progress
	if d := r.stats.Dropped[DropQueueFull].Load(); d != packets-queued {
		t.Errorf("dropped %d, want %d", d, packets-queued)
	}
	// Every drop asks for a keyframe; the throttle lets few through.
	if k := r.keyframeRequests.Load(); k < 1 || k > 5 {
		t.Errorf("%d keyframe requests sent to the publisher, want 1..5", k)
	}
}

// A queue that overflows in the middle of a frame drops the rest of that
// frame, and the subscriber's sequence numbers stay contiguous.
func TestDropToFrameBoundary(t *testing.T) {
	stats := &Stats{}
	up := newUpTrack("TR", "pub", webrtc.RTPCodecTypeVideo, vp8, 1, stats, func([]rtcp.Packet) error { return nil })
	d := newDownTrack(up, stats) // not bound: nothing drains the queue
	l0 := (*up.layers.Load())[0]
	for i := 0; i < videoQueueLen; i++ {
		d.enqueue(l0, uint64(i), true, false)
	}
	// A three-packet frame: the first packet does not fit, so all three go.
	d.enqueue(l0, 1000, false, false)
	d.enqueue(l0, 1001, false, false)
	d.enqueue(l0, 1002, true, false)
	if got := stats.Dropped[DropQueueFull].Load(); got != 1 {
		t.Errorf("queue_full drops %d, want 1", got)
	}
	if got := stats.Dropped[DropFrameSkip].Load(); got != 2 {
		t.Errorf("frame_skip drops %d, want 2", got)
	}
	<-d.queue // room again: the next frame is queued, 3 packets later in seq space
	d.enqueue(l0, 1003, true, false)
	var last queued
	for len(d.queue) > 0 {
		last = <-d.queue
	}
	if last.ext != 1003 || last.skipped != 3 || uint16(last.ext-last.skipped) != 1000 {
		t.Errorf("after the skip: %+v, want ext 1003 skipped 3 (outgoing seq 1000)", last)
	}
}

// A paused (hidden) subscription gets nothing; on resume a keyframe is
// requested and forwarding restarts exactly at the next keyframe, with
// contiguous sequence numbers.
func TestPauseAndResume(t *testing.T) {
	r := newRig(t, 2)
	for i := 0; i < 10; i++ {
		r.sendFrame(false)
	}
	r.wait(10)
	hidden := r.downs[1]
	if !hidden.SetPaused(true) || hidden.SetPaused(true) {
		t.Fatal("SetPaused should report a change once")
	}
	if r.stats.PausedSubscriptions.Load() != 1 {
		t.Errorf("paused gauge %d, want 1", r.stats.PausedSubscriptions.Load())
	}
	for i := 0; i < 20; i++ {
		r.sendFrame(false)
	}
	for r.writers[0].n.Load() < 30 { // the visible subscriber gets everything
		runtime.Gosched()
	}
	if n := r.writers[1].n.Load(); n != 10 {
		t.Errorf("hidden subscriber got %d packets, want the 10 from before", n)
	}
	before := r.keyframeRequests.Load()
	hidden.SetPaused(false)
	if r.keyframeRequests.Load() == before {
		// The throttle may defer it; it must have been asked for.
		time.Sleep(KeyframeInterval + 100*time.Millisecond)
		if r.keyframeRequests.Load() == before {
			t.Errorf("no keyframe requested on resume")
		}
	}
	r.sendFrame(false) // still waiting for a keyframe
	r.sendFrame(false)
	r.sendFrame(true) // forwarding restarts here
	r.sendFrame(false)
	for r.writers[0].n.Load() < 34 || r.writers[1].n.Load() < 12 {
		runtime.Gosched()
	}
	if n := r.writers[1].n.Load(); n != 12 {
		t.Errorf("resumed subscriber got %d packets, want 10 + keyframe + 1", n)
	}
	// 10 sent, 22 skipped (paused and waiting), then 2: seq 10+22+2-1 = 33
	// upstream, 11 downstream.
	if s := r.writers[1].lastSeq.Load(); s != 11 {
		t.Errorf("resumed subscriber's last seq %d, want 11 (contiguous)", s)
	}
	if r.stats.PausedSubscriptions.Load() != 0 {
		t.Errorf("paused gauge %d after resume", r.stats.PausedSubscriptions.Load())
	}
	// A NACK for a packet from before the resume keyframe (seq 3) is not
	// answered: the decoder restarted at the keyframe (seq 10). One for a
	// packet after it (seq 11) is.
	w := r.writers[1]
	for _, tt := range []struct {
		seq    uint16
		resent bool
	}{{3, false}, {11, true}} {
		before := r.stats.Retransmits.Load()
		hidden.rtx <- tt.seq
		deadline := time.Now().Add(200 * time.Millisecond)
		for r.stats.Retransmits.Load() == before && time.Now().Before(deadline) {
			runtime.Gosched()
		}
		if got := r.stats.Retransmits.Load() > before; got != tt.resent {
			t.Errorf("NACK for seq %d: resent %v, want %v (writer at %d packets)", tt.seq, got, tt.resent, w.n.Load())
		}
	}
}

// A NACKed packet is resent at most maxResends times, never twice within
// resendGap, so repeated NACKs cannot flood a congested subscriber.
func TestRetransmissionLimits(t *testing.T) {
	r := newRig(t, 1)
	for i := 0; i < 10; i++ {
		r.sendFrame(false)
	}
	r.wait(10)
	d, w := r.downs[0], r.writers[0]
	nack := func() {
		before := w.n.Load()
		d.rtx <- 5
		deadline := time.Now().Add(100 * time.Millisecond)
		for w.n.Load() == before && time.Now().Before(deadline) {
			runtime.Gosched()
		}
	}
	nack()
	nack() // within resendGap: ignored
	if got := r.stats.Retransmits.Load(); got != 1 {
		t.Fatalf("%d retransmissions after two quick NACKs, want 1", got)
	}
	for i := 0; i < 4; i++ {
		time.Sleep(resendGap + 10*time.Millisecond)
		nack()
	}
	if got := r.stats.Retransmits.Load(); got != maxResends {
		t.Errorf("%d retransmissions of one packet, want %d", got, maxResends)
	}
}

// A NACK for a packet older than the sent history is not answered: its
// slot now holds a newer packet, which must not go out under the old
// sequence number.
func TestNoResendBeyondHistory(t *testing.T) {
	r := newRig(t, 1)
	for i := 0; i < sentHistory+100; i++ {
		r.sendFrame(i == 0)
		r.wait(uint64(i + 1)) // no queue overflow
	}
	for _, tt := range []struct {
		seq    uint16
		resent bool
	}{{5, false}, {sentHistory + 50, true}} {
		before := r.stats.Retransmits.Load()
		r.downs[0].rtx <- tt.seq
		deadline := time.Now().Add(200 * time.Millisecond)
		for r.stats.Retransmits.Load() == before && time.Now().Before(deadline) {
			runtime.Gosched()
		}
		if got := r.stats.Retransmits.Load() > before; got != tt.resent {
			t.Errorf("NACK for seq %d after %d packets: resent %v, want %v", tt.seq, sentHistory+100, got, tt.resent)
		}
	}
}

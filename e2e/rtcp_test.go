package e2e

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/internal/server"
)

// Test 6a: a subscriber's NACK is answered with the retransmitted packet,
// byte-identical to the original. The server's link to the subscriber loses
// every 25th video packet (the first time it is sent); the subscriber's pion
// NACK generator asks for it and the server resends it from its cache.
func TestNACKIsAnswered(t *testing.T) {
	checkGoroutines(t)
	lossy := &impairFactory{dropEvery: 25}
	lossy.target.Store(1) // the subscriber's PeerConnection
	s := startServer(t, withInterceptor(lossy))
	ctx := testContext(t, 30*time.Second)
	pub := s.join(ctx, "nack", "pub", 0, 1)
	sub := s.join(ctx, "nack", "sub", 0, 0)
	waitFor(t, ctx, "video at the subscriber", func() bool {
		v := videoTrack(sub)
		return v != nil && v.Stats().Packets > 200
	})
	v := videoTrack(sub)
	pub.Leave() // stop the stream; what is missing now stays missing
	time.Sleep(500 * time.Millisecond)
	st := v.Stats()
	dropped := lossy.dropped.Load()
	t.Logf("dropped %d, server got %d NACKs and resent %d; subscriber: %d packets, %d gaps, %d missing",
		dropped, s.Engine.Stats().NACKsReceived.Load(), s.Engine.Stats().Retransmits.Load(), st.Packets, st.SeqGaps, st.Missing)
	if dropped < 5 {
		t.Fatalf("only %d packets dropped: the impairment did not work", dropped)
	}
	if s.Engine.Stats().NACKsReceived.Load() == 0 || s.Engine.Stats().Retransmits.Load() == 0 {
		t.Errorf("no NACK answered")
	}
	if st.Bad != 0 {
		t.Errorf("%d payloads differ from what was sent", st.Bad)
	}
	// Everything but possibly the last loss (whose NACK may not have been
	// sent before the stream ended) was repaired.
	if st.Missing > 1 {
		t.Errorf("%d packets never arrived", st.Missing)
	}
}

// Upstream loss: the publisher's link to the server loses every 25th video
// packet (the first time it is sent). The server's NACK generator asks the
// publisher again, the publisher's pion NACK responder resends, and the
// subscriber ends up with every packet.
func TestUpstreamLossIsRepaired(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 30*time.Second)
	lossy := &impairFactory{dropEvery: 25} // target 0: the publisher's only PeerConnection
	pub := s.joinWith(ctx, client.Config{Room: "up", Name: "pub", Video: 1, Interceptors: []interceptor.Factory{lossy}})
	sub := s.join(ctx, "up", "sub", 0, 0)
	waitFor(t, ctx, "video", func() bool { v := videoTrack(sub); return v != nil && v.Stats().Packets > 200 })
	v := videoTrack(sub)
	pub.Leave()
	time.Sleep(500 * time.Millisecond)
	st := v.Stats()
	t.Logf("dropped upstream %d; server sent %d NACKs; publisher got %d; subscriber: %d packets, %d missing",
		lossy.dropped.Load(), s.Engine.Stats().NACKsSent.Load(), pub.Local()[0].NACKs.Load(), st.Packets, st.Missing)
	if lossy.dropped.Load() < 5 {
		t.Fatalf("impairment did not work")
	}
	if s.Engine.Stats().NACKsSent.Load() == 0 || pub.Local()[0].NACKs.Load() == 0 {
		t.Errorf("no NACK went upstream")
	}
	if st.Missing > 1 || st.Bad != 0 {
		t.Errorf("subscriber: %d missing, %d bad", st.Missing, st.Bad)
	}
}

// 5 % random loss on both legs (publisher to server, server to
// subscriber), retransmissions lost as often as originals: NACKs on both
// legs repair the stream to >= 99.5 % of the video packets, and no packet
// arrives more than 400 ms after a later one did.
func TestLossRepairBothLegs(t *testing.T) {
	checkGoroutines(t)
	down := &impairFactory{lossRate: 0.05, rng: rand.New(rand.NewPCG(1, 2))}
	down.target.Store(1) // the subscriber's PeerConnection
	s := startServer(t, withInterceptor(down))
	ctx := testContext(t, 40*time.Second)
	up := &impairFactory{lossRate: 0.05, rng: rand.New(rand.NewPCG(3, 4))} // target 0: the publisher
	pub := s.joinWith(ctx, client.Config{Room: "lossy", Name: "pub", Video: 1, PacketsPerFrame: 4, Interceptors: []interceptor.Factory{up}})
	sub := s.join(ctx, "lossy", "sub", 0, 0)
	waitFor(t, ctx, "video", func() bool { return videoTrack(sub) != nil })
	v := videoTrack(sub)
	measure(ctx, 5*time.Second)
	sent := pub.Local()[0].Sent.Load()
	pub.Leave()
	time.Sleep(500 * time.Millisecond)
	st := v.Stats()
	span := st.Packets + st.Missing
	ratio := float64(st.Packets) / float64(span)
	t.Logf("publisher sent %d; dropped %d up, %d down; subscriber got %d of %d (%.2f %%), max repair %v; NACKs up %d, down %d, resent %d",
		sent, up.dropped.Load(), down.dropped.Load(), st.Packets, span, 100*ratio, st.MaxRepair,
		s.Engine.Stats().NACKsSent.Load(), s.Engine.Stats().NACKsReceived.Load(), s.Engine.Stats().Retransmits.Load())
	if up.dropped.Load() < 10 || down.dropped.Load() < 10 {
		t.Fatalf("the impairment did not work")
	}
	if ratio < 0.995 {
		t.Errorf("delivered %.2f %% of video packets, want >= 99.5 %%", 100*ratio)
	}
	// pion's NACK generators ask every 100 ms: a packet lost upstream, its
	// retransmission lost too, then lost once downstream takes three rounds,
	// and a loaded CI machine adds its scheduling delay (one run: 310 ms;
	// the same tail before and after the connection-quality changes).
	if st.MaxRepair > 400*time.Millisecond {
		t.Errorf("a packet took %v to be repaired, want <= 400 ms", st.MaxRepair)
	}
	if st.Bad != 0 {
		t.Errorf("%d bad payloads", st.Bad)
	}
}

// Per-subscriber bandwidth estimation: of two subscribers of a simulcast
// video, one behind a 400 kbit/s link, the server's send-side estimate
// (Google congestion control fed by each subscriber's TWCC feedback) falls
// toward the cap for that one and stays high for the other.
func TestBandwidthEstimatePerSubscriber(t *testing.T) {
	checkGoroutines(t)
	link := &impairFactory{}
	link.rate.Store(400_000)
	link.target.Store(1) // the first subscriber's PeerConnection
	s := startServer(t, withInterceptor(link))
	ctx := testContext(t, 40*time.Second)
	s.joinWith(ctx, client.Config{Room: "bwe", Name: "pub", Video: 1, PacketsPerFrame: 5, Simulcast: true})
	capped, free := s.join(ctx, "bwe", "capped", 0, 0), s.join(ctx, "bwe", "free", 0, 0)
	for _, c := range []*client.Client{capped, free} {
		c := c
		waitFor(t, ctx, "video", func() bool { return videoTrack(c) != nil })
	}
	var est []int
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		est = s.Engine.Estimates()
		if len(est) == 2 && min(est[0], est[1]) <= 600_000 && max(est[0], est[1]) >= 800_000 {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("estimates %v after %v; the shaped link dropped %d packets", est, 15*time.Second-time.Until(deadline), link.dropped.Load())
	if len(est) != 2 {
		t.Fatalf("%d estimates, want 2 (one per subscriber)", len(est))
	}
	if lo := min(est[0], est[1]); lo > 600_000 {
		t.Errorf("capped subscriber's estimate %d bit/s, want <= 600k (cap 400k)", lo)
	}
	if hi := max(est[0], est[1]); hi < 800_000 {
		t.Errorf("free subscriber's estimate %d bit/s, want >= 800k", hi)
	}
}

// Congestion control runs only for a subscriber that has a layer to
// choose: receiving plain tracks it has no estimate, and its packets carry
// no transport-wide sequence number (so it sends no TWCC feedback, and the
// server does no GCC work per packet); it gets both while it receives a
// simulcast track, and loses them again when that track is gone.
func TestEstimatorRunsOnlyForSimulcast(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 30*time.Second)
	s.join(ctx, "gate", "plain", 1, 1)
	// The server strips the publisher's header extensions, so an extension
	// on a forwarded packet is the transport-wide sequence number.
	var packets, withTWCC atomic.Int64
	s.joinWith(ctx, client.Config{Room: "gate", Name: "sub", OnPacket: func(_ *client.RemoteTrack, p *rtp.Packet, _ client.Payload, _ error) {
		packets.Add(1)
		if p.Header.Extension {
			withTWCC.Add(1)
		}
	}})
	waitFor(t, ctx, "plain media", func() bool { return packets.Load() > 100 })
	if est := s.Engine.Estimates(); len(est) != 0 {
		t.Errorf("estimates %v with plain tracks only, want none", est)
	}
	if n := withTWCC.Load(); n != 0 {
		t.Errorf("%d of %d plain packets carry a transport-wide sequence number", n, packets.Load())
	}
	sc := s.joinWith(ctx, client.Config{Room: "gate", Name: "simulcast", Video: 1, Simulcast: true})
	waitFor(t, ctx, "an estimate for both subscribers of the simulcast track", func() bool {
		est := s.Engine.Estimates()
		return len(est) == 2
	})
	waitFor(t, ctx, "transport-wide sequence numbers", func() bool { return withTWCC.Load() > 100 })
	sc.Leave()
	waitFor(t, ctx, "no estimate once the simulcast track is gone", func() bool { return len(s.Engine.Estimates()) == 0 })
	time.Sleep(200 * time.Millisecond) // packets already on the way
	before, total := withTWCC.Load(), packets.Load()
	waitFor(t, ctx, "more plain media", func() bool { return packets.Load() > total+100 })
	if n := withTWCC.Load() - before; n != 0 {
		t.Errorf("%d packets still carry a transport-wide sequence number after the simulcast track left", n)
	}
}

// Test 6b: a storm of PLIs from subscribers reaches the publisher as at most
// two keyframe requests per second.
func TestPLIStormIsThrottled(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 30*time.Second)
	pub := s.join(ctx, "pli", "pub", 0, 1)
	subs := []*client.Client{s.join(ctx, "pli", "s1", 0, 0), s.join(ctx, "pli", "s2", 0, 0)}
	for _, sub := range subs {
		sub := sub
		waitFor(t, ctx, "video", func() bool { v := videoTrack(sub); return v != nil && v.Stats().Keyframes > 0 })
	}
	time.Sleep(600 * time.Millisecond) // the joins' own requests are over
	lt := pub.Local()[0]
	before := lt.PLIsReceived.Load()
	srvBefore := s.Engine.Stats().KeyframesSent.Load()
	defer func() { t.Logf("server sent %d keyframe requests", s.Engine.Stats().KeyframesSent.Load()-srvBefore) }()
	const storm = 3 * time.Second
	end := time.Now().Add(storm)
	sent := 0
	for time.Now().Before(end) {
		for _, sub := range subs {
			pli := &rtcp.PictureLossIndication{MediaSSRC: videoTrack(sub).SSRC}
			if err := sub.WriteRTCP([]rtcp.Packet{pli}); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(600 * time.Millisecond) // a deferred request may still come
	got := lt.PLIsReceived.Load() - before
	times := lt.PLITimes()[before:]
	t.Logf("%d PLIs sent by subscribers in %v, %d reached the publisher", sent, storm, got)
	// One at the start, then one per 500 ms (the last one deferred).
	if max := uint64(2*storm/time.Second) + 1; got > max || got < 4 {
		t.Errorf("publisher got %d keyframe requests, want 4..%d", got, max)
	}
	// At most two per second: consecutive requests are >= 500 ms apart
	// (less 50 ms for loopback and scheduling jitter).
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < 450*time.Millisecond {
			t.Errorf("keyframe requests %d and %d only %v apart", i-1, i, gap)
		}
	}
}

// impairFactory builds interceptors that impair the RTP a selected
// PeerConnection sends (selected by creation order): each write sleeps for
// delay, and every dropEvery-th packet is dropped the first time it is sent.
type impairFactory struct {
	target    atomic.Int32
	count     atomic.Int32
	delay     time.Duration
	dropEvery int
	// lossRate drops that share of video packets at random, retransmissions
	// included (a lossy link), instead of dropEvery.
	lossRate float64
	// rate shapes the link to this many bits per second (all streams of the
	// PeerConnection share it; 0 lifts the cap); packets that would wait
	// over 300 ms drop.
	rate     atomic.Int64
	linkMu   sync.Mutex
	linkNext time.Time
	rng      *rand.Rand
	rngMu    sync.Mutex
	dropped  atomic.Int64
	offered  atomic.Int64 // bytes the server wrote to the shaped link (RTP header and payload)
}

func withInterceptor(f interceptor.Factory) serverOpt {
	return func(_ *server.Config, extra *[]interceptor.Factory) { *extra = append(*extra, f) }
}

func (f *impairFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	n := f.count.Add(1) - 1
	return &impairInterceptor{f: f, on: n == f.target.Load()}, nil
}

type impairInterceptor struct {
	interceptor.NoOp
	f    *impairFactory
	on   bool
	link delayLine // the shaped link
}

// delayLine is a link that delivers each write at its time, in order, on
// one goroutine (started by the first push, ended by close), and never
// makes the sender wait: a full queue loses the write.
type delayLine struct {
	once   sync.Once
	queue  chan delayed
	closed chan struct{}
	done   chan struct{}
}

type delayed struct {
	at    time.Time
	write func()
}

// push queues write for at, and reports false when the queue is full.
func (l *delayLine) push(at time.Time, write func()) bool {
	l.once.Do(func() {
		l.queue, l.closed, l.done = make(chan delayed, 4096), make(chan struct{}), make(chan struct{})
		go func() {
			defer close(l.done)
			for {
				select {
				case <-l.closed:
					return
				case d := <-l.queue:
					if w := time.Until(d.at); w > 0 {
						select {
						case <-time.After(w):
						case <-l.closed:
							return
						}
					}
					d.write()
				}
			}
		}()
	})
	select {
	case l.queue <- delayed{at: at, write: write}:
		return true
	default:
		return false
	}
}

// close stops the goroutine, dropping what is queued.
func (l *delayLine) close() {
	if l.closed != nil {
		close(l.closed)
		<-l.done
	}
}

// send puts a copy of the packet on the shaped link: it leaves at the
// link's rate, after the packets before it, like a bottleneck queue (the
// sender does not wait). Packets that would wait over 300 ms are dropped.
func (i *impairInterceptor) send(w interceptor.RTPWriter, h *rtp.Header, p []byte) {
	i.f.offered.Add(int64(h.MarshalSize() + len(p)))
	now := time.Now()
	i.f.linkMu.Lock()
	if i.f.linkNext.Before(now) {
		i.f.linkNext = now
	}
	if i.f.linkNext.Sub(now) > 300*time.Millisecond {
		i.f.linkMu.Unlock()
		i.f.dropped.Add(1)
		return
	}
	i.f.linkNext = i.f.linkNext.Add(time.Duration(int64(12+len(p)) * 8 * int64(time.Second) / max(1, i.f.rate.Load())))
	at := i.f.linkNext
	i.f.linkMu.Unlock()
	hc, pc := h.Clone(), append([]byte(nil), p...)
	if !i.link.push(at, func() { _, _ = w.Write(&hc, pc, nil) }) {
		i.f.dropped.Add(1)
	}
}

func (i *impairInterceptor) Close() error {
	i.link.close()
	return nil
}

func (i *impairInterceptor) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	if !i.on {
		return w
	}
	var mu sync.Mutex
	seen := map[uint16]bool{}
	n := 0
	video := strings.HasPrefix(info.MimeType, "video/")
	return interceptor.RTPWriterFunc(func(h *rtp.Header, p []byte, a interceptor.Attributes) (int, error) {
		if i.f.delay > 0 {
			time.Sleep(i.f.delay)
		}
		if i.f.rate.Load() > 0 {
			i.send(w, h, p)
			return len(p), nil
		}
		if i.f.lossRate > 0 && video {
			i.f.rngMu.Lock()
			drop := i.f.rng.Float64() < i.f.lossRate
			i.f.rngMu.Unlock()
			if drop {
				i.f.dropped.Add(1)
				return len(p), nil
			}
		}
		if i.f.dropEvery > 0 && video {
			mu.Lock()
			first := !seen[h.SequenceNumber]
			seen[h.SequenceNumber] = true
			n++
			drop := first && n%i.f.dropEvery == 0
			mu.Unlock()
			if drop {
				i.f.dropped.Add(1)
				return len(p), nil
			}
		}
		return w.Write(h, p, a)
	})
}

// Test 7: a subscriber whose link takes 40 ms per packet (25 packets/s, a
// sixth of the publisher's 150) does not reduce what the other subscribers
// receive, and does not slow the publisher.
func TestSlowSubscriberDoesNotHurtOthers(t *testing.T) {
	checkGoroutines(t)
	slow := &impairFactory{delay: 40 * time.Millisecond}
	slow.target.Store(1) // the second PeerConnection: the first subscriber
	s := startServer(t, withInterceptor(slow))
	ctx := testContext(t, 40*time.Second)
	pub := s.joinWith(ctx, client.Config{Room: "slow", Name: "pub", Video: 1, PacketsPerFrame: 5})
	slowSub := s.join(ctx, "slow", "slow", 0, 0)
	fast := []*client.Client{s.join(ctx, "slow", "f1", 0, 0), s.join(ctx, "slow", "f2", 0, 0)}
	for _, c := range append(fast, slowSub) {
		c := c
		waitFor(t, ctx, "video", func() bool { v := videoTrack(c); return v != nil && v.Stats().Packets > 0 })
	}
	lt := pub.Local()[0]
	sentBefore := lt.Sent.Load()
	fastBefore := []int{videoTrack(fast[0]).Stats().Packets, videoTrack(fast[1]).Stats().Packets}
	slowBefore := videoTrack(slowSub).Stats().Packets
	measure(ctx, 4*time.Second)
	sent := int(lt.Sent.Load() - sentBefore)
	time.Sleep(300 * time.Millisecond) // in flight
	for i, c := range fast {
		got := videoTrack(c).Stats().Packets - fastBefore[i]
		t.Logf("fast subscriber %d: %d of %d packets", i, got, sent)
		if float64(got) < 0.99*float64(sent) {
			t.Errorf("fast subscriber %d received %d of %d packets", i, got, sent)
		}
	}
	slowGot := videoTrack(slowSub).Stats().Packets - slowBefore
	t.Logf("slow subscriber: %d of %d packets; server dropped %d (queue full) + %d (rest of frame)",
		slowGot, sent, s.Engine.Stats().Dropped[0].Load(), s.Engine.Stats().Dropped[1].Load())
	if slowGot >= sent/2 {
		t.Errorf("slow subscriber received %d of %d packets: the impairment did not work", slowGot, sent)
	}
	if s.Engine.Stats().Dropped[0].Load() == 0 {
		t.Errorf("no queue_full drops counted")
	}
	// The publisher kept its pace: 30 fps x 5 packets (more on keyframes).
	if sent < 500 {
		t.Errorf("publisher sent only %d packets in 4s", sent)
	}
	if st := videoTrack(slowSub).Stats(); st.Bad != 0 || st.SeqGaps > st.Packets/2 {
		t.Errorf("slow subscriber: %d bad payloads, %d sequence gaps", st.Bad, st.SeqGaps)
	}
}

func measure(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// A subscriber without TWCC feedback that sends REMB gets its REMB as the
// server's bandwidth estimate.
func TestREMBFallback(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 20*time.Second)
	s.join(ctx, "remb", "pub", 0, 1)
	sub := s.joinWith(ctx, client.Config{Room: "remb", Name: "sub", NoTWCC: true})
	waitFor(t, ctx, "video", func() bool { return videoTrack(sub) != nil })
	v := videoTrack(sub)
	remb := &rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: 321_000, SSRCs: []uint32{v.SSRC}}
	waitFor(t, ctx, "the REMB as the estimate", func() bool {
		if err := sub.WriteRTCP([]rtcp.Packet{remb}); err != nil {
			t.Fatal(err)
		}
		est := s.Engine.Estimates()
		return len(est) == 1 && est[0] == 321_000
	})
}

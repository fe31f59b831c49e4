package e2e

import (
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/roundtable-sfu/roundtable/internal/auth"
	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/room"
	"github.com/roundtable-sfu/roundtable/webhook"
)

// lossyLink drops a share of every RTP packet (audio and video,
// retransmissions included) that the PeerConnection it is installed on
// sends, and delays what it sends, RTCP too: a lossy, slow network leg.
// On a server, only the target-th PeerConnection it builds (creation
// order) is impaired.
type lossyLink struct {
	rate   float64
	delay  time.Duration
	target int32 // server side: which PeerConnection; -1 every one (client side)
	count  atomic.Int32
	// spare: the first packets of each stream are never dropped (a
	// publisher that cannot answer a keyframe request keeps its first
	// keyframe: nobody can NACK a packet before the first that arrived).
	spare int

	mu      sync.Mutex
	rng     *rand.Rand
	sent    atomic.Int64
	dropped atomic.Int64
}

func (f *lossyLink) NewInterceptor(string) (interceptor.Interceptor, error) {
	n := f.count.Add(1) - 1
	return &lossyInterceptor{f: f, on: f.target < 0 || n == f.target}, nil
}

// ratio is the share of packets dropped so far.
func (f *lossyLink) ratio() float64 {
	d, s := f.dropped.Load(), f.sent.Load()
	if d+s == 0 {
		return 0
	}
	return float64(d) / float64(d+s)
}

type lossyInterceptor struct {
	interceptor.NoOp
	f    *lossyLink
	on   bool
	link delayLine // a slow link, not a reordering one
}

// later runs write after the link's delay (at once without one), in the
// order written; a full link loses it.
func (i *lossyInterceptor) later(write func()) {
	if i.f.delay == 0 {
		write()
		return
	}
	i.link.push(time.Now().Add(i.f.delay), write)
}

func (i *lossyInterceptor) Close() error {
	i.link.close()
	return nil
}

func (i *lossyInterceptor) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	if !i.on || i.f.delay == 0 {
		return w
	}
	return interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, a interceptor.Attributes) (int, error) {
		i.later(func() { _, _ = w.Write(pkts, a) })
		return 0, nil
	})
}

func (i *lossyInterceptor) BindLocalStream(_ *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	if !i.on {
		return w
	}
	sent := 0 // this stream's packets so far
	return interceptor.RTPWriterFunc(func(h *rtp.Header, p []byte, a interceptor.Attributes) (int, error) {
		i.f.mu.Lock()
		drop := i.f.rng.Float64() < i.f.rate && sent >= i.f.spare
		sent++
		i.f.mu.Unlock()
		if drop {
			i.f.dropped.Add(1)
			return len(p), nil
		}
		i.f.sent.Add(1)
		if i.f.delay == 0 {
			return w.Write(h, p, a)
		}
		hc, pc := h.Clone(), append([]byte(nil), p...)
		i.later(func() { _, _ = w.Write(&hc, pc, a) })
		return len(p), nil
	})
}

// Connection quality: Ann and Cat on clean links are excellent; Bob joins
// over a leg that loses 15 % of his packets each way and delays them by
// 150 ms (not 10 %: measured over a 3 s window that sits too near the 8 %
// poor threshold, and the CDR's seconds at poor became a coin toss). Bob goes below good within 5 s of connecting while Ann and Cat
// stay excellent throughout (as Ann's connection-quality events tell), the
// admin view shows his round trip, and Bob's call-detail record (the
// participant_left webhook) gives loss within 2 percentage points of what
// the legs dropped.
func TestConnectionQualityUnderLoss(t *testing.T) {
	checkGoroutines(t)
	const rate, delay = 0.15, 150 * time.Millisecond
	down := &lossyLink{rate: rate, delay: delay, target: 2, rng: rand.New(rand.NewPCG(5, 6))} // Bob's is the third PeerConnection
	up := &lossyLink{rate: rate, delay: delay, target: -1, rng: rand.New(rand.NewPCG(7, 8))}
	hooks := &hookReceiver{t: t, secret: testKeys.Secret}
	hookSrv := httptest.NewServer(hooks)
	defer hookSrv.Close()
	s := startServer(t, withInterceptor(down), withKeys(testKeys), withWebhooks(256, 10*time.Second, hookSrv.URL))
	ctx := testContext(t, 60*time.Second)
	join := func(name string, extra ...interceptor.Factory) *client.Client {
		return s.joinWith(ctx, client.Config{Room: "q", Name: name, Audio: 1, Video: 1, Interceptors: extra,
			Token: mint(t, testKeys, auth.Token{Room: "q", Identity: name, TTL: time.Hour, Grants: auth.All}, time.Now())})
	}
	ann := join("ann")
	cat := join("cat")
	level := func(c *client.Client, id string) string {
		q, ok := c.Quality(id)
		if !ok {
			return ""
		}
		return worse(q.Up, q.Down)
	}
	waitFor(t, ctx, "Ann and Cat excellent", func() bool {
		return level(ann, ann.ID) == "excellent" && level(ann, cat.ID) == "excellent" && level(cat, ann.ID) == "excellent"
	})

	bob := join("bob", up)
	waitFor(t, ctx, "Bob connected", bob.Connected)
	connected := time.Now()
	waitFor(t, ctx, "Bob below good at Ann", func() bool {
		q, ok := ann.Quality(bob.ID)
		return ok && q.Up == "poor" && q.Down == "poor"
	})
	if d := time.Since(connected); d > 5*time.Second {
		t.Errorf("Bob went below good %v after connecting, want within 5 s", d.Round(time.Millisecond))
	}
	var members []room.MemberInfo
	waitFor(t, ctx, "every RTT measured", func() bool {
		_, members, _ = s.Rooms.Room("q")
		return !slices.ContainsFunc(members, func(m room.MemberInfo) bool { return m.Quality == nil || m.Quality.RTT == 0 })
	})
	for _, m := range members {
		t.Logf("admin view: %s up %s down %s, rtt %v, loss up %.1f %% down %.1f %%", m.Name, m.Quality.Up,
			m.Quality.Down, m.Quality.RTT, m.Quality.LossUp, m.Quality.LossDown)
		slow := m.Name == "bob"
		if got := m.Quality.RTT; slow && (got < 2*delay || got > 2*delay+200*time.Millisecond) || !slow && got > 100*time.Millisecond {
			t.Errorf("admin view: %s's RTT %v (Bob's legs add %v each way)", m.Name, got, delay)
		}
	}
	measure(ctx, 8*time.Second) // the CDR's loss over a fair sample
	bob.Leave()
	waitFor(t, ctx, "Bob's participant_left", func() bool { return cdrOf(hooks, bob.ID) != nil })

	// Ann and Cat stayed excellent in every event Ann got since.
	for _, e := range ann.QualityLog() {
		if (e.ID == ann.ID || e.ID == cat.ID) && (e.Up != "excellent" || e.Down != "excellent") {
			t.Errorf("%s was %s/%s at %v", e.ID, e.Up, e.Down, e.At.Format("15:04:05.000"))
		}
	}
	cdr := cdrOf(hooks, bob.ID)
	t.Logf("Bob's CDR: %+v; legs dropped %.2f %% up, %.2f %% down", *cdr, 100*up.ratio(), 100*down.ratio())
	for _, c := range []struct {
		dir  string
		link *lossyLink
	}{{"upstream", up}, {"downstream", down}} {
		got, want := cdr.Loss[c.dir].MeanPercent, 100*c.link.ratio()
		if c.link.dropped.Load() < 50 {
			t.Fatalf("%s leg dropped only %d packets: the impairment did not work", c.dir, c.link.dropped.Load())
		}
		if math.Abs(got-want) > 2 {
			t.Errorf("CDR %s loss %.2f %%, the leg dropped %.2f %%: want within 2 points", c.dir, got, want)
		}
		if cdr.Loss[c.dir].WorstPercent < got {
			t.Errorf("CDR %s worst loss %.2f %% below the mean %.2f %%", c.dir, cdr.Loss[c.dir].WorstPercent, got)
		}
		if poor := cdr.QualitySeconds[c.dir]["poor"]; poor < 5 {
			t.Errorf("CDR: %d s poor %s, want most of the call", poor, c.dir)
		}
	}
	if cdr.Path != "udp" || cdr.BytesUp == 0 || cdr.BytesDown == 0 || cdr.DurationSeconds < 8 {
		t.Errorf("CDR path %q, bytes up %d down %d, duration %.1f s", cdr.Path, cdr.BytesUp, cdr.BytesDown, cdr.DurationSeconds)
	}
	ann.Leave()
	cat.Leave()
}

// worse is the worse of two quality levels.
func worse(a, b string) string {
	rank := map[string]int{"excellent": 0, "good": 1, "poor": 2, "lost": 3}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// cdrOf returns the call-detail record of participant id's
// participant_left webhook, nil before it came.
func cdrOf(h *hookReceiver, id string) *webhook.BodyCDR {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.events {
		if e.Event == "participant_left" && e.Participant != nil && e.Participant.ID == id {
			return e.CDR
		}
	}
	return nil
}

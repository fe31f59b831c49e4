package load

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestDedup(t *testing.T) {
	var d dedup
	steps := []struct {
		seq   uint16
		first bool
	}{
		{65530, true}, {65531, true}, {65531, false}, // a retransmission of one that arrived
		{65533, true}, {65532, true}, {65532, false}, // reordered, then repeated
		{2, true}, {65535, true}, {0, true}, {1, true}, // across the wrap, late ones
		{2, false},
		{3000, true}, {2000, true}, // jump forward; 1,000 back is still in the window
		{1000, false}, // over 1,024 back: treated as a duplicate
		{2000, false},
	}
	for i, s := range steps {
		if got := d.first(s.seq); got != s.first {
			t.Errorf("step %d: first(%d) = %v, want %v", i, s.seq, got, s.first)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	if h.quantile(0.5) != 0 {
		t.Errorf("empty histogram quantile %v", h.quantile(0.5))
	}
	for i := 1; i <= 100; i++ { // 1 ms ... 100 ms
		h.add(time.Duration(i) * time.Millisecond)
	}
	h.add(-time.Millisecond) // clock skew counts as 0
	h.add(time.Minute)       // beyond the last bucket
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 51_050 * time.Microsecond}, {0.99, 110 * time.Millisecond}, {1, 10 * time.Second}} {
		if got := h.quantile(tt.q); got != tt.want {
			t.Errorf("quantile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
}

func TestMetricsURLAndScrape(t *testing.T) {
	for ws, want := range map[string]string{
		"ws://127.0.0.1:8080/ws":       "http://127.0.0.1:8080/metrics",
		"wss://sfu.example.org/ws?x=1": "https://sfu.example.org/metrics",
	} {
		if got, err := metricsURLFor(ws); err != nil || got != want {
			t.Errorf("metricsURLFor(%q) = %q, %v; want %q", ws, got, err, want)
		}
	}
	if _, err := metricsURLFor("http://x/ws"); err == nil {
		t.Errorf("http URL accepted")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("# HELP x y\n# TYPE x counter\n" +
			"roundtable_rtp_packets_sent_total{kind=\"audio\"} 10\n" +
			"roundtable_rtp_packets_sent_total{kind=\"video\"} 32.5\n" +
			"process_cpu_seconds_total 1.25\nbroken\n"))
	}))
	defer srv.Close()
	s, err := scrape(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if s.sum("roundtable_rtp_packets_sent_total") != 42.5 || s.sum("process_cpu_seconds_total") != 1.25 {
		t.Errorf("scraped %v", s)
	}
}

func TestPlan(t *testing.T) {
	tests := []struct {
		cfg  Config
		n    int
		fail bool
	}{
		{Config{Scenario: "fanout", Publishers: 2, Subscribers: 100}, 102, false},
		{Config{Scenario: "audio", Publishers: 3, Subscribers: 10}, 13, false},
		{Config{Scenario: "room", Size: 4}, 4, false},
		{Config{Scenario: "rooms", Size: 5, Rooms: 3}, 15, false},
		{Config{Scenario: "fanout", Publishers: 0, Subscribers: 10}, 0, true},
		{Config{Scenario: "rooms", Size: 10, Rooms: 200}, 0, true}, // over MaxParticipants
		{Config{Scenario: "mesh"}, 0, true},
	}
	for _, tt := range tests {
		ms, err := tt.cfg.plan()
		if (err != nil) != tt.fail || len(ms) != tt.n {
			t.Errorf("%+v: %d members, err %v", tt.cfg, len(ms), err)
		}
	}
	ms, _ := (&Config{Scenario: "audio", Publishers: 1, Subscribers: 1}).plan()
	if ms[0].video != 0 || ms[0].audio != 1 || ms[1].audio != 0 {
		t.Errorf("audio scenario members %+v", ms)
	}
}

// Run refuses what would be unbounded before it connects anywhere.
func TestRunBounds(t *testing.T) {
	for _, cfg := range []Config{
		{Scenario: "room", Size: 2, Duration: time.Hour},
		{Scenario: "room", Size: 2, PacketSize: 5000},
		{Scenario: "room", Size: 2, URL: "http://127.0.0.1:1/ws"},
	} {
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

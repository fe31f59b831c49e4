package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func scrape(t *testing.T, s *testServer) string {
	t.Helper()
	resp, err := http.Get("http://" + s.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// metricValue returns the value of the sample whose name and labels are
// exactly series, e.g. `roundtable_rtp_packets_sent_total{kind="video"}`.
func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no sample %s", series)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The /metrics page passes `promtool check metrics`, counts real traffic,
// and has no label value that names a room or participant.
func TestMetrics(t *testing.T) {
	checkGoroutines(t)
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("RT_REQUIRE_TOOLS") != "" {
			t.Fatal("promtool not installed (scripts/test.sh installs the prometheus package)")
		}
		t.Skip("promtool not installed; run scripts/test.sh")
	}
	s := startServer(t)
	ctx := testContext(t, 30*time.Second)
	a, b := s.join(ctx, "metrics-room", "a", 1, 1), s.join(ctx, "metrics-room", "b", 1, 1)
	waitFor(t, ctx, "media both ways", func() bool {
		return len(a.ActiveRemote()) == 2 && len(b.ActiveRemote()) == 2 &&
			videoTrack(a).Stats().Packets > 20 && videoTrack(b).Stats().Packets > 20
	})
	if err := a.WaitDataChannel(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	_ = a.SendText("hi")
	waitFor(t, ctx, "data", func() bool { return len(b.Data()) == 1 })

	text := scrape(t, s)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	for series, min := range map[string]float64{
		`roundtable_rooms`:                                          1,
		`roundtable_participants`:                                   2,
		`roundtable_published_tracks{kind="video"}`:                 2,
		`roundtable_subscriptions`:                                  4,
		`roundtable_rtp_packets_received_total{kind="video"}`:       40,
		`roundtable_rtp_packets_sent_total{kind="audio"}`:           10,
		`roundtable_rtp_sent_bytes_total{kind="video"}`:             10000,
		`roundtable_data_messages_received_total`:                   1,
		`roundtable_data_messages_sent_total`:                       1,
		`roundtable_signaling_messages_received_total{type="join"}`: 2,
		`roundtable_signaling_messages_sent_total{type="offer"}`:    2,
		`roundtable_join_duration_seconds_count{path="udp"}`:        2,
		`roundtable_ice_connected_total{path="udp"}`:                2,
		`roundtable_keyframe_requests_sent_total`:                   1,
		`go_goroutines`:                 1,
		`process_resident_memory_bytes`: 1,
	} {
		if v := metricValue(t, text, series); v < min {
			t.Errorf("%s = %v, want >= %v", series, v, min)
		}
	}
	for _, forbidden := range []string{a.ID, b.ID, "metrics-room"} {
		if strings.Contains(text, forbidden) {
			t.Errorf("/metrics mentions %q: labels must not grow with rooms or participants", forbidden)
		}
	}
	a.Leave()
	b.Leave()
	waitFor(t, ctx, "gauges back to zero", func() bool {
		text := scrape(t, s)
		return metricValue(t, text, "roundtable_participants") == 0 &&
			metricValue(t, text, "roundtable_rooms") == 0 &&
			metricValue(t, text, "roundtable_subscriptions") == 0 &&
			metricValue(t, text, "roundtable_peer_connections") == 0
	})
}

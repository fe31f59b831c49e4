package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/interceptor"
	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/internal/testcluster"
)

// The Grafana dashboard against the real thing: Debian's Prometheus scrapes
// a server carrying a small load (three participants, one publishing
// simulcast and one on a lossy link, data messages, a signaling error,
// webhooks), a node of a one-node cluster on a real Redis (so that the
// cluster's series exist), and every query of every panel returns data,
// numbers that are not NaN, so no panel names a metric or label that does not exist. The
// same Prometheus loads the alert rules and evaluates them without error,
// and every metric they name exists.
func TestDashboardQueriesReturnData(t *testing.T) {
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("RT_REQUIRE_TOOLS") != "" {
			t.Fatal("prometheus not installed (scripts/test.sh installs the prometheus package)")
		}
		t.Skip("prometheus not installed; run scripts/test.sh")
	}
	checkGoroutines(t)
	hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer hooks.Close()
	rd := testcluster.StartRedis(t)
	s := startServer(t, withWebhooks(64, time.Second, hooks.URL), withCluster(rd.URL(), "dash"))
	ctx := testContext(t, 90*time.Second)

	promURL := startPrometheus(t, prom, s.Addr().String())
	// The joins come after the first scrape, so that the rates see them.
	waitFor(t, ctx, "Prometheus's first scrape", func() bool {
		v, ok := promScalar(t, promURL, `up{job="roundtable"}`)
		return ok && v == 1
	})

	lossy := &lossyLink{rate: 0.05, target: -1, rng: rand.New(rand.NewPCG(9, 10))}
	a := s.joinWith(ctx, client.Config{Room: "dash", Name: "a", Audio: 1, Video: 1, Simulcast: true})
	b := s.joinWith(ctx, client.Config{Room: "dash", Name: "b", Audio: 1, Video: 1, Interceptors: []interceptor.Factory{lossy}})
	c := s.join(ctx, "dash", "c", 1, 0)
	for _, cl := range []*client.Client{a, b, c} {
		waitFor(t, ctx, "connected", cl.Connected)
	}
	if err := a.WaitDataChannel(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := a.SendText("hello"); err != nil {
		t.Fatal(err)
	}
	if err := c.SendRaw(websocket.TextMessage, []byte("{")); err != nil { // bad_json
		t.Fatal(err)
	}

	// Rates need two scrapes in their window, and the quality loop a few
	// seconds of samples.
	waitFor(t, ctx, "Prometheus has scraped the load", func() bool {
		scrapes, ok := promScalar(t, promURL, `count_over_time(up{job="roundtable"}[1m])`)
		seconds, ok2 := promScalar(t, promURL, `sum(roundtable_quality_seconds_total{job="roundtable"})`)
		return ok && ok2 && scrapes >= 8 && seconds >= 15
	})

	var dash struct {
		Panels []struct {
			Type, Title string
			Targets     []struct{ Expr, RefID string }
		}
	}
	raw, err := os.ReadFile("../deploy/grafana/roundtable.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	vars := strings.NewReplacer("$__rate_interval", "1m", "$job", "roundtable", "$instance", ".*")
	queries := 0
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			queries++
			expr := vars.Replace(tg.Expr)
			n, values, err := promQuery(promURL, expr)
			switch {
			case err != nil:
				t.Errorf("panel %q, query %s: %v", p.Title, tg.RefID, err)
			case n == 0:
				t.Errorf("panel %q, query %s returns no series: %s", p.Title, tg.RefID, expr)
			case !slices.ContainsFunc(values, func(v float64) bool { return !math.IsNaN(v) }):
				t.Errorf("panel %q, query %s returns only NaN: %s", p.Title, tg.RefID, expr)
			}
		}
	}
	t.Logf("%d panels, %d queries checked", len(dash.Panels), queries)

	// The alert rules: loaded, evaluated without error, and every metric
	// they name is one the server exports.
	var rules struct {
		Data struct {
			Groups []struct {
				Rules []struct{ Name, Health, LastError, Query string }
			}
		}
	}
	waitFor(t, ctx, "the alert rules evaluated", func() bool {
		if err := promGet(promURL+"/api/v1/rules", &rules); err != nil || len(rules.Data.Groups) == 0 {
			return false
		}
		for _, r := range rules.Data.Groups[0].Rules {
			if r.Health == "unknown" {
				return false
			}
		}
		return true
	})
	names := promMetricNames(t, promURL)
	metric := regexp.MustCompile(`\b(roundtable_[a-z_]+|process_[a-z_]+|go_[a-z_]+|up)\b`)
	count := 0
	for _, r := range rules.Data.Groups[0].Rules {
		count++
		if r.Health != "ok" {
			t.Errorf("alert %s: health %s: %s", r.Name, r.Health, r.LastError)
		}
		for _, m := range metric.FindAllString(r.Query, -1) {
			if !names[m] {
				t.Errorf("alert %s names %s, which the server does not export", r.Name, m)
			}
		}
	}
	if count < 4 {
		t.Errorf("%d alert rules loaded, want the file's", count)
	}
	for _, cl := range []*client.Client{a, b, c} {
		cl.Leave()
	}
}

// startPrometheus runs Prometheus scraping target every second, with the
// repository's alert rules, until the test ends; it returns its base URL.
func startPrometheus(t *testing.T, bin, target string) string {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs("../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: roundtable
    static_configs:
      - targets: [%q]
`, rules, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready at %s: %v\n%s", base, err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// promGet fetches a Prometheus API URL into v.
func promGet(u string, v any) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// promQuery runs an instant query and returns how many series it gave and
// their values.
func promQuery(base, expr string) (int, []float64, error) {
	var r struct {
		Status, Error string
		Data          struct {
			ResultType string
			Result     []struct {
				Value [2]any
			}
		}
	}
	if err := promGet(base+"/api/v1/query?query="+url.QueryEscape(expr), &r); err != nil {
		return 0, nil, err
	}
	if r.Status != "success" {
		return 0, nil, fmt.Errorf("%s", r.Error)
	}
	var values []float64
	for _, s := range r.Data.Result {
		str, _ := s.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return 0, nil, fmt.Errorf("value %v: %w", s.Value[1], err)
		}
		values = append(values, v)
	}
	return len(r.Data.Result), values, nil
}

// promScalar runs a query expected to give one series.
func promScalar(t *testing.T, base, expr string) (float64, bool) {
	n, v, err := promQuery(base, expr)
	if err != nil || n != 1 {
		return 0, false
	}
	return v[0], true
}

// promMetricNames returns the metric names Prometheus holds.
func promMetricNames(t *testing.T, base string) map[string]bool {
	t.Helper()
	var r struct{ Data []string }
	if err := promGet(base+"/api/v1/label/__name__/values", &r); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, n := range r.Data {
		names[n] = true
	}
	return names
}

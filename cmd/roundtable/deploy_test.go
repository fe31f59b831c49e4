package main

// The packaging in deploy/ and the Dockerfile, checked as far as a machine
// without a container runtime allows: the Dockerfile's build command makes
// a static binary and its final stage runs as non-root; the systemd unit
// passes systemd-analyze verify; Prometheus takes the scrape config; the
// compose file names the three services and the media ports.

import (
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("RT_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s not installed (scripts/test.sh installs it)", name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

func TestDockerfileBuildsAStaticNonRootImage(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	run := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 go build .*)$`).FindStringSubmatch(text)
	if run == nil {
		t.Fatal("no `RUN CGO_ENABLED=0 go build` line")
	}
	out := filepath.Join(t.TempDir(), "roundtable")
	cmdline := strings.Replace(strings.Replace(run[1], "/out/roundtable", out, 1), "./cmd/roundtable", ".", 1)
	cmd := exec.Command("sh", "-c", cmdline)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmdline, err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has an ELF interpreter: not static, it would not run FROM scratch")
		}
	}
	final := text[strings.LastIndex(text, "\nFROM "):]
	user := regexp.MustCompile(`(?m)^USER (\S+)`).FindStringSubmatch(final)
	if user == nil || strings.HasPrefix(user[1], "0") || strings.HasPrefix(user[1], "root") {
		t.Errorf("final stage user %v: want a non-root one", user)
	}
}

func TestSystemdUnitVerifies(t *testing.T) {
	analyze := requireTool(t, "systemd-analyze")
	unit, err := os.ReadFile("../../deploy/systemd/roundtable.service")
	if err != nil {
		t.Fatal(err)
	}
	// verify wants ExecStart's binary to exist: this test's own.
	self, _ := os.Executable()
	dir := t.TempDir()
	path := filepath.Join(dir, "roundtable.service")
	text := strings.Replace(string(unit), "ExecStart=/usr/local/bin/roundtable", "ExecStart="+self, 1)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	// Warnings about the host's own units are not this test's business.
	if out, err := exec.Command(analyze, "verify", path).CombinedOutput(); err != nil || strings.Contains(string(out), "roundtable.service") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, want := range []string{"DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"} {
		if !strings.Contains(text, want) {
			t.Errorf("unit lacks %s", want)
		}
	}
}

func TestComposeAndScrapeConfig(t *testing.T) {
	promtool := requireTool(t, "promtool")
	if out, err := exec.Command(promtool, "check", "config", "--syntax-only", "../../deploy/prometheus/prometheus.yml").CombinedOutput(); err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
	// The alert rules are valid and fire when, and only when, they should
	// (alerts_test.yml feeds them series and names the alerts expected).
	if out, err := exec.Command(promtool, "check", "rules", "../../deploy/prometheus/alerts.yml").CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
	test := exec.Command(promtool, "test", "rules", "alerts_test.yml")
	test.Dir = "../../deploy/prometheus"
	if out, err := test.CombinedOutput(); err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
	b, err := os.ReadFile("../../deploy/compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Build   string
			Image   string
			Ports   []string
			Volumes []string
		}
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	rt, ok := compose.Services["roundtable"]
	if !ok || rt.Build != ".." || compose.Services["prometheus"].Image == "" || compose.Services["grafana"].Image == "" {
		t.Fatalf("services: %+v", compose.Services)
	}
	for _, port := range []string{"8080:8080", "7882:7882/udp", "7881:7881", "3478:3478/udp"} {
		if !slices.Contains(rt.Ports, port) {
			t.Errorf("roundtable publishes %v, want %s among them", rt.Ports, port)
		}
	}
	mounted := map[string]string{} // target -> source
	for _, svc := range []string{"prometheus", "grafana"} {
		for _, v := range compose.Services[svc].Volumes {
			src, rest, _ := strings.Cut(v, ":")
			target, _, _ := strings.Cut(rest, ":")
			mounted[target] = src
			if _, err := os.Stat(filepath.Join("../../deploy", src)); err != nil {
				t.Errorf("%s mounts %s: %v", svc, src, err)
			}
		}
	}
	// Grafana finds the dashboard where its provisioning file says, and
	// Prometheus the rules its configuration names.
	var prov struct {
		Providers []struct{ Options struct{ Path string } }
	}
	b, err = os.ReadFile("../../deploy/grafana/provisioning/dashboards/roundtable.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &prov); err != nil || len(prov.Providers) != 1 {
		t.Fatalf("dashboard provisioning: %v %+v", err, prov)
	}
	if src := mounted[prov.Providers[0].Options.Path+"/roundtable.json"]; src != "./grafana/roundtable.json" {
		t.Errorf("the dashboard is not mounted where Grafana looks (%s): %v", prov.Providers[0].Options.Path, mounted)
	}
	if mounted["/etc/prometheus/alerts.yml"] != "./prometheus/alerts.yml" {
		t.Errorf("the alert rules are not mounted beside prometheus.yml: %v", mounted)
	}
}

// The dashboard's shape as Grafana loads it: unique panel ids, panels on
// the 24-column grid without overlaps, every query on the dashboard's
// data source variable, and the variables its queries use defined. (What
// the queries return is checked against a live Prometheus in
// e2e/dashboard_test.go; Grafana itself is not on this machine.)
func TestDashboardShape(t *testing.T) {
	b, err := os.ReadFile("../../deploy/grafana/roundtable.json")
	if err != nil {
		t.Fatal(err)
	}
	type ds struct{ Type, UID string }
	var d struct {
		UID        string
		Templating struct{ List []struct{ Name, Type string } }
		Panels     []struct {
			ID         int
			Type       string
			Title      string
			Datasource *ds
			GridPos    struct{ H, W, X, Y int }
			Targets    []struct {
				Expr       string
				Datasource *ds
			}
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" {
		t.Error("no uid: provisioning would make a new dashboard on every load")
	}
	vars := map[string]bool{"__rate_interval": true}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	ids := map[int]bool{}
	cells := map[[2]int]string{}
	used := regexp.MustCompile(`\$\{?(\w+)`)
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q off the grid: %+v", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if o, ok := cells[[2]int{x, y}]; ok {
					t.Fatalf("panels %q and %q overlap at %d,%d", o, p.Title, x, y)
				}
				cells[[2]int{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: data source %+v, want the datasource variable", p.Title, p.Datasource)
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: a query's data source %+v", p.Title, tg.Datasource)
			}
			for _, m := range used.FindAllStringSubmatch(tg.Expr, -1) {
				if !vars[m[1]] {
					t.Errorf("panel %q uses $%s, which the dashboard does not define", p.Title, m[1])
				}
			}
		}
	}
}

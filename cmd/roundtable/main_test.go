package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roundtable-sfu/roundtable/internal/auth"
	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/internal/server"
)

// TestMain lets the test binary act as the roundtable command, so the tests
// below run the real main in a child process.
func TestMain(m *testing.M) {
	if os.Getenv("RT_BE_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestParseConfig(t *testing.T) {
	env := map[string]string{
		"ROUNDTABLE_LISTEN":           "127.0.0.1:9000",
		"ROUNDTABLE_ICE_PORT":         "7000",
		"ROUNDTABLE_NAT_IP":           "203.0.113.7, 203.0.113.8",
		"ROUNDTABLE_ICE_SERVERS":      "stun:stun.example.org:3478",
		"ROUNDTABLE_MAX_PARTICIPANTS": "9",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := parseConfig([]string{"-ice-port", "7100", "-log-format", "json"}, lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9000" || cfg.MaxParticipants != 9 {
		t.Errorf("environment not applied: %+v", cfg)
	}
	if cfg.ICEPort != 7100 {
		t.Errorf("ice port %d: the flag must win over the environment", cfg.ICEPort)
	}
	if len(cfg.NAT1To1IPs) != 2 || cfg.NAT1To1IPs[1] != "203.0.113.8" {
		t.Errorf("nat ips %v", cfg.NAT1To1IPs)
	}
	if cfg.LogFormat != "json" || len(cfg.ICEServers) != 1 {
		t.Errorf("config %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("valid config rejected: %v", err)
	}
	if _, err := parseConfig(nil, func(k string) (string, bool) {
		return "many", k == "ROUNDTABLE_ICE_PORT"
	}, io.Discard); err == nil || !strings.Contains(err.Error(), "ROUNDTABLE_ICE_PORT") {
		t.Errorf("bad env value: %v", err)
	}
}

func TestValidateRejectsBadValues(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-listen", "nonsense"}, "listen"},
		{[]string{"-ice-port", "70000"}, "ice-port"},
		{[]string{"-ice-tcp-port", "-1"}, "ice-tcp-port"},
		{[]string{"-turn-port", "70000"}, "turn-port"},
		{[]string{"-turn-secret", "short"}, "turn-secret"},
		{[]string{"-turn-max-per-participant", "0"}, "turn-max-per-participant"},
		{[]string{"-nat-ip", "not-an-ip"}, "nat-ip"},
		{[]string{"-ice-servers", "http://x"}, "ice-servers"},
		{[]string{"-log-format", "xml"}, "log-format"},
		{[]string{"-log-level", "loud"}, "log-level"},
		{[]string{"-max-participants", "0"}, "max-participants"},
		{[]string{"-data-max-message", "100000"}, "data-max-message"},
		{[]string{"-listen", "0.0.0.0:8080"}, "allow-open"},
		{[]string{"-api-secret", "too-short"}, "api-secret"},
	}
	for _, tt := range tests {
		cfg, err := parseConfig(tt.args, func(string) (string, bool) { return "", false }, io.Discard)
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want one naming %s", tt.args, err, tt.want)
		}
	}
}

// startMain runs the binary (this test binary as main) with args; it is
// killed at the end of the test. It returns the process, its stdout and
// what it wrote to stderr.
func startMain(t *testing.T, args ...string) (*exec.Cmd, *bufio.Reader, *bytes.Buffer) {
	t.Helper()
	var stderr bytes.Buffer
	cmd, out := startMainTo(t, &stderr, args...)
	return cmd, out, &stderr
}

// startMainTo is startMain with the process's stderr going to w.
func startMainTo(t *testing.T, w io.Writer, args ...string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "RT_BE_MAIN=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, bufio.NewReader(stdout)
}

// printedURL reads the URL the binary prints when it is up.
func printedURL(t *testing.T, out *bufio.Reader, stderr fmt.Stringer) string {
	t.Helper()
	line, err := out.ReadString('\n')
	if err != nil {
		t.Fatalf("no URL printed: %v; stderr:\n%s", err, stderr)
	}
	url := regexp.MustCompile(`http://\S+/`).FindString(line)
	if url == "" {
		t.Fatalf("no URL in %q", line)
	}
	return url
}

// The binary prints its URL, serves the client, /healthz, /readyz and
// /metrics. On SIGTERM it drains (issue 6, test 5): ten participants all get
// bye "shutdown" and the process exits 0 within the drain timeout.
func TestBinaryServesAndStopsOnSIGTERM(t *testing.T) {
	cmd, out, stderr := startMain(t, "-listen", "127.0.0.1:0", "-ice-port", "0", "-ice-tcp-port", "0", "-turn-port", "0", "-ice-interfaces", "lo",
		"-ice-ipv4-only", "-mdns=false", "-log-format", "json", "-drain-timeout", "5s")
	url := printedURL(t, out, stderr)
	for _, path := range []string{"", "r/some-room?name=x", "healthz", "readyz", "metrics", "app.js"} {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /%s: %s", path, resp.Status)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws := "ws" + strings.TrimPrefix(url, "http") + "ws"
	var cs []*client.Client
	for i := 0; i < 10; i++ {
		c, err := client.Join(ctx, client.Config{URL: ws, Room: "r", Name: fmt.Sprintf("n%d", i), Audio: i % 2})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Abort()
		cs = append(cs, c)
	}
	for _, c := range cs {
		if err := client.Wait(ctx, c.Connected); err != nil {
			dbg := c.Debug()
			_ = cmd.Process.Kill()
			_ = cmd.Wait() // stderr is whole and ours now
			t.Fatalf("client never connected: %s\nserver log:\n%s", dbg, stderr)
		}
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v; stderr:\n%s", err, stderr)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("still running 15 s after SIGTERM")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("exited %v after SIGTERM, over the 5 s drain timeout", d)
	}
	for _, c := range cs {
		if err := client.Wait(ctx, func() bool { return c.Bye() != "" }); err != nil || c.Bye() != "shutdown" {
			t.Errorf("participant got bye %q, want shutdown", c.Bye())
		}
	}
	for _, want := range []string{`"msg":"serving"`, `"msg":"draining"`, `"msg":"stopped"`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("no structured log %s:\n%s", want, stderr)
		}
	}
	// -ice-port 0 asks for any port: the log names the one bound.
	if strings.Contains(stderr.String(), `"ice_udp_port":0,`) {
		t.Errorf("the serving log names ICE UDP port 0, not the port bound:\n%s", stderr)
	}
}

func TestBinaryRejectsBadConfig(t *testing.T) {
	cmd, _, stderr := startMain(t, "-log-format", "xml", "-ice-port", "-1")
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("exit %v, want code 2", err)
	}
	for _, want := range []string{"log-format", "ice-port"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr does not name %s:\n%s", want, stderr)
		}
	}
}

// The CI smoke of `roundtable load` (issue 5): the load tool in its own
// process against the server in another, fanout 1 → 10 and a 4-person
// room, 10 s each; each must deliver at least 99.5 % of the packets, and a
// run that misses -min-delivery exits 1. A short room run against
// `roundtable baseline` keeps the comparison baseline working.
func TestLoadSmoke(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcpPort := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	_ = ln.Close()
	_, out, stderr := startMain(t, "-listen", "127.0.0.1:0", "-ice-port", "0", "-ice-tcp-port", tcpPort, "-turn-port", "0", "-ice-interfaces", "lo",
		"-ice-ipv4-only", "-mdns=false", "-log-level", "warn")
	ws := "ws" + strings.TrimPrefix(printedURL(t, out, stderr), "http") + "ws"
	// The stock pion baseline speaks enough of the protocol for the tool.
	_, bout, bstderr := startMain(t, "baseline", "-listen", "127.0.0.1:0", "-ice-port", "0")
	bline, err := bout.ReadString('\n')
	if err != nil {
		t.Fatalf("baseline printed nothing: %v\n%s", err, bstderr)
	}
	bws := regexp.MustCompile(`ws://\S+`).FindString(bline)
	runs := []struct {
		name string
		args []string
	}{
		{"fanout 1 to 10", []string{"-url", ws, "-scenario", "fanout", "-publishers", "1", "-subscribers", "10", "-duration", "10s"}},
		{"room of 4", []string{"-url", ws, "-scenario", "room", "-size", "4", "-duration", "10s"}},
		{"baseline room of 4", []string{"-url", bws, "-scenario", "room", "-size", "4", "-duration", "2s"}},
		// Each other path to the server (issue 11, item 7).
		{"fanout 1 to 3 over ICE-TCP", []string{"-url", ws, "-transport", "tcp", "-subscribers", "3", "-duration", "3s"}},
		{"fanout 1 to 3 through TURN over UDP", []string{"-url", ws, "-transport", "turn-udp", "-subscribers", "3", "-duration", "3s"}},
		{"fanout 1 to 3 through TURN over TCP", []string{"-url", ws, "-transport", "turn-tcp", "-subscribers", "3", "-duration", "3s"}},
	}
	for _, r := range runs {
		cmd := exec.Command(os.Args[0], append([]string{"load", "-json", "-warmup", "1s"}, r.args...)...)
		cmd.Env = append(os.Environ(), "RT_BE_MAIN=1")
		var lerr bytes.Buffer
		cmd.Stderr = &lerr
		b, err := cmd.Output()
		if err != nil {
			t.Errorf("%s: %v\n%s\n%s", r.name, err, b, lerr.String())
			continue
		}
		var res struct {
			Connected, Participants int
			Delivery                float64
			Expected                uint64  `json:"expected_packets"`
			P99                     float64 `json:"latency_p99_ms"`
			CPU                     float64 `json:"server_cpu_us_per_forwarded_packet"`
		}
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatalf("%s: %v in %s", r.name, err, b)
		}
		t.Logf("%s: delivery %.4f of %d packets, p99 %.2f ms, server %.1f µs CPU per packet", r.name, res.Delivery, res.Expected, res.P99, res.CPU)
		if res.Connected != res.Participants || res.Delivery < 0.995 || res.Expected < 300 {
			t.Errorf("%s: %d/%d connected, delivery %.4f of %d packets, want all and >= 0.995 of > 300", r.name, res.Connected, res.Participants, res.Delivery, res.Expected)
		}
	}
	cmd := exec.Command(os.Args[0], "load", "-url", ws, "-scenario", "room", "-size", "2", "-warmup", "0s", "-duration", "1s", "-min-delivery", "1.01")
	cmd.Env = append(os.Environ(), "RT_BE_MAIN=1")
	var exit *exec.ExitError
	if err := cmd.Run(); !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("load under -min-delivery: %v, want exit code 1", err)
	}
}

// The load tool against a server that requires join tokens (-api-secret):
// with the same secret (here the flag; ROUNDTABLE_API_SECRET by default)
// every participant joins with a token minted for it and media flows;
// without, none joins, each refused with auth_required, and the run exits 1.
func TestLoadWithAPISecret(t *testing.T) {
	secret := strings.Repeat("s", 32)
	_, out, stderr := startMain(t, "-listen", "127.0.0.1:0", "-ice-port", "0", "-ice-tcp-port", "0", "-turn-port", "0",
		"-ice-interfaces", "lo", "-ice-ipv4-only", "-mdns=false", "-log-level", "warn", "-api-secret", secret)
	ws := "ws" + strings.TrimPrefix(printedURL(t, out, stderr), "http") + "ws"
	run := func(extra ...string) (connected, participants int, errs []string, err error) {
		cmd := exec.Command(os.Args[0], append([]string{"load", "-json", "-url", ws, "-scenario", "room", "-size", "3",
			"-warmup", "1s", "-duration", "2s"}, extra...)...)
		cmd.Env = append(slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "ROUNDTABLE_API_") }), "RT_BE_MAIN=1")
		b, err := cmd.Output()
		var res struct {
			Connected, Participants int
			Delivery                float64
			Errors                  []string
		}
		if jerr := json.Unmarshal(b, &res); jerr != nil {
			t.Fatalf("%v in %q (%v)", jerr, b, err)
		}
		t.Logf("load %v: %d/%d connected, delivery %.4f, errors %v", extra, res.Connected, res.Participants, res.Delivery, res.Errors)
		return res.Connected, res.Participants, res.Errors, err
	}
	if c, n, errs, err := run("-api-secret", secret); err != nil || c != n || n != 3 {
		t.Errorf("with the secret: %d of %d connected (%v), exit %v; want all, exit 0", c, n, errs, err)
	}
	c, _, errs, err := run()
	var exit *exec.ExitError
	if c != 0 || !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("without the secret: %d connected, exit %v; want none, exit 1", c, err)
	}
	if len(errs) == 0 || !strings.Contains(errs[0], "auth_required") {
		t.Errorf("without the secret: errors %v, want auth_required", errs)
	}
}

// A recorder does not lower delivery (issue 15): the load tool's room of 4
// (video and audio each) against a server without a recorder, then
// against one that records every room (-record-dir). The recorded run
// delivers at least 99.5 %, as the smoke asks of any run, and no less
// than the unrecorded one, less 0.2 points of noise; and its recording
// holds all 8 tracks.
func TestRecorderUnderLoad(t *testing.T) {
	delivery := func(args ...string) float64 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tcpPort := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		_ = ln.Close()
		_, out, stderr := startMain(t, append([]string{"-listen", "127.0.0.1:0", "-ice-port", "0", "-ice-tcp-port", tcpPort,
			"-turn-port", "0", "-ice-interfaces", "lo", "-ice-ipv4-only", "-mdns=false", "-log-level", "warn"}, args...)...)
		ws := "ws" + strings.TrimPrefix(printedURL(t, out, stderr), "http") + "ws"
		cmd := exec.Command(os.Args[0], "load", "-json", "-warmup", "1s", "-url", ws, "-scenario", "room", "-size", "4", "-duration", "8s")
		cmd.Env = append(os.Environ(), "RT_BE_MAIN=1")
		var lerr bytes.Buffer
		cmd.Stderr = &lerr
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("load %v: %v\n%s\n%s", args, err, b, lerr.String())
		}
		var res struct {
			Connected, Participants int
			Delivery                float64
			Expected                uint64 `json:"expected_packets"`
		}
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatalf("%v in %s", err, b)
		}
		t.Logf("%v: delivery %.4f of %d packets", args, res.Delivery, res.Expected)
		if res.Connected != res.Participants || res.Expected < 300 {
			t.Errorf("%v: %d/%d connected, %d packets expected", args, res.Connected, res.Participants, res.Expected)
		}
		return res.Delivery
	}
	without := delivery()
	dir := t.TempDir()
	with := delivery("-record-dir", dir)
	if with < 0.995 || with < without-0.002 {
		t.Errorf("delivery %.4f with a recorder, %.4f without: want >= 0.995 and no lower", with, without)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		manifests, _ := filepath.Glob(filepath.Join(dir, "*", "*", "manifest.json"))
		var m struct {
			Stopped time.Time
			Tracks  []struct {
				File  string
				Bytes uint64
			}
		}
		if len(manifests) == 1 {
			if b, err := os.ReadFile(manifests[0]); err == nil {
				_ = json.Unmarshal(b, &m)
			}
		}
		if !m.Stopped.IsZero() {
			n := 0
			for _, tr := range m.Tracks {
				if tr.File != "" && tr.Bytes > 0 {
					n++
				}
			}
			if n != 8 {
				t.Errorf("the recording has %d tracks with data, want 8: %+v", n, m.Tracks)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no finished recording in %s: %v", dir, manifests)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// `roundtable token` mints what a server with the same key and secret
// accepts, with the grants its flags say; it refuses a short secret.
func TestTokenCommand(t *testing.T) {
	secret := strings.Repeat("q", 32)
	var out bytes.Buffer
	err := runToken([]string{"-api-key", "k", "-api-secret", secret, "-room", "r1", "-identity", "ann", "-name", "Ann",
		"-ttl", "10m", "-no-publish"}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c, err := auth.Keys{Key: "k", Secret: secret}.Check(strings.TrimSpace(out.String()), "r1", time.Now())
	if err != nil {
		t.Fatalf("minted token refused: %v", err)
	}
	if c.Subject != "ann" || c.Name != "Ann" || c.Grants != (auth.Grants{Subscribe: true, PublishData: true}) {
		t.Errorf("claims %+v", c)
	}
	if exp := time.Until(c.ExpiresAt.Time); exp < 9*time.Minute || exp > 10*time.Minute {
		t.Errorf("expires in %v, want 10m", exp)
	}
	if err := runToken([]string{"-api-secret", "short", "-room", "r", "-identity", "i"}, io.Discard, io.Discard); err == nil {
		t.Errorf("short secret accepted")
	}
	if err := runToken([]string{"-api-secret", secret, "-room", "r"}, io.Discard, io.Discard); err == nil {
		t.Errorf("token without identity minted")
	}
}

// `roundtable rooms` against a server with an API secret: an admin token
// from `roundtable token -admin` lists and shows the room, sends data and
// removes the participant; a join token is refused.
func TestRoomsCommand(t *testing.T) {
	secret := strings.Repeat("q", 32)
	cfg := server.DefaultConfig()
	cfg.Listen, cfg.ICEPort, cfg.ICETCPPort, cfg.TURNPort = "127.0.0.1:0", 0, 0, 0
	cfg.ICEInterfaces, cfg.ICELoopback, cfg.MDNS = []string{"lo"}, true, false
	cfg.APIKey, cfg.APISecret = "k", secret
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve() }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	mintWith := func(args ...string) string {
		var out bytes.Buffer
		if err := runToken(append([]string{"-api-key", "k", "-api-secret", secret, "-identity", "ops"}, args...), &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ann, err := client.Join(ctx, client.Config{URL: srv.WSURL(), Room: "standup", Name: "Ann", Audio: 1, Token: mintWith("-room", "standup")})
	if err != nil {
		t.Fatal(err)
	}
	defer ann.Abort()
	if err := client.Wait(ctx, ann.Connected); err != nil {
		t.Fatal(err)
	}
	admin := mintWith("-admin")
	rooms := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := runRooms(append([]string{"-url", srv.URL(), "-token", admin}, args...), &out, io.Discard)
		return out.String(), err
	}
	if out, err := rooms("list"); err != nil || !strings.Contains(out, "standup") {
		t.Errorf("list: %v\n%s", err, out)
	}
	var shown string
	if err := client.Wait(ctx, func() bool {
		shown, _ = rooms("show", "standup")
		return strings.Contains(shown, ann.ID) && strings.Contains(shown, ":audio")
	}); err != nil {
		t.Errorf("show: %v\n%s", err, shown)
	}
	if out, err := rooms("grants", "standup", ann.ID, "publishData=false"); err != nil || !strings.Contains(out, "publishData=false") {
		t.Errorf("grants: %v\n%s", err, out)
	}
	if _, err := rooms("remove", "standup", ann.ID); err != nil {
		t.Errorf("remove: %v", err)
	}
	if err := client.Wait(ctx, func() bool { return ann.Bye() == "removed" }); err != nil {
		t.Errorf("ann: bye %q", ann.Bye())
	}
	_, err = rooms("show", "nowhere")
	if err == nil || !strings.Contains(err.Error(), "404 not_found") {
		t.Errorf("show a missing room: %v", err)
	}
	err = runRooms([]string{"-url", srv.URL(), "-token", mintWith("-room", "standup"), "list"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "403 forbidden") {
		t.Errorf("a join token: %v", err)
	}
}

// The configuration file: precedence flag > environment > file > default;
// `config check` names every bad key and value with its line (and what
// Validate says, at the key's line); `config print` masks secrets.
func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "# Roundtable\nice-port: 7100\nmax-rooms: 10\nlog-format: json\nice-interfaces: [lo, eth1]\nresume-window: 45s\n")
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"ROUNDTABLE_MAX_ROOMS": "20"}[k]
		return v, ok
	}
	cfg, err := parseConfig([]string{"-config", good, "-log-format", "text"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ICEPort != 7100 || cfg.MaxRooms != 20 || cfg.LogFormat != "text" || cfg.ResumeWindow != 45*time.Second ||
		strings.Join(cfg.ICEInterfaces, ",") != "lo,eth1" || cfg.MaxParticipants != server.DefaultConfig().MaxParticipants {
		t.Errorf("file < env < flag: %+v", cfg)
	}
	if _, err := parseConfig(nil, func(k string) (string, bool) {
		return good, k == "ROUNDTABLE_CONFIG"
	}, io.Discard); err != nil {
		t.Errorf("ROUNDTABLE_CONFIG: %v", err)
	}

	var out bytes.Buffer
	if err := runConfig([]string{"check", good}, &out, io.Discard); err != nil || !strings.Contains(out.String(), "ok") {
		t.Errorf("check good: %v %q", err, out.String())
	}
	bad := write("bad.yaml", "listen: 127.0.0.1:8080\nice-port: seven\nmystery: 1\nmdns: maybe\nturn-ttl: [1, 2]\nrooms:\n  a: 1\nmax-rooms: 0\nmdns: true\n")
	out.Reset()
	err = runConfig([]string{"check", bad}, &out, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "7 problems") {
		t.Errorf("check bad: %v", err)
	}
	for _, want := range []string{bad + ":2: ice-port", bad + ":3: unknown key \"mystery\"", bad + ":4: mdns", "want true or false", bad + ":5: turn-ttl", bad + ":6: unknown key \"rooms\"", bad + ":8: max-rooms", bad + ":9: \"mdns\" again"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check bad: no %q in\n%s", want, out.String())
		}
	}
	invalid := write("invalid.yaml", "listen: 127.0.0.1:8080\nmax-rooms: 0\napi-secret: short\n")
	out.Reset()
	if err := runConfig([]string{"check", invalid}, &out, io.Discard); err == nil ||
		!strings.Contains(out.String(), invalid+":3: api-secret") || !strings.Contains(out.String(), "max-rooms") {
		t.Errorf("check invalid values: %v\n%s", err, out.String())
	}

	secret := write("secret.yaml", "api-secret: "+strings.Repeat("s", 32)+"\nturn-secret: hush-hush-hush-hush\n")
	out.Reset()
	if err := runConfig([]string{"print", "-config", secret, "-max-rooms", "7"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); strings.Contains(s, "sss") || strings.Contains(s, "hush") || !strings.Contains(s, "max-rooms: 7") ||
		!strings.Contains(s, "# api-secret: set, not shown") {
		t.Errorf("print:\n%s", s)
	}
	// What print writes is a file the server takes.
	again := write("again.yaml", out.String())
	if _, err := parseConfig([]string{"-config", again}, func(string) (string, bool) { return "", false }, io.Discard); err != nil {
		t.Errorf("print's output as a config file: %v", err)
	}
	// A configuration the server would refuse is printed, and refused.
	out.Reset()
	err = runConfig([]string{"print", "-config", invalid}, &out, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "max-rooms") || !strings.Contains(out.String(), "max-rooms: 0") {
		t.Errorf("print an invalid configuration: %v\n%s", err, out.String())
	}
}

// `roundtable archive` wants one recording directory, and says what is
// wrong with one that holds no recording.
func TestArchiveCommandRefuses(t *testing.T) {
	if err := runArchive(nil, io.Discard, io.Discard); err == nil {
		t.Error("archive without a directory: no error")
	}
	err := runArchive([]string{t.TempDir()}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "manifest") {
		t.Errorf("archive of an empty directory: %v, want a manifest error", err)
	}
}

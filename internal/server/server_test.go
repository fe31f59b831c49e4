package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/internal/testcert"
	"github.com/roundtable-sfu/roundtable/room"
	"github.com/roundtable-sfu/roundtable/signal"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// serve starts a loopback server with cfg changed by set; it shuts down
// when the test ends.
func serve(t *testing.T, set func(*Config)) *Server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen, cfg.ICEPort, cfg.ICETCPPort, cfg.TURNPort, cfg.ICEInterfaces, cfg.MDNS = "127.0.0.1:0", 0, 0, 0, []string{"lo"}, false
	set(&cfg)
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

// The profiler is off by default; with PprofListen it is served there and
// only there, never on the public listener.
func TestPprofOptIn(t *testing.T) {
	for _, on := range []bool{false, true} {
		s := serve(t, func(c *Config) {
			if on {
				c.PprofListen = "127.0.0.1:0"
			}
		})
		if _, body := get(t, s.URL()+"debug/pprof/"); strings.Contains(body, "goroutine") {
			t.Errorf("pprof=%v: the public listener serves the profiler", on)
		}
		if a := s.PprofAddr(); (a != nil) != on {
			t.Errorf("pprof=%v: PprofAddr %v", on, a)
		} else if on {
			if code, body := get(t, "http://"+a.String()+"/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
				t.Errorf("profiler index: %d %.100q", code, body)
			}
		}
	}
}

// Draining: readiness turns 503 while liveness stays 200, new sockets get
// 503, every open socket, joined or not, gets bye "shutdown".
func TestDrain(t *testing.T) {
	s := serve(t, func(*Config) {})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if code, _ := get(t, s.URL()+"readyz"); code != http.StatusOK {
		t.Fatalf("readyz %d before draining", code)
	}
	member, err := client.Join(ctx, client.Config{URL: s.WSURL(), Room: "d", Name: "member"})
	if err != nil {
		t.Fatal(err)
	}
	defer member.Abort()
	waiting, err := client.Dial(ctx, client.Config{URL: s.WSURL()}) // open, not joined yet
	if err != nil {
		t.Fatal(err)
	}
	defer waiting.Abort()

	s.Drain()
	if code, _ := get(t, s.URL()+"readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("readyz %d while draining, want 503", code)
	}
	if code, _ := get(t, s.URL()+"healthz"); code != http.StatusOK {
		t.Errorf("healthz %d while draining, want 200", code)
	}
	if _, resp, err := websocket.DefaultDialer.DialContext(ctx, s.WSURL(), nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("new socket while draining: %v, want HTTP 503", err)
	}
	if err := client.Wait(ctx, func() bool { return member.Bye() == "shutdown" }); err != nil {
		t.Errorf("member got bye %q, want shutdown", member.Bye())
	}
	// A socket that had not joined yet is closed too; a join racing the
	// drain would get "draining".
	if err := client.Wait(ctx, func() bool { return waiting.Bye() == "shutdown" }); err != nil {
		t.Errorf("unjoined socket got bye %q, want shutdown", waiting.Bye())
	}
	_ = waiting.SendJSON(map[string]string{"type": "join", "room": "d", "name": "late"})
	// The member leaves its room when its session ends, just after its bye;
	// nobody, the late joiner included, is in a room after that.
	if err := client.Wait(ctx, func() bool { _, n := s.Rooms.Counts(); return n == 0 }); err != nil {
		_, n := s.Rooms.Counts()
		t.Errorf("%d participants while draining", n)
	}
	// A join that got past the socket checks is refused by the rooms.
	if _, err := s.Rooms.Join("d", room.Member{Name: "late"}, nopClient{}); !errors.Is(err, room.ErrClosed) {
		t.Errorf("join while draining: %v, want %v", err, room.ErrClosed)
	}
}

// A session closed right after it joined: the reader, which adds the
// participant to its logger after the join, and the writer, which logs
// the close, must not share a plain field (a data race -race caught in
// TestTLS, where the server shut down just after "joined").
func TestCloseRightAfterJoin(t *testing.T) {
	s := serve(t, func(*Config) {})
	for i := 0; i < 5; i++ {
		conn, _, err := websocket.DefaultDialer.Dial(s.WSURL(), nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if err := conn.WriteJSON(map[string]string{"type": "join", "room": "quick", "name": "q"}); err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := conn.ReadJSON(&m); err != nil || m["type"] != "joined" {
			t.Fatalf("join %d: %v %v, want joined", i, m, err)
		}
		s.Signal.CloseAll("shutdown")
		for m["type"] != "bye" {
			m = nil
			if err := conn.ReadJSON(&m); err != nil {
				t.Fatalf("close %d: %v before bye", i, err)
			}
		}
		conn.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Wait(ctx, func() bool { _, n := s.Rooms.Counts(); return n == 0 }); err != nil {
		t.Errorf("participants left after their sessions closed: %v", err)
	}
}

// -data-rate sets the burst too: twice the rate (README, docs/protocol.md),
// which reaches the rooms. With 10 a second, a sender's first 20 messages
// pass at once and the rest only at the rate.
func TestDataBurstFollowsRate(t *testing.T) {
	if got := DefaultConfig().DataBurst(); got != 100 {
		t.Errorf("default data burst %d, want 100 (twice 50/s)", got)
	}
	s := serve(t, func(c *Config) { c.DataRate = 10 })
	if l := s.Rooms.Limits(); l.DataRate != 10 || l.DataBurst != 20 {
		t.Fatalf("room limits: rate %v, burst %d; want 10, 20", l.DataRate, l.DataBurst)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var members []*client.Client
	for _, name := range []string{"a", "b"} {
		c, err := client.Join(ctx, client.Config{URL: s.WSURL(), Room: "burst", Name: name})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Abort()
		if err := c.WaitDataChannel(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		members = append(members, c)
	}
	a, b := members[0], members[1]
	start := time.Now()
	const sent = 40
	for i := 0; i < sent; i++ {
		if err := a.SendText("m"); err != nil {
			t.Fatal(err)
		}
	}
	if err := client.Wait(ctx, func() bool { return len(b.Data()) >= 20 }); err != nil {
		t.Fatalf("%d of %d messages forwarded: %v", len(b.Data()), sent, err)
	}
	time.Sleep(300 * time.Millisecond) // let any further ones arrive
	got, limit := len(b.Data()), 20+int(10*time.Since(start).Seconds())+1
	if got > limit {
		t.Errorf("%d of %d messages forwarded, want 20..%d", got, sent, limit)
	}
	if !a.HasError(signal.CodeDataRate) {
		t.Errorf("the sender got no %s error", signal.CodeDataRate)
	}
}

// DefaultConfig is valid and is where the defaults live: the packages get
// values, so a zero timeout is refused here rather than replaced.
func TestDefaultConfigValidates(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config refused: %v", err)
	}
	for name, set := range map[string]func(*Config){
		"ICE timeouts":       func(c *Config) { c.ICEDisconnectedTimeout = 0 },
		"answer timeout":     func(c *Config) { c.AnswerTimeout = 0 },
		"signaling max":      func(c *Config) { c.SignalMaxMessage = 0 },
		"signaling timeouts": func(c *Config) { c.PingInterval = 0 },
	} {
		c := DefaultConfig()
		set(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s zero: %v, want an error naming it", name, err)
		}
	}
	if c := (Config{DataRate: 0.2, MessageRate: 0.1}); c.DataBurst() != 1 || c.MessageBurst() != 1 {
		t.Errorf("bursts of slow rates: %d, %d; want at least 1 each", c.DataBurst(), c.MessageBurst())
	}
}

// ACME settings are checked before anything starts.
func TestACMEConfig(t *testing.T) {
	good := DefaultConfig()
	good.ACMEDomains = []string{"sfu.example.org"}
	good.ACMEHTTPListen = ":80"
	if err := good.Validate(); err != nil {
		t.Fatalf("valid ACME settings refused: %v", err)
	}
	for want, set := range map[string]func(*Config){
		"give one or the other": func(c *Config) { c.TLSCert, c.TLSKey = "c.pem", "k.pem" },
		"want a DNS name":       func(c *Config) { c.ACMEDomains = []string{"192.0.2.1"} },
		"want an https:// URL":  func(c *Config) { c.ACMEDirectoryURL = "http://ca.example/dir" },
		"want host:port":        func(c *Config) { c.ACMEHTTPListen = "80" },
		"needs acme-domain":     func(c *Config) { c.ACMEDomains = nil },
	} {
		c := good
		set(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
}

type nopClient struct{}

func (nopClient) Notify(room.Event) {}
func (nopClient) Close(string)      {}

// selfSigned writes a certificate and key for 127.0.0.1 and returns their
// paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	c := testcert.New(t)
	return c.CertFile, c.KeyFile, c.Pool
}

// With -tls-cert and -tls-key the one listener serves HTTPS and WSS.
func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	s := serve(t, func(c *Config) { c.TLSCert, c.TLSKey = certFile, keyFile })
	if !strings.HasPrefix(s.URL(), "https://") || !strings.HasPrefix(s.WSURL(), "wss://") {
		t.Fatalf("URLs %s %s", s.URL(), s.WSURL())
	}
	tlsCfg := &tls.Config{RootCAs: pool}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	resp, err := hc.Get(s.URL() + "healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Errorf("https healthz: %s, tls %v", resp.Status, resp.TLS != nil)
	}
	// Go's TLS server answers plain HTTP with a 400; it must not serve it.
	if r2, err := http.Get("http://" + s.Addr().String() + "/healthz"); err == nil {
		r2.Body.Close()
		if r2.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP served on the TLS listener")
		}
	}
	d := websocket.Dialer{TLSClientConfig: tlsCfg}
	conn, _, err := d.Dial(s.WSURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.WriteJSON(map[string]string{"type": "join", "room": "tls", "name": "t"}); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := conn.ReadJSON(&m); err != nil || m["type"] != "joined" {
		t.Errorf("over wss: %v %v, want joined", m, err)
	}
	cfg := DefaultConfig()
	cfg.TLSCert = certFile
	if err := cfg.Validate(); err == nil {
		t.Errorf("a certificate without a key passed validation")
	}
}

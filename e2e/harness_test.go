// Package e2e holds Roundtable's integration tests: a real server on
// loopback, real pion participants (internal/client) through the real
// WebSocket signaling. Every address used is 127.0.0.1.
package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/internal/server"
)

type testServer struct {
	*server.Server
	t *testing.T

	mu      sync.Mutex
	clients []*client.Client
}

// track remembers c so that a failing test shows its state.
func (s *testServer) track(c *client.Client) *client.Client {
	s.mu.Lock()
	s.clients = append(s.clients, c)
	s.mu.Unlock()
	return c
}

type serverOpt func(*server.Config, *[]interceptor.Factory)

func startServer(t *testing.T, opts ...serverOpt) *testServer {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.ICEPort = 0
	cfg.ICETCPPort = 0 // off unless a test asks (withICETCP): 7881 is one port
	cfg.TURNPort = 0   // the built-in TURN server on ephemeral ports
	cfg.ICEInterfaces = []string{"lo"}
	cfg.ICELoopback = true
	cfg.ICEIPv4Only = true
	cfg.MDNS = false
	var extra []interceptor.Factory
	for _, o := range opts {
		o(&cfg, &extra)
	}
	var w io.Writer = io.Discard
	if os.Getenv("RT_LOG") != "" {
		w = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := server.NewWithInterceptors(cfg, log, extra)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	go func() { _ = srv.Serve() }()
	ts := &testServer{Server: srv, t: t}
	t.Cleanup(func() {
		if t.Failed() {
			ts.mu.Lock()
			for _, c := range ts.clients {
				t.Logf("client: %s", c.Debug())
			}
			ts.mu.Unlock()
			st := srv.Engine.Stats()
			t.Logf("server: peers=%d subscriptions=%d in=%d/%d out=%d/%d drops=%v",
				st.Peers.Load(), st.Subscriptions.Load(), st.PacketsIn[0].Load(), st.PacketsIn[1].Load(),
				st.PacketsOut[0].Load(), st.PacketsOut[1].Load(), st.Dropped[0].Load())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return ts
}

func (s *testServer) join(ctx context.Context, room, name string, audio, video int) *client.Client {
	s.t.Helper()
	return s.joinWith(ctx, client.Config{Room: room, Name: name, Audio: audio, Video: video})
}

// joinWith joins with a full client configuration (URL filled in).
func (s *testServer) joinWith(ctx context.Context, cfg client.Config) *client.Client {
	s.t.Helper()
	cfg.URL = s.WSURL()
	c, err := client.Join(ctx, cfg)
	if err != nil {
		s.t.Fatalf("%s joins %s: %v", cfg.Name, cfg.Room, err)
	}
	s.t.Cleanup(c.Abort)
	return s.track(c)
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// checkGoroutines fails the test if, after everything it started is torn
// down (its cleanups run before this one), more goroutines run or more file
// descriptors (sockets) are open than before it started. Call it first in
// the test.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	fdsBefore := openFDs()
	t.Cleanup(func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) && openFDs() > fdsBefore {
			time.Sleep(50 * time.Millisecond)
		}
		if n := openFDs(); n > fdsBefore {
			t.Errorf("open file descriptors: %d before, %d after", fdsBefore, n)
		}
		var now int
		for time.Now().Before(deadline) {
			if now = runtime.NumGoroutine(); now <= before {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Errorf("goroutines: %d before, %d after\n%s", before, now, summarize(string(buf[:n])))
	})
}

func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}

// summarize keeps the first frame of each goroutine's stack.
func summarize(stacks string) string {
	var b strings.Builder
	for _, g := range strings.Split(stacks, "\n\n") {
		lines := strings.Split(g, "\n")
		if len(lines) >= 3 {
			fmt.Fprintf(&b, "%s | %s\n", lines[1], strings.TrimSpace(lines[2]))
		}
	}
	return b.String()
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	if err := client.Wait(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

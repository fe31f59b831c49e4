package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
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

// The profiler is off by default; with PprofListen it is served there and
// only there, never on the public listener.
func TestPprofOptIn(t *testing.T) {
	for _, on := range []bool{false, true} {
		cfg := DefaultConfig()
		cfg.Listen, cfg.ICEPort, cfg.ICEInterfaces, cfg.MDNS = "127.0.0.1:0", 0, []string{"lo"}, false
		if on {
			cfg.PprofListen = "127.0.0.1:0"
		}
		s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = s.Serve() }()
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
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		cancel()
	}
}

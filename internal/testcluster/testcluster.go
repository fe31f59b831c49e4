// Package testcluster starts the outside parts of a cluster test: a
// redis-server (Debian's) and haproxy on loopback ports of their own,
// stopped when the test ends. Tests only.
package testcluster

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Require returns the path of tool, or fails the test when the test
// command runs it (RT_REQUIRE_TOOLS: scripts/test.sh installs the tool)
// and skips it otherwise.
func Require(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("RT_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s not installed (scripts/test.sh installs the %s package)", tool, pkg)
		}
		t.Skipf("%s not installed; run scripts/test.sh", tool)
	}
	return p
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// process is a child process the test owns.
type process struct {
	mu     sync.Mutex
	cmd    *exec.Cmd
	out    bytes.Buffer
	exited chan struct{}
}

func (p *process) start(t *testing.T, name string, args ...string) {
	t.Helper()
	p.cmd = exec.Command(name, args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	p.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(p.cmd, p.exited)
}

// waitListen waits until addr accepts connections, or fails the test if
// the process exits or 10 s pass.
func (p *process) waitListen(t *testing.T, what, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = c.Close()
			return
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited: %s", what, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening on %s: %s", what, addr, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *process) kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	p.cmd = nil
}

// Redis is a redis-server of the test's own, without persistence.
type Redis struct {
	t    *testing.T
	Port string
	dir  string
	proc process
}

// StartRedis starts redis-server on a free loopback port.
func StartRedis(t *testing.T) *Redis {
	t.Helper()
	Require(t, "redis-server", "redis-server")
	r := &Redis{t: t, Port: FreePort(t), dir: t.TempDir()}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// URL is the -redis-url of this server.
func (r *Redis) URL() string { return "redis://127.0.0.1:" + r.Port + "/0" }

// Start starts it (again, after Stop: empty).
func (r *Redis) Start() {
	r.t.Helper()
	r.proc.start(r.t, "redis-server", "--port", r.Port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir)
	r.proc.waitListen(r.t, "redis-server", "127.0.0.1:"+r.Port)
}

// Stop kills it.
func (r *Redis) Stop() { r.proc.kill() }

// Client returns a client of it; the caller closes it.
func (r *Redis) Client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + r.Port})
}

// Keys returns every key it holds.
func (r *Redis) Keys(ctx context.Context) []string {
	c := r.Client()
	defer c.Close()
	k, err := c.Keys(ctx, "*").Result()
	if err != nil {
		r.t.Fatalf("redis keys: %v", err)
	}
	return k
}

// HAProxy balances HTTP (WebSockets included) round-robin over backends,
// each checked on /readyz every 200 ms.
type HAProxy struct {
	Addr string // host:port it listens on
	proc process
}

// StartHAProxy starts haproxy in front of backends (host:port each).
func StartHAProxy(t *testing.T, backends ...string) *HAProxy {
	t.Helper()
	Require(t, "haproxy", "haproxy")
	h := &HAProxy{Addr: "127.0.0.1:" + FreePort(t)}
	var b strings.Builder
	fmt.Fprintf(&b, `global
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 1h
  timeout server 1h
  timeout tunnel 1h
  option redispatch
  retries 3
frontend fe
  bind %s
  default_backend nodes
backend nodes
  balance roundrobin
  option httpchk GET /readyz
`, h.Addr)
	for i, a := range backends {
		fmt.Fprintf(&b, "  server n%d %s check inter 200ms fall 1 rise 2\n", i, a)
	}
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	h.proc.start(t, "haproxy", "-db", "-f", cfg)
	t.Cleanup(h.proc.kill)
	h.proc.waitListen(t, "haproxy", h.Addr)
	return h
}

package e2e

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v3"
	"github.com/redis/go-redis/v9"
	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/internal/server"
)

// redisServer is a redis-server of the test's own on a loopback port.
type redisServer struct {
	t      *testing.T
	port   string
	cmd    *exec.Cmd
	exited chan struct{}
	dir    string
}

// startRedis starts Debian's redis-server on a free loopback port, with
// no persistence; it is stopped when the test ends.
func startRedis(t *testing.T) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("RT_REQUIRE_TOOLS") != "" {
			t.Fatal("redis-server not installed (scripts/test.sh installs the redis-server package)")
		}
		t.Skip("redis-server not installed; run scripts/test.sh")
	}
	r := &redisServer{t: t, port: freePort(t), dir: t.TempDir()}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *redisServer) URL() string { return "redis://127.0.0.1:" + r.port + "/0" }

func (r *redisServer) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", r.port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--protected-mode", "yes")
	var out bytes.Buffer
	r.cmd.Stdout, r.cmd.Stderr = &out, &out
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = r.cmd.Wait()
		close(exited)
	}()
	r.exited = exited
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+r.port, time.Second)
		if err == nil {
			_ = conn.Close()
			return
		}
		select {
		case <-exited:
			r.t.Fatalf("redis-server exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server did not listen on %s: %s", r.port, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *redisServer) stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.exited
	r.cmd = nil
}

func (r *redisServer) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + r.port})
}

// keys returns every key in Redis.
func (r *redisServer) keys(ctx context.Context) []string {
	c := r.client()
	defer c.Close()
	k, err := c.Keys(ctx, "*").Result()
	if err != nil {
		r.t.Fatalf("redis keys: %v", err)
	}
	return k
}

func withCluster(url, node string) serverOpt {
	return func(c *server.Config, _ *[]interceptor.Factory) {
		c.RedisURL, c.NodeID = url, node
	}
}

// hasMedia reports whether c receives an audio and a video track from
// participant id, each with at least n packets.
func hasMedia(c *client.Client, id string, n int) bool {
	var audio, video bool
	for _, r := range c.ActiveRemote() {
		if r.StreamID != id || r.Stats().Packets < n {
			continue
		}
		audio = audio || r.Kind == webrtc.RTPCodecTypeAudio
		video = video || r.Kind == webrtc.RTPCodecTypeVideo
	}
	return audio && video
}

// Two nodes on one Redis, one member on each, in one room: each sees the
// other join, receives the other's audio and video through the relay, and
// gets the other's data messages; the relay carries each track once. When
// one leaves, the other sees it leave; when both have left, Redis holds
// nothing of the room.
func TestClusterTwoNodesOneRoom(t *testing.T) {
	checkGoroutines(t)
	rd := startRedis(t)
	a := startServer(t, withCluster(rd.URL(), "node-a"))
	b := startServer(t, withCluster(rd.URL(), "node-b"))
	ctx := testContext(t, 60*time.Second)

	ann := a.join(ctx, "span", "ann", 1, 1)
	bob := b.join(ctx, "span", "bob", 1, 1)
	waitFor(t, ctx, "Ann sees Bob", func() bool { _, ok := ann.Participants()[bob.ID]; return ok })
	waitFor(t, ctx, "Bob sees Ann", func() bool { _, ok := bob.Participants()[ann.ID]; return ok })
	waitFor(t, ctx, "Ann receives Bob's media", func() bool { return hasMedia(ann, bob.ID, 50) })
	waitFor(t, ctx, "Bob receives Ann's media", func() bool { return hasMedia(bob, ann.ID, 50) })

	for _, c := range []*client.Client{ann, bob} {
		if err := c.WaitDataChannel(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := ann.SendText("hello from a"); err != nil {
		t.Fatal(err)
	}
	if err := bob.SendBinary([]byte{0, ':', 1}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "data both ways", func() bool {
		got := func(c *client.Client, from string, want []byte) bool {
			for _, m := range c.Data() {
				if m.From == from && bytes.Equal(m.Data, want) {
					return true
				}
			}
			return false
		}
		return got(bob, ann.ID, []byte("hello from a")) && got(ann, bob.ID, []byte{0, ':', 1})
	})

	// Each node has one relay to the other: two PeerConnections between
	// them, each subscribed to the two tracks of its node's member.
	for _, s := range []*testServer{a, b} {
		st := s.Engine.Stats()
		if peers := st.Peers.Load(); peers != 3 { // the member, the relay's two legs
			t.Errorf("%s: %d PeerConnections, want 3", s.Cluster.ID(), peers)
		}
		if subs := st.Subscriptions.Load(); subs != 4 { // the member's two, the out leg's two
			t.Errorf("%s: %d subscriptions, want 4", s.Cluster.ID(), subs)
		}
	}

	bob.Leave()
	waitFor(t, ctx, "Ann sees Bob leave", func() bool { _, ok := ann.Participants()[bob.ID]; return !ok })
	ann.Leave()
	waitFor(t, ctx, "Redis holds no room", func() bool {
		for _, k := range rd.keys(ctx) {
			if strings.HasSuffix(k, ":rooms") || strings.HasSuffix(k, ":participants") {
				return false
			}
		}
		return true
	})
	waitFor(t, ctx, "no PeerConnection left", func() bool {
		return a.Engine.Stats().Peers.Load() == 0 && b.Engine.Stats().Peers.Load() == 0
	})
}

package e2e

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/internal/server"
	"github.com/roundtable-sfu/roundtable/internal/testcluster"
)

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
	rd := testcluster.StartRedis(t)
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
		for _, k := range rd.Keys(ctx) {
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

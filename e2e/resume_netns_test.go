package e2e

// Resume and ICE restarts across real network changes (issue 13), with
// the participant in a network namespace (netns_test.go): its address
// changes under it, or its UDP is cut while its socket stays up.

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/internal/netns"
	"github.com/roundtable-sfu/roundtable/internal/server"
	"github.com/roundtable-sfu/roundtable/sfu"
	"github.com/roundtable-sfu/roundtable/signal"
)

// observe joins an observer from the root namespace, through ns's veth
// pair, and returns it with the id of the participant named name once its
// video flows steadily (past the keyframe throttle of the subscription's
// first request).
func observe(t *testing.T, s *testServer, ns *netns.NS, room, name string) (*client.Client, string) {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	obs := s.joinWith(ctx, client.Config{Room: room, Name: "observer", Interfaces: []string{ns.HostIf}})
	var id string
	waitFor(t, ctx, name+"'s video at the observer", func() bool {
		for pid, n := range obs.Participants() {
			if n == name {
				id = pid
			}
		}
		r := trackFrom(obs, id, webrtc.RTPCodecTypeVideo)
		return r != nil && !r.Stats().FirstKeyframe.IsZero() && time.Since(r.Stats().FirstKeyframe) > 2*sfu.KeyframeInterval
	})
	return obs, id
}

// The namespace's address changes during the call: its WebSocket and its
// media path die together. The participant resumes on a new socket (the
// old one, still open on the server, is closed), restarts ICE from the new
// address, and is back with media; the observer never sees it leave and
// gets a keyframe of its video within 500 ms of its path coming back.
func TestNetnsAddressChange(t *testing.T) {
	checkGoroutines(t)
	ns := netns.New(t, "")
	s := startServer(t, inNamespace(ns))
	ctx := testContext(t, 60*time.Second)
	p := participantIn(t, ns, s, helperSpec{Room: "move", Name: "mover", KeyframeInterval: time.Minute})
	t.Logf("connected over %s", p.wait(ctx, "CONNECTED"))
	obs, mover := observe(t, s, ns, "move", "mover")
	video := trackFrom(obs, mover, webrtc.RTPCodecTypeVideo)

	moveAt := time.Now()
	addr := ns.Readdress(t)
	fmt.Fprintln(p.stdin, "MOVE")
	fields := strings.Fields(p.wait(ctx, "MOVED"))
	if len(fields) != 2 || !strings.HasPrefix(fields[0], addr+":") {
		t.Fatalf("moved: %q, want the new address %s", fields, addr)
	}
	ns64, _ := strconv.ParseInt(fields[1], 10, 64)
	back := time.Unix(0, ns64)
	d := waitKeyframe(t, ctx, "a keyframe of the mover's video", video, moveAt, back)
	t.Logf("keyframe %v after the mover's path came back (%v after the move)", d, back.Sub(moveAt))
	if d > 500*time.Millisecond {
		t.Errorf("keyframe %v after the path came back, want within 500 ms", d)
	}
	n := video.Stats().Packets
	waitFor(t, ctx, "the mover's video flows again on the same track", func() bool {
		return trackFrom(obs, mover, webrtc.RTPCodecTypeVideo) == video && video.Stats().Packets > n+30
	})
	if slices.Contains(obs.Departures(), mover) {
		t.Error("the observer saw the mover leave")
	}
	st := s.Signal.Stats()
	if st.Resumes.Get(signal.ResumeOK) != 1 || s.Engine.Stats().ICERestarts.Load() != 1 {
		t.Errorf("resumes ok %d, ICE restarts %d; want 1 and 1", st.Resumes.Get(signal.ResumeOK), s.Engine.Stats().ICERestarts.Load())
	}
}

// The participant's UDP is cut while its WebSocket stays up: the server
// sees ICE consent fail, asks the client to restart ICE (and asks again
// while the path stays down), and once UDP is back the restart succeeds;
// the participant never leaves the room.
func TestNetnsConsentLostAsksForICERestart(t *testing.T) {
	checkGoroutines(t)
	ns := netns.New(t, "")
	fastICE := func(c *server.Config, _ *[]interceptor.Factory) {
		c.ICEDisconnectedTimeout, c.ICEFailedTimeout = time.Second, 2*time.Second
	}
	s := startServer(t, inNamespace(ns, fastICE, connectTimeout(30*time.Second)))
	ctx := testContext(t, 60*time.Second)
	p := participantIn(t, ns, s, helperSpec{Room: "consent", Name: "cut", KeyframeInterval: time.Minute})
	t.Logf("connected over %s", p.wait(ctx, "CONNECTED"))
	obs, cut := observe(t, s, ns, "consent", "cut")
	video := trackFrom(obs, cut, webrtc.RTPCodecTypeVideo)

	ns.Nft(t, netns.DropUDP)
	out := s.Signal.Stats().Out
	waitFor(t, ctx, "the server asks for an ICE restart", func() bool { return out.Get(signal.TypeICERestart) >= 1 })
	ns.Nft(t, "delete table inet roundtable_test")
	open := time.Now()
	waitFor(t, ctx, "the restart answered and the video back", func() bool {
		return s.Engine.Stats().ICERestarts.Load() >= 1 && !video.KeyframeAfter(open).IsZero()
	})
	n := video.Stats().Packets
	waitFor(t, ctx, "the video flows on", func() bool { return video.Stats().Packets > n+30 })
	if slices.Contains(obs.Departures(), cut) {
		t.Error("the observer saw the participant leave")
	}
	t.Logf("ice-restart requests sent: %d", out.Get(signal.TypeICERestart))
}

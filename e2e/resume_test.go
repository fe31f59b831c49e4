package e2e

// Resume (issue 13): a participant whose signaling socket drops stays in
// its room for the resume window, media flowing, and a new socket that
// sends "resume" with its token takes it back without the others seeing
// a leave or a join.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/internal/auth"
	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/internal/server"
	"github.com/roundtable-sfu/roundtable/sfu"
	"github.com/roundtable-sfu/roundtable/signal"
)

func withResumeWindow(d time.Duration) serverOpt {
	return func(c *server.Config, _ *[]interceptor.Factory) { c.ResumeWindow = d }
}

// trackFrom returns c's received track of kind published by participant
// pub, nil if none has arrived.
func trackFrom(c *client.Client, pub string, kind webrtc.RTPCodecType) *client.RemoteTrack {
	for _, r := range c.ActiveRemote() {
		if r.StreamID == pub && r.Kind == kind {
			return r
		}
	}
	return nil
}

// packetsFrom counts the packets c received of pub's track of kind.
func packetsFrom(c *client.Client, pub string, kind webrtc.RTPCodecType) int {
	if r := trackFrom(c, pub, kind); r != nil {
		return r.Stats().Packets
	}
	return 0
}

// Test 1 of issue 13: B's TCP connection is closed under it while media
// flows. C sees no participant-left; B keeps receiving A's media through
// the gap; B resumes and learns of D, who joined during the gap, and
// receives D's track; D receives B's.
func TestResumeAfterDroppedSocket(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, withResumeWindow(15*time.Second))
	ctx := testContext(t, 60*time.Second)
	a := s.join(ctx, "resume", "a", 1, 1)
	b := s.join(ctx, "resume", "b", 0, 1)
	c := s.join(ctx, "resume", "c", 0, 0)
	waitFor(t, ctx, "b and c receive a's video, c receives b's", func() bool {
		return packetsFrom(b, a.ID, webrtc.RTPCodecTypeVideo) > 30 && packetsFrom(c, a.ID, webrtc.RTPCodecTypeVideo) > 30 &&
			packetsFrom(c, b.ID, webrtc.RTPCodecTypeVideo) > 30
	})
	bTrack := trackFrom(c, b.ID, webrtc.RTPCodecTypeVideo)
	firstToken := b.ResumeToken()
	if firstToken == "" {
		t.Fatal("joined carried no resume token")
	}

	b.DropSocket()
	stats := s.Signal.Stats()
	waitFor(t, ctx, "b detached", func() bool { return stats.Detached.Load() == 1 })
	before := packetsFrom(b, a.ID, webrtc.RTPCodecTypeVideo)
	d := s.join(ctx, "resume", "d", 1, 0)
	waitFor(t, ctx, "b receives a's video while detached", func() bool {
		return packetsFrom(b, a.ID, webrtc.RTPCodecTypeVideo) > before+60
	})
	waitFor(t, ctx, "d receives b's video (b detached)", func() bool { return packetsFrom(d, b.ID, webrtc.RTPCodecTypeVideo) > 30 })

	if err := b.Resume(ctx, "", "resume"); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if got := stats.Detached.Load(); got != 0 {
		t.Errorf("detached after the resume: %d, want 0", got)
	}
	waitFor(t, ctx, "b knows d and receives d's audio", func() bool {
		_, known := b.Participants()[d.ID]
		return known && packetsFrom(b, d.ID, webrtc.RTPCodecTypeAudio) > 20
	})
	afterResume := packetsFrom(c, b.ID, webrtc.RTPCodecTypeVideo)
	waitFor(t, ctx, "c still receives b's video on the same track", func() bool {
		return trackFrom(c, b.ID, webrtc.RTPCodecTypeVideo) == bTrack && bTrack.Stats().Packets > afterResume+30
	})
	for name, o := range map[string]*client.Client{"a": a, "c": c, "d": d} {
		if slices.Contains(o.Departures(), b.ID) {
			t.Errorf("%s saw b leave", name)
		}
	}
	if f := b.Failures(); len(f) > 0 {
		t.Errorf("b's negotiation failures: %v", f)
	}
	if got := stats.Resumes.Get(signal.ResumeOK); got != 1 {
		t.Errorf("resumes ok: %d, want 1", got)
	}
	if b.ResumeToken() == firstToken {
		t.Error("resumed carried no new token")
	}
	// The resumed session is a whole one: it leaves as any other.
	b.Leave()
	waitFor(t, ctx, "a sees b leave", func() bool { return slices.Contains(a.Departures(), b.ID) })
}

// Test 2 of issue 13: nobody resumes B within the window: it is removed,
// everyone sees it leave, its PeerConnection is closed, and a late resume
// is refused ("gone"). checkGoroutines covers B's goroutines and sockets.
func TestResumeWindowRunsOut(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, withResumeWindow(time.Second))
	ctx := testContext(t, 30*time.Second)
	a := s.join(ctx, "window", "a", 1, 1)
	b := s.join(ctx, "window", "b", 1, 1)
	waitFor(t, ctx, "a receives b's video", func() bool { return packetsFrom(a, b.ID, webrtc.RTPCodecTypeVideo) > 30 })
	stats := s.Signal.Stats()
	b.DropSocket()
	dropped := time.Now()
	waitFor(t, ctx, "a sees b leave", func() bool { return slices.Contains(a.Departures(), b.ID) })
	if waited := time.Since(dropped); waited < time.Second {
		t.Errorf("b removed %v after its socket dropped, within the window", waited)
	}
	waitFor(t, ctx, "b's PeerConnection closed", func() bool { return s.Engine.Stats().Peers.Load() == 1 })
	if got := stats.Detached.Load(); got != 0 {
		t.Errorf("detached: %d, want 0", got)
	}
	err := b.Resume(ctx, "", "")
	if err == nil || !b.HasError(signal.CodeResumeFailed) || !strings.Contains(err.Error(), signal.ResumeGone) {
		t.Errorf("late resume: %v, want resume_failed (%s)", err, signal.ResumeGone)
	}
}

// Test 3 of issue 13: a token works only for its room and participant,
// only while valid, only as this server process signed it, and only once
// at a time: a second resume closes the first socket.
func TestResumeTokenMisuse(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, withResumeWindow(10*time.Second))
	ctx := testContext(t, 60*time.Second)
	a := s.join(ctx, "tokens", "a", 1, 0)
	b := s.join(ctx, "tokens", "b", 0, 0)
	waitFor(t, ctx, "b connected", b.Connected)
	tok := b.ResumeToken()
	payload, mac, _ := strings.Cut(tok, ".")
	claims, _ := base64.RawURLEncoding.DecodeString(payload)
	tamper := func(old, new string) string {
		return base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(claims), old, new, 1))) + "." + mac
	}
	other := startServer(t) // a restarted server: another key
	resumeOn := func(srv *testServer, token, room string) (*client.Client, error) {
		t.Helper()
		c, err := client.Dial(ctx, client.Config{URL: srv.WSURL()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Abort)
		return c, c.Resume(ctx, token, room)
	}
	for _, tc := range []struct {
		name, token, room, reason string
		srv                       *testServer
	}{
		{"another participant", tamper(b.ID, a.ID), "", signal.ResumeInvalid, s},
		{"another room in the token", tamper(`"r":"tokens"`, `"r":"other"`), "", signal.ResumeInvalid, s},
		{"another room in the resume", tok, "other", signal.ResumeWrongRoom, s},
		{"forged signature", payload + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 32)), "", signal.ResumeInvalid, s},
		{"not a token", "hello", "", signal.ResumeInvalid, s},
		{"after a server restart", tok, "", signal.ResumeInvalid, other},
	} {
		c, err := resumeOn(tc.srv, tc.token, tc.room)
		if err == nil || !c.HasError(signal.CodeResumeFailed) || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%s: %v, want resume_failed (%s)", tc.name, err, tc.reason)
		}
	}

	// Used twice at once: both resumes take B in turn; the older socket
	// gets bye "resumed_elsewhere", the newer stays. B's own socket was
	// attached, so it is the first one pushed out.
	first, err1 := resumeOn(s, tok, "")
	second, err2 := resumeOn(s, tok, "")
	if err1 != nil || err2 != nil {
		t.Fatalf("two resumes with one token: %v, %v; want both to succeed in turn", err1, err2)
	}
	waitFor(t, ctx, "the older sockets closed", func() bool {
		return b.Bye() == "resumed_elsewhere" && first.Bye() == "resumed_elsewhere"
	})
	if second.Bye() != "" {
		t.Errorf("the newest socket got bye %q", second.Bye())
	}
	if slices.Contains(a.Departures(), b.ID) {
		t.Error("a saw b leave")
	}

	// Expired: a server whose tokens last 2×window + ping interval.
	short := startServer(t, withResumeWindow(200*time.Millisecond), func(c *server.Config, _ *[]interceptor.Factory) {
		c.PingInterval = 100 * time.Millisecond
	})
	e := short.join(ctx, "expiry", "e", 0, 0)
	old := e.ResumeToken()
	expiry := tokenExpiry(t, old)
	waitFor(t, ctx, "the first token's expiry", func() bool { return time.Now().After(expiry) })
	if e.TokenRenewals() == 0 {
		t.Error("no resume-token renewal within the token's lifetime")
	}
	if c, err := resumeOn(short, old, ""); err == nil || !c.HasError(signal.CodeResumeFailed) || !strings.Contains(err.Error(), signal.ResumeExpired) {
		t.Errorf("expired token: %v, want resume_failed (%s)", err, signal.ResumeExpired)
	}
	if _, err := resumeOn(short, e.ResumeToken(), ""); err != nil {
		t.Errorf("renewed token: %v", err)
	}
	st := s.Signal.Stats()
	for _, r := range []string{signal.ResumeInvalid, signal.ResumeWrongRoom} {
		if st.Resumes.Get(r) == 0 {
			t.Errorf("resumes_total{result=%q} did not count", r)
		}
	}
}

// tokenExpiry reads the expiry a resume token claims (signal/resume.go).
func tokenExpiry(t *testing.T, tok string) time.Time {
	t.Helper()
	payload, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	var claims struct {
		E int64 `json:"e"`
	}
	if err != nil || json.Unmarshal(raw, &claims) != nil || claims.E == 0 {
		t.Fatalf("token %q: no expiry", tok)
	}
	return time.UnixMilli(claims.E)
}

// Test 4 of issue 13, first half: the client restarts ICE at the moment
// the server's offer is in flight. The server, which cannot roll back,
// ignores the crossing offer; the client (polite) answers the server's
// offer and restarts again, and the server answers that.
func TestICERestartCrossesServerOffer(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 40*time.Second)
	a := s.join(ctx, "glare", "a", 1, 1)
	b := s.join(ctx, "glare", "b", 0, 0)
	waitFor(t, ctx, "b receives a's video", func() bool { return packetsFrom(b, a.ID, webrtc.RTPCodecTypeVideo) > 30 })
	b.RestartICEOnNextOffer()
	c := s.join(ctx, "glare", "c", 0, 1) // its track makes the server offer to b
	waitFor(t, ctx, "the restart answered", func() bool { return s.Engine.Stats().ICERestarts.Load() == 1 })
	waitFor(t, ctx, "b receives c's video and a's", func() bool {
		return packetsFrom(b, c.ID, webrtc.RTPCodecTypeVideo) > 30 && packetsFrom(b, a.ID, webrtc.RTPCodecTypeVideo) > 200
	})
	if b.Collisions() != 1 {
		t.Errorf("collisions staged: %d, want 1", b.Collisions())
	}
	if f := b.Failures(); len(f) > 0 {
		t.Errorf("b's negotiation failures: %v", f)
	}
	if b.HasError(signal.CodeNegotiationFailed) || b.Bye() != "" {
		t.Errorf("b's session: bye %q, errors %v", b.Bye(), b.Errors())
	}
}

// waitKeyframe waits for a keyframe of r after since and returns its
// delay after from (negative: it came first).
func waitKeyframe(t *testing.T, ctx context.Context, what string, r *client.RemoteTrack, since, from time.Time) time.Duration {
	t.Helper()
	var at time.Time
	waitFor(t, ctx, what, func() bool { at = r.KeyframeAfter(since); return !at.IsZero() })
	return at.Sub(from)
}

// Test 4 of issue 13, second half: B's address changes (a NAT rebinding:
// an ICE restart on the same PeerConnection gathers on new sockets) and
// B is back with media; both B (for A's video) and C (for B's) get a
// keyframe within 500 ms of B's path coming back: the server asks the
// publishers at once instead of leaving the decoders to wait for the next
// periodic keyframe (a minute away here). TestNetnsAddressChange moves a
// participant to another IP address.
func TestAddressChangeRestartsICE(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 40*time.Second)
	slow := time.Minute // no periodic keyframe during the test
	a := s.joinWith(ctx, client.Config{Room: "move", Name: "a", Video: 1, KeyframeInterval: slow})
	b := s.joinWith(ctx, client.Config{Room: "move", Name: "b", Video: 1, KeyframeInterval: slow})
	c := s.joinWith(ctx, client.Config{Room: "move", Name: "c", KeyframeInterval: slow})
	// Past the keyframe throttle (sfu.KeyframeInterval) of the requests
	// that started the subscriptions, which would defer the next one.
	steady := func(r *client.RemoteTrack) bool {
		return r != nil && !r.Stats().FirstKeyframe.IsZero() && time.Since(r.Stats().FirstKeyframe) > 2*sfu.KeyframeInterval
	}
	waitFor(t, ctx, "b receives a's video, c receives b's", func() bool {
		return steady(trackFrom(b, a.ID, webrtc.RTPCodecTypeVideo)) && steady(trackFrom(c, b.ID, webrtc.RTPCodecTypeVideo))
	})
	before, oldAddr := s.Engine.Stats().ICERestarts.Load(), b.SelectedLocal()
	restart := time.Now()
	if err := b.RestartICE(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "b connected again", func() bool { return b.ICEConnectedAt().After(restart) })
	back := b.ICEConnectedAt()
	fromA := waitKeyframe(t, ctx, "a keyframe of a's video at b", trackFrom(b, a.ID, webrtc.RTPCodecTypeVideo), restart, back)
	fromB := waitKeyframe(t, ctx, "a keyframe of b's video at c", trackFrom(c, b.ID, webrtc.RTPCodecTypeVideo), restart, back)
	t.Logf("keyframes after the path came back: a's video at b %v, b's video at c %v", fromA, fromB)
	for what, d := range map[string]time.Duration{"a's video at b": fromA, "b's video at c": fromB} {
		if d > 500*time.Millisecond {
			t.Errorf("keyframe of %s %v after the path came back, want within 500 ms", what, d)
		}
	}
	if got := s.Engine.Stats().ICERestarts.Load() - before; got != 1 {
		t.Errorf("ICE restarts counted: %d, want 1", got)
	}
	if addr := b.SelectedLocal(); addr == oldAddr || addr == "" {
		t.Errorf("b's address %q after the restart, was %q: want a new one", addr, oldAddr)
	}
	n := packetsFrom(c, b.ID, webrtc.RTPCodecTypeVideo)
	waitFor(t, ctx, "c receives b's video after the move", func() bool { return packetsFrom(c, b.ID, webrtc.RTPCodecTypeVideo) > n+30 })
}

// Issue 13, token rules: a resume carries no join token and widens
// nothing. A viewer (subscribe, no publish) that resumes on a server with
// an API secret is the same viewer: a track it offers after the resume is
// refused, and it still receives.
func TestResumeKeepsGrants(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, withKeys(testKeys))
	ctx := testContext(t, 30*time.Second)
	token := func(id string, g auth.Grants) string {
		return mint(t, testKeys, auth.Token{Room: "grants", Identity: id, TTL: time.Hour, Grants: g}, time.Now())
	}
	full := s.joinWith(ctx, client.Config{Room: "grants", Name: "full", Audio: 1, Video: 1,
		Token: token("full", auth.Grants{Publish: true, Subscribe: true, PublishData: true})})
	viewer := s.joinWith(ctx, client.Config{Room: "grants", Name: "viewer",
		Token: token("viewer", auth.Grants{Subscribe: true})})
	waitFor(t, ctx, "the viewer receives", func() bool { return packetsFrom(viewer, full.ID, webrtc.RTPCodecTypeVideo) > 30 })
	viewer.DropSocket()
	waitFor(t, ctx, "the viewer detached", func() bool { return s.Signal.Stats().Detached.Load() == 1 })
	if err := viewer.Resume(ctx, "", ""); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if err := viewer.Publish(webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the viewer's track refused", func() bool { return viewer.HasError(signal.CodePublishNotAllowed) })
	n := packetsFrom(viewer, full.ID, webrtc.RTPCodecTypeVideo)
	waitFor(t, ctx, "the viewer still receives", func() bool { return packetsFrom(viewer, full.ID, webrtc.RTPCodecTypeVideo) > n+30 })
	if got := len(full.Remote()); got != 0 {
		t.Errorf("the full member receives %d tracks from the viewer", got)
	}
}

// The server's offer that the dropped socket swallowed: B never answered
// it (its answer died with the socket). While B is detached longer than
// the answer timeout, the negotiation does not fail; on resume the server
// sends the same offer again, B answers, and A's media reaches B.
func TestResumeResendsTheOutstandingOffer(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, withAnswerTimeout(time.Second), withResumeWindow(10*time.Second))
	ctx := testContext(t, 30*time.Second)
	var seen atomic.Int32
	// The offers b answered (or not), in order: the one sent again may
	// be followed at once by the next, for a track that waited for it.
	var bp atomic.Pointer[client.Client]
	var offersMu sync.Mutex
	var offers []string
	answer := answers(1, func(string) string { return "" }, &seen)
	b := s.joinWith(ctx, client.Config{Room: "resend", Name: "b", OnServerOffer: func(ans string) string {
		if c := bp.Load(); c != nil {
			offersMu.Lock()
			offers = append(offers, c.LastServerOffer())
			offersMu.Unlock()
		}
		return answer(ans)
	}})
	bp.Store(b)
	waitFor(t, ctx, "b connected", b.Connected)
	a := s.join(ctx, "resend", "a", 1, 1)
	waitFor(t, ctx, "the server's offer to b, unanswered", func() bool { return seen.Load() == 1 })
	first := b.LastServerOffer()
	b.DropSocket()
	waitFor(t, ctx, "b detached", func() bool { return s.Signal.Stats().Detached.Load() == 1 })
	detached := time.Now()
	waitFor(t, ctx, "twice the answer timeout, detached", func() bool { return time.Since(detached) > 2*time.Second })
	if err := b.Resume(ctx, "", ""); err != nil {
		t.Fatalf("resume: %v", err)
	}
	waitFor(t, ctx, "the offer again", func() bool { return seen.Load() >= 2 })
	offersMu.Lock()
	seenOffers := slices.Clone(offers)
	offersMu.Unlock()
	if len(seenOffers) < 2 {
		t.Fatalf("b saw %d offers, want 2 or more", len(seenOffers))
	}
	again := seenOffers[1]
	if again != first {
		t.Errorf("the offer sent again differs from the first:\n%s\n---\n%s", first, again)
	}
	waitFor(t, ctx, "a's video at b", func() bool { return packetsFrom(b, a.ID, webrtc.RTPCodecTypeVideo) > 30 })
	if b.HasError(signal.CodeNegotiationFailed) || b.Bye() != "" {
		t.Errorf("b's session: bye %q, errors %v", b.Bye(), b.Errors())
	}
}

// The socket dies without the server seeing it (no FIN, no RST: a NAT
// that forgot it, a laptop asleep), and the server offers into it. The
// answer is overdue long before the server's read deadline sees the drop;
// since nothing at all has come from the client since the offer (not even
// a pong to the ping the server sends to check), the negotiation is not
// failed: the participant detaches at the deadline, and the resume gets
// the offer again.
func TestOfferIntoASilentSocket(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, withAnswerTimeout(time.Second), func(c *server.Config, _ *[]interceptor.Factory) {
		c.PingInterval = 2 * time.Second // the drop is seen 4 s after the last frame
	})
	ctx := testContext(t, 30*time.Second)
	b := s.join(ctx, "silent", "b", 0, 0)
	waitFor(t, ctx, "b connected", b.Connected)
	b.Stall()
	a := s.join(ctx, "silent", "a", 1, 1) // the server offers a's tracks to b
	stats := s.Signal.Stats()
	waitFor(t, ctx, "b detached", func() bool { return stats.Detached.Load() == 1 })
	if err := b.Resume(ctx, "", ""); err != nil {
		t.Fatalf("resume: %v", err)
	}
	waitFor(t, ctx, "a's video at b", func() bool { return packetsFrom(b, a.ID, webrtc.RTPCodecTypeVideo) > 30 })
	if b.HasError(signal.CodeNegotiationFailed) || b.Bye() != "" {
		t.Errorf("b's session: bye %q, errors %v", b.Bye(), b.Errors())
	}

	// A client that is there but does not answer still fails, one
	// silence check later.
	var seen atomic.Int32
	c := s.joinWith(ctx, client.Config{Room: "silent", Name: "c", OnServerOffer: answers(-1, func(string) string { return "" }, &seen)})
	waitFor(t, ctx, "c's negotiation failed", func() bool { return c.HasError(signal.CodeNegotiationFailed) })
}

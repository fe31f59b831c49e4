package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/roundtable-sfu/roundtable/internal/auth"
	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/internal/server"
	"github.com/roundtable-sfu/roundtable/sfu"
	"github.com/roundtable-sfu/roundtable/signal"
)

var testKeys = auth.Keys{Key: "test-key", Secret: strings.Repeat("k", 32)}

func withKeys(k auth.Keys) serverOpt {
	return func(c *server.Config, _ *[]interceptor.Factory) { c.APIKey, c.APISecret = k.Key, k.Secret }
}

func mint(t *testing.T, k auth.Keys, tk auth.Token, at time.Time) string {
	t.Helper()
	s, err := k.Mint(tk, at)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Issue 6, test 4: with an API secret, every bad token is refused with its
// own error code and a valid one gets in, with the token's display name.
func TestAuthTable(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, withKeys(testKeys))
	ctx := testContext(t, 30*time.Second)
	now := time.Now()
	all := auth.Grants{Publish: true, Subscribe: true, PublishData: true}
	valid := auth.Token{Room: "auth", Identity: "alice", Name: "Alice from the token", TTL: time.Hour, Grants: all}
	with := func(f func(*auth.Token)) auth.Token { tk := valid; f(&tk); return tk }
	tests := []struct {
		name, token, code string
	}{
		{"missing", "", signal.CodeAuthRequired},
		{"garbage", "x.y.z", signal.CodeTokenInvalid},
		{"expired", mint(t, testKeys, valid, now.Add(-2*time.Hour)), signal.CodeTokenExpired},
		{"not yet valid", mint(t, testKeys, with(func(tk *auth.Token) { tk.NotBefore = now.Add(time.Hour) }), now), signal.CodeTokenNotYetValid},
		{"wrongly signed", mint(t, auth.Keys{Key: testKeys.Key, Secret: strings.Repeat("z", 32)}, valid, now), signal.CodeTokenInvalid},
		{"other room", mint(t, testKeys, with(func(tk *auth.Token) { tk.Room = "elsewhere" }), now), signal.CodeTokenWrongRoom},
		{"grant-less", mint(t, testKeys, with(func(tk *auth.Token) { tk.Grants = auth.Grants{} }), now), signal.CodeTokenNoGrants},
	}
	for _, tt := range tests {
		c, err := client.Join(ctx, client.Config{URL: s.WSURL(), Room: "auth", Name: "mallory", Token: tt.token})
		if err == nil {
			c.Abort()
			t.Errorf("%s: joined", tt.name)
			continue
		}
		if !strings.Contains(err.Error(), ": "+tt.code+":") {
			t.Errorf("%s: %v, want code %s", tt.name, err, tt.code)
		}
	}
	if _, n := s.Rooms.Counts(); n != 0 {
		t.Errorf("%d participants after refused joins", n)
	}
	alice := s.joinWith(ctx, client.Config{Room: "auth", Name: "ignored", Token: mint(t, testKeys, valid, now)})
	bob := s.joinWith(ctx, client.Config{Room: "auth", Name: "Bob", Token: mint(t, testKeys, with(func(tk *auth.Token) { tk.Identity, tk.Name = "bob", "" }), now)})
	waitFor(t, ctx, "bob sees alice's token name", func() bool { return bob.Participants()[alice.ID] == "Alice from the token" })
	waitFor(t, ctx, "alice sees bob's own name", func() bool { return alice.Participants()[bob.ID] == "Bob" })
}

// Grants are enforced by the server: a participant without publish has its
// tracks refused, one without subscribe receives nothing, one without
// publishData has its messages dropped with an error.
func TestGrantsEnforced(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, withKeys(testKeys))
	ctx := testContext(t, 30*time.Second)
	now := time.Now()
	token := func(id string, g auth.Grants) string {
		return mint(t, testKeys, auth.Token{Room: "grants", Identity: id, TTL: time.Hour, Grants: g}, now)
	}
	full := s.joinWith(ctx, client.Config{Room: "grants", Name: "full", Audio: 1, Video: 1,
		Token: token("full", auth.Grants{Publish: true, Subscribe: true, PublishData: true})})
	viewer := s.joinWith(ctx, client.Config{Room: "grants", Name: "viewer", Audio: 1,
		Token: token("viewer", auth.Grants{Subscribe: true, PublishData: true})})
	blind := s.joinWith(ctx, client.Config{Room: "grants", Name: "blind",
		Token: token("blind", auth.Grants{Publish: true, PublishData: true})})
	mute := s.joinWith(ctx, client.Config{Room: "grants", Name: "mute",
		Token: token("mute", auth.Grants{Subscribe: true})})

	waitFor(t, ctx, "viewer told its track is refused", func() bool { return viewer.HasError(signal.CodePublishNotAllowed) })
	waitFor(t, ctx, "the refused track's packets dropped", func() bool {
		return s.Engine.Stats().Dropped[sfu.DropTrackRefused].Load() > 20
	})
	waitFor(t, ctx, "viewer receives the full member's media", func() bool { return len(viewer.ActiveRemote()) == 2 })
	for _, c := range []*client.Client{viewer, mute} {
		if err := c.WaitDataChannel(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := mute.SendText("from mute"); err != nil {
		t.Fatal(err)
	}
	if err := viewer.SendText("from viewer"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "mute told its data is refused", func() bool { return mute.HasError(signal.CodeDataNotAllowed) })
	waitFor(t, ctx, "viewer's message arrives", func() bool { return len(full.Data()) >= 1 })
	time.Sleep(time.Second) // anything that should not arrive has had time to
	for _, m := range full.Data() {
		if m.From == mute.ID {
			t.Errorf("a message from the participant without publishData was forwarded: %q", m.Data)
		}
	}
	if n := len(full.Remote()); n != 0 {
		t.Errorf("the full member receives %d tracks; the viewer's may not be forwarded", n)
	}
	if n := len(blind.Remote()); n != 0 {
		t.Errorf("the participant without subscribe receives %d tracks", n)
	}
}

// An identity is in a room once: joining again with it (a browser that
// rejoins after its network changed, a second tab) replaces the first
// session at once instead of leaving a ghost until its ping times out.
// The first gets bye "replaced"; the others see it leave and the new one
// join, and receive the new one's media; gauges count one member.
func TestSameIdentityReplaces(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, withKeys(testKeys), func(c *server.Config, _ *[]interceptor.Factory) { c.MaxParticipants = 2 })
	ctx := testContext(t, 30*time.Second)
	now := time.Now()
	all := auth.Grants{Publish: true, Subscribe: true, PublishData: true}
	token := func(id string) string {
		return mint(t, testKeys, auth.Token{Room: "twice", Identity: id, TTL: time.Hour, Grants: all}, now)
	}
	watcher := s.joinWith(ctx, client.Config{Room: "twice", Name: "watcher", Token: token("watcher")})
	first := s.joinWith(ctx, client.Config{Room: "twice", Name: "first", Audio: 1, Video: 1, Token: token("sam")})
	waitFor(t, ctx, "the watcher receives the first session's media", func() bool { return len(watcher.ActiveRemote()) == 2 })

	// The room is full (limit 2), yet the same identity gets in: it takes
	// its own seat.
	second := s.joinWith(ctx, client.Config{Room: "twice", Name: "second", Audio: 1, Video: 1, Token: token("sam")})
	waitFor(t, ctx, "bye replaced at the first session", func() bool { return first.Bye() == "replaced" })
	select {
	case <-first.Closed():
	case <-ctx.Done():
		t.Fatal("the first session's socket stayed open")
	}
	waitFor(t, ctx, "the watcher sees the swap", func() bool {
		ps := watcher.Participants()
		_, old := ps[first.ID]
		return !old && ps[second.ID] == "second"
	})
	waitFor(t, ctx, "the watcher receives the second session's media", func() bool {
		n := 0
		for _, r := range watcher.ActiveRemote() {
			if r.StreamID == second.ID && r.Stats().Packets > 0 {
				n++
			}
		}
		return n == 2
	})
	if _, n := s.Rooms.Counts(); n != 2 {
		t.Errorf("%d participants, want 2", n)
	}
	// A different identity still finds the room full.
	if c, err := client.Join(ctx, client.Config{URL: s.WSURL(), Room: "twice", Name: "third", Token: token("other")}); err == nil {
		c.Abort()
		t.Error("a third identity joined a full room")
	} else if !strings.Contains(err.Error(), signal.CodeRoomFull) {
		t.Errorf("third identity: %v, want %s", err, signal.CodeRoomFull)
	}
}

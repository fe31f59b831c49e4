package e2e

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/internal/auth"
	"github.com/roundtable-sfu/roundtable/internal/client"
)

// whepURL is the server's WHEP endpoint for room (and a participant).
func whepURL(s *testServer, room string, participant ...string) string {
	return s.URL() + "whep/" + strings.Join(append([]string{room}, participant...), "/")
}

// played records what a WHEP viewer received, packet by packet, per kind.
type played struct {
	mu      sync.Mutex
	packets map[webrtc.RTPCodecType][]playedPacket
	ssrcs   map[webrtc.RTPCodecType]map[uint32]bool
	bad     int
}

type playedPacket struct {
	from     string // the publisher's participant id, from the payload
	seq      uint16
	ts       uint32
	keyframe bool
}

func newPlayed() *played {
	return &played{packets: map[webrtc.RTPCodecType][]playedPacket{},
		ssrcs: map[webrtc.RTPCodecType]map[uint32]bool{webrtc.RTPCodecTypeAudio: {}, webrtc.RTPCodecTypeVideo: {}}}
}

func (pl *played) onPacket(r *client.RemoteTrack, p *rtp.Packet, pay client.Payload, err error) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if err != nil {
		pl.bad++
		return
	}
	pl.ssrcs[r.Kind][p.SSRC] = true
	pl.packets[r.Kind] = append(pl.packets[r.Kind], playedPacket{from: pay.ID, seq: p.SequenceNumber, ts: p.Timestamp, keyframe: pay.Keyframe})
}

// from returns how many of the last n packets of kind came from id.
func (pl *played) from(kind webrtc.RTPCodecType, id string, n int) int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	ps := pl.packets[kind]
	if len(ps) < n {
		return 0
	}
	k := 0
	for _, p := range ps[len(ps)-n:] {
		if p.from == id {
			k++
		}
	}
	return k
}

// check reports what is wrong with the stream of kind: more than one SSRC,
// a sequence number that does not follow the one before, a timestamp that
// goes back, and for video a change of publisher that does not start with
// a keyframe. It returns the number of publisher changes.
func (pl *played) check(t *testing.T, kind webrtc.RTPCodecType) (switches int) {
	t.Helper()
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if len(pl.ssrcs[kind]) != 1 {
		t.Errorf("%s: %d SSRCs, want 1", kind, len(pl.ssrcs[kind]))
	}
	if pl.bad > 0 {
		t.Errorf("%d payloads altered", pl.bad)
	}
	ps := pl.packets[kind]
	for i := 1; i < len(ps); i++ {
		prev, p := ps[i-1], ps[i]
		if p.seq != prev.seq+1 {
			t.Errorf("%s: packet %d has seq %d after %d", kind, i, p.seq, prev.seq)
		}
		if int32(p.ts-prev.ts) < 0 {
			t.Errorf("%s: packet %d has timestamp %d after %d", kind, i, p.ts, prev.ts)
		}
		if p.from != prev.from {
			switches++
			if kind == webrtc.RTPCodecTypeVideo && !p.keyframe {
				t.Errorf("video switched from %s to %s at packet %d, not at a keyframe", prev.from, p.from, i)
			}
		}
	}
	if kind == webrtc.RTPCodecTypeVideo && len(ps) > 0 && !ps[0].keyframe {
		t.Errorf("the first video packet is not a keyframe")
	}
	return switches
}

// A pion WHEP viewer of a room gets one audio and one video track, the
// active speaker's: when the speaker changes, the video switches at the new
// speaker's keyframe with its sequence numbers running on, one SSRC per
// kind, and the audio follows. The members never see the viewer. DELETE
// ends it.
func TestWHEPFollowsTheActiveSpeaker(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 40*time.Second)
	ann := s.join(ctx, "show", "ann", 1, 1)
	bob := s.join(ctx, "show", "bob", 1, 1)
	level := func(c *client.Client, dBov uint8) { c.Local()[0].SetAudioLevel(dBov) }
	level(ann, 20)
	level(bob, 127)
	// Before anyone speaks a viewer plays whoever published first, which
	// the two joins leave to chance: start it once ann is the speaker.
	waitFor(t, ctx, "ann the active speaker", func() bool {
		ev := bob.Speakers()
		return len(ev) > 0 && ev[len(ev)-1].Participant == ann.ID
	})

	pl := newPlayed()
	v, err := client.PlayWHEP(ctx, whepURL(s, "show"), client.Config{OnPacket: pl.onPacket})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Abort()
	if !strings.Contains(v.Location, "/whep/show/session/"+v.ID) {
		t.Errorf("Location %q", v.Location)
	}
	waitFor(t, ctx, "ann's audio and video at the viewer", func() bool {
		return pl.from(webrtc.RTPCodecTypeVideo, ann.ID, 30) == 30 && pl.from(webrtc.RTPCodecTypeAudio, ann.ID, 30) == 30
	})
	waitFor(t, ctx, "the WHEP session connected", func() bool { _, up := s.WHEP.States(); return up == 1 })

	level(ann, 127)
	level(bob, 10)
	waitFor(t, ctx, "bob's audio and video at the viewer", func() bool {
		return pl.from(webrtc.RTPCodecTypeVideo, bob.ID, 30) == 30 && pl.from(webrtc.RTPCodecTypeAudio, bob.ID, 30) == 30
	})
	level(bob, 127)
	level(ann, 10)
	waitFor(t, ctx, "ann again", func() bool {
		return pl.from(webrtc.RTPCodecTypeVideo, ann.ID, 30) == 30 && pl.from(webrtc.RTPCodecTypeAudio, ann.ID, 30) == 30
	})
	if n := pl.check(t, webrtc.RTPCodecTypeVideo); n != 2 {
		t.Errorf("video changed publisher %d times, want 2", n)
	}
	if n := pl.check(t, webrtc.RTPCodecTypeAudio); n != 2 {
		t.Errorf("audio changed publisher %d times, want 2", n)
	}
	for _, c := range []*client.Client{ann, bob} {
		if _, seen := c.Participants()[v.ID]; seen {
			t.Errorf("%s sees the WHEP viewer as a member", c.ID)
		}
	}

	if code, err := v.Delete(ctx); err != nil || code != http.StatusOK {
		t.Fatalf("DELETE: %d %v", code, err)
	}
	waitFor(t, ctx, "no WHEP session left", func() bool { return s.WHEP.Sessions() == 0 })
	v.Abort()
	ann.Leave()
	bob.Leave()
}

// /whep/{room}/{participant} plays that participant whoever speaks; an
// unknown participant is 404.
func TestWHEPWatchesOneParticipant(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 40*time.Second)
	ann := s.join(ctx, "panel", "ann", 1, 1)
	bob := s.join(ctx, "panel", "bob", 1, 1)
	ann.Local()[0].SetAudioLevel(10) // ann speaks
	waitFor(t, ctx, "ann the active speaker", func() bool {
		ev := bob.Speakers()
		return len(ev) > 0 && ev[len(ev)-1].Participant == ann.ID
	})
	pl := newPlayed()
	v, err := client.PlayWHEP(ctx, whepURL(s, "panel", bob.ID), client.Config{OnPacket: pl.onPacket})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Abort()
	waitFor(t, ctx, "bob's audio and video at the viewer", func() bool {
		return pl.from(webrtc.RTPCodecTypeVideo, bob.ID, 60) == 60 && pl.from(webrtc.RTPCodecTypeAudio, bob.ID, 60) == 60
	})
	if n := pl.check(t, webrtc.RTPCodecTypeVideo); n != 0 {
		t.Errorf("video changed publisher %d times, want 0", n)
	}
	_, err = client.PlayWHEP(ctx, whepURL(s, "panel", "nobody"), client.Config{})
	var he *client.HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusNotFound {
		t.Errorf("an unknown participant: %v, want 404", err)
	}
	if code, err := v.Delete(ctx); code != http.StatusOK {
		t.Fatalf("DELETE: %d %v", code, err)
	}
	waitFor(t, ctx, "no WHEP session left", func() bool { return s.WHEP.Sessions() == 0 })
	ann.Leave()
	bob.Leave()
}

// With tokens: WHEP needs the subscribe grant (403 without it, 401 without
// a token); a viewer whose token says listed is a member the others see,
// and one without is not; PATCH and DELETE need the viewer's identity.
func TestWHEPTokens(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, withKeys(testKeys))
	ctx := testContext(t, 30*time.Second)
	tok := func(identity string, g auth.Grants) string {
		return mint(t, testKeys, auth.Token{Room: "stage", Identity: identity, TTL: time.Hour, Grants: g}, time.Now())
	}
	ann := s.joinWith(ctx, client.Config{Room: "stage", Name: "ann", Audio: 1, Video: 1, Token: tok("ann", auth.All)})
	for _, c := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"no subscribe grant", tok("v0", auth.Grants{Publish: true}), http.StatusForbidden},
	} {
		_, err := client.PlayWHEP(ctx, whepURL(s, "stage"), client.Config{Token: c.token})
		var he *client.HTTPError
		if !errors.As(err, &he) || he.Status != c.want {
			t.Errorf("%s: %v, want %d", c.name, err, c.want)
		}
	}
	hidden, err := client.PlayWHEP(ctx, whepURL(s, "stage"), client.Config{Token: tok("v1", auth.Grants{Subscribe: true})})
	if err != nil {
		t.Fatal(err)
	}
	defer hidden.Abort()
	listed, err := client.PlayWHEP(ctx, whepURL(s, "stage"), client.Config{Token: tok("v2", auth.Grants{Subscribe: true, Listed: true})})
	if err != nil {
		t.Fatal(err)
	}
	defer listed.Abort()
	for _, v := range []*client.WHIP{hidden, listed} {
		waitFor(t, ctx, "media at "+v.ID, func() bool {
			return payloadsFrom(v.Client, ann.ID, webrtc.RTPCodecTypeVideo) > 30 && payloadsFrom(v.Client, ann.ID, webrtc.RTPCodecTypeAudio) > 30
		})
	}
	waitFor(t, ctx, "ann sees the listed viewer", func() bool { _, ok := ann.Participants()[listed.ID]; return ok })
	if _, ok := ann.Participants()[hidden.ID]; ok {
		t.Error("ann sees the unlisted viewer")
	}
	if code, _ := hidden.Do(ctx, http.MethodDelete, "", "", tok("v2", auth.Grants{Subscribe: true})); code != http.StatusUnauthorized {
		t.Errorf("DELETE with another identity's token: %d, want 401", code)
	}
	for _, v := range []*client.WHIP{hidden, listed} {
		if code, err := v.Delete(ctx); code != http.StatusOK {
			t.Errorf("DELETE: %d %v", code, err)
		}
	}
	waitFor(t, ctx, "the listed viewer gone for ann", func() bool { _, ok := ann.Participants()[listed.ID]; return !ok })
	ann.Leave()
}

// payloadsFrom counts the packets of kind c received whose payload says
// publisher id sent them (a WHEP viewer's tracks are not the publisher's
// stream).
func payloadsFrom(c *client.Client, id string, kind webrtc.RTPCodecType) int {
	n := 0
	for _, r := range c.Remote() {
		if r.Kind == kind {
			n += r.Stats().PayloadIDs[id]
		}
	}
	return n
}

// A WHEP viewer's layer follows its bandwidth estimate, as a member's
// does: behind a 400 kbit/s link it is moved from the top simulcast layer
// to the lowest, and back up once the cap is lifted.
func TestWHEPLayerFollowsBandwidth(t *testing.T) {
	checkGoroutines(t)
	link := &impairFactory{}
	link.rate.Store(400_000)
	link.target.Store(1) // the viewer's PeerConnection (the publisher's is 0)
	s := startServer(t, withInterceptor(link))
	ctx := testContext(t, 60*time.Second)
	pub := s.joinWith(ctx, client.Config{Room: "simwhep", Name: "pub", Video: 1, Simulcast: true, KeyframeInterval: 10 * time.Minute})
	waitFor(t, ctx, "three layers published", func() bool {
		_, members, ok := s.Rooms.Room("simwhep")
		return ok && len(members) == 1 && len(members[0].Tracks) == 1
	})
	v, err := client.PlayWHEP(ctx, whepURL(s, "simwhep"), client.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Abort()
	var video *client.RemoteTrack
	waitFor(t, ctx, "the viewer's video", func() bool {
		for _, r := range v.Remote() {
			if r.Kind == webrtc.RTPCodecTypeVideo && r.Stats().PayloadIDs[pub.ID] > 0 {
				video = r
			}
		}
		return video != nil
	})
	start := time.Now()
	waitFor(t, ctx, "the capped viewer on the lowest layer", func() bool { return video.Stats().Layer == 0 })
	t.Logf("lowest layer after %v; estimates %v", time.Since(start), s.Engine.Estimates())
	link.rate.Store(0)
	start = time.Now()
	waitFor(t, ctx, "the top layer once the cap is lifted", func() bool { return video.Stats().Layer == 2 })
	t.Logf("top layer after %v", time.Since(start))
	if code, err := v.Delete(ctx); code != http.StatusOK {
		t.Fatalf("DELETE: %d %v", code, err)
	}
	waitFor(t, ctx, "no WHEP session left", func() bool { return s.WHEP.Sessions() == 0 })
	pub.Leave()
}

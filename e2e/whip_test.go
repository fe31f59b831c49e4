package e2e

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/internal/auth"
	"github.com/roundtable-sfu/roundtable/internal/client"
)

// whipURL is the server's WHIP endpoint for room.
func whipURL(s *testServer, room string) string {
	return s.URL() + "whip/" + room
}

// A pion WHIP publisher (RFC 9725) is a participant of the room: two room
// members receive its audio and video, byte for byte; its trickled
// candidates are taken (204); an ICE restart by PATCH is answered and the
// media flows on; DELETE takes it out of the room, and the session is gone.
func TestWHIPPublisher(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 40*time.Second)
	a := s.join(ctx, "ingest", "ann", 0, 0)
	b := s.join(ctx, "ingest", "bob", 1, 0)

	pub, err := client.PublishWHIP(ctx, whipURL(s, "ingest")+"?name=Studio", client.Config{Audio: 1, Video: 1}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Abort()
	if !strings.Contains(pub.Location, "/whip/ingest/"+pub.ID) || pub.ETag == "" {
		t.Errorf("Location %q, ETag %q", pub.Location, pub.ETag)
	}
	if !slices.ContainsFunc(pub.Links, func(l string) bool {
		return strings.Contains(l, "<turn:") && strings.Contains(l, `rel="ice-server"`) && strings.Contains(l, "credential=")
	}) {
		t.Errorf("no built-in TURN server among the Link headers: %q", pub.Links)
	}
	time.Sleep(50 * time.Millisecond) // let a few candidates gather
	if code, err := pub.Trickle(ctx); err != nil || code != http.StatusNoContent {
		t.Errorf("trickle PATCH: %d %v", code, err)
	}
	for _, c := range []*client.Client{a, b} {
		waitFor(t, ctx, "the WHIP publisher's media at "+c.ID, func() bool {
			return packetsFrom(c, pub.ID, webrtc.RTPCodecTypeVideo) > 30 && packetsFrom(c, pub.ID, webrtc.RTPCodecTypeAudio) > 30
		})
		if name := c.Participants()[pub.ID]; name != "Studio" {
			t.Errorf("%s sees the publisher as %q, want Studio", c.ID, name)
		}
	}
	if v := trackFrom(a, pub.ID, webrtc.RTPCodecTypeVideo); v.Stats().Bad != 0 {
		t.Errorf("%d bad payloads", v.Stats().Bad)
	}

	before := s.Engine.Stats().ICERestarts.Load()
	if err := pub.RestartICE(ctx); err != nil {
		t.Fatalf("ICE restart: %v", err)
	}
	n := packetsFrom(a, pub.ID, webrtc.RTPCodecTypeVideo)
	waitFor(t, ctx, "media on after the ICE restart", func() bool {
		return s.Engine.Stats().ICERestarts.Load() == before+1 && packetsFrom(a, pub.ID, webrtc.RTPCodecTypeVideo) > n+30
	})

	if code, err := pub.Delete(ctx); err != nil || code != http.StatusOK {
		t.Fatalf("DELETE: %d %v", code, err)
	}
	waitFor(t, ctx, "the publisher gone from the room", func() bool {
		return slices.Contains(a.Departures(), pub.ID) && slices.Contains(b.Departures(), pub.ID)
	})
	if code, _ := pub.Do(ctx, http.MethodPatch, "application/trickle-ice-sdpfrag", "a=ice-ufrag:x\r\n", ""); code != http.StatusNotFound {
		t.Errorf("PATCH after DELETE: %d, want 404", code)
	}
	if n := s.WHIP.Sessions(); n != 0 {
		t.Errorf("%d WHIP sessions left", n)
	}
	pub.Abort()
	a.Leave()
	b.Leave()
}

// What WHIP refuses, with RFC 9725's status codes, on a server that
// requires tokens: no token or a foreign one (401, 403), a token without
// the publish grant (403, an admin-only token too), the wrong content type (415), an offer that is
// not SDP (400); OPTIONS answers with CORS and Accept-Post; a session's
// URL refuses another token.
func TestWHIPRefusals(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, withKeys(testKeys))
	ctx := testContext(t, 30*time.Second)
	tok := func(room string, g auth.Grants) string {
		return mint(t, testKeys, auth.Token{Room: room, Identity: "encoder", TTL: time.Hour, Grants: g}, time.Now())
	}
	publish := auth.Grants{Publish: true}
	for _, c := range []struct {
		name, token, contentType string
		want                     int
	}{
		{"no token", "", "", http.StatusUnauthorized},
		{"forged token", "x.y.z", "", http.StatusUnauthorized},
		{"another room's token", tok("elsewhere", publish), "", http.StatusForbidden},
		{"no publish grant", tok("guarded", auth.Grants{Subscribe: true}), "", http.StatusForbidden},
		{"an admin-only token", tok(auth.AllRooms, auth.Grants{Admin: true}), "", http.StatusForbidden},
		{"wrong content type", tok("guarded", publish), "text/plain", http.StatusUnsupportedMediaType},
	} {
		_, err := client.PublishWHIP(ctx, whipURL(s, "guarded"), client.Config{Audio: 1, Token: c.token}, c.contentType)
		var he *client.HTTPError
		if !errors.As(err, &he) || he.Status != c.want {
			t.Errorf("%s: %v, want %d", c.name, err, c.want)
		}
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, whipURL(s, "guarded"), strings.NewReader("not sdp"))
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer "+tok("guarded", publish))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("an offer that is not SDP: %v %v, want 400", resp.Status, err)
	} else {
		resp.Body.Close()
	}
	opt, _ := http.NewRequestWithContext(ctx, http.MethodOptions, whipURL(s, "guarded"), nil)
	if resp, err := http.DefaultClient.Do(opt); err != nil {
		t.Error(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Accept-Post") != "application/sdp" ||
			resp.Header.Get("Access-Control-Allow-Origin") == "" || !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "Location") {
			t.Errorf("OPTIONS: %s %v", resp.Status, resp.Header)
		}
	}

	mine := tok("guarded", publish)
	pub, err := client.PublishWHIP(ctx, whipURL(s, "guarded"), client.Config{Audio: 1, Token: mine}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Abort()
	other := mint(t, testKeys, auth.Token{Room: "guarded", Identity: "another", TTL: time.Hour, Grants: publish}, time.Now())
	if code, _ := pub.Do(ctx, http.MethodDelete, "", "", other); code != http.StatusUnauthorized {
		t.Errorf("DELETE with another token: %d, want 401", code)
	}
	if code, _ := pub.Do(ctx, http.MethodPatch, "application/sdp", "x", mine); code != http.StatusUnsupportedMediaType {
		t.Errorf("PATCH of the wrong type: %d, want 415", code)
	}
	if code, err := pub.Delete(ctx); err != nil || code != http.StatusOK {
		t.Errorf("DELETE: %d %v", code, err)
	}
	waitFor(t, ctx, "the room empty", func() bool { _, n := s.Rooms.Counts(); return n == 0 })
}

package e2e

// The admin API (issue 14, part 1) against a live server with pion
// participants.

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/admin"
	"github.com/roundtable-sfu/roundtable/internal/auth"
	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/sfu"
	"github.com/roundtable-sfu/roundtable/signal"
)

// apiCall makes one admin API request and decodes a JSON answer into out
// (nil: ignore it); it returns the status and the error code, if any.
func apiCall(t *testing.T, s *testServer, method, path, token string, body any, out any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, strings.TrimSuffix(s.URL(), "/")+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var e struct {
		Error struct{ Code, Message string }
	}
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(raw, &e); err != nil || e.Error.Code == "" {
			t.Errorf("%s %s: %d with a body that is no JSON error: %q", method, path, resp.StatusCode, raw)
		}
		return resp.StatusCode, e.Error.Code
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v in %q", method, path, err, raw)
		}
	}
	return resp.StatusCode, ""
}

type apiRoom struct {
	Room struct {
		Name                 string
		Participants, Tracks int
		Created              time.Time
	}
	Participants []struct {
		ID, Name, Identity, Path string
		JoinedAt                 time.Time
		Grants                   struct{ Publish, Subscribe, PublishData bool }
		Tracks                   []struct {
			ID, Kind string
			Muted    bool
		}
		Connected bool
	}
}

// Every route with the participants' view of it: listing and showing,
// a data message from "server", removing one participant (gone and freed,
// bye "removed") and closing the room (bye "room_closed").
func TestAdminAPI(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, withKeys(testKeys))
	ctx := testContext(t, 30*time.Second)
	now := time.Now()
	join := func(id string, audio, video int) *client.Client {
		return s.joinWith(ctx, client.Config{Room: "ops", Name: id, Audio: audio, Video: video,
			Token: mint(t, testKeys, auth.Token{Room: "ops", Identity: id, TTL: time.Hour, Grants: auth.All}, now)})
	}
	a, b := join("ann", 1, 1), join("bob", 0, 0)
	waitFor(t, ctx, "bob receives ann's video", func() bool { return packetsFrom(b, a.ID, webrtc.RTPCodecTypeVideo) > 10 })
	for _, c := range []*client.Client{a, b} {
		if err := c.WaitDataChannel(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	adminTok := mint(t, testKeys, auth.Token{Room: auth.AllRooms, Identity: "ops", TTL: time.Hour, Grants: auth.Grants{Admin: true}}, now)

	var list struct {
		Rooms []struct {
			Name                 string
			Participants, Tracks int
		}
	}
	if st, code := apiCall(t, s, "GET", "/api/v1/rooms", adminTok, nil, &list); st != 200 {
		t.Fatalf("list rooms: %d %s", st, code)
	}
	if len(list.Rooms) != 1 || list.Rooms[0].Name != "ops" || list.Rooms[0].Participants != 2 || list.Rooms[0].Tracks != 2 {
		t.Errorf("rooms: %+v, want ops with 2 participants and 2 tracks", list.Rooms)
	}
	var show apiRoom
	if st, code := apiCall(t, s, "GET", "/api/v1/rooms/ops", adminTok, nil, &show); st != 200 {
		t.Fatalf("show room: %d %s", st, code)
	}
	if len(show.Participants) != 2 || show.Participants[0].ID != a.ID || show.Participants[0].Identity != "ann" ||
		len(show.Participants[0].Tracks) != 2 || !show.Participants[0].Connected || show.Participants[0].Path != "udp" ||
		!show.Participants[0].Grants.Publish || time.Since(show.Participants[0].JoinedAt) > time.Minute {
		t.Errorf("room: %+v", show)
	}

	var sent struct{ Recipients int }
	if st, code := apiCall(t, s, "POST", "/api/v1/rooms/ops/data", adminTok, map[string]string{"text": "maintenance at noon"}, &sent); st != 200 || sent.Recipients != 2 {
		t.Errorf("data: %d %s, %d recipients", st, code, sent.Recipients)
	}
	for _, c := range []*client.Client{a, b} {
		waitFor(t, ctx, "the server's message", func() bool {
			return slices.ContainsFunc(c.Data(), func(m client.DataMsg) bool {
				return m.From == "server" && m.IsString && string(m.Data) == "maintenance at noon"
			})
		})
	}
	if st, code := apiCall(t, s, "POST", "/api/v1/rooms/ops/data", adminTok, map[string]string{"text": strings.Repeat("x", 20000)}, nil); st != 413 || code != admin.CodeTooLarge {
		t.Errorf("oversize data: %d %s", st, code)
	}
	if st, code := apiCall(t, s, "POST", "/api/v1/rooms/ops/data", adminTok, map[string]any{"text": "a", "binary": "YQ=="}, nil); st != 400 || code != admin.CodeBadRequest {
		t.Errorf("both text and binary: %d %s", st, code)
	}

	// Mute: b stops getting a's video and hears it is muted; unmute: the
	// video comes back, its sequence numbers without a gap.
	video := trackFrom(b, a.ID, webrtc.RTPCodecTypeVideo)
	trackPath := "/api/v1/rooms/ops/participants/" + a.ID + "/tracks/" + video.TrackID
	gaps := video.Stats().SeqGaps
	if st, code := apiCall(t, s, "POST", trackPath+"/mute", adminTok, nil, nil); st != 204 {
		t.Fatalf("mute: %d %s", st, code)
	}
	waitFor(t, ctx, "b told the video is muted", func() bool { ti, ok := b.TrackInfo(video.TrackID); return ok && ti.Muted })
	dropped := func() uint64 { return s.Engine.Stats().Dropped[sfu.DropServerMuted].Load() }
	waitFor(t, ctx, "a's video dropped by the server", func() bool { return dropped() > 30 })
	n := video.Stats().Packets
	waitFor(t, ctx, "a's video not forwarded", func() bool { return dropped() > 90 })
	if got := video.Stats().Packets; got > n+2 {
		t.Errorf("b got %d packets of the muted video", got-n)
	}
	unmuted := time.Now()
	if st, code := apiCall(t, s, "POST", trackPath+"/unmute", adminTok, nil, nil); st != 204 {
		t.Fatalf("unmute: %d %s", st, code)
	}
	waitFor(t, ctx, "b told the video is back", func() bool { ti, _ := b.TrackInfo(video.TrackID); return !ti.Muted })
	waitFor(t, ctx, "a's video back at b, from a keyframe", func() bool {
		return !video.KeyframeAfter(unmuted).IsZero() && video.Stats().Packets > n+30
	})
	if st := video.Stats(); st.SeqGaps != gaps {
		t.Errorf("sequence gaps at b: %d after the unmute, %d before", st.SeqGaps, gaps)
	}
	if st, code := apiCall(t, s, "POST", "/api/v1/rooms/ops/participants/"+a.ID+"/tracks/nope/mute", adminTok, nil, nil); st != 404 || code != admin.CodeNotFound {
		t.Errorf("mute an unknown track: %d %s", st, code)
	}

	// Grants: b loses subscribe (its tracks end) and gets it back; a
	// loses publish (its tracks are unpublished, it is told).
	patch := func(id string, grants map[string]bool) {
		t.Helper()
		var out struct{ Grants map[string]bool }
		if st, code := apiCall(t, s, "PATCH", "/api/v1/rooms/ops/participants/"+id, adminTok, map[string]any{"grants": grants}, &out); st != 200 {
			t.Fatalf("patch %v: %d %s", grants, st, code)
		}
		for k, v := range grants {
			if out.Grants[k] != v {
				t.Errorf("patch %v: grants now %v", grants, out.Grants)
			}
		}
	}
	patch(b.ID, map[string]bool{"subscribe": false})
	waitFor(t, ctx, "b receives nothing", func() bool { return len(b.ActiveRemote()) == 0 })
	patch(b.ID, map[string]bool{"subscribe": true})
	waitFor(t, ctx, "b receives a's video again", func() bool { return packetsFrom(b, a.ID, webrtc.RTPCodecTypeVideo) > 30 })
	patch(a.ID, map[string]bool{"publish": false})
	waitFor(t, ctx, "a's tracks unpublished, a told", func() bool {
		return len(b.ActiveRemote()) == 0 && a.HasError(signal.CodePublishNotAllowed)
	})
	if st, code := apiCall(t, s, "POST", "/api/v1/rooms/ops/participants/"+b.ID+"/remove", adminTok, nil, nil); st != 204 {
		t.Fatalf("remove: %d %s", st, code)
	}
	waitFor(t, ctx, "bob removed", func() bool { return b.Bye() == admin.ByeRemoved && slices.Contains(a.Departures(), b.ID) })
	waitFor(t, ctx, "bob's PeerConnection freed", func() bool { return s.Engine.Stats().Peers.Load() == 1 })
	if st, code := apiCall(t, s, "POST", "/api/v1/rooms/ops/participants/"+b.ID+"/remove", adminTok, nil, nil); st != 404 || code != admin.CodeNotFound {
		t.Errorf("remove again: %d %s", st, code)
	}

	if st, code := apiCall(t, s, "DELETE", "/api/v1/rooms/ops", adminTok, nil, nil); st != 204 {
		t.Fatalf("close room: %d %s", st, code)
	}
	waitFor(t, ctx, "the room closed", func() bool { r, _ := s.Rooms.Counts(); return a.Bye() == admin.ByeRoomClosed && r == 0 })
	for _, path := range []string{"/api/v1/rooms/ops", "/api/v1/nothing"} {
		if st, code := apiCall(t, s, "GET", path, adminTok, nil, nil); st != 404 || code != admin.CodeNotFound {
			t.Errorf("GET %s: %d %s, want 404", path, st, code)
		}
	}
	if st, code := apiCall(t, s, "PUT", "/api/v1/rooms", adminTok, nil, nil); st != 405 || code != admin.CodeMethod {
		t.Errorf("PUT rooms: %d %s, want 405", st, code)
	}
}

// Tokens: missing, wrongly signed, expired and join tokens are refused; a
// token for one room administers that room only; an open server answers
// its loopback clients.
func TestAdminAPITokens(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, withKeys(testKeys))
	ctx := testContext(t, 30*time.Second)
	now := time.Now()
	s.joinWith(ctx, client.Config{Room: "ops", Name: "ann",
		Token: mint(t, testKeys, auth.Token{Room: "ops", Identity: "ann", TTL: time.Hour, Grants: auth.All}, now)})
	adminFor := func(room string, at time.Time, k auth.Keys) string {
		return mint(t, k, auth.Token{Room: room, Identity: "ops", TTL: time.Hour, Grants: auth.Grants{Admin: true}}, at)
	}
	other := auth.Keys{Key: testKeys.Key, Secret: strings.Repeat("z", 32)}
	for _, tc := range []struct {
		name, path, token string
		status            int
		code              string
	}{
		{"no token", "/api/v1/rooms", "", 401, admin.CodeUnauthorized},
		{"wrong secret", "/api/v1/rooms", adminFor(auth.AllRooms, now, other), 401, admin.CodeUnauthorized},
		{"expired", "/api/v1/rooms", adminFor(auth.AllRooms, now.Add(-2*time.Hour), testKeys), 401, admin.CodeUnauthorized},
		{"a join token", "/api/v1/rooms/ops", mint(t, testKeys, auth.Token{Room: "ops", Identity: "x", TTL: time.Hour, Grants: auth.All}, now), 403, admin.CodeForbidden},
		{"another room's admin", "/api/v1/rooms/ops", adminFor("elsewhere", now, testKeys), 403, admin.CodeForbidden},
		{"one room's admin, all rooms", "/api/v1/rooms", adminFor("ops", now, testKeys), 403, admin.CodeForbidden},
		{"this room's admin", "/api/v1/rooms/ops", adminFor("ops", now, testKeys), 200, ""},
		{"the description, no token", "/api/v1/openapi.json", "", 200, ""},
	} {
		if st, code := apiCall(t, s, "GET", tc.path, tc.token, nil, nil); st != tc.status || code != tc.code {
			t.Errorf("%s: %d %q, want %d %q", tc.name, st, code, tc.status, tc.code)
		}
	}
	// An admin token administers; it does not join.
	if c, err := client.Join(ctx, client.Config{URL: s.WSURL(), Room: "ops", Name: "ops", Token: adminFor("ops", now, testKeys)}); err == nil {
		c.Abort()
		t.Error("an admin token joined a room")
	} else if !strings.Contains(err.Error(), "token_no_grants") {
		t.Errorf("join with an admin token: %v, want token_no_grants", err)
	}
	// Schemes are case-insensitive.
	req, _ := http.NewRequest("GET", strings.TrimSuffix(s.URL(), "/")+"/api/v1/rooms", nil)
	req.Header.Set("Authorization", "bearer "+adminFor(auth.AllRooms, now, testKeys))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("lowercase bearer: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	open := startServer(t)
	if st, code := apiCall(t, open, "GET", "/api/v1/rooms", "", nil, nil); st != 200 {
		t.Errorf("open server from loopback: %d %s", st, code)
	}
}

// The OpenAPI document is OpenAPI 3, lists exactly the routes the server
// serves, and is the one in docs/.
func TestOpenAPIListsEveryRoute(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(admin.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi %q, want 3.x", doc.OpenAPI)
	}
	var described []string
	for path, ops := range doc.Paths {
		for method := range ops {
			described = append(described, strings.ToUpper(method)+" "+path)
		}
	}
	served := admin.Routes()
	sort.Strings(described)
	sort.Strings(served)
	if !slices.Equal(described, served) {
		t.Errorf("described %v\nserved    %v", described, served)
	}
	inDocs, err := os.ReadFile("../docs/openapi.json")
	if err != nil || !bytes.Equal(inDocs, admin.OpenAPI()) {
		t.Errorf("docs/openapi.json differs from admin/openapi.json (%v)", err)
	}
}

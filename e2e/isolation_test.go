package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/signal"
)

// Issue 6, test 1: a participant of room A that sends room B's track ids,
// participant ids, candidates and an offer naming B's tracks receives no
// byte of room B's media or data, and room B carries on.
func TestRoomIsolationUnderHostileClient(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 40*time.Second)
	pubB := s.join(ctx, "room-b", "pub-b", 1, 1)
	subB := s.join(ctx, "room-b", "sub-b", 0, 0)
	waitFor(t, ctx, "room B's media", func() bool { v := videoTrack(subB); return v != nil && v.Stats().Packets > 10 })
	var bTracks []string
	for _, r := range subB.Remote() {
		bTracks = append(bTracks, r.TrackID)
	}
	bCands := subB.RemoteCandidates()

	hostile := s.join(ctx, "room-a", "hostile", 1, 0)
	waitFor(t, ctx, "hostile connected", hostile.Connected)
	for _, id := range bTracks {
		_ = hostile.SendJSON(map[string]any{"type": "viewport", "track": id, "width": 640, "height": 360, "visible": true})
		_ = hostile.SendJSON(map[string]any{"type": "track-update", "track": id, "source": "camera", "muted": false})
	}
	for _, c := range bCands {
		_ = hostile.SendJSON(map[string]any{"type": "candidate", "candidate": webrtc.ICECandidateInit{Candidate: c}})
	}
	// An offer whose msids claim room B's participant and tracks.
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if len(bTracks) > 0 {
		tr, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, bTracks[0], pubB.ID)
		_, _ = pc.AddTrack(tr)
	}
	if offer, err := pc.CreateOffer(nil); err == nil {
		_ = hostile.SendJSON(map[string]string{"type": "offer", "sdp": offer.SDP})
	}
	if err := hostile.WaitDataChannel(10 * time.Second); err == nil {
		_ = hostile.SendText(pubB.ID + ":spoofed as room B's publisher")
	}
	waitFor(t, ctx, "unknown_track for room B's ids", func() bool { return hostile.HasError(signal.CodeUnknownTrack) })
	if err := pubB.WaitDataChannel(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	_ = pubB.SendText("room B only")

	time.Sleep(2 * time.Second) // room B's media and data keep flowing meanwhile
	for _, r := range hostile.Remote() {
		t.Errorf("the hostile client receives a track %s (stream %s)", r.TrackID, r.StreamID)
	}
	for _, m := range hostile.Data() {
		t.Errorf("the hostile client receives data from %s: %q", m.From, m.Data)
	}
	if _, ok := hostile.Participants()[pubB.ID]; ok {
		t.Errorf("the hostile client learned room B's participant")
	}
	for _, m := range subB.Data() {
		if m.From != pubB.ID || strings.Contains(string(m.Data), "spoofed") {
			t.Errorf("room B got a message from %s: %q", m.From, m.Data)
		}
	}
	waitFor(t, ctx, "room B's own message", func() bool { return len(subB.Data()) == 1 })
	v := videoTrack(subB)
	before := v.Stats().Packets
	time.Sleep(500 * time.Millisecond)
	if v.Stats().Packets-before < 10 {
		t.Errorf("room B's media stalled")
	}
	if st := v.Stats(); len(st.PayloadIDs) != 1 || st.PayloadIDs[pubB.ID] == 0 {
		t.Errorf("room B's subscriber got payloads from %v", st.PayloadIDs)
	}
	for _, c := range []*client.Client{pubB, subB} {
		if errs := c.Errors(); len(errs) != 0 {
			t.Errorf("room B member %s got errors %v", c.ID, errs)
		}
	}
}

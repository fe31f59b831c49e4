package e2e

import (
	"testing"
	"time"

	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/internal/client"
)

func videoTracks(c *client.Client) int {
	n := 0
	for _, r := range c.ActiveRemote() {
		if r.Kind == webrtc.RTPCodecTypeVideo {
			n++
		}
	}
	return n
}

// A client that adds and later removes a track after joining offers again;
// the server answers keeping the DTLS role, the others get the track and
// then lose it, and the client's first track keeps flowing throughout.
func TestClientRenegotiation(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 30*time.Second)
	a, b := s.join(ctx, "reneg", "a", 1, 0), s.join(ctx, "reneg", "b", 0, 0)
	waitFor(t, ctx, "a's audio at b", func() bool { return len(b.ActiveRemote()) == 1 })
	if err := a.Publish(webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "a's new video at b", func() bool {
		v := videoTrack(b)
		return v != nil && v.Stats().Packets > 20
	})
	v := videoTrack(b)
	if pub, ok := b.Publisher(v.TrackID); !ok || pub != a.ID {
		t.Errorf("video track mapped to %q, want %q", pub, a.ID)
	}
	if err := a.Unpublish(a.Local()[1]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the video to end at b", func() bool { return videoTracks(b) == 0 })
	waitFor(t, ctx, "track-unpublished", func() bool { _, ok := b.Publisher(v.TrackID); return !ok })
	audio := b.ActiveRemote()[0]
	before := audio.Stats().Packets
	time.Sleep(300 * time.Millisecond)
	if audio.Stats().Packets-before < 10 {
		t.Errorf("a's audio stopped during renegotiation")
	}
	if f := append(a.Failures(), b.Failures()...); len(f) > 0 || len(a.Errors()) > 0 {
		t.Errorf("failures %v, errors %v", f, a.Errors())
	}
}

// Offer collision: the server's offer (for a new publisher's tracks) and
// the client's own offer (a new track) cross. The server, impolite, ignores
// the client's offer; the client, polite, answers the server's and offers
// again. In the end both directions carry every track. (a's new video is
// attached by pion's AddTrack to the m-line the server created for b's
// video, as a browser's addTrack would: the server must receive on it.)
func TestOfferCollision(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 30*time.Second)
	a := s.join(ctx, "glare", "a", 1, 0)
	waitFor(t, ctx, "a connected", a.Connected)
	a.CollideOnNextOffer()
	b := s.join(ctx, "glare", "b", 1, 1) // b's tracks make the server offer to a
	waitFor(t, ctx, "a's video at b", func() bool { v := videoTrack(b); return v != nil && v.Stats().Packets > 10 })
	waitFor(t, ctx, "b's tracks at a", func() bool { return len(a.ActiveRemote()) == 2 })
	if a.Collisions() != 1 {
		t.Fatalf("no collision was staged")
	}
	// The first offer and the re-offer were answered; the colliding one
	// was ignored, without an error.
	time.Sleep(200 * time.Millisecond)
	if n := a.AnswersReceived(); n != 2 {
		t.Errorf("a received %d answers, want 2", n)
	}
	if len(b.ActiveRemote()) != 2 {
		t.Errorf("b receives %d tracks, want 2", len(b.ActiveRemote()))
	}
	if f := a.Failures(); len(f) > 0 || len(a.Errors()) > 0 {
		t.Errorf("failures %v, errors %v", f, a.Errors())
	}
}

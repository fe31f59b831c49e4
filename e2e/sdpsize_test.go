package e2e

// Sessions that outgrow the protocol (issue 10, input 9): a member who
// stays while others come and go keeps an SDP proportional to what it
// receives now, because m-lines of removed tracks are reused.

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/internal/client"
)

// mlines counts the audio and video m-lines of an SDP.
func mlines(sdp string) int {
	return strings.Count(sdp, "\nm=audio ") + strings.Count(sdp, "\nm=video ")
}

// A member stays while, round after round, a publisher of audio and video
// joins and leaves (every other round with H.264), and a second one
// overlaps it now and then. After each round the member's SDP holds its own
// m-lines plus at most the most it ever received at once of each codec; its
// size stops growing; every round's media arrives on a reused m-line with
// the payload type that m-line carries, and with sender reports (the reused
// m-line's sender has the PeerConnection's interceptors).
func TestMLinesAreReused(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 120*time.Second)
	stay := s.join(ctx, "reuse", "stay", 1, 1)
	waitFor(t, ctx, "stay connected", stay.Connected)
	const rounds = 24
	var sizes []int
	for i := 0; i < rounds; i++ {
		cfg := client.Config{Room: "reuse", Name: fmt.Sprintf("guest%d", i), Audio: 1, Video: 1, VideoCodec: webrtc.MimeTypeVP8}
		if i%2 == 1 {
			cfg.VideoCodec = webrtc.MimeTypeH264
		}
		guest := s.joinWith(ctx, cfg)
		var extra *client.Client
		if i%5 == 2 { // two guests at once: four tracks
			extra = s.join(ctx, "reuse", fmt.Sprintf("extra%d", i), 1, 1)
			waitMedia(t, ctx, stay, extra, webrtc.RTPCodecTypeVideo, 5)
		}
		v := waitMedia(t, ctx, stay, guest, webrtc.RTPCodecTypeVideo, 10)
		a := waitMedia(t, ctx, stay, guest, webrtc.RTPCodecTypeAudio, 10)
		checkOnMLine(t, fmt.Sprintf("round %d", i), stay, v, strings.TrimPrefix(cfg.VideoCodec, "video/"))
		checkOnMLine(t, fmt.Sprintf("round %d", i), stay, a, "opus")
		if i > 0 && !strings.Contains(stay.RemoteSDP(), "a=mid:"+v.Mid+"\r") {
			t.Fatalf("round %d: mid %s not in the SDP", i, v.Mid)
		}
		if i == 5 || i == 6 {
			// A reused m-line's sender has the PeerConnection's interceptors:
			// sender reports (RFC 3550 §6.4) arrive for its track.
			waitFor(t, ctx, fmt.Sprintf("round %d: a sender report on m-line %s", i, v.Mid), func() bool { return v.SRs.Load() > 0 })
		}
		guest.Leave()
		if extra != nil {
			extra.Leave()
		}
		waitFor(t, ctx, "the guests' tracks gone", func() bool { return len(stay.ActiveRemote()) == 0 })
		// The removal is negotiated once the member has answered it.
		waitFor(t, ctx, "the removal negotiated", func() bool {
			sdp := stay.RemoteSDP()
			return !strings.Contains(sdp, guest.ID) && (extra == nil || !strings.Contains(sdp, extra.ID))
		})
		sdp := stay.RemoteSDP()
		sizes = append(sizes, len(sdp))
		// Own audio and video, plus at most two audio, two VP8 and one H.264
		// m-line: an m-line is reused only for a codec the member accepted
		// on it, and the busiest rounds have two guests.
		if n := mlines(sdp); n > 2+2+2+1 {
			t.Fatalf("round %d: %d m-lines in the member's SDP, want at most 7", i, n)
		}
	}
	t.Logf("SDP sizes by round: %v", sizes)
	if first, last := sizes[3], sizes[len(sizes)-1]; last > first+first/10 {
		t.Errorf("the member's SDP grew from %d bytes (round 3) to %d (round %d)", first, last, rounds)
	}
	if errs := stay.Errors(); len(errs) != 0 {
		t.Errorf("the member got errors: %v", errs)
	}
}

// A member whose DTLS is not up yet is offered tracks, and then their
// removal; a pion client applies each description's receivers only once
// DTLS is up, in order, against the newest transceivers, and the stale
// ones leave a removed track's m-line unable to receive again. So such an
// m-line is never reused (issue 16: a mover, still connecting, subscribed
// to a lost node's tracks and then to their replacements, which never
// arrived): the next tracks arrive, on new m-lines.
func TestMLineRemovedBeforeConnectedNotReused(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 60*time.Second)
	guest := s.join(ctx, "early", "guest", 1, 1)
	stay := s.joinWith(ctx, client.Config{Room: "early", Name: "stay", Audio: 1, Video: 1, HoldICE: true})
	waitFor(t, ctx, "stay offered the guest's two tracks", func() bool { return len(midsOf(stay.RemoteSDP(), guest.ID)) == 2 })
	removed := midsOf(stay.RemoteSDP(), guest.ID)
	guest.Leave()
	waitFor(t, ctx, "the removal negotiated", func() bool { return !strings.Contains(stay.RemoteSDP(), guest.ID) })
	next := s.join(ctx, "early", "next", 1, 1)
	waitFor(t, ctx, "stay offered the next one's two tracks", func() bool { return len(midsOf(stay.RemoteSDP(), next.ID)) == 2 })
	if stay.Connected() {
		t.Fatal("stay connected while its ICE was held")
	}
	stay.ReleaseICE()
	a := waitMedia(t, ctx, stay, next, webrtc.RTPCodecTypeAudio, 10)
	v := waitMedia(t, ctx, stay, next, webrtc.RTPCodecTypeVideo, 10)
	for _, r := range []*client.RemoteTrack{a, v} {
		if slices.Contains(removed, r.Mid) {
			t.Errorf("%s arrived on m-line %s, one removed before DTLS was up", r.Kind, r.Mid)
		}
	}
}

// midsOf returns the mids of the m-lines of sdp that carry a track of
// participant id.
func midsOf(sdp, id string) []string {
	var mids []string
	for _, sec := range strings.Split(sdp, "\nm=")[1:] {
		if _, rest, ok := strings.Cut(sec, "a=mid:"); ok && strings.Contains(sec, "msid:"+id+" ") {
			mids = append(mids, strings.TrimSpace(strings.SplitN(rest, "\n", 2)[0]))
		}
	}
	return mids
}

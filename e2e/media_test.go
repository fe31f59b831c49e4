package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/internal/client"
)

// Test 1: four participants each publish Opus + VP8; each receives exactly
// the six remote tracks, mapped to the right participants, with payloads
// byte-identical to what was sent.
func TestFourParticipantsFullMesh(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 30*time.Second)
	var cs []*client.Client
	for _, n := range []string{"ann", "bob", "cat", "dan"} {
		cs = append(cs, s.join(ctx, "four", n, 1, 1))
	}
	for _, c := range cs {
		c := c
		waitFor(t, ctx, "six remote tracks with media", func() bool {
			rs := c.ActiveRemote()
			if len(rs) != 6 {
				return false
			}
			for _, r := range rs {
				if r.Stats().Packets < 20 {
					return false
				}
			}
			return true
		})
	}
	time.Sleep(500 * time.Millisecond) // more media, then check everything
	ids := map[string]bool{}
	for _, c := range cs {
		ids[c.ID] = true
	}
	for _, c := range cs {
		rs := c.ActiveRemote()
		if len(rs) != 6 {
			t.Fatalf("%s: %d remote tracks, want 6", c.ID, len(rs))
		}
		perPublisher := map[string]map[webrtc.RTPCodecType]int{}
		for _, r := range rs {
			st := r.Stats()
			if r.StreamID == c.ID || !ids[r.StreamID] {
				t.Errorf("%s receives a track of stream %q", c.ID, r.StreamID)
			}
			// The signaling events map the track to its publisher.
			if pub, ok := c.Publisher(r.TrackID); !ok || pub != r.StreamID {
				t.Errorf("track %s: events say publisher %q (known %v), msid says %q", r.TrackID, pub, ok, r.StreamID)
			}
			if st.Bad != 0 {
				t.Errorf("track %s: %d payloads differ from what was sent", r.TrackID, st.Bad)
			}
			// Every payload names its publisher, which must be the msid stream.
			if len(st.PayloadIDs) != 1 || st.PayloadIDs[r.StreamID] != st.Packets {
				t.Errorf("track %s of %s carries payloads of %v", r.TrackID, r.StreamID, st.PayloadIDs)
			}
			if perPublisher[r.StreamID] == nil {
				perPublisher[r.StreamID] = map[webrtc.RTPCodecType]int{}
			}
			perPublisher[r.StreamID][r.Kind]++
		}
		if len(perPublisher) != 3 {
			t.Errorf("%s receives from %d publishers, want 3", c.ID, len(perPublisher))
		}
		for p, kinds := range perPublisher {
			if kinds[webrtc.RTPCodecTypeAudio] != 1 || kinds[webrtc.RTPCodecTypeVideo] != 1 {
				t.Errorf("%s receives %v from %s, want one audio and one video", c.ID, kinds, p)
			}
		}
	}
	// RTCP reports flow both ways (RFC 3550 §6.4): the server sends sender
	// reports for every forwarded track and receiver reports to publishers.
	time.Sleep(time.Second) // the report interval is 1 s
	for _, c := range cs {
		for _, r := range c.ActiveRemote() {
			if r.SRs.Load() == 0 {
				t.Errorf("%s: no sender report for track %s", c.ID, r.TrackID)
			}
		}
		for _, l := range c.Local() {
			if l.RRs.Load() == 0 {
				t.Errorf("%s: no receiver report for its own track", c.ID)
			}
		}
	}
	for _, c := range cs {
		c.Leave()
	}
}

// VP9 and H.264 are forwarded like VP8: each subscriber is offered the
// publisher's codec and receives the payload unchanged.
func TestVideoCodecs(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 30*time.Second)
	for _, codec := range []string{webrtc.MimeTypeVP9, webrtc.MimeTypeH264} {
		room := strings.ToLower(strings.TrimPrefix(codec, "video/"))
		pub := s.joinWith(ctx, client.Config{Room: room, Name: "pub", Video: 1, VideoCodec: codec})
		sub := s.join(ctx, room, "sub", 0, 0)
		waitFor(t, ctx, codec+" video", func() bool { v := videoTrack(sub); return v != nil && v.Stats().Packets > 30 })
		v := videoTrack(sub)
		if !strings.EqualFold(v.Codec, codec) {
			t.Errorf("subscriber receives %s, publisher sends %s", v.Codec, codec)
		}
		if st := v.Stats(); st.Bad != 0 || st.PayloadIDs[pub.ID] != st.Packets {
			t.Errorf("%s: %d bad payloads, ids %v", codec, st.Bad, st.PayloadIDs)
		}
		pub.Leave()
		sub.Leave()
	}
}

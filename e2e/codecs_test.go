package e2e

// Codecs and payload types (issue 10, inputs 1 and 2): every subscriber
// m-line carries codecs and payload-type numbers this subscriber negotiated,
// and packets go out with the number of their m-line.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/signal"
)

// mlinePayloadTypes returns the payload types the m-line with mid lists in
// an SDP, and their codec names by number.
func mlinePayloadTypes(sdp, mid string) map[uint8]string {
	for _, sec := range strings.Split(sdp, "\nm=")[1:] {
		if !strings.Contains(sec, "\na=mid:"+mid+"\r") && !strings.Contains(sec, "\na=mid:"+mid+"\n") {
			continue
		}
		out := map[uint8]string{}
		for _, line := range strings.Split(sec, "\n") {
			line = strings.TrimSpace(line)
			if rest, ok := strings.CutPrefix(line, "a=rtpmap:"); ok {
				pt, name, _ := strings.Cut(rest, " ")
				n, err := strconv.Atoi(pt)
				if err == nil {
					enc, _, _ := strings.Cut(name, "/")
					out[uint8(n)] = enc
				}
			}
		}
		return out
	}
	return nil
}

// checkOnMLine fails unless every packet of r carried a payload type listed
// on r's m-line in the client's current remote description, and it names
// codec; and r received media.
func checkOnMLine(t *testing.T, who string, c *client.Client, r *client.RemoteTrack, codec string) {
	t.Helper()
	st := r.Stats()
	pts := mlinePayloadTypes(c.RemoteSDP(), r.Mid)
	if st.Packets == 0 || st.Bad != 0 {
		t.Errorf("%s: %s track %s: %d packets, %d bad payloads", who, r.Kind, r.TrackID, st.Packets, st.Bad)
	}
	for pt, n := range st.PayloadTypes {
		if name, ok := pts[pt]; !ok {
			t.Errorf("%s: %d %s packets with payload type %d, which m-line %s does not carry (it has %v)", who, n, r.Kind, pt, r.Mid, pts)
		} else if !strings.EqualFold(name, codec) {
			t.Errorf("%s: %s packets with payload type %d = %s on m-line %s, want %s", who, r.Kind, pt, name, r.Mid, codec)
		}
	}
}

// remoteOf returns c's active remote track of kind published by pub.
func remoteOf(c *client.Client, pub *client.Client, kind webrtc.RTPCodecType) *client.RemoteTrack {
	for _, r := range c.ActiveRemote() {
		if r.Kind == kind && r.StreamID == pub.ID {
			return r
		}
	}
	return nil
}

func waitMedia(t *testing.T, ctx context.Context, c, pub *client.Client, kind webrtc.RTPCodecType, packets int) *client.RemoteTrack {
	t.Helper()
	var r *client.RemoteTrack
	if err := client.Wait(ctx, func() bool {
		r = remoteOf(c, pub, kind)
		return r != nil && r.Stats().Packets >= packets
	}); err != nil {
		t.Fatalf("waiting for %s's %s at %s: %v\npublisher: %s", pub.ID, kind, c.ID, err, pub.Debug())
	}
	return r
}

// A viewer that joins with nothing to publish (or a microphone only) gets a
// VP8 publisher, then an H.264 one, then a VP9 one, then another VP8 one:
// each arrives in its own codec, on an m-line that carries it, with no
// error. The codecs of a kind are fixed by the first m-line of that kind
// negotiated (pion), so the server's first video m-line must offer them
// all.
func TestViewerReceivesEveryCodec(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	order := []string{webrtc.MimeTypeVP8, webrtc.MimeTypeH264, webrtc.MimeTypeVP9, webrtc.MimeTypeVP8}
	for _, tc := range []struct {
		name   string
		viewer client.Config
		first  string // the first publisher's codec
	}{
		{"receive-only", client.Config{}, webrtc.MimeTypeVP8},
		{"microphone only", client.Config{Audio: 1}, webrtc.MimeTypeVP8},
		{"receive-only, H.264 first", client.Config{}, webrtc.MimeTypeH264},
		{"Firefox numbering, receive-only", client.Config{Codecs: client.FirefoxCodecs}, webrtc.MimeTypeVP9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t, 60*time.Second)
			room := strings.ReplaceAll(tc.name, " ", "-")
			room = strings.NewReplacer(",", "", ".", "").Replace(room)
			viewer := tc.viewer
			viewer.Room, viewer.Name = room, "viewer"
			v := s.joinWith(ctx, viewer)
			codecs := append([]string{tc.first}, order[1:]...)
			for i, codec := range codecs {
				pub := s.joinWith(ctx, client.Config{Room: room, Name: fmt.Sprintf("pub%d", i), Video: 1, VideoCodec: codec})
				r := waitMedia(t, ctx, v, pub, webrtc.RTPCodecTypeVideo, 20)
				if !strings.EqualFold(r.Codec, codec) {
					t.Errorf("publisher %d sends %s; the viewer's track is %s", i, codec, r.Codec)
				}
				checkOnMLine(t, "viewer", v, r, strings.TrimPrefix(codec, "video/"))
			}
			if errs := v.Errors(); len(errs) != 0 {
				t.Errorf("the viewer got errors: %v", errs)
			}
		})
	}
}

// A subscriber whose first video m-line (its own camera's) accepted VP8
// only cannot receive H.264: it is told so (codec_not_supported) and
// receives everything else, before and after, with no negotiation wedged.
func TestUnsupportedCodecIsSkipped(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 40*time.Second)
	vp8only := s.joinWith(ctx, client.Config{Room: "only", Name: "vp8only", Video: 1, Codecs: client.OnlyCodecs(webrtc.MimeTypeVP8)})
	h264 := s.joinWith(ctx, client.Config{Room: "only", Name: "h264", Audio: 1, Video: 1, VideoCodec: webrtc.MimeTypeH264})
	waitMedia(t, ctx, vp8only, h264, webrtc.RTPCodecTypeAudio, 20)
	waitFor(t, ctx, "codec_not_supported", func() bool { return vp8only.HasError(signal.CodeCodecNotSupported) })
	if r := remoteOf(vp8only, h264, webrtc.RTPCodecTypeVideo); r != nil {
		t.Errorf("the VP8-only subscriber got the H.264 track (%s)", r.Codec)
	}
	later := s.joinWith(ctx, client.Config{Room: "only", Name: "later", Video: 1})
	r := waitMedia(t, ctx, vp8only, later, webrtc.RTPCodecTypeVideo, 20)
	checkOnMLine(t, "vp8only", vp8only, r, "VP8")
	waitMedia(t, ctx, h264, vp8only, webrtc.RTPCodecTypeVideo, 20) // and the other way, VP8 to an H.264 publisher
	for _, e := range vp8only.Errors() {
		if e.Code != signal.CodeCodecNotSupported {
			t.Errorf("unexpected error %s: %s", e.Code, e.Message)
		}
	}
}

// A viewer's answer may leave out a track's codec (a browser without
// H.264) or reject a video m-line altogether (a client with no video at
// all): the track is dropped with codec_not_supported before the answer is
// applied, and everything else flows, before and after; nothing wedges.
func TestAnswerWithoutTheCodec(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	for _, tc := range []struct {
		name   string
		codecs func(*webrtc.MediaEngine) error
		video  bool // a later VP8 publisher's video reaches the viewer
	}{
		{"a viewer without H.264", client.OnlyCodecs(webrtc.MimeTypeVP8), true},
		{"a viewer without video", client.OnlyCodecs(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t, 40*time.Second)
			room := strings.ReplaceAll(tc.name, " ", "-")
			viewer := s.joinWith(ctx, client.Config{Room: room, Name: "viewer", Codecs: tc.codecs})
			waitFor(t, ctx, "viewer connected", viewer.Connected)
			h264 := s.joinWith(ctx, client.Config{Room: room, Name: "h264", Audio: 1, Video: 1, VideoCodec: webrtc.MimeTypeH264})
			waitMedia(t, ctx, viewer, h264, webrtc.RTPCodecTypeAudio, 20)
			waitFor(t, ctx, "codec_not_supported", func() bool { return viewer.HasError(signal.CodeCodecNotSupported) })
			vp8 := s.joinWith(ctx, client.Config{Room: room, Name: "vp8", Audio: 1, Video: 1})
			waitMedia(t, ctx, viewer, vp8, webrtc.RTPCodecTypeAudio, 20)
			if tc.video {
				r := waitMedia(t, ctx, viewer, vp8, webrtc.RTPCodecTypeVideo, 20)
				checkOnMLine(t, "viewer", viewer, r, "VP8")
			}
			if r := remoteOf(viewer, h264, webrtc.RTPCodecTypeVideo); r != nil && r.Stats().Packets > 0 {
				t.Errorf("the viewer got %d packets of the H.264 track", r.Stats().Packets)
			}
			if !tc.video {
				// (The pion client cannot offer any more: pion v3.3.6 loops
				// in CreateOffer over a transceiver without codecs.)
				return
			}
			// And the viewer's own offers are still answered.
			answered := viewer.AnswersReceived()
			if err := viewer.Publish(webrtc.RTPCodecTypeAudio); err != nil {
				t.Fatal(err)
			}
			waitMedia(t, ctx, vp8, viewer, webrtc.RTPCodecTypeAudio, 20)
			if viewer.AnswersReceived() <= answered || viewer.Bye() != "" {
				t.Errorf("the viewer's offer: %d answers (had %d), bye %q", viewer.AnswersReceived(), answered, viewer.Bye())
			}
			for _, e := range viewer.Errors() {
				if e.Code != signal.CodeCodecNotSupported {
					t.Errorf("unexpected error %s: %s", e.Code, e.Message)
				}
			}
		})
	}
}

// Payload types follow each m-line (input 2): a publisher numbering codecs
// like Firefox (Opus 109, VP8 120) and one numbering them like Chrome
// (111, 96) receive each other's audio and video with their own numbers;
// so do a Firefox-numbered viewer, and an H.264 publisher whose numbers
// differ too (Firefox 126, Chrome 102).
func TestPayloadTypesFollowEachMLine(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 60*time.Second)
	ff := s.joinWith(ctx, client.Config{Room: "mixed", Name: "firefox", Audio: 1, Video: 1, Codecs: client.FirefoxCodecs})
	ch := s.joinWith(ctx, client.Config{Room: "mixed", Name: "chrome", Audio: 1, Video: 1})
	viewer := s.joinWith(ctx, client.Config{Room: "mixed", Name: "ff-viewer", Codecs: client.FirefoxCodecs})
	h264 := s.joinWith(ctx, client.Config{Room: "mixed", Name: "ff-h264", Video: 1, VideoCodec: webrtc.MimeTypeH264, Codecs: client.FirefoxCodecs})
	for _, c := range []struct {
		name    string
		sub     *client.Client
		pub     *client.Client
		a, v    uint8 // the subscriber's own numbers
		vcodec  string
		noAudio bool
	}{
		{"chrome gets firefox", ch, ff, 111, 96, "VP8", false},
		{"firefox gets chrome", ff, ch, 109, 120, "VP8", false},
		{"firefox viewer gets chrome", viewer, ch, 0, 0, "VP8", false},
		{"firefox viewer gets firefox", viewer, ff, 0, 0, "VP8", false},
		{"chrome gets firefox's H.264", ch, h264, 0, 102, "H264", true},
		{"firefox gets firefox's H.264", ff, h264, 0, 126, "H264", true},
	} {
		v := waitMedia(t, ctx, c.sub, c.pub, webrtc.RTPCodecTypeVideo, 30)
		checkOnMLine(t, c.name, c.sub, v, c.vcodec)
		if c.v != 0 {
			if n := v.Stats().PayloadTypes[c.v]; n == 0 {
				t.Errorf("%s: no video with payload type %d: %v", c.name, c.v, v.Stats().PayloadTypes)
			}
		}
		if c.noAudio {
			continue
		}
		a := waitMedia(t, ctx, c.sub, c.pub, webrtc.RTPCodecTypeAudio, 30)
		checkOnMLine(t, c.name, c.sub, a, "opus")
		if c.a != 0 && a.Stats().PayloadTypes[c.a] == 0 {
			t.Errorf("%s: no audio with payload type %d: %v", c.name, c.a, a.Stats().PayloadTypes)
		}
	}
	for _, c := range []*client.Client{ff, ch, viewer, h264} {
		if errs := c.Errors(); len(errs) != 0 {
			t.Errorf("%s got errors: %v", c.ID, errs)
		}
	}
}

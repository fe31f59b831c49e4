package sfu

import (
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"
)

// offerSDP is a real offer from a pion PeerConnection with the server's
// codecs: audio, video and a data channel.
func offerSDP(t testing.TB) string {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := RegisterCodecs(m); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pc.CreateDataChannel("roundtable", nil); err != nil {
		t.Fatal(err)
	}
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return o.SDP
}

func TestCheckSDP(t *testing.T) {
	valid := offerSDP(t)
	video := valid[strings.Index(valid, "m=video"):strings.Index(valid, "m=application")]
	many := valid + strings.Repeat(strings.Replace(video, "a=mid:1", "a=mid:x", 1), MaxMediaSections)
	tests := []struct {
		name string
		sdp  string
		ok   bool
	}{
		{"pion offer", valid, true},
		{"not sdp", "hello", false},
		{"empty", "", false},
		{"unknown codecs only", strings.NewReplacer("VP8/", "XV1/", "VP9/", "XV2/", "H264/", "XV3/").Replace(valid), false},
		{"audio without opus", strings.Replace(valid, "opus/", "speex/", 1), false},
		{"a text m-line", strings.Replace(valid, "m=application", "m=text", 1), false},
		{"too many m-lines", many, false},
		{"stopped m-line with no codec", strings.Replace(strings.NewReplacer("VP8/", "XV1/", "VP9/", "XV2/", "H264/", "XV3/").Replace(valid),
			"m=video 9 ", "m=video 0 ", 1), true},
	}
	for _, tt := range tests {
		err := CheckSDP(tt.sdp)
		if (err == nil) != tt.ok {
			t.Errorf("%s: %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
	// A relay's bound is higher (a simulcast video takes an m-line per
	// layer there), and still a bound.
	if err := checkSDP(many, MaxRelayMediaSections); err != nil {
		t.Errorf("%d m-lines at a relay: %v", MaxMediaSections+3, err)
	}
	tooMany := valid + strings.Repeat(strings.Replace(video, "a=mid:1", "a=mid:x", 1), MaxRelayMediaSections)
	if err := checkSDP(tooMany, MaxRelayMediaSections); err == nil {
		t.Errorf("%d m-lines at a relay: accepted", MaxRelayMediaSections+3)
	}
}

// FuzzCheckSDP: whatever a client sends as SDP, the check returns (no
// panic, no hang), and what it accepts pion can at least parse.
func FuzzCheckSDP(f *testing.F) {
	f.Add(offerSDP(f))
	f.Add("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		if err := CheckSDP(s); err == nil {
			if _, err := (&webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: s}).Unmarshal(); err != nil {
				t.Errorf("accepted SDP that pion cannot parse: %v", err)
			}
		}
	})
}

// An offer whose BUNDLE group carries two ICE transports (aiortc's) is
// given the tagged m-line's credentials and candidates everywhere.
func TestUnifyBundleICE(t *testing.T) {
	const offer = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:aaaa\r\na=ice-pwd:aaaaaaaaaaaaaaaaaaaaaaaa\r\n" +
		"a=candidate:1 1 udp 1 198.18.0.2 4000 typ host\r\na=rtpmap:111 opus/48000/2\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=ice-ufrag:bbbb\r\na=ice-pwd:bbbbbbbbbbbbbbbbbbbbbbbb\r\n" +
		"a=candidate:2 1 udp 1 198.18.0.2 4001 typ host\r\na=end-of-candidates\r\na=rtpmap:96 VP8/90000\r\n"
	var d sdp.SessionDescription
	if err := d.UnmarshalString(offer); err != nil {
		t.Fatal(err)
	}
	if !unifyBundleICE(&d) {
		t.Fatal("nothing changed")
	}
	b, _ := d.Marshal()
	got := string(b)
	if strings.Contains(got, "bbbb") || strings.Count(got, "a=ice-ufrag:aaaa") != 2 || strings.Contains(got, "4001") ||
		!strings.Contains(got, "4000") || !strings.Contains(got, "a=rtpmap:96 VP8/90000") {
		t.Errorf("unified:\n%s", got)
	}
	if unifyBundleICE(&d) {
		t.Error("changed again")
	}
}

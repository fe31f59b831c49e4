package sfu

import (
	"testing"

	"github.com/pion/webrtc/v3"
)

func h264(pt webrtc.PayloadType, fmtp string) webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{PayloadType: pt,
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: fmtp}}
}

// pickCodec finds the publisher's codec among a subscriber's, whatever its
// payload type number, and refuses what the subscriber cannot decode.
func TestPickCodec(t *testing.T) {
	vp8 := func(pt webrtc.PayloadType, fmtp string) webrtc.RTPCodecParameters {
		return webrtc.RTPCodecParameters{PayloadType: pt,
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, SDPFmtpLine: fmtp}}
	}
	cb := "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
	firefox := []webrtc.RTPCodecParameters{vp8(120, "max-fs=12288;max-fr=60"),
		h264(126, "profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1"),
		h264(97, "profile-level-id=42e01f;level-asymmetry-allowed=1")}
	chrome := []webrtc.RTPCodecParameters{vp8(96, ""), h264(102, cb), h264(127, "packetization-mode=1;profile-level-id=42001f"),
		h264(123, "packetization-mode=1;profile-level-id=640032")}
	for _, tc := range []struct {
		name string
		want webrtc.RTPCodecParameters
		have []webrtc.RTPCodecParameters
		pt   webrtc.PayloadType // 0: none fits
	}{
		{"VP8 by name, Firefox's number", vp8(96, ""), firefox, 120},
		{"VP8 by name, Chrome's number", vp8(120, "max-fs=12288;max-fr=60"), chrome, 96},
		{"H.264 mode 1 to Firefox's mode 1", h264(102, cb), firefox, 126},
		{"H.264 mode 0 to Firefox's mode 0", h264(99, "profile-level-id=42e01f"), firefox, 97},
		{"H.264 identical parameters first", h264(126, "profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1"), chrome, 102},
		{"H.264 baseline decodes on constrained baseline", h264(127, "packetization-mode=1;profile-level-id=42001f"), firefox, 126},
		{"H.264 high needs high", h264(123, "packetization-mode=1;profile-level-id=640032"), firefox, 0},
		{"H.264 high to a high receiver", h264(106, "packetization-mode=1;profile-level-id=64001f"), chrome, 123},
		{"H.264 main on high", h264(110, "packetization-mode=1;profile-level-id=4d001f"), chrome, 123},
		{"VP9 to a receiver without it", webrtc.RTPCodecParameters{PayloadType: 98,
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000}}, firefox[:1], 0},
	} {
		got, ok := pickCodec(tc.want, tc.have)
		if tc.pt == 0 {
			if ok {
				t.Errorf("%s: picked %d %s, want none", tc.name, got.PayloadType, got.SDPFmtpLine)
			}
			continue
		}
		if !ok || got.PayloadType != tc.pt {
			t.Errorf("%s: picked %d (ok %v), want %d", tc.name, got.PayloadType, ok, tc.pt)
		}
	}
}

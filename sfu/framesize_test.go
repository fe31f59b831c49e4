package sfu

import (
	"encoding/hex"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"
)

// SPS NAL units from libx264 (ffmpeg -c:v libx264 -profile:v P -f h264),
// emulation prevention bytes included.
var x264SPS = []struct {
	name string
	hex  string
	w, h int
}{
	{"320x180 baseline", "6742c00dd901419f9f0110000003001000000303c0f142a480", 320, 180},
	{"320x180 high", "6764000dacd941419f9f0110000003001000000303c0f1429960", 320, 180},
	{"640x360 baseline", "6742c01ed900a02ff970110000030001000003003c0f162e48", 640, 360},
	{"640x360 high", "6764001eacd940a02ff970110000030001000003003c0f162d96", 640, 360},
	{"1280x720 baseline", "6742c01fd9005005bb0110000003001000000303c0f1832480", 1280, 720},
	{"1280x720 high", "6764001facd9405005bb0110000003001000000303c0f1831960", 1280, 720},
	{"640x480 high 4:4:4", "67f4001e919b281407b60220000003002000000781e2c5b2c0", 640, 480},
}

func TestH264Size(t *testing.T) {
	for _, tt := range x264SPS {
		sps, _ := hex.DecodeString(tt.hex)
		packets := map[string][]byte{
			"single NAL": sps,
			// STAP-A (RFC 6184 §5.7.1): header 24, then size-prefixed SPS and PPS.
			"STAP-A": append(append([]byte{0x78, byte(len(sps) >> 8), byte(len(sps))}, sps...), 0, 2, 0x68, 0xce),
			// FU-A start fragment (§5.8): indicator, header with S bit and type 7.
			"FU-A": append([]byte{0x7c, 0x80 | 7}, sps[1:]...),
		}
		for how, p := range packets {
			w, h, ok := h264Size(p)
			if !ok || w != tt.w || h != tt.h {
				t.Errorf("%s, %s: %dx%d ok=%v, want %dx%d", tt.name, how, w, h, ok, tt.w, tt.h)
			}
		}
		for cut := 1; cut < 8; cut++ { // truncated SPS: no size, no panic
			if _, _, ok := h264Size(sps[:cut]); ok {
				t.Errorf("%s cut to %d bytes: size reported", tt.name, cut)
			}
		}
	}
	idr := []byte{0x65, 0x88, 0x84}
	if _, _, ok := h264Size(idr); ok {
		t.Errorf("IDR slice without SPS: size reported")
	}
	sps, _ := hex.DecodeString(x264SPS[0].hex)
	if a := testing.AllocsPerRun(100, func() { h264Size(sps) }); a != 0 {
		t.Errorf("h264Size allocates %.0f times", a)
	}
}

func TestVP9Size(t *testing.T) {
	tests := []struct {
		name string
		p    []byte
		w, h int
		ok   bool
	}{
		// I, B, V set; 15-bit picture id; SS: 3 spatial layers (N_S=2), Y.
		{"three spatial layers", []byte{0x8a, 0x80, 0x01, 0x50,
			0x01, 0x40, 0x00, 0xb4, 0x02, 0x80, 0x01, 0x68, 0x05, 0x00, 0x02, 0xd0}, 1280, 720, true},
		// I, L, B, V: 7-bit picture id, layer byte and TL0PICIDX, one layer.
		{"one layer with layer indices", []byte{0xaa, 0x05, 0x00, 0x07, 0x10, 0x02, 0x80, 0x01, 0x68}, 640, 360, true},
		{"no scalability structure", []byte{0x88, 0x05}, 0, 0, false},
		{"structure without sizes", []byte{0x8a, 0x05, 0x00}, 0, 0, false},
		{"truncated sizes", []byte{0x8a, 0x05, 0x10, 0x02, 0x80}, 0, 0, false},
	}
	for _, tt := range tests {
		w, h, ok := vp9Size(tt.p)
		if ok != tt.ok || w != tt.w || h != tt.h {
			t.Errorf("%s: %dx%d ok=%v, want %dx%d ok=%v", tt.name, w, h, ok, tt.w, tt.h, tt.ok)
		}
	}
}

// An H.264 keyframe that starts with a STAP-A holding the SPS tells the
// track its layer's frame size, which the viewport choice uses.
func TestH264KeyframeSetsLayerSize(t *testing.T) {
	h264 := webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000},
		PayloadType:        102,
	}
	up := newSimulcastUpTrack("TR1", "pub", webrtc.RTPCodecTypeVideo, h264, "h", 1234, &Stats{}, nil)
	l := (*up.layers.Load())[0]
	sps, _ := hex.DecodeString(x264SPS[2].hex) // 640x360
	payload := append(append([]byte{0x78, 0, byte(len(sps))}, sps...), 0, 2, 0x65, 0x88)
	pkt, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 102, SequenceNumber: 1, SSRC: 1234}, Payload: payload}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var hdr rtp.Header
	var unwrap SeqUnwrapper
	up.forward(l, pkt, &hdr, &unwrap, KindVideo)
	if w, h := l.width.Load(), l.height.Load(); w != 640 || h != 360 {
		t.Errorf("layer size %dx%d after an H.264 keyframe, want 640x360", w, h)
	}
}

func TestVP8Size(t *testing.T) {
	// S bit, partition 0; key frame tag; start code; 14-bit 640 and 360.
	key := []byte{0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01}
	if w, h, ok := vp8Size(key); !ok || w != 640 || h != 360 {
		t.Errorf("VP8 keyframe: %dx%d ok=%v, want 640x360", w, h, ok)
	}
	// The same behind a descriptor with a 15-bit picture id, TL0PICIDX and
	// TID/KEYIDX (RFC 7741 §4.2).
	ext := append([]byte{0x90, 0xf0, 0x81, 0x23, 0x05, 0x20}, key[1:]...)
	if w, h, ok := vp8Size(ext); !ok || w != 640 || h != 360 {
		t.Errorf("VP8 keyframe with extensions: %dx%d ok=%v, want 640x360", w, h, ok)
	}
	inter := append([]byte(nil), key...)
	inter[1] = 0x01 // P bit: an interframe has no size
	if _, _, ok := vp8Size(inter); ok {
		t.Errorf("VP8 interframe: size reported")
	}
}

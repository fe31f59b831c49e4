package record

import (
	"testing"
	"time"
)

// Keyframes are told from the frames the depacketizers give: VP8's frame
// tag, VP9's uncompressed header (profiles 0 and 3), an H.264 IDR.
func TestSampleKeyframe(t *testing.T) {
	for _, c := range []struct {
		mime string
		b    []byte
		want bool
	}{
		{"video/VP8", []byte{0x10, 0x02, 0x00, 0x9d}, true},
		{"video/VP8", []byte{0x11, 0x02, 0x00}, false},
		{"video/VP9", []byte{0x82}, true},       // 10 0 0 0 0 1 0: profile 0, key, shown
		{"video/VP9", []byte{0x86}, false},      // frame_type 1: inter
		{"video/VP9", []byte{0x8a}, false},      // show_existing_frame
		{"video/VP9", []byte{0xb0, 0x40}, true}, // profile 3: reserved bit, then key
		{"video/VP9", []byte{0xb2}, false},      // profile 3, inter
		{"video/H264", []byte{0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x65, 9}, true},
		{"video/H264", []byte{0, 0, 0, 1, 0x41, 1}, false},
		{"video/AV1", []byte{0}, false},
	} {
		if got := sampleKeyframe(c.mime, c.b); got != c.want {
			t.Errorf("%s % x: keyframe %v, want %v", c.mime, c.b, got, c.want)
		}
	}
}

// An NTP timestamp (RFC 5905: seconds since 1900, 32.32) is the instant
// it names.
func TestNTPTime(t *testing.T) {
	want := time.Date(2026, 11, 30, 3, 12, 1, 500_000_000, time.UTC)
	secs := uint64(want.Unix() + 2208988800)
	if got := ntpTime(secs<<32 | 1<<31); !got.Equal(want) {
		t.Errorf("ntpTime = %v, want %v", got, want)
	}
}

package sfu

import (
	"strings"

	"github.com/pion/rtp/codecs"
)

// IsKeyframe reports whether an RTP payload of the given codec (a MIME type
// such as "video/VP8") starts or belongs to a keyframe. It looks only at the
// payload, never allocates, and returns false for audio and unknown codecs.
func IsKeyframe(mime string, payload []byte) bool {
	keyframe, _ := videoParsers(mime)
	return keyframe(payload)
}

// videoParsers returns the keyframe test and the frame-size reader (see
// framesize.go) for a codec, chosen once per track so the packet path does
// not compare MIME types.
func videoParsers(mime string) (keyframe func([]byte) bool, size func([]byte) (w, h int, ok bool)) {
	switch {
	case strings.EqualFold(mime, "video/VP8"):
		return vp8Keyframe, vp8Size
	case strings.EqualFold(mime, "video/VP9"):
		return vp9Keyframe, vp9Size
	case strings.EqualFold(mime, "video/H264"):
		return h264Keyframe, h264Size
	}
	return func([]byte) bool { return false }, func([]byte) (int, int, bool) { return 0, 0, false }
}

// vp8Keyframe parses the VP8 payload descriptor (RFC 7741 §4.2) and the
// first byte of the VP8 frame header (RFC 6386 §9.1, P bit clear = key).
func vp8Keyframe(p []byte) bool {
	i := vp8HeaderOffset(p)
	return i >= 0 && len(p) > i && p[i]&0x01 == 0
}

// vp8HeaderOffset returns where the VP8 frame header starts in a payload
// that starts a frame (S bit, partition index 0), or -1. The payload
// descriptor (RFC 7741 §4.2: a 3-bit partition index after a reserved bit,
// a 7- or 15-bit picture id, TL0PICIDX, TID/KEYIDX) is pion's parser's job;
// the VP8Packet lives on the stack, so nothing is allocated.
func vp8HeaderOffset(p []byte) int {
	var d codecs.VP8Packet
	rest, err := d.Unmarshal(p)
	if err != nil || d.S != 1 || d.PID != 0 {
		return -1
	}
	return len(p) - len(rest)
}

// vp9Keyframe parses the VP9 payload descriptor (RFC 9628 §4.2): a keyframe
// starts a frame (B), is not inter-predicted (P clear) and, in flexible or
// non-flexible mode, is the first spatial layer.
func vp9Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	b0 := p[0]
	interPicture := b0&0x40 != 0
	begin := b0&0x08 != 0
	return begin && !interPicture
}

// h264Keyframe looks for an IDR slice or SPS (RFC 6184 §5.2): directly, in a
// STAP-A aggregate, or at the start of an FU-A fragment.
func h264Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	switch nal := p[0] & 0x1f; nal {
	case 5, 7:
		return true
	case 24: // STAP-A
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			i += 2
			if size == 0 || i+size > len(p) {
				return false
			}
			if t := p[i] & 0x1f; t == 5 || t == 7 {
				return true
			}
			i += size
		}
	case 28: // FU-A
		if len(p) < 2 {
			return false
		}
		start, t := p[1]&0x80 != 0, p[1]&0x1f
		return start && (t == 5 || t == 7)
	}
	return false
}

package client

import (
	"bytes"
	"encoding/binary"
	"errors"
	"time"
)

// Synthetic media. Every payload carries who sent it, a counter and a send
// time, and is filled with bytes derived from the counter, so a receiver can
// rebuild it and check it byte for byte:
//
//	codec prefix | "RTB1" | len(id) | id | track index | counter (8) | send time ns (8) | filler
//
// The video codec prefix (11 bytes) is a VP8 payload descriptor (RFC 7741)
// and a VP8 frame header (RFC 6386 §9.1): frame tag whose P bit marks
// keyframes, then for keyframes the start code and the frame size, so the
// server's keyframe and size detection see real-looking VP8. Audio has no
// prefix. For a simulcast track the track index is the layer (0 lowest).

var magic = []byte("RTB1")

// ErrBadPayload means a received payload is not one this package built, or
// was altered on the way.
var ErrBadPayload = errors.New("client: payload does not match what was sent")

// Payload is what a synthetic payload says about itself.
type Payload struct {
	Video    bool
	Start    bool // first packet of a video frame
	Keyframe bool // first packet of a keyframe
	ID       string
	Track    byte
	Counter  uint64
	Sent     time.Time
	Size     int
	// Width and Height are the frame size a keyframe announces.
	Width, Height int
}

// AppendPayload appends the payload described by p (p.Size bytes in all,
// at least the header) to dst.
func AppendPayload(dst []byte, p Payload) []byte {
	start := len(dst)
	if p.Video {
		d := byte(0x00)
		if p.Start {
			d = 0x10 // S bit, partition 0
		}
		dst = append(dst, d)
		if p.Start && p.Keyframe {
			dst = append(dst, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, // key frame tag + start code
				byte(p.Width), byte(p.Width>>8&0x3f), byte(p.Height), byte(p.Height>>8&0x3f))
		} else {
			dst = append(dst, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0, 0, 0, 0)
		}
	}
	dst = append(dst, magic...)
	dst = append(dst, byte(len(p.ID)))
	dst = append(dst, p.ID...)
	dst = append(dst, p.Track)
	dst = binary.BigEndian.AppendUint64(dst, p.Counter)
	dst = binary.BigEndian.AppendUint64(dst, uint64(p.Sent.UnixNano()))
	for i := 0; len(dst)-start < p.Size; i++ {
		dst = append(dst, byte(p.Counter*31+uint64(i)*7))
	}
	return dst
}

// ParsePayload reads a payload built by AppendPayload and checks that every
// byte is what AppendPayload would have written.
func ParsePayload(b []byte, video bool) (Payload, error) {
	p := Payload{Video: video, Size: len(b)}
	rest := b
	if video {
		if len(rest) < 11 {
			return p, ErrBadPayload
		}
		p.Start = rest[0]&0x10 != 0
		p.Keyframe = p.Start && rest[1]&0x01 == 0
		if p.Keyframe {
			p.Width = int(rest[7]) | int(rest[8]&0x3f)<<8
			p.Height = int(rest[9]) | int(rest[10]&0x3f)<<8
		}
		rest = rest[11:]
	}
	if len(rest) < 5 || !bytes.Equal(rest[:4], magic) {
		return p, ErrBadPayload
	}
	n := int(rest[4])
	if len(rest) < 5+n+17 {
		return p, ErrBadPayload
	}
	p.ID = string(rest[5 : 5+n])
	p.Track = rest[5+n]
	p.Counter = binary.BigEndian.Uint64(rest[6+n:])
	p.Sent = time.Unix(0, int64(binary.BigEndian.Uint64(rest[14+n:])))
	want := AppendPayload(make([]byte, 0, len(b)), p)
	if !bytes.Equal(want, b) {
		return p, ErrBadPayload
	}
	return p, nil
}

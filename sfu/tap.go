package sfu

// A tap is a subscriber without a PeerConnection (a recorder): a DownTrack
// bound to the caller's writer instead of pion's. It is everything a
// subscription is (its own bounded queue, so a slow writer loses packets
// and never slows forwarding; keyframe at the start and after a drop;
// header rewriting into one contiguous stream; simulcast at the highest
// layer that flows), without RTCP: no NACKs come back, so what the tap
// sees is what the server received, including what the publisher's
// retransmissions repaired, late. Ownership: as the DownTrack's; the
// writer's methods run on its writer goroutine, one packet at a time.

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v3"
)

// Tap is one track's feed to a writer.
type Tap struct{ d *DownTrack }

// NewTap starts feeding up's packets to w (webrtc.TrackLocalWriter: its
// WriteRTP gets each packet's rewritten header and payload; Write is never
// called). The header has one SSRC, sequence numbers without the gaps
// the tap's own drops would leave, and timestamps in one clock that keep
// running across layer switches and server mutes (in step with the wall
// clock). The first packet is a keyframe's (video). Close ends it.
func NewTap(up *UpTrack, stats *Stats, w webrtc.TrackLocalWriter) (*Tap, error) {
	d := newDownTrack(up, stats)
	var b [4]byte
	_, _ = rand.Read(b[:])
	if _, err := d.Bind(tapContext{codec: up.codec, w: w, ssrc: webrtc.SSRC(binary.BigEndian.Uint32(b[:]))}); err != nil {
		return nil, fmt.Errorf("tap %s: %w", up.id, err)
	}
	return &Tap{d: d}, nil
}

// Close stops the feed and waits for the writer's last WriteRTP to return.
func (t *Tap) Close() { t.d.close() }

// RequestKeyframe asks the publisher for a keyframe of the layer the tap
// forwards (throttled as every request; a no-op for audio).
func (t *Tap) RequestKeyframe() { t.d.want.Load().requestKeyframe() }

// Redecide lets a simulcast tap choose its layer again (the highest that
// flows): call it every second or so, as a Peer's allocator does for its
// subscriptions, so that a layer that stops is left. Any goroutine.
func (t *Tap) Redecide() {
	now := time.Now()
	if up := t.d.src.Load(); up != nil {
		up.rerank(now, false)
	}
	t.d.decide(0, now)
}

// Dropped counts the packets the tap's queue could not take (its writer
// was too slow), and those of their frames skipped after them.
func (t *Tap) Dropped() uint64 { return t.d.dropped.Load() }

// SenderReport returns the publisher's latest NTP time and RTP timestamp
// of one instant (RFC 3550 §6.4.1) for the layer the tap forwards, the
// timestamp in the tap's own clock. Only from within the writer's
// WriteRTP. ok is false before any report.
func (t *Tap) SenderReport() (ntp uint64, rtpTS uint32, ok bool) {
	l := t.d.sentFrom
	if l == nil {
		return 0, 0, false
	}
	ntp, rtpTS, ok = l.senderReport()
	return ntp, rtpTS + t.d.tsDelta, ok
}

// FrameSize returns the size of the video the tap forwards, as its last
// keyframe that carried one said (0, 0 unknown). Only from within WriteRTP.
func (t *Tap) FrameSize() (width, height int) {
	if l := t.d.sentFrom; l != nil {
		return int(l.width.Load()), int(l.height.Load())
	}
	return 0, 0
}

// tapContext is a tap's binding, as pion would give a sender's.
type tapContext struct {
	codec webrtc.RTPCodecParameters
	w     webrtc.TrackLocalWriter
	ssrc  webrtc.SSRC
}

func (c tapContext) CodecParameters() []webrtc.RTPCodecParameters {
	return []webrtc.RTPCodecParameters{c.codec}
}
func (c tapContext) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter { return nil }
func (c tapContext) SSRC() webrtc.SSRC                                      { return c.ssrc }
func (c tapContext) WriteStream() webrtc.TrackLocalWriter                   { return c.w }
func (c tapContext) ID() string                                             { return "tap" }
func (c tapContext) RTCPReader() interceptor.RTCPReader                     { return nil }

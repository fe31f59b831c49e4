package sfu

// A layer is one encoding of a published track: the only one for a plain
// track, one of up to three for rid-based simulcast (RFC 8853). Each layer
// has its own read loop goroutine, which owns the layer's reading and sets
// its size; the cache, the keyframe throttle, the atomics and the
// measurements behind rateMu are safe for any goroutine. A layer's rank is
// its position in UpTrack.layers, which changes as the layers show what
// they carry (rankLayers); a layer's identity is its pointer.

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v3"
)

type layer struct {
	owner   *UpTrack // the track it is a layer of
	rid     string
	video   bool
	guess   int // rank its rid suggests (ridGuess)
	arrival int // order of arrival among the track's layers
	ssrc    uint32
	remote  *webrtc.TrackRemote
	// receiver is the layer's own, for a relayed layer, which comes on an
	// m-line of its own (relaylayers.go); nil: the track's receiver.
	receiver *webrtc.RTPReceiver
	cache    *PacketCache
	keyframe *Throttle
	width    atomic.Int32 // from the last keyframe that carried a size, 0 unknown
	height   atomic.Int32
	bytes    atomic.Uint64 // received, for bitrate and liveness
	// Upstream loss (quality.go): packets expected (how far the highest
	// sequence number moved) and of those skipped when they arrived;
	// highest is the read loop's own.
	expected, lost atomic.Uint64
	highest        uint64

	// The publisher's last RTCP sender report for this layer (RFC 3550
	// §6.4.1): its NTP time and the RTP timestamp of the same instant.
	srMu  sync.Mutex
	srNTP uint64
	srRTP uint32

	rateMu     sync.Mutex
	rateAt     time.Time
	rateBytes  uint64
	rate       int       // bits per second over the last window
	seenBytes  uint64    // bytes at the last liveness check
	lastActive time.Time // when a check first saw bytes grow
}

// bitrate returns the layer's incoming bitrate, measured over windows of
// at least half a second.
func (l *layer) bitrate(now time.Time) int {
	l.rateMu.Lock()
	defer l.rateMu.Unlock()
	if l.rateAt.IsZero() {
		l.rateAt, l.rateBytes = now, l.bytes.Load()
		return 0
	}
	if dt := now.Sub(l.rateAt); dt >= 500*time.Millisecond {
		b := l.bytes.Load()
		l.rate = int(float64(b-l.rateBytes) * 8 / dt.Seconds())
		l.rateAt, l.rateBytes = now, b
	}
	return l.rate
}

// live reports whether packets arrived within layerStall, as far as the
// checks can tell: each check notes whether the byte count grew since the
// one before, so with checks every allocateInterval a stop is seen within
// layerStall + allocateInterval. A layer never checked before is live.
func (l *layer) live(now time.Time) bool {
	l.rateMu.Lock()
	defer l.rateMu.Unlock()
	if b := l.bytes.Load(); b != l.seenBytes || l.lastActive.IsZero() {
		l.seenBytes, l.lastActive = b, now
	}
	return now.Sub(l.lastActive) < layerStall
}

func newLayer(rid string, video bool, arrival int, ssrc uint32, cacheSize int, writeRTCP func([]rtcp.Packet) error) *layer {
	l := &layer{rid: rid, video: video, guess: ridGuess(rid), arrival: arrival, ssrc: ssrc, cache: NewPacketCache(cacheSize)}
	l.keyframe = NewThrottle(KeyframeInterval, func() {
		// RFC 4585 §6.3.1: Picture Loss Indication, to this layer's SSRC.
		if writeRTCP != nil {
			_ = writeRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: l.ssrc}})
		}
	})
	return l
}

// arrived counts one packet of extended sequence number ext for the
// quality measure: a jump forward counts the packets skipped as lost (a
// retransmission that fills the gap later does not take them back: this is
// the loss of the network, before recovery), and a late or repeated packet
// counts nothing. Read loop only.
func (l *layer) arrived(ext uint64) {
	switch {
	case l.highest == 0:
		l.expected.Add(1)
	case ext <= l.highest:
		return
	case ext-l.highest < 1<<15:
		l.expected.Add(ext - l.highest)
		l.lost.Add(ext - l.highest - 1)
	default: // a restart of the stream, not loss
		l.expected.Add(1)
	}
	l.highest = ext
}

// noteSenderReport keeps the publisher's newest NTP-RTP pair (RTCP reader).
func (l *layer) noteSenderReport(ntp uint64, rtpTS uint32) {
	l.srMu.Lock()
	l.srNTP, l.srRTP = ntp, rtpTS
	l.srMu.Unlock()
}

// senderReport returns the newest NTP-RTP pair, ok false before any.
func (l *layer) senderReport() (ntp uint64, rtpTS uint32, ok bool) {
	l.srMu.Lock()
	defer l.srMu.Unlock()
	return l.srNTP, l.srRTP, l.srNTP != 0
}

// requestKeyframe asks the publisher for a keyframe of this layer
// (throttled: see Throttle); nil-safe, and a no-op for audio.
func (l *layer) requestKeyframe() {
	if l != nil && l.video {
		l.keyframe.Request()
	}
}

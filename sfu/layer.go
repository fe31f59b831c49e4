package sfu

// A layer is one encoding of a published track: the only one for a plain
// track, one of up to three for rid-based simulcast (RFC 8853). Each layer
// has its own read loop goroutine, which owns the layer's reading; the
// cache, the keyframe throttle and the atomics are safe for any goroutine.

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v3"
)

// Simulcast layers are ranked by rid: the names browsers and libraries
// use for low, middle and high (q/h/f, l/m/h, 0/1/2). Unknown rids rank
// above them in arrival order.
var ridRanks = map[string]int{"": 0, "q": 0, "l": 0, "0": 0, "h": 1, "m": 1, "1": 1, "f": 2, "2": 2}

type layer struct {
	index    int // quality rank, 0 lowest
	rid      string
	ssrc     uint32
	remote   *webrtc.TrackRemote
	cache    *PacketCache
	keyframe *Throttle
	width    atomic.Int32 // from the last keyframe that carried a size, 0 unknown
	height   atomic.Int32
	bytes    atomic.Uint64 // received, for bitrate

	rateMu    sync.Mutex
	rateAt    time.Time
	rateBytes uint64
	rate      int // bits per second over the last window
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

func newLayer(index int, rid string, ssrc uint32, cacheSize int, writeRTCP func([]rtcp.Packet) error) *layer {
	l := &layer{index: index, rid: rid, ssrc: ssrc, cache: NewPacketCache(cacheSize)}
	l.keyframe = NewThrottle(KeyframeInterval, func() {
		// RFC 4585 §6.3.1: Picture Loss Indication, to this layer's SSRC.
		if writeRTCP != nil {
			_ = writeRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: l.ssrc}})
		}
	})
	return l
}

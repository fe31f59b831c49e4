package sfu

// Connection quality: what the server sees of each participant's two
// directions, sampled once a second, and the score made of it.
//
// Ownership: the counters are atomics written where the packets are seen
// (a layer's read loop for upstream loss, a DownTrack's writer for what it
// sent, its RTCP reader for NACKs, PLIs and receiver reports, decide for
// the layer deficit). A Peer's meter, the totals at the previous sample and
// the window of the last ones, belongs to SampleQuality's caller, one at a
// time: package room calls it with the room's mutex held (its quality tick,
// and the last sample when a member leaves).

import (
	"time"

	"github.com/pion/rtcp"
)

// Quality is a connection quality level, best first.
type Quality uint8

// Quality levels. The thresholds are in DirectionQuality.
const (
	QualityExcellent Quality = iota
	QualityGood
	QualityPoor
	QualityLost
	numQualities
)

var qualityNames = [numQualities]string{"excellent", "good", "poor", "lost"}

// String returns the level as the protocol and the metrics name it.
func (q Quality) String() string { return qualityNames[q] }

// Qualities lists every level, for exporters.
func Qualities() []Quality { return []Quality{QualityExcellent, QualityGood, QualityPoor, QualityLost} }

// Score thresholds. A direction is poor when any poor threshold is reached
// over the quality window, good when any good one is, else excellent.
const (
	QualityWindow = 3 // samples (seconds) the score looks at
	// reportMaxAge: RTT and jitter from receiver reports older than this
	// are not used (a client stops reporting on a stream that stopped).
	reportMaxAge = 10 * time.Second
	// Loss in per cent of the packets expected in the window; judged only
	// over at least minLossPackets.
	goodLoss, poorLoss = 2.0, 8.0
	minLossPackets     = 30
	// Round-trip time and interarrival jitter (RFC 3550 §6.4.1).
	goodRTT, poorRTT       = 200 * time.Millisecond, 400 * time.Millisecond
	goodJitter, poorJitter = 30 * time.Millisecond, 60 * time.Millisecond
	// PLIs from the subscriber in the window (its decoder lost the picture).
	goodPLIs = 3
)

// Direction is one direction of a participant's media over one sample.
type Direction struct {
	// Packets expected (upstream: how far the sequence numbers advanced;
	// downstream: sent by the server, and for audio as the receiver
	// reports), and of those lost: upstream, the gaps in the sequence
	// numbers as they arrive (before any retransmission fills them);
	// downstream, video packets the subscriber NACKed for the first time
	// and, for audio, what its receiver reports count lost (RFC 3550
	// §6.4.1) less the packets the server never had.
	Packets, Lost uint64
	Bytes         uint64
	// Jitter is the worst interarrival jitter the participant's receiver
	// reports give for the audio the server sends it (downstream only), 0
	// unknown.
	Jitter time.Duration
	// PLIs the participant sent (downstream only).
	PLIs uint64
	// Frozen: a video the participant receives, which had started, got
	// nothing this sample while its publisher's layer kept arriving and
	// neither the tile was hidden nor the server muted it (downstream
	// only).
	Frozen bool
	// Limited: a simulcast video is forwarded below the layer its tile
	// asks for, for want of bandwidth (downstream only).
	Limited bool
}

// LossPercent is Lost over Packets in per cent, 0 without packets.
func (d Direction) LossPercent() float64 {
	if d.Packets == 0 {
		return 0
	}
	return 100 * float64(d.Lost) / float64(d.Packets)
}

// QualitySample is one sample of a participant's connection.
type QualitySample struct {
	Up, Down Direction
	// RTT is the round-trip time from the receiver reports on the
	// server's tracks (RFC 3550 §6.4.1 LSR and DLSR), 0 unknown (the
	// participant receives nothing).
	RTT time.Duration
	// PathDown: ICE is disconnected or failed, or never connected.
	PathDown bool
	// UpQuality and DownQuality score the window ending with this sample.
	UpQuality, DownQuality Quality
}

// Scored gives the level of one direction over a window of samples (oldest
// first) with the round-trip time now: the worst any threshold reaches.
func Scored(window []Direction, rtt time.Duration, pathDown bool) Quality {
	if pathDown {
		return QualityLost
	}
	var sum Direction
	for _, d := range window {
		sum.Packets += d.Packets
		sum.Lost += d.Lost
		sum.Jitter = max(sum.Jitter, d.Jitter)
		sum.PLIs += d.PLIs
		sum.Frozen = sum.Frozen || d.Frozen
		sum.Limited = sum.Limited || d.Limited
	}
	loss := 0.0
	if sum.Packets >= minLossPackets {
		loss = sum.LossPercent()
	}
	switch {
	case loss >= poorLoss || rtt >= poorRTT || sum.Jitter >= poorJitter || sum.Frozen:
		return QualityPoor
	case loss >= goodLoss || rtt >= goodRTT || sum.Jitter >= goodJitter || sum.PLIs >= goodPLIs || sum.Limited:
		return QualityGood
	}
	return QualityExcellent
}

// trackTotals are one track's counters at the previous sample.
type trackTotals struct {
	expected, lost, bytes uint64 // upstream: over its layers
	sent, nacked, holes   uint64 // downstream
	rrLost                int64
	rrHighest             uint64
	plis                  uint64
	layer                 *layer // the forwarded layer, and its packets
	source                uint64
}

// qualityMeter is a Peer's sampling state (see the ownership note).
type qualityMeter struct {
	ups    map[*UpTrack]trackTotals
	downs  map[*DownTrack]trackTotals
	window [QualityWindow]struct{ up, down Direction }
	n      int // samples taken
}

// SampleQuality measures the participant's connection since the previous
// call and scores the last QualityWindow samples. Call it about once a
// second, from one goroutine at a time.
func (p *Peer) SampleQuality() QualitySample {
	m := &p.meter
	if m.ups == nil {
		m.ups, m.downs = map[*UpTrack]trackTotals{}, map[*DownTrack]trackTotals{}
	}
	p.mu.Lock()
	ups := make([]*UpTrack, 0, len(p.ups))
	for u := range p.ups {
		ups = append(ups, u)
	}
	downs := make([]*DownTrack, 0, len(p.downs))
	for _, d := range p.downs {
		downs = append(downs, d)
	}
	downs = append(downs, p.playback...)
	p.mu.Unlock()

	var s QualitySample
	seenUp := make(map[*UpTrack]trackTotals, len(ups))
	for _, u := range ups {
		var t trackTotals
		for _, l := range *u.layers.Load() {
			t.expected += l.expected.Load()
			t.lost += l.lost.Load()
			t.bytes += l.bytes.Load()
		}
		prev := m.ups[u]
		s.Up.Packets += t.expected - prev.expected
		s.Up.Lost += t.lost - prev.lost
		s.Up.Bytes += t.bytes - prev.bytes
		seenUp[u] = t
	}
	m.ups = seenUp

	var rttSum time.Duration
	var rttN int
	now := time.Now()
	seenDown := make(map[*DownTrack]trackTotals, len(downs))
	for _, d := range downs {
		t := trackTotals{sent: d.sentPackets.Load(), nacked: d.nacked.Load(), holes: d.holes.Load(),
			bytes: d.sentBytes.Load(), rrLost: d.rrLost.Load(), rrHighest: d.rrHighest.Load(), plis: d.plis.Load()}
		if l := d.want.Load(); l != nil {
			t.layer, t.source = l, l.expected.Load()
		}
		prev, known := m.downs[d]
		if known && t.rrHighest == prev.rrHighest {
			// No report since: the audio loss baseline waits for the next
			// one, which will cover the holes left meanwhile.
			t.rrLost, t.holes = prev.rrLost, prev.holes
		}
		seenDown[d] = t
		if !known {
			continue // a first sample: totals only
		}
		sent := t.sent - prev.sent
		s.Down.Bytes += t.bytes - prev.bytes
		s.Down.PLIs += t.plis - prev.plis
		paused := d.paused.Load()
		if d.kind == KindVideo {
			s.Down.Packets += sent
			s.Down.Lost += min(t.nacked-prev.nacked, sent)
			if prev.sent > 0 && sent == 0 && t.layer != nil && t.layer == prev.layer && t.source > prev.source &&
				!paused && !d.src.Load().Muted() {
				s.Down.Frozen = true
			}
			s.Down.Limited = s.Down.Limited || d.limited.Load() && !paused
		} else if expected := t.rrHighest - prev.rrHighest; prev.rrHighest > 0 && expected > 0 && expected < 1<<15 {
			lost := t.rrLost - prev.rrLost - int64(t.holes-prev.holes)
			s.Down.Packets += expected
			s.Down.Lost += uint64(min(max(lost, 0), int64(expected)))
		}
		if now.UnixNano()-d.rrAt.Load() > int64(reportMaxAge) {
			continue // RTT and jitter as of long ago
		}
		if rtt := time.Duration(d.rtt.Load()); rtt > 0 {
			rttSum += rtt
			rttN++
		}
		if d.kind == KindAudio {
			// Video's jitter says little: a frame's packets share a
			// timestamp but leave in a burst, and a repaired loss upstream
			// arrives late with its old timestamp.
			s.Down.Jitter = max(s.Down.Jitter, time.Duration(d.rrJitter.Load()))
		}
	}
	m.downs = seenDown
	if rttN > 0 {
		s.RTT = rttSum / time.Duration(rttN)
	}
	s.PathDown = !p.PathUp()

	m.window[m.n%QualityWindow] = struct{ up, down Direction }{s.Up, s.Down}
	m.n++
	var up, down []Direction
	for i := max(0, m.n-QualityWindow); i < m.n; i++ {
		w := m.window[i%QualityWindow]
		up, down = append(up, w.up), append(down, w.down)
	}
	// Upstream has no RTT of its own: the path is the same one.
	s.UpQuality = Scored(up, s.RTT, s.PathDown)
	s.DownQuality = Scored(down, s.RTT, s.PathDown)
	return s
}

// ntpMiddle returns the middle 32 bits of t as an NTP timestamp (RFC 3550
// §4: seconds since 1900 in 16.16 fixed point), the unit of LSR and DLSR.
func ntpMiddle(t time.Time) uint32 {
	const ntpEpochOffset = 2208988800 // seconds from 1900 to 1970
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return uint32((secs<<32 | frac) >> 16)
}

// receiverReport takes one report block about this DownTrack: cumulative
// loss, extended highest sequence number, jitter (codec clock ticks) and,
// when the subscriber got a sender report, the round-trip time (RFC 3550
// §6.4.1: now − LSR − DLSR, in 1/65536 s).
func (d *DownTrack) receiverReport(r rtcp.ReceptionReport, now time.Time) {
	d.rrAt.Store(now.UnixNano())
	// RFC 3550 §6.4.1: cumulative lost is a signed 24-bit number.
	d.rrLost.Store(int64(int32(r.TotalLost<<8) >> 8))
	d.rrHighest.Store(uint64(r.LastSequenceNumber))
	if d.clock > 0 {
		d.rrJitter.Store(int64(time.Duration(r.Jitter) * time.Second / time.Duration(d.clock)))
	}
	if r.LastSenderReport != 0 {
		if rtt := ntpMiddle(now) - r.LastSenderReport - r.Delay; rtt < 1<<31 {
			d.rtt.Store(int64(time.Duration(rtt) * time.Second >> 16))
		}
	}
}

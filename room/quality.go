package room

// Connection quality per member (sfu/quality.go measures and scores it):
// the speaker goroutine samples every member once per QualityInterval under
// its room's mutex, tells the room about the levels that changed, counts
// the server-wide metrics, and keeps the member's call-detail record, which
// is written when it leaves (removeLocked). A member's quality state is
// guarded by its Room's mu.

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/roundtable-sfu/roundtable/internal/stat"
	"github.com/roundtable-sfu/roundtable/sfu"
)

// QualityInterval is how often connection quality is sampled: clients get
// at most one connection-quality event per interval.
const QualityInterval = time.Second

// Directions of a member's media, as metrics label them.
const (
	DirUp   = 0 // member to server (what it publishes)
	DirDown = 1 // server to member (what it receives)
)

// DirectionNames are the metric label values of DirUp and DirDown.
var DirectionNames = [2]string{"upstream", "downstream"}

// QualityUpdate is one member's levels in a ConnectionQuality event.
type QualityUpdate struct {
	Participant string
	Up, Down    sfu.Quality
}

// ConnectionQuality: the connection quality levels of members changed
// (at most once per QualityInterval; the first sample of each member is
// always sent).
type ConnectionQuality struct{ Updates []QualityUpdate }

func (ConnectionQuality) event() {}

// QualityStats are the server-wide quality counters, without room or
// member labels. Safe for any goroutine.
type QualityStats struct {
	// Seconds members spent at each level, by direction.
	Seconds [2][4]atomic.Uint64
	// Loss is the distribution of the per-second loss ratio (0–1) of each
	// member and direction, over seconds with at least 30 packets.
	Loss [2]*stat.Histogram
	// RTT is the distribution of the per-second round-trip times measured.
	RTT *stat.Histogram
	// Freezes counts the video freezes members saw (a second or more
	// without frames of a video whose source kept sending).
	Freezes atomic.Uint64
}

// LossBuckets are the loss histogram's upper bounds (ratio).
var LossBuckets = []float64{0.0001, 0.005, 0.01, 0.02, 0.05, 0.08, 0.15, 0.3, 0.5}

// RTTBuckets are the round-trip time histogram's upper bounds, in seconds.
var RTTBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6}

func newQualityStats() *QualityStats {
	return &QualityStats{Loss: [2]*stat.Histogram{stat.NewHistogram(LossBuckets...), stat.NewHistogram(LossBuckets...)},
		RTT: stat.NewHistogram(RTTBuckets...)}
}

// Quality returns the server-wide quality counters.
func (m *Manager) Quality() *QualityStats { return m.quality }

// QualityLevels counts the members at each level now, the worse of their
// two directions (members not yet sampled are not counted).
func (m *Manager) QualityLevels() (levels [4]int) {
	for _, r := range m.allRooms() {
		r.mu.Lock()
		for _, p := range r.order {
			if p.q.samples > 0 {
				levels[max(p.q.last.UpQuality, p.q.last.DownQuality)]++
			}
		}
		r.mu.Unlock()
	}
	return levels
}

// CallRecord is the call-detail record of one member's session, written
// when it leaves: in the log and as the participant_left webhook's cdr.
type CallRecord struct {
	Room, Participant, Identity, Name string
	Joined                            time.Time
	Duration                          time.Duration
	// Path is how its media first connected ("" never).
	Path string
	// Bytes are the RTP bytes received from the member (retransmissions
	// included) and sent to it (first transmissions).
	BytesUp, BytesDown uint64
	// Loss per direction in per cent, to 0.01: Mean over the whole session
	// (packets lost over packets expected), Worst over any one second of
	// at least 30 packets.
	MeanLoss, WorstLoss [2]float64
	// Seconds spent at each level (excellent, good, poor, lost), by
	// direction.
	Seconds [2][4]int
	// Freezes of the video it received, and the seconds they lasted.
	Freezes, FrozenSeconds int
}

// memberQuality is a member's quality state (guarded by its Room's mu).
type memberQuality struct {
	samples int
	last    sfu.QualitySample // the last whole second's: its levels are the member's now
	told    bool              // the member was sent every level since it joined or resumed
	packets [2]uint64
	lost    [2]uint64
	bytes   [2]uint64
	worst   [2]float64
	seconds [2][4]int
	freezes int
	frozenS int
}

// sampleQuality takes one sample of every member of r and tells everyone
// the levels that changed.
func (r *Room) sampleQuality(st *QualityStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var changed, all []QualityUpdate
	for _, p := range r.order {
		if !p.connected.Load() {
			continue // nothing to judge before the media path first comes up
		}
		c := p.sampleLocked(st, false)
		u := QualityUpdate{Participant: p.id, Up: p.q.last.UpQuality, Down: p.q.last.DownQuality}
		all = append(all, u)
		if c {
			changed = append(changed, u)
		}
	}
	for _, o := range r.order {
		// A member who came (or resumed) since the last sample gets every
		// level; the others what changed.
		switch {
		case len(all) == 0:
		case !o.q.told:
			o.client.Notify(ConnectionQuality{Updates: all})
			o.q.told = true
		case len(changed) > 0:
			o.client.Notify(ConnectionQuality{Updates: changed})
		}
	}
}

// sampleLocked samples p (its Room's mu held) and reports whether its
// levels changed or were sampled for the first time. The final sample,
// when p leaves, covers part of a second: it adds its packets, loss and
// bytes to the record, but no second at a level and no metric sample.
func (p *Participant) sampleLocked(st *QualityStats, final bool) bool {
	s := p.peer.SampleQuality()
	q := &p.q
	for dir, d := range [2]sfu.Direction{s.Up, s.Down} {
		q.packets[dir] += d.Packets
		q.lost[dir] += d.Lost
		q.bytes[dir] += d.Bytes
		if d.Packets >= 30 && !final {
			loss := d.LossPercent()
			q.worst[dir] = max(q.worst[dir], loss)
			st.Loss[dir].ObserveValue(loss / 100)
		}
	}
	if final {
		return false
	}
	prev, first := q.last, q.samples == 0
	q.last = s
	q.samples++
	if s.RTT > 0 {
		st.RTT.Observe(s.RTT)
	}
	if s.Down.Frozen {
		q.frozenS++
		if !prev.Down.Frozen {
			q.freezes++
			st.Freezes.Add(1)
		}
	}
	q.seconds[DirUp][s.UpQuality]++
	q.seconds[DirDown][s.DownQuality]++
	st.Seconds[DirUp][s.UpQuality].Add(1)
	st.Seconds[DirDown][s.DownQuality].Add(1)
	return first || prev.UpQuality != s.UpQuality || prev.DownQuality != s.DownQuality
}

// round2 rounds to two decimals: loss figures in per cent as reported.
func round2(v float64) float64 { return math.Round(v*100) / 100 }

// record returns p's call-detail record as it stands (its Room's mu held).
func (p *Participant) record(now time.Time) CallRecord {
	q := &p.q
	c := CallRecord{Room: p.roomName, Participant: p.id, Identity: p.identity, Name: p.name,
		Joined: p.joined, Duration: now.Sub(p.joined), BytesUp: q.bytes[DirUp], BytesDown: q.bytes[DirDown],
		WorstLoss: q.worst, Seconds: q.seconds, Freezes: q.freezes, FrozenSeconds: q.frozenS}
	if path := p.path.Load(); path != nil {
		c.Path = *path
	}
	for dir := range 2 {
		if q.packets[dir] > 0 {
			c.MeanLoss[dir] = round2(100 * float64(q.lost[dir]) / float64(q.packets[dir]))
		}
		c.WorstLoss[dir] = round2(c.WorstLoss[dir])
	}
	return c
}

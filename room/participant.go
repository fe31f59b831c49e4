package room

// Ownership: as room.go says. A Participant's fixed fields are set by Join
// and read anywhere; connected, failed, ended and lastDataErr are atomics;
// tracks, meta and left are guarded by its Room's mu. onState and
// iceFailed run on pion's goroutines or the connect timer.

import (
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/sfu"
)

// Permissions say what a member may do; signal fills them from the join
// token's grants (AllowAll on an open server).
type Permissions struct {
	Publish     bool `json:"publish"`      // its tracks are forwarded
	Subscribe   bool `json:"subscribe"`    // it receives the others' tracks
	PublishData bool `json:"publish_data"` // its data-channel messages are forwarded
}

// AllowAll is an open server's member.
var AllowAll = Permissions{Publish: true, Subscribe: true, PublishData: true}

// Member says who joins.
type Member struct {
	Name string // display name, as the client or the token gave it
	// Identity is the token's subject ("" on an open server). An identity
	// is in a room at most once: a second join with it replaces the first
	// member, which is closed with "replaced".
	Identity string
	Perm     Permissions
	// CandidatesInAnswer: the member's client gets no trickled candidates
	// (a WHIP encoder): answers carry them (sfu.PeerConfig).
	CandidatesInAnswer bool
	// ID, when set, is the participant id to use instead of a new one: a
	// participant that moves here from another node of the cluster (a
	// resume there). Join refuses it while a local member has it.
	ID string
}

// Participant is one member of a room. The fields above connected do not
// change once Join has returned, but perm, which is guarded by its Room's
// mu (Manager.SetGrants changes it). The Peer's hooks, which read them on pion
// goroutines, run only after the member negotiated, which it can do only
// once Join has returned.
type Participant struct {
	id       string
	name     string
	identity string
	perm     Permissions
	room     *Room
	client   Client
	peer     *sfu.Peer
	rate     *TokenBucket

	mgr      *Manager
	roomName string
	joined   time.Time

	view         *viewing // a viewer's (Watch), nil for a member
	moved        bool     // it came from another node of the cluster (Member.ID)
	relay        *Relay   // a proxy's: the relay its node's tracks come by (relay.go); nil for a local member
	probe        bool     // a Probe: in no room
	connected    atomic.Bool
	failed       atomic.Bool            // iceFailed ran
	ended        atomic.Bool            // EndProbe ran
	lastDataErr  atomic.Int64           // unix nanos of the last dropped-data error sent
	connectTimer *time.Timer            // closes a member that never connects; stopped by Leave
	recoverTimer *time.Timer            // asks a member whose path is lost to restart ICE, then closes it (resume.go); nil for a probe
	lostAt       atomic.Int64           // when the path was lost (Unix nanoseconds), 0 while up
	removed      atomic.Bool            // set with left: timers stop acting
	path         atomic.Pointer[string] // how media first connected (an sfu.Path)

	// guarded by room.mu
	tracks []*sfu.UpTrack
	meta   map[string]TrackMeta // by the publisher's own track id
	left   bool
	stale  bool        // a proxy a new snapshot has not named yet (relay.go)
	orphan *time.Timer // a proxy whose node was lost or which is moving: when it leaves (remote.go)
	moving bool        // a member another node took over: its client is being closed ("moved")
	q      memberQuality
}

// SetMoving marks the member as taken over by another node of the cluster
// (a resume there): however its session here ends, it leaves as moved.
func (p *Participant) SetMoving() {
	if r := p.room; r != nil {
		r.mu.Lock()
		p.moving = true
		r.mu.Unlock()
	}
}

// ID returns the participant id.
func (p *Participant) ID() string { return p.id }

// Name returns the display name.
func (p *Participant) Name() string { return p.name }

// Room returns the room name.
func (p *Participant) Room() string { return p.room.name }

// Connected reports whether the member's PeerConnection has connected at
// least once.
func (p *Participant) Connected() bool { return p.connected.Load() }

// Peer returns the participant's PeerConnection wrapper.
func (p *Participant) Peer() *sfu.Peer { return p.peer }

func (p *Participant) onState(s webrtc.PeerConnectionState) {
	switch s {
	case webrtc.PeerConnectionStateConnected:
		if !p.probe {
			p.pathBack()
		}
		if p.connected.CompareAndSwap(false, true) {
			path, pair, _ := p.peer.Path()
			ps := string(path)
			p.path.Store(&ps)
			what := "participant connected"
			if p.probe {
				what = "probe connected"
			}
			p.mgr.log.Info(what, "room", p.roomName, "participant", p.id, "path", path, "pair", pair,
				"after", time.Since(p.joined).Round(time.Millisecond))
			p.client.Notify(Connected{Path: path})
		}
	case webrtc.PeerConnectionStateFailed:
		if p.connected.Load() && !p.probe {
			p.pathLost()
			return
		}
		p.iceFailed("ice_failed")
	}
}

// iceFailed ends a member whose PeerConnection never connected or failed:
// it tells the client why (Peer.Diagnose) and closes its session with bye.
// Called once at most per member for each cause: by the connect timer or
// by pion's state callback.
func (p *Participant) iceFailed(bye string) {
	if !p.failed.CompareAndSwap(false, true) {
		return
	}
	reason := p.peer.Diagnose()
	what := "participant ice failed"
	if p.probe {
		what = "probe failed"
	}
	p.mgr.log.Info(what, "room", p.roomName, "participant", p.id, "reason", reason,
		"connected_before", p.connected.Load(), "after", time.Since(p.joined).Round(time.Millisecond), "bye", bye)
	p.client.Notify(ICEFailed{Reason: reason})
	p.client.Close(bye)
}

// info is called with room.mu held.
func (p *Participant) info() ParticipantInfo {
	tracks := make([]TrackInfo, 0, len(p.tracks))
	for _, up := range p.tracks {
		tracks = append(tracks, p.trackInfo(up))
	}
	return ParticipantInfo{ID: p.id, Name: p.name, Tracks: tracks}
}

// trackInfo is called with room.mu held.
func (p *Participant) trackInfo(up *sfu.UpTrack) TrackInfo {
	m := p.meta[up.RemoteID()]
	return TrackInfo{ID: up.ID(), StreamID: up.StreamID(), Kind: up.Kind().String(), Source: m.Source,
		Muted: m.Muted || up.Muted()}
}

// notifyThrottled sends a dropped-data error at most once a second: a
// sender over a limit would otherwise get one per message.
func (p *Participant) notifyThrottled(err error) {
	now := time.Now().UnixNano()
	if last := p.lastDataErr.Load(); now-last > int64(time.Second) && p.lastDataErr.CompareAndSwap(last, now) {
		p.client.Notify(Error{err})
	}
}

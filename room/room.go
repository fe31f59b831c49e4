package room

// Ownership: Manager.mu guards the room map; Room.mu guards one room's
// members and their published tracks. Lock order is Manager.mu, then
// Room.mu. Hooks from sfu.Peer (pion goroutines) take only Room.mu. The
// Manager runs one goroutine, the speaker loop (speakerloop.go), and one
// timer per member that has not connected yet (connectTimer). Room.mu is
// held, on purpose, while calling Client.Notify, Peer.Subscribe and
// Peer.Unsubscribe and UpTrack's getters, so that every member sees the
// room's changes in one order: those only queue, read immutable fields or
// atomics, or take their own object's lock briefly, and none calls back
// into room. Peer.Close and Peer.SendData are called with no room lock.

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roundtable-sfu/roundtable/sfu"
)

// Client is a member's transport (a WebSocket session today; a recorder or
// a relay could be one too). Both methods must return at once.
type Client interface {
	// Notify queues an event for the member.
	Notify(Event)
	// Close asks the transport to end the member's session; the transport
	// then calls Manager.Leave.
	Close(reason string)
}

// Silencer is a Client that can tell whether its transport has heard
// from the client since a moment: a server offer that goes unanswered
// while the client is silent is blamed on the transport (a socket the
// server has not yet seen drop), not on the client (sfu.PeerConfig's
// ClientSilent).
type Silencer interface {
	Silent(since time.Time) bool
}

// PeerFactory creates a member's Peer; *sfu.Engine's NewPeer in production.
type PeerFactory func(sfu.PeerConfig) (*sfu.Peer, error)

// Manager owns the rooms of one server.
type Manager struct {
	newPeer PeerFactory
	limits  Limits
	log     *slog.Logger

	mu     sync.Mutex
	rooms  map[string]*Room
	closed bool

	observer     func(Change) // set once, before the first Join (Observe)
	recordAll    NewRecorder  // set once, before the first Join (RecordAll)
	recordings   atomic.Int64 // rooms with a Recorder
	quality      *QualityStats
	participants atomic.Int64
	probes       atomic.Int64  // open Probes
	relays       atomic.Int64  // open Relays (relay.go)
	relayFails   atomic.Uint64 // relay connections that failed (relay.go)
	stop         chan struct{} // ends the speaker goroutine
	stopped      chan struct{}
	stopOnce     sync.Once
}

// NewManager returns an empty Manager and starts its speaker goroutine
// (stopped by Close), or the errors of limits.Validate.
func NewManager(newPeer PeerFactory, limits Limits, log *slog.Logger) (*Manager, error) {
	if err := limits.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	m := &Manager{newPeer: newPeer, limits: limits, log: log, rooms: map[string]*Room{},
		quality: newQualityStats(), stop: make(chan struct{}), stopped: make(chan struct{})}
	go m.speakerLoop()
	return m, nil
}

// Limits returns the limits in force.
func (m *Manager) Limits() Limits { return m.limits }

// Counts returns the number of rooms and participants.
func (m *Manager) Counts() (rooms, participants int) {
	m.mu.Lock()
	rooms = len(m.rooms)
	m.mu.Unlock()
	return rooms, int(m.participants.Load())
}

// Room is one room: its name and members.
type Room struct {
	name string
	mgr  *Manager

	created time.Time

	mu      sync.Mutex
	members map[string]*Participant
	order   []*Participant // join order, for stable listings
	speaker *SpeakerDetector
	// viewers are the WHEP viewers not listed as members (viewer.go):
	// in no member's list, told nothing, and not in order.
	viewers []*Participant
	rec     Recorder // the room's recording, nil none (record.go)
	ended   bool     // gone from the Manager's map: nothing attaches to it any more
	// relays link the room to the same room on other nodes, by node id;
	// remote are the proxies of those nodes' members, in no particular
	// order (relay.go).
	relays map[string]*Relay
	remote []*Participant
	// viewsMu serializes sendViews (never held with mu taken first);
	// viewRound counts its calls (under mu).
	viewsMu   sync.Mutex
	viewRound int
}

// Join validates the names, creates the member's Peer and adds it to the
// room (creating the room on first join). The member's client receives
// Joined before any other event. A member with the same identity is
// removed first (the others see it leave, then the new one join) and its
// client is closed with "replaced".
func (m *Manager) Join(roomName string, who Member, c Client) (*Participant, error) {
	return m.join(roomName, who, c, nil)
}

// join is Join, and Watch with v set.
func (m *Manager) join(roomName string, who Member, c Client, v *viewing) (*Participant, error) {
	if err := ValidateRoomName(roomName); err != nil {
		return nil, err
	}
	name, err := NormalizeName(who.Name)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed { // checked again in add; this saves a PeerConnection while draining
		return nil, ErrClosed
	}
	id := who.ID
	if id == "" {
		id = NewID()
	}
	p := &Participant{
		id: id, moved: who.ID != "", name: name, identity: who.Identity, perm: who.Perm, client: c, meta: map[string]TrackMeta{},
		mgr: m, roomName: roomName, joined: time.Now(),
		rate: NewTokenBucket(m.limits.DataRate, m.limits.DataBurst, nil),
		view: v,
	}
	var silent func(time.Time) bool
	if sc, ok := c.(Silencer); ok {
		silent = sc.Silent
	}
	peer, err := m.newPeer(sfu.PeerConfig{
		ID:                 p.id,
		ClientSilent:       silent,
		CandidatesInAnswer: who.CandidatesInAnswer,
		Playback:           v != nil,
		OnSignal:           func(s sfu.Signal) { c.Notify(Signal{s}) },
		OnTrack: func(up *sfu.UpTrack) bool {
			if err := p.room.publish(p, up); err != nil {
				c.Notify(Error{err})
				return false
			}
			return true
		},
		OnTrackEnded: func(up *sfu.UpTrack) {
			p.room.unpublish(p, up)
		},
		OnData:  func(d sfu.DataMessage) { p.room.forwardData(p, d) },
		OnState: p.onState,
		OnError: func(err error) {
			c.Notify(Error{err})
			if errors.Is(err, sfu.ErrNegotiationFailed) {
				c.Close("negotiation_failed")
			}
		},
		Logger: m.log.With("participant", p.id),
	})
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", roomName, err)
	}
	p.peer = peer
	p.connectTimer = time.AfterFunc(m.limits.ConnectTimeout, func() {
		if !p.connected.Load() {
			p.iceFailed("connect_timeout")
		}
	})
	p.recoverTimer = time.AfterFunc(time.Hour, p.recoverCheck)
	p.recoverTimer.Stop()
	replaced, created, err := m.add(roomName, p)
	if err != nil {
		p.connectTimer.Stop()
		_ = peer.Close()
		return nil, err
	}
	if created && m.recordAll != nil {
		// Outside the locks: starting a recording touches the disk. A
		// track published meanwhile is replayed to it.
		if _, err := m.StartRecording(roomName, m.recordAll); err != nil && !errors.Is(err, ErrRecording) && !errors.Is(err, ErrNoRoom) {
			m.log.Error("room not recorded", "room", roomName, "err", err)
		}
	}
	if replaced != nil {
		m.log.Info("participant left", "room", roomName, "participant", replaced.id, "reason", "replaced", "by", p.id)
		replaced.client.Close("replaced")
		if err := replaced.peer.Close(); err != nil {
			m.log.Debug("peer close", "participant", replaced.id, "err", err)
		}
	}
	return p, nil
}

// add puts p in its room. It returns the member p replaces (same
// identity), already removed from the room (the caller closes it), and
// whether the room was created for p.
func (m *Manager) add(roomName string, p *Participant) (replaced *Participant, created bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, false, ErrClosed
	}
	r := m.rooms[roomName]
	if r == nil {
		if len(m.rooms) >= m.limits.MaxRooms {
			return nil, false, ErrTooManyRooms
		}
		r = &Room{name: roomName, mgr: m, created: time.Now(), members: map[string]*Participant{}, speaker: NewSpeakerDetector()}
		m.rooms[roomName] = r
		m.log.Info("room created", "room", roomName)
		m.emit(Change{Kind: ChangeRoomStarted, Room: roomName})
		created = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.hidden() {
		return nil, created, r.addViewerLocked(p)
	}
	if p.identity != "" && p.view == nil {
		for _, o := range r.order {
			if o.identity == p.identity && o.view == nil {
				replaced = o
				break
			}
		}
	}
	if r.members[p.id] != nil {
		return nil, created, ErrAlreadyHere
	}
	others := len(r.members) + len(r.remote)
	if r.remoteLocked(p.id) != nil {
		others-- // it moves here: it is in the room already
	}
	if replaced == nil && others >= m.limits.MaxParticipants {
		return nil, created, ErrRoomFull
	}
	if replaced != nil {
		r.removeLocked(replaced, "replaced")
	}
	// The same participant, known here as another node's member, moved
	// here (cluster): the others already know it and see no join.
	moved := r.remoteLocked(p.id)
	if moved != nil {
		r.takeRemoteLocked(moved)
	}
	p.room = r
	infos := make([]ParticipantInfo, 0, len(r.order)+len(r.remote))
	for _, o := range r.everyoneLocked() {
		infos = append(infos, o.info())
		if p.perm.Subscribe {
			for _, up := range o.tracks {
				p.peer.Subscribe(up)
			}
		}
	}
	r.members[p.id] = p
	r.order = append(r.order, p)
	m.participants.Add(1)
	p.client.Notify(Joined{ID: p.id, Room: r.name, Participants: infos, Moved: p.moved})
	me := p.info()
	for _, o := range r.order {
		if o != p && moved == nil {
			o.client.Notify(ParticipantJoined{Participant: me})
		}
	}
	r.eachRelayLocked(func(rl *Relay) { rl.announceLocked(p) })
	m.log.Info("participant joined", "room", r.name, "participant", p.id, "name", p.name, "members", len(r.members))
	m.emit(Change{Kind: ChangeParticipantJoin, Room: r.name, Participant: p.changed()})
	if p.view != nil {
		r.followLocked(p)
	}
	return replaced, created, nil
}

// Leave removes p from its room, removes its tracks from everyone, deletes
// the room when it is empty, and closes p's Peer. Safe to call twice.
func (m *Manager) Leave(p *Participant, reason string) {
	r := p.room
	if r == nil {
		return
	}
	m.mu.Lock()
	r.mu.Lock()
	if p.left {
		r.mu.Unlock()
		m.mu.Unlock()
		return
	}
	r.removeLocked(p, reason)
	empty := len(r.members) == 0 && len(r.viewers) == 0
	var rec Recorder
	var relays []*Relay
	if empty && m.rooms[r.name] == r {
		delete(m.rooms, r.name)
		r.ended = true
		rec = r.takeRecorderLocked()
		for _, rl := range r.relays {
			relays = append(relays, rl)
		}
		for _, o := range r.remote {
			if o.orphan != nil { // nobody here waits for it any more
				o.orphan.Stop()
				o.orphan = nil
			}
		}
		m.emit(Change{Kind: ChangeRoomFinished, Room: r.name})
	}
	r.mu.Unlock()
	m.mu.Unlock()
	for _, rl := range relays {
		rl.Close() // the other nodes' members leave this room here, silently: nobody is left
	}
	if rec != nil {
		rec.Close()
		m.log.Info("recording stopped", "room", r.name, "reason", "room ended")
	}
	m.log.Info("participant left", "room", r.name, "participant", p.id, "reason", reason)
	if empty {
		m.log.Info("room removed", "room", r.name)
	}
	if err := p.peer.Close(); err != nil {
		m.log.Debug("peer close", "participant", p.id, "err", err)
	}
}

// removeLocked takes p out of the room (r.mu held): the others stop
// receiving its tracks and see it leave. The caller closes p's Peer.
func (r *Room) removeLocked(p *Participant, reason string) {
	p.left = true
	p.removed.Store(true)
	p.connectTimer.Stop()
	if p.recoverTimer != nil {
		p.recoverTimer.Stop()
	}
	if p.hidden() {
		r.removeViewerLocked(p)
		return
	}
	delete(r.members, p.id)
	for i, o := range r.order {
		if o == p {
			r.order = append(r.order[:i:i], r.order[i+1:]...)
			break
		}
	}
	var stand *Participant
	if reason == ReasonMoved || p.moving {
		reason = ReasonMoved // another node took it over, whatever ended the session here
		// It continues on another node (cluster): here it becomes that
		// node's member, waiting for the relay that names it (or
		// Limits.MoveGrace). The others lose its tracks, not it.
		stand = &Participant{id: p.id, name: p.name, identity: p.identity, perm: Permissions{Publish: true},
			room: r, mgr: r.mgr, roomName: r.name, joined: p.joined, meta: map[string]TrackMeta{}}
	}
	for _, o := range r.order {
		for _, up := range p.tracks {
			o.peer.Unsubscribe(up)
		}
		if stand != nil {
			for _, up := range p.tracks {
				o.client.Notify(TrackUnpublished{Participant: p.id, TrackID: up.ID()})
			}
		} else {
			o.client.Notify(ParticipantLeft{ID: p.id})
		}
	}
	if stand != nil {
		r.remote = append(r.remote, stand)
		r.orphanLocked(stand)
	}
	for _, rl := range r.relays {
		if c, ok := rl.joins[p.id]; ok { // the node it moved to named it already
			delete(rl.joins, p.id)
			if stand != nil {
				rl.controlFromLocked(c)
			}
		}
	}
	r.eachRelayLocked(func(rl *Relay) {
		for _, up := range p.tracks {
			rl.leg.peer.Unsubscribe(up)
		}
		rl.controlLocked(relayControl{Type: "leave", Participant: p.id, Reason: reason})
	})
	who := p.changed()
	gone := *who // participant_left's, with the call-detail record
	if !p.probe {
		if p.connected.Load() {
			p.sampleLocked(r.mgr.quality, true) // the last part of a second
		}
		cdr := p.record(time.Now())
		gone.Record = &cdr
		r.mgr.log.Info("call record", "room", cdr.Room, "participant", cdr.Participant, "identity", cdr.Identity,
			"duration", cdr.Duration.Round(time.Millisecond), "path", cdr.Path, "bytes_up", cdr.BytesUp, "bytes_down", cdr.BytesDown,
			"loss_up_mean", cdr.MeanLoss[DirUp], "loss_up_worst", cdr.WorstLoss[DirUp],
			"loss_down_mean", cdr.MeanLoss[DirDown], "loss_down_worst", cdr.WorstLoss[DirDown],
			"seconds_up", cdr.Seconds[DirUp], "seconds_down", cdr.Seconds[DirDown],
			"freezes", cdr.Freezes, "frozen_seconds", cdr.FrozenSeconds, "reason", reason)
	}
	for _, up := range p.tracks {
		info := p.trackInfo(up)
		r.mgr.emit(Change{Kind: ChangeTrackUnpublished, Room: r.name, Participant: who, Track: &info})
		if r.rec != nil {
			r.rec.TrackUnpublished(p.id, up)
		}
	}
	r.mgr.emit(Change{Kind: ChangeParticipantLeft, Room: r.name, Participant: &gone, Reason: reason})
	hadTracks := len(p.tracks) > 0
	p.tracks = nil
	r.mgr.participants.Add(-1)
	if hadTracks {
		r.refollowLocked() // viewers watching it look elsewhere
	}
}

// everyoneLocked returns the local members in join order, then the other
// nodes' (r.mu held).
func (r *Room) everyoneLocked() []*Participant {
	if len(r.remote) == 0 {
		return r.order
	}
	return append(slices.Clone(r.order), r.remote...)
}

// Close stops accepting joins, stops the active-speaker goroutine and asks
// every member's client to close.
func (m *Manager) Close(reason string) {
	m.stopOnce.Do(func() { close(m.stop) })
	<-m.stopped
	m.mu.Lock()
	m.closed = true
	var all []*Participant
	for _, r := range m.rooms {
		r.mu.Lock()
		all = append(all, r.order...)
		all = append(all, r.viewers...)
		r.mu.Unlock()
	}
	m.mu.Unlock()
	for _, p := range all {
		p.client.Close(reason)
	}
}

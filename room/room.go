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

	"github.com/pion/webrtc/v3"
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

// Limits bound what rooms and members may do. Every field must be set
// (Validate); the defaults live in internal/server.DefaultConfig, not here.
type Limits struct {
	MaxRooms        int     // rooms on this server
	MaxParticipants int     // members per room
	DataRate        float64 // data-channel messages per second per sender
	DataBurst       int     // messages a sender may send at once (the bucket's size)
	MaxTracks       int     // tracks a member may publish at once
	// ConnectTimeout: a member whose PeerConnection has not connected this
	// long after joining is closed ("connect_timeout") and freed.
	ConnectTimeout time.Duration
	// MaxProbes bounds the connectivity probes (Probe) open at once;
	// ProbeTimeout is how long one may take to connect.
	MaxProbes    int
	ProbeTimeout time.Duration
}

// Validate reports every limit a Manager cannot run with: each must be
// positive, and DataBurst at least one message.
func (l Limits) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("room: "+format, a...)) }
	if l.MaxRooms < 1 {
		bad("max rooms %d: want at least 1", l.MaxRooms)
	}
	if l.MaxParticipants < 1 {
		bad("max participants %d: want at least 1", l.MaxParticipants)
	}
	if l.DataRate <= 0 {
		bad("data rate %v: want more than 0", l.DataRate)
	}
	if l.DataBurst < 1 {
		bad("data burst %d: want at least 1", l.DataBurst)
	}
	if l.MaxTracks < 1 {
		bad("max tracks %d: want at least 1", l.MaxTracks)
	}
	if l.ConnectTimeout <= 0 {
		bad("connect timeout %v: want more than 0", l.ConnectTimeout)
	}
	if l.MaxProbes < 1 {
		bad("max probes %d: want at least 1", l.MaxProbes)
	}
	if l.ProbeTimeout <= 0 {
		bad("probe timeout %v: want more than 0", l.ProbeTimeout)
	}
	return errors.Join(errs...)
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

	participants atomic.Int64
	probes       atomic.Int64  // open Probes
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
		stop: make(chan struct{}), stopped: make(chan struct{})}
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

	mu      sync.Mutex
	members map[string]*Participant
	order   []*Participant // join order, for stable listings
	speaker *SpeakerDetector
}

// Permissions say what a member may do; signal fills them from the join
// token's grants (AllowAll on an open server).
type Permissions struct {
	Publish     bool // its tracks are forwarded
	Subscribe   bool // it receives the others' tracks
	PublishData bool // its data-channel messages are forwarded
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
}

// Participant is one member of a room. The fields above connected do not
// change once Join has returned. The Peer's hooks, which read them on pion
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

	probe        bool // a Probe: in no room
	connected    atomic.Bool
	failed       atomic.Bool  // iceFailed ran
	ended        atomic.Bool  // EndProbe ran
	lastDataErr  atomic.Int64 // unix nanos of the last dropped-data error sent
	connectTimer *time.Timer  // closes a member that never connects; stopped by Leave

	// guarded by room.mu
	tracks []*sfu.UpTrack
	meta   map[string]TrackMeta // by the publisher's own track id
	left   bool
}

// ID returns the participant id.
func (p *Participant) ID() string { return p.id }

// Name returns the display name.
func (p *Participant) Name() string { return p.name }

// Room returns the room name.
func (p *Participant) Room() string { return p.room.name }

// Peer returns the participant's PeerConnection wrapper.
func (p *Participant) Peer() *sfu.Peer { return p.peer }

// Join validates the names, creates the member's Peer and adds it to the
// room (creating the room on first join). The member's client receives
// Joined before any other event. A member with the same identity is
// removed first (the others see it leave, then the new one join) and its
// client is closed with "replaced".
func (m *Manager) Join(roomName string, who Member, c Client) (*Participant, error) {
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
	perm := who.Perm
	p := &Participant{
		id: NewID(), name: name, identity: who.Identity, perm: perm, client: c, meta: map[string]TrackMeta{},
		mgr: m, roomName: roomName, joined: time.Now(),
		rate: NewTokenBucket(m.limits.DataRate, m.limits.DataBurst, nil),
	}
	peer, err := m.newPeer(sfu.PeerConfig{
		ID:       p.id,
		OnSignal: func(s sfu.Signal) { c.Notify(Signal{s}) },
		OnTrack: func(up *sfu.UpTrack) bool {
			if !perm.Publish {
				c.Notify(Error{fmt.Errorf("%w: track %s is not forwarded", ErrPublishNotAllowed, up.ID())})
				return false
			}
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
	replaced, err := m.add(roomName, p)
	if err != nil {
		p.connectTimer.Stop()
		_ = peer.Close()
		return nil, err
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
// identity), already removed from the room; the caller closes it.
func (m *Manager) add(roomName string, p *Participant) (replaced *Participant, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	r := m.rooms[roomName]
	if r == nil {
		if len(m.rooms) >= m.limits.MaxRooms {
			return nil, ErrTooManyRooms
		}
		r = &Room{name: roomName, mgr: m, members: map[string]*Participant{}, speaker: NewSpeakerDetector()}
		m.rooms[roomName] = r
		m.log.Info("room created", "room", roomName)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.identity != "" {
		for _, o := range r.order {
			if o.identity == p.identity {
				replaced = o
				break
			}
		}
	}
	if replaced == nil && len(r.members) >= m.limits.MaxParticipants {
		return nil, ErrRoomFull
	}
	if replaced != nil {
		r.removeLocked(replaced)
	}
	p.room = r
	infos := make([]ParticipantInfo, 0, len(r.order))
	for _, o := range r.order {
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
	p.client.Notify(Joined{ID: p.id, Room: r.name, Participants: infos})
	me := p.info()
	for _, o := range r.order {
		if o != p {
			o.client.Notify(ParticipantJoined{Participant: me})
		}
	}
	m.log.Info("participant joined", "room", r.name, "participant", p.id, "name", p.name, "members", len(r.members))
	return replaced, nil
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
	r.removeLocked(p)
	empty := len(r.members) == 0
	if empty && m.rooms[r.name] == r {
		delete(m.rooms, r.name)
	}
	r.mu.Unlock()
	m.mu.Unlock()
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
func (r *Room) removeLocked(p *Participant) {
	p.left = true
	p.connectTimer.Stop()
	delete(r.members, p.id)
	for i, o := range r.order {
		if o == p {
			r.order = append(r.order[:i:i], r.order[i+1:]...)
			break
		}
	}
	for _, o := range r.order {
		for _, up := range p.tracks {
			o.peer.Unsubscribe(up)
		}
		o.client.Notify(ParticipantLeft{ID: p.id})
	}
	p.tracks = nil
	r.mgr.participants.Add(-1)
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
		r.mu.Unlock()
	}
	m.mu.Unlock()
	for _, p := range all {
		p.client.Close(reason)
	}
}

func (p *Participant) onState(s webrtc.PeerConnectionState) {
	switch s {
	case webrtc.PeerConnectionStateConnected:
		if p.connected.CompareAndSwap(false, true) {
			path, pair, _ := p.peer.Path()
			what := "participant connected"
			if p.probe {
				what = "probe connected"
			}
			p.mgr.log.Info(what, "room", p.roomName, "participant", p.id, "path", path, "pair", pair,
				"after", time.Since(p.joined).Round(time.Millisecond))
			p.client.Notify(Connected{Path: path})
		}
	case webrtc.PeerConnectionStateFailed:
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
	return TrackInfo{ID: up.ID(), StreamID: up.StreamID(), Kind: up.Kind().String(), Source: m.Source, Muted: m.Muted}
}

// SetViewport applies the member's hint for a track it receives (by the
// server's track id): rendered size, and visibility (hidden video is not
// sent).
func (m *Manager) SetViewport(p *Participant, trackID string, width, height int, visible bool) error {
	if width < 0 || height < 0 || width > 16384 || height > 16384 {
		return fmt.Errorf("%w: size %dx%d", ErrBadTrackUpdate, width, height)
	}
	r := p.room
	r.mu.Lock()
	var up *sfu.UpTrack
	for _, o := range r.order {
		for _, t := range o.tracks {
			if o != p && t.ID() == trackID {
				up = t
			}
		}
	}
	r.mu.Unlock()
	if up == nil || !p.peer.SetViewport(up, width, height, visible) {
		return fmt.Errorf("%w: %q", ErrUnknownTrack, trackID)
	}
	return nil
}

// MaxTrackMeta bounds the track updates a participant may keep.
const MaxTrackMeta = 32

// UpdateTrack records what the participant says about one of its tracks
// (named by its own track id): source and muted state. Others learn it with
// the track, or at once with TrackUpdated if the track is published.
func (m *Manager) UpdateTrack(p *Participant, localID string, meta TrackMeta) error {
	if len(localID) == 0 || len(localID) > 128 {
		return fmt.Errorf("%w: track id must be 1-128 bytes", ErrBadTrackUpdate)
	}
	if !slices.Contains(Sources, meta.Source) {
		return fmt.Errorf("%w: source %q, want one of %v", ErrBadTrackUpdate, meta.Source, Sources)
	}
	r := p.room
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, known := p.meta[localID]; !known && len(p.meta) >= MaxTrackMeta {
		return fmt.Errorf("%w: more than %d tracks", ErrBadTrackUpdate, MaxTrackMeta)
	}
	p.meta[localID] = meta
	for _, up := range p.tracks {
		if up.RemoteID() == localID {
			ev := TrackUpdated{Participant: p.id, Track: p.trackInfo(up)}
			for _, o := range r.order {
				if o != p {
					o.client.Notify(ev)
				}
			}
		}
	}
	return nil
}

func (r *Room) publish(p *Participant, up *sfu.UpTrack) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.left {
		return nil
	}
	if max := r.mgr.limits.MaxTracks; len(p.tracks) >= max {
		return fmt.Errorf("%w: %d published, limit %d; track %s is not forwarded", ErrTooManyTracks, len(p.tracks), max, up.ID())
	}
	p.tracks = append(p.tracks, up)
	ev := TrackPublished{Participant: p.id, Track: p.trackInfo(up)}
	for _, o := range r.order {
		if o != p {
			o.client.Notify(ev)
			if o.perm.Subscribe {
				o.peer.Subscribe(up)
			}
		}
	}
	r.mgr.log.Info("track published", "room", r.name, "participant", p.id, "track", up.ID(),
		"kind", up.Kind().String(), "codec", up.Codec().MimeType)
	return nil
}

func (r *Room) unpublish(p *Participant, up *sfu.UpTrack) {
	r.mu.Lock()
	defer r.mu.Unlock()
	found := false
	for i, t := range p.tracks {
		if t == up {
			p.tracks = append(p.tracks[:i:i], p.tracks[i+1:]...)
			found = true
			break
		}
	}
	if !found || p.left {
		return
	}
	ev := TrackUnpublished{Participant: p.id, TrackID: up.ID()}
	for _, o := range r.order {
		if o != p {
			o.peer.Unsubscribe(up)
			o.client.Notify(ev)
		}
	}
	r.mgr.log.Info("track unpublished", "room", r.name, "participant", p.id, "track", up.ID())
}

// notifyThrottled sends a dropped-data error at most once a second: a
// sender over a limit would otherwise get one per message.
func (p *Participant) notifyThrottled(err error) {
	now := time.Now().UnixNano()
	if last := p.lastDataErr.Load(); now-last > int64(time.Second) && p.lastDataErr.CompareAndSwap(last, now) {
		p.client.Notify(Error{err})
	}
}

// forwardData enforces the data limits and sends the message to every
// other member, tagged with the sender's id.
func (r *Room) forwardData(p *Participant, d sfu.DataMessage) {
	lim := r.mgr.limits
	if !p.perm.PublishData {
		p.peer.CountDrop(sfu.DropDataNotAllowed)
		p.notifyThrottled(ErrDataNotAllowed)
		return
	}
	if !p.rate.Allow() {
		p.peer.CountDrop(sfu.DropDataRate)
		p.notifyThrottled(fmt.Errorf("%w: limit %.0f/s", ErrDataRate, lim.DataRate))
		return
	}
	r.mu.Lock()
	if p.left {
		r.mu.Unlock()
		return
	}
	others := make([]*Participant, 0, len(r.order))
	for _, o := range r.order {
		if o != p {
			others = append(others, o)
		}
	}
	r.mu.Unlock()
	for _, o := range others {
		_ = o.peer.SendData(p.id, d) // counted by sfu; a subscriber without a channel misses it
	}
}

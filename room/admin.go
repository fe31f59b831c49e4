package room

// What the admin API (package admin) reads and does: snapshots taken under
// the rooms' locks, and actions that go through the members' clients as
// any other close does. Ownership as room.go says.

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/roundtable-sfu/roundtable/sfu"
)

// ServerSender is the sender id of data messages the server itself sends
// (Manager.SendData); participant ids are 22 characters, never this.
const ServerSender = "server"

// RoomInfo summarises a room.
type RoomInfo struct {
	Name         string
	Participants int
	Tracks       int // published tracks, all members together
	Created      time.Time
	Recording    bool // a Recorder is attached
}

// MemberInfo describes a member for an operator.
type MemberInfo struct {
	ID, Name, Identity string // Identity: the join token's subject, "" on an open server
	Joined             time.Time
	Perm               Permissions
	Tracks             []TrackInfo
	// Path is how its media connected (an sfu.Path: udp, tcp, relay_udp…),
	// "" while it is not connected.
	Path      string
	Connected bool
	// Quality is the last connection quality sample, nil before the first.
	Quality *MemberQuality
}

// MemberQuality is a member's connection quality as last sampled.
type MemberQuality struct {
	Up, Down sfu.Quality
	// RTT, 0 unknown; loss per direction over the last sample, per cent
	// to 0.01.
	RTT      time.Duration
	LossUp   float64
	LossDown float64
}

// Rooms returns every room, by name.
func (m *Manager) Rooms() []RoomInfo {
	rooms := m.allRooms()
	out := make([]RoomInfo, 0, len(rooms))
	for _, r := range rooms {
		r.mu.Lock()
		info := RoomInfo{Name: r.name, Participants: len(r.members), Created: r.created, Recording: r.rec != nil}
		for _, p := range r.order {
			info.Tracks += len(p.tracks)
		}
		r.mu.Unlock()
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b RoomInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Room returns a room's summary and its members in join order, or false
// if there is no such room.
func (m *Manager) Room(name string) (RoomInfo, []MemberInfo, bool) {
	r := m.room(name)
	if r == nil {
		return RoomInfo{}, nil, false
	}
	r.mu.Lock()
	info := RoomInfo{Name: r.name, Participants: len(r.members), Created: r.created, Recording: r.rec != nil}
	members := make([]MemberInfo, 0, len(r.order))
	peers := make([]*sfu.Peer, 0, len(r.order))
	for _, p := range r.order {
		pi := p.info()
		info.Tracks += len(pi.Tracks)
		mi := MemberInfo{ID: p.id, Name: p.name, Identity: p.identity, Joined: p.joined,
			Perm: p.perm, Tracks: pi.Tracks, Connected: p.connected.Load()}
		if q := &p.q; q.samples > 0 {
			mi.Quality = &MemberQuality{Up: q.last.UpQuality, Down: q.last.DownQuality, RTT: q.last.RTT,
				LossUp: round2(q.last.Up.LossPercent()), LossDown: round2(q.last.Down.LossPercent())}
		}
		members = append(members, mi)
		peers = append(peers, p.peer)
	}
	r.mu.Unlock()
	// Path asks pion, not under the room's lock, and only once connected:
	// before, pion v3.3.6 may still be setting the ICE transport's
	// connection up on a goroutine of its own (a data race).
	for i, peer := range peers {
		if !members[i].Connected {
			continue
		}
		if path, _, ok := peer.Path(); ok {
			members[i].Path = string(path)
		}
	}
	return info, members, true
}

// CloseRoom ends every member's session with reason (their clients say
// bye and leave); the room goes when the last one has. It reports whether
// the room existed.
func (m *Manager) CloseRoom(name, reason string) bool {
	r := m.room(name)
	if r == nil {
		return false
	}
	r.mu.Lock()
	all := slices.Concat(r.order, r.viewers)
	r.mu.Unlock()
	m.log.Info("room closed", "room", name, "reason", reason, "members", len(all))
	for _, p := range all {
		p.client.Close(reason)
	}
	return true
}

// Remove ends member id's session in room with reason. It reports whether
// there was such a member.
func (m *Manager) Remove(roomName, id, reason string) bool {
	r := m.room(roomName)
	if r == nil {
		return false
	}
	r.mu.Lock()
	p := r.members[id]
	if p == nil {
		p = r.viewer(id)
	}
	r.mu.Unlock()
	if p == nil {
		return false
	}
	m.log.Info("participant removed", "room", roomName, "participant", id, "reason", reason)
	p.client.Close(reason)
	return true
}

// SendData sends d to every member of room, from ServerSender, through
// the same path as members' messages (their data channels; a member
// whose channel is not open yet gets it when it opens). It returns how
// many members it went to, and false if there is no such room.
func (m *Manager) SendData(roomName string, d sfu.DataMessage) (int, bool) {
	r := m.room(roomName)
	if r == nil {
		return 0, false
	}
	r.mu.Lock()
	all := slices.Clone(r.order)
	r.mu.Unlock()
	for _, p := range all {
		_ = p.peer.SendData(ServerSender, d)
	}
	return len(all), true
}

func (m *Manager) room(name string) *Room {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rooms[name]
}

// Errors of the admin actions.
var (
	// ErrNoRoom: no room of that name.
	ErrNoRoom = errors.New("room: no such room")
	// ErrNoParticipant: no member of that id in the room.
	ErrNoParticipant = errors.New("room: no such participant")
	// ErrNoTrack: the member publishes no track of that id.
	ErrNoTrack = errors.New("room: no such track")
)

// member returns room roomName and its member id, with the room's lock
// held (the caller unlocks r.mu).
func (m *Manager) member(roomName, id string) (*Room, *Participant, error) {
	r := m.room(roomName)
	if r == nil {
		return nil, nil, fmt.Errorf("%w: %q", ErrNoRoom, roomName)
	}
	r.mu.Lock()
	p := r.members[id]
	if p == nil {
		r.mu.Unlock()
		return nil, nil, fmt.Errorf("%w: %q in room %q", ErrNoParticipant, id, roomName)
	}
	return r, p, nil
}

// MuteTrack stops (muted) or resumes forwarding member id's track
// trackID (the server's id) to everyone (sfu.UpTrack.SetMuted); the others
// get TrackUpdated with the track muted, whatever its publisher says,
// until it is unmuted.
func (m *Manager) MuteTrack(roomName, id, trackID string, muted bool) error {
	r, p, err := m.member(roomName, id)
	if err != nil {
		return err
	}
	defer r.mu.Unlock()
	i := slices.IndexFunc(p.tracks, func(up *sfu.UpTrack) bool { return up.ID() == trackID })
	if i < 0 {
		return fmt.Errorf("%w: %q of participant %q", ErrNoTrack, trackID, id)
	}
	up := p.tracks[i]
	up.SetMuted(muted)
	ev := TrackUpdated{Participant: p.id, Track: p.trackInfo(up)}
	if r.rec != nil {
		r.rec.TrackMuted(p.id, up, ev.Track.Muted)
	}
	for _, o := range r.order {
		if o != p {
			o.client.Notify(ev)
		}
	}
	m.log.Info("track muted by the server", "room", roomName, "participant", id, "track", trackID, "muted", muted)
	return nil
}

// SetGrants changes what member id may do, at once: without Publish its
// tracks are unpublished (the others see them go; the server drops what
// it still sends, and the member gets ErrPublishNotAllowed for each, as
// for a track offered without the grant; tracks it offers later are
// refused); without Subscribe it stops receiving every track, with it it
// receives them all; without PublishData its messages are dropped.
func (m *Manager) SetGrants(roomName, id string, perm Permissions) error {
	r, p, err := m.member(roomName, id)
	if err != nil {
		return err
	}
	old := p.perm
	p.perm = perm
	var revoked []*sfu.UpTrack
	if old.Publish && !perm.Publish {
		revoked, p.tracks = p.tracks, nil
		for _, up := range revoked {
			up.SetMuted(true)
			info := p.trackInfo(up)
			m.emit(Change{Kind: ChangeTrackUnpublished, Room: r.name, Participant: p.changed(), Track: &info})
			if r.rec != nil {
				r.rec.TrackUnpublished(p.id, up)
			}
			ev := TrackUnpublished{Participant: p.id, TrackID: up.ID()}
			for _, o := range r.order {
				if o != p {
					o.peer.Unsubscribe(up)
					o.client.Notify(ev)
				}
			}
			r.eachRelayLocked(func(rl *Relay) { rl.leg.peer.Unsubscribe(up) })
		}
	}
	if old.Subscribe != perm.Subscribe {
		for _, o := range r.everyoneLocked() {
			for _, up := range o.tracks {
				if o == p {
					continue
				}
				if perm.Subscribe {
					p.peer.Subscribe(up)
				} else {
					p.peer.Unsubscribe(up)
				}
			}
		}
	}
	for _, up := range revoked {
		p.client.Notify(Error{fmt.Errorf("%w: track %s is not forwarded any more", ErrPublishNotAllowed, up.ID())})
	}
	r.mu.Unlock()
	m.log.Info("grants changed", "room", roomName, "participant", id,
		"publish", perm.Publish, "subscribe", perm.Subscribe, "publish_data", perm.PublishData)
	return nil
}

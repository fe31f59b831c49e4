package room

// Changes of rooms for an observer (the webhooks): rooms that start and
// finish, members that join and leave, tracks published and unpublished.
// They are emitted under the locks that order them (Manager.mu for rooms,
// Room.mu for the rest), so an observer sees each room's changes in the
// order they happened; it must not block (package webhook only queues).

import "time"

// Change kinds, as webhook events name them.
const (
	ChangeRoomStarted      = "room_started"
	ChangeRoomFinished     = "room_finished"
	ChangeParticipantJoin  = "participant_joined"
	ChangeParticipantLeft  = "participant_left"
	ChangeTrackPublished   = "track_published"
	ChangeTrackUnpublished = "track_unpublished"
)

// ChangeKinds lists every change kind, for metrics and docs.
var ChangeKinds = []string{ChangeRoomStarted, ChangeRoomFinished, ChangeParticipantJoin, ChangeParticipantLeft,
	ChangeTrackPublished, ChangeTrackUnpublished}

// Change is one change of a room.
type Change struct {
	Kind string
	At   time.Time
	Room string
	// Participant: the member joining or leaving, or whose track it is.
	Participant *ChangedMember
	Track       *TrackInfo
	// Reason a member left (bye reasons: left, disconnected, removed,
	// resume_timeout, replaced…).
	Reason string
}

// ChangedMember is who a Change is about.
type ChangedMember struct {
	ID, Name, Identity string
	Joined             time.Time
	// Record is the call-detail record, in participant_left only.
	Record *CallRecord
}

// Observe makes f see every Change from now on. Call it before the first
// Join; f runs under room locks and must return at once.
func (m *Manager) Observe(f func(Change)) { m.observer = f }

func (m *Manager) emit(c Change) {
	if m.observer != nil {
		c.At = time.Now()
		m.observer(c)
	}
}

func (p *Participant) changed() *ChangedMember {
	return &ChangedMember{ID: p.id, Name: p.name, Identity: p.identity, Joined: p.joined}
}

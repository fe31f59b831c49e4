// Package room owns membership: which rooms exist, who is in each, who
// receives whose tracks and data-channel messages, naming rules and limits.
//
// A Manager holds the rooms; a Room holds its Participants under one mutex
// and tells each member's Client about changes. Room code never blocks while
// holding that mutex: Client.Notify and sfu.Peer.Subscribe only enqueue, and
// sfu.Peer.Close is always called after the mutex is released.
//
// A viewer (Manager.Watch, a WHEP player) is a Participant that plays back
// the room's active speaker or one member (viewer.go); unless listed it is
// no member, and the others never hear of it.
//
// This package must not touch WebSockets or JSON (that is package signal)
// and must not read or write RTP (that is package sfu).
package room

import "errors"

// Sentinel errors; each maps to one signaling error code.
var (
	// ErrBadRoomName: the room name breaks the naming rules.
	ErrBadRoomName = errors.New("room: invalid room name")
	// ErrBadName: the display name breaks the naming rules.
	ErrBadName = errors.New("room: invalid display name")
	// ErrAlreadyHere: a participant moving here (Member.ID) is a member
	// here already.
	ErrAlreadyHere = errors.New("room: the participant is already a member here")
	// ErrRoomFull: the room has its maximum number of participants.
	ErrRoomFull = errors.New("room: room is full")
	// ErrTooManyRooms: the server has its maximum number of rooms.
	ErrTooManyRooms = errors.New("room: too many rooms")
	// ErrDataRate: a participant sends data-channel messages too fast.
	ErrDataRate = errors.New("room: data message rate exceeded")
	// ErrBadTrackUpdate: a track update with an unknown source, an overlong
	// track id, or too many tracks.
	ErrBadTrackUpdate = errors.New("room: invalid track update")
	// ErrUnknownTrack: a viewport hint for a track the member does not
	// receive.
	ErrUnknownTrack = errors.New("room: unknown track")
	// ErrPublishNotAllowed: a participant without the publish permission
	// offered a track; it is not forwarded.
	ErrPublishNotAllowed = errors.New("room: publishing is not allowed for this participant")
	// ErrDataNotAllowed: a participant without the data permission sent a
	// data-channel message; it is dropped.
	ErrDataNotAllowed = errors.New("room: sending data is not allowed for this participant")
	// ErrTooManyTracks: a member offered more tracks than MaxTracks; the
	// extra ones are not forwarded.
	ErrTooManyTracks = errors.New("room: too many tracks")
	// ErrClosed: the manager is shutting down.
	ErrClosed = errors.New("room: server is shutting down")
	// ErrTooManyProbes: Limits.MaxProbes connectivity probes are open.
	ErrTooManyProbes = errors.New("room: too many connectivity probes")
)

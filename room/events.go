package room

import "github.com/roundtable-sfu/roundtable/sfu"

// Event is something a member's transport must tell its client. The
// concrete types below are the whole set.
type Event interface{ event() }

// ParticipantInfo describes a member as others see it.
type ParticipantInfo struct {
	ID     string
	Name   string
	Tracks []TrackInfo
}

// TrackInfo describes a published track. Subscribers receive it with msid
// stream id StreamID (the publisher's participant id) and track id ID.
type TrackInfo struct {
	ID       string
	StreamID string
	Kind     string // "audio" or "video"
	Source   string // one of Sources, "" until the publisher says
	Muted    bool
}

// Sources are the track sources a publisher may declare.
var Sources = []string{"camera", "microphone", "screen", "screen-audio"}

// TrackMeta is what a publisher says about one of its tracks.
type TrackMeta struct {
	Source string
	Muted  bool
}

// Joined is the first event of every member: its id and the room as it is.
type Joined struct {
	ID           string
	Room         string
	Participants []ParticipantInfo
	// Moved: the participant continues here after it was on another node
	// of the cluster (Member.ID): the client makes a new PeerConnection.
	Moved bool
}

// ParticipantJoined: another member arrived.
type ParticipantJoined struct{ Participant ParticipantInfo }

// ParticipantLeft: another member left; all its tracks are gone with it.
type ParticipantLeft struct{ ID string }

// TrackPublished: a member started publishing a track. It always reaches a
// member before the offer that carries the track.
type TrackPublished struct {
	Participant string
	Track       TrackInfo
}

// TrackUnpublished: a member stopped publishing a track.
type TrackUnpublished struct {
	Participant string
	TrackID     string
}

// TrackUpdated: a member changed a track's source or muted state.
type TrackUpdated struct {
	Participant string
	Track       TrackInfo
}

// ActiveSpeaker: the room's active speaker changed (at most once per
// SpeakerInterval).
type ActiveSpeaker struct{ Participant string }

// Signal carries an offer, answer or candidate from the member's Peer.
type Signal struct{ sfu.Signal }

// Error reports a problem the member caused that did not end its session
// (a refused data message, bad SDP). Err wraps one of the sentinel errors
// of this package or of package sfu.
type Error struct{ Err error }

// Resumed is the first event after a member's transport came back
// (Manager.Resume): its id, and the room as it is now, without itself.
type Resumed struct {
	ID           string
	Room         string
	Participants []ParticipantInfo
}

// ICERestart: the member's PeerConnection failed after it had connected;
// its client should restart ICE (Participant.pathLost).
type ICERestart struct{}

// Connected: the member's PeerConnection reached "connected" for the first
// time, over Path.
type Connected struct{ Path sfu.Path }

// ICEFailed: the member's PeerConnection did not connect within the
// connect timeout, or failed later; Reason is the server's diagnosis. The
// session ends right after.
type ICEFailed struct{ Reason sfu.FailReason }

func (Joined) event()            {}
func (ParticipantJoined) event() {}
func (ParticipantLeft) event()   {}
func (TrackPublished) event()    {}
func (TrackUnpublished) event()  {}
func (TrackUpdated) event()      {}
func (ActiveSpeaker) event()     {}
func (Signal) event()            {}
func (Error) event()             {}
func (Connected) event()         {}
func (ICEFailed) event()         {}
func (Resumed) event()           {}
func (ICERestart) event()        {}

// Package signal is Roundtable's WebSocket signaling: the JSON protocol of
// docs/protocol.md, one Session per socket, and the mapping between
// protocol messages and package room.
//
// Each socket has exactly one reader goroutine (which also runs the
// protocol logic) and one writer goroutine that owns every write, the write
// deadline and pings. Everybody else (room events, pion callbacks) hands the
// writer bytes through a bounded queue and never writes to the socket.
//
// A participant outlives its sockets: its room.Client is a member, which
// forwards to the Session attached now, keeps the participant for the
// resume window when the socket drops, and takes a new Session that sends
// "resume" with a token this process signed (member.go, resume.go).
//
// This package must not touch RTP, RTCP or pion objects other than the
// ICE candidate type it relays.
package signal

import "errors"

// Sentinel errors of message decoding; each maps to an error code.
var (
	// ErrBadJSON: the frame is not one JSON object.
	ErrBadJSON = errors.New("signal: malformed JSON")
	// ErrUnknownType: the message type is not part of the protocol.
	ErrUnknownType = errors.New("signal: unknown message type")
	// ErrMissingField: a required field is missing or empty.
	ErrMissingField = errors.New("signal: missing field")
	// ErrBadField: a field has a value the protocol does not allow.
	ErrBadField = errors.New("signal: bad field value")
)

// Package sfu is Roundtable's media plane: it owns every pion object
// (PeerConnection, RTPSender, RTPReceiver, data channel) and every RTP/RTCP
// packet.
//
// An UpTrack is one published track. Exactly one goroutine (its read loop)
// reads the track, writes each packet into the track's shared PacketCache and
// hands a small descriptor to every subscribed DownTrack. A DownTrack is one
// subscriber's copy of one UpTrack: its own webrtc.TrackLocal with its own
// SSRC, a bounded queue, and one writer goroutine that rewrites the header
// and writes to the subscriber. No lock is held while writing packets and a
// full queue drops video to the next frame boundary instead of blocking.
//
// A Peer is one participant's single PeerConnection: it runs the negotiation
// (the server is the impolite peer; a failed one is offered again or given
// up, never left waiting), gives each subscription an m-line (reusing idle
// ones) carrying the publisher's codec as this participant numbers it, owns
// the participant's data channel and turns pion callbacks into the hooks
// given in PeerConfig. The simulcast layer a subscriber gets is decided by
// a pure policy (layerpolicy.go). Its negotiation can be held while the
// participant has no signaling socket, and a media path that comes back
// after a loss or an ICE restart gets keyframes at once (resume.go). A Peer
// can also be one end of a relay between nodes (PeerConfig.Relay), where
// both ends send and offer, one at a time (turns.go), and which carries a
// simulcast track's layers as tracks of their own and puts them back
// together on the other side (relaylayers.go).
//
// This package must not import room, signal or metrics, must not log per
// packet, and never calls the Prometheus library: counters live in Stats as
// atomics and are read at scrape time.
package sfu

import "errors"

// Sentinel errors returned by this package; wrap-aware callers use errors.Is.
var (
	// ErrClosed is returned when an operation is attempted on a closed Peer.
	ErrClosed = errors.New("sfu: peer closed")
	// ErrBusy is returned when a Peer's event queue is full (the remote sends
	// signaling faster than it can be processed).
	ErrBusy = errors.New("sfu: peer busy")
	// ErrNoDataChannel is returned by SendData once the participant's data
	// channel has closed (before it opens, messages are queued).
	ErrNoDataChannel = errors.New("sfu: no data channel")
	// ErrDataBackpressure is returned by SendData when the subscriber's data
	// channel has too much unsent data buffered.
	ErrDataBackpressure = errors.New("sfu: data channel buffer full")
	// ErrCodecNotNegotiated is reported (PeerConfig.OnError) when a
	// subscriber cannot receive a track because its PeerConnection did not
	// negotiate the publisher's codec; the track is not sent to it.
	ErrCodecNotNegotiated = errors.New("sfu: codec not negotiated")
	// ErrBadSDP is returned when a remote description cannot be applied.
	ErrBadSDP = errors.New("sfu: bad session description")
	// ErrNegotiationFailed is reported when a negotiation failed and cannot
	// be redone: a server offer whose answer could not be applied, or came
	// not in time, while pion is left in have-local-offer (it cannot roll
	// back), or the second such failure in a row; or a client offer that
	// left pion in have-remote-offer. The Peer makes no more offers.
	ErrNegotiationFailed = errors.New("sfu: negotiation failed")
	// ErrDataTooLarge is reported when the remote sent a data-channel
	// message over Settings.MaxDataMessage; the message is dropped and the
	// channel stays open.
	ErrDataTooLarge = errors.New("sfu: data message too large")
	// ErrDataChannelLabel is reported when the remote opened a data channel
	// other than its one "roundtable" channel; that channel is closed.
	ErrDataChannelLabel = errors.New("sfu: data channel not used")
)

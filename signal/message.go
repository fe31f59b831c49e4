package signal

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/pion/webrtc/v3"
)

// Message types of the protocol (docs/protocol.md).
const (
	TypeJoin              = "join"
	TypeJoined            = "joined"
	TypeOffer             = "offer"
	TypeAnswer            = "answer"
	TypeCandidate         = "candidate"
	TypeLeave             = "leave"
	TypeError             = "error"
	TypeBye               = "bye"
	TypeParticipantJoined = "participant-joined"
	TypeParticipantLeft   = "participant-left"
	TypeTrackPublished    = "track-published"
	TypeTrackUnpublished  = "track-unpublished"
	TypeTrackUpdate       = "track-update"
	TypeTrackUpdated      = "track-updated"
	TypeActiveSpeaker     = "active-speaker"
	TypeViewport          = "viewport"
	// The connection check (the web client's /doctor page): probe instead
	// of join, then probe-ready, the offer/answer/candidate exchange, and
	// probe-result.
	TypeProbe       = "probe"
	TypeProbeReady  = "probe-ready"
	TypeProbeResult = "probe-result"
	// Resume (docs/protocol.md): joined and resumed carry a resume token,
	// resume-token renews it, resume (instead of join) on a new socket gets
	// the same participant back, and ice-restart asks the client to restart
	// ICE.
	TypeResume      = "resume"
	TypeResumed     = "resumed"
	TypeResumeToken = "resume-token"
	TypeICERestart  = "ice-restart"
	// TypeConnectionQuality carries members' connection quality levels.
	TypeConnectionQuality = "connection-quality"
	// TypeReconnect (cluster): the node is draining; the client opens a
	// new socket, to url if given, and sends resume (or join) there.
	TypeReconnect = "reconnect"
)

// QualityJSON is one member's connection quality levels: "excellent",
// "good", "poor" or "lost", for what it sends (up) and receives (down).
type QualityJSON struct {
	ID   string `json:"id"`
	Up   string `json:"up"`
	Down string `json:"down"`
}

// ClientTypes are the types a client may send.
var ClientTypes = []string{TypeJoin, TypeOffer, TypeAnswer, TypeCandidate, TypeLeave, TypeTrackUpdate, TypeViewport, TypeProbe, TypeResume}

// ServerTypes are the types the server sends.
var ServerTypes = []string{TypeJoined, TypeOffer, TypeAnswer, TypeCandidate, TypeError, TypeBye,
	TypeParticipantJoined, TypeParticipantLeft, TypeTrackPublished, TypeTrackUnpublished, TypeTrackUpdated, TypeActiveSpeaker,
	TypeProbeReady, TypeProbeResult, TypeResumed, TypeResumeToken, TypeICERestart, TypeConnectionQuality}

// Error codes sent in {"type":"error"}.
const (
	CodeBadJSON       = "bad_json"
	CodeBadMessage    = "bad_message"
	CodeUnknownType   = "unknown_type"
	CodeNotJoined     = "not_joined"
	CodeAlreadyJoined = "already_joined"
	CodeBadRoom       = "bad_room"
	CodeBadName       = "bad_name"
	CodeRoomFull      = "room_full"
	CodeTooManyRooms  = "too_many_rooms"
	CodeBadSDP        = "bad_sdp"
	CodeDataTooLarge  = "data_too_large"
	CodeDataRate      = "data_rate_limited"
	CodeBusy          = "busy"
	CodeShuttingDown  = "shutting_down"
	CodeUnknownTrack  = "unknown_track"
	CodeMessageTooBig = "message_too_large"
	CodeSlowClient    = "slow_client"
	CodeInternal      = "internal"
	CodeDraining      = "draining"
	CodeRateLimited   = "rate_limited"
	CodeTooManyTracks = "too_many_tracks"
	// Join tokens (docs/security.md) and the permissions they grant.
	CodeAuthRequired      = "auth_required"
	CodeTokenInvalid      = "token_invalid"
	CodeTokenExpired      = "token_expired"
	CodeTokenNotYetValid  = "token_not_yet_valid"
	CodeTokenWrongRoom    = "token_wrong_room"
	CodeTokenNoGrants     = "token_no_grants"
	CodePublishNotAllowed = "publish_not_allowed"
	CodeDataNotAllowed    = "data_not_allowed"

	CodeCodecNotSupported  = "codec_not_supported"
	CodeDataChannelRefused = "data_channel_refused"
	CodeNegotiationFailed  = "negotiation_failed"
	// CodeICEFailed: the PeerConnection did not connect or stopped; the
	// error's reason is an sfu.FailReason. The session ends with bye.
	CodeICEFailed = "ice_failed"
	// CodeTooManyProbes: too many connection checks are running; retry.
	CodeTooManyProbes = "too_many_probes"
	// CodeResumeFailed: a resume was refused; the error's reason is one of
	// ResumeResults (not "ok"). The socket stays open: join afresh on it.
	CodeResumeFailed = "resume_failed"
	// CodeOverloaded: in a cluster, this node is over its -max-load and
	// takes no new room, and no other node can (cluster.ErrOverloaded).
	CodeOverloaded = "overloaded"
)

// ErrorCodes lists every error code, for metrics.
var ErrorCodes = []string{CodeBadJSON, CodeBadMessage, CodeUnknownType, CodeNotJoined, CodeAlreadyJoined,
	CodeBadRoom, CodeBadName, CodeRoomFull, CodeTooManyRooms, CodeBadSDP, CodeDataTooLarge, CodeDataRate,
	CodeBusy, CodeShuttingDown, CodeUnknownTrack, CodeMessageTooBig, CodeSlowClient, CodeInternal,
	CodeAuthRequired, CodeTokenInvalid, CodeTokenExpired, CodeTokenNotYetValid, CodeTokenWrongRoom, CodeTokenNoGrants,
	CodePublishNotAllowed, CodeDataNotAllowed, CodeDraining, CodeRateLimited, CodeTooManyTracks,
	CodeCodecNotSupported, CodeDataChannelRefused, CodeNegotiationFailed, CodeICEFailed, CodeTooManyProbes, CodeResumeFailed, CodeOverloaded}

// Candidate is the browser's RTCIceCandidateInit.
type Candidate = webrtc.ICECandidateInit

// Inbound is a decoded client message. Only the fields of its Type are set.
type Inbound struct {
	Type      string     `json:"type"`
	Room      string     `json:"room,omitempty"`
	Name      string     `json:"name,omitempty"`
	Token     string     `json:"token,omitempty"`
	SDP       string     `json:"sdp,omitempty"`
	Candidate *Candidate `json:"candidate,omitempty"`
	// track-update: the client's own track id, its source, muted or not.
	Track  string `json:"track,omitempty"`
	Source string `json:"source,omitempty"`
	Muted  bool   `json:"muted,omitempty"`
	// viewport: the server's track id (in Track), rendered size, visibility.
	Width   int   `json:"width,omitempty"`
	Height  int   `json:"height,omitempty"`
	Visible *bool `json:"visible,omitempty"`
	// probe: the path to check, "udp", "tcp", "relay" or "" (any).
	Transport string `json:"transport,omitempty"`
}

// Decode parses one client frame and checks the fields its type requires.
// It never panics, whatever the input.
func Decode(b []byte) (Inbound, error) {
	var m Inbound
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return Inbound{}, fmt.Errorf("%w: %v", ErrBadJSON, err)
	}
	if dec.More() {
		return Inbound{}, fmt.Errorf("%w: more than one value in the frame", ErrBadJSON)
	}
	switch m.Type {
	case TypeJoin:
		if m.Room == "" || m.Name == "" {
			return m, fmt.Errorf("%w: join needs room and name", ErrMissingField)
		}
	case TypeOffer, TypeAnswer:
		if m.SDP == "" {
			return m, fmt.Errorf("%w: %s needs sdp", ErrMissingField, m.Type)
		}
	case TypeCandidate:
		if m.Candidate == nil {
			return m, fmt.Errorf("%w: candidate needs candidate", ErrMissingField)
		}
	case TypeTrackUpdate:
		if m.Track == "" || m.Source == "" {
			return m, fmt.Errorf("%w: track-update needs track and source", ErrMissingField)
		}
	case TypeViewport:
		if m.Track == "" || m.Visible == nil {
			return m, fmt.Errorf("%w: viewport needs track and visible", ErrMissingField)
		}
	case TypeProbe:
		switch m.Transport {
		case "", "udp", "tcp", "relay":
		default:
			return m, fmt.Errorf("%w: probe transport %q: want udp, tcp or relay", ErrBadField, m.Transport)
		}
	case TypeResume:
		if m.Token == "" {
			return m, fmt.Errorf("%w: resume needs token", ErrMissingField)
		}
	case TypeLeave:
	case "":
		return m, fmt.Errorf("%w: type", ErrMissingField)
	default:
		return m, fmt.Errorf("%w: %q", ErrUnknownType, m.Type)
	}
	return m, nil
}

// ICEServer is one entry of "iceServers", as RTCIceServer.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// TrackJSON describes a published track.
type TrackJSON struct {
	ID       string `json:"id"`
	StreamID string `json:"streamId"`
	Kind     string `json:"kind"`
	Source   string `json:"source,omitempty"`
	Muted    bool   `json:"muted"`
}

// ParticipantJSON describes a room member.
type ParticipantJSON struct {
	ID     string      `json:"id"`
	Name   string      `json:"name"`
	Tracks []TrackJSON `json:"tracks"`
}

// Server messages, one struct per type so each has exactly its fields.
type (
	// joinedMsg is "joined" and "resumed" (whose participants leave the
	// participant itself out, as joined's do).
	joinedMsg struct {
		Type         string            `json:"type"`
		ID           string            `json:"id"`
		Room         string            `json:"room"`
		Participants []ParticipantJSON `json:"participants"`
		ICEServers   []ICEServer       `json:"iceServers"`
		ResumeToken  string            `json:"resumeToken"`
		// Migrated, in "resumed" only: the participant continues on
		// another node of a cluster; the client makes a new
		// PeerConnection (docs/protocol.md, Resume).
		Migrated bool `json:"migrated,omitempty"`
	}
	reconnectMsg struct {
		Type string `json:"type"`
		URL  string `json:"url,omitempty"`
	}
	resumeTokenMsg struct {
		Type  string `json:"type"`
		Token string `json:"token"`
	}
	typeMsg struct {
		Type string `json:"type"`
	}
	participantJoinedMsg struct {
		Type        string          `json:"type"`
		Participant ParticipantJSON `json:"participant"`
	}
	participantLeftMsg struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	}
	trackPublishedMsg struct {
		Type        string    `json:"type"`
		Participant string    `json:"participant"`
		Track       TrackJSON `json:"track"`
	}
	trackUpdatedMsg struct {
		Type        string    `json:"type"`
		Participant string    `json:"participant"`
		Track       TrackJSON `json:"track"`
	}
	connectionQualityMsg struct {
		Type         string        `json:"type"`
		Participants []QualityJSON `json:"participants"`
	}
	activeSpeakerMsg struct {
		Type        string `json:"type"`
		Participant string `json:"participant"`
	}
	trackUnpublishedMsg struct {
		Type        string `json:"type"`
		Participant string `json:"participant"`
		TrackID     string `json:"trackId"`
	}
	sdpMsg struct {
		Type string `json:"type"`
		SDP  string `json:"sdp"`
	}
	candidateMsg struct {
		Type      string    `json:"type"`
		Candidate Candidate `json:"candidate"`
	}
	probeReadyMsg struct {
		Type       string      `json:"type"`
		ICEServers []ICEServer `json:"iceServers"`
	}
	probeResultMsg struct {
		Type      string `json:"type"`
		Connected bool   `json:"connected"`
		Path      string `json:"path,omitempty"`   // connected: an sfu.Path
		Reason    string `json:"reason,omitempty"` // not connected: an sfu.FailReason
	}
	errorMsg struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
		Reason  string `json:"reason,omitempty"` // ice_failed and resume_failed only
	}
	byeMsg struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	}
)

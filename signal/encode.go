package signal

// Room events as protocol messages. Called by Notify, on whichever
// goroutine sends the event; it reads only the event and the Server's
// fixed configuration.

import (
	"github.com/roundtable-sfu/roundtable/room"
	"github.com/roundtable-sfu/roundtable/sfu"
)

// encodeEvent returns the message type and body of a room event ("other"
// and nil for an event that is not sent).
func (s *Session) encodeEvent(ev room.Event) (string, any) {
	switch ev := ev.(type) {
	case room.Joined:
		if ev.Moved {
			m := s.snapshot(TypeResumed, ev.ID, ev.Room, ev.Participants)
			m.Migrated = true
			return TypeResumed, m
		}
		return TypeJoined, s.snapshot(TypeJoined, ev.ID, ev.Room, ev.Participants)
	case room.Resumed:
		return TypeResumed, s.snapshot(TypeResumed, ev.ID, ev.Room, ev.Participants)
	case room.ICERestart:
		return TypeICERestart, typeMsg{Type: TypeICERestart}
	case room.ParticipantJoined:
		return TypeParticipantJoined, participantJoinedMsg{Type: TypeParticipantJoined, Participant: participantJSON(ev.Participant)}
	case room.ParticipantLeft:
		return TypeParticipantLeft, participantLeftMsg{Type: TypeParticipantLeft, ID: ev.ID}
	case room.TrackPublished:
		return TypeTrackPublished, trackPublishedMsg{Type: TypeTrackPublished, Participant: ev.Participant, Track: trackJSON(ev.Track)}
	case room.TrackUpdated:
		return TypeTrackUpdated, trackUpdatedMsg{Type: TypeTrackUpdated, Participant: ev.Participant, Track: trackJSON(ev.Track)}
	case room.ActiveSpeaker:
		return TypeActiveSpeaker, activeSpeakerMsg{Type: TypeActiveSpeaker, Participant: ev.Participant}
	case room.ConnectionQuality:
		ps := make([]QualityJSON, len(ev.Updates))
		for i, u := range ev.Updates {
			ps[i] = QualityJSON{ID: u.Participant, Up: u.Up.String(), Down: u.Down.String()}
		}
		return TypeConnectionQuality, connectionQualityMsg{Type: TypeConnectionQuality, Participants: ps}
	case room.TrackUnpublished:
		return TypeTrackUnpublished, trackUnpublishedMsg{Type: TypeTrackUnpublished, Participant: ev.Participant, TrackID: ev.TrackID}
	case room.Signal:
		switch ev.Kind {
		case sfu.SignalOffer:
			return TypeOffer, sdpMsg{Type: TypeOffer, SDP: ev.SDP}
		case sfu.SignalAnswer:
			return TypeAnswer, sdpMsg{Type: TypeAnswer, SDP: ev.SDP}
		default:
			return TypeCandidate, candidateMsg{Type: TypeCandidate, Candidate: ev.Candidate}
		}
	}
	return "other", nil
}

// snapshot encodes "joined" or "resumed": the room as it is, the ICE
// servers, and a fresh resume token.
func (s *Session) snapshot(typ, id, roomName string, infos []room.ParticipantInfo) joinedMsg {
	ps := make([]ParticipantJSON, 0, len(infos))
	for _, p := range infos {
		ps = append(ps, participantJSON(p))
	}
	var ice []ICEServer
	if s.srv.cfg.ICEServers != nil {
		ice = s.srv.cfg.ICEServers(id, s.host)
	}
	if ice == nil {
		ice = []ICEServer{}
	}
	return joinedMsg{Type: typ, ID: id, Room: roomName, Participants: ps, ICEServers: ice,
		ResumeToken: s.mintResumeToken(roomName, id)}
}

func participantJSON(p room.ParticipantInfo) ParticipantJSON {
	ts := make([]TrackJSON, 0, len(p.Tracks))
	for _, t := range p.Tracks {
		ts = append(ts, trackJSON(t))
	}
	return ParticipantJSON{ID: p.ID, Name: p.Name, Tracks: ts}
}

func trackJSON(t room.TrackInfo) TrackJSON {
	return TrackJSON{ID: t.ID, StreamID: t.StreamID, Kind: t.Kind, Source: t.Source, Muted: t.Muted}
}

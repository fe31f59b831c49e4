package room

// Recording hooks: a Recorder (package record) is told, under the room's
// mu, every published track as it comes and goes, mutes and the active
// speaker, from the moment it is attached until the recording stops or the
// room ends. It is made (NewRecorder) and closed (Close, which waits for
// its writers) with no lock held: both may touch the disk. One recorder at
// most per room (Room.rec, under Room.mu); with RecordAll, Join starts it
// once a new room has its first member or viewer.

import (
	"errors"
	"fmt"

	"github.com/roundtable-sfu/roundtable/sfu"
)

// Recorder records one room. Every method but Close is called under the
// room's mu and must not block (starting an sfu.Tap is fine).
type Recorder interface {
	// TrackPublished: who publishes up, and what it says of it.
	TrackPublished(who ParticipantInfo, identity string, up *sfu.UpTrack, info TrackInfo)
	// TrackUnpublished: up stopped (unpublished, or its member left).
	TrackUnpublished(participant string, up *sfu.UpTrack)
	// TrackMuted: the publisher or the server muted or unmuted a track.
	TrackMuted(participant string, up *sfu.UpTrack, muted bool)
	// ActiveSpeaker: the room's active speaker changed.
	ActiveSpeaker(participant string)
	// Close ends the recording (stopped, or the room ended): every file
	// complete when it returns. Called once, with no room lock held.
	Close()
}

// NewRecorder starts a Recorder for a room.
type NewRecorder func(room string) (Recorder, error)

// Recording errors.
var (
	// ErrRecording: the room is being recorded already.
	ErrRecording = errors.New("room: already recording")
	// ErrNotRecording: the room is not being recorded.
	ErrNotRecording = errors.New("room: not recording")
)

// RecordAll makes every room record from its creation on, with newRec
// (the server's -record-dir). Call it before the first Join.
func (m *Manager) RecordAll(newRec NewRecorder) { m.recordAll = newRec }

// StartRecording attaches a Recorder to room roomName, which is told of
// every track published now and later, and returns it. newRec runs with
// no lock held (it may touch the disk). It fails with ErrNoRoom,
// ErrRecording, or newRec's error.
func (m *Manager) StartRecording(roomName string, newRec NewRecorder) (Recorder, error) {
	r := m.room(roomName)
	if r == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoRoom, roomName)
	}
	r.mu.Lock()
	busy := r.rec != nil
	r.mu.Unlock()
	if busy { // before newRec makes a directory for nothing
		return nil, fmt.Errorf("%w: room %q", ErrRecording, roomName)
	}
	rec, err := newRec(roomName)
	if err != nil {
		return nil, fmt.Errorf("record room %q: %w", roomName, err)
	}
	r.mu.Lock()
	if r.rec != nil || r.ended {
		// Another start won the race, or the room ended meanwhile.
		busy = r.rec != nil
		r.mu.Unlock()
		rec.Close()
		if busy {
			return nil, fmt.Errorf("%w: room %q", ErrRecording, roomName)
		}
		return nil, fmt.Errorf("%w: %q", ErrNoRoom, roomName)
	}
	r.attachLocked(rec)
	r.mu.Unlock()
	return rec, nil
}

// attachLocked makes rec the room's recorder and tells it of every track
// published now (r.mu held).
func (r *Room) attachLocked(rec Recorder) {
	r.rec = rec
	r.mgr.recordings.Add(1)
	for _, p := range r.everyoneLocked() { // relayed tracks too
		for _, up := range p.tracks {
			rec.TrackPublished(p.info(), p.identity, up, p.trackInfo(up))
		}
	}
	if s := r.speaker.current; s != "" {
		rec.ActiveSpeaker(s)
	}
	r.mgr.log.Info("recording started", "room", r.name)
}

// StopRecording ends room roomName's recording and returns it; its files
// are complete when it returns. It fails with ErrNoRoom or
// ErrNotRecording.
func (m *Manager) StopRecording(roomName string) (Recorder, error) {
	r := m.room(roomName)
	if r == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoRoom, roomName)
	}
	r.mu.Lock()
	rec := r.takeRecorderLocked()
	r.mu.Unlock()
	if rec == nil {
		return nil, fmt.Errorf("%w: room %q", ErrNotRecording, roomName)
	}
	rec.Close()
	m.log.Info("recording stopped", "room", roomName)
	return rec, nil
}

// StopRecordings ends every recording (shutdown), waiting for the files.
func (m *Manager) StopRecordings() {
	for _, r := range m.allRooms() {
		r.mu.Lock()
		rec := r.takeRecorderLocked()
		r.mu.Unlock()
		if rec != nil {
			rec.Close()
			m.log.Info("recording stopped", "room", r.name, "reason", "shutdown")
		}
	}
}

// Recording reports whether room roomName is being recorded.
func (m *Manager) Recording(roomName string) bool {
	r := m.room(roomName)
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rec != nil
}

// Recordings counts the rooms being recorded.
func (m *Manager) Recordings() int { return int(m.recordings.Load()) }

// takeRecorderLocked detaches the room's recorder (r.mu held); the caller
// closes it after unlocking.
func (r *Room) takeRecorderLocked() Recorder {
	rec := r.rec
	if rec != nil {
		r.rec = nil
		r.mgr.recordings.Add(-1)
	}
	return rec
}

package room

// The Manager's one speaker goroutine samples every room's audio levels
// each SpeakerInterval, and its members' connection quality each
// QualityInterval (quality.go), under each room's mutex in turn.

import (
	"maps"
	"time"

	"github.com/pion/webrtc/v3"
)

// SpeakerInterval is how often active speakers are decided, so clients get
// at most four active-speaker events a second.
const SpeakerInterval = 250 * time.Millisecond

func (m *Manager) speakerLoop() {
	defer close(m.stopped)
	tick := time.NewTicker(SpeakerInterval)
	defer tick.Stop()
	ticks := 0
	for {
		select {
		case <-m.stop:
			return
		case <-tick.C:
		}
		ticks++
		quality := ticks%int(QualityInterval/SpeakerInterval) == 0
		for _, r := range m.allRooms() {
			r.detectSpeaker()
			if quality {
				r.sampleQuality(m.quality)
				r.sendViews()
			}
		}
	}
}

// allRooms returns the rooms there are now.
func (m *Manager) allRooms() []*Room {
	m.mu.Lock()
	defer m.mu.Unlock()
	rooms := make([]*Room, 0, len(m.rooms))
	for _, r := range m.rooms {
		rooms = append(rooms, r)
	}
	return rooms
}

// detectSpeaker feeds one tick of audio levels to the room's detector and
// tells everyone when the speaker changes.
func (r *Room) detectSpeaker() {
	r.mu.Lock()
	defer r.mu.Unlock()
	samples := make(map[string]float64, len(r.order))
	for _, p := range r.order {
		loudest := 0.0
		for _, up := range p.tracks {
			if up.Kind() != webrtc.RTPCodecTypeAudio {
				continue
			}
			if l, n := up.LevelSample(); n > 0 && l > loudest {
				loudest = l
			}
		}
		samples[p.id] = loudest
	}
	if len(r.relays) > 0 {
		local := maps.Clone(samples)
		r.eachRelayLocked(func(rl *Relay) { rl.controlLocked(relayControl{Type: "levels", Levels: local}) })
		r.remoteLevelsLocked(samples, time.Now())
	}
	speaker, changed := r.speaker.Update(samples)
	if !changed || speaker == "" {
		return
	}
	ev := ActiveSpeaker{Participant: speaker}
	for _, o := range r.order {
		o.client.Notify(ev)
	}
	r.refollowLocked() // the viewers of the room follow the speaker
	if r.rec != nil {
		r.rec.ActiveSpeaker(speaker)
	}
}

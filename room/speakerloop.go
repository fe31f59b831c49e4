package room

// The Manager's one speaker goroutine samples every room's audio levels
// each SpeakerInterval, under each room's mutex in turn.

import (
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
	for {
		select {
		case <-m.stop:
			return
		case <-tick.C:
		}
		m.mu.Lock()
		rooms := make([]*Room, 0, len(m.rooms))
		for _, r := range m.rooms {
			rooms = append(rooms, r)
		}
		m.mu.Unlock()
		for _, r := range rooms {
			r.detectSpeaker()
		}
	}
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
	speaker, changed := r.speaker.Update(samples)
	if !changed || speaker == "" {
		return
	}
	ev := ActiveSpeaker{Participant: speaker}
	for _, o := range r.order {
		o.client.Notify(ev)
	}
}

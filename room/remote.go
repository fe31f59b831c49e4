package room

// The other nodes' members here (Room.remote): proxies that a relay names
// (Relay.proxies), and orphans, whose relay ended (their node was lost, or
// they are moving to another node), which wait Limits.MoveGrace to be
// named again. All of it is under Room.mu; see relay.go for the relays
// themselves.

import (
	"slices"
	"time"
)

// ReasonMoved is the reason of a member that leaves a node to continue on
// another (a resume there, a drain): the other nodes keep it, for
// Limits.MoveGrace, until the node it moved to names it.
const ReasonMoved = "moved"

// remoteLocked finds another node's member by id (r.mu held).
func (r *Room) remoteLocked(id string) *Participant {
	for _, p := range r.remote {
		if p.id == id {
			return p
		}
	}
	return nil
}

// adoptLocked makes proxy p this relay's: it came back through this node
// after its own was lost, or moved here. Its old tracks go (they came by
// the old relay); its new ones come by this one (r.mu held).
func (rl *Relay) adoptLocked(p *Participant) {
	r := rl.room
	if p.orphan != nil {
		p.orphan.Stop()
		p.orphan = nil
	}
	if old := p.relay; old != nil && old != rl && old.proxies[p.id] == p {
		delete(old.proxies, p.id)
	}
	for _, up := range slices.Clone(p.tracks) {
		r.unpublishLocked(p, up)
	}
	p.relay, p.stale = rl, false
	rl.proxies[p.id] = p
	rl.log.Info("remote participant moved here", "participant", p.id)
	for _, up := range rl.pending[p.id] {
		rl.replaceLocked(p, up)
	}
	delete(rl.pending, p.id)
}

// orphanLocked keeps another node's member p in the room without a relay
// for Limits.MoveGrace: its node was lost, or it is moving to another. Its
// tracks go now; if no relay names it in time, it leaves ("node_lost").
// r.mu held.
func (r *Room) orphanLocked(p *Participant) {
	if old := p.relay; old != nil && old.proxies[p.id] == p {
		delete(old.proxies, p.id)
	}
	for _, up := range slices.Clone(p.tracks) {
		r.unpublishLocked(p, up)
	}
	if p.orphan != nil {
		p.orphan.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(r.mgr.limits.MoveGrace, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if p.orphan == t && !p.left {
			r.dropRemoteLocked(p, "node_lost")
		}
	})
	p.orphan = t
	r.mgr.log.Info("remote participant waits to move", "room", r.name, "participant", p.id, "for", r.mgr.limits.MoveGrace)
}

// dropRemoteLocked takes another node's member out: local members stop
// receiving its tracks and see it leave (r.mu held).
func (r *Room) dropRemoteLocked(p *Participant, reason string) {
	r.forgetRemoteLocked(p)
	for _, o := range r.order {
		for _, up := range p.tracks {
			o.peer.Unsubscribe(up)
		}
		o.client.Notify(ParticipantLeft{ID: p.id})
	}
	hadTracks := len(p.tracks) > 0
	if r.rec != nil {
		for _, up := range p.tracks {
			r.rec.TrackUnpublished(p.id, up)
		}
	}
	p.tracks = nil
	if hadTracks {
		r.refollowLocked()
	}
	r.mgr.log.Info("remote participant left", "room", r.name, "participant", p.id, "reason", reason)
}

// takeRemoteLocked takes another node's member out without a word to
// anyone: it joined here, as the same participant (r.mu held). Its tracks
// go; its new ones come with it.
func (r *Room) takeRemoteLocked(p *Participant) {
	for _, up := range slices.Clone(p.tracks) {
		r.unpublishLocked(p, up)
	}
	r.forgetRemoteLocked(p)
}

// forgetRemoteLocked takes another node's member out of the room's and
// its relay's tables and stops its orphan timer (r.mu held).
func (r *Room) forgetRemoteLocked(p *Participant) {
	if rl := p.relay; rl != nil && rl.proxies[p.id] == p {
		delete(rl.proxies, p.id)
	}
	if p.orphan != nil {
		p.orphan.Stop()
		p.orphan = nil
	}
	r.remote = slices.DeleteFunc(r.remote, func(o *Participant) bool { return o == p })
	p.left = true
}

// remoteLevelsLocked adds the other nodes' members' audio levels, from
// their last "levels" if it is fresh, to a speaker tick's samples (r.mu
// held): the active speaker is chosen among every node's members.
func (r *Room) remoteLevelsLocked(samples map[string]float64, now time.Time) {
	for _, rl := range r.relays {
		if now.Sub(rl.levelAt) > 4*SpeakerInterval {
			continue
		}
		for id, l := range rl.levels {
			if rl.proxies[id] != nil {
				samples[id] = l
			}
		}
	}
}

// findLocked returns the member, local or another node's, of id (r.mu
// held).
func (r *Room) findLocked(id string) *Participant {
	if p := r.members[id]; p != nil {
		return p
	}
	return r.remoteLocked(id)
}

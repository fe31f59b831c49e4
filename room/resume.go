package room

// A member outlives an outage (docs/architecture.md, "Resume"): its
// transport may detach and attach again (Resume), and a PeerConnection
// that fails after it connected is given time to restart ICE (pathLost).
// Ownership as room.go says; recoverTimer is created by Join and only
// stopped or reset after.

import (
	"errors"
	"time"
)

// ErrGone: the member is no longer in its room (it left, was removed, or
// its resume window ran out).
var ErrGone = errors.New("room: participant is gone")

// Resume re-attaches a member whose transport came back. Under the room's
// lock, so that no event falls between the two, it calls attach (which
// points the member's Client at the new transport, and reports false if
// the member is ending) and then sends the member Resumed: the room as it
// is now. Events for the member between its transport's loss and attach
// are the transport's to drop; Resumed makes up for them. It returns
// ErrGone for a member that left or is ending.
func (m *Manager) Resume(p *Participant, attach func() bool) error {
	r := p.room
	if r == nil {
		return ErrGone
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.left || !attach() {
		return ErrGone
	}
	infos := make([]ParticipantInfo, 0, len(r.order)+len(r.remote))
	for _, o := range r.everyoneLocked() { // the other nodes' members too
		if o != p {
			infos = append(infos, o.info())
		}
	}
	p.client.Notify(Resumed{ID: p.id, Room: r.name, Participants: infos})
	p.q.told = false // levels changed while it was away: all of them at the next sample
	return nil
}

// restartAskInterval is how often a member whose path is lost is asked
// again to restart ICE: a restart attempted while the network was still
// down (a train in a tunnel) fails its checks, and the next one may not.
const restartAskInterval = 3 * time.Second

// pathLost: the member's PeerConnection failed after it had connected (ICE
// consent lost, RFC 7675: a network change, a laptop asleep). The member
// stays; its client is asked to restart ICE (ICERestart), again every
// restartAskInterval, and if the path is not back within
// Limits.ConnectTimeout of the loss the member ends as one that never
// connected does (iceFailed).
func (p *Participant) pathLost() {
	if p.removed.Load() {
		return
	}
	first := p.lostAt.CompareAndSwap(0, time.Now().UnixNano())
	p.mgr.log.Info("participant media path lost", "room", p.roomName, "participant", p.id,
		"first", first, "recover_within", p.mgr.limits.ConnectTimeout)
	p.client.Notify(ICERestart{})
	p.rearm(restartAskInterval)
}

// rearm resets the recover timer, and stops it again if the member was
// removed meanwhile (removeLocked stops it, but may have run between the
// caller's check and the reset).
func (p *Participant) rearm(d time.Duration) {
	p.recoverTimer.Reset(d)
	if p.removed.Load() {
		p.recoverTimer.Stop()
	}
}

// pathBack: the member's PeerConnection connected again.
func (p *Participant) pathBack() {
	p.recoverTimer.Stop()
	if lost := p.lostAt.Swap(0); lost != 0 {
		p.mgr.log.Info("participant media path back", "room", p.roomName, "participant", p.id,
			"after", time.Since(time.Unix(0, lost)).Round(time.Millisecond))
	}
}

// recoverCheck runs on the recover timer: it asks again, or ends the
// member once the time to recover is up.
func (p *Participant) recoverCheck() {
	lost := p.lostAt.Load()
	if p.removed.Load() || lost == 0 || p.peer.PathUp() {
		return
	}
	left := p.mgr.limits.ConnectTimeout - time.Since(time.Unix(0, lost))
	if left <= 0 {
		p.iceFailed("ice_failed")
		return
	}
	p.client.Notify(ICERestart{})
	p.rearm(min(restartAskInterval, left))
}

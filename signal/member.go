package signal

// A member is a participant's signaling side, which outlives its sockets
// (docs/architecture.md, "Resume"). It is the participant's room.Client:
// Notify goes to the Session attached now, and is dropped while none is
// (Resumed makes up for it). mu guards sess, timer and ended; Notify and
// Close take it briefly and never call out with it held. The timer's
// goroutine (the resume window) and the goroutine Close starts for a
// detached member end it; Server.wg counts both, so Wait waits for them.

import (
	"sync"
	"time"

	"github.com/roundtable-sfu/roundtable/room"
)

type member struct {
	srv  *Server
	part *room.Participant // set once, right after Join returns

	mu      sync.Mutex
	sess    *Session    // attached, nil while detached
	timer   *time.Timer // the resume window, while detached
	closing bool        // Close was called: the member ends, no resume
	left    bool        // leave has started
}

// Notify implements room.Client. While detached, only an ICE failure
// is noted (counted, as the session would); the rest is dropped.
func (m *member) Notify(ev room.Event) {
	m.mu.Lock()
	s := m.sess
	m.mu.Unlock()
	if s != nil {
		s.Notify(ev)
		return
	}
	if f, ok := ev.(room.ICEFailed); ok {
		m.srv.stats.ICEFailures.Add(string(f.Reason))
	}
}

// Silent implements room.Client: while detached the client is silent by
// definition; while attached, see Session.silent.
func (m *member) Silent(since time.Time) bool {
	m.mu.Lock()
	s := m.sess
	m.mu.Unlock()
	return s == nil || s.silent(since)
}

// Close implements room.Client: the member ends and can no longer be
// resumed. An attached member's session closes with reason (its reader
// then takes the member out of the room); a detached member leaves at
// once, on a goroutine of its own, since Close must not block.
func (m *member) Close(reason string) {
	m.mu.Lock()
	m.closing = true
	s := m.sess
	if s == nil && !m.left && m.part != nil {
		m.left = true
		m.srv.wg.Add(1) // before stopTimer releases the timer's count
		m.stopTimer()
		go func() {
			defer m.srv.wg.Done()
			m.leave(reason, true)
		}()
	}
	m.mu.Unlock()
	if s != nil {
		s.Close(reason)
	}
}

// end is called by the reader of s when s is over for good (a leave, or
// a close the server chose): the member leaves, unless a newer session
// took it over.
func (m *member) end(s *Session, reason string) {
	m.mu.Lock()
	if m.sess != s || m.left {
		m.mu.Unlock()
		return
	}
	m.sess, m.left = nil, true
	m.mu.Unlock()
	m.leave(reason, false)
}

// detach is called by the reader of s when its socket dropped: the member
// stays in the room, its negotiation on hold, for the resume window. A
// member the server is closing, or a server draining (but in a cluster),
// ends instead.
func (m *member) detach(s *Session, reason string) {
	m.mu.Lock()
	if m.sess != s || m.left {
		m.mu.Unlock()
		return
	}
	m.sess = nil
	// Draining ends it, unless in a cluster, where its client resumes on
	// another node, which releases it here ("moved").
	if m.closing || m.srv.draining.Load() && m.srv.cfg.Cluster == nil {
		m.left = true
		m.mu.Unlock()
		m.leave(reason, false)
		return
	}
	m.part.Peer().SetHeld(true)
	m.srv.stats.Detached.Add(1)
	m.srv.wg.Add(1) // the window's end: Done when it fires or is stopped
	m.timer = time.AfterFunc(m.srv.cfg.ResumeWindow, func() {
		defer m.srv.wg.Done()
		m.expire()
	})
	m.mu.Unlock()
	s.logger().Info("participant detached", "reason", reason, "window", m.srv.cfg.ResumeWindow)
}

// expire ends a member still detached when its window runs out.
func (m *member) expire() {
	m.mu.Lock()
	if m.sess != nil || m.left {
		m.mu.Unlock()
		return
	}
	m.left = true
	m.timer = nil
	m.mu.Unlock()
	m.leave("resume_timeout", true)
}

// stopTimer stops the window's timer, with mu held; if it had not fired,
// its count in Server.wg is released here.
func (m *member) stopTimer() {
	if m.timer != nil && m.timer.Stop() {
		m.srv.wg.Done()
	}
	m.timer = nil
}

// attach makes s the member's session, for a resume; room.Manager.Resume
// calls it under the room's lock. It returns the session it replaces
// (still open, for the caller to close), and false for a member that is
// ending.
func (m *member) attach(s *Session) (old *Session, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing || m.left {
		return nil, false
	}
	old = m.sess
	if old == nil {
		m.stopTimer()
		m.srv.stats.Detached.Add(-1)
	}
	m.sess = s
	return old, true
}

// release lets the Peer negotiate again once s has sent "resumed"
// (sfu.Peer.SetHeld: the outstanding offer goes again), if s is still the
// member's session. Under mu, in step with detach, so that a drop of s
// right after the resume leaves the Peer held.
func (m *member) release(s *Session) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sess == s {
		m.part.Peer().SetHeld(false)
	}
}

// leave takes the participant out of its room and forgets the member.
func (m *member) leave(reason string, detached bool) {
	if detached {
		m.srv.stats.Detached.Add(-1)
		m.srv.log.Info("participant ended while detached", "participant", m.part.ID(), "room", m.part.Room(), "reason", reason)
	}
	m.srv.rooms.Leave(m.part, reason)
	m.srv.mu.Lock()
	if m.srv.members[m.part.ID()] == m {
		delete(m.srv.members, m.part.ID())
	}
	m.srv.mu.Unlock()
}

package sfu

// Turns: both ends of a relay between nodes (PeerConfig.Relay) send tracks
// on one PeerConnection, and each offers the m-lines of what it sends, as
// the server does to a browser. Two pion peers cannot resolve an offer
// collision (pion v3.3.6 cannot roll back: negotiate.go), so they never
// collide: the Initiator offers when it wants, and the other end offers
// only in its turn. It asks for one (SignalTurnRequest) when it has
// changes to offer and is stable; the Initiator grants it
// (SignalTurnGrant) at once if it has no offer out, else once its offer is
// answered, and makes no offer of its own until it has answered the one
// the turn was for. Signals reach the other end in the order they were
// sent (package cluster publishes them, from one goroutine, on the
// receiving node's channel), so an offer of the Initiator sent before a
// grant is answered before the grant arrives.
//
// A turn not granted, or not used, within Settings.AnswerTimeout fails the
// negotiation for good (ErrNegotiationFailed): a request or a grant was
// lost, and the relay starts a new PeerConnection. All of it is run
// goroutine state (negotiation.turn).

import (
	"fmt"
	"time"
)

// turnState is a relay Peer's share of the offering turns.
type turnState struct {
	// The end that asks:
	asked   bool      // a request is out, no grant yet
	askedAt time.Time // when it was sent
	held    bool      // granted: the next offer goes now
	// The Initiator:
	granted   bool      // the other end has the turn: no offer of ours until its offer is answered
	grantedAt time.Time // when it was granted
	waiting   bool      // a request waits for our outstanding offer's answer
	// arm: answerWait must start now (a request or a grant went out).
	arm bool
}

// takesTurns reports whether the Peer offers only in its turn: a relay's
// end that is not the Initiator.
func (p *Peer) takesTurns() bool { return p.cfg.Relay && !p.cfg.Initiator }

// grantsTurns reports whether the Peer grants the other end its turns.
func (p *Peer) grantsTurns() bool { return p.cfg.Relay && p.cfg.Initiator }

// mayOffer reports whether the run goroutine may send the offer it has
// due now. An end that takes turns asks for one first (once) and offers
// once it is granted; the Initiator offers unless the other end has the
// turn.
func (p *Peer) mayOffer() bool {
	t := &p.neg.turn
	switch {
	case p.grantsTurns():
		return !t.granted
	case !p.takesTurns():
		return true
	case t.held:
		t.held = false
		return true
	case !t.asked && !p.neg.force && !p.hasChanges():
		p.neg.dirty = false // nothing to offer: no turn to ask for
	case !t.asked:
		t.asked, t.askedAt, t.arm = true, time.Now(), true
		p.cfg.OnSignal(Signal{Kind: SignalTurnRequest})
	}
	return false
}

// hasChanges reports whether a pending subscription change would change
// what the Peer sends.
func (p *Peer) hasChanges() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for up, add := range p.want {
		if _, have := p.neg.subs[up]; add != have {
			return true
		}
	}
	return false
}

// onTurnRequest handles the other end's request: granted now, or once our
// outstanding offer is answered (grantWaiting).
func (p *Peer) onTurnRequest() error {
	if !p.grantsTurns() {
		return fmt.Errorf("%w: turn request to a Peer that grants none", ErrBadSDP)
	}
	p.neg.turn.waiting = true
	p.grantWaiting()
	return nil
}

// grantWaiting grants the turn a request waits for, if the Peer has no
// offer out and is stable.
func (p *Peer) grantWaiting() {
	n := &p.neg
	t := &n.turn
	if !t.waiting || n.offering || n.dead || !p.stable() {
		return
	}
	t.waiting = false
	t.granted, t.grantedAt, t.arm = true, time.Now(), true
	p.cfg.OnSignal(Signal{Kind: SignalTurnGrant})
}

// onTurnGrant handles the Initiator's grant: the next offer goes at once,
// with whatever is pending (or none: an offer all the same, which ends the
// turn).
func (p *Peer) onTurnGrant() error {
	t := &p.neg.turn
	if !p.takesTurns() {
		return fmt.Errorf("%w: turn grant to a Peer that asks for none", ErrBadSDP)
	}
	if !t.asked {
		return nil // a grant for a request of a negotiation that failed since
	}
	t.asked, t.held = false, true
	p.neg.force = true
	return nil
}

// turnAnswered ends the other end's turn: its offer is answered.
func (p *Peer) turnAnswered() { p.neg.turn.granted = false }

// turnLate returns an error if a turn was asked for, or granted, over
// timeout ago and has not come, or not been used.
func (p *Peer) turnLate(timeout time.Duration) error {
	t := &p.neg.turn
	switch {
	case p.neg.dead:
		return nil // given up already
	case t.asked && time.Since(t.askedAt) >= timeout:
		return fmt.Errorf("no turn to offer granted within %v", timeout)
	case t.granted && time.Since(t.grantedAt) >= timeout:
		return fmt.Errorf("no offer in the turn granted %v ago", timeout)
	}
	return nil
}

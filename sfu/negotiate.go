package sfu

// The run goroutine: it applies the remote's offers, answers and candidates
// in order, makes the server's offers (one per batch of subscription
// changes, never while one is outstanding) and recovers when a negotiation
// fails. The negotiation struct is its alone.

import (
	"errors"
	"fmt"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"
)

// maxNegotiationFailures is how many server offers in a row may fail
// before the Peer gives up with ErrNegotiationFailed. After the first it
// offers again, when it can: pion v3.3.6 refuses every rollback (its
// signaling state machine has no rollback transition), so only an answer
// that pion applied in part, leaving the PeerConnection stable, can be
// followed by a fresh offer. An answer refused before that, or none within
// Settings.AnswerTimeout, leaves it in have-local-offer for good, and the
// Peer gives up at once.
const maxNegotiationFailures = 2

// negotiation is the run goroutine's state.
type negotiation struct {
	subs        map[*UpTrack]*subscription
	remoteCands []webrtc.ICECandidateInit
	answered    bool      // the client's first offer was answered
	offering    bool      // an offer of ours awaits its answer
	offeredAt   time.Time // when it was sent
	dirty       bool      // subscription changes are due
	force       bool      // offer even without changes: redo a failed negotiation
	failures    int       // failed negotiations in a row
	dead        bool      // gave up (ErrNegotiationFailed): no more offers

	// kinds are the media kinds some applied remote description carried:
	// pion fixes a PeerConnection's codecs per kind from the first one.
	kinds map[webrtc.RTPCodecType]bool
	// remote describes the m-lines of the last remote description applied,
	// by mid; hasData: it had a data section.
	remote  map[string]remoteMedia
	hasData bool
	// released are m-lines whose subscription the outstanding offer
	// removes; once it is answered they are idle, and a new subscription of
	// their kind takes one (subscribe.go) instead of adding an m-line.
	released, idle []*webrtc.RTPTransceiver
}

type remoteMedia struct {
	sends    bool // the remote sends on it (sendrecv or sendonly)
	rejected bool // port 0
}

func newNegotiation() negotiation {
	return negotiation{subs: map[*UpTrack]*subscription{}, kinds: map[webrtc.RTPCodecType]bool{},
		remote: map[string]remoteMedia{}}
}

func (p *Peer) run() {
	defer p.wg.Done()
	defer close(p.runDone)
	n := &p.neg
	coalesce := time.NewTimer(time.Hour)
	coalesce.Stop()
	armed := false
	answerWait := time.NewTimer(time.Hour)
	answerWait.Stop()
	defer func() {
		coalesce.Stop()
		answerWait.Stop()
		for up, s := range n.subs {
			s.down.close()
			delete(n.subs, up)
		}
	}()
	for {
		select {
		case <-p.closed:
			return
		case ev := <-p.events:
			p.handle(ev)
		case <-p.kick:
			if !armed {
				coalesce.Reset(Coalesce)
				armed = true
			}
		case <-coalesce.C:
			armed = false
			n.dirty = true
		case <-answerWait.C:
			if to := p.engine.answerTO; n.offering && time.Since(n.offeredAt) >= to {
				p.failed(fmt.Errorf("no answer to the server's offer within %v", to))
			}
		}
		if (n.dirty || n.force) && n.answered && !n.offering && !n.dead &&
			p.pc.SignalingState() == webrtc.SignalingStateStable {
			n.dirty = false
			if err := p.offer(); err != nil && !errors.Is(err, ErrClosed) {
				p.log.Warn("server offer failed", "participant", p.cfg.ID, "err", err)
			}
			if n.offering && p.engine.answerTO > 0 {
				answerWait.Reset(p.engine.answerTO)
			}
		}
	}
}

func (p *Peer) handle(ev peerEvent) {
	var err error
	switch ev.kind {
	case SignalOffer:
		err = p.answer(ev.sdp)
	case SignalAnswer:
		if ev.err != nil {
			if p.neg.offering {
				p.failed(ev.err)
			}
			return
		}
		err = p.applyAnswer(ev.sdp)
	case SignalCandidate:
		err = p.addCandidate(ev.cand)
	}
	if err != nil && p.cfg.OnError != nil {
		p.cfg.OnError(err)
	}
}

// answer applies a remote offer. On a collision with our own offer the
// server is the impolite peer and ignores the remote's (perfect negotiation).
// An offer that cannot be applied is rolled back, so the next one can be.
func (p *Peer) answer(sdp string) error {
	n := &p.neg
	if n.dead {
		return nil
	}
	if n.offering || p.pc.SignalingState() != webrtc.SignalingStateStable {
		p.log.Debug("offer collision: ignoring remote offer", "participant", p.cfg.ID)
		return nil
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return p.offerFailed(fmt.Errorf("%w: apply offer: %v", ErrBadSDP, err))
	}
	p.noteRemote()
	p.flushRemoteCandidates()
	if p.neg.hasData {
		p.openPrenegotiated()
	}
	ans, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return p.offerFailed(fmt.Errorf("%w: create answer: %v", ErrBadSDP, err))
	}
	if err := p.pc.SetLocalDescription(ans); err != nil {
		return p.offerFailed(fmt.Errorf("%w: set answer: %v", ErrBadSDP, err))
	}
	p.cfg.OnSignal(Signal{Kind: SignalAnswer, SDP: p.localSDP()})
	if !n.answered {
		n.answered = true
		n.dirty = true
		p.openLocalCandidates()
	}
	return nil
}

// offerFailed handles a remote offer that could not be answered: the client
// may offer again if the PeerConnection is stable (pion refused the offer
// before applying it); if pion was left in have-remote-offer, which it
// cannot roll back, the negotiation is over.
func (p *Peer) offerFailed(err error) error {
	if p.pc.SignalingState() != webrtc.SignalingStateStable {
		p.giveUp(err)
		return nil // giveUp reported it
	}
	return err
}

func (p *Peer) applyAnswer(sdp string) error {
	n := &p.neg
	if !n.offering {
		return fmt.Errorf("%w: answer without an offer", ErrBadSDP)
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		err = fmt.Errorf("%w: apply answer: %v", ErrBadSDP, err)
		p.failed(err)
		return err
	}
	n.offering, n.failures = false, 0
	p.noteRemote()
	n.idle = append(n.idle, n.released...)
	n.released = nil
	p.pruneIdle()
	return nil
}

// failed handles a server offer whose negotiation failed (its answer could
// not be applied, or never came): if the PeerConnection is stable, the
// first time it offers again, everything pending included; otherwise, or
// the second time in a row, it gives up.
func (p *Peer) failed(err error) {
	n := &p.neg
	n.failures++
	p.log.Info("negotiation failed", "participant", p.cfg.ID, "failures", n.failures, "err", err)
	if n.failures >= maxNegotiationFailures || p.pc.SignalingState() != webrtc.SignalingStateStable {
		p.giveUp(err)
		return
	}
	n.offering = false
	n.force = true
}

// giveUp ends the negotiation for good and tells the owner, who should end
// the session.
func (p *Peer) giveUp(err error) {
	n := &p.neg
	n.dead, n.offering = true, false
	p.log.Warn("negotiation abandoned", "participant", p.cfg.ID, "err", err)
	if p.cfg.OnError != nil {
		p.cfg.OnError(fmt.Errorf("%w: %v", ErrNegotiationFailed, err))
	}
}

// noteRemote records what the remote description just applied says about
// its m-lines: which media kinds pion has now fixed the codecs of, and, by
// mid, whether the remote sends on it or rejected it.
func (p *Peer) noteRemote() {
	rd := p.pc.RemoteDescription()
	if rd == nil {
		return
	}
	// Parse the text, not rd: rd.Unmarshal would rewrite the parsed copy
	// pion's own goroutine reads (a data race).
	var d sdp.SessionDescription
	if err := d.UnmarshalString(rd.SDP); err != nil {
		return
	}
	n := &p.neg
	clear(n.remote)
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media == "application" {
			n.hasData = true
		}
		kind := webrtc.NewRTPCodecType(m.MediaName.Media)
		if kind == 0 {
			continue
		}
		n.kinds[kind] = true
		mid, _ := m.Attribute(sdp.AttrKeyMID)
		_, sendrecv := m.Attribute(sdp.AttrKeySendRecv)
		_, sendonly := m.Attribute(sdp.AttrKeySendOnly)
		_, recvonly := m.Attribute(sdp.AttrKeyRecvOnly)
		_, inactive := m.Attribute(sdp.AttrKeyInactive)
		// No direction attribute means sendrecv (RFC 8866 §6.7).
		sends := sendrecv || sendonly || !(recvonly || inactive)
		n.remote[mid] = remoteMedia{sends: sends, rejected: m.MediaName.Port.Value == 0}
	}
}

func (p *Peer) addCandidate(c webrtc.ICECandidateInit) error {
	n := &p.neg
	if p.pc.RemoteDescription() == nil {
		if len(n.remoteCands) >= maxRemoteCands {
			return fmt.Errorf("%w: too many candidates before the offer", ErrBadSDP)
		}
		n.remoteCands = append(n.remoteCands, c)
		return nil
	}
	if err := p.pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("%w: candidate: %v", ErrBadSDP, err)
	}
	return nil
}

func (p *Peer) flushRemoteCandidates() {
	n := &p.neg
	for _, c := range n.remoteCands {
		if err := p.pc.AddICECandidate(c); err != nil && p.cfg.OnError != nil {
			p.cfg.OnError(fmt.Errorf("%w: buffered candidate: %v", ErrBadSDP, err))
		}
	}
	n.remoteCands = nil
}

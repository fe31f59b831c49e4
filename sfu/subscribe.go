package sfu

// Subscriptions: what the participant receives. Run goroutine only (see
// negotiate.go), except where a comment says mu.
//
// Each subscription is one m-line carrying one DownTrack. Its codec is the
// publisher's, numbered as this PeerConnection negotiated it, so the payload
// type on the wire is the one on the m-line. When a subscription ends its
// m-line goes recvonly; once that is answered the m-line is idle and the
// next subscription of its kind takes it over (a new sender, a new SSRC and
// msid, the same mid), so a member's SDP grows with the tracks it receives
// at once, not with every track it ever received.

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pion/webrtc/v3"
)

type subscription struct {
	down   *DownTrack
	sender *webrtc.RTPSender
	tr     *webrtc.RTPTransceiver
}

// offer applies the pending subscription changes and, when anything
// changed (or a failed negotiation must be redone), sends one offer for all
// of them.
func (p *Peer) offer() error {
	p.mu.Lock()
	want := p.want
	p.want = map[*UpTrack]bool{}
	p.mu.Unlock()
	n := &p.neg
	changed := n.force
	n.force = false
	for up, add := range want {
		s, have := n.subs[up]
		switch {
		case add && !have:
			select {
			case <-up.Done():
				continue
			default:
			}
			if err := p.subscribe(up); err != nil {
				p.log.Info("not subscribed", "participant", p.cfg.ID, "track", up.id, "err", err)
				if p.cfg.OnError != nil {
					p.cfg.OnError(err)
				}
				continue
			}
			changed = true
		case !add && have:
			p.unsubscribe(up, s)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	off, err := p.pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("create offer: %w", err)
	}
	if err := p.pc.SetLocalDescription(off); err != nil {
		return fmt.Errorf("set offer: %w", err)
	}
	n.offering, n.offeredAt = true, time.Now()
	p.cfg.OnSignal(Signal{Kind: SignalOffer, SDP: p.localSDP()})
	return nil
}

// subscribe adds a DownTrack of up, on an idle m-line of its kind if there
// is one. It fails with ErrCodecNotNegotiated when this PeerConnection
// cannot carry the publisher's codec.
func (p *Peer) subscribe(up *UpTrack) error {
	n := &p.neg
	d := newDownTrack(up, p.engine.stats)
	d.est = p.est
	// A sender from this PeerConnection's own API: used on a reused m-line,
	// and, either way, it tells what the PeerConnection can send of the
	// kind (pion's MediaEngine: every registered codec until a remote
	// description carried the kind, then what that first one negotiated,
	// numbered the remote's way).
	sender, err := p.api.NewRTPSender(d, p.pc.SCTP().Transport())
	if err != nil {
		return fmt.Errorf("new sender: %w", err)
	}
	have := sender.GetParameters().Codecs
	codec, ok := pickCodec(up.codec, have)
	if !ok {
		return fmt.Errorf("%w: track %s is %s, and this participant's first %s m-line accepted only %s",
			ErrCodecNotNegotiated, up.id, up.codec.MimeType, up.kind, mimeTypes(have))
	}
	d.codec = codec
	prefs := []webrtc.RTPCodecParameters{codec}
	if !n.kinds[up.kind] {
		// The answer to this offer fixes the kind's codecs for good: offer
		// them all, this track's first, so later tracks in other codecs fit.
		for _, c := range have {
			if c.PayloadType != codec.PayloadType {
				prefs = append(prefs, c)
			}
		}
	}
	tr := p.takeIdle(up.kind)
	if tr != nil {
		if err := tr.SetSender(sender, d); err != nil {
			return fmt.Errorf("reuse m-line %s: %w", tr.Mid(), err)
		}
	} else {
		// sendrecv, not sendonly: a browser's addTrack reuses a transceiver
		// the remote created (JSEP 5.2.2), so a client's next published
		// track may arrive on this m-line, and the server must receive it.
		tr, err = p.pc.AddTransceiverFromTrack(d, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
		if err != nil {
			return fmt.Errorf("add transceiver: %w", err)
		}
		sender = tr.Sender()
	}
	if err := tr.SetCodecPreferences(prefs); err != nil {
		// Cannot happen (prefs come from the same list); the m-line then
		// lists every negotiated codec, which still includes d.codec.
		p.log.Warn("codec preferences", "participant", p.cfg.ID, "err", err)
	}
	n.subs[up] = &subscription{down: d, sender: sender, tr: tr}
	p.mu.Lock()
	p.downs[up] = d
	p.gateEstimator()
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		d.readRTCP(sender)
	}()
	return nil
}

// unsubscribe ends a subscription: its m-line goes recvonly in the next
// offer and is idle once that is answered.
func (p *Peer) unsubscribe(up *UpTrack, s *subscription) {
	n := &p.neg
	delete(n.subs, up)
	p.mu.Lock()
	delete(p.downs, up)
	p.gateEstimator()
	p.mu.Unlock()
	if err := p.pc.RemoveTrack(s.sender); err != nil {
		p.log.Debug("remove track", "participant", p.cfg.ID, "err", err)
	} else {
		n.released = append(n.released, s.tr)
	}
	s.down.close()
}

// takeIdle returns an idle m-line of kind, or nil.
func (p *Peer) takeIdle(kind webrtc.RTPCodecType) *webrtc.RTPTransceiver {
	n := &p.neg
	for i, tr := range n.idle {
		if tr.Kind() == kind {
			n.idle = slices.Delete(n.idle, i, i+1)
			return tr
		}
	}
	return nil
}

// pruneIdle drops idle m-lines the remote has taken over for a track of
// its own (a browser's addTrack reuses them) or rejected: they are not the
// server's to give.
func (p *Peer) pruneIdle() {
	n := &p.neg
	n.idle = slices.DeleteFunc(n.idle, func(tr *webrtc.RTPTransceiver) bool {
		r, ok := n.remote[tr.Mid()]
		return !ok || r.sends || r.rejected
	})
}

func mimeTypes(cs []webrtc.RTPCodecParameters) string {
	var names []string
	for _, c := range cs {
		if n := strings.TrimPrefix(strings.TrimPrefix(c.MimeType, "video/"), "audio/"); !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "nothing"
	}
	return strings.Join(names, ", ")
}

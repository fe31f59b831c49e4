package sfu

// Subscriptions: what the participant receives. Run goroutine only (see
// negotiate.go), except where a comment says mu.
//
// Each subscription is one m-line carrying one DownTrack (a relay's
// subscription to a simulcast track: one per layer, relaylayers.go). Its
// codec is the publisher's, numbered as this PeerConnection negotiated it,
// so the payload type on the wire is the one on the m-line. When a subscription ends its
// m-line goes recvonly; once that is answered the m-line is idle and the
// next subscription of its kind takes it over (a new sender, a new SSRC and
// msid, the same mid), so a member's SDP grows with the tracks it receives
// at once, not with every track it ever received. The new sender must come
// from the PeerConnection's own internal API, which alone carries its
// interceptors (reports, TWCC, congestion control); pion exposes that only
// through AddTrack (reuseIdle).

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pion/webrtc/v3"
)

type subscription struct {
	down   *DownTrack
	sender *webrtc.RTPSender
	tr     *webrtc.RTPTransceiver
	// layers are a relay's other simulcast layers of the track, each on
	// an m-line of its own (relaylayers.go); down carries the first.
	layers []*subscription
}

// all returns s and its other layers' subscriptions.
func (s *subscription) all() []*subscription { return append([]*subscription{s}, s.layers...) }

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
	first := p.cfg.Initiator && p.pc.LocalDescription() == nil
	if first {
		p.openPrenegotiated()
	}
	off, err := p.pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("create offer: %w", err)
	}
	var gathered <-chan struct{}
	if first {
		gathered = webrtc.GatheringCompletePromise(p.pc)
	}
	if err := p.pc.SetLocalDescription(off); err != nil {
		return fmt.Errorf("set offer: %w", err)
	}
	if gathered != nil {
		p.awaitGathering(gathered)
	}
	n.offering, n.offeredAt = true, time.Now()
	p.cfg.OnSignal(Signal{Kind: SignalOffer, SDP: p.localSDP()})
	if first {
		p.openLocalCandidates() // after the offer that carries them; later ones trickle
	}
	return nil
}

// subscribe adds a DownTrack of up, on an idle m-line of its kind if there
// is one. It fails with ErrCodecNotNegotiated when this PeerConnection
// cannot carry the publisher's codec.
func (p *Peer) subscribe(up *UpTrack) error {
	n := &p.neg
	have, err := p.codecs(up.kind)
	if err != nil {
		return err
	}
	codec, ok := pickCodec(up.codec, have)
	if !ok {
		return fmt.Errorf("%w: track %s is %s, and this participant's first %s m-line accepted only %s",
			ErrCodecNotNegotiated, up.id, up.codec.MimeType, up.kind, mimeTypes(have))
	}
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
	pins := relayPins(p.cfg.Relay, up)
	var s *subscription
	for _, pin := range pins {
		d := newDownTrack(up, p.engine.stats)
		d.est, d.relay, d.codec = p.est, p.cfg.Relay, codec
		if pin != "" {
			d.pinTo(pin)
		}
		ls, err := p.addSending(d, prefs)
		if err != nil {
			d.close()
			if s != nil {
				p.unsubscribe(up, s) // not in n.subs yet: closes what was made
			}
			return err
		}
		if s == nil {
			s = ls
		} else {
			s.layers = append(s.layers, ls)
		}
	}
	if len(s.layers) > 0 {
		s.down.set = []*DownTrack{s.down}
		for _, ls := range s.layers {
			s.down.set = append(s.down.set, ls.down)
		}
	}
	n.subs[up] = s
	p.mu.Lock()
	p.downs[up] = s.down
	p.mu.Unlock()
	for _, ls := range s.all() {
		p.started(ls.down, ls.sender)
	}
	return nil
}

// addSending puts d on an m-line: an idle one of its kind that accepted
// its codec, else a new one, with the codecs prefs.
func (p *Peer) addSending(d *DownTrack, prefs []webrtc.RTPCodecParameters) (*subscription, error) {
	var sender *webrtc.RTPSender
	var err error
	tr := p.takeIdle(d.rtpKind, d.codec.PayloadType)
	if tr != nil {
		if tr, sender, err = p.reuseIdle(tr, d); err != nil {
			p.log.Warn("m-line not reused", "participant", p.cfg.ID, "err", err)
		}
	}
	if tr == nil {
		// sendrecv, not sendonly: a browser's addTrack reuses a transceiver
		// the remote created (JSEP 5.2.2), so a client's next published
		// track may arrive on this m-line, and the server must receive it.
		tr, err = p.pc.AddTransceiverFromTrack(d, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
		if err != nil {
			return nil, fmt.Errorf("add transceiver: %w", err)
		}
		sender = tr.Sender()
	}
	if err := tr.SetCodecPreferences(prefs); err != nil {
		// Cannot happen (prefs come from the same list); the m-line then
		// lists every negotiated codec, which still includes d.codec.
		p.log.Warn("codec preferences", "participant", p.cfg.ID, "err", err)
	}
	return &subscription{down: d, sender: sender, tr: tr}, nil
}

// started gates the estimator for a new DownTrack and starts its RTCP
// reader, which ends when pion stops the sender.
func (p *Peer) started(d *DownTrack, sender *webrtc.RTPSender) {
	p.mu.Lock()
	p.gateEstimator()
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		d.readRTCP(sender)
	}()
}

// unsubscribe ends a subscription: its m-line goes recvonly in the next
// offer and is idle once that is answered, if the PeerConnection was
// connected. One removed before that is never reused: a pion v3 remote
// applies each description's receivers only once DTLS is up, queued, each
// against the transceivers as they are by then, so the removed track's
// stale start leaves the m-line's new receiver marked started with no
// stream, and no later track on it is ever delivered (issue 16: a mover
// still connecting, subscribed to a lost node's tracks, then to their
// replacements).
func (p *Peer) unsubscribe(up *UpTrack, s *subscription) {
	n := &p.neg
	if n.subs[up] == s {
		delete(n.subs, up)
		p.mu.Lock()
		delete(p.downs, up)
		p.gateEstimator()
		p.mu.Unlock()
	}
	for _, ls := range s.all() {
		if err := p.pc.RemoveTrack(ls.sender); err != nil {
			p.log.Debug("remove track", "participant", p.cfg.ID, "err", err)
		} else if p.dtlsUp.Load() {
			n.released = append(n.released, ls.tr)
		}
		ls.down.close()
	}
}

// codecs returns what the PeerConnection can send of kind now: pion's
// MediaEngine (shared with p.api: DisableMediaEngineCopy) offers every
// registered codec until a remote description carried the kind, then what
// that first one negotiated, numbered the remote's way. An unattached
// RTPSender reads it without touching any transceiver; it is never sent.
func (p *Peer) codecs(kind webrtc.RTPCodecType) ([]webrtc.RTPCodecParameters, error) {
	probe, err := p.api.NewRTPSender(placeholder(kind), p.pc.SCTP().Transport())
	if err != nil {
		return nil, fmt.Errorf("codec probe: %w", err)
	}
	return probe.GetParameters().Codecs, nil
}

// reuseIdle puts d on the idle m-line tr with a sender from pion's AddTrack,
// the one way to a sender built by the PeerConnection's internal API. An m-line
// it cannot reuse is not tried again.
// AddTrack takes the first transceiver of the kind that has no sender and
// never sent; the ones before tr (a client's own m-lines, other idle ones)
// get a placeholder sender for the call, and RemoveTrack undoes it exactly
// (pion's setSendingTrack: recvonly -> sendrecv -> recvonly, inactive ->
// sendonly -> inactive). It returns the transceiver pion used: tr, or a
// new one if tr was not eligible after all; nil and an error if pion chose an
// m-line of the client's. Run goroutine only: no
// description is made meanwhile.
func (p *Peer) reuseIdle(tr *webrtc.RTPTransceiver, d *DownTrack) (*webrtc.RTPTransceiver, *webrtc.RTPSender, error) {
	var hidden []*webrtc.RTPSender
	before := p.pc.GetTransceivers()
	for _, t := range before {
		if t == tr {
			break
		}
		if t.Kind() != d.Kind() || t.Sender() != nil {
			continue
		}
		ph, err := p.api.NewRTPSender(placeholder(d.Kind()), p.pc.SCTP().Transport())
		if err == nil {
			err = t.SetSender(ph, ph.Track())
		}
		if err != nil {
			p.unhide(hidden)
			return nil, nil, fmt.Errorf("placeholder: %w", err)
		}
		hidden = append(hidden, ph)
	}
	sender, err := p.pc.AddTrack(d)
	p.unhide(hidden)
	if err != nil {
		return nil, nil, fmt.Errorf("add track: %w", err)
	}
	var used *webrtc.RTPTransceiver
	for _, t := range p.pc.GetTransceivers() {
		if t.Sender() == sender {
			used = t
		}
	}
	switch {
	case used == tr:
		return tr, sender, nil
	case used != nil && !slices.Contains(before, used): // tr was not eligible: a new m-line
		return used, sender, nil
	}
	_ = p.pc.RemoveTrack(sender) // an m-line of the client's: give it back
	return nil, nil, fmt.Errorf("pion chose an m-line of the client's, not idle m-line %s", tr.Mid())
}

func (p *Peer) unhide(hidden []*webrtc.RTPSender) {
	for _, ph := range hidden {
		if err := p.pc.RemoveTrack(ph); err != nil {
			p.log.Warn("placeholder sender not removed", "participant", p.cfg.ID, "err", err)
		}
	}
}

// placeholder is a TrackLocal that is never bound: it stands in a sender
// that is never negotiated (codec probes, reuseIdle's placeholders).
func placeholder(kind webrtc.RTPCodecType) webrtc.TrackLocal { return placeholderTrack(kind) }

type placeholderTrack webrtc.RTPCodecType

func (placeholderTrack) Bind(webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	return webrtc.RTPCodecParameters{}, errPlaceholder
}
func (placeholderTrack) Unbind(webrtc.TrackLocalContext) error { return nil }
func (placeholderTrack) ID() string                            { return "placeholder" }
func (placeholderTrack) RID() string                           { return "" }
func (placeholderTrack) StreamID() string                      { return "placeholder" }
func (t placeholderTrack) Kind() webrtc.RTPCodecType           { return webrtc.RTPCodecType(t) }

var errPlaceholder = errors.New("sfu: placeholder track is never bound")

// takeIdle returns an idle m-line of kind whose last answer accepted payload
// type pt, or nil. (A client may keep an m-line's codecs from the offer that
// created it, as pion does: an m-line is reused only for a codec the client
// took on it.)
func (p *Peer) takeIdle(kind webrtc.RTPCodecType, pt webrtc.PayloadType) *webrtc.RTPTransceiver {
	n := &p.neg
	want := strconv.Itoa(int(pt))
	for i, tr := range n.idle {
		if tr.Kind() == kind && slices.Contains(n.remote[tr.Mid()].formats, want) {
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

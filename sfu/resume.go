package sfu

// What keeps a participant through an outage (docs/architecture.md,
// "Resume"): a hold on negotiation while its signaling socket is gone, ICE
// restarts, and keyframes when its media path comes back. held and
// releases are atomics any goroutine sets; the run goroutine acts on them
// (negotiate.go). pathDown is written by pion's ICE state callback only.

import (
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"
)

// SetHeld holds (true) or releases (false) the Peer's negotiation. While
// held, because the member's signaling socket is gone, the Peer makes no
// offer, and the answer timeout (Settings.AnswerTimeout) of an offer
// already outstanding is suspended. Every release, held before or not (a
// resume may replace a socket the server never saw drop), sends the
// outstanding offer again, if there is one, with its answer timeout
// started afresh (the first copy may have died with the old socket), and
// then makes the offers that came due meanwhile. Safe for any goroutine.
func (p *Peer) SetHeld(held bool) {
	p.held.Store(held)
	if held {
		return
	}
	p.releases.Add(1)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// resendOffer is called by the run goroutine after a release: it sends
// the outstanding offer again and reports whether there is one.
func (p *Peer) resendOffer() bool {
	n := &p.neg
	if !n.offering || p.pc.SignalingState() != webrtc.SignalingStateHaveLocalOffer {
		return false
	}
	p.log.Debug("offer sent again after resume", "participant", p.cfg.ID)
	p.cfg.OnSignal(Signal{Kind: SignalOffer, SDP: p.localSDP()})
	return true
}

// onICEState follows the media path: when ICE is back (connected or
// completed) after it was disconnected, failed or restarted, the path came
// back, and the Peer asks for keyframes (pathBack). Called by pion, in
// order.
func (p *Peer) onICEState(s webrtc.ICEConnectionState) {
	switch s {
	case webrtc.ICEConnectionStateDisconnected, webrtc.ICEConnectionStateFailed:
		p.pathDown.Store(true)
	case webrtc.ICEConnectionStateChecking:
		// Checking again after it connected: an ICE restart, a new path.
		if p.iceUp.Load() {
			p.pathDown.Store(true)
		}
	case webrtc.ICEConnectionStateConnected, webrtc.ICEConnectionStateCompleted:
		if p.pathDown.Swap(false) {
			p.log.Debug("media path back: keyframes requested", "participant", p.cfg.ID)
			p.pathBack()
		}
	}
}

// PathUp reports whether the media path is up: ICE connected once and is
// not disconnected or failed now. Safe for any goroutine.
func (p *Peer) PathUp() bool { return p.iceUp.Load() && !p.pathDown.Load() }

// pathBack asks, for a path that came back, for a keyframe of every video
// track the participant publishes (its subscribers lost packets during
// the outage) and of every video track it receives (it lost them): each
// decoder starts again at a keyframe instead of waiting for the next
// periodic one. The requests go through each layer's Throttle.
func (p *Peer) pathBack() {
	p.mu.Lock()
	var layers []*layer
	for up := range p.ups {
		if up.kind == webrtc.RTPCodecTypeVideo {
			layers = append(layers, *up.layers.Load()...)
		}
	}
	for _, d := range p.downs {
		if d.kind == KindVideo {
			layers = append(layers, d.want.Load())
		}
		if len(d.set) > 1 { // a relay's other layers
			for _, ld := range d.set[1:] {
				layers = append(layers, ld.want.Load())
			}
		}
	}
	for _, d := range p.playback {
		if d.kind == KindVideo {
			layers = append(layers, d.want.Load())
		}
	}
	p.mu.Unlock()
	for _, l := range layers {
		l.requestKeyframe()
	}
}

// iceRestart reports whether offer restarts ICE (RFC 8839 §4.4.1.1.1): it
// carries ICE credentials other than the current remote description's.
func (p *Peer) iceRestart(offer string) bool {
	rd := p.pc.RemoteDescription()
	if rd == nil {
		return false
	}
	return ufrag(offer) != ufrag(rd.SDP)
}

// ufrag returns a description's first ice-ufrag (session level or the
// first m-line's; with BUNDLE they are one).
func ufrag(desc string) string {
	var d sdp.SessionDescription
	if d.UnmarshalString(desc) != nil {
		return ""
	}
	if v, ok := d.Attribute("ice-ufrag"); ok {
		return v
	}
	for _, m := range d.MediaDescriptions {
		if v, ok := m.Attribute("ice-ufrag"); ok {
			return v
		}
	}
	return ""
}

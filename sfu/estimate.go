package sfu

// A Peer's bandwidth estimate toward its subscriber. pion's cc interceptor
// hands over the estimator when the PeerConnection is built; REMB values
// come from the DownTracks' RTCP goroutines. Everything is atomic or
// behind mu; any goroutine may read.

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/rtcp"
)

// InitialEstimate is where Google congestion control starts, in bits per
// second, before the subscriber's first TWCC feedback.
const InitialEstimate = 1_000_000

type estimator struct {
	mu   sync.Mutex
	gcc  cc.BandwidthEstimator
	on   atomic.Bool   // GCC and TWCC run (gate): the subscriber receives simulcast
	twcc atomic.Bool   // TWCC feedback seen: the GCC estimate is live
	remb atomic.Uint64 // last REMB, bits per second
}

func (e *estimator) set(b cc.BandwidthEstimator) {
	e.mu.Lock()
	e.gcc = b
	e.mu.Unlock()
}

// bitrate returns the estimate: GCC when it runs and the subscriber sends
// TWCC feedback, else its REMB (RFC draft-alvestrand-rmcat-remb), else 0.
func (e *estimator) bitrate() int {
	if e.on.Load() && e.twcc.Load() {
		e.mu.Lock()
		b := e.gcc
		e.mu.Unlock()
		if b != nil {
			return b.GetTargetBitrate()
		}
	}
	return int(e.remb.Load())
}

// Estimate returns the send-side bandwidth estimate toward this
// participant in bits per second, or 0 while there is none: GCC runs only
// while the participant receives a simulcast track (see gate), so others
// have an estimate only if they send REMB.
func (p *Peer) Estimate() int { return p.est.bitrate() }

// allocateInterval is how often a Peer shares its estimate among its
// simulcast subscriptions.
const allocateInterval = 250 * time.Millisecond

// allocateLoop is the Peer's allocator goroutine: every allocateInterval it
// lets each simulcast subscription that is not paused choose its layer
// again (DownTrack.decide), with an even share of the bandwidth estimate
// when there is one, so that layers that stop or start, and sizes learnt
// from keyframes, are followed too. Once a second it also sends the
// participant its publishing cap (capIncoming).
func (p *Peer) allocateLoop() {
	defer p.wg.Done()
	tick := time.NewTicker(allocateInterval)
	defer tick.Stop()
	var downs []*DownTrack
	var paused []*UpTrack
	for n := 0; ; n++ {
		select {
		case <-p.closed:
			return
		case now := <-tick.C:
			if n%4 == 0 {
				p.capIncoming()
			}
			downs, paused = downs[:0], paused[:0]
			p.mu.Lock()
			for up, d := range p.downs {
				switch {
				case !up.simulcast:
				case d.paused.Load():
					paused = append(paused, up)
				default:
					downs = append(downs, d)
				}
			}
			for _, d := range p.playback {
				if up := d.src.Load(); up != nil && up.simulcast {
					downs = append(downs, d)
				}
			}
			p.mu.Unlock()
			for _, up := range paused {
				// Keep watching the layers, so that a resume sees which
				// still flow (layer.live judges by successive checks).
				for _, l := range *up.layers.Load() {
					l.live(now)
				}
			}
			if len(downs) == 0 {
				continue
			}
			share := max(p.Estimate(), 0) / len(downs)
			if p.cfg.Relay {
				share = 0 // the layers the viewport hints ask for, no budget
			}
			for _, d := range downs {
				d.src.Load().rerank(now, false)
				d.decide(share, now)
			}
		}
	}
}

// EstimateDetails returns the congestion controller's internal state, for
// diagnostics (nil while it does not run or has no TWCC feedback).
func (e *Engine) EstimateDetails() []map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []map[string]any
	for p := range e.peers {
		p.est.mu.Lock()
		if g, ok := p.est.gcc.(interface{ GetStats() map[string]any }); ok && p.est.on.Load() && p.est.twcc.Load() {
			out = append(out, g.GetStats())
		}
		p.est.mu.Unlock()
	}
	return out
}

// capIncoming tells the participant, by REMB, how much it may publish in
// all (Settings.MaxIncomingBitrate), covering every video stream it sends.
// Audio is left out: it is small and browsers do not adapt it to REMB.
func (p *Peer) capIncoming() {
	if p.engine.maxIn <= 0 || p.cfg.Relay {
		return
	}
	p.mu.Lock()
	ssrcs := append([]uint32(nil), p.videoSSRCs...)
	p.mu.Unlock()
	if len(ssrcs) == 0 {
		return
	}
	_ = p.pc.WriteRTCP([]rtcp.Packet{&rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: float32(p.engine.maxIn), SSRCs: ssrcs}})
}

// gateEstimator runs congestion control while some subscription is
// simulcast (gate), and for a viewer's video, whose sources may be.
// Called with mu held.
func (p *Peer) gateEstimator() {
	if p.cfg.Relay {
		return // a relay's layers follow viewport hints only
	}
	on := false
	for _, d := range p.playback {
		on = on || d.kind == KindVideo
	}
	for up := range p.downs {
		if up.simulcast {
			on = true
			break
		}
	}
	p.est.on.Store(on)
}

package sfu

// What the participant publishes: pion's track callback (on its own
// goroutine) builds the UpTrack, or adds a simulcast layer to it, under
// Peer.mu, and starts the layer's read and RTCP goroutines, which the Peer's
// WaitGroup counts.

import (
	"crypto/rand"
	"encoding/base64"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"
)

// onTrack starts reading a new track, or a new simulcast layer of a track
// already published (pion calls it once per rid; the layers share the
// receiver). The track is announced once, with its first layer, and ends
// when its last layer ends.
func (p *Peer) onTrack(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		return
	}
	rid := remote.RID()
	up, isLayer := p.simulcast[receiver]
	var l *layer
	if isLayer {
		l = up.addLayer(rid, uint32(remote.SSRC()))
	} else {
		id, stream := newTrackID(), p.cfg.ID
		if p.cfg.Relay && remote.ID() != "" && remote.StreamID() != "" {
			id, stream = remote.ID(), remote.StreamID() // as its origin named it
		}
		up = newSimulcastUpTrack(id, stream, remote.Kind(), remote.Codec(), rid, uint32(remote.SSRC()),
			p.engine.stats, p.pc.WriteRTCP)
		up.receiver, up.remoteID, up.relayed = receiver, remote.ID(), p.cfg.Relay
		l = (*up.layers.Load())[0]
		for _, e := range receiver.GetParameters().HeaderExtensions {
			if e.URI == sdp.AudioLevelURI && remote.Kind() == webrtc.RTPCodecTypeAudio {
				up.levelID = uint8(e.ID)
			}
		}
		p.ups[up] = struct{}{}
		if rid != "" {
			p.simulcast[receiver] = up
			up.expectLayers(len(receiver.Tracks()))
		}
	}
	l.remote = remote
	if remote.Kind() == webrtc.RTPCodecTypeVideo {
		// The most recent streams; older ones have ended or soon will.
		p.videoSSRCs = append(p.videoSSRCs[max(0, len(p.videoSSRCs)-maxCappedSSRCs+1):], uint32(remote.SSRC()))
	}
	up.startLoop()
	p.wg.Add(2) // under mu: never after Close started waiting
	p.mu.Unlock()
	if isLayer {
		up.redecide()
	}
	k := kindOf(up.kind)
	go func() {
		defer p.wg.Done()
		up.drainRTCP(l)
	}()
	go func() {
		defer p.wg.Done()
		if !isLayer {
			p.engine.stats.UpTracks[k].Add(1)
			if p.cfg.OnTrack != nil && !p.cfg.OnTrack(up) {
				up.refused.Store(true)
			}
		}
		up.readLoop(l)
		if up.endLoop() {
			p.mu.Lock()
			delete(p.simulcast, receiver)
			delete(p.ups, up)
			p.mu.Unlock()
			p.engine.stats.UpTracks[k].Add(-1)
			if p.cfg.OnTrackEnded != nil {
				p.cfg.OnTrackEnded(up)
			}
		}
	}()
}

// newTrackID returns a random, URL-safe track id.
func newTrackID() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return "TR" + base64.RawURLEncoding.EncodeToString(b[:])
}

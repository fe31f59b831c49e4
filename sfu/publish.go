package sfu

// What the participant publishes: pion's track callback (on its own
// goroutine) builds the UpTrack, or adds a simulcast layer to it, under
// Peer.mu, and starts the layer's read and RTCP goroutines, which the Peer's
// WaitGroup counts.

import (
	"crypto/rand"
	"encoding/base64"
	"strings"

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
	id, stream := newTrackID(), p.cfg.ID
	if p.cfg.Relay && remote.ID() != "" && remote.StreamID() != "" {
		id, stream = remote.ID(), remote.StreamID() // as its origin named it
	}
	// A relayed simulcast layer comes on an m-line of its own, its id
	// naming the track and the layer (relaylayers.go).
	var relayKey string
	if p.cfg.Relay {
		if tid, lrid, ok := strings.Cut(id, relayLayerSep); ok {
			id, rid, relayKey = tid, lrid, stream+" "+tid
		}
	}
	up, isLayer := p.simulcast[receiver]
	if relayKey != "" {
		// A layer it has already is a new subscription's, come before
		// the old one's layers all ended: a new track.
		up, isLayer = p.relayLayers[relayKey]
		isLayer = isLayer && !up.hasLayer(rid)
	}
	var l *layer
	if isLayer {
		l = up.addLayer(rid, uint32(remote.SSRC()))
	} else {
		up = newSimulcastUpTrack(id, stream, remote.Kind(), remote.Codec(), rid, uint32(remote.SSRC()),
			p.engine.stats, p.pc.WriteRTCP)
		up.receiver, up.remoteID, up.relayed = receiver, remote.ID(), p.cfg.Relay
		if relayKey != "" {
			up.remoteID = id // the track's, without the layer's rid
		}
		l = (*up.layers.Load())[0]
		for _, e := range receiver.GetParameters().HeaderExtensions {
			if e.URI == sdp.AudioLevelURI && remote.Kind() == webrtc.RTPCodecTypeAudio {
				up.levelID = uint8(e.ID)
			}
		}
		p.ups[up] = struct{}{}
		switch {
		case relayKey != "":
			p.relayLayers[relayKey] = up
		case rid != "":
			p.simulcast[receiver] = up
			up.expectLayers(len(receiver.Tracks()))
			for _, t := range receiver.Tracks() {
				up.rids = append(up.rids, t.RID())
			}
		}
	}
	l.remote = remote
	if relayKey != "" {
		l.receiver = receiver
	}
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
		if relayKey != "" {
			// The origin ends a relayed track's layers together: later
			// layers of the same id start a new track.
			p.mu.Lock()
			if p.relayLayers[relayKey] == up {
				delete(p.relayLayers, relayKey)
			}
			p.mu.Unlock()
		}
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

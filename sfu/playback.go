package sfu

// Playback: a Peer that only watches (a WHEP viewer, PeerConfig.Playback)
// receives one audio and one video track whose source changes without
// renegotiation. The client offers a receiving m-line per kind; the first
// answer puts a playback DownTrack on each (attachPlayback, run goroutine),
// and Follow points them at UpTracks from any goroutine. A playback
// DownTrack switches source as a simulcast subscriber switches layer: it
// joins the new UpTrack's subscribers, keeps forwarding the old one until
// the new one's next keyframe (asked for at once; audio switches at its
// next packet), and there continues the subscriber's sequence numbers and
// timestamps, then leaves the old one's subscribers (settle). The
// playback list is behind Peer.mu, the sources each DownTrack's own.

import (
	"fmt"
	"slices"
	"time"

	"github.com/pion/webrtc/v3"
)

// playbackStream is the msid stream id of a viewer's tracks: one stream,
// whose audio and video a player shows together.
const playbackStream = "roundtable"

// attachPlayback gives each audio and video m-line the client offered to
// receive on (the first of each kind) a playback DownTrack, in the codec of
// the source it should follow if there is one yet, else the first the
// client listed. Run goroutine, between applying the client's first offer
// and answering it.
func (p *Peer) attachPlayback() {
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if !p.neg.kinds[kind] {
			continue // the client receives no such kind
		}
		have, err := p.codecs(kind)
		if err != nil || len(have) == 0 {
			p.log.Info("no playback track", "participant", p.cfg.ID, "kind", kind.String(), "err", err)
			continue
		}
		codec := have[0]
		p.mu.Lock()
		follow := p.follow
		p.mu.Unlock()
		for _, up := range follow {
			if up.kind != kind {
				continue
			}
			if c, ok := pickCodec(up.codec, have); ok {
				codec = c
				break
			}
		}
		d := makeDownTrack(kind, kind.String(), playbackStream, codec, p.engine.stats)
		d.codec = codec
		d.est = p.est
		sender, err := p.pc.AddTrack(d) // takes the client's receiving m-line of the kind
		if err != nil {
			p.log.Warn("playback track not added", "participant", p.cfg.ID, "kind", kind.String(), "err", err)
			continue
		}
		for _, tr := range p.pc.GetTransceivers() {
			if tr.Sender() == sender {
				if err := tr.SetCodecPreferences([]webrtc.RTPCodecParameters{codec}); err != nil {
					p.log.Warn("codec preferences", "participant", p.cfg.ID, "err", err)
				}
			}
		}
		p.mu.Lock()
		p.playback = append(p.playback, d)
		p.mu.Unlock()
		p.started(d, sender)
	}
	p.mu.Lock()
	follow := p.follow
	p.mu.Unlock()
	p.Follow(follow...)
}

// Follow points a playback Peer's tracks at sources: for each kind, the
// first of ups in that kind whose codec the viewer's m-line carries (so
// list the one wanted first, then fallbacks). A kind none of ups has keeps
// its source. Video switches at the new source's next keyframe, which is
// asked for now. Any goroutine; it does not block. A Peer that is not a
// playback Peer ignores it.
func (p *Peer) Follow(ups ...*UpTrack) {
	if !p.cfg.Playback {
		return
	}
	p.mu.Lock()
	p.follow = slices.Clone(ups)
	tracks := slices.Clone(p.playback)
	p.mu.Unlock()
	for _, d := range tracks {
		for _, up := range ups {
			if up.kind == d.rtpKind && d.SetSource(up) == nil {
				break
			}
		}
	}
}

// PlaybackSources returns the UpTracks a playback Peer's tracks forward now
// (or switch to), audio first; nil entries for a kind without one.
func (p *Peer) PlaybackSources() (audio, video *UpTrack) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range p.playback {
		if d.rtpKind == webrtc.RTPCodecTypeAudio {
			audio = d.src.Load()
		} else {
			video = d.src.Load()
		}
	}
	return audio, video
}

// SetSource makes up the DownTrack's source (a playback track's). It fails
// with ErrCodecNotNegotiated when up's codec is not the one the track was
// negotiated with, and ErrClosed after the track ended.
func (d *DownTrack) SetSource(up *UpTrack) error {
	if _, ok := pickCodec(up.codec, []webrtc.RTPCodecParameters{d.codec}); !ok || up.kind != d.rtpKind {
		return fmt.Errorf("%w: source %s is %s, the viewer's track %s", ErrCodecNotNegotiated, up.id, up.codec.MimeType, d.codec.MimeType)
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	if d.src.Load() == up {
		d.mu.Unlock()
		return nil
	}
	d.src.Store(up)
	if !slices.Contains(d.ups, up) {
		d.ups = append(d.ups, up)
		if d.bound {
			up.addDown(d)
		}
	}
	d.mu.Unlock()
	d.pmu.Lock()
	d.policy = newLayerPolicy() // its state was about the old source's layers
	d.pmu.Unlock()
	d.decide(0, time.Now())
	d.emu.Lock()
	cur := d.current
	d.emu.Unlock()
	if cur != nil && cur.owner == up {
		d.settle(up) // back to the source it still forwards
	} else {
		d.want.Load().requestKeyframe()
	}
	return nil
}

// settle removes the DownTrack from the subscribers of every UpTrack but
// the one it forwards now, at. Called on a switch of the forwarded layer;
// a plain subscription has nothing to do and allocates nothing.
func (d *DownTrack) settle(at *UpTrack) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.ups) == 1 || d.closed {
		return
	}
	keep := d.ups[:0]
	for _, up := range d.ups {
		if up == at || up == d.src.Load() {
			keep = append(keep, up)
		} else if d.bound {
			up.removeDown(d)
		}
	}
	clear(d.ups[len(keep):])
	d.ups = keep
}

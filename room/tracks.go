package room

// Ownership: as room.go says. What members do with tracks and data: every
// function here takes the member's Room.mu for the room's track state.

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/roundtable-sfu/roundtable/sfu"
)

// SetViewport applies the member's hint for a track it receives (by the
// server's track id): rendered size, and visibility (hidden video is not
// sent).
func (m *Manager) SetViewport(p *Participant, trackID string, width, height int, visible bool) error {
	if width < 0 || height < 0 || width > 16384 || height > 16384 {
		return fmt.Errorf("%w: size %dx%d", ErrBadTrackUpdate, width, height)
	}
	r := p.room
	r.mu.Lock()
	var up *sfu.UpTrack
	for _, o := range r.everyoneLocked() {
		for _, t := range o.tracks {
			if o != p && t.ID() == trackID {
				up = t
			}
		}
	}
	relayed := up != nil && r.relayedLocked(up)
	r.mu.Unlock()
	if up == nil || !p.peer.SetViewport(up, width, height, visible) {
		return fmt.Errorf("%w: %q", ErrUnknownTrack, trackID)
	}
	if relayed {
		r.sendViews() // its node sends the layer this tile needs
	}
	return nil
}

// MaxTrackMeta bounds the track updates a participant may keep.
const MaxTrackMeta = 32

// UpdateTrack records what the participant says about one of its tracks
// (named by its own track id): source and muted state. Others learn it with
// the track, or at once with TrackUpdated if the track is published.
func (m *Manager) UpdateTrack(p *Participant, localID string, meta TrackMeta) error {
	if len(localID) == 0 || len(localID) > 128 {
		return fmt.Errorf("%w: track id must be 1-128 bytes", ErrBadTrackUpdate)
	}
	if !slices.Contains(Sources, meta.Source) {
		return fmt.Errorf("%w: source %q, want one of %v", ErrBadTrackUpdate, meta.Source, Sources)
	}
	r := p.room
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, known := p.meta[localID]; !known && len(p.meta) >= MaxTrackMeta {
		return fmt.Errorf("%w: more than %d tracks", ErrBadTrackUpdate, MaxTrackMeta)
	}
	p.meta[localID] = meta
	for _, up := range p.tracks {
		if up.RemoteID() == localID {
			ev := TrackUpdated{Participant: p.id, Track: p.trackInfo(up)}
			if r.rec != nil {
				r.rec.TrackMuted(p.id, up, ev.Track.Muted)
			}
			for _, o := range r.order {
				if o != p {
					o.client.Notify(ev)
				}
			}
			r.eachRelayLocked(func(rl *Relay) {
				rl.controlLocked(relayControl{Type: "track", Participant: p.id, Track: up.ID(), Source: ev.Track.Source, Muted: ev.Track.Muted})
			})
		}
	}
	return nil
}

func (r *Room) publish(p *Participant, up *sfu.UpTrack) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.left {
		return nil
	}
	if !p.perm.Publish {
		return fmt.Errorf("%w: track %s is not forwarded", ErrPublishNotAllowed, up.ID())
	}
	if max := r.mgr.limits.MaxTracks; len(p.tracks) >= max {
		return fmt.Errorf("%w: %d published, limit %d; track %s is not forwarded", ErrTooManyTracks, len(p.tracks), max, up.ID())
	}
	r.publishLocked(p, up)
	return nil
}

// publishLocked adds up to p's tracks: local members receive it, and for a
// local member's track the other nodes too (r.mu held).
func (r *Room) publishLocked(p *Participant, up *sfu.UpTrack) {
	p.tracks = append(p.tracks, up)
	ev := TrackPublished{Participant: p.id, Track: p.trackInfo(up)}
	for _, o := range r.order {
		if o != p {
			o.client.Notify(ev)
			if o.perm.Subscribe {
				o.peer.Subscribe(up)
			}
		}
	}
	info := p.trackInfo(up)
	if p.relay == nil {
		r.mgr.emit(Change{Kind: ChangeTrackPublished, Room: r.name, Participant: p.changed(), Track: &info})
		r.eachRelayLocked(func(rl *Relay) { rl.trackLocked(p, up) })
	}
	if r.rec != nil {
		r.rec.TrackPublished(p.info(), p.identity, up, info)
	}
	r.refollowLocked()
	r.mgr.log.Info("track published", "room", r.name, "participant", p.id, "track", up.ID(),
		"kind", up.Kind().String(), "codec", up.Codec().MimeType, "remote", p.relay != nil)
}

func (r *Room) unpublish(p *Participant, up *sfu.UpTrack) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unpublishLocked(p, up)
}

// unpublishLocked takes up out of p's tracks (r.mu held).
func (r *Room) unpublishLocked(p *Participant, up *sfu.UpTrack) {
	found := false
	for i, t := range p.tracks {
		if t == up {
			p.tracks = append(p.tracks[:i:i], p.tracks[i+1:]...)
			found = true
			break
		}
	}
	if !found || p.left {
		return
	}
	ev := TrackUnpublished{Participant: p.id, TrackID: up.ID()}
	for _, o := range r.order {
		if o != p {
			o.peer.Unsubscribe(up)
			o.client.Notify(ev)
		}
	}
	info := p.trackInfo(up)
	if p.relay == nil {
		r.mgr.emit(Change{Kind: ChangeTrackUnpublished, Room: r.name, Participant: p.changed(), Track: &info})
		r.eachRelayLocked(func(rl *Relay) { rl.leg.peer.Unsubscribe(up) })
	}
	if r.rec != nil {
		r.rec.TrackUnpublished(p.id, up)
	}
	r.refollowLocked()
	r.mgr.log.Info("track unpublished", "room", r.name, "participant", p.id, "track", up.ID())
}

// forwardData enforces the data limits and sends the message to every
// other member, tagged with the sender's id.
func (r *Room) forwardData(p *Participant, d sfu.DataMessage) {
	lim := r.mgr.limits
	r.mu.Lock()
	allowed, left := p.perm.PublishData, p.left
	r.mu.Unlock()
	if left {
		return
	}
	if !allowed {
		p.peer.CountDrop(sfu.DropDataNotAllowed)
		p.notifyThrottled(ErrDataNotAllowed)
		return
	}
	if !p.rate.Allow() {
		p.peer.CountDrop(sfu.DropDataRate)
		p.notifyThrottled(fmt.Errorf("%w: limit %.0f/s", ErrDataRate, lim.DataRate))
		return
	}
	r.mu.Lock()
	if p.left {
		r.mu.Unlock()
		return
	}
	others := make([]*Participant, 0, len(r.order))
	for _, o := range r.order {
		if o != p {
			others = append(others, o)
		}
	}
	if len(r.relays) > 0 {
		f := relayFrame{from: p.id, msg: sfu.DataMessage{Data: bytes.Clone(d.Data), IsString: d.IsString}}
		r.eachRelayLocked(func(rl *Relay) { rl.queueLocked(f) })
	}
	r.mu.Unlock()
	for _, o := range others {
		_ = o.peer.SendData(p.id, d) // counted by sfu; a subscriber without a channel misses it
	}
}

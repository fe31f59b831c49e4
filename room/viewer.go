package room

// Viewers: a WHEP viewer (Watch) is a Participant whose Peer plays back
// (sfu.PeerConfig.Playback) one audio and one video track of the room: the
// active speaker's, or one participant's. It publishes nothing and
// subscribes to nothing. Unless listed, it is in no member's list and
// hears of nothing: it lives in Room.viewers, not in members and order.
// Its sources are chosen again, under the room's mu, whenever what it
// may watch changes: a track published or unpublished, a member gone, the
// active speaker changed (refollowLocked).

import (
	"cmp"
	"slices"

	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/sfu"
)

// viewing is what a viewer watches.
type viewing struct {
	// target is the participant it watches, by participant id or
	// identity; "" follows the active speaker.
	target string
	listed bool // a member the others see (with no tracks)
}

// Watch adds a viewer to roomName (created if need be): target names the
// participant to watch, by participant id or identity, or "" for the
// active speaker, whose audio and video it then follows (video switching at
// a keyframe). A listed viewer is a member the others see join and leave,
// with no tracks; an unlisted one is seen only by the operator, in the
// logs and metrics (not in the admin API's listings). who.Perm is ignored: a viewer publishes nothing. Errors
// are Join's; unlisted viewers of a room are limited to
// Limits.MaxParticipants apart from its members (ErrRoomFull).
func (m *Manager) Watch(roomName string, who Member, target string, listed bool, c Client) (*Participant, error) {
	who.Perm = Permissions{}
	return m.join(roomName, who, c, &viewing{target: target, listed: listed})
}

// Watching reports what p watches: "" for the active speaker, else the
// participant id or identity it was given; ok is false for a member.
func (p *Participant) Watching() (target string, ok bool) {
	if p.view == nil {
		return "", false
	}
	return p.view.target, true
}

// hidden: an unlisted viewer.
func (p *Participant) hidden() bool { return p.view != nil && !p.view.listed }

// addViewerLocked adds an unlisted viewer (r.mu held).
func (r *Room) addViewerLocked(p *Participant) error {
	if len(r.viewers) >= r.mgr.limits.MaxParticipants {
		return ErrRoomFull
	}
	p.room = r
	r.viewers = append(r.viewers, p)
	r.mgr.log.Info("viewer joined", "room", r.name, "participant", p.id, "name", p.name, "watching", p.view.target,
		"viewers", len(r.viewers))
	r.followLocked(p)
	return nil
}

// removeViewerLocked takes an unlisted viewer out (r.mu held).
func (r *Room) removeViewerLocked(p *Participant) {
	r.viewers = slices.DeleteFunc(r.viewers, func(o *Participant) bool { return o == p })
}

// viewer finds an unlisted viewer by id (r.mu held).
func (r *Room) viewer(id string) *Participant {
	for _, v := range r.viewers {
		if v.id == id {
			return v
		}
	}
	return nil
}

// refollowLocked chooses every viewer's sources again (r.mu held).
func (r *Room) refollowLocked() {
	for _, v := range r.viewers {
		r.followLocked(v)
	}
	for _, o := range r.order {
		if o.view != nil {
			r.followLocked(o)
		}
	}
}

// followLocked gives viewer v its sources, best first (sfu.Peer.Follow
// takes, per kind, the first its tracks can carry): for a target, that
// member's tracks; for the room, the active speaker's, then what v plays
// now if it is still published, then everyone's in join order. Within a
// member, a camera before a screen share. r.mu held.
func (r *Room) followLocked(v *Participant) {
	var ups []*sfu.UpTrack
	everyone := r.everyoneLocked() // the other nodes' members too
	add := func(o *Participant) {
		tracks := slices.Clone(o.tracks)
		slices.SortStableFunc(tracks, func(a, b *sfu.UpTrack) int {
			return cmp.Compare(screenRank(o, a), screenRank(o, b))
		})
		ups = append(ups, tracks...)
	}
	if t := v.view.target; t != "" {
		for _, o := range everyone {
			if o.view == nil && (o.id == t || o.identity == t) {
				add(o)
				break
			}
		}
		v.peer.Follow(ups...)
		return
	}
	if s := r.findLocked(r.speaker.current); s != nil { // on any node
		add(s)
	}
	audio, video := v.peer.PlaybackSources()
	for _, o := range everyone {
		for _, up := range o.tracks {
			if up == audio || up == video {
				ups = append(ups, up)
			}
		}
	}
	for _, o := range everyone {
		add(o)
	}
	v.peer.Follow(ups...)
}

// screenRank orders a member's tracks for a viewer: 1 for a screen share
// (as its publisher declared it), else 0.
func screenRank(o *Participant, up *sfu.UpTrack) int {
	src := o.meta[up.RemoteID()].Source
	if up.Kind() == webrtc.RTPCodecTypeVideo && src == "screen" || src == "screen-audio" {
		return 1
	}
	return 0
}

// HasMember reports whether roomName has a member whose participant id or
// identity is target (viewers aside).
func (m *Manager) HasMember(roomName, target string) bool {
	r := m.room(roomName)
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.order {
		if o.view == nil && (o.id == target || o.identity == target) {
			return true
		}
	}
	return false
}

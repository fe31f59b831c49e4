package room

// Views: how the members of a node show the other nodes' videos, sent to
// each track's node ("view" control messages, Room.sendViews) so that its
// relay sends only the simulcast layers needed here, and nothing while
// nobody shows a video (docs/cluster.md, "Simulcast"). Room.viewsMu
// orders the senders; the rest is under Room.mu.

import (
	"encoding/json"
	"slices"

	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/sfu"
)

// onView takes a "view" from the other node: how its members show one of
// this node's tracks. The relay's DownTracks follow it
// (sfu.Peer.SetViewport): a simulcast track's layers up to the one the
// largest tile needs cross, the others pause; nothing crosses while nobody
// shows it.
func (rl *Relay) onView(leg *relayLeg, c relayControl) {
	if c.Width < 0 || c.Height < 0 || c.Width > 16384 || c.Height > 16384 {
		return
	}
	r := rl.room
	r.mu.Lock()
	var up *sfu.UpTrack
	for _, p := range r.order {
		for _, t := range p.tracks {
			if t.ID() == c.Track {
				up = t
			}
		}
	}
	current := rl.leg == leg
	r.mu.Unlock()
	if up != nil && current {
		leg.peer.SetViewport(up, c.Width, c.Height, c.Visible)
	}
}

// viewResend: every viewResend-th call (seconds, from the speaker loop)
// sends every view again, changed or not, in case one was lost or came
// out of order.
const viewResend = 5

// view is what a node's members show of a relayed video: the largest
// visible tile (0 unknown), and whether any shows it.
type view struct {
	Width, Height int
	Visible       bool
}

// relayedLocked reports whether up came by a relay (r.mu held).
func (r *Room) relayedLocked(up *sfu.UpTrack) bool {
	for _, p := range r.remote {
		if slices.Contains(p.tracks, up) {
			return true
		}
	}
	return false
}

// sendViews tells every other node how the members here show its tracks
// (a "view" per relayed video track, when it changed): the largest tile
// (0 if one shows it with no size hint), and whether any shows it. Called
// on a viewport hint for a relayed track and every QualityInterval (a
// subscriber that left), with no room lock held.
func (r *Room) sendViews() {
	type out struct {
		peer *sfu.Peer
		msg  []byte
	}
	var sends []out
	r.viewsMu.Lock() // one sender at a time: views go out in the order computed
	defer r.viewsMu.Unlock()
	r.mu.Lock()
	r.viewRound++
	resend := r.viewRound%viewResend == 0
	// A viewer or a recorder takes whatever comes: every video, best layer.
	everything := len(r.viewers) > 0 || r.rec != nil ||
		slices.ContainsFunc(r.order, func(o *Participant) bool { return o.view != nil })
	for _, rl := range r.relays {
		if rl.ended || rl.leg == nil {
			continue
		}
		for _, p := range rl.proxies {
			for _, up := range p.tracks {
				if up.Kind() != webrtc.RTPCodecTypeVideo {
					continue
				}
				v := view{}
				unknown := false
				for _, o := range r.order {
					w, h, visible, ok := o.peer.Viewport(up)
					if !ok || !visible {
						continue
					}
					v.Visible = true
					unknown = unknown || w == 0 || h == 0
					v.Width, v.Height = max(v.Width, w), max(v.Height, h)
				}
				if everything {
					v.Visible = true
				}
				if unknown || everything || !v.Visible {
					v.Width, v.Height = 0, 0
				}
				if last, ok := rl.views[up.ID()]; ok && last == v && !resend {
					continue
				}
				rl.views[up.ID()] = v
				b, _ := json.Marshal(relayControl{Type: "view", Track: up.ID(), Width: v.Width, Height: v.Height, Visible: v.Visible})
				sends = append(sends, out{rl.leg.peer, b})
			}
		}
	}
	r.mu.Unlock()
	for _, s := range sends {
		_ = s.peer.SendData("", sfu.DataMessage{Data: s.msg, IsString: true})
	}
}

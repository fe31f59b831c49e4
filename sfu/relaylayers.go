package sfu

// Simulcast across a relay between nodes (docs/cluster.md, "Simulcast"):
// the end that sends a simulcast track sends each of its layers as a track
// of its own, a DownTrack pinned to that layer on an m-line of its own,
// whose msid track id is the track's id, relayLayerSep and the layer's
// rid. The receiving end puts the layers back together as one simulcast
// UpTrack (publish.go), whose subscribers there choose among them as they
// would among a publisher's. The sending end pauses the layers no member
// on the other node needs: those above the one the largest tile there asks
// for. A DownTrack's pin and its set are written before it is published
// (subscribe, on the run goroutine) and only read afterwards.

import "time"

// relayLayerSep joins a relayed layer's track id and rid in its msid.
const relayLayerSep = "~"

// relayPins returns the layers a subscription of up carries, one
// DownTrack each: every announced layer of a simulcast track when the Peer
// is a relay's, else one DownTrack that follows the policy ("").
func relayPins(relay bool, up *UpTrack) []string {
	if !relay || !up.simulcast || len(up.rids) < 2 {
		return []string{""}
	}
	return up.rids
}

// pinTo makes d forward only the layer of rid, under an id that names it.
func (d *DownTrack) pinTo(rid string) {
	d.pin = rid
	d.id += relayLayerSep + rid
	d.decide(0, time.Now())
}

// pinned finds d's pinned layer among layers (nil: it has not arrived).
func (d *DownTrack) pinned(layers []*layer) *layer {
	for _, l := range layers {
		if l.rid == d.pin {
			return l
		}
	}
	return nil
}

// setRelayView applies a view from the other node to the layers of up a
// relay sends (set): none while nothing shows the track; else every layer
// up to the smallest that fills the largest tile there (every layer for
// a tile of unknown size), so that each subscriber there can take the
// layer its own tile and bandwidth allow.
func setRelayView(up *UpTrack, set []*DownTrack, width, height int, visible bool) {
	layers := *up.layers.Load()
	var views [maxLayers]layerView
	n := min(len(layers), maxLayers)
	for i, l := range layers[:n] {
		views[i] = layerView{width: int(l.width.Load()), height: int(l.height.Load())}
	}
	top := viewportRank(views[:n], width, height)
	for _, d := range set {
		need := visible
		if l := d.pinned(layers); need && l != nil && top >= 0 {
			for i := top + 1; i < n; i++ {
				need = need && layers[i] != l
			}
		}
		d.SetPaused(!need)
	}
}

// hasLayer reports whether u has a layer of rid.
func (u *UpTrack) hasLayer(rid string) bool {
	for _, l := range *u.layers.Load() {
		if l.rid == rid {
			return true
		}
	}
	return false
}

package sfu

// The simulcast layer policy, as pure functions and one small state struct
// (STYLE.md §12): which layer each subscriber gets, and in which order a
// track's layers rank. Nothing here touches pion, atomics or goroutines;
// DownTrack.decide feeds it and applies its choice, and the step tables in
// layerpolicy_test.go pin its behaviour.

import (
	"slices"
	"time"
)

// Tuning of the layer policy.
const (
	// layerStall: a layer without a packet for this long is not sent
	// (browsers stop layers under CPU or bandwidth pressure, apps set
	// active: false); subscribers on it go to the next live layer down.
	layerStall = 750 * time.Millisecond
	// viewportSlack: a layer covers a tile if it is at least 90 % of the
	// tile's width and height.
	viewportSlack = 10 // per cent
	// downAfter: the current layer must exceed the bandwidth share this
	// long before the subscriber goes down.
	downAfter = time.Second
	// upMargin: the next layer up must fit the share with this much spare
	// (per cent of the share it may use).
	upMargin = 85
	// probeHeadroom: the share must exceed the current layer's bitrate by
	// this much (per cent) to try the next layer up without fitting it (a
	// probe: an estimate rarely grows far above what is actually sent).
	probeHeadroom = 120
	// upHoldMin, upHoldMax: an up move must be justified this long; each
	// move undone within upUndone doubles it, up to upHoldMax, and one that
	// holds brings it back to upHoldMin.
	upHoldMin = 2 * time.Second
	upHoldMax = 8 * time.Second
	upUndone  = 3 * time.Second
	// probeGrace: after a probe, the new layer is kept above the estimate
	// while the estimate has not fallen below its value when the probe
	// began (pion's GCC grows toward what is sent by 5-8 % a step).
	probeGrace = 4 * time.Second
)

// layerView is what the policy knows of one layer at one moment.
type layerView struct {
	width, height int  // from its last keyframe, 0 unknown
	bitrate       int  // bits per second, 0 unknown
	live          bool // a packet arrived within layerStall
}

// layerPolicy is one subscriber's choice among the layers of one track. The
// views it gets are ranked, lowest first; a rank is a position in them.
type layerPolicy struct {
	// budget is the highest rank the bandwidth allows, -1 no limit.
	budget int
	// hysteresis of the budget
	upSince, overSince, upAt time.Time
	upHold                   time.Duration
	probeUntil               time.Time // a probe's grace ends
	probeBits                int       // the share when the probe began
}

func newLayerPolicy() layerPolicy { return layerPolicy{budget: -1} }

// choose returns the rank of the layer to forward given the layers, the
// tile (width x height in pixels, 0x0 no hint) and the subscriber's
// bandwidth share for this track in bits per second (0: no estimate, no
// bandwidth limit). It is the smallest layer covering the tile, capped by
// the bandwidth, skipping layers that stopped: the best live layer at or
// below that, else the lowest live one above it. -1 when no layer is live.
func (p *layerPolicy) choose(layers []layerView, width, height, share int, now time.Time) int {
	if len(layers) == 0 {
		return -1
	}
	if share > 0 {
		p.allocate(layers, share, now)
	}
	top := len(layers) - 1
	want := viewportRank(layers, width, height)
	if want < 0 {
		want = top
	}
	if p.budget >= 0 && p.budget < want {
		want = p.budget
	}
	for i := min(want, top); i >= 0; i-- {
		if layers[i].live {
			return i
		}
	}
	for i := want + 1; i <= top; i++ {
		if layers[i].live {
			return i
		}
	}
	return -1
}

// allocate moves the budget to what the share allows. It goes down when the
// current layer's bitrate has exceeded the share for downAfter, to the best
// layer that fits. It goes up one layer when the next one fits with
// upMargin, or as a probe when the share has stayed probeHeadroom above the
// current layer's bitrate; either must hold for upHold. Stopped layers are
// left out.
func (p *layerPolicy) allocate(all []layerView, share int, now time.Time) {
	var live []int // ranks of live layers
	for i, l := range all {
		if l.live {
			live = append(live, i)
		}
	}
	if len(live) < 2 {
		return
	}
	cur := p.budget
	if cur < 0 {
		cur = live[len(live)-1]
	}
	curRank, next := live[0], -1
	for _, r := range live {
		if r <= cur {
			curRank = r
		} else if next < 0 {
			next = r
		}
	}
	curRate := all[curRank].bitrate
	if p.upHold == 0 || !p.upAt.IsZero() && now.Sub(p.upAt) >= upUndone {
		p.upHold, p.upAt = upHoldMin, time.Time{}
	}
	switch {
	case curRate > share && curRank != live[0]:
		p.upSince = time.Time{}
		if now.Before(p.probeUntil) && share >= p.probeBits {
			p.overSince = time.Time{}
			return
		}
		p.probeUntil = time.Time{}
		if p.overSince.IsZero() {
			p.overSince = now
			return
		}
		if now.Sub(p.overSince) < downAfter {
			return
		}
		fit := live[0]
		for _, r := range live {
			if b := all[r].bitrate; b > 0 && b <= share {
				fit = r
			}
		}
		p.budget = fit
		p.overSince = time.Time{}
		if !p.upAt.IsZero() && now.Sub(p.upAt) < upUndone {
			p.upHold = min(2*p.upHold, upHoldMax)
		}
		p.upAt = time.Time{} // an undone move must not count as one that held
	case next >= 0 && (all[next].bitrate*100 <= share*upMargin || curRate > 0 && share*100 >= curRate*probeHeadroom):
		p.overSince = time.Time{}
		if p.upSince.IsZero() {
			p.upSince = now
		} else if now.Sub(p.upSince) >= p.upHold {
			p.budget = next
			p.upSince, p.upAt = time.Time{}, now
			if all[next].bitrate*100 > share*upMargin {
				p.probeUntil, p.probeBits = now.Add(probeGrace), share
			}
		}
	default:
		p.upSince, p.overSince = time.Time{}, time.Time{}
	}
}

// viewportRank returns the rank of the smallest layer whose frame size
// covers width x height (within viewportSlack), -1 (the highest) when there
// is no hint or none does. A layer whose size is unknown yet counts as half
// the next one up (the usual 1:2:4 simulcast), or twice the next one down
// when only smaller ones are known.
func viewportRank(layers []layerView, width, height int) int {
	if width <= 0 && height <= 0 {
		return -1
	}
	var sizes [maxLayers][2]int
	n := min(len(layers), maxLayers)
	for i := n - 1; i >= 0; i-- {
		w, h := layers[i].width, layers[i].height
		if (w == 0 || h == 0) && i+1 < n {
			w, h = sizes[i+1][0]/2, sizes[i+1][1]/2
		}
		sizes[i] = [2]int{w, h}
	}
	for i := 1; i < n; i++ {
		if sizes[i][0] == 0 {
			sizes[i] = [2]int{sizes[i-1][0] * 2, sizes[i-1][1] * 2}
		}
	}
	for i := 0; i < n; i++ {
		w, h := sizes[i][0], sizes[i][1]
		if w > 0 && h > 0 && w*100 >= width*(100-viewportSlack) && h*100 >= height*(100-viewportSlack) {
			return i
		}
	}
	return -1
}

// maxLayers bounds the layers of one track that are ranked and chosen
// among: RFC 8853 simulcast from browsers has at most three.
const maxLayers = 4

// rankInfo is what ranks a layer: what it carries, then what its rid
// suggests, then when it arrived.
type rankInfo struct {
	sent    bool // a packet arrived
	area    int  // width x height from its last keyframe, 0 unknown
	bitrate int  // bits per second, 0 unknown
	guess   int  // from its rid (ridGuess)
	arrival int  // order of arrival
}

// rankLayers returns the order of layers, lowest first, as indexes into
// infos. Layers that sent nothing yet rank last. The others rank by frame
// size when every one of them has announced one, else by bitrate when every
// one has one, else by what their rids suggest; ties by the rid's
// suggestion, then arrival. Names and arrival order only break ties: a
// publisher may call its largest layer "q" or start it first. (Each of
// these is a total order on the whole set, so the sort is consistent.)
func rankLayers(infos []rankInfo) []int {
	allArea, allRate := true, true
	for _, x := range infos {
		if x.sent {
			allArea = allArea && x.area > 0
			allRate = allRate && x.bitrate > 0
		}
	}
	order := make([]int, len(infos))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		x, y := infos[a], infos[b]
		switch {
		case x.sent != y.sent:
			if x.sent {
				return -1
			}
			return 1
		case x.sent && allArea && x.area != y.area:
			return x.area - y.area
		case x.sent && !allArea && allRate && x.bitrate != y.bitrate:
			return x.bitrate - y.bitrate
		case x.guess != y.guess:
			return x.guess - y.guess
		}
		return x.arrival - y.arrival
	})
	return order
}

// ridGuess ranks a rid by the names browsers and libraries use for low,
// middle and high (q/h/f, l/m/h, 0/1/2, r0/r1/r2); other rids rank above.
func ridGuess(rid string) int {
	switch rid {
	case "", "q", "l", "0", "r0", "low":
		return 0
	case "h", "m", "1", "r1", "mid", "medium":
		return 1
	case "f", "2", "r2", "high":
		return 2
	}
	return 3
}

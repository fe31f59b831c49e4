package sfu

import (
	"slices"
	"testing"
	"time"
)

// Three layers as browsers send them: 320x180 at 150 kbit/s, 640x360 at
// 500 kbit/s, 1280x720 at 1.5 Mbit/s, all live unless a step says.
func views(live ...bool) []layerView {
	v := []layerView{{320, 180, 150_000, true}, {640, 360, 500_000, true}, {1280, 720, 1_500_000, true}}
	for i, l := range live {
		v[i].live = l
	}
	return v
}

// The layer policy as a subscriber lives it: each step is one decision,
// dt after the previous one, with the layers as they are, the tile and the
// bandwidth share; want is the rank chosen.
func TestLayerPolicySteps(t *testing.T) {
	type step struct {
		dt     time.Duration
		layers []layerView
		w, h   int
		share  int
		want   int
		why    string
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"tile and liveness", []step{
			{0, views(), 0, 0, 0, 2, "no hint, no estimate: the top"},
			{0, views(), 640, 360, 0, 1, "a 640x360 tile: the middle"},
			{0, views(), 600, 340, 0, 1, "within 10 % still the middle"},
			{0, views(), 720, 405, 0, 2, "over 10 % larger than the middle: the top"},
			{0, views(), 160, 90, 0, 0, "a small tile: the lowest"},
			{0, views(true, false, true), 640, 360, 0, 0, "the middle stopped: the next live one down"},
			{0, views(false, false, true), 640, 360, 0, 2, "only the top is live: it, above the tile"},
			{0, views(false, false, false), 640, 360, 0, -1, "nothing live: nothing"},
			{0, views(true, true, false), 0, 0, 0, 1, "no hint, the top stopped: the middle"},
			{0, views(), 0, 0, 0, 2, "the top is back"},
		}},
		{"down after a second over budget, up after the hold", []step{
			{0, views(), 0, 0, 2_000_000, 2, "1.5 Mbit/s fits 2 Mbit/s"},
			{250 * time.Millisecond, views(), 0, 0, 600_000, 2, "over budget: not yet"},
			{500 * time.Millisecond, views(), 0, 0, 600_000, 2, "over budget for 0.5 s: not yet"},
			{500 * time.Millisecond, views(), 0, 0, 600_000, 1, "over budget for 1 s: the best that fits"},
			{250 * time.Millisecond, views(), 0, 0, 600_000, 1, "the middle fits"},
			{250 * time.Millisecond, views(), 0, 0, 2_000_000, 1, "room for the top: hold"},
			{time.Second, views(), 0, 0, 2_000_000, 1, "held 1 s"},
			{time.Second, views(), 0, 0, 2_000_000, 2, "held 2 s: up"},
		}},
		{"a budget never goes below what the tile wants", []step{
			{0, views(), 320, 180, 100_000, 0, "a small tile under a tiny share: the lowest"},
			{2 * time.Second, views(), 320, 180, 100_000, 0, "the lowest is the floor"},
		}},
		{"a probe is kept while the estimate grows, undone when it falls", []step{
			{0, views(), 0, 0, 400_000, 2, "over budget from now"},
			{time.Second, views(), 0, 0, 400_000, 0, "a second over: the lowest (the middle does not fit)"},
			{250 * time.Millisecond, views(), 0, 0, 190_000, 0, "27 % above the lowest"},
			{2 * time.Second, views(), 0, 0, 190_000, 1, "a probe: the middle"},
			{time.Second, views(), 0, 0, 200_000, 1, "the estimate grows: kept"},
			{time.Second, views(), 0, 0, 180_000, 1, "it fell: over for the first time"},
			{time.Second, views(), 0, 0, 180_000, 0, "a second over: down"},
		}},
		{"a stopped layer is no budget step", []step{
			{0, views(true, false, true), 0, 0, 2_000_000, 2, "the middle stopped"},
			{time.Second, views(true, false, true), 0, 0, 600_000, 2, "over"},
			{time.Second, views(true, false, true), 0, 0, 600_000, 0, "down past the stopped middle"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newLayerPolicy()
			now := time.Unix(1000, 0)
			for i, st := range tc.steps {
				now = now.Add(st.dt)
				if got := p.choose(st.layers, st.w, st.h, st.share, now); got != st.want {
					t.Fatalf("step %d (%s): layer %d, want %d (budget %d)", i, st.why, got, st.want, p.budget)
				}
			}
		})
	}
}

// An up move undone within upUndone doubles the hold before the next one.
func TestLayerPolicyHoldGrowsWhenUndone(t *testing.T) {
	p := newLayerPolicy()
	now := time.Unix(1000, 0)
	tick := func(d time.Duration, share int) int {
		now = now.Add(d)
		return p.choose(views(), 0, 0, share, now)
	}
	tick(0, 600_000)
	tick(time.Second, 600_000)
	if got := tick(time.Second, 600_000); got != 1 {
		t.Fatalf("layer %d, want 1", got)
	}
	tick(0, 2_000_000)
	if got := tick(upHoldMin, 2_000_000); got != 2 {
		t.Fatalf("after %v: layer %d, want 2", upHoldMin, got)
	}
	tick(250*time.Millisecond, 600_000) // undone at once
	if got := tick(time.Second, 600_000); got != 1 {
		t.Fatalf("layer %d, want 1 after being undone", got)
	}
	tick(0, 2_000_000)
	if got := tick(upHoldMin, 2_000_000); got != 1 {
		t.Errorf("up again after %v, want the doubled hold", upHoldMin)
	}
	if got := tick(upHoldMin, 2_000_000); got != 2 {
		t.Errorf("not up after %v: layer %d", 2*upHoldMin, got)
	}
}

func TestViewportRank(t *testing.T) {
	unknown := []layerView{{0, 0, 0, true}, {0, 0, 0, true}, {1280, 720, 0, true}}
	lowOnly := []layerView{{320, 180, 0, true}, {0, 0, 0, true}, {0, 0, 0, true}}
	for _, tc := range []struct {
		layers []layerView
		w, h   int
		want   int
	}{
		{views(), 0, 0, -1},
		{views(), 320, 180, 0},
		{views(), 321, 181, 0}, // within 10 %
		{views(), 360, 200, 1},
		{views(), 1280, 720, 2},
		{views(), 1920, 1080, -1},
		{unknown, 640, 360, 1}, // half of the top's size, inferred
		{unknown, 320, 180, 0},
		{lowOnly, 640, 360, 1}, // twice the lowest, inferred
		{lowOnly, 1280, 720, 2},
	} {
		if got := viewportRank(tc.layers, tc.w, tc.h); got != tc.want {
			t.Errorf("%v, tile %dx%d: rank %d, want %d", tc.layers, tc.w, tc.h, got, tc.want)
		}
	}
}

func TestRankLayers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		infos []rankInfo
		want  []int // indexes, lowest first
	}{
		{"by size, whatever the names", []rankInfo{
			{sent: true, area: 1280 * 720, guess: 0}, {sent: true, area: 640 * 360, guess: 1}, {sent: true, area: 320 * 180, guess: 2}}, []int{2, 1, 0}},
		{"by bitrate while a size is unknown", []rankInfo{
			{sent: true, area: 1280 * 720, bitrate: 1_500_000, guess: 0}, {sent: true, bitrate: 150_000, guess: 2},
			{sent: true, area: 640 * 360, bitrate: 500_000, guess: 1}}, []int{1, 2, 0}},
		{"equal sizes: names", []rankInfo{
			{sent: true, area: 100, bitrate: 900_000, guess: 1}, {sent: true, area: 100, bitrate: 300_000, guess: 0}}, []int{1, 0}},
		{"nothing known: names", []rankInfo{
			{sent: true, guess: ridGuess("f"), arrival: 0}, {sent: true, guess: ridGuess("q"), arrival: 1},
			{sent: true, guess: ridGuess("h"), arrival: 2}}, []int{1, 2, 0}},
		{"unknown names: arrival", []rankInfo{
			{sent: true, guess: ridGuess("x"), arrival: 1}, {sent: true, guess: ridGuess("y"), arrival: 0}}, []int{1, 0}},
		{"a layer that sent nothing ranks last", []rankInfo{
			{sent: false, guess: ridGuess("q")}, {sent: true, area: 1280 * 720, guess: ridGuess("f")},
			{sent: true, area: 320 * 180, guess: ridGuess("h")}}, []int{2, 1, 0}},
		// The cycle a pairwise rule made: a large "q", a small "f" and an
		// unknown "h" (B<A by size, A<C and C<B by name).
		{"no cycle between size and names", []rankInfo{
			{sent: true, area: 1280 * 720, guess: ridGuess("q")}, {sent: true, area: 320 * 180, guess: ridGuess("f")},
			{sent: true, guess: ridGuess("h")}}, []int{0, 2, 1}},
	} {
		if got := rankLayers(tc.infos); !slices.Equal(got, tc.want) {
			t.Errorf("%s: order %v, want %v", tc.name, got, tc.want)
		}
	}
}

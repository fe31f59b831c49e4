package e2e

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roundtable-sfu/roundtable/internal/client"
)

// Simulcast: a publisher sends three layers (320x180, 640x360, 1280x720).
// A subscriber without a hint gets the top layer; a small tile gets the
// lowest, a large one the top again; every switch starts with a keyframe of
// the new layer, and the sequence numbers the subscriber sees stay
// continuous throughout.
func TestSimulcastLayerFollowsTileSize(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 40*time.Second)
	s.joinWith(ctx, client.Config{Room: "sim", Name: "pub", Video: 1, Simulcast: true, KeyframeInterval: 10 * time.Minute})
	sub := s.join(ctx, "sim", "sub", 0, 0)
	waitFor(t, ctx, "video", func() bool { v := videoTrack(sub); return v != nil && v.Stats().Packets > 30 })
	v := videoTrack(sub)
	waitFor(t, ctx, "the top layer by default", func() bool { return v.Stats().Layer == 2 })

	steps := []struct {
		w, h  int
		layer int
	}{{320, 180, 0}, {600, 340, 1}, {1280, 720, 2}, {160, 90, 0}}
	for _, st := range steps {
		start := time.Now()
		if err := sub.SetViewport(v.TrackID, st.w, st.h, true); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, "layer switch", func() bool { return v.Stats().Layer == st.layer })
		t.Logf("tile %dx%d: layer %d after %v", st.w, st.h, st.layer, time.Since(start))
		if d := time.Since(start); d > time.Second {
			t.Errorf("switch to layer %d took %v, want < 1s", st.layer, d)
		}
		time.Sleep(300 * time.Millisecond)
	}
	stats := v.Stats()
	if stats.LayerChanges != len(steps)+1 && stats.LayerChanges < len(steps) {
		t.Errorf("%d layer changes, want %d", stats.LayerChanges, len(steps))
	}
	if stats.BadSwitches != 0 {
		t.Errorf("%d switches did not start with a keyframe", stats.BadSwitches)
	}
	if stats.SeqGaps != 0 || stats.Missing != 0 || stats.Dups != 0 || stats.Bad != 0 {
		t.Errorf("not one continuous stream: %d gaps, %d missing, %d duplicates, %d bad payloads",
			stats.SeqGaps, stats.Missing, stats.Dups, stats.Bad)
	}
	if n := s.Engine.Stats().LayerSwitches.Load(); n < uint64(len(steps)) {
		t.Errorf("server counted %d layer switches", n)
	}
}

// Simulcast under a capped link (issue 4, test 2): a subscriber behind
// 400 kbit/s is moved to the lowest layer (240 kbit/s) within 5 s, and the
// server then sends it no more than the cap (counted where the server
// writes, before the shaped link); within 15 s of lifting the cap it is
// back on the top layer (measured 9.2-9.4 s; RT_TRACE=1 logs the
// timeline). Every switch starts with a keyframe and the stream stays
// continuous. The other subscriber stays on the top layer throughout.
func TestSimulcastFollowsBandwidth(t *testing.T) {
	checkGoroutines(t)
	link := &impairFactory{}
	link.rate.Store(400_000)
	link.target.Store(1) // the capped subscriber's PeerConnection
	s := startServer(t, withInterceptor(link))
	ctx := testContext(t, 60*time.Second)
	s.joinWith(ctx, client.Config{Room: "simbw", Name: "pub", Video: 1, Simulcast: true, KeyframeInterval: 10 * time.Minute})
	capped, free := s.join(ctx, "simbw", "capped", 0, 0), s.join(ctx, "simbw", "free", 0, 0)
	for _, c := range []*client.Client{capped, free} {
		c := c
		waitFor(t, ctx, "video", func() bool { return videoTrack(c) != nil })
	}
	cv, fv := videoTrack(capped), videoTrack(free)
	start := time.Now()
	if os.Getenv("RT_TRACE") == "2" {
		go func() {
			for i := 0; i < 30 && ctx.Err() == nil; i++ {
				t.Logf("capped phase %5.1fs layer %d dropped %d %v", time.Since(start).Seconds(), cv.Stats().Layer, link.dropped.Load(), s.Engine.EstimateDetails())
				time.Sleep(500 * time.Millisecond)
			}
		}()
	}
	// Like everyone, it starts on the top layer (a subscriber that came
	// while the layers were still arriving may see the lowest first).
	waitFor(t, ctx, "the capped subscriber on the top layer first", func() bool { return cv.Stats().Layer == 2 })
	// On the lowest layer because of the cap: with the estimate under it
	// (a CI run saw a moment on the lowest layer before any estimate had
	// dropped, then measured the climb back).
	waitFor(t, ctx, "the capped subscriber on the lowest layer", func() bool {
		return cv.Stats().Layer == 0 && len(s.Engine.Estimates()) > 0 && slices.Min(s.Engine.Estimates()) < 400_000
	})
	t.Logf("lowest layer after %v; estimates %v", time.Since(start), s.Engine.Estimates())
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("reached the lowest layer after %v, want < 5s", d)
	}
	time.Sleep(time.Second) // settle, then measure what the server sends
	o0, b0, t0 := link.offered.Load(), cv.Stats().Bytes, time.Now()
	time.Sleep(3 * time.Second)
	secs := time.Since(t0).Seconds()
	sent, got := float64(link.offered.Load()-o0)*8/secs, float64(cv.Stats().Bytes-b0)*8/secs
	t.Logf("the server sends the capped subscriber %.0f kbit/s (RTP); it receives %.0f kbit/s (payload)", sent/1000, got/1000)
	if sent > 400_000 {
		t.Errorf("the server sends the capped subscriber %.0f bit/s, over the 400 kbit/s cap", sent)
	}
	if fv.Stats().Layer != 2 {
		t.Errorf("the free subscriber is on layer %d, want 2", fv.Stats().Layer)
	}

	link.rate.Store(0) // lift the cap
	start = time.Now()
	if os.Getenv("RT_TRACE") != "" {
		go func() {
			for i := 0; i < 60 && ctx.Err() == nil; i++ {
				st := cv.Stats()
				t.Logf("%5.1fs layer %d pk %d gaps %d miss %d dups %d drop %d est %v %v", time.Since(start).Seconds(), st.Layer, st.Packets, st.SeqGaps, st.Missing, st.Dups, link.dropped.Load(), s.Engine.Estimates(), s.Engine.EstimateDetails())
				time.Sleep(500 * time.Millisecond)
			}
		}()
	}
	waitFor(t, ctx, "the top layer again", func() bool { return cv.Stats().Layer == 2 })
	t.Logf("top layer after %v; estimates %v", time.Since(start), s.Engine.Estimates())
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("back on the top layer after %v, want < 15s", d)
	}
	// (A switch's first keyframe packet may be lost on the shaped link and
	// repaired later, so keyframe-first is checked in the lossless test.)
	if st := cv.Stats(); st.LayerChanges < 2 {
		t.Errorf("%d layer changes, want at least 2", st.LayerChanges)
	}
	if st := fv.Stats(); st.BadSwitches != 0 {
		t.Errorf("the free subscriber saw %d switches not at a keyframe", st.BadSwitches)
	}
}

// simulcastLayer returns the publisher's local track of the layer whose rid
// is rid.
func simulcastLayer(t *testing.T, pub *client.Client, rid string) *client.LocalTrack {
	t.Helper()
	for _, l := range pub.Local() {
		if l.RID() == rid {
			return l
		}
	}
	t.Fatalf("no layer %q", rid)
	return nil
}

// Layers come and go (issue 10, input 4): when the publisher stops the
// layer a subscriber is on (a browser under CPU or bandwidth pressure, an
// app's active: false) while the others flow, the subscriber gets the next
// live layer down within about a second and a half, starting at a
// keyframe; when the layer comes back, so does the subscriber. The stream
// stays one continuous sequence throughout.
func TestSimulcastFollowsLayersThatStop(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 60*time.Second)
	pub := s.joinWith(ctx, client.Config{Room: "stop", Name: "pub", Video: 1, Simulcast: true, KeyframeInterval: 10 * time.Minute})
	big := s.join(ctx, "stop", "big", 0, 0)     // no hint: the top layer
	small := s.join(ctx, "stop", "small", 0, 0) // a small tile: the middle layer
	var bv, sv *client.RemoteTrack
	waitFor(t, ctx, "video", func() bool { bv, sv = videoTrack(big), videoTrack(small); return bv != nil && sv != nil })
	if err := small.SetViewport(sv.TrackID, 600, 340, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the top layer at big", func() bool { return bv.Stats().Layer == 2 })
	waitFor(t, ctx, "the middle layer at small", func() bool { return sv.Stats().Layer == 1 })

	for _, step := range []struct {
		rid    string
		active bool
		big    int // layer each subscriber ends on
		small  int
	}{
		{"f", false, 1, 1}, // the top stops: big goes down to the middle
		{"f", true, 2, 1},  // back
		{"h", false, 2, 0}, // the middle stops: small goes down to the lowest
		{"q", false, 2, 2}, // and the lowest too: small gets the only one left, above its tile
		{"h", true, 2, 1},
		{"q", true, 2, 1},
	} {
		start := time.Now()
		simulcastLayer(t, pub, step.rid).SetActive(step.active)
		waitFor(t, ctx, fmt.Sprintf("%s active=%v: layers %d and %d", step.rid, step.active, step.big, step.small), func() bool {
			return bv.Stats().Layer == step.big && sv.Stats().Layer == step.small
		})
		d := time.Since(start)
		t.Logf("layer %s active=%v: big on %d, small on %d after %v", step.rid, step.active, step.big, step.small, d)
		if !step.active && d > 2*time.Second {
			t.Errorf("layer %s stopped: the switch took %v, want about 1-2 s", step.rid, d)
		}
		time.Sleep(300 * time.Millisecond) // the new layer flows a little
	}
	for name, v := range map[string]*client.RemoteTrack{"big": bv, "small": sv} {
		st := v.Stats()
		if st.BadSwitches != 0 {
			t.Errorf("%s: %d switches did not start with a keyframe", name, st.BadSwitches)
		}
		if st.SeqGaps != 0 || st.Missing != 0 || st.Dups != 0 || st.Bad != 0 {
			t.Errorf("%s: not one continuous stream: %d gaps, %d missing, %d duplicates, %d bad", name, st.SeqGaps, st.Missing, st.Dups, st.Bad)
		}
	}
}

// Layers rank by what they carry (issue 10, input 5), whatever their
// names or the order they start in: a viewer without a hint gets the
// largest, a 640x360 tile the 640x360 layer, a small tile the smallest.
func TestSimulcastLayersRankedByContent(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	large := func(rid string) client.SimulcastLayer {
		return client.SimulcastLayer{RID: rid, Width: 1280, Height: 720, PacketsPerFrame: 4}
	}
	mid := func(rid string) client.SimulcastLayer {
		return client.SimulcastLayer{RID: rid, Width: 640, Height: 360, PacketsPerFrame: 2}
	}
	low := func(rid string) client.SimulcastLayer {
		return client.SimulcastLayer{RID: rid, Width: 320, Height: 180, PacketsPerFrame: 1}
	}
	for _, tc := range []struct {
		name   string
		layers []client.SimulcastLayer // in the order they start
	}{
		{"l-m-h, largest first", []client.SimulcastLayer{large("h"), mid("m"), low("l")}},
		{"r0-r1-r2, largest first", []client.SimulcastLayer{large("r2"), mid("r1"), low("r0")}},
		{"names that say the opposite", []client.SimulcastLayer{large("q"), mid("h"), low("f")}},
		{"names that say nothing, middle first", []client.SimulcastLayer{mid("b"), large("a"), low("c")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t, 30*time.Second)
			room := strings.NewReplacer(" ", "-", ",", "").Replace(tc.name)
			s.joinWith(ctx, client.Config{Room: room, Name: "pub", Video: 1, Simulcast: true, SimulcastLayers: tc.layers})
			viewer := s.join(ctx, room, "viewer", 0, 0)
			var v *client.RemoteTrack
			waitFor(t, ctx, "video", func() bool { v = videoTrack(viewer); return v != nil && v.Stats().Packets > 10 })
			waitFor(t, ctx, "the largest layer without a hint", func() bool { return v.Stats().Layer == 2 })
			for _, step := range []struct {
				w, h  int
				layer int
			}{{640, 360, 1}, {320, 180, 0}, {1280, 720, 2}, {600, 340, 1}} {
				if err := viewer.SetViewport(v.TrackID, step.w, step.h, true); err != nil {
					t.Fatal(err)
				}
				waitFor(t, ctx, fmt.Sprintf("layer %d for a %dx%d tile", step.layer, step.w, step.h), func() bool { return v.Stats().Layer == step.layer })
			}
			if st := v.Stats(); st.BadSwitches != 0 {
				t.Errorf("%d switches did not start with a keyframe", st.BadSwitches)
			}
		})
	}
}

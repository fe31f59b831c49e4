package e2e

import (
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

package sfu

import (
	"testing"
	"time"
)

// A tap whose writer blocks (a stalled disk) never holds up the read loop
// nor the other subscribers: its own queue fills and drops, counted by
// Dropped; once released it carries on from a keyframe.
func TestTapNeverSlowsForwarding(t *testing.T) {
	r := newRig(t, 1)
	w := &fakeWriter{block: make(chan struct{})}
	tap, err := NewTap(r.up, r.stats, w)
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()
	start := time.Now()
	r.sendFrame(true)
	for i := 1; i <= 2*videoQueueLen; i++ {
		r.sendFrame(false)
		if i%32 == 0 {
			r.wait(uint64(i + 1)) // the other subscriber keeps up with everything
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("forwarding took %v with a blocked tap", d)
	}
	if tap.Dropped() == 0 {
		t.Error("a blocked tap dropped nothing")
	}
	close(w.block)
	asked := r.keyframeRequests.Load()
	r.sendFrame(false)
	deadline := time.Now().Add(2 * time.Second)
	for r.keyframeRequests.Load() == asked && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if r.keyframeRequests.Load() == asked {
		t.Error("no keyframe asked for after the tap's drops")
	}
}

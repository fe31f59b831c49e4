//go:build !race

package sfu

import "testing"

// The forwarding path allocates nothing per packet, writer goroutines
// included (testing.AllocsPerRun counts every goroutine's allocations).
func TestForwardAllocatesNothing(t *testing.T) {
	r := newRig(t, 10)
	for i := 0; i < 100; i++ { // warm up: the header's extension slice, the queues
		r.send()
	}
	r.wait(100)
	sent := uint64(100)
	allocs := testing.AllocsPerRun(1000, func() {
		r.send()
		sent++
		r.wait(sent)
	})
	if allocs != 0 {
		t.Errorf("%.2f allocations per forwarded packet, want 0", allocs)
	}
}

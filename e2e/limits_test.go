package e2e

import (
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/roundtable-sfu/roundtable/internal/server"
)

// The publishing cap reaches a publisher as REMB naming its video stream,
// once a second; with no cap there is none.
func TestPublishBitrateCap(t *testing.T) {
	checkGoroutines(t)
	for _, limit := range []int{300_000, 0} {
		s := startServer(t, func(c *server.Config, _ *[]interceptor.Factory) { c.MaxPublishBitrate = limit })
		ctx := testContext(t, 20*time.Second)
		pub := s.join(ctx, "cap", "pub", 0, 1)
		waitFor(t, ctx, "connected", pub.Connected)
		video := pub.Local()[0]
		if limit > 0 {
			waitFor(t, ctx, "REMB at the cap", func() bool { return video.REMB.Load() == uint64(limit) })
			continue
		}
		time.Sleep(2500 * time.Millisecond)
		if got := video.REMB.Load(); got != 0 {
			t.Errorf("no cap configured, yet the publisher got REMB %d", got)
		}
	}
}

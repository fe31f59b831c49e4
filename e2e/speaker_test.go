package e2e

import (
	"testing"
	"time"

	"github.com/roundtable-sfu/roundtable/internal/client"
)

// Of three participants, the one sending the loudest RFC 6464 audio levels
// becomes the active speaker within 1 s; when another speaks up, it takes
// over within 1 s; clients get at most four active-speaker events a second.
func TestActiveSpeaker(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 30*time.Second)
	var cs []*client.Client
	for _, n := range []string{"ann", "bob", "cat"} {
		cs = append(cs, s.join(ctx, "talk", n, 1, 0))
	}
	for _, c := range cs {
		c := c
		waitFor(t, ctx, "audio", func() bool { return len(c.ActiveRemote()) == 2 && c.ActiveRemote()[0].Stats().Packets > 10 })
	}
	level := func(c *client.Client, dBov uint8) { c.Local()[0].SetAudioLevel(dBov) }
	speakerIs := func(id string) func() bool {
		return func() bool {
			for _, c := range cs {
				ev := c.Speakers()
				if len(ev) == 0 || ev[len(ev)-1].Participant != id {
					return false
				}
			}
			return true
		}
	}
	start := time.Now()
	level(cs[0], 20) // loud
	level(cs[1], 60) // talking, quieter
	waitFor(t, ctx, "ann active", speakerIs(cs[0].ID))
	if d := time.Since(start); d > time.Second {
		t.Errorf("ann became active speaker after %v, want < 1s", d)
	}
	start = time.Now()
	level(cs[0], 127) // ann stops
	level(cs[1], 10)  // bob speaks up
	waitFor(t, ctx, "bob active", speakerIs(cs[1].ID))
	if d := time.Since(start); d > time.Second {
		t.Errorf("bob became active speaker after %v, want < 1s", d)
	}
	time.Sleep(time.Second)
	for _, c := range cs {
		ev := c.Speakers()
		for i := 1; i < len(ev); i++ {
			if gap := ev[i].At.Sub(ev[i-1].At); gap < 200*time.Millisecond {
				t.Errorf("active-speaker events %v apart: more than 4 a second", gap)
			}
		}
	}
}

package e2e

// Data channels (issue 10, inputs 6 and 7): nothing a member sends on, or
// does with, its data channel silently kills it.

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/sfu"
	"github.com/roundtable-sfu/roundtable/signal"
)

// exchange checks that a message from a reaches b and one from b reaches a.
func exchange(t *testing.T, ctx context.Context, a, b *client.Client, tag string) {
	t.Helper()
	for _, dir := range []struct{ from, to *client.Client }{{a, b}, {b, a}} {
		text := tag + " from " + dir.from.ID
		if err := dir.from.SendText(text); err != nil {
			t.Fatalf("%s: send: %v", tag, err)
		}
		if err := client.Wait(ctx, func() bool {
			for _, m := range dir.to.Data() {
				if string(m.Data) == text && m.From == dir.from.ID {
					return true
				}
			}
			return false
		}); err != nil {
			t.Fatalf("%s: %q never reached %s: %v (it has %d messages)", tag, text, dir.to.ID, err, len(dir.to.Data()))
		}
	}
}

// A message over the limit, of any size a client can send (65,536 bytes
// too, one more than pion reads), gets data_too_large, and the channel
// lives on in both directions. The limit is in the SDP.
func TestOversizeDataKeepsTheChannel(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 30*time.Second)
	a, b := s.join(ctx, "big", "a", 0, 0), s.join(ctx, "big", "b", 0, 0)
	for _, c := range []*client.Client{a, b} {
		if err := c.WaitDataChannel(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if sdp := a.RemoteSDP(); !strings.Contains(sdp, "a=max-message-size:16384\r\n") {
		t.Errorf("the server's answer does not advertise a=max-message-size:16384:\n%s", sdp)
	}
	drops := s.Engine.Stats().Dropped[sfu.DropDataTooLarge].Load()
	sizes := []int{16<<10 + 1, 65535, 65536}
	for i, n := range sizes {
		if err := a.SendBinary(make([]byte, n)); err != nil {
			t.Fatalf("send %d bytes: %v", n, err)
		}
		waitFor(t, ctx, "data_too_large", func() bool {
			k := 0
			for _, e := range a.Errors() {
				if e.Code == signal.CodeDataTooLarge {
					k++
				}
			}
			return k == i+1
		})
		exchange(t, ctx, a, b, "after "+strings.Repeat("x", 0)+string(rune('0'+i)))
	}
	if d := s.Engine.Stats().Dropped[sfu.DropDataTooLarge].Load() - drops; d != uint64(len(sizes)) {
		t.Errorf("%d messages counted as data_too_large, want %d", d, len(sizes))
	}
	for _, m := range b.Data() {
		if len(m.Data) > 16<<10 {
			t.Errorf("b received a %d-byte message", len(m.Data))
		}
	}
}

// The "roundtable" channel may be created in band (the usual way),
// pre-negotiated (negotiated: true, id 0), or after another channel; chat
// works both ways in each case, whoever speaks first. Another channel is
// closed, with error data_channel_refused.
func TestDataChannelModes(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	for _, tc := range []struct {
		name       string
		mode       client.DataChannelMode
		otherFirst bool // the in-band member speaks first
	}{
		{"in band", client.DataInBand, false},
		{"pre-negotiated, it speaks first", client.DataNegotiated, false},
		{"pre-negotiated, spoken to first", client.DataNegotiated, true},
		{"after another channel", client.DataOtherFirst, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t, 30*time.Second)
			room := strings.NewReplacer(" ", "-", ",", "").Replace(tc.name)
			a := s.joinWith(ctx, client.Config{Room: room, Name: "a", DataChannel: tc.mode})
			b := s.join(ctx, room, "b", 0, 0)
			for _, c := range []*client.Client{a, b} {
				if err := c.WaitDataChannel(10 * time.Second); err != nil {
					t.Fatal(err)
				}
			}
			if tc.otherFirst {
				exchange(t, ctx, b, a, "hello")
			} else {
				exchange(t, ctx, a, b, "hello")
			}
			exchange(t, ctx, a, b, "again")
			if tc.mode == client.DataInBand {
				// A member whose channel closed opens another one.
				if err := a.ReopenDataChannel(10 * time.Second); err != nil {
					t.Fatal(err)
				}
				exchange(t, ctx, a, b, "reopened")
			}
			if tc.mode == client.DataOtherFirst {
				waitFor(t, ctx, "data_channel_refused", func() bool { return a.HasError(signal.CodeDataChannelRefused) })
				waitFor(t, ctx, "the other channel closed", a.OtherChannelClosed)
				return
			}
			if errs := a.Errors(); len(errs) != 0 {
				t.Errorf("errors: %v", errs)
			}
		})
	}
}

package e2e

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/internal/server"
	"github.com/roundtable-sfu/roundtable/sfu"
	"github.com/roundtable-sfu/roundtable/signal"
)

func videoTrack(c *client.Client) *client.RemoteTrack {
	for _, r := range c.ActiveRemote() {
		if r.Kind == webrtc.RTPCodecTypeVideo {
			return r
		}
	}
	return nil
}

// Test 2: a participant that joins late receives the existing tracks and its
// first video keyframe within 1 s. The publisher sends periodic keyframes
// only every 10 minutes, so the keyframe can only come from the server's
// request for the new subscriber.
func TestLateJoinerGetsKeyframe(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 30*time.Second)
	pub := s.joinWith(ctx, client.Config{Room: "late", Name: "early", Audio: 1, Video: 1, KeyframeInterval: 10 * time.Minute})
	waitFor(t, ctx, "publisher connected", pub.Connected)
	time.Sleep(1500 * time.Millisecond) // the publisher's first keyframe is long gone

	start := time.Now()
	late := s.join(ctx, "late", "late", 0, 0)
	waitFor(t, ctx, "two tracks at the late joiner", func() bool { return len(late.ActiveRemote()) == 2 })
	t.Logf("pli at publisher: %d, server keyframe requests sent %d", pub.Local()[1].PLIsReceived.Load(), s.Engine.Stats().KeyframesSent.Load())
	waitFor(t, ctx, "a keyframe", func() bool {
		v := videoTrack(late)
		return v != nil && v.Stats().Keyframes > 0
	})
	st := videoTrack(late).Stats()
	sinceJoin := st.FirstKeyframe.Sub(start)
	sinceMedia := st.FirstKeyframe.Sub(st.Started)
	t.Logf("first keyframe %v after join, %v after the track arrived", sinceJoin, sinceMedia)
	if sinceMedia > time.Second {
		t.Errorf("first keyframe %v after the track arrived, want < 1s", sinceMedia)
	}
	if sinceJoin > 2*time.Second {
		t.Errorf("first keyframe %v after joining, want < 2s", sinceJoin)
	}
	if pli := pub.Local()[1].PLIsReceived.Load(); pli == 0 {
		t.Errorf("publisher got no keyframe request")
	}
}

// Test 3: a data-channel message from A reaches B, C and D exactly once,
// tagged with A's id, and never A; text and binary both work; an oversize
// message is refused with an error and forwarded to nobody.
func TestDataChannelFanout(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 30*time.Second)
	var cs []*client.Client
	for _, n := range []string{"a", "b", "c", "d"} {
		c := s.join(ctx, "data", n, 0, 0)
		if err := c.WaitDataChannel(10 * time.Second); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		cs = append(cs, c)
	}
	a := cs[0]
	if err := a.SendText("hello from a"); err != nil {
		t.Fatal(err)
	}
	bin := []byte{0, 1, 2, ':', 255}
	if err := a.SendBinary(bin); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 16<<10+1)
	if err := a.SendText(big); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "oversize error", func() bool { return a.HasError(signal.CodeDataTooLarge) })
	if err := a.SendText("after"); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs[1:] {
		c := c
		if err := client.Wait(ctx, func() bool { return len(c.Data()) >= 3 }); err != nil {
			for _, o := range cs[1:] {
				t.Logf("%s has %d messages: %+v", o.ID, len(o.Data()), o.Data())
			}
			t.Fatalf("%s: waiting for three messages: %v", c.ID, err)
		}
	}
	time.Sleep(200 * time.Millisecond) // would-be duplicates have time to arrive
	for _, c := range cs[1:] {
		got := c.Data()
		if len(got) != 3 {
			t.Fatalf("%s got %d messages, want 3: %+v", c.ID, len(got), got)
		}
		for _, m := range got {
			if m.From != a.ID {
				t.Errorf("message from %q, want %q", m.From, a.ID)
			}
		}
		if !got[0].IsString || string(got[0].Data) != "hello from a" {
			t.Errorf("text message: %+v", got[0])
		}
		if got[1].IsString || !bytes.Equal(got[1].Data, bin) {
			t.Errorf("binary message: %+v", got[1])
		}
		if string(got[2].Data) != "after" {
			t.Errorf("third message %q, want the one after the oversize one", got[2].Data)
		}
	}
	if n := len(a.Data()); n != 0 {
		t.Errorf("sender received %d of its own messages", n)
	}
}

// A member whose data channel is not open yet (it has joined, but its first
// offer has not even been sent) gets the messages sent meanwhile, in order,
// once its channel opens; the queue holds 256 KiB, and what does not fit is
// dropped and counted.
func TestDataQueuedUntilChannelOpens(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 30*time.Second)
	a := s.join(ctx, "queue", "a", 0, 0)
	if err := a.WaitDataChannel(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	late := s.joinWith(ctx, client.Config{Room: "queue", Name: "late", DeferPeer: true})
	waitFor(t, ctx, "a sees the late member", func() bool { _, ok := a.Participants()[late.ID]; return ok })
	drops := s.Engine.Stats().Dropped[sfu.DropDataBackpressure].Load()

	small := []string{"one", "two", "three"}
	for _, m := range small {
		if err := a.SendText(m); err != nil {
			t.Fatal(err)
		}
	}
	big := strings.Repeat("x", 16<<10)
	const bigSent = 20
	for i := 0; i < bigSent; i++ {
		if err := a.SendText(big); err != nil {
			t.Fatal(err)
		}
	}
	// Every message sent has reached the server's queue (or been dropped)
	// once the drops are counted: 256 KiB hold 15 big frames after the small.
	frame := len(a.ID) + 1 + len(big)
	fit := (256<<10 - 3*(len(a.ID)+1) - len("one") - len("two") - len("three")) / frame
	waitFor(t, ctx, "overflow counted", func() bool {
		return s.Engine.Stats().Dropped[sfu.DropDataBackpressure].Load()-drops == uint64(bigSent-fit)
	})

	if err := late.StartPeer(); err != nil {
		t.Fatal(err)
	}
	if err := late.WaitDataChannel(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the queued messages", func() bool { return len(late.Data()) >= 3+fit })
	if err := a.SendText("after"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the message after opening", func() bool { return len(late.Data()) >= 4+fit })
	time.Sleep(200 * time.Millisecond) // would-be extras have time to arrive
	got := late.Data()
	if len(got) != 4+fit {
		t.Fatalf("late member got %d messages, want %d", len(got), 4+fit)
	}
	for i, m := range got {
		want := big
		switch {
		case i < 3:
			want = small[i]
		case i == len(got)-1:
			want = "after"
		}
		if m.From != a.ID || string(m.Data) != want {
			t.Errorf("message %d: from %q, %d bytes; want from %q, %d bytes", i, m.From, len(m.Data), a.ID, len(want))
		}
	}
}

// Test 4: two rooms side by side; nothing crosses: media, data, events.
func TestRoomsAreIsolated(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 30*time.Second)
	x1, x2 := s.join(ctx, "x", "x1", 1, 1), s.join(ctx, "x", "x2", 1, 1)
	y1, y2 := s.join(ctx, "y", "y1", 1, 1), s.join(ctx, "y", "y2", 1, 1)
	room := map[string]string{x1.ID: "x", x2.ID: "x", y1.ID: "y", y2.ID: "y"}
	all := []*client.Client{x1, x2, y1, y2}
	for _, c := range all {
		c := c
		waitFor(t, ctx, "media", func() bool {
			rs := c.ActiveRemote()
			return len(rs) == 2 && rs[0].Stats().Packets > 10 && rs[1].Stats().Packets > 10
		})
		if err := c.WaitDataChannel(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		if err := c.SendText("from " + c.ID); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range all {
		c := c
		waitFor(t, ctx, "data", func() bool { return len(c.Data()) >= 1 })
	}
	time.Sleep(300 * time.Millisecond)
	for _, c := range all {
		mine := room[c.ID]
		for _, r := range c.Remote() {
			for id := range r.Stats().PayloadIDs {
				if room[id] != mine || id == c.ID {
					t.Errorf("%s (room %s) received media of %s (room %s)", c.ID, mine, id, room[id])
				}
			}
		}
		for _, m := range c.Data() {
			if room[m.From] != mine || m.From == c.ID {
				t.Errorf("%s (room %s) received data from %s", c.ID, mine, m.From)
			}
		}
		if len(c.Data()) != 1 {
			t.Errorf("%s received %d messages, want 1", c.ID, len(c.Data()))
		}
		for id := range c.Participants() {
			if room[id] != mine {
				t.Errorf("%s (room %s) knows participant %s of room %s", c.ID, mine, id, room[id])
			}
		}
	}
}

// Test 5: leave and abrupt disconnect: the others see the tracks go away
// (renegotiation; for the abrupt one when its resume window runs out), the
// room is removed when empty, and the goroutine count returns to its
// starting level.
func TestLeaveAndVanish(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, withResumeWindow(2*time.Second))
	ctx := testContext(t, 40*time.Second)
	a, b, c := s.join(ctx, "bye", "a", 1, 1), s.join(ctx, "bye", "b", 1, 1), s.join(ctx, "bye", "c", 1, 1)
	for _, x := range []*client.Client{a, b, c} {
		x := x
		waitFor(t, ctx, "four remote tracks", func() bool { return len(x.ActiveRemote()) == 4 })
	}
	c.Leave()
	for _, x := range []*client.Client{a, b} {
		x := x
		waitFor(t, ctx, "c's tracks to end", func() bool { return len(x.ActiveRemote()) == 2 })
		waitFor(t, ctx, "c to leave the list", func() bool { _, ok := x.Participants()[c.ID]; return !ok })
	}
	if c.Bye() != "left" {
		t.Errorf("bye reason %q, want left", c.Bye())
	}
	b.Abort() // no leave, socket and UDP just stop
	waitFor(t, ctx, "b's tracks to end at a", func() bool { return len(a.ActiveRemote()) == 0 })
	waitFor(t, ctx, "b to leave a's list", func() bool { return len(a.Participants()) == 0 })
	if rooms, parts := s.Rooms.Counts(); rooms != 1 || parts != 1 {
		t.Errorf("rooms %d participants %d, want 1 and 1", rooms, parts)
	}
	a.Leave()
	waitFor(t, ctx, "the room to be removed", func() bool { r, p := s.Rooms.Counts(); return r == 0 && p == 0 })
	st := s.Engine.Stats()
	waitFor(t, ctx, "media gauges at zero", func() bool {
		return st.Peers.Load() == 0 && st.Subscriptions.Load() == 0 &&
			st.UpTracks[0].Load() == 0 && st.UpTracks[1].Load() == 0
	})
}

// A participant whose PeerConnection dies while its socket stays open is
// asked to restart ICE when ICE fails, and removed when its path is not
// back within the connect timeout: the others see it leave, it gets "bye".
func TestICEFailureRemovesParticipant(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, func(c *server.Config, _ *[]interceptor.Factory) {
		c.ICEDisconnectedTimeout, c.ICEFailedTimeout = 500*time.Millisecond, time.Second
		c.ConnectTimeout = 4 * time.Second
	})
	ctx := testContext(t, 30*time.Second)
	a, b := s.join(ctx, "ice", "a", 1, 1), s.join(ctx, "ice", "b", 1, 1)
	waitFor(t, ctx, "media", func() bool { return len(a.ActiveRemote()) == 2 && len(b.ActiveRemote()) == 2 })
	b.ClosePeer()
	waitFor(t, ctx, "b removed", func() bool { return len(a.Participants()) == 0 && len(a.ActiveRemote()) == 0 })
	waitFor(t, ctx, "bye to b", func() bool { return b.Bye() != "" })
	if b.Bye() != "ice_failed" {
		t.Errorf("bye %q, want ice_failed", b.Bye())
	}
	if b.ICERestartRequests() == 0 {
		t.Error("b was not asked to restart ICE")
	}
}

// Renegotiation is coalesced and targeted: a late joiner gets all existing
// tracks in one offer, and a receive-only joiner costs the others no offer.
func TestRenegotiationIsCoalescedAndTargeted(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 30*time.Second)
	var pubs []*client.Client
	for _, n := range []string{"p1", "p2", "p3"} {
		p := s.join(ctx, "co", n, 1, 1)
		pubs = append(pubs, p)
	}
	for _, p := range pubs {
		p := p
		waitFor(t, ctx, "four remote tracks", func() bool { return len(p.ActiveRemote()) == 4 })
	}
	time.Sleep(200 * time.Millisecond)
	before := make([]int, len(pubs))
	for i, p := range pubs {
		before[i] = p.OffersReceived()
	}
	late := s.join(ctx, "co", "late", 0, 0)
	waitFor(t, ctx, "six tracks", func() bool { return len(late.ActiveRemote()) == 6 })
	time.Sleep(300 * time.Millisecond)
	if n := late.OffersReceived(); n != 1 {
		t.Errorf("late joiner got %d offers for 6 tracks, want 1", n)
	}
	for i, p := range pubs {
		if d := p.OffersReceived() - before[i]; d != 0 {
			t.Errorf("%s got %d offers because a receive-only participant joined", p.ID, d)
		}
	}
	other := s.join(ctx, "elsewhere", "x", 1, 1)
	waitFor(t, ctx, "x connected", other.Connected)
	time.Sleep(300 * time.Millisecond)
	if n := late.OffersReceived(); n != 1 {
		t.Errorf("a publisher in another room caused offers here: %d", n)
	}
}

// A sender over its data-channel rate gets one error and its excess
// messages are dropped; the others receive the burst and no more.
func TestDataChannelRateLimit(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 30*time.Second)
	a, b := s.join(ctx, "rate", "a", 0, 0), s.join(ctx, "rate", "b", 0, 0)
	for _, c := range []*client.Client{a, b} {
		if err := c.WaitDataChannel(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	const sent = 400
	for i := 0; i < sent; i++ {
		if err := a.SendText("m"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ctx, "rate error", func() bool { return a.HasError(signal.CodeDataRate) })
	time.Sleep(500 * time.Millisecond)
	elapsed := time.Since(start)
	got := len(b.Data())
	limit := 100 + int(50*elapsed.Seconds()) + 1 // burst + rate
	t.Logf("%d sent, %d forwarded in %v", sent, got, elapsed)
	if got < 100 || got > limit {
		t.Errorf("%d messages forwarded, want 100..%d", got, limit)
	}
	errs := 0
	for _, e := range a.Errors() {
		if e.Code == signal.CodeDataRate {
			errs++
		}
	}
	if errs > 1+int(elapsed.Seconds()) {
		t.Errorf("%d rate errors: at most one per second", errs)
	}
}

// A publisher's track updates (source, muted) reach the others with the
// track, later as track-updated, and a late joiner in "joined".
func TestTrackUpdates(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 30*time.Second)
	a := s.join(ctx, "meta", "a", 1, 1) // local ids audio0, video1
	if err := a.UpdateTrack("video1", "camera", false); err != nil {
		t.Fatal(err)
	}
	b := s.join(ctx, "meta", "b", 0, 0)
	waitFor(t, ctx, "a's video at b", func() bool { return videoTrack(b) != nil })
	v := videoTrack(b)
	waitFor(t, ctx, "source camera", func() bool { ti, _ := b.TrackInfo(v.TrackID); return ti.Source == "camera" })
	if err := a.UpdateTrack("video1", "camera", true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "muted at b", func() bool { ti, _ := b.TrackInfo(v.TrackID); return ti.Muted })
	c := s.join(ctx, "meta", "c", 0, 0)
	if ti, ok := c.TrackInfo(v.TrackID); !ok || ti.Source != "camera" || !ti.Muted {
		t.Errorf("late joiner sees %+v (known %v), want camera, muted", ti, ok)
	}
	if err := a.UpdateTrack("video1", "hologram", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "bad source refused", func() bool { return a.HasError(signal.CodeBadMessage) })
}

// Viewport hints: a hidden tile gets no video (the subscription is paused
// and counted), and when it is visible again the first packet is a
// keyframe, within 1 s. The publisher's periodic keyframes are 10 minutes
// apart: the keyframe comes from the server's request.
func TestHiddenTilePausesVideo(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 30*time.Second)
	s.joinWith(ctx, client.Config{Room: "view", Name: "pub", Video: 1, KeyframeInterval: 10 * time.Minute})
	sub := s.join(ctx, "view", "sub", 0, 0)
	waitFor(t, ctx, "video", func() bool { v := videoTrack(sub); return v != nil && v.Stats().Packets > 30 })
	v := videoTrack(sub)
	if err := sub.SetViewport(v.TrackID, 320, 180, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "paused", func() bool { return s.Engine.Stats().PausedSubscriptions.Load() == 1 })
	time.Sleep(200 * time.Millisecond) // in flight
	before := v.Stats().Packets
	time.Sleep(time.Second)
	if got := v.Stats().Packets - before; got != 0 {
		t.Errorf("%d video packets reached a hidden tile in 1 s", got)
	}
	time.Sleep(600 * time.Millisecond) // let the keyframe throttle window pass
	v.Mark()
	if err := sub.SetViewport(v.TrackID, 320, 180, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "video again", func() bool { a, _ := v.AfterMark(); return a != nil })
	first, mark := v.AfterMark()
	t.Logf("first packet %v after becoming visible, keyframe=%v", first.At.Sub(mark), first.Keyframe)
	if !first.Keyframe {
		t.Errorf("the first packet after resuming is not a keyframe")
	}
	if d := first.At.Sub(mark); d > time.Second {
		t.Errorf("video resumed after %v, want < 1s", d)
	}
	if n := s.Engine.Stats().PausedSubscriptions.Load(); n != 0 {
		t.Errorf("paused gauge %d after resume", n)
	}
	if st := v.Stats(); st.SeqGaps != 0 || st.Bad != 0 {
		t.Errorf("after the pause: %d sequence gaps, %d bad payloads (want contiguous)", st.SeqGaps, st.Bad)
	}
	if err := sub.SetViewport("TRnope", 1, 1, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "unknown track refused", func() bool { return sub.HasError(signal.CodeUnknownTrack) })
}

package sfu

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"
)

// tapeWriter records what a DownTrack writes: sequence number, timestamp,
// and the payload's tag byte (which rig sent it).
type tapeWriter struct {
	mu   sync.Mutex
	pkts []tapePacket
}

type tapePacket struct {
	seq uint16
	ts  uint32
	tag byte
	key bool
}

func (w *tapeWriter) WriteRTP(h *rtp.Header, p []byte) (int, error) {
	w.mu.Lock()
	w.pkts = append(w.pkts, tapePacket{seq: h.SequenceNumber, ts: h.Timestamp, tag: p[5], key: p[1] == 0})
	w.mu.Unlock()
	return 12 + len(p), nil
}
func (w *tapeWriter) Write(b []byte) (int, error) { return len(b), nil }

func (w *tapeWriter) tape() []tapePacket {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.pkts)
}

// waitTape waits until the writer has n packets.
func (w *tapeWriter) waitTape(t *testing.T, n int) []tapePacket {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(w.tape()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d packets written, want %d", len(w.tape()), n)
		}
		time.Sleep(time.Millisecond)
	}
	return w.tape()
}

// tagged is a rig whose payloads carry tag.
func tagged(t *testing.T, tag byte) *rig {
	r := newRig(t, 0)
	r.pkt[12+5] = tag
	return r
}

// A playback DownTrack switches from one UpTrack to another at the new
// one's keyframe, asked for at once: until then it forwards the old one,
// and from there the new one only, with its sequence numbers following on
// and its timestamps moving forward; it then leaves the old UpTrack's
// subscribers. A source in another codec is refused; after close, neither
// UpTrack holds it.
func TestPlaybackSwitchesSourceAtAKeyframe(t *testing.T) {
	a, b := tagged(t, 'A'), tagged(t, 'B')
	w := &tapeWriter{}
	d := makeDownTrack(webrtc.RTPCodecTypeVideo, "video", playbackStream, vp8, a.stats)
	d.codec = vp8
	d.waiting = false
	if _, err := d.Bind(bindTo(7000, w)); err != nil {
		t.Fatal(err)
	}
	defer d.close()
	if err := d.SetSource(a.up); err != nil {
		t.Fatal(err)
	}
	a.sendFrame(false) // not a keyframe: nothing yet
	a.sendFrame(true)
	a.sendFrame(false)
	w.waitTape(t, 2)

	asked := b.keyframeRequests.Load()
	if err := d.SetSource(b.up); err != nil {
		t.Fatal(err)
	}
	if b.keyframeRequests.Load() == asked {
		t.Error("no keyframe asked of the new source")
	}
	b.sendFrame(false) // the new source, before its keyframe: dropped
	a.sendFrame(false) // the old one still flows
	w.waitTape(t, 3)
	b.sendFrame(true)
	a.sendFrame(false) // gone for good
	b.sendFrame(false)
	tape := w.waitTape(t, 5)
	time.Sleep(20 * time.Millisecond) // nothing more may come
	if tape = w.tape(); len(tape) != 5 {
		t.Fatalf("%d packets written, want 5: %+v", len(tape), tape)
	}
	want := []byte{'A', 'A', 'A', 'B', 'B'}
	for i, p := range tape {
		if p.tag != want[i] {
			t.Errorf("packet %d from %c, want %c", i, p.tag, want[i])
		}
		// (the rigs send every frame with one timestamp; a switch moves on)
		if i > 0 && (p.seq != tape[i-1].seq+1 || int32(p.ts-tape[i-1].ts) < 0 || i == 3 && p.ts == tape[i-1].ts) {
			t.Errorf("packet %d: seq %d ts %d after seq %d ts %d", i, p.seq, p.ts, tape[i-1].seq, tape[i-1].ts)
		}
	}
	if !tape[0].key || !tape[3].key {
		t.Error("the first packet of each source is not its keyframe")
	}
	if slices.Contains(*a.up.downs.Load(), d) || !slices.Contains(*b.up.downs.Load(), d) {
		t.Error("after the switch the DownTrack is still the old source's subscriber, or not the new one's")
	}

	opus := newUpTrack("TR2", "pub", webrtc.RTPCodecTypeAudio, webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111,
	}, 99, a.stats, nil)
	if err := d.SetSource(opus); !errors.Is(err, ErrCodecNotNegotiated) {
		t.Errorf("an Opus source for a VP8 track: %v", err)
	}
	d.close()
	if slices.Contains(*b.up.downs.Load(), d) {
		t.Error("a closed DownTrack is still a subscriber")
	}
	if err := d.SetSource(a.up); !errors.Is(err, ErrClosed) {
		t.Errorf("SetSource after close: %v", err)
	}
}

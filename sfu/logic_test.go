package sfu

import (
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func TestSeqUnwrapper(t *testing.T) {
	tests := []struct {
		name string
		in   []uint16
		want []uint64
	}{
		{"in order", []uint16{1, 2, 3}, []uint64{1<<16 | 1, 1<<16 | 2, 1<<16 | 3}},
		{"wrap", []uint16{65534, 65535, 0, 1}, []uint64{1<<16 | 65534, 1<<16 | 65535, 2 << 16, 2<<16 | 1}},
		{"reorder across wrap", []uint16{65535, 1, 0}, []uint64{1<<16 | 65535, 2<<16 | 1, 2 << 16}},
		{"late packet before first", []uint16{10, 8}, []uint64{1<<16 | 10, 1<<16 | 8}},
		{"big jump forward", []uint16{0, 30000}, []uint64{1 << 16, 1<<16 | 30000}},
		{"backwards jump is old", []uint16{40000, 10000}, []uint64{1<<16 | 40000, 1<<16 | 10000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var u SeqUnwrapper
			for i, s := range tt.in {
				if got := u.Unwrap(s); got != tt.want[i] {
					t.Errorf("Unwrap(%d) #%d = %d, want %d", s, i, got, tt.want[i])
				}
			}
		})
	}
}

func TestPacketCache(t *testing.T) {
	c := NewPacketCache(5)
	if c.Size() != 8 {
		t.Fatalf("size %d, want 8 (next power of two)", c.Size())
	}
	buf := make([]byte, maxPacketSize)
	for i := uint64(100); i < 110; i++ {
		c.Put(i, []byte{byte(i), 1, 2})
	}
	tests := []struct {
		ext uint64
		ok  bool
	}{{101, false}, {102, true}, {109, true}, {110, false}, {94, false}}
	for _, tt := range tests {
		n, ok := c.Get(tt.ext, buf)
		if ok != tt.ok {
			t.Errorf("Get(%d) ok=%v, want %v", tt.ext, ok, tt.ok)
		}
		if ok && (n != 3 || buf[0] != byte(tt.ext)) {
			t.Errorf("Get(%d) = %v", tt.ext, buf[:n])
		}
	}
	if c.Put(1, make([]byte, maxPacketSize+1)) {
		t.Errorf("oversize packet cached")
	}
}

func TestIsKeyframe(t *testing.T) {
	tests := []struct {
		name, mime string
		payload    []byte
		want       bool
	}{
		{"vp8 key", "video/VP8", []byte{0x10, 0x00, 0, 0, 0x9d, 0x01, 0x2a}, true},
		{"vp8 delta", "video/VP8", []byte{0x10, 0x01}, false},
		{"vp8 continuation", "video/VP8", []byte{0x00, 0x00}, false},
		{"vp8 key with picture id", "video/vp8", []byte{0x90, 0x80, 0x81, 0x23, 0x00}, true},
		{"vp8 delta with 7-bit picture id", "video/VP8", []byte{0x90, 0x80, 0x05, 0x01}, false},
		{"vp8 key with tl0 and tid", "video/VP8", []byte{0x90, 0xe0, 0x05, 0x01, 0x20, 0x00}, true},
		{"vp8 key, reserved bit before the partition index", "video/VP8", []byte{0x18, 0x00}, true},
		{"vp8 start of partition 1", "video/VP8", []byte{0x11, 0x00}, false},
		{"vp8 key, 15-bit picture id, L, T and K", "video/VP8", []byte{0x90, 0xf0, 0xff, 0xff, 0x05, 0x3f, 0x00}, true},
		{"vp8 delta, 15-bit picture id, L, T and K", "video/VP8", []byte{0x90, 0xf0, 0xff, 0xff, 0x05, 0x3f, 0x01}, false},
		{"vp8 truncated picture id", "video/VP8", []byte{0x90, 0x80, 0x81}, false},
		{"vp8 truncated", "video/VP8", []byte{0x90}, false},
		{"vp8 empty", "video/VP8", nil, false},
		{"vp9 key", "video/VP9", []byte{0x08}, true},
		{"vp9 inter", "video/VP9", []byte{0x48}, false},
		{"vp9 not start", "video/VP9", []byte{0x00}, false},
		{"h264 idr", "video/H264", []byte{0x65}, true},
		{"h264 sps", "video/H264", []byte{0x67}, true},
		{"h264 non-idr", "video/H264", []byte{0x41}, false},
		{"h264 stap-a with sps", "video/H264", []byte{0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68}, true},
		{"h264 stap-a bad size", "video/H264", []byte{0x78, 0x00, 0x09, 0x67}, false},
		{"h264 fu-a idr start", "video/H264", []byte{0x7c, 0x85}, true},
		{"h264 fu-a idr middle", "video/H264", []byte{0x7c, 0x05}, false},
		{"opus", "audio/opus", []byte{0x00}, false},
	}
	for _, tt := range tests {
		if got := IsKeyframe(tt.mime, tt.payload); got != tt.want {
			t.Errorf("%s: IsKeyframe = %v, want %v", tt.name, got, tt.want)
		}
	}
	key := tests[0].payload
	if a := testing.AllocsPerRun(100, func() { vp8Keyframe(key) }); a != 0 {
		t.Errorf("vp8Keyframe allocates %.0f times", a)
	}
}

func TestRewrite(t *testing.T) {
	h := rtp.Header{Version: 2, SSRC: 1, PayloadType: 100, SequenceNumber: 7, Timestamp: 99, Marker: true}
	if err := h.SetExtension(3, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	Rewrite(&h, 0xabcdef, 96, 12345)
	if h.SSRC != 0xabcdef || h.PayloadType != 96 || h.SequenceNumber != 12345 {
		t.Errorf("rewritten header %+v", h)
	}
	if h.Timestamp != 99 || !h.Marker {
		t.Errorf("timestamp or marker changed: %+v", h)
	}
	if h.Extension || len(h.Extensions) != 0 {
		t.Errorf("extensions kept: %+v", h.Extensions)
	}
	b, err := h.Marshal()
	if err != nil || len(b) != 12 {
		t.Errorf("marshal: %d bytes, %v", len(b), err)
	}
}

// fakeClock drives a Throttle without sleeping.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	pending []func()
	at      []time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) After(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = append(c.pending, f)
	c.at = append(c.at, c.now.Add(d))
	return func() bool { return true }
}
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	for i := 0; i < len(c.pending); i++ {
		if !c.at[i].After(c.now) {
			due = append(due, c.pending[i])
			c.pending = append(c.pending[:i], c.pending[i+1:]...)
			c.at = append(c.at[:i], c.at[i+1:]...)
			i--
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

func TestThrottle(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1000, 0)}
	var fired []time.Duration
	start := clk.Now()
	th := NewThrottle(500*time.Millisecond, func() { fired = append(fired, clk.Now().Sub(start)) })
	th.now, th.after = clk.Now, clk.After

	steps := []struct {
		advance time.Duration
		request bool
		ranNow  bool
	}{
		{0, true, true},                       // first request runs at once
		{100 * time.Millisecond, true, false}, // deferred to 500 ms
		{100 * time.Millisecond, true, false}, // merged with the deferred one
		{300 * time.Millisecond, false, false},
		{100 * time.Millisecond, true, false},  // 600 ms: deferred to 1000 ms
		{400 * time.Millisecond, false, false}, // 1000 ms: the deferred one runs
		{500 * time.Millisecond, true, true},   // 1500 ms: the interval is over
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		if s.request {
			if got := th.Request(); got != s.ranNow {
				t.Errorf("step %d: Request ran now = %v, want %v", i, got, s.ranNow)
			}
		}
	}
	want := []time.Duration{0, 500 * time.Millisecond, 1000 * time.Millisecond, 1500 * time.Millisecond}
	if len(fired) != len(want) {
		t.Fatalf("fired at %v, want %v", fired, want)
	}
	for i := range want {
		if fired[i] != want[i] {
			t.Errorf("fire %d at %v, want %v", i, fired[i], want[i])
		}
	}
	// A request that finds the deferred run due but its timer late runs
	// now and replaces it: never two runs back to back.
	th.Request() // 1500 ms + ε: deferred to 2000 ms
	clk.mu.Lock()
	late := clk.pending
	clk.pending, clk.at = nil, nil // the timer has not fired yet...
	clk.now = clk.now.Add(600 * time.Millisecond)
	clk.mu.Unlock()
	if !th.Request() { // ...when this request comes, 600 ms later
		t.Errorf("request after the interval did not run")
	}
	clk.Advance(100 * time.Millisecond)
	th.Request() // a new deferred run, not the late timer's
	for _, f := range late {
		f() // the late timer fires: it must run neither its own nor the new one
	}
	if len(fired) != 5 {
		t.Errorf("fired %d times, want 5: %v", len(fired), fired)
	}
	clk.Advance(400 * time.Millisecond) // the new deferred run is due
	if len(fired) != 6 {
		t.Errorf("fired %d times, want 6: %v", len(fired), fired)
	}
	th.Stop()
	if th.Request() {
		t.Errorf("stopped throttle ran")
	}
}

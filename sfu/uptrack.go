package sfu

// Ownership: the read loop goroutine (one per UpTrack) owns the read buffer,
// the sequence unwrapper and every DownTrack's enqueue-side state. The
// subscriber list is a copy-on-write slice: readers Load it without a lock,
// writers (Bind/Unbind of DownTracks) swap it under mu.

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"
)

// KeyframeInterval is the minimum time between two keyframe requests sent to
// the publisher of one track.
const KeyframeInterval = 500 * time.Millisecond

// Cache sizes per kind: about 1.7 s of 2.5 Mbit/s video, 1.3 s of audio.
const (
	videoCacheSize = 512
	audioCacheSize = 64
)

// UpTrack is one track a participant publishes.
type UpTrack struct {
	id       string
	remoteID string // the publisher's own msid track id
	streamID string
	kind     webrtc.RTPCodecType
	codec    webrtc.RTPCodecParameters
	ssrc     uint32
	remote   *webrtc.TrackRemote
	receiver *webrtc.RTPReceiver
	cache    *PacketCache
	stats    *Stats
	keyframe *Throttle

	mu    sync.Mutex
	downs atomic.Pointer[[]*DownTrack]

	// isKeyframe tells whether a payload starts a keyframe of this codec.
	isKeyframe func([]byte) bool
	// keyWaiters counts DownTracks waiting for a keyframe; read loop only.
	keyWaiters int

	// RFC 6464 audio levels: the read loop adds, LevelSample takes.
	levelID    uint8 // negotiated extension id, 0 if none
	levelSum   atomic.Uint64
	levelCount atomic.Uint64

	done chan struct{}
}

// newUpTrack builds an UpTrack; remote and receiver are set by the caller
// (tests and benchmarks leave them nil and call forward directly).
func newUpTrack(id, streamID string, kind webrtc.RTPCodecType, codec webrtc.RTPCodecParameters, ssrc uint32,
	stats *Stats, writeRTCP func([]rtcp.Packet) error) *UpTrack {
	size := audioCacheSize
	if kind == webrtc.RTPCodecTypeVideo {
		size = videoCacheSize
	}
	u := &UpTrack{
		id: id, streamID: streamID, kind: kind, codec: codec, ssrc: ssrc,
		cache: NewPacketCache(size), stats: stats, done: make(chan struct{}),
	}
	u.downs.Store(&[]*DownTrack{})
	u.isKeyframe = keyframeFunc(codec.MimeType)
	u.keyframe = NewThrottle(KeyframeInterval, func() {
		// RFC 4585 §6.3.1: Picture Loss Indication.
		_ = writeRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: u.ssrc}})
	})
	return u
}

// ID is the server-assigned track id, unique within the server.
func (u *UpTrack) ID() string { return u.id }

// RemoteID is the track id the publisher gave the track (its msid track
// id, a browser's MediaStreamTrack.id); publishers refer to their tracks
// by it.
func (u *UpTrack) RemoteID() string { return u.remoteID }

// StreamID is the publisher's participant id; subscribers see it as the
// msid stream id of every track of that participant.
func (u *UpTrack) StreamID() string { return u.streamID }

// Kind is audio or video.
func (u *UpTrack) Kind() webrtc.RTPCodecType { return u.kind }

// Codec is the codec the publisher sends.
func (u *UpTrack) Codec() webrtc.RTPCodecParameters { return u.codec }

// Done is closed when the publisher stopped sending the track.
func (u *UpTrack) Done() <-chan struct{} { return u.done }

// LevelSample returns the mean loudness (127 minus the RFC 6464 level in
// -dBov: 0 is silence, 127 is full scale) of the audio packets since the
// previous call, and how many packets carried a level.
func (u *UpTrack) LevelSample() (loudness float64, packets int) {
	sum, n := u.levelSum.Swap(0), u.levelCount.Swap(0)
	if n == 0 {
		return 0, 0
	}
	return float64(sum) / float64(n), int(n)
}

// Subscribers returns the number of bound DownTracks.
func (u *UpTrack) Subscribers() int { return len(*u.downs.Load()) }

// RequestKeyframe asks the publisher for a keyframe, at most once per
// KeyframeInterval; requests inside the interval are merged into one at its
// end. Audio tracks ignore it.
func (u *UpTrack) RequestKeyframe() {
	if u.kind == webrtc.RTPCodecTypeVideo {
		u.keyframe.Request()
	}
}

func (u *UpTrack) addDown(d *DownTrack) {
	u.mu.Lock()
	old := *u.downs.Load()
	next := make([]*DownTrack, 0, len(old)+1)
	next = append(append(next, old...), d)
	u.downs.Store(&next)
	u.mu.Unlock()
}

func (u *UpTrack) removeDown(d *DownTrack) {
	u.mu.Lock()
	old := *u.downs.Load()
	next := make([]*DownTrack, 0, len(old))
	for _, x := range old {
		if x != d {
			next = append(next, x)
		}
	}
	u.downs.Store(&next)
	u.mu.Unlock()
}

// readLoop is the UpTrack's goroutine: read, cache, hand to subscribers.
// It allocates nothing per packet and never blocks on a subscriber.
func (u *UpTrack) readLoop() {
	defer close(u.done)
	defer u.keyframe.Stop()
	buf := make([]byte, maxPacketSize)
	var hdr rtp.Header
	hdr.CSRC = make([]uint32, 0, 15)
	var unwrap SeqUnwrapper
	k := kindOf(u.kind)
	for {
		n, _, err := u.remote.Read(buf)
		if err != nil {
			return
		}
		u.forward(buf[:n], &hdr, &unwrap, k)
	}
}

// forward is one step of the read loop, separated for benchmarks.
func (u *UpTrack) forward(pkt []byte, hdr *rtp.Header, unwrap *SeqUnwrapper, k Kind) {
	hl, err := hdr.Unmarshal(pkt)
	if err != nil {
		return
	}
	u.stats.PacketsIn[k].Add(1)
	u.stats.BytesIn[k].Add(uint64(len(pkt)))
	if u.levelID != 0 {
		// RFC 6464 §3: one byte, V bit and the level in -dBov (127 = silence).
		if b := hdr.GetExtension(u.levelID); len(b) > 0 {
			u.levelSum.Add(uint64(127 - b[0]&0x7f))
			u.levelCount.Add(1)
		}
	}
	ext := unwrap.Unwrap(hdr.SequenceNumber)
	if !u.cache.Put(ext, pkt) {
		return
	}
	key := false
	if u.keyWaiters > 0 {
		end := len(pkt)
		if hdr.Padding && end > hl {
			end -= int(pkt[end-1])
		}
		key = end > hl && u.isKeyframe(pkt[hl:end])
	}
	for _, d := range *u.downs.Load() {
		d.enqueue(ext, hdr.Marker, key)
	}
}

// drainRTCP reads the receiver's RTCP so the interceptors (reports, NACK
// generator, TWCC) see it; the packets themselves are not needed here.
func (u *UpTrack) drainRTCP() {
	buf := make([]byte, maxPacketSize)
	for {
		if _, _, err := u.receiver.Read(buf); err != nil {
			return
		}
	}
}

//go:build !race

package sfu

import (
	"testing"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"
)

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

// Reading RFC 6464 audio levels on the packet path allocates nothing.
func TestAudioLevelAllocatesNothing(t *testing.T) {
	stats := &Stats{}
	opus := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000}, PayloadType: 111}
	up := newUpTrack("TRa", "pub", webrtc.RTPCodecTypeAudio, opus, 7, stats, func([]rtcp.Packet) error { return nil })
	up.levelID = 1
	p := &rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 7}, Payload: make([]byte, 100)}
	if err := p.SetExtension(1, []byte{0x80 | 30}); err != nil {
		t.Fatal(err)
	}
	pkt, _ := p.Marshal()
	var hdr rtp.Header
	hdr.CSRC = make([]uint32, 0, 15)
	var unwrap SeqUnwrapper
	up.forward((*up.layers.Load())[0], pkt, &hdr, &unwrap, KindAudio) // warm up
	allocs := testing.AllocsPerRun(1000, func() {
		pkt[2]++
		up.forward((*up.layers.Load())[0], pkt, &hdr, &unwrap, KindAudio)
	})
	if allocs != 0 {
		t.Errorf("%.2f allocations per audio packet, want 0", allocs)
	}
	// 1 + AllocsPerRun's own warm-up run + 1000 runs.
	if l, n := up.LevelSample(); n != 1002 || l != 127-30 {
		t.Errorf("level sample %v over %d packets, want 97 over 1002", l, n)
	}
}

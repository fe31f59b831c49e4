package sfu

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v3"
)

// The score's thresholds, one signal at a time, over a window.
func TestScored(t *testing.T) {
	clean := Direction{Packets: 100}
	cases := []struct {
		name     string
		window   []Direction
		rtt      time.Duration
		pathDown bool
		want     Quality
	}{
		{"clean", []Direction{clean, clean, clean}, 20 * time.Millisecond, false, QualityExcellent},
		{"nothing sent", []Direction{{}, {}}, 0, false, QualityExcellent},
		{"path down", []Direction{clean}, 0, true, QualityLost},
		{"1 % loss", []Direction{{Packets: 100, Lost: 1}, clean, clean}, 0, false, QualityExcellent},
		{"3 % loss", []Direction{{Packets: 100, Lost: 9}, clean, clean}, 0, false, QualityGood},
		{"10 % loss", []Direction{{Packets: 100, Lost: 30}, clean, clean}, 0, false, QualityPoor},
		{"loss over too few packets", []Direction{{Packets: 20, Lost: 10}}, 0, false, QualityExcellent},
		{"RTT 250 ms", []Direction{clean}, 250 * time.Millisecond, false, QualityGood},
		{"RTT 500 ms", []Direction{clean}, 500 * time.Millisecond, false, QualityPoor},
		{"jitter 40 ms", []Direction{clean, {Packets: 100, Jitter: 40 * time.Millisecond}}, 0, false, QualityGood},
		{"jitter 80 ms", []Direction{{Packets: 100, Jitter: 80 * time.Millisecond}}, 0, false, QualityPoor},
		{"a freeze", []Direction{clean, {Packets: 100, Frozen: true}, clean}, 0, false, QualityPoor},
		{"PLIs", []Direction{{Packets: 100, PLIs: 1}, {Packets: 100, PLIs: 2}}, 0, false, QualityGood},
		{"held to a lower layer", []Direction{{Packets: 100, Limited: true}}, 0, false, QualityGood},
	}
	for _, c := range cases {
		if got := Scored(c.window, c.rtt, c.pathDown); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

// ntpMiddle and a receiver report's LSR/DLSR give the round trip.
func TestReceiverReportRTT(t *testing.T) {
	d := &DownTrack{clock: 48000}
	sentSR := time.Now().Add(-130 * time.Millisecond)
	delay := uint32(30 * 65536 / 1000) // the subscriber held the SR 30 ms
	d.receiverReport(rtcpReport(ntpMiddle(sentSR), delay, 480), time.Now())
	rtt := time.Duration(d.rtt.Load())
	if rtt < 95*time.Millisecond || rtt > 110*time.Millisecond {
		t.Errorf("rtt %v, want about 100 ms", rtt)
	}
	if j := time.Duration(d.rrJitter.Load()); j != 10*time.Millisecond {
		t.Errorf("jitter %v, want 10 ms (480 ticks at 48 kHz)", j)
	}
}

func rtcpReport(lsr, dlsr, jitter uint32) rtcp.ReceptionReport {
	return rtcp.ReceptionReport{LastSenderReport: lsr, Delay: dlsr, Jitter: jitter}
}

// qualityPeer is a Peer with one subscription of up, connected, for the
// sampler alone (no pion underneath).
func qualityPeer(up *UpTrack) (*Peer, *DownTrack) {
	d := newDownTrack(up, &Stats{})
	p := &Peer{downs: map[*UpTrack]*DownTrack{up: d}, ups: map[*UpTrack]struct{}{}}
	p.iceUp.Store(true)
	return p, d
}

// A subscriber's audio loss: what its receiver reports count, less the
// holes the server left (the publisher's upstream loss), even when the
// reports come every 5 s, as browsers send them for audio, and the holes
// grow every second between them.
func TestAudioLossNetOfHolesAcrossSparseReports(t *testing.T) {
	opus := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000}, PayloadType: 111}
	up := newUpTrack("TRa", "pub", webrtc.RTPCodecTypeAudio, opus, 7, &Stats{}, nil)
	p, d := qualityPeer(up)
	report := func(highest, lost uint32) {
		d.receiverReport(rtcp.ReceptionReport{LastSequenceNumber: highest, TotalLost: lost}, time.Now())
	}
	report(1000, 0)
	p.SampleQuality() // totals only
	var lost, expected uint64
	for sec := 1; sec <= 10; sec++ {
		d.holes.Add(5) // 10 % of 50 packets a second never reached the server
		if sec%5 == 0 {
			// The subscriber saw those and 1 % more lost on its own link.
			report(uint32(1000+50*sec), uint32(5*sec+sec/2))
		}
		s := p.SampleQuality()
		lost, expected = lost+s.Down.Lost, expected+s.Down.Packets
	}
	if expected != 500 || lost > 5 {
		t.Errorf("%d lost of %d expected: the holes must not count as the subscriber's loss", lost, expected)
	}
}

// A video the server muted, or whose tile is hidden, is no freeze; a
// paused subscription is not held down by bandwidth.
func TestFreezeNeedsAVisibleLiveVideo(t *testing.T) {
	vp8 := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96}
	up := newUpTrack("TRv", "pub", webrtc.RTPCodecTypeVideo, vp8, 9, &Stats{}, nil)
	p, d := qualityPeer(up)
	l := (*up.layers.Load())[0]
	second := func(arrived, sent uint64) QualitySample {
		l.expected.Add(arrived)
		d.sentPackets.Add(sent)
		return p.SampleQuality()
	}
	second(100, 100)
	if s := second(100, 100); s.Down.Frozen {
		t.Fatal("frozen while flowing")
	}
	if s := second(100, 0); !s.Down.Frozen {
		t.Error("not frozen: the source sent, the subscriber got nothing")
	}
	up.SetMuted(true)
	if s := second(100, 0); s.Down.Frozen {
		t.Error("frozen while the server mutes the track")
	}
	up.SetMuted(false)
	d.paused.Store(true)
	d.limited.Store(true)
	if s := second(100, 0); s.Down.Frozen || s.Down.Limited {
		t.Errorf("hidden tile: frozen %v, limited %v", s.Down.Frozen, s.Down.Limited)
	}
	d.paused.Store(false)
	if s := second(0, 0); s.Down.Frozen {
		t.Error("frozen while the publisher sends nothing")
	}
}

// Upstream loss is over the packets expected, and a late packet or a
// duplicate neither counts nor takes back a loss.
func TestUpstreamLossOverExpected(t *testing.T) {
	l := &layer{}
	for _, ext := range []uint64{1 << 16, 1<<16 + 1, 1<<16 + 3, 1<<16 + 2, 1<<16 + 3, 1<<16 + 4, 1<<16 + 9} {
		l.arrived(ext)
	}
	if e, lost := l.expected.Load(), l.lost.Load(); e != 10 || lost != 5 {
		t.Errorf("expected %d lost %d, want 10 and 5 (1 + 4 skipped)", e, lost)
	}
}

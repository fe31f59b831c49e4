package sfu

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
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

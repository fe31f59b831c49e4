package sfu

// A DownTrack's RTCP side: its reader goroutine (started by the Peer for
// the track's RTPSender) turns the subscriber's PLIs and FIRs into keyframe
// requests, NACKs into the writer's rtx channel, and receiver reports into
// the quality counters (quality.go). It owns only its read buffer.

import (
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v3"
)

// readRTCP reads the subscriber's RTCP for this track until the sender
// stops: PLI and FIR become a (throttled) keyframe request to the publisher,
// NACKs are answered from the cache (RFC 4585 §6.2.1).
func (d *DownTrack) readRTCP(sender *webrtc.RTPSender) {
	buf := make([]byte, maxPacketSize)
	for failed := 0; ; {
		n, attrs, err := sender.Read(buf)
		if err != nil {
			if rtcpReadEnds(err, &failed) {
				return
			}
			d.stats.RTCPReadErrors.Add(1)
			continue
		}
		failed = 0
		// The interceptors parsed this batch already and left the packets
		// in the attributes; parsing again would double the allocations
		// (a TWCC feedback is a pointer per reported packet).
		var pkts []rtcp.Packet
		if attrs != nil {
			pkts, err = attrs.GetRTCPPackets(buf[:n])
		} else {
			pkts, err = rtcp.Unmarshal(buf[:n])
		}
		if err != nil {
			d.stats.RTCPReadErrors.Add(1)
			continue
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication:
				d.stats.PLIsReceived.Add(1)
				d.plis.Add(1)
				d.want.Load().requestKeyframe()
			case *rtcp.FullIntraRequest:
				d.stats.FIRsReceived.Add(1)
				d.plis.Add(1)
				d.want.Load().requestKeyframe()
			case *rtcp.TransportLayerNack:
				d.stats.NACKsReceived.Add(1)
				d.nack(p)
			case *rtcp.TransportLayerCC:
				if d.est != nil {
					d.est.twcc.Store(true)
				}
			case *rtcp.ReceiverEstimatedMaximumBitrate:
				if d.est != nil {
					d.est.remb.Store(uint64(p.Bitrate))
				}
			case *rtcp.ReceiverReport:
				d.reports(p.Reports)
			case *rtcp.SenderReport:
				d.reports(p.Reports)
			}
		}
	}
}

// reports takes the report block about this track, if one is there (a
// compound packet may report on every track of the subscriber's).
func (d *DownTrack) reports(rs []rtcp.ReceptionReport) {
	ssrc := d.boundSSRC.Load()
	for _, r := range rs {
		if r.SSRC == ssrc {
			d.receiverReport(r, time.Now())
		}
	}
}

func (d *DownTrack) nack(p *rtcp.TransportLayerNack) {
	for _, pair := range p.Nacks {
		for _, seq := range pair.PacketList() {
			select {
			case d.rtx <- seq:
			case <-d.done:
				return
			default: // retransmission queue full: the subscriber will ask again
			}
		}
	}
}

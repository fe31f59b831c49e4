package sfu

import (
	"fmt"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"
)

var videoFeedback = []webrtc.RTCPFeedback{
	{Type: "goog-remb"},
	{Type: webrtc.TypeRTCPFBTransportCC},
	{Type: "ccm", Parameter: "fir"},
	{Type: "nack"},
	{Type: "nack", Parameter: "pli"},
}

// RegisterCodecs registers the codecs and header extensions Roundtable
// forwards: Opus, VP8, VP9 and H.264 (payload types as Chrome numbers them)
// with NACK, PLI, FIR and transport-cc feedback, and the mid, rid,
// repaired-rid, audio-level and transport-wide-cc header extensions. The test
// client uses the same set.
func RegisterCodecs(m *webrtc.MediaEngine) error {
	audio := []webrtc.RTPCodecParameters{{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine:  "minptime=10;useinbandfec=1",
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}},
		},
		PayloadType: 111,
	}}
	video := []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFeedback}, PayloadType: 96},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0", RTCPFeedback: videoFeedback}, PayloadType: 98},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", RTCPFeedback: videoFeedback}, PayloadType: 102},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", RTCPFeedback: videoFeedback}, PayloadType: 127},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032", RTCPFeedback: videoFeedback}, PayloadType: 123},
	}
	for _, c := range audio {
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeAudio); err != nil {
			return fmt.Errorf("codec %s: %w", c.MimeType, err)
		}
	}
	for _, c := range video {
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			return fmt.Errorf("codec %s: %w", c.MimeType, err)
		}
	}
	exts := []struct {
		uri   string
		kinds []webrtc.RTPCodecType
	}{
		{sdp.SDESMidURI, []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo}},
		{sdp.SDESRTPStreamIDURI, []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo}},
		{repairedRIDURI, []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo}},
		{sdp.AudioLevelURI, []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio}},
		{sdp.TransportCCURI, []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo}},
	}
	for _, e := range exts {
		for _, k := range e.kinds {
			if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: e.uri}, k); err != nil {
				return fmt.Errorf("header extension %s: %w", e.uri, err)
			}
		}
	}
	return nil
}

// registerInterceptors is the one place that decides which pion interceptors
// run on one PeerConnection, patterned on webrtc.RegisterDefaultInterceptors
// but without the NACK responder: subscribers' NACKs are answered from the
// shared PacketCache.
//
//   - rtcpCounter (innermost, so it sees the RTCP the others write);
//   - NACK generator: NACKs toward publishers on upstream loss (RFC 4585 §6.2.1);
//   - receiver and sender reports (RFC 3550 §6.4);
//   - TWCC feedback to publishers, for their send-side bandwidth estimate;
//   - twccTrim, which drops the padding pion would count as lost packets;
//   - send-side bandwidth estimation toward this subscriber: Google
//     congestion control fed by the subscriber's TWCC feedback, with the
//     transport-wide sequence number extension added to every packet sent
//     (outermost, so the estimator sees the extension); both behind a gate
//     that opens only while the subscriber receives simulcast.
func registerInterceptors(r *interceptor.Registry, stats *Stats) (*estimator, error) {
	r.Add(&rtcpCounterFactory{stats: stats})
	gen, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return nil, fmt.Errorf("nack generator: %w", err)
	}
	r.Add(gen)
	rr, err := report.NewReceiverInterceptor()
	if err != nil {
		return nil, fmt.Errorf("receiver reports: %w", err)
	}
	r.Add(rr)
	sr, err := report.NewSenderInterceptor()
	if err != nil {
		return nil, fmt.Errorf("sender reports: %w", err)
	}
	r.Add(sr)
	tw, err := twcc.NewSenderInterceptor()
	if err != nil {
		return nil, fmt.Errorf("twcc: %w", err)
	}
	r.Add(tw)
	est := &estimator{}
	ccf, err := cc.NewInterceptor(func() (cc.BandwidthEstimator, error) {
		return gcc.NewSendSideBWE(gcc.SendSideBWEInitialBitrate(InitialEstimate),
			gcc.SendSideBWEMinBitrate(30_000), gcc.SendSideBWEPacer(gcc.NewNoOpPacer()))
	})
	if err != nil {
		return nil, fmt.Errorf("congestion control: %w", err)
	}
	ccf.OnNewPeerConnection(func(_ string, b cc.BandwidthEstimator) { est.set(b) })
	r.Add(twccTrimFactory{}) // must read feedback before the estimator does
	r.Add(gateFactory{inner: ccf, est: est})
	ext, err := twcc.NewHeaderExtensionInterceptor()
	if err != nil {
		return nil, fmt.Errorf("twcc header extension: %w", err)
	}
	r.Add(gateFactory{inner: ext, est: est})
	return est, nil
}

// repairedRIDURI is the RTP header extension naming the stream an RTX
// packet repairs (RFC 8852 §3.2); pion/sdp v3.0.9 has no constant for it.
const repairedRIDURI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"

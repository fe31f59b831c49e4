package sfu

import (
	"fmt"
	"maps"
	"strconv"
	"strings"

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

// Codec is one codec Roundtable forwards, and its media kind.
type Codec struct {
	webrtc.RTPCodecParameters
	Kind webrtc.RTPCodecType
}

// Codecs lists the codecs Roundtable forwards, payload types as Chrome
// numbers them: Opus (111), VP8 (96), VP9 profile 0 (98) and H.264
// constrained baseline, baseline and high (102, 127, 123), all packetization
// mode 1, video with NACK, PLI, FIR, REMB and transport-cc feedback.
func Codecs() []Codec {
	h264 := func(pt webrtc.PayloadType, profile string) Codec {
		return Codec{Kind: webrtc.RTPCodecTypeVideo, RTPCodecParameters: webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
				SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + profile, RTCPFeedback: videoFeedback},
			PayloadType: pt}}
	}
	return []Codec{
		{Kind: webrtc.RTPCodecTypeAudio, RTPCodecParameters: webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
				SDPFmtpLine: "minptime=10;useinbandfec=1", RTCPFeedback: []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}}},
			PayloadType: 111}},
		{Kind: webrtc.RTPCodecTypeVideo, RTPCodecParameters: webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFeedback},
			PayloadType:        96}},
		{Kind: webrtc.RTPCodecTypeVideo, RTPCodecParameters: webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0", RTCPFeedback: videoFeedback},
			PayloadType:        98}},
		h264(102, "42e01f"),
		h264(127, "42001f"),
		h264(123, "640032"),
	}
}

// RegisterCodecs registers Codecs and the header extensions Roundtable
// uses (RegisterHeaderExtensions). The test client uses the same set.
func RegisterCodecs(m *webrtc.MediaEngine) error {
	for _, c := range Codecs() {
		if err := m.RegisterCodec(c.RTPCodecParameters, c.Kind); err != nil {
			return fmt.Errorf("codec %s: %w", c.MimeType, err)
		}
	}
	return RegisterHeaderExtensions(m)
}

// RegisterHeaderExtensions registers the mid, rid, repaired-rid,
// audio-level and transport-wide-cc header extensions.
func RegisterHeaderExtensions(m *webrtc.MediaEngine) error {
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

// codecFit ranks how well have can carry media encoded as want: 0 not at
// all, 1 the same codec (for H.264, a profile whose decoder reads want's),
// 2 the same codec with the same packetization and profile (H.264
// packetization-mode and profile_idc, RFC 6184 §8.1; VP9 profile-id), 3
// identical format parameters. H.264 needs the same packetization mode,
// and a receiver of a lower profile than the stream cannot decode it
// (h264Decodes). Payload type numbers do not matter: each PeerConnection
// numbers codecs its own way (Firefox: Opus 109, VP8 120; Chrome: Opus 111,
// VP8 96).
func codecFit(want, have webrtc.RTPCodecParameters) int {
	if !strings.EqualFold(want.MimeType, have.MimeType) || want.ClockRate != have.ClockRate {
		return 0
	}
	w, h := fmtpParams(want.SDPFmtpLine), fmtpParams(have.SDPFmtpLine)
	isH264 := strings.EqualFold(want.MimeType, webrtc.MimeTypeH264)
	if isH264 && (w["packetization-mode"] != h["packetization-mode"] || !h264Decodes(h["profile-level-id"], w["profile-level-id"])) {
		return 0
	}
	switch {
	case maps.Equal(w, h):
		return 3
	case isH264 && profileIDC(w["profile-level-id"]) == profileIDC(h["profile-level-id"]):
		return 2
	case strings.EqualFold(want.MimeType, webrtc.MimeTypeVP9) && w["profile-id"] == h["profile-id"]:
		return 2
	}
	return 1
}

// h264Decodes reports whether a receiver that negotiated profile-level-id
// recv decodes a stream of profile-level-id sent (RFC 6184 §8.1; H.264
// Annex A): Baseline streams as browsers send them (constrained, no FMO or
// ASO) decode anywhere, Main needs Main or High, High needs High; an
// absent or unreadable id is Baseline (the RFC's default 42000a).
func h264Decodes(recv, sent string) bool {
	r, s := profileIDC(recv), profileIDC(sent)
	switch s {
	case 0x42:
		return true
	case 0x4d:
		return r == 0x4d || r == 0x64
	}
	return r == s
}

// profileIDC reads profile_idc, the first byte of an H.264 profile-level-id
// (six hex digits); 0x42 (Baseline) when absent or unreadable.
func profileIDC(id string) int {
	if len(id) < 2 {
		return 0x42
	}
	v, err := strconv.ParseUint(id[:2], 16, 8)
	if err != nil {
		return 0x42
	}
	return int(v)
}

// fmtpParams parses an a=fmtp parameter list ("k=v;k=v"); keys are
// lower-cased, H.264's packetization-mode defaults to 0 and VP9's profile-id
// to 0 (RFC 6184 §8.1, RFC 9628 §6).
func fmtpParams(line string) map[string]string {
	out := map[string]string{"packetization-mode": "0", "profile-id": "0"}
	for _, kv := range strings.Split(line, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if k != "" {
			out[strings.ToLower(k)] = strings.ToLower(v)
		}
	}
	return out
}

// pickCodec returns the codec of list that carries want best (codecFit),
// the first of equals; false when none can.
func pickCodec(want webrtc.RTPCodecParameters, list []webrtc.RTPCodecParameters) (webrtc.RTPCodecParameters, bool) {
	best, fit := webrtc.RTPCodecParameters{}, 0
	for _, c := range list {
		if f := codecFit(want, c); f > fit {
			best, fit = c, f
		}
	}
	return best, fit > 0
}

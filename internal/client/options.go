package client

// Ways a participant may differ from the default one, as other clients do:
// codecs numbered and chosen otherwise (Firefox, a client that decodes
// little), simulcast layers named and ordered otherwise, and data channels
// opened otherwise.

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/sfu"
)

// FirefoxCodecs registers Opus, VP8, VP9 and H.264 with the payload types
// Firefox gives them (Opus 109, VP8 120, VP9 121, H.264 126 and 97) and
// Firefox's format parameters, where Chrome and the server use 111, 96, 98,
// 102: a subscriber must get each packet with the number its m-line says.
func FirefoxCodecs(m *webrtc.MediaEngine) error {
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"},
		{Type: "goog-remb"}, {Type: webrtc.TypeRTCPFBTransportCC}}
	codecs := []struct {
		kind webrtc.RTPCodecType
		c    webrtc.RTPCodecParameters
	}{
		{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "maxplaybackrate=48000;stereo=1;useinbandfec=1"}, PayloadType: 109}},
		{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, SDPFmtpLine: "max-fs=12288;max-fr=60", RTCPFeedback: fb}, PayloadType: 120}},
		{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "max-fs=12288;max-fr=60", RTCPFeedback: fb}, PayloadType: 121}},
		{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1", RTCPFeedback: fb}, PayloadType: 126}},
		{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "profile-level-id=42e01f;level-asymmetry-allowed=1", RTCPFeedback: fb}, PayloadType: 97}},
	}
	for _, c := range codecs {
		if err := m.RegisterCodec(c.c, c.kind); err != nil {
			return fmt.Errorf("codec %s: %w", c.c.MimeType, err)
		}
	}
	return sfu.RegisterHeaderExtensions(m)
}

// OnlyCodecs returns a Config.Codecs that registers the server's Opus and
// only those of its video codecs whose MIME type is listed, like a client
// that can decode nothing else.
func OnlyCodecs(mimeTypes ...string) func(*webrtc.MediaEngine) error {
	return func(m *webrtc.MediaEngine) error {
		for _, c := range sfu.Codecs() {
			if c.Kind == webrtc.RTPCodecTypeAudio || slices.ContainsFunc(mimeTypes, func(t string) bool { return strings.EqualFold(t, c.MimeType) }) {
				if err := m.RegisterCodec(c.RTPCodecParameters, c.Kind); err != nil {
					return fmt.Errorf("codec %s: %w", c.MimeType, err)
				}
			}
		}
		return sfu.RegisterHeaderExtensions(m)
	}
}

// SimulcastLayer is one layer of a simulcast track: its rid, its frame size
// (announced in its keyframes) and its packets per frame.
type SimulcastLayer struct {
	RID             string
	Width, Height   int
	PacketsPerFrame int
}

// DefaultSimulcast is what browsers send: rids q, h, f (lowest first),
// 320x180, 640x360, 1280x720, with 1, 2 and 4 packets per frame (scaled by
// Config.PacketsPerFrame/2).
var DefaultSimulcast = []SimulcastLayer{
	{RID: "q", Width: 320, Height: 180, PacketsPerFrame: 1},
	{RID: "h", Width: 640, Height: 360, PacketsPerFrame: 2},
	{RID: "f", Width: 1280, Height: 720, PacketsPerFrame: 4},
}

// DataChannelMode is how a client opens its data channel.
type DataChannelMode int

const (
	// DataInBand creates the "roundtable" channel in band (DCEP) before the
	// first offer, as the web client does.
	DataInBand DataChannelMode = iota
	// DataNegotiated creates it pre-negotiated: negotiated: true, id 0.
	DataNegotiated
	// DataOtherFirst creates a channel labelled "chat" first, then
	// "roundtable" in band.
	DataOtherFirst
)

func (c *Client) openDataChannel() error {
	var init *webrtc.DataChannelInit
	switch c.cfg.DataChannel {
	case DataNegotiated:
		negotiated, id := true, uint16(0)
		init = &webrtc.DataChannelInit{Negotiated: &negotiated, ID: &id}
	case DataOtherFirst:
		other, err := c.pc.CreateDataChannel("chat", nil)
		if err != nil {
			return fmt.Errorf("data channel chat: %w", err)
		}
		other.OnClose(func() { c.otherClosed.Store(true) })
	}
	dc, err := c.pc.CreateDataChannel(sfu.DataLabel, init)
	if err != nil {
		return fmt.Errorf("data channel: %w", err)
	}
	c.mu.Lock()
	c.dc = dc
	open := c.dcOpen
	select {
	case <-open: // a PeerConnection before this one's (migrate)
		open = make(chan struct{})
		c.dcOpen = open
	default:
	}
	c.mu.Unlock()
	dc.OnOpen(func() { close(open) })
	dc.OnMessage(c.onData)
	return nil
}

// ReopenDataChannel closes the data channel and opens a new in-band
// "roundtable" channel in its place (no renegotiation: the SCTP
// association stays), returning once it is open.
func (c *Client) ReopenDataChannel(timeout time.Duration) error {
	c.mu.Lock()
	old := c.dc
	c.mu.Unlock()
	if err := old.Close(); err != nil {
		return fmt.Errorf("close data channel: %w", err)
	}
	dc, err := c.pc.CreateDataChannel(sfu.DataLabel, nil)
	if err != nil {
		return fmt.Errorf("data channel: %w", err)
	}
	open := make(chan struct{})
	dc.OnOpen(func() { close(open) })
	dc.OnMessage(c.onData)
	c.mu.Lock()
	c.dc = dc
	c.mu.Unlock()
	select {
	case <-open:
		return nil
	case <-time.After(timeout):
		return errClosed
	}
}

func (c *Client) dataChannel() *webrtc.DataChannel {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dc
}

// OtherChannelClosed reports whether the server closed the "chat" channel
// of a DataOtherFirst client.
func (c *Client) OtherChannelClosed() bool { return c.otherClosed.Load() }

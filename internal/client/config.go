package client

// Config is a plain value, copied by Join and read-only after defaults.

import (
	"crypto/tls"
	"net"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/sfu"
)

// Config describes one participant.
type Config struct {
	URL  string // ws://host:port/ws
	Room string
	Name string
	// Token is the join token, for servers that require one.
	Token string
	// AutoResume makes the client, as the web client does, open a new
	// socket at once (and again with backoff, 0.1 s doubling to 2 s, for
	// 30 s) and send resume when its socket drops without a bye; a
	// "resumed" that says "migrated" (the participant continues on another
	// node of a cluster) makes it start a new PeerConnection with the same
	// tracks.
	AutoResume bool
	// Audio and Video are how many synthetic tracks to publish.
	Audio, Video int
	// VideoFPS (default 30), PacketsPerFrame (default 2, keyframes 3x),
	// PacketSize (default 1000 bytes of payload).
	VideoFPS, PacketsPerFrame, PacketSize int
	// KeyframeInterval between periodic keyframes (default 5 s); PLIs cause
	// extra ones.
	KeyframeInterval time.Duration
	// OnPacket, when set, receives every RTP packet of every remote track
	// (on that track's read goroutine; p and its payload are reused after
	// it returns) instead of the per-track statistics, which keep a map
	// entry per sequence number: load tests use it.
	OnPacket func(r *RemoteTrack, p *rtp.Packet, pl Payload, err error)
	// AllInterfaces lets ICE use every interface; by default only loopback.
	AllInterfaces bool
	// Interfaces, when set, are the only interfaces ICE uses (loopback
	// candidates off unless "lo" is among them).
	Interfaces []string
	// Origin header for the WebSocket (default none).
	Origin string
	// TLS configures a wss: URL's connection (a test CA); nil: the
	// system's roots.
	TLS *tls.Config
	// Simulcast publishes each video track as three layers (rids q, h, f:
	// 320x180, 640x360 and 1280x720, with 1, 2 and 4 times PacketsPerFrame/2
	// packets per frame).
	Simulcast bool
	// VideoCodec is the MIME type of published video (default video/VP8;
	// video/VP9 and video/H264 work too: the payload is synthetic either way).
	VideoCodec string
	// NoTWCC leaves out TWCC feedback, like a receiver that only knows REMB.
	NoTWCC bool
	// Interceptors run innermost, before pion's NACK and report
	// interceptors (tests use them to impair the client's network).
	Interceptors []interceptor.Factory
	// DeferPeer makes Join return after "joined" without creating the
	// PeerConnection; StartPeer creates it and sends the first offer (tests:
	// a member whose data channel is not open yet).
	DeferPeer bool
	// HoldICE keeps the PeerConnection from connecting until ReleaseICE:
	// it negotiates, but no ICE candidate goes either way (trickled ones
	// wait; those in a description are taken out and wait). Tests: what
	// is negotiated before DTLS is up.
	HoldICE bool
	// Codecs registers the codecs the client offers and accepts, numbered
	// its own way (default sfu.RegisterCodecs: Chrome's numbers; see
	// FirefoxCodecs and OnlyCodecs).
	Codecs func(*webrtc.MediaEngine) error
	// SimulcastLayers describes the layers of a Simulcast track, in the
	// order the client adds them (default DefaultSimulcast).
	SimulcastLayers []SimulcastLayer
	// DataChannel is how the client opens its data channel (default
	// DataInBand).
	DataChannel DataChannelMode
	// Networks are the ICE network types the client gathers and connects
	// over (default UDP4; TCP4 makes active ICE-TCP candidates, RFC 6544).
	Networks []webrtc.NetworkType
	// IPFilter, when set, says which local addresses ICE gathers on; it
	// is asked again at every gathering, so a filter that changes its mind
	// and RestartICE make a client that moved to another address.
	IPFilter func(net.IP) bool
	// Relay, when set, makes the client connect through TURN only
	// (ICETransportPolicy relay), with the "joined" iceServers URLs of one
	// transport: "udp" (turn:…?transport=udp), "tcp" (turn:…?transport=tcp)
	// or "tls" (turns:). Empty: host candidates only, no ICE servers.
	Relay string
	// UseICEServers makes the client use every "joined" iceServers entry
	// with the default policy (host, reflexive and relayed candidates), as
	// a browser does.
	UseICEServers bool
	// OnServerOffer, when set, sees every server offer's answer before it
	// is sent and returns the SDP to send instead; "" sends nothing (a
	// client that never answers).
	OnServerOffer func(answer string) string
	// AudioFile and VideoFile, when set, are what the first audio and
	// video track send instead of synthetic payloads: real media, an Ogg
	// Opus file of one packet per page (ffmpeg -page_duration 20000) and
	// an IVF VP8 file, or with VideoCodec H.264 a .h264 Annex-B file with
	// access unit delimiters, paced by their timestamps, once; the track
	// then sends nothing more (filemedia.go).
	AudioFile, VideoFile string
}

func (c *Config) defaults() {
	if c.VideoFPS == 0 {
		c.VideoFPS = 30
	}
	if c.PacketsPerFrame == 0 {
		c.PacketsPerFrame = 2
	}
	if c.PacketSize == 0 {
		c.PacketSize = 1000
	}
	if c.VideoCodec == "" {
		c.VideoCodec = webrtc.MimeTypeVP8
	}
	if c.KeyframeInterval == 0 {
		c.KeyframeInterval = 5 * time.Second
	}
	if c.Codecs == nil {
		c.Codecs = sfu.RegisterCodecs
	}
	if c.Networks == nil {
		c.Networks = []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
	}
	if c.SimulcastLayers == nil {
		c.SimulcastLayers = DefaultSimulcast
	}
}

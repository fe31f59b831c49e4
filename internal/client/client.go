// Package client is a Roundtable participant written with pion: it joins
// through the real WebSocket signaling, publishes synthetic audio and video
// (see media.go), receives and verifies everything the server forwards, and
// uses the data channel. The integration tests use it, and so will the load
// tool: it holds no test-only shortcuts into the server.
//
// Ownership: negMu serializes the PeerConnection's signaling, which the
// signaling reader goroutine (server offers and answers) and the caller of
// Join, Publish and Unpublish (the client's own offers) both do; each
// published track has one sender goroutine and one RTCP goroutine; each
// received track has one reader goroutine. mu guards the observation state
// that tests read.
package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/ice/v2"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/sfu"
	sig "github.com/roundtable-sfu/roundtable/signal"
)

// Config describes one participant.
type Config struct {
	URL  string // ws://host:port/ws
	Room string
	Name string
	// Token is the join token, for servers that require one.
	Token string
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

// ErrorMsg is an {"type":"error"} the server sent.
type ErrorMsg struct{ Code, Message, Reason string }

// DataMsg is a data-channel message as received.
type DataMsg struct {
	From     string
	Data     []byte
	IsString bool
}

// Client is one connected participant.
type Client struct {
	cfg  Config
	ID   string
	Room string

	ws      *websocket.Conn
	wsMu    sync.Mutex
	pc      *webrtc.PeerConnection
	dc      *webrtc.DataChannel
	dcOpen  chan struct{}
	joined  chan sig.Inbound
	joinErr chan ErrorMsg
	closed  chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	joinMsg joinedMsg

	mu           sync.Mutex
	errors       []ErrorMsg
	bye          string
	participants map[string]string // id -> name
	published    map[string]string // track id -> participant id
	trackMeta    map[string]sig.TrackJSON
	remote       map[string]*RemoteTrack
	data         []DataMsg
	local        []*LocalTrack
	cands        []webrtc.ICECandidateInit
	serverCands  []string
	failures     []string
	negMu        sync.Mutex // serializes offers and answers
	collide      atomic.Bool
	iceChange    chan struct{} // kicked on every ICE connection state change (onOffer)
	collisions   atomic.Int64
	answers      atomic.Int64
	speakers     []SpeakerEvent
	connected    atomic.Bool
	offers       atomic.Int64
	otherClosed  atomic.Bool
	lastOffer    string // the server's latest offer, under mu
}

type joinedMsg struct {
	Type         string                `json:"type"`
	ID           string                `json:"id"`
	Room         string                `json:"room"`
	Participants []sig.ParticipantJSON `json:"participants"`
	ICEServers   []sig.ICEServer       `json:"iceServers"`
}

// serverMsg is any server message.
type serverMsg struct {
	Type        string          `json:"type"`
	ID          string          `json:"id"`
	SDP         string          `json:"sdp"`
	Candidate   *sig.Candidate  `json:"candidate"`
	Code        string          `json:"code"`
	Message     string          `json:"message"`
	Reason      string          `json:"reason"`
	Participant json.RawMessage `json:"participant"`
	Track       *sig.TrackJSON  `json:"track"`
	TrackID     string          `json:"trackId"`
}

// newAPI builds the client's pion API: the server's codecs, pion's default
// interceptors, loopback-only ICE unless told otherwise, and the DTLS server
// role (the client offers first, so it keeps that role when it answers).
func newAPI(codecs func(*webrtc.MediaEngine) error, networks []webrtc.NetworkType, ifaces []string, all, noTWCC bool, extra []interceptor.Factory) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := codecs(m); err != nil {
		return nil, err
	}
	r := &interceptor.Registry{}
	for _, f := range extra {
		r.Add(f)
	}
	if err := webrtc.ConfigureNack(m, r); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureRTCPReports(r); err != nil {
		return nil, err
	}
	// TWCC feedback, so the server can estimate the bandwidth toward us.
	if !noTWCC {
		if err := webrtc.ConfigureTWCCSender(m, r); err != nil {
			return nil, err
		}
	}
	// pion logs to stdout by default; the load tool's stdout is its result.
	se := webrtc.SettingEngine{LoggerFactory: &logging.DefaultLoggerFactory{Writer: os.Stderr, DefaultLogLevel: logging.LogLevelError}}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes(networks)
	switch {
	case len(ifaces) > 0:
		se.SetIncludeLoopbackCandidate(slices.Contains(ifaces, "lo"))
		se.SetInterfaceFilter(func(name string) bool { return slices.Contains(ifaces, name) })
	case !all:
		se.SetIncludeLoopbackCandidate(true)
		se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	}
	if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer); err != nil {
		return nil, err
	}
	se.SetICETimeouts(5*time.Second, 10*time.Second, 2*time.Second)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(r), webrtc.WithSettingEngine(se)), nil
}

// Join connects, joins the room and sends the first offer (with the data
// channel and every local track). It returns once "joined" has arrived;
// use WaitConnected to wait for media.
func Join(ctx context.Context, cfg Config) (*Client, error) {
	cfg.defaults()
	c, err := Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	join := map[string]string{"type": sig.TypeJoin, "room": cfg.Room, "name": cfg.Name}
	if cfg.Token != "" {
		join["token"] = cfg.Token
	}
	if err := c.SendJSON(join); err != nil {
		c.Abort()
		return nil, err
	}
	select {
	case <-c.joined:
	case e := <-c.joinErr:
		c.Abort()
		return nil, fmt.Errorf("join %s: %s: %s", cfg.Room, e.Code, e.Message)
	case <-c.closed:
		c.Abort()
		return nil, fmt.Errorf("join %s: %s", cfg.Room, c.lastError())
	case <-ctx.Done():
		c.Abort()
		return nil, fmt.Errorf("join %s: %w", cfg.Room, ctx.Err())
	}
	if cfg.DeferPeer {
		return c, nil
	}
	if err := c.startPeer(); err != nil {
		c.Abort()
		return nil, err
	}
	return c, nil
}

// StartPeer creates the PeerConnection of a client joined with DeferPeer
// and sends its first offer.
func (c *Client) StartPeer() error {
	if !c.cfg.DeferPeer || c.pc != nil {
		return errors.New("client: StartPeer needs DeferPeer and is called once")
	}
	return c.startPeer()
}

// Dial opens the signaling socket without joining (for protocol tests).
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	cfg.defaults()
	h := http.Header{}
	if cfg.Origin != "" {
		h.Set("Origin", cfg.Origin)
	}
	dialer := *websocket.DefaultDialer
	dialer.TLSClientConfig = cfg.TLS
	ws, _, err := dialer.DialContext(ctx, cfg.URL, h)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", cfg.URL, err)
	}
	c := &Client{
		cfg: cfg, ws: ws,
		dcOpen: make(chan struct{}), joined: make(chan sig.Inbound, 1), joinErr: make(chan ErrorMsg, 1),
		iceChange:    make(chan struct{}, 1),
		closed:       make(chan struct{}),
		participants: map[string]string{}, published: map[string]string{}, remote: map[string]*RemoteTrack{},
		trackMeta: map[string]sig.TrackJSON{},
	}
	c.wg.Add(1)
	go c.readLoop()
	return c, nil
}

func (c *Client) lastError() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errors) > 0 {
		e := c.errors[len(c.errors)-1]
		return e.Code + ": " + e.Message
	}
	return "connection closed"
}

// SendJSON sends one signaling message.
func (c *Client) SendJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.SendRaw(websocket.TextMessage, b)
}

// SendRaw sends one frame as is.
func (c *Client) SendRaw(messageType int, b []byte) error {
	c.wsMu.Lock()
	defer c.wsMu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.ws.WriteMessage(messageType, b); err != nil {
		return fmt.Errorf("websocket write: %w", err)
	}
	return nil
}

func (c *Client) startPeer() error {
	api, err := newAPI(c.cfg.Codecs, c.cfg.Networks, c.cfg.Interfaces, c.cfg.AllInterfaces, c.cfg.NoTWCC, c.cfg.Interceptors)
	if err != nil {
		return fmt.Errorf("client api: %w", err)
	}
	conf := webrtc.Configuration{}
	if c.cfg.Relay != "" {
		conf.ICETransportPolicy = webrtc.ICETransportPolicyRelay
		conf.ICEServers = relayServers(c.ICEServers(), c.cfg.Relay)
		if len(conf.ICEServers) == 0 {
			return fmt.Errorf("client: joined names no TURN server over %s", c.cfg.Relay)
		}
	} else if c.cfg.UseICEServers {
		for _, s := range c.ICEServers() {
			conf.ICEServers = append(conf.ICEServers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
		}
	}
	pc, err := api.NewPeerConnection(conf)
	if err != nil {
		return fmt.Errorf("client peer: %w", err)
	}
	c.pc = pc
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand != nil {
			init := cand.ToJSON()
			_ = c.SendJSON(map[string]any{"type": sig.TypeCandidate, "candidate": init})
		}
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			c.connected.Store(true)
		}
	})
	pc.OnICEConnectionStateChange(func(webrtc.ICEConnectionState) {
		select {
		case c.iceChange <- struct{}{}:
		default:
		}
	})
	pc.OnTrack(c.onTrack)
	if err := c.openDataChannel(); err != nil {
		return err
	}
	for i := 0; i < c.cfg.Audio; i++ {
		if err := c.addLocal(webrtc.RTPCodecTypeAudio, i); err != nil {
			return err
		}
	}
	for i := 0; i < c.cfg.Video; i++ {
		if err := c.addLocal(webrtc.RTPCodecTypeVideo, c.cfg.Audio+i); err != nil {
			return err
		}
	}
	c.negMu.Lock()
	defer c.negMu.Unlock()
	return c.offerLocked()
}

// Publish adds a synthetic track and renegotiates (a client-initiated
// offer, as a browser sends when it starts a screen share).
func (c *Client) Publish(kind webrtc.RTPCodecType) error {
	c.negMu.Lock()
	defer c.negMu.Unlock()
	return c.publishLocked(kind)
}

func (c *Client) publishLocked(kind webrtc.RTPCodecType) error {
	c.mu.Lock()
	index := len(c.local)
	c.mu.Unlock()
	if err := c.addLocal(kind, index); err != nil {
		return err
	}
	return c.offerLocked()
}

// Unpublish stops a local track and renegotiates.
func (c *Client) Unpublish(l *LocalTrack) error {
	c.negMu.Lock()
	defer c.negMu.Unlock()
	l.stop() // before RemoveTrack, for the reason Abort gives
	if err := c.pc.RemoveTrack(l.sender); err != nil {
		return fmt.Errorf("remove track: %w", err)
	}
	l.wait()
	return c.offerLocked()
}

// CollideOnNextOffer makes the client behave, at the next server offer, as
// a polite browser that started a screen share at that very moment: it
// sends an offer of its own that crosses the server's, then (having "rolled
// back") answers the server's offer, then publishes a video track with a
// new offer.
func (c *Client) CollideOnNextOffer() { c.collide.Store(true) }

// SpeakerEvent is one active-speaker message as received.
type SpeakerEvent struct {
	Participant string
	At          time.Time
}

// Speakers returns the active-speaker messages received so far.
func (c *Client) Speakers() []SpeakerEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]SpeakerEvent(nil), c.speakers...)
}

// AnswersReceived counts the server's answers.
func (c *Client) AnswersReceived() int { return int(c.answers.Load()) }

// Collisions counts the collisions CollideOnNextOffer staged.
func (c *Client) Collisions() int { return int(c.collisions.Load()) }

// Failures returns client-side negotiation failures.
func (c *Client) Failures() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.failures...)
}

// ClosePeer closes only the PeerConnection and keeps the socket, like a
// client whose network path died while signaling survived.
func (c *Client) ClosePeer() {
	if c.pc != nil {
		_ = c.pc.Close()
	}
}

// relayServers keeps the TURN URLs of one transport ("udp", "tcp", "tls").
func relayServers(all []sig.ICEServer, transport string) []webrtc.ICEServer {
	var out []webrtc.ICEServer
	for _, s := range all {
		var urls []string
		for _, u := range s.URLs {
			var ok bool
			switch transport {
			case "tls":
				ok = strings.HasPrefix(u, "turns:")
			default:
				ok = strings.HasPrefix(u, "turn:") && (strings.HasSuffix(u, "?transport="+transport) ||
					transport == "udp" && !strings.Contains(u, "?transport="))
			}
			if ok {
				urls = append(urls, u)
			}
		}
		if len(urls) > 0 {
			out = append(out, webrtc.ICEServer{URLs: urls, Username: s.Username, Credential: s.Credential})
		}
	}
	return out
}

// ICEServers returns the "iceServers" of "joined".
func (c *Client) ICEServers() []sig.ICEServer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.joinMsg.ICEServers
}

// RemoteCandidates returns the server's trickled candidates.
func (c *Client) RemoteCandidates() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.serverCands...)
}

// RemoteSDP returns the PeerConnection's current remote description ("" before one).
func (c *Client) RemoteSDP() string {
	if c.pc == nil {
		return ""
	}
	if d := c.pc.RemoteDescription(); d != nil {
		return d.SDP
	}
	return ""
}

// SelectedPath describes the ICE candidate pair in use as
// "<local protocol> <local type> -> <remote protocol> <remote type>", or ""
// before one is selected.
func (c *Client) SelectedPath() string {
	if c.pc == nil {
		return ""
	}
	pair, err := c.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		return ""
	}
	return fmt.Sprintf("%s %s -> %s %s", pair.Local.Protocol, pair.Local.Typ, pair.Remote.Protocol, pair.Remote.Typ)
}

// LastServerOffer returns the SDP of the server's latest offer.
func (c *Client) LastServerOffer() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastOffer
}

// OffersReceived counts the server's offers.
func (c *Client) OffersReceived() int { return int(c.offers.Load()) }

// Debug describes the client's state in one line, for test failures.
func (c *Client) Debug() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q connected=%v", c.ID, c.cfg.Name, c.Connected())
	if c.pc != nil {
		fmt.Fprintf(&b, " signaling=%s ice=%s pc=%s", c.pc.SignalingState(), c.pc.ICEConnectionState(), c.pc.ConnectionState())
	}
	fmt.Fprintf(&b, " offers=%d answers=%d errors=%v failures=%v bye=%q", c.OffersReceived(), c.AnswersReceived(), c.Errors(), c.Failures(), c.Bye())
	for _, r := range c.Remote() {
		st := r.Stats()
		fmt.Fprintf(&b, " [%s %s pkts=%d ended=%v]", r.Kind, r.StreamID, st.Packets, st.Ended)
	}
	for _, l := range c.Local() {
		fmt.Fprintf(&b, " [local sent=%d pli=%d]", l.Sent.Load(), l.PLIsReceived.Load())
	}
	return b.String()
}

// Connected reports whether the PeerConnection has connected.
func (c *Client) Connected() bool { return c.connected.Load() }

// Wait polls cond every 10 ms until it holds or ctx ends.
func Wait(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Errors returns the error messages received so far.
func (c *Client) Errors() []ErrorMsg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]ErrorMsg(nil), c.errors...)
}

// HasError reports whether an error with code arrived.
func (c *Client) HasError(code string) bool {
	for _, e := range c.Errors() {
		if e.Code == code {
			return true
		}
	}
	return false
}

// Bye returns the reason of the server's "bye", or "".
func (c *Client) Bye() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bye
}

// Closed is closed when the signaling socket is gone.
func (c *Client) Closed() <-chan struct{} { return c.closed }

// Participants returns the other members as id -> name.
func (c *Client) Participants() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.participants))
	for k, v := range c.participants {
		out[k] = v
	}
	return out
}

// Publisher returns the participant that publishes track id, per the
// server's track events.
func (c *Client) Publisher(trackID string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.published[trackID]
	return p, ok
}

// TrackInfo returns what the server last said about a published track.
func (c *Client) TrackInfo(trackID string) (sig.TrackJSON, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.trackMeta[trackID]
	return t, ok
}

// UpdateTrack tells the server the source and muted state of one of the
// client's own tracks (by its local id, e.g. "video1").
func (c *Client) UpdateTrack(localID, source string, muted bool) error {
	return c.SendJSON(map[string]any{"type": sig.TypeTrackUpdate, "track": localID, "source": source, "muted": muted})
}

// SetViewport sends a rendering hint for a received track (server track id).
func (c *Client) SetViewport(trackID string, width, height int, visible bool) error {
	return c.SendJSON(map[string]any{"type": sig.TypeViewport, "track": trackID, "width": width, "height": height, "visible": visible})
}

// WriteRTCP sends RTCP to the server.
func (c *Client) WriteRTCP(pkts []rtcp.Packet) error { return c.pc.WriteRTCP(pkts) }

// Leave sends "leave" and closes everything.
func (c *Client) Leave() {
	_ = c.SendJSON(map[string]string{"type": sig.TypeLeave})
	select {
	case <-c.closed:
	case <-time.After(2 * time.Second):
	}
	c.Abort()
}

// Abort drops the socket and the PeerConnection without a word, like a
// browser tab that crashed.
func (c *Client) Abort() {
	_ = c.ws.Close()
	c.mu.Lock()
	local := c.local
	c.mu.Unlock()
	// Stop the tracks' goroutines before closing the PeerConnection: pion
	// v3.3.6's RTPSender.ReadSimulcast reads state that Close writes
	// without a lock.
	for _, l := range local {
		l.stop()
	}
	if c.pc != nil {
		// Under negMu, so no description is being applied: pion v3.3.6 leaks
		// an ICE agent when SetLocalDescription gathers after Close.
		c.negMu.Lock()
		c.settleICE()
		_ = c.pc.Close()
		c.negMu.Unlock()
	}
	for _, l := range local {
		l.wait()
	}
	c.wg.Wait()
}

// settleICE waits, at most 1 s, while an applied remote description has
// ICE starting or checking: pion v3.3.6 races (a data race -race reports)
// when Close stops the ICE transport that SetRemoteDescription is still
// starting in the background. The server does the same (sfu.Peer.Close).
func (c *Client) settleICE() {
	deadline := time.Now().Add(time.Second)
	for c.pc.RemoteDescription() != nil && time.Now().Before(deadline) {
		switch c.pc.ICEConnectionState() {
		case webrtc.ICEConnectionStateNew, webrtc.ICEConnectionStateChecking:
			time.Sleep(10 * time.Millisecond)
		default:
			return
		}
	}
}

// errClosed is returned by SendData before the data channel opened.
var errClosed = errors.New("client: data channel not open")

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
	"encoding/json"
	"errors"
	"fmt"
	"net"
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
	"github.com/pion/transport/v2/stdnet"
	"github.com/pion/webrtc/v3"
	sig "github.com/roundtable-sfu/roundtable/signal"
)

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

	ws     *websocket.Conn // replaced by Resume, under wsMu
	wsMu   sync.Mutex
	pc     *webrtc.PeerConnection
	dc     *webrtc.DataChannel
	dcOpen chan struct{}
	joined chan sig.Inbound
	// redirected gets the socket URL of a "reconnect" that comes before
	// joined (-cluster-redirect); Redirects counts those followed.
	redirected chan string
	Redirects  atomic.Int64
	joinErr    chan ErrorMsg
	closed     chan struct{}
	once       sync.Once
	wg         sync.WaitGroup
	joinMsg    joinedMsg

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
	// iceHeld: Config.HoldICE until ReleaseICE, with the candidates it
	// keeps (holdice.go).
	iceHeld               bool
	heldLocal, heldRemote []webrtc.ICECandidateInit
	failures              []string
	negMu                 sync.Mutex // serializes offers and answers
	collide               atomic.Bool
	iceChange             chan struct{} // kicked on every ICE connection state change (onOffer)
	collisions            atomic.Int64
	answers               atomic.Int64
	speakers              []SpeakerEvent
	quality               map[string]sig.QualityJSON // connection-quality, last per participant
	qualityLog            []QualityEvent
	departures            []string // participant-left ids, in order
	connected             atomic.Bool
	offers                atomic.Int64
	otherClosed           atomic.Bool
	lastOffer             string // the server's latest offer, under mu

	resume  resumeState
	closing atomic.Bool // Abort started: a reader's end closes the client
}

type joinedMsg struct {
	Type         string                `json:"type"`
	ID           string                `json:"id"`
	Room         string                `json:"room"`
	Participants []sig.ParticipantJSON `json:"participants"`
	ICEServers   []sig.ICEServer       `json:"iceServers"`
	ResumeToken  string                `json:"resumeToken"`
	Migrated     bool                  `json:"migrated"`
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
	Token       string          `json:"token"`
	URL         string          `json:"url"`
}

// newAPI builds the client's pion API: the server's codecs, pion's default
// interceptors, loopback-only ICE unless told otherwise, and the DTLS server
// role (the client offers first, so it keeps that role when it answers).
func newAPI(codecs func(*webrtc.MediaEngine) error, networks []webrtc.NetworkType, ifaces []string, all, noTWCC bool, extra []interceptor.Factory, ipFilter func(net.IP) bool, n *stdnet.Net) (*webrtc.API, error) {
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
	if ipFilter != nil {
		se.SetIPFilter(ipFilter)
	}
	// A network of our own, whose interface list RestartICE refreshes:
	// pion's agent lists the interfaces once and gathers from that list at
	// every restart, even after an address went away.
	if n != nil {
		se.SetNet(n)
	}
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
	for joined, redirects := false, 0; !joined; {
		select {
		case <-c.joined:
			joined = true
		case url := <-c.redirected:
			// A cluster node sends the join elsewhere (-cluster-redirect).
			if redirects++; redirects > 3 {
				c.Abort()
				return nil, fmt.Errorf("join %s: redirected %d times", cfg.Room, redirects)
			}
			if err := c.redial(ctx, url); err != nil {
				c.Abort()
				return nil, fmt.Errorf("join %s: redirected: %w", cfg.Room, err)
			}
			if err := c.SendJSON(join); err != nil {
				c.Abort()
				return nil, err
			}
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

// redial replaces the socket, before joining, with one to url (a
// "reconnect" that redirects the join): the old one closes, which ends
// nothing since the client has not joined.
func (c *Client) redial(ctx context.Context, url string) error {
	cfg := c.cfg
	cfg.URL = url
	ws, err := cfg.dial(ctx)
	if err != nil {
		return err
	}
	c.wsMu.Lock()
	old := c.ws
	c.ws = ws
	c.wsMu.Unlock()
	_ = old.Close()
	c.Redirects.Add(1)
	c.wg.Add(1)
	go c.readLoop(ws)
	return nil
}

// StartPeer creates the PeerConnection of a client joined with DeferPeer
// and sends its first offer.
func (c *Client) StartPeer() error {
	if !c.cfg.DeferPeer || c.pc != nil {
		return errors.New("client: StartPeer needs DeferPeer and is called once")
	}
	return c.startPeer()
}

// dial opens a signaling socket.
func (cfg *Config) dial(ctx context.Context) (*websocket.Conn, error) {
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
	return ws, nil
}

// Dial opens the signaling socket without joining (for protocol tests).
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	cfg.defaults()
	ws, err := cfg.dial(ctx)
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg: cfg, ws: ws, iceHeld: cfg.HoldICE,
		dcOpen: make(chan struct{}), joined: make(chan sig.Inbound, 1), joinErr: make(chan ErrorMsg, 1), redirected: make(chan string, 1),
		iceChange:    make(chan struct{}, 1),
		closed:       make(chan struct{}),
		participants: map[string]string{}, quality: map[string]sig.QualityJSON{}, published: map[string]string{}, remote: map[string]*RemoteTrack{},
		trackMeta: map[string]sig.TrackJSON{},
	}
	c.wg.Add(1)
	go c.readLoop(ws)
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
	if c.ws == nil {
		return errors.New("client: no signaling socket (a WHIP publisher)")
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.ws.WriteMessage(messageType, b); err != nil {
		return fmt.Errorf("websocket write: %w", err)
	}
	return nil
}

func (c *Client) startPeer() error {
	n, err := stdnet.NewNet()
	if err != nil {
		return fmt.Errorf("client net: %w", err)
	}
	c.resume.net = n
	api, err := newAPI(c.cfg.Codecs, c.cfg.Networks, c.cfg.Interfaces, c.cfg.AllInterfaces, c.cfg.NoTWCC, c.cfg.Interceptors, c.cfg.IPFilter, n)
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
			if c.holdCandidate(init, false) {
				return
			}
			_ = c.SendJSON(map[string]any{"type": sig.TypeCandidate, "candidate": init})
		}
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			c.connected.Store(true)
		}
	})
	pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		if s == webrtc.ICEConnectionStateConnected {
			c.resume.iceConnectedAt.Store(time.Now().UnixNano())
		}
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
	c.closing.Store(true)
	c.wsMu.Lock()
	if c.ws != nil {
		_ = c.ws.Close()
	}
	c.wsMu.Unlock()
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

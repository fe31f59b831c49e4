package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/pion/dtls/v2"
	"github.com/pion/ice/v2"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v3"
)

// Settings configure an Engine. The package keeps no defaults:
// internal/server.DefaultConfig holds them, and NewEngine refuses the ICE
// timeouts and the data message limit unset.
type Settings struct {
	// UDPPort is the single UDP port shared by every PeerConnection (ICE UDP
	// mux); 0 picks an ephemeral port.
	UDPPort int
	// TCPPort, when above 0, is the TCP port of ICE over TCP (RFC 6544): a
	// passive TCP host candidate beside each UDP one, on this port for every
	// PeerConnection (pion's ICE TCP mux), for clients that cannot reach
	// the UDP port. 0: off.
	TCPPort int
	// TCPListener, when set, serves ICE over TCP instead of a port of its
	// own: connections a demultiplexer found to be ICE-TCP on a shared port
	// (package demux). Its address's port is the one advertised.
	TCPListener net.Listener
	// NAT1To1IPs are public addresses advertised instead of the host's own
	// (for a server behind 1:1 NAT).
	NAT1To1IPs []string
	// Interfaces restricts ICE to these network interfaces; empty means all.
	Interfaces []string
	// Loopback offers loopback candidates (needed when peers are on the same
	// host, and the only candidates tests use).
	Loopback bool
	// DisableMDNS stops pion from resolving mDNS (.local) candidates, which
	// would send multicast queries.
	DisableMDNS bool
	// IPv4Only leaves out IPv6 candidates.
	IPv4Only bool
	// Logger receives pion's warnings and the engine's events.
	Logger *slog.Logger
	// ICEDisconnectedTimeout and ICEFailedTimeout tell how long a silent
	// peer stays connected, then disconnected, before its PeerConnection
	// fails and the participant is removed. Both must be more than 0
	// (NewEngine refuses others); internal/server.DefaultConfig holds the
	// defaults.
	ICEDisconnectedTimeout, ICEFailedTimeout time.Duration
	// Interceptors are added before Roundtable's own (innermost, next to
	// the network), so they act like the link: tests use them to impair one
	// PeerConnection.
	Interceptors []interceptor.Factory
	// MaxIncomingBitrate caps what one participant may publish, in bits
	// per second: the server sends it REMB (RFC draft-alvestrand-rmcat-remb)
	// at that value every second, which browsers apply as an upper bound.
	// 0: no cap.
	MaxIncomingBitrate int
	// AnswerTimeout bounds how long a server offer may wait for its answer;
	// after it the negotiation has failed (ErrNegotiationFailed, see
	// negotiate.go). 0: no limit.
	AnswerTimeout time.Duration
	// MaxDataMessage is the largest data-channel message, in bytes, a
	// participant may send (1-65535): advertised in every local description
	// as a=max-message-size (RFC 8841 §6), and a larger message is refused
	// with ErrDataTooLarge while the channel lives on.
	MaxDataMessage int
	// OnPeerClosed, when set, is called with a participant id once its
	// Peer has closed (the built-in TURN server releases its relays).
	OnPeerClosed func(id string)
	// RelayTransport, when set, names the transport ("udp", "tcp", "tls")
	// between a client and the built-in TURN server for a relayed address
	// that server holds, "" for any other address (Peer.Path).
	RelayTransport func(netip.AddrPort) string
	// RelayOffered says whether clients are handed TURN servers
	// (Diagnose); nil: never.
	RelayOffered func() bool
}

// Engine holds what every PeerConnection of the server shares: the settings,
// the UDP mux and the counters. Each PeerConnection gets its own pion API
// (newAPI): its own MediaEngine and interceptor chain. It is safe for
// concurrent use.
type Engine struct {
	settings       webrtc.SettingEngine
	extra          []interceptor.Factory
	mux            *ice.MultiUDPMuxDefault
	tcpMux         *ice.TCPMuxDefault // nil when ICE over TCP is off
	tcpLn          net.Listener
	stats          *Stats
	log            *slog.Logger
	maxIn          int // Settings.MaxIncomingBitrate
	answerTO       time.Duration
	maxData        int
	onClosed       func(id string)
	relayTransport func(netip.AddrPort) string
	relayOffered   func() bool
	networks       []webrtc.NetworkType // every PeerConnection's, unless OnlyTransport

	mu    sync.Mutex
	peers map[*Peer]struct{} // open Peers, for Estimates
}

// ownUDPPort is newAPI's transport for an Initiator: an ephemeral UDP port
// per PeerConnection instead of the shared one.
const ownUDPPort = "own-udp"

// newAPI builds one PeerConnection's pion API: its own MediaEngine (pion
// narrows a MediaEngine to what the remote negotiated, and the Peer builds
// RTPSenders from this API when it reuses an m-line, so PeerConnection and
// API must share one: DisableMediaEngineCopy) and its own interceptors (its
// own bandwidth estimator among them), on the shared settings.
func (e *Engine) newAPI(only string) (*webrtc.API, *estimator, error) {
	media := &webrtc.MediaEngine{}
	if err := RegisterCodecs(media); err != nil {
		return nil, nil, fmt.Errorf("register codecs: %w", err)
	}
	reg := &interceptor.Registry{}
	for _, f := range e.extra {
		reg.Add(f)
	}
	est, err := registerInterceptors(reg, e.stats)
	if err != nil {
		return nil, nil, fmt.Errorf("register interceptors: %w", err)
	}
	se := e.settings // a copy: PeerConfig.OnlyTransport narrows its networks
	switch only {    // pion gathers on a UDP mux whatever the network types say
	case "udp":
		se.SetNetworkTypes(e.networksOf(webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6))
		se.SetICETCPMux(nil)
	case "tcp":
		se.SetNetworkTypes(e.networksOf(webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6))
		se.SetICEUDPMux(nil)
	case ownUDPPort:
		// An Initiator (a relay's leading end): UDP on a port of its own.
		// Its other end is on that node's shared port, as are the other
		// ends of that node's other relays with this one (one per room);
		// two PeerConnections between the same two ports could not be told
		// apart, since DTLS and SRTP carry no ICE username for the mux to
		// go by.
		se.SetNetworkTypes(e.networksOf(webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6))
		se.SetICEUDPMux(nil)
		se.SetICETCPMux(nil)
		// Its first offer made it the DTLS server (the other end answers
		// as client); its answers to the other end's offers keep that.
		if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer); err != nil {
			return nil, nil, fmt.Errorf("dtls role: %w", err)
		}
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(media), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
	return api, est, nil
}

// networksOf keeps the engine's network types among want.
func (e *Engine) networksOf(want ...webrtc.NetworkType) []webrtc.NetworkType {
	var out []webrtc.NetworkType
	for _, n := range e.networks {
		if slices.Contains(want, n) {
			out = append(out, n)
		}
	}
	return out
}

// Estimates returns the current send-side bandwidth estimate, in bits per
// second, of every Peer that has one.
func (e *Engine) Estimates() []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]int, 0, len(e.peers))
	for p := range e.peers {
		if b := p.Estimate(); b > 0 {
			out = append(out, b)
		}
	}
	return out
}

// NewEngine opens the UDP port and builds the pion API.
func NewEngine(s Settings) (*Engine, error) {
	if s.MaxDataMessage < 1 || s.MaxDataMessage > MaxDataMessage {
		return nil, fmt.Errorf("max data message %d: want 1-%d bytes", s.MaxDataMessage, MaxDataMessage)
	}
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	stats := &Stats{}
	if err := RegisterCodecs(&webrtc.MediaEngine{}); err != nil { // fail at start, not at the first join
		return nil, fmt.Errorf("register codecs: %w", err)
	}

	disc, failed := s.ICEDisconnectedTimeout, s.ICEFailedTimeout
	if disc <= 0 || failed <= 0 {
		return nil, fmt.Errorf("ICE timeouts %v (disconnected), %v (failed): want both more than 0", disc, failed)
	}
	ifaceOK := func(name string) bool {
		return len(s.Interfaces) == 0 || slices.Contains(s.Interfaces, name)
	}
	networks := []ice.NetworkType{ice.NetworkTypeUDP4, ice.NetworkTypeUDP6}
	webrtcNetworks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if s.IPv4Only {
		networks = networks[:1]
		webrtcNetworks = webrtcNetworks[:1]
	}
	if s.TCPPort > 0 || s.TCPListener != nil {
		webrtcNetworks = append(webrtcNetworks, webrtc.NetworkTypeTCP4)
		if !s.IPv4Only {
			webrtcNetworks = append(webrtcNetworks, webrtc.NetworkTypeTCP6)
		}
	}
	opts := []ice.UDPMuxFromPortOption{
		ice.UDPMuxFromPortWithInterfaceFilter(ifaceOK),
		ice.UDPMuxFromPortWithNetworks(networks...),
		ice.UDPMuxFromPortWithLogger(newPionLogger(log, "udpmux")),
		ice.UDPMuxFromPortWithReadBufferSize(4 << 20),
		ice.UDPMuxFromPortWithWriteBufferSize(4 << 20),
	}
	if s.Loopback {
		opts = append(opts, ice.UDPMuxFromPortWithLoopback())
	}
	mux, err := ice.NewMultiUDPMuxFromPort(s.UDPPort, opts...)
	if err != nil {
		return nil, fmt.Errorf("open ICE UDP port %d: %w", s.UDPPort, err)
	}

	e := &Engine{extra: s.Interceptors, mux: mux, stats: stats, log: log, maxIn: s.MaxIncomingBitrate,
		answerTO: s.AnswerTimeout, maxData: s.MaxDataMessage, onClosed: s.OnPeerClosed, relayTransport: s.RelayTransport, relayOffered: s.RelayOffered, peers: map[*Peer]struct{}{}}
	se := webrtc.SettingEngine{LoggerFactory: LoggerFactory(log)}
	switch {
	case s.TCPListener != nil:
		e.serveTCP(s.TCPListener)
		se.SetICETCPMux(e.tcpMux)
	case s.TCPPort > 0:
		if err := e.openTCP(s.TCPPort, s.IPv4Only); err != nil {
			_ = mux.Close()
			return nil, err
		}
		se.SetICETCPMux(e.tcpMux)
	}
	se.DisableMediaEngineCopy(true) // newAPI builds one MediaEngine per PeerConnection
	se.DetachDataChannels()         // data.go reads each channel itself (oversize messages)
	se.SetICEUDPMux(mux)
	se.SetNetworkTypes(webrtcNetworks)
	e.networks = webrtcNetworks
	se.SetInterfaceFilter(ifaceOK)
	se.SetIncludeLoopbackCandidate(s.Loopback)
	// GCM is about five times cheaper per packet than AES-CM + HMAC-SHA1.
	se.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80)
	// The client always sends the first offer; the server answers as DTLS
	// client and keeps that role in every later negotiation.
	if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleClient); err != nil {
		_ = e.Close()
		return nil, fmt.Errorf("dtls role: %w", err)
	}
	se.SetICETimeouts(disc, failed, min(2*time.Second, disc/2))
	se.SetReceiveMTU(maxPacketSize)
	if len(s.NAT1To1IPs) > 0 {
		se.SetNAT1To1IPs(s.NAT1To1IPs, webrtc.ICECandidateTypeHost)
	}
	if s.DisableMDNS {
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	}
	e.settings = se
	for _, a := range e.UDPAddrs() {
		log.Debug("ice udp listening", "addr", a.String())
	}
	return e, nil
}

// openTCP opens the ICE-TCP port: one listener on every address (pion
// advertises it only on the addresses the interface filter lets through,
// and the mux takes a connection only after a STUN binding request with a
// username fragment it knows).
func (e *Engine) openTCP(port int, ipv4Only bool) error {
	network := "tcp"
	if ipv4Only {
		network = "tcp4"
	}
	ln, err := net.Listen(network, net.JoinHostPort("", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("open ICE TCP port %d: %w", port, err)
	}
	e.serveTCP(ln)
	return nil
}

// serveTCP runs pion's ICE TCP mux on ln.
func (e *Engine) serveTCP(ln net.Listener) {
	e.tcpLn = ln
	e.tcpMux = ice.NewTCPMuxDefault(ice.TCPMuxParams{
		Listener: ln, Logger: newPionLogger(e.log, "tcpmux"),
		ReadBufferSize: 256, WriteBufferSize: 4 << 20, // packets queued per connection; bytes
	})
	e.log.Debug("ice tcp listening", "addr", ln.Addr().String())
}

// TCPAddr returns the ICE-TCP listener's address, nil when it is off.
func (e *Engine) TCPAddr() net.Addr {
	if e.tcpLn == nil {
		return nil
	}
	return e.tcpLn.Addr()
}

// HasPeer reports whether a participant's Peer is open.
func (e *Engine) HasPeer(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for p := range e.peers {
		if p.cfg.ID == id {
			return true
		}
	}
	return false
}

// Stats returns the engine's counters.
func (e *Engine) Stats() *Stats { return e.stats }

// UDPAddrs returns the addresses the ICE UDP mux listens on.
func (e *Engine) UDPAddrs() []net.Addr { return e.mux.GetListenAddresses() }

// Close closes the UDP and TCP ports. Close every Peer first.
func (e *Engine) Close() error {
	var errs []error
	if err := e.mux.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close ICE UDP mux: %w", err))
	}
	if e.tcpMux != nil {
		if err := e.tcpMux.Close(); err != nil { // closes the listener too
			errs = append(errs, fmt.Errorf("close ICE TCP mux: %w", err))
		}
	}
	return errors.Join(errs...)
}

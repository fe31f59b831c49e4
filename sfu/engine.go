package sfu

import (
	"fmt"
	"log/slog"
	"net"
	"slices"
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
}

// Engine holds what every PeerConnection of the server shares: the settings,
// the UDP mux and the counters. Each PeerConnection gets its own pion API
// (newAPI): its own MediaEngine and interceptor chain. It is safe for
// concurrent use.
type Engine struct {
	settings webrtc.SettingEngine
	extra    []interceptor.Factory
	mux      *ice.MultiUDPMuxDefault
	stats    *Stats
	log      *slog.Logger
	maxIn    int // Settings.MaxIncomingBitrate
	answerTO time.Duration
	maxData  int

	mu    sync.Mutex
	peers map[*Peer]struct{} // open Peers, for Estimates
}

// newAPI builds one PeerConnection's pion API: its own MediaEngine (pion
// narrows a MediaEngine to what the remote negotiated, and the Peer builds
// RTPSenders from this API when it reuses an m-line, so PeerConnection and
// API must share one: DisableMediaEngineCopy) and its own interceptors (its
// own bandwidth estimator among them), on the shared settings.
func (e *Engine) newAPI() (*webrtc.API, *estimator, error) {
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
	api := webrtc.NewAPI(webrtc.WithMediaEngine(media), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(e.settings))
	return api, est, nil
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

	ifaceOK := func(name string) bool {
		return len(s.Interfaces) == 0 || slices.Contains(s.Interfaces, name)
	}
	networks := []ice.NetworkType{ice.NetworkTypeUDP4, ice.NetworkTypeUDP6}
	webrtcNetworks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if s.IPv4Only {
		networks = networks[:1]
		webrtcNetworks = webrtcNetworks[:1]
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

	se := webrtc.SettingEngine{LoggerFactory: pionLoggerFactory{log}}
	se.DisableMediaEngineCopy(true) // newAPI builds one MediaEngine per PeerConnection
	se.DetachDataChannels()         // data.go reads each channel itself (oversize messages)
	se.SetICEUDPMux(mux)
	se.SetNetworkTypes(webrtcNetworks)
	se.SetInterfaceFilter(ifaceOK)
	se.SetIncludeLoopbackCandidate(s.Loopback)
	// GCM is about five times cheaper per packet than AES-CM + HMAC-SHA1.
	se.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80)
	// The client always sends the first offer; the server answers as DTLS
	// client and keeps that role in every later negotiation.
	if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleClient); err != nil {
		return nil, fmt.Errorf("dtls role: %w", err)
	}
	disc, failed := s.ICEDisconnectedTimeout, s.ICEFailedTimeout
	if disc <= 0 || failed <= 0 {
		_ = mux.Close()
		return nil, fmt.Errorf("ICE timeouts %v (disconnected), %v (failed): want both more than 0", disc, failed)
	}
	se.SetICETimeouts(disc, failed, min(2*time.Second, disc/2))
	se.SetReceiveMTU(maxPacketSize)
	if len(s.NAT1To1IPs) > 0 {
		se.SetNAT1To1IPs(s.NAT1To1IPs, webrtc.ICECandidateTypeHost)
	}
	if s.DisableMDNS {
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	}
	e := &Engine{settings: se, extra: s.Interceptors, mux: mux, stats: stats, log: log, maxIn: s.MaxIncomingBitrate,
		answerTO: s.AnswerTimeout, maxData: s.MaxDataMessage, peers: map[*Peer]struct{}{}}
	for _, a := range e.UDPAddrs() {
		log.Debug("ice udp listening", "addr", a.String())
	}
	return e, nil
}

// Stats returns the engine's counters.
func (e *Engine) Stats() *Stats { return e.stats }

// UDPAddrs returns the addresses the ICE UDP mux listens on.
func (e *Engine) UDPAddrs() []net.Addr { return e.mux.GetListenAddresses() }

// Close closes the UDP port. Close every Peer first.
func (e *Engine) Close() error {
	if err := e.mux.Close(); err != nil {
		return fmt.Errorf("close ICE UDP mux: %w", err)
	}
	return nil
}

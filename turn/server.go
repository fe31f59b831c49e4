// Package turn is Roundtable's built-in TURN server (RFC 8656): relayed
// candidates for browsers that cannot reach the ICE ports, over UDP, TCP
// and TLS. It runs pion/turn/v2 behind a gate that makes it a relay for
// Roundtable only, not an open relay:
//
//   - credentials are the TURN REST API's (Credential), minted per
//     participant at join; an expired one, a forged one, or one whose
//     participant has left gets 401;
//   - a permission or channel toward anything but Roundtable's own media
//     addresses gets 403, and the relay sockets themselves send to and
//     accept from those addresses only (a permission is per IP; the socket
//     check pins the port too);
//   - allocations per participant and in total are capped (486).
//
// Goroutines: pion runs one reader per UDP socket, per TCP or TLS
// connection and per allocation; Server's methods may be called from any
// goroutine. Release closes a participant's relays when it leaves.
package turn

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pion/logging"
	"github.com/pion/stun"
	pionturn "github.com/pion/turn/v2"
)

// Config configures a Server. It has no defaults: internal/server holds
// them.
type Config struct {
	// Secret signs and checks credentials (Credential); required.
	Secret string
	// Realm is the long-term credential realm (RFC 8489 §9.2); required.
	Realm string
	// UDP is TURN over UDP, TCP over TCP, TLS over TLS (a listener that
	// hands out decrypted connections). At least one.
	UDP net.PacketConn
	TCP []net.Listener
	TLS []net.Listener
	// RelayIP is where relay sockets are opened: a local IPv4 address from
	// which Peers are reachable.
	RelayIP netip.Addr
	// Peers are Roundtable's ICE UDP addresses, the only destinations of
	// the relay; NAT are the addresses advertised instead (-nat-ip), one
	// per IP family.
	Peers []netip.AddrPort
	NAT   []netip.Addr
	// MaxPerParticipant and MaxAllocations cap allocations (at least 1).
	MaxPerParticipant, MaxAllocations int
	// Live reports whether a participant is in a room; nil: any.
	Live func(participant string) bool
	// LoggerFactory receives pion/turn's logs.
	LoggerFactory logging.LoggerFactory
	// Now is the clock credentials expire by; nil: time.Now.
	Now func() time.Time
}

// Server is a running TURN server.
type Server struct {
	pion *pionturn.Server
	g    *gate
}

// New starts serving on cfg's sockets, which Close closes.
func New(cfg Config) (*Server, error) {
	var errs []error
	if cfg.Secret == "" {
		errs = append(errs, errors.New("turn: no secret"))
	}
	if cfg.Realm == "" {
		errs = append(errs, errors.New("turn: no realm"))
	}
	if cfg.UDP == nil && len(cfg.TCP)+len(cfg.TLS) == 0 {
		errs = append(errs, errors.New("turn: no socket to serve"))
	}
	if !cfg.RelayIP.Is4() {
		errs = append(errs, fmt.Errorf("turn: relay IP %v: want an IPv4 address", cfg.RelayIP))
	}
	if cfg.MaxPerParticipant < 1 || cfg.MaxAllocations < 1 {
		errs = append(errs, fmt.Errorf("turn: allocation caps %d per participant, %d in total: want at least 1", cfg.MaxPerParticipant, cfg.MaxAllocations))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	ps := newPeers(cfg.Peers, cfg.NAT)
	g := &gate{
		secret: cfg.Secret, realm: cfg.Realm, live: cfg.Live, peers: ps, now: now,
		maxPer: cfg.MaxPerParticipant, maxTotal: cfg.MaxAllocations,
		relays: map[netip.AddrPort]*relayConn{}, users: map[string]int{},
		pending: map[[stun.TransactionIDSize]byte]pendingAllocate{},
	}
	gen := func(transport string) *relays { return &relays{ip: cfg.RelayIP, peers: ps, g: g, transport: transport} }
	perm := func(_ net.Addr, ip net.IP) bool { return ps.allowIP(ip) }
	sc := pionturn.ServerConfig{Realm: cfg.Realm, AuthHandler: g.authKey, LoggerFactory: cfg.LoggerFactory}
	if cfg.UDP != nil {
		sc.PacketConnConfigs = []pionturn.PacketConnConfig{{
			PacketConn: &gatedPacketConn{PacketConn: cfg.UDP, g: g}, RelayAddressGenerator: gen("udp"), PermissionHandler: perm,
		}}
	}
	listen := func(ls []net.Listener, transport string) {
		for _, l := range ls {
			sc.ListenerConfigs = append(sc.ListenerConfigs, pionturn.ListenerConfig{
				Listener:              &gatedListener{Listener: l, g: g, conns: map[*gatedStream]struct{}{}},
				RelayAddressGenerator: gen(transport), PermissionHandler: perm,
			})
		}
	}
	listen(cfg.TCP, "tcp")
	listen(cfg.TLS, "tls")
	ts, err := pionturn.NewServer(sc)
	if err != nil {
		return nil, fmt.Errorf("turn: %w", err)
	}
	return &Server{pion: ts, g: g}, nil
}

// Release closes the relays of a participant that left (its credential
// stops working at once: Live no longer knows it).
func (s *Server) Release(participant string) {
	for _, rc := range s.g.relaysWhere(func(rc *relayConn) bool { return rc.participant == participant }) {
		s.g.closeRelay(rc)
	}
}

// RelayTransport returns the transport ("udp", "tcp" or "tls") between
// the client and this server of the allocation whose relayed address is
// a, or "" when a is not one of this server's relays.
func (s *Server) RelayTransport(a netip.AddrPort) string {
	s.g.mu.Lock()
	defer s.g.mu.Unlock()
	if rc := s.g.relays[netip.AddrPortFrom(a.Addr().Unmap(), a.Port())]; rc != nil {
		return rc.transport
	}
	return ""
}

// Stats are the TURN server's counters, read by package metrics.
type Stats struct {
	Allocations int              // relays open now
	Refused     map[string]int64 // requests refused, by RefusedReasons
	Dropped     int64            // relay datagrams to or from an address not Roundtable's
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	s.g.mu.Lock()
	n := len(s.g.relays)
	s.g.mu.Unlock()
	st := Stats{Allocations: n, Refused: make(map[string]int64, len(RefusedReasons)), Dropped: s.g.dropped.Load()}
	for i, r := range RefusedReasons {
		st.Refused[r] = s.g.refused[i].Load()
	}
	return st
}

// Close stops serving and closes every socket: the listeners, their
// connections and the relays.
func (s *Server) Close() error {
	err := s.pion.Close()
	for _, rc := range s.g.relaysWhere(func(*relayConn) bool { return true }) {
		s.g.closeRelay(rc)
	}
	if err != nil {
		return fmt.Errorf("turn: close: %w", err)
	}
	return nil
}

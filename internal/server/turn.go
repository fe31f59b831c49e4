package server

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/roundtable-sfu/roundtable/sfu"
	"github.com/roundtable-sfu/roundtable/signal"
	"github.com/roundtable-sfu/roundtable/turn"
)

// turnRealm is the built-in TURN server's realm (RFC 8489 §9.2).
const turnRealm = "roundtable"

// turnSide is the TURN half of a Server: the built-in server when it runs,
// and what minting credentials needs.
type turnSide struct {
	srv      *turn.Server // nil when the built-in server is off
	secret   string       // "" when no credentials are minted
	external bool         // the secret is the operator's (-turn-secret): mint for -ice-servers too
	udpPort  int
	tcpPort  int
	tlsPort  int    // 0: no TURN over TLS
	host     string // Config.TURNHost
	ttl      time.Duration
	static   []string // Config.ICEServers
	user     string   // Config.ICEUsername
	password string   // Config.ICECredential
}

// openTURN starts the built-in TURN server (when cfg.TURN) on the
// listener's host: UDP and TCP on cfg.TURNPort, and TLS on tlsLn (the
// shared HTTPS port's TURNS connections) when there is one. Its relays
// reach only the engine's ICE UDP addresses.
func openTURN(cfg Config, engine *sfu.Engine, tlsLn net.Listener, log *slog.Logger) (*turnSide, error) {
	t := &turnSide{secret: cfg.TURNSecret, external: cfg.TURNSecret != "", host: cfg.TURNHost, ttl: cfg.TURNCredentialTTL,
		static: cfg.ICEServers, user: cfg.ICEUsername, password: cfg.ICECredential}
	if !cfg.TURN {
		return t, nil
	}
	if t.secret == "" {
		var b [32]byte
		_, _ = rand.Read(b[:])
		t.secret = base64.RawStdEncoding.EncodeToString(b[:])
	}
	var peers []netip.AddrPort
	var relayIP netip.Addr
	for _, a := range engine.UDPAddrs() {
		u, ok := a.(*net.UDPAddr)
		if !ok {
			continue
		}
		ap := u.AddrPort()
		peers = append(peers, ap)
		ip := ap.Addr().Unmap()
		if ip.Is4() && (!relayIP.IsValid() || relayIP.IsLoopback() && !ip.IsLoopback()) {
			relayIP = ip
		}
	}
	if !relayIP.IsValid() {
		// pion/turn v2 relays over IPv4 only.
		log.Warn("turn: no IPv4 address among the ICE UDP addresses to relay from: the built-in TURN server is off")
		return t, nil
	}
	host, _, _ := net.SplitHostPort(cfg.Listen)
	addr := net.JoinHostPort(host, strconv.Itoa(cfg.TURNPort))
	udp, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("turn: listen udp %s: %w", addr, err)
	}
	tcp, err := net.Listen("tcp", addr)
	if err != nil {
		_ = udp.Close()
		return nil, fmt.Errorf("turn: listen tcp %s: %w", addr, err)
	}
	var nat []netip.Addr
	for _, s := range cfg.NAT1To1IPs {
		if ip, err := netip.ParseAddr(s); err == nil {
			nat = append(nat, ip)
		}
	}
	srv, err := turn.New(turn.Config{
		Secret: t.secret, Realm: turnRealm, UDP: udp, TCP: []net.Listener{tcp}, TLS: tlsListeners(tlsLn),
		RelayIP: relayIP, Peers: peers, NAT: nat,
		MaxPerParticipant: cfg.TURNMaxPerParticipant, MaxAllocations: cfg.TURNMaxAllocations,
		Live: engine.HasPeer, LoggerFactory: sfu.LoggerFactory(log),
	})
	if err != nil {
		_ = udp.Close()
		_ = tcp.Close()
		return nil, err
	}
	t.srv = srv
	t.udpPort = udp.LocalAddr().(*net.UDPAddr).Port
	t.tcpPort = tcp.Addr().(*net.TCPAddr).Port
	if tlsLn != nil {
		t.tlsPort = tlsLn.Addr().(*net.TCPAddr).Port
	}
	log.Debug("turn listening", "udp", udp.LocalAddr().String(), "tcp", tcp.Addr().String(), "relay_ip", relayIP.String())
	return t, nil
}

func tlsListeners(ln net.Listener) []net.Listener {
	if ln == nil {
		return nil
	}
	return []net.Listener{ln}
}

// iceServers is signal.Config.ICEServers: the operator's -ice-servers,
// then the built-in TURN server's URLs, with credentials minted for this
// participant (turn.Credential) where no static ones are configured.
func (t *turnSide) iceServers(participant, reqHost string) []signal.ICEServer {
	out := make([]signal.ICEServer, 0, len(t.static)+1)
	var user, pass string
	if t.secret != "" {
		user, pass = turn.Credential(t.secret, participant, time.Now().Add(t.ttl))
	}
	for _, u := range t.static {
		s := signal.ICEServer{URLs: []string{u}}
		if strings.HasPrefix(u, "turn") {
			s.Username, s.Credential = t.user, t.password
			if t.user == "" && t.external { // a random secret means nothing to another server
				s.Username, s.Credential = user, pass
			}
		}
		out = append(out, s)
	}
	if t.srv == nil {
		return out
	}
	host := t.host
	if host == "" {
		host = reqHost
		if h, _, err := net.SplitHostPort(reqHost); err == nil {
			host = h
		}
	}
	if host == "" {
		return out
	}
	urls := []string{
		"turn:" + net.JoinHostPort(host, strconv.Itoa(t.udpPort)) + "?transport=udp",
		"turn:" + net.JoinHostPort(host, strconv.Itoa(t.tcpPort)) + "?transport=tcp",
	}
	if t.tlsPort != 0 {
		urls = append(urls, "turns:"+net.JoinHostPort(host, strconv.Itoa(t.tlsPort))+"?transport=tcp")
	}
	out = append(out, signal.ICEServer{URLs: urls, Username: user, Credential: pass})
	return out
}

// release is sfu.Settings.OnPeerClosed: a participant's relays close
// with its PeerConnection.
func (t *turnSide) release(id string) {
	if t != nil && t.srv != nil {
		t.srv.Release(id)
	}
}

// relayTransport is sfu.Settings.RelayTransport.
func (t *turnSide) relayTransport(a netip.AddrPort) string {
	if t == nil || t.srv == nil {
		return ""
	}
	return t.srv.RelayTransport(a)
}

// relayOffered is sfu.Settings.RelayOffered: whether clients are handed
// a TURN server (the built-in one runs, or -ice-servers names one).
func (t *turnSide) relayOffered() bool {
	if t == nil {
		return false
	}
	if t.srv != nil {
		return true
	}
	for _, u := range t.static {
		if strings.HasPrefix(u, "turn") {
			return true
		}
	}
	return false
}

// stats is metrics.Sources.TURN; nil when the built-in server is off.
func (t *turnSide) stats() func() turn.Stats {
	if t.srv == nil {
		return nil
	}
	return t.srv.Stats
}

func (t *turnSide) close() error {
	if t == nil || t.srv == nil {
		return nil
	}
	return t.srv.Close()
}

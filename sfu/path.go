package sfu

// Ownership: iceUp and dtlsUp are atomics set by pion's state callbacks;
// Path and Diagnose read pion's state and may be called from any goroutine
// while the Peer is open.

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/pion/webrtc/v3"
)

// Path is how a participant's media travels, read from the server's side
// of the selected ICE candidate pair. It is the label of
// roundtable_ice_connected_total and of the join-time histogram.
type Path string

// The paths, a fixed set.
const (
	PathUDP      Path = "udp"       // host or server-reflexive candidates over UDP
	PathTCP      Path = "tcp"       // ICE over TCP (RFC 6544)
	PathRelayUDP Path = "relay_udp" // the built-in TURN server, client on UDP
	PathRelayTCP Path = "relay_tcp" // the built-in TURN server, client on TCP
	PathRelayTLS Path = "relay_tls" // the built-in TURN server, client on TLS
	PathRelay    Path = "relay"     // a TURN server that is not Roundtable's
)

// Paths lists every Path.
func Paths() []Path {
	return []Path{PathUDP, PathTCP, PathRelayUDP, PathRelayTCP, PathRelayTLS, PathRelay}
}

// FailReason says why a PeerConnection never connected or stopped, from
// what the server saw (Diagnose). It is the reason of error "ice_failed"
// (docs/protocol.md) and the label of roundtable_ice_failures_total.
type FailReason string

// The reasons, a fixed set, in the order Diagnose tries them.
const (
	// FailConsentLost: media flowed, then ICE consent (RFC 7675) failed:
	// the network went away during the call.
	FailConsentLost FailReason = "consent_lost"
	// FailDTLS: ICE connected but the DTLS handshake never completed (a
	// middlebox that passes STUN and drops DTLS).
	FailDTLS FailReason = "dtls_failed"
	// FailNoCandidates: the client sent no ICE candidate at all, and none
	// reached the server on its own (a peer-reflexive one).
	FailNoCandidates FailReason = "no_candidates"
	// FailTURNUnreachable: TURN servers were offered, the client has no
	// relayed candidate, and no check was answered: its network blocks
	// the media ports and the TURN ports.
	FailTURNUnreachable FailReason = "turn_unreachable"
	// FailNoResponse: candidates on both sides, no connectivity check ever
	// answered: the network drops the media ports.
	FailNoResponse FailReason = "no_response"
)

// FailReasons lists every FailReason.
func FailReasons() []FailReason {
	return []FailReason{FailConsentLost, FailDTLS, FailNoCandidates, FailTURNUnreachable, FailNoResponse}
}

// Path returns the path of the selected candidate pair and the pair
// itself ("udp host 127.0.0.1:7882 -> udp relay 198.18.0.1:50000"), or
// false before one is selected.
func (p *Peer) Path() (Path, string, bool) {
	pair, err := p.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Local == nil || pair.Remote == nil {
		return "", "", false
	}
	l, r := pair.Local, pair.Remote
	desc := fmt.Sprintf("%s %s %s -> %s %s %s", l.Protocol, l.Typ, net.JoinHostPort(l.Address, strconv.Itoa(int(l.Port))),
		r.Protocol, r.Typ, net.JoinHostPort(r.Address, strconv.Itoa(int(r.Port))))
	path := PathUDP
	if l.Protocol == webrtc.ICEProtocolTCP {
		path = PathTCP
	}
	// A relayed candidate may first be seen as peer-reflexive (its check
	// arrived before it was signaled): the address decides.
	if a, err := netip.ParseAddr(r.Address); err == nil && p.engine.relayTransport != nil {
		switch p.engine.relayTransport(netip.AddrPortFrom(a.Unmap(), r.Port)) {
		case "udp":
			return PathRelayUDP, desc, true
		case "tcp":
			return PathRelayTCP, desc, true
		case "tls":
			return PathRelayTLS, desc, true
		}
	}
	if r.Typ == webrtc.ICECandidateTypeRelay {
		path = PathRelay
	}
	return path, desc, true
}

// Explain says what the reason means, for error "ice_failed"'s message.
func (r FailReason) Explain() string {
	switch r {
	case FailConsentLost:
		return "the media connection worked, then the network stopped answering (ICE consent lost)"
	case FailDTLS:
		return "the network path was found, but the encryption handshake (DTLS) never completed: something on the way drops it"
	case FailNoCandidates:
		return "the client sent no ICE candidates: it found no network address to offer"
	case FailTURNUnreachable:
		return "no connectivity check was answered and the client got no relay from the TURN servers: its network blocks the media and the TURN ports"
	case FailNoResponse:
		return "no connectivity check was answered: the network between client and server drops the media ports"
	}
	return string(r)
}

// Diagnose classifies why the PeerConnection is not connected (after the
// connect timeout, or once it failed), from what the server saw. Call it
// before Close.
func (p *Peer) Diagnose() FailReason {
	// A UDP or TCP check is given no TURN.
	turnOffered := p.engine.relayOffered != nil && p.engine.relayOffered() && p.cfg.OnlyTransport == ""
	if p.dtlsUp.Load() {
		return FailConsentLost
	}
	if p.iceUp.Load() {
		return FailDTLS
	}
	var remote, relayed int
	var answered bool
	for _, s := range p.pc.GetStats() {
		switch s := s.(type) {
		case webrtc.ICECandidateStats:
			if s.Type == webrtc.StatsTypeRemoteCandidate {
				remote++
				if s.CandidateType == webrtc.ICECandidateTypeRelay {
					relayed++
				}
			}
		case webrtc.ICECandidatePairStats:
			answered = answered || s.ResponsesReceived > 0
		}
	}
	switch {
	case remote == 0 && p.remoteCands.Load() == 0:
		return FailNoCandidates
	case turnOffered && relayed == 0 && !answered:
		return FailTURNUnreachable
	default:
		return FailNoResponse
	}
}

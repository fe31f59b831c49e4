package turn

// Ownership: inspect and sent run on pion's read goroutines (one for the
// UDP socket, one per TCP or TLS connection) and on its writers; they share
// the gate's maps under mu. The counters are atomics.

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/stun"
)

// Reasons a request is refused, the label values of
// roundtable_turn_refused_total.
const (
	RefusedUnauthorized = "unauthorized" // 401: expired, forged, or not a participant
	RefusedForbidden    = "forbidden"    // 403: a peer other than Roundtable's media addresses
	RefusedQuota        = "quota"        // 486: allocations per participant or in total
	RefusedMalformed    = "malformed"    // 400 or dropped: a message that would crash pion
)

// RefusedReasons lists every reason, in the order Stats.Refused counts them.
var RefusedReasons = []string{RefusedUnauthorized, RefusedForbidden, RefusedQuota, RefusedMalformed}

// stunHeaderSize is a STUN header's length (RFC 8489 §5).
const stunHeaderSize = 20

// magicCookie is STUN's fixed header field (RFC 8489 §5).
const magicCookie = 0x2112A442

var errTotalQuota = errors.New("turn: allocation cap reached")

// pendingTimeout forgets an Allocate that pion never answered.
const pendingTimeout = 10 * time.Second

type pendingAllocate struct {
	participant string
	at          time.Time
}

// gate stands in front of pion/turn: it sees every request before pion
// does and answers the ones Roundtable refuses (RFC 8656 §7.2, §9, §11:
// 401 for a bad credential, 403 for a peer that is not ours, 486 over a
// quota), and it sees every Allocate response pion sends, to learn which
// participant owns which relay.
type gate struct {
	secret   string
	realm    string
	live     func(string) bool
	peers    *peers
	now      func() time.Time
	maxPer   int
	maxTotal int

	mu      sync.Mutex
	relays  map[netip.AddrPort]*relayConn
	users   map[string]int // relays and pending Allocates per participant
	pending map[[stun.TransactionIDSize]byte]pendingAllocate

	refused [4]atomic.Int64 // by RefusedReasons
	dropped atomic.Int64    // relay datagrams to or from a non-peer
}

// authKey is pion's AuthHandler: the long-term key (RFC 8489 §9.2.2) of a
// REST API username, or false.
func (g *gate) authKey(username, realm string, _ net.Addr) ([]byte, bool) {
	if _, err := g.participant(username); err != nil {
		return nil, false
	}
	return stun.NewLongTermIntegrity(username, realm, restPassword(g.secret, username)), true
}

// participant checks a username's form, expiry and owner.
func (g *gate) participant(username string) (string, error) {
	exp, who, err := parseUsername(username)
	if err != nil {
		return "", err
	}
	if !exp.After(g.now()) {
		return "", ErrExpired
	}
	if g.live != nil && !g.live(who) {
		return "", ErrUnknownParticipant
	}
	return who, nil
}

// What a datagram or frame from a TURN client is, told apart the way
// pion/turn v2.1.6 does (HandleRequest, consumeSingleTURNFrame), so that
// the gate sees exactly the requests pion will handle.
const (
	junk        = iota // neither: pion would drop it, so does the gate
	channelData        // RFC 8656 §12.4: a valid channel number, a length that fits
	stunMessage        // RFC 8489 §5: the magic cookie (pion ignores the type's top bits)
)

func kindOf(b []byte) int {
	if len(b) >= 4 {
		n := binary.BigEndian.Uint16(b)
		if n >= 0x4000 && n <= 0x7FFF && int(binary.BigEndian.Uint16(b[2:])) <= len(b)-4 {
			return channelData
		}
	}
	if len(b) >= stunHeaderSize && binary.BigEndian.Uint32(b[4:]) == magicCookie {
		return stunMessage
	}
	return junk
}

// peerAddressesWellFormed walks a STUN message's attributes (RFC 8489
// §14) without allocating and reports whether every XOR-PEER-ADDRESS has
// the size its family needs. pion/stun v0.6.1 reads an address's family
// before checking its length: a short one panics pion's reader.
func peerAddressesWellFormed(b []byte) bool {
	end := min(len(b), stunHeaderSize+int(binary.BigEndian.Uint16(b[2:])))
	for off := stunHeaderSize; off+4 <= end; {
		typ, n := binary.BigEndian.Uint16(b[off:]), int(binary.BigEndian.Uint16(b[off+2:]))
		v := off + 4
		if typ == uint16(stun.AttrXORPeerAddress) {
			if v+n > end || n < 2 || (b[v+1] == 0x01 && n != 8) || (b[v+1] == 0x02 && n != 20) || b[v] != 0 || (b[v+1] != 0x01 && b[v+1] != 0x02) {
				return false
			}
		}
		off = v + (n+3)&^3
	}
	return true
}

// inspect looks at one datagram or frame from a TURN client: pass hands it
// to pion; otherwise reply (if any) is the error response to send instead.
// ChannelData (the media) passes after a four-byte check; indications are
// walked, not decoded; requests are decoded.
func (g *gate) inspect(b []byte) (reply []byte, pass bool) {
	switch kindOf(b) {
	case channelData:
		return nil, true
	case junk:
		return nil, false
	}
	var t stun.MessageType
	t.ReadValue(binary.BigEndian.Uint16(b))
	if !peerAddressesWellFormed(b) {
		g.refused[3].Add(1)
		if t.Class != stun.ClassRequest {
			return nil, false
		}
		m := &stun.Message{Raw: append([]byte(nil), b...)}
		if m.Decode() != nil {
			return nil, false
		}
		return g.reply(m, stun.CodeBadRequest, "Bad Request: malformed XOR-PEER-ADDRESS", nil), false
	}
	if t.Class != stun.ClassRequest {
		return nil, true
	}
	switch t.Method {
	case stun.MethodAllocate, stun.MethodRefresh, stun.MethodCreatePermission, stun.MethodChannelBind:
	default:
		return nil, true
	}
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if err := m.Decode(); err != nil || !m.Contains(stun.AttrMessageIntegrity) {
		return nil, true // pion answers 400, or 401 with a nonce
	}
	var user stun.Username
	var realm stun.Realm
	if user.GetFrom(m) != nil || realm.GetFrom(m) != nil {
		return nil, true
	}
	who, err := g.participant(user.String())
	key := stun.NewLongTermIntegrity(user.String(), realm.String(), restPassword(g.secret, user.String()))
	if err == nil && key.Check(m) != nil {
		err = ErrBadIntegrity
	}
	if err != nil {
		g.refused[0].Add(1)
		var nonce stun.Nonce
		_ = nonce.GetFrom(m)
		return g.reply(m, stun.CodeUnauthorized, err.Error(), nil, stun.NewRealm(g.realm), nonce), false
	}
	switch t.Method {
	case stun.MethodCreatePermission, stun.MethodChannelBind:
		if !g.peersAllowed(m, t.Method == stun.MethodChannelBind) {
			g.refused[1].Add(1)
			return g.reply(m, stun.CodeForbidden, "Forbidden: this server relays only to its own media addresses", key), false
		}
	case stun.MethodAllocate:
		if !g.admit(m.TransactionID, who) {
			g.refused[2].Add(1)
			return g.reply(m, stun.CodeAllocQuotaReached, "Allocation Quota Reached", key), false
		}
	}
	return nil, true
}

// peersAllowed checks every XOR-PEER-ADDRESS: its IP for a permission,
// its whole transport address for a channel.
func (g *gate) peersAllowed(m *stun.Message, exact bool) bool {
	n := 0
	for _, a := range m.Attributes {
		if a.Type != stun.AttrXORPeerAddress {
			continue
		}
		n++
		var peer stun.XORMappedAddress
		one := &stun.Message{TransactionID: m.TransactionID}
		one.Add(stun.AttrXORPeerAddress, a.Value)
		if err := peer.GetFromAs(one, stun.AttrXORPeerAddress); err != nil {
			return true // malformed: pion answers 400
		}
		if !g.peers.allowIP(peer.IP) {
			return false
		}
		if exact {
			ip, _ := netip.AddrFromSlice(peer.IP)
			if _, ok := g.peers.localFor(netip.AddrPortFrom(ip, uint16(peer.Port))); !ok {
				return false
			}
		}
	}
	return true
}

// admit counts an Allocate against the participant's and the total quota.
func (g *gate) admit(tx [stun.TransactionIDSize]byte, who string) bool {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.pending[tx]; ok {
		return true // a retransmission
	}
	for id, p := range g.pending {
		if now.Sub(p.at) > pendingTimeout {
			delete(g.pending, id)
			g.release(p.participant)
		}
	}
	if g.users[who] >= g.maxPer || len(g.relays)+len(g.pending) >= g.maxTotal {
		return false
	}
	g.pending[tx] = pendingAllocate{participant: who, at: now}
	g.users[who]++
	return true
}

// release gives back one of who's slots (g.mu held).
func (g *gate) release(who string) {
	if g.users[who] <= 1 {
		delete(g.users, who)
		return
	}
	g.users[who]--
}

// sent sees a message pion sends to a client. An answer to an Allocate the
// gate admitted settles its slot: kept by the relay it names, or given
// back.
func (g *gate) sent(b []byte, owner *handling) {
	if len(b) < stunHeaderSize || b[0] != 0x01 || (b[1] != 0x03 && b[1] != 0x13) {
		return // not an Allocate success (0x0103) or error (0x0113) response
	}
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if m.Decode() != nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	p, ok := g.pending[m.TransactionID]
	if !ok {
		return
	}
	delete(g.pending, m.TransactionID)
	var relayed stun.XORMappedAddress
	if m.Type.Class == stun.ClassSuccessResponse && relayed.GetFromAs(m, stun.AttrXORRelayedAddress) == nil {
		ip, _ := netip.AddrFromSlice(relayed.IP)
		if rc := g.relays[netip.AddrPortFrom(ip.Unmap(), uint16(relayed.Port))]; rc != nil && rc.participant == "" {
			rc.participant = p.participant
			rc.owner = owner
			return
		}
	}
	g.release(p.participant)
}

// removeRelay forgets a closed relay and gives its slot back.
func (g *gate) removeRelay(rc *relayConn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.relays[rc.addr] == rc {
		delete(g.relays, rc.addr)
	}
	if rc.participant != "" {
		g.release(rc.participant)
	}
}

// closeRelay closes a relay while no request of its client is being
// handled by pion (see handling), and keeps it so until pion has closed
// the allocation (its packet handler sees the socket fail, deletes the
// allocation and closes the socket again), at most closeWait.
func (g *gate) closeRelay(rc *relayConn) {
	g.mu.Lock()
	owner := rc.owner
	g.mu.Unlock()
	if owner != nil && owner.lock(closeWait) {
		defer owner.mu.Unlock()
	}
	_ = rc.Close()
	select {
	case <-rc.pionClosed:
	case <-time.After(closeWait):
	}
}

// closeWait bounds how long closing a relay waits for pion.
const closeWait = 2 * time.Second

// relaysWhere returns the relays that keep says to.
func (g *gate) relaysWhere(keep func(*relayConn) bool) []*relayConn {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*relayConn
	for _, rc := range g.relays {
		if keep(rc) {
			out = append(out, rc)
		}
	}
	return out
}

// reply builds an error response to m (RFC 8489 §6.3.4), integrity
// protected with key when the request was authenticated.
func (g *gate) reply(m *stun.Message, code stun.ErrorCode, reason string, key stun.MessageIntegrity, extra ...stun.Setter) []byte {
	setters := []stun.Setter{
		stun.NewTransactionIDSetter(m.TransactionID),
		stun.NewType(m.Type.Method, stun.ClassErrorResponse),
		&stun.ErrorCodeAttribute{Code: code, Reason: []byte(reason)},
	}
	for _, s := range extra {
		if n, ok := s.(stun.Nonce); ok && len(n) == 0 {
			continue
		}
		setters = append(setters, s)
	}
	if key != nil {
		setters = append(setters, key)
	}
	r, err := stun.Build(setters...)
	if err != nil {
		return nil
	}
	return r.Raw
}

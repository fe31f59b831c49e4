package turn

// Ownership: inspect and sent run on pion's read goroutines (one for the
// UDP socket, one per TCP or TLS connection) and on its writers; they share
// the gate's maps under mu. The counters are atomics.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
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
)

// RefusedReasons lists every reason, in the order Stats.Refused counts them.
var RefusedReasons = []string{RefusedUnauthorized, RefusedForbidden, RefusedQuota}

// stunHeaderSize is a STUN header's length (RFC 8489 §5).
const stunHeaderSize = 20

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

	refused [3]atomic.Int64 // by RefusedReasons
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

// inspect looks at one datagram or frame from a TURN client: nil hands it
// to pion, anything else is the error response to send instead. Only
// authenticated requests are decoded; ChannelData and indications (the
// media) pass after a two-byte check.
func (g *gate) inspect(b []byte) []byte {
	if len(b) < stunHeaderSize || b[0]&0xC0 != 0 {
		return nil // ChannelData (RFC 8656 §12.4) or not STUN
	}
	var t stun.MessageType
	t.ReadValue(binary.BigEndian.Uint16(b))
	if t.Class != stun.ClassRequest {
		return nil
	}
	switch t.Method {
	case stun.MethodAllocate, stun.MethodRefresh, stun.MethodCreatePermission, stun.MethodChannelBind:
	default:
		return nil
	}
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if err := m.Decode(); err != nil || !m.Contains(stun.AttrMessageIntegrity) {
		return nil // pion answers 400, or 401 with a nonce
	}
	var user stun.Username
	var realm stun.Realm
	if user.GetFrom(m) != nil || realm.GetFrom(m) != nil {
		return nil
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
		return g.reply(m, stun.CodeUnauthorized, err.Error(), nil, stun.NewRealm(g.realm), nonce)
	}
	switch t.Method {
	case stun.MethodCreatePermission, stun.MethodChannelBind:
		if !g.peersAllowed(m, t.Method == stun.MethodChannelBind) {
			g.refused[1].Add(1)
			return g.reply(m, stun.CodeForbidden, "Forbidden: this server relays only to its own media addresses", key)
		}
	case stun.MethodAllocate:
		if !g.admit(m.TransactionID, who) {
			g.refused[2].Add(1)
			return g.reply(m, stun.CodeAllocQuotaReached, "Allocation Quota Reached", key)
		}
	}
	return nil
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
// handled by pion (see handling).
func (g *gate) closeRelay(rc *relayConn) {
	g.mu.Lock()
	owner := rc.owner
	g.mu.Unlock()
	if owner != nil {
		owner.mu.Lock()
		defer owner.mu.Unlock()
	}
	_ = rc.Close()
}

// participantRelays returns who's relays.
func (g *gate) participantRelays(who string) []*relayConn {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*relayConn
	for _, rc := range g.relays {
		if rc.participant == who {
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

// handling is held by a pion reader goroutine from the moment one of our
// conns hands it a datagram or frame until it asks for the next: while
// pion handles that request. Closing an allocation's relay under it keeps
// pion/turn v2.1.6 from racing (a nil timer, a panic) between deleting
// the allocation and adding a permission or channel to it (its
// AddPermission publishes a permission before starting its timer, and
// Allocation.Close stops every permission's timer without that lock).
type handling struct {
	mu   sync.Mutex
	held bool // reader goroutine only
}

// release is called by the reader as it asks for the next request.
func (h *handling) release() {
	if h.held {
		h.held = false
		h.mu.Unlock()
	}
}

// acquire is called by the reader as it hands a request to pion.
func (h *handling) acquire() {
	h.mu.Lock()
	h.held = true
}

// gatedPacketConn is TURN over UDP with the gate in front.
type gatedPacketConn struct {
	net.PacketConn
	g *gate
	h handling
}

func (c *gatedPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.h.release()
	for {
		n, from, err := c.PacketConn.ReadFrom(b)
		if err != nil {
			return n, from, err
		}
		if r := c.g.inspect(b[:n]); r != nil {
			_, _ = c.PacketConn.WriteTo(r, from)
			continue
		}
		c.h.acquire()
		return n, from, nil
	}
}

func (c *gatedPacketConn) WriteTo(b []byte, to net.Addr) (int, error) {
	c.g.sent(b, &c.h)
	return c.PacketConn.WriteTo(b, to)
}

// gatedListener is TURN over TCP or TLS with the gate in front of each
// connection.
type gatedListener struct {
	net.Listener
	g *gate

	mu     sync.Mutex
	conns  map[*gatedStream]struct{} // open connections, closed with the listener
	closed bool
}

func (l *gatedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	s := &gatedStream{Conn: c, g: l.g, l: l, r: bufio.NewReaderSize(c, 2048)}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	l.conns[s] = struct{}{}
	return s, nil
}

// Close closes the listener and every connection it accepted (pion's
// Server.Close leaves those open).
func (l *gatedListener) Close() error {
	err := l.Listener.Close()
	l.mu.Lock()
	l.closed = true
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	for s := range conns {
		_ = s.Conn.Close()
	}
	return err
}

// gatedStream reads a TURN stream frame by frame (RFC 8656 §12.5: STUN
// messages and ChannelData padded to four bytes), so that the gate sees
// whole requests; pion reads the frames it lets through.
type gatedStream struct {
	net.Conn
	g    *gate
	l    *gatedListener
	h    handling
	r    *bufio.Reader
	buf  []byte
	rest []byte // what pion has not read yet of the current frame
}

// Read returns one frame per call (pion's reader asks with room for any
// frame it accepts), so each call is one request handed to pion.
func (c *gatedStream) Read(p []byte) (int, error) {
	c.h.release()
	for len(c.rest) == 0 {
		frame, err := c.next()
		if err != nil {
			return 0, err
		}
		if r := c.g.inspect(frame); r != nil {
			if _, err := c.Conn.Write(r); err != nil {
				return 0, err
			}
			continue
		}
		c.rest = frame
	}
	n := copy(p, c.rest)
	c.rest = c.rest[n:]
	c.h.acquire()
	return n, nil
}

func (c *gatedStream) next() ([]byte, error) {
	h, err := c.r.Peek(4)
	if err != nil {
		return nil, err
	}
	size := 4 + int(binary.BigEndian.Uint16(h[2:])) // ChannelData
	if h[0]&0xC0 == 0 {
		size = stunHeaderSize + int(binary.BigEndian.Uint16(h[2:])) // STUN
	} else {
		size = (size + 3) &^ 3
	}
	if cap(c.buf) < size {
		c.buf = make([]byte, size)
	}
	frame := c.buf[:size]
	if _, err := io.ReadFull(c.r, frame); err != nil {
		return nil, err
	}
	return frame, nil
}

// streamWriteTimeout bounds one write to a TURN client over TCP or TLS: a
// client that stops reading must not hold pion's reader (and handling)
// forever.
const streamWriteTimeout = 5 * time.Second

func (c *gatedStream) Write(b []byte) (int, error) {
	c.g.sent(b, &c.h)
	_ = c.Conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	return c.Conn.Write(b)
}

func (c *gatedStream) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

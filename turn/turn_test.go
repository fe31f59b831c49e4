package turn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/stun"
	pionturn "github.com/pion/turn/v2"
)

const testSecret = "north-wind-secret"

// An independent HMAC-SHA1 (Python's hmac module) gave this password; it
// is what coturn's use-auth-secret computes for the same username.
func TestCredentialIsTheRESTForm(t *testing.T) {
	u, p := Credential(testSecret, "alice", time.Unix(1700000000, 0))
	if u != "1700000000:alice" || p != "r/l6ttQtMIfbS2lfULS0mDRRNUg=" {
		t.Fatalf("credential %q %q", u, p)
	}
	for _, bad := range []string{"alice", "x:alice", "1700000000:", ""} {
		if _, _, err := parseUsername(bad); !errors.Is(err, ErrBadUsername) {
			t.Errorf("parseUsername(%q) = %v, want ErrBadUsername", bad, err)
		}
	}
}

// fixture is a TURN server on loopback (UDP and TCP) whose only peer is
// media, a UDP socket standing in for Roundtable's ICE port.
type fixture struct {
	srv    *Server
	udp    net.PacketConn
	tcp    net.Listener
	media  *net.UDPConn
	clock  *clock
	liveMu sync.Mutex
	live   map[string]bool
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func newFixture(t *testing.T, perParticipant, total int) *fixture {
	t.Helper()
	checkLeaks(t)
	f := &fixture{clock: &clock{now: time.Now()}, live: map[string]bool{"alice": true, "bob": true}}
	var err error
	if f.media, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.media.Close() })
	if f.udp, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if f.tcp, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	f.srv, err = New(Config{
		Secret: testSecret, Realm: "roundtable", UDP: f.udp, TCP: []net.Listener{f.tcp},
		RelayIP: netip.MustParseAddr("127.0.0.1"), Peers: []netip.AddrPort{f.media.LocalAddr().(*net.UDPAddr).AddrPort()},
		MaxPerParticipant: perParticipant, MaxAllocations: total, Now: f.clock.Now,
		Live:          func(p string) bool { f.liveMu.Lock(); defer f.liveMu.Unlock(); return f.live[p] },
		LoggerFactory: &logging.DefaultLoggerFactory{DefaultLogLevel: logging.LogLevelDisabled},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return f
}

func (f *fixture) credential(who string, ttl time.Duration) (string, string) {
	return Credential(testSecret, who, f.clock.Now().Add(ttl))
}

// pionClient is pion/turn's own client over UDP (tcp: over TCP).
func (f *fixture) pionClient(t *testing.T, user, pass string, tcp bool) *pionturn.Client {
	t.Helper()
	var conn net.PacketConn
	addr := f.udp.LocalAddr().String()
	if tcp {
		c, err := net.Dial("tcp4", f.tcp.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn, addr = pionturn.NewSTUNConn(c), f.tcp.Addr().String()
	} else {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conn = c
	}
	c, err := pionturn.NewClient(&pionturn.ClientConfig{
		STUNServerAddr: addr, TURNServerAddr: addr, Conn: conn, Username: user, Password: pass,
		LoggerFactory: &logging.DefaultLoggerFactory{DefaultLogLevel: logging.LogLevelDisabled},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); _ = conn.Close() })
	return c
}

// Media goes both ways through a relay over UDP and over TCP, and the
// relay sends nothing to another port of the same host.
func TestRelayReachesRoundtableOnly(t *testing.T) {
	f := newFixture(t, 4, 10)
	other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for _, tcp := range []bool{false, true} {
		u, p := f.credential("alice", time.Hour)
		relay, err := f.pionClient(t, u, p, tcp).Allocate()
		if err != nil {
			t.Fatalf("allocate (tcp %v): %v", tcp, err)
		}
		want := map[bool]string{false: "udp", true: "tcp"}[tcp]
		if got := f.srv.RelayTransport(relay.LocalAddr().(*net.UDPAddr).AddrPort()); got != want {
			t.Errorf("RelayTransport of the relay = %q, want %q", got, want)
		}
		// To the media address: it arrives from the relayed address, and
		// the answer comes back.
		if _, err := relay.WriteTo([]byte("to media"), f.media.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		_ = f.media.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := f.media.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "to media" || from.String() != relay.LocalAddr().String() {
			t.Fatalf("media got %q from %v (relay %v): %v", buf[:n], from, relay.LocalAddr(), err)
		}
		if _, err := f.media.WriteTo([]byte("from media"), from); err != nil {
			t.Fatal(err)
		}
		_ = relay.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err = relay.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "from media" || from.String() != f.media.LocalAddr().String() {
			t.Fatalf("client got %q from %v: %v", buf[:n], from, err)
		}
		// Same IP, another port: the permission exists (it is per IP),
		// the relay socket drops it.
		dropped := f.srv.Stats().Dropped
		if _, err := relay.WriteTo([]byte("to other"), other.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the datagram to another port dropped", func() bool { return f.srv.Stats().Dropped > dropped })
		_ = other.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, _, err := other.ReadFrom(buf); err == nil {
			t.Fatalf("another port of the host got %q through the relay", buf[:n])
		}
		_ = relay.Close()
	}
}

func TestNotAnOpenRelay(t *testing.T) {
	f := newFixture(t, 2, 3)
	media := f.media.LocalAddr().(*net.UDPAddr)
	u, p := f.credential("alice", time.Hour)
	a := newRaw(t, f, u, p)
	if res := a.do(stun.MethodAllocate, transportUDP); res.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("allocate: %v", errorCode(res))
	}
	refused := func(reason string) int64 { return f.srv.Stats().Refused[reason] }

	// A permission toward an address that is not Roundtable's (nothing is
	// sent there: the request is refused).
	before := refused(RefusedForbidden)
	if res := a.do(stun.MethodCreatePermission, peer(netip.MustParseAddrPort("198.18.0.99:5000"))); errorCode(res) != stun.CodeForbidden {
		t.Fatalf("permission to a foreign address: %v, want 403", errorCode(res))
	}
	// A channel toward the media IP but another port.
	other := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(media.Port+1))
	if res := a.do(stun.MethodChannelBind, channel(0x4000), peer(other)); errorCode(res) != stun.CodeForbidden {
		t.Fatalf("channel to another port: %v, want 403", errorCode(res))
	}
	if got := refused(RefusedForbidden) - before; got != 2 {
		t.Fatalf("refused forbidden moved by %d, want 2", got)
	}
	// Toward the media address itself: granted.
	if res := a.do(stun.MethodCreatePermission, peer(media.AddrPort())); res.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("permission to the media address: %v", errorCode(res))
	}
	if res := a.do(stun.MethodChannelBind, channel(0x4001), peer(media.AddrPort())); res.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("channel to the media address: %v", errorCode(res))
	}

	// Credentials: expired, forged, a participant that is not in a room,
	// a username that is not the REST form.
	before = refused(RefusedUnauthorized)
	eu, ep := f.credential("alice", -time.Second)
	fu, _ := f.credential("alice", time.Hour)
	gu, gp := f.credential("mallory", time.Hour)
	for name, c := range map[string][2]string{
		"expired": {eu, ep}, "forged": {fu, "not-the-password"}, "not a participant": {gu, gp}, "not REST": {"alice", p},
	} {
		r := newRaw(t, f, c[0], c[1])
		if res := r.do(stun.MethodAllocate, transportUDP); errorCode(res) != stun.CodeUnauthorized {
			t.Errorf("%s credential: %v, want 401", name, errorCode(res))
		}
	}
	if got := refused(RefusedUnauthorized) - before; got != 4 {
		t.Errorf("refused unauthorized moved by %d, want 4", got)
	}

	// Quotas: two per participant, three in all.
	a2 := newRaw(t, f, u, p)
	if res := a2.do(stun.MethodAllocate, transportUDP); res.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("second allocation: %v", errorCode(res))
	}
	a3 := newRaw(t, f, u, p)
	if res := a3.do(stun.MethodAllocate, transportUDP); errorCode(res) != stun.CodeAllocQuotaReached {
		t.Fatalf("third allocation of one participant: %v, want 486", errorCode(res))
	}
	bu, bp := f.credential("bob", time.Hour)
	b1 := newRaw(t, f, bu, bp)
	if res := b1.do(stun.MethodAllocate, transportUDP); res.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("bob's allocation: %v", errorCode(res))
	}
	b2 := newRaw(t, f, bu, bp)
	if res := b2.do(stun.MethodAllocate, transportUDP); errorCode(res) != stun.CodeAllocQuotaReached {
		t.Fatalf("fourth allocation in all: %v, want 486", errorCode(res))
	}
	if n := f.srv.Stats().Allocations; n != 3 {
		t.Fatalf("%d allocations open, want 3", n)
	}
	// Deleting one (Refresh, LIFETIME 0) gives its slot back.
	if res := a2.do(stun.MethodRefresh, lifetime(0)); res.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("delete: %v", errorCode(res))
	}
	waitFor(t, "the deleted allocation's slot back", func() bool { return f.srv.Stats().Allocations == 2 })
	if res := a3.do(stun.MethodAllocate, transportUDP); res.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("allocation after a delete: %v", errorCode(res))
	}

	// A participant that leaves loses its relays and its credential.
	f.liveMu.Lock()
	delete(f.live, "alice")
	f.liveMu.Unlock()
	f.srv.Release("alice")
	waitFor(t, "alice's relays closed", func() bool { return f.srv.Stats().Allocations == 1 })
	if res := a.do(stun.MethodRefresh, lifetime(600)); errorCode(res) != stun.CodeUnauthorized {
		t.Fatalf("refresh after leaving: %v, want 401", errorCode(res))
	}
}

// raw is a hand-driven TURN client over UDP, for requests pion's client
// does not let a test shape.
type raw struct {
	t                 *testing.T
	conn              net.Conn
	user, pass, realm string
	nonce             stun.Nonce
}

func newRaw(t *testing.T, f *fixture, user, pass string) *raw {
	c, err := net.Dial("udp4", f.udp.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &raw{t: t, conn: c, user: user, pass: pass}
}

// do sends one request (authenticated once the server has given a nonce)
// and returns the response.
func (r *raw) do(method stun.Method, attrs ...stun.Setter) *stun.Message {
	r.t.Helper()
	for range 3 {
		s := []stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}
		s = append(s, attrs...)
		if r.nonce != nil {
			s = append(s, stun.NewUsername(r.user), stun.NewRealm(r.realm), r.nonce, stun.NewLongTermIntegrity(r.user, r.realm, r.pass))
		}
		req := stun.MustBuild(s...)
		res := r.roundTrip(req)
		code := errorCode(res)
		if (code == stun.CodeUnauthorized && r.nonce == nil) || code == stun.CodeStaleNonce {
			var n stun.Nonce
			var realm stun.Realm
			if n.GetFrom(res) == nil && realm.GetFrom(res) == nil {
				r.nonce, r.realm = n, realm.String()
				continue
			}
		}
		return res
	}
	r.t.Fatalf("%v: no answer but nonces", method)
	return nil
}

func (r *raw) roundTrip(req *stun.Message) *stun.Message {
	r.t.Helper()
	buf := make([]byte, 1500)
	for try := 0; try < 5; try++ {
		if _, err := r.conn.Write(req.Raw); err != nil {
			r.t.Fatal(err)
		}
		_ = r.conn.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, err := r.conn.Read(buf)
			if err != nil {
				break // retransmit (UDP)
			}
			res := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if res.Decode() == nil && res.TransactionID == req.TransactionID {
				return res
			}
		}
	}
	r.t.Fatalf("no answer to %v", req.Type)
	return nil
}

func errorCode(m *stun.Message) stun.ErrorCode {
	var e stun.ErrorCodeAttribute
	if m.Type.Class != stun.ClassErrorResponse || e.GetFrom(m) != nil {
		return 0
	}
	return e.Code
}

var transportUDP = stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}

func peer(a netip.AddrPort) stun.Setter {
	v := make([]byte, 8)
	v[1] = 0x01 // IPv4
	binary.BigEndian.PutUint16(v[2:], a.Port()^0x2112)
	ip := a.Addr().As4()
	for i := range 4 {
		v[4+i] = ip[i] ^ []byte{0x21, 0x12, 0xA4, 0x42}[i]
	}
	return stun.RawAttribute{Type: stun.AttrXORPeerAddress, Value: v}
}

func channel(n uint16) stun.Setter {
	return stun.RawAttribute{Type: stun.AttrChannelNumber, Value: append(binary.BigEndian.AppendUint16(nil, n), 0, 0)}
}

func lifetime(sec uint32) stun.Setter {
	return stun.RawAttribute{Type: stun.AttrLifetime, Value: binary.BigEndian.AppendUint32(nil, sec)}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkLeaks fails the test if goroutines outlive it.
func checkLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("goroutines: %d before, %d after\n%s", before, n, firstFrames(buf))
		}
	})
}

func firstFrames(stacks []byte) string {
	var b strings.Builder
	for _, g := range bytes.Split(stacks, []byte("\n\n")) {
		lines := strings.Split(string(g), "\n")
		if len(lines) > 2 {
			b.WriteString(lines[1] + "\n")
		}
	}
	return b.String()
}

// Messages that would crash pion or slip past the gate: a short
// XOR-PEER-ADDRESS in a request (400) and in a Send indication (dropped),
// and an Allocate whose type has the top bits set, which pion reads as an
// Allocate but is not ChannelData either (dropped: the quota holds). The
// server answers normally afterwards.
func TestMalformedMessagesAreRefused(t *testing.T) {
	f := newFixture(t, 1, 10)
	u, p := f.credential("alice", time.Hour)
	a := newRaw(t, f, u, p)
	if res := a.do(stun.MethodAllocate, transportUDP); res.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("allocate: %v", errorCode(res))
	}
	empty := stun.RawAttribute{Type: stun.AttrXORPeerAddress, Value: nil}
	if res := a.do(stun.MethodCreatePermission, empty); errorCode(res) != stun.CodeBadRequest {
		t.Fatalf("permission with an empty XOR-PEER-ADDRESS: %v, want 400", errorCode(res))
	}
	send := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication),
		stun.RawAttribute{Type: stun.AttrData, Value: []byte("x")}, empty)
	if _, err := a.conn.Write(send.Raw); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two malformed messages counted", func() bool { return f.srv.Stats().Refused[RefusedMalformed] == 2 })
	// The smuggled Allocate: the participant already holds its one.
	b := newRaw(t, f, u, p)
	if res := b.do(stun.MethodAllocate, transportUDP); errorCode(res) != stun.CodeAllocQuotaReached {
		t.Fatalf("second allocation: %v, want 486", errorCode(res))
	}
	smuggled := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), transportUDP,
		stun.NewUsername(b.user), stun.NewRealm(b.realm), b.nonce, stun.NewLongTermIntegrity(b.user, b.realm, b.pass))
	smuggled.Raw[0] |= 0x80
	if _, err := b.conn.Write(smuggled.Raw); err != nil {
		t.Fatal(err)
	}
	// Still answering, still one allocation.
	if res := a.do(stun.MethodRefresh, lifetime(600)); res.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("refresh after the malformed messages: %v", errorCode(res))
	}
	if n := f.srv.Stats().Allocations; n != 1 {
		t.Fatalf("%d allocations, want 1", n)
	}
}

// Over TCP, an allocation ends with its connection, and a stream that is
// neither STUN nor ChannelData is closed.
func TestTCPAllocationEndsWithItsConnection(t *testing.T) {
	f := newFixture(t, 4, 10)
	u, p := f.credential("alice", time.Hour)
	conn, err := net.Dial("tcp4", f.tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := pionturn.NewClient(&pionturn.ClientConfig{
		STUNServerAddr: f.tcp.Addr().String(), TURNServerAddr: f.tcp.Addr().String(), Conn: pionturn.NewSTUNConn(conn),
		Username: u, Password: p, LoggerFactory: &logging.DefaultLoggerFactory{DefaultLogLevel: logging.LogLevelDisabled},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	if n := f.srv.Stats().Allocations; n != 1 {
		t.Fatalf("%d allocations, want 1", n)
	}
	_ = conn.Close() // not a Refresh with lifetime 0: the connection just ends
	waitFor(t, "the allocation gone with its connection", func() bool { return f.srv.Stats().Allocations == 0 })
	_ = relay.Close() // stops the client's refresh timers (its last Refresh fails on the closed connection)
	c.Close()

	junkConn, err := net.Dial("tcp4", f.tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer junkConn.Close()
	_, _ = junkConn.Write([]byte{0x80, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	_ = junkConn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := junkConn.Read(make([]byte, 1)); err == nil {
		t.Fatal("a junk stream got an answer; want it closed")
	}
}

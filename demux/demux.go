// Package demux shares one TCP port between the protocols a Roundtable
// server speaks over TCP, so that a client whose network lets out only
// HTTPS (TCP 443) still reaches everything: the web page and WebSocket
// signaling (HTTP, over TLS or not), ICE over TCP (RFC 6544) and TURN over
// TCP or TLS (RFC 8656). Each connection is told apart by its first bytes:
//
//   - a TLS ClientHello (0x16 0x03): the handshake is done here, then the
//     first decrypted bytes decide: a STUN header is TURN over TLS, anything
//     else HTTPS (a connection that negotiated HTTP/2 by ALPN is HTTPS at
//     once, one that negotiated "stun.turn", RFC 7443, TURN over TLS, and
//     one that negotiated "acme-tls/1", an ACME CA's tls-alpn-01 check,
//     RFC 8737, is closed after its handshake);
//   - RFC 4571 framing around a STUN Binding request (a 16-bit length, then
//     type 0x0001 and the magic cookie): ICE over TCP;
//   - a STUN header (RFC 8489 §5: two zero bits, the magic cookie at byte
//     4): TURN over TCP;
//   - anything else: HTTP, served only without TLS (with TLS it gets a 400).
//
// A connection whose kind nobody listens for, or that sends nothing within
// the sniff timeout, is closed, as are new ones while 1,024 are being
// sniffed. Accept errors other than the listener closing (out of
// descriptors) are retried with a backoff.
//
// Goroutines: one accepts on the shared listener; each new connection is
// sniffed (and its TLS handshake done) on a goroutine of its own, bounded
// by the timeout, then handed to the Listener of its kind, whose owner
// accepts it.
package demux

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// Kind is what a connection carries.
type Kind int

// The kinds, in the order they are tried.
const (
	HTTP   Kind = iota // HTTP/1.1 or HTTPS (after TLS, or plain)
	ICETCP             // ICE over TCP, RFC 4571 framing (RFC 6544)
	TURN               // TURN over TCP
	TURNS              // TURN over TLS
	numKinds
)

var kindNames = [numKinds]string{"http", "ice-tcp", "turn", "turns"}

func (k Kind) String() string { return kindNames[k] }

// magicCookie is STUN's fixed header field (RFC 8489 §5).
var magicCookie = []byte{0x21, 0x12, 0xA4, 0x42}

// Classify tells a connection's kind from its first ten bytes (before
// TLS; a TLS ClientHello is reported as TURNS's carrier by tls).
func Classify(b []byte) (k Kind, tls bool) {
	switch {
	case len(b) >= 2 && b[0] == 0x16 && b[1] == 0x03:
		return HTTP, true
	case len(b) >= 10 && b[2] == 0x00 && b[3] == 0x01 && bytes.Equal(b[6:10], magicCookie):
		return ICETCP, false
	case isSTUN(b):
		return TURN, false
	}
	return HTTP, false
}

func isSTUN(b []byte) bool {
	return len(b) >= 8 && b[0]&0xC0 == 0 && bytes.Equal(b[4:8], magicCookie)
}

// Mux accepts on one listener and hands each connection to the Listener of
// its kind.
type Mux struct {
	ln      net.Listener
	tls     *tls.Config
	timeout time.Duration
	// ctx ends with Close: a handshake waiting on a certificate source
	// (GetCertificate) hears of it through the handshake's context.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	subs     [numKinds]*Listener
	closed   bool
	sniffing map[net.Conn]struct{} // closed by Close, which waits for wg
	wg       sync.WaitGroup        // sniffing goroutines
	done     chan struct{}
}

// New starts demultiplexing ln. tlsConfig, when set, makes TLS connections
// welcome (HTTPS and TURNS); sniff bounds the wait for a connection's first
// bytes and its TLS handshake. Ask for each kind served with Listen before
// connections arrive; Close closes ln and every Listener.
func New(ln net.Listener, tlsConfig *tls.Config, sniff time.Duration) *Mux {
	m := &Mux{ln: ln, tls: tlsConfig, timeout: sniff, done: make(chan struct{}), sniffing: map[net.Conn]struct{}{}}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	go m.acceptLoop()
	return m
}

// Listen returns the listener of one kind; its Addr is the shared one.
func (m *Mux) Listen(k Kind) *Listener {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.subs[k] == nil {
		m.subs[k] = &Listener{m: m, kind: k, conns: make(chan net.Conn, 64), closed: make(chan struct{})}
	}
	return m.subs[k]
}

// Addr is the shared listener's address.
func (m *Mux) Addr() net.Addr { return m.ln.Addr() }

// maxSniffing bounds the connections being sniffed at once; more are
// closed at once (each holds a descriptor for up to the sniff timeout).
const maxSniffing = 1024

func (m *Mux) acceptLoop() {
	defer close(m.done)
	var backoff time.Duration
	for {
		c, err := m.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors or buffers: wait and try again, as
			// net/http does, instead of leaving the port dead.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			_ = c.Close()
			return
		}
		if len(m.sniffing) >= maxSniffing {
			m.mu.Unlock()
			_ = c.Close()
			continue
		}
		m.wg.Add(1)
		m.sniffing[c] = struct{}{}
		m.mu.Unlock()
		go func() {
			defer m.wg.Done()
			m.route(c)
			m.mu.Lock()
			delete(m.sniffing, c)
			m.mu.Unlock()
		}()
	}
}

// route sniffs c and hands it on, or closes it.
func (m *Mux) route(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(m.timeout))
	br := bufio.NewReaderSize(c, 512)
	head, err := br.Peek(10)
	if err != nil && len(head) < 2 {
		_ = c.Close()
		return
	}
	kind, isTLS := Classify(head)
	if kind == HTTP && !isTLS && m.tls != nil {
		// This port speaks HTTPS: plain HTTP gets what Go's TLS server
		// would say, not the page.
		_, _ = c.Write([]byte("HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"))
		_ = c.Close()
		return
	}
	var conn net.Conn = &peeked{Conn: c, r: br}
	if isTLS {
		if m.tls == nil {
			_ = c.Close()
			return
		}
		tc := tls.Server(conn, m.tls)
		ctx, cancel := context.WithTimeout(m.ctx, m.timeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			_ = c.Close()
			return
		}
		conn, kind = tc, HTTP
		switch tc.ConnectionState().NegotiatedProtocol {
		case "h2":
		case "stun.turn": // RFC 7443
			kind = TURNS
		case "acme-tls/1":
			// An ACME CA's tls-alpn-01 check (RFC 8737 §3): the handshake,
			// with its challenge certificate, was all of it.
			_ = c.Close()
			return
		default:
			// HTTP/1.1 or no ALPN: the first decrypted bytes decide.
			tr := bufio.NewReaderSize(tc, 512)
			if inner, err := tr.Peek(8); err == nil && isSTUN(inner) {
				kind = TURNS
			} else if err != nil && len(inner) == 0 {
				_ = c.Close()
				return
			}
			conn = &peeked{Conn: tc, r: tr}
		}
	}
	_ = c.SetDeadline(time.Time{})
	m.mu.Lock()
	sub := m.subs[kind]
	m.mu.Unlock()
	if sub == nil || !sub.deliver(conn) {
		_ = conn.Close()
	}
}

// Close closes the shared listener and every Listener, and waits for the
// connections being sniffed.
func (m *Mux) Close() error {
	m.cancel()
	m.mu.Lock()
	m.closed = true
	subs := m.subs
	for c := range m.sniffing {
		_ = c.Close()
	}
	m.mu.Unlock()
	err := m.ln.Close()
	<-m.done
	m.wg.Wait()
	for _, s := range subs {
		if s != nil {
			_ = s.Close()
		}
	}
	return err
}

// Listener is the net.Listener of one kind of connection.
type Listener struct {
	m     *Mux
	kind  Kind
	conns chan net.Conn

	once   sync.Once
	closed chan struct{}
}

// deliver queues a connection for Accept; false when the Listener is
// closed or its owner is not accepting (64 queued).
func (l *Listener) deliver(c net.Conn) bool {
	select {
	case <-l.closed:
		return false
	default:
	}
	select {
	case l.conns <- c:
		return true
	default:
		return false
	}
}

// Accept returns the next connection of this kind.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close stops this Listener (not the shared one) and closes the
// connections it had not handed out.
func (l *Listener) Close() error {
	l.once.Do(func() {
		close(l.closed)
		for {
			select {
			case c := <-l.conns:
				_ = c.Close()
			default:
				return
			}
		}
	})
	return nil
}

// Addr is the shared listener's address.
func (l *Listener) Addr() net.Addr { return l.m.ln.Addr() }

// peeked is a connection whose first bytes were read into r.
type peeked struct {
	net.Conn
	r *bufio.Reader
}

func (p *peeked) Read(b []byte) (int, error) { return p.r.Read(b) }

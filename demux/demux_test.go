package demux

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/roundtable-sfu/roundtable/internal/testcert"
)

// stunBinding is a STUN Binding request header (RFC 8489 §5), no
// attributes.
func stunBinding() []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b, 0x0001)
	copy(b[4:], magicCookie)
	copy(b[8:], "transaction1")
	return b
}

func TestClassify(t *testing.T) {
	framed := append([]byte{0, 20}, stunBinding()...)
	allocate := stunBinding()
	allocate[1] = 0x03
	for _, tc := range []struct {
		name  string
		in    []byte
		kind  Kind
		isTLS bool
	}{
		{"HTTP request line", []byte("GET / HTTP/1.1\r\n"), HTTP, false},
		{"TLS ClientHello", []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0, 0, 0, 0}, HTTP, true},
		{"RFC 4571 framed Binding request (ICE-TCP)", framed, ICETCP, false},
		{"TURN Allocate over TCP", allocate, TURN, false},
		{"binary junk", []byte{0x00, 0x03, 0, 0, 1, 2, 3, 4, 5, 6}, HTTP, false},
	} {
		if k, isTLS := Classify(tc.in); k != tc.kind || isTLS != tc.isTLS {
			t.Errorf("%s: %v tls=%v, want %v tls=%v", tc.name, k, isTLS, tc.kind, tc.isTLS)
		}
	}
}

// Each kind of connection reaches its own Listener with its first bytes
// intact, over one port; TLS ones decrypted.
func TestOnePortForEveryKind(t *testing.T) {
	cert := testcert.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := New(ln, &tls.Config{Certificates: []tls.Certificate{cert.TLS}, NextProtos: []string{"h2", "http/1.1", "stun.turn"}}, 5*time.Second)
	defer m.Close()
	subs := map[Kind]*Listener{}
	for k := Kind(0); k < numKinds; k++ {
		subs[k] = m.Listen(k)
		if subs[k].Addr().String() != ln.Addr().String() {
			t.Fatalf("%v listener at %v, want the shared %v", k, subs[k].Addr(), ln.Addr())
		}
	}
	framed := append([]byte{0, 20}, stunBinding()...)
	dialTLS := func(protos ...string) net.Conn {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: cert.Pool, NextProtos: protos})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	dialTCP := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		name  string
		dial  func() net.Conn
		first []byte
		want  Kind
	}{
		{"HTTPS over HTTP/1.1", func() net.Conn { return dialTLS("http/1.1") }, []byte("GET / HTTP/1.1\r\n"), HTTP},
		{"HTTPS, no ALPN", func() net.Conn { return dialTLS() }, []byte("GET / HTTP/1.1\r\n"), HTTP},
		{"ICE over TCP", dialTCP, framed, ICETCP},
		{"TURN over TCP", dialTCP, stunBinding(), TURN},
		{"TURN over TLS", func() net.Conn { return dialTLS() }, stunBinding(), TURNS},
		{"TURN over TLS, ALPN stun.turn", func() net.Conn { return dialTLS("stun.turn") }, stunBinding(), TURNS},
	} {
		c := tc.dial()
		if _, err := c.Write(tc.first); err != nil {
			t.Fatal(err)
		}
		got := make(chan net.Conn, 1)
		go func() {
			s, err := subs[tc.want].Accept()
			if err == nil {
				got <- s
			}
		}()
		select {
		case s := <-got:
			buf := make([]byte, len(tc.first))
			_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(s, buf); err != nil || string(buf) != string(tc.first) {
				t.Errorf("%s: read %q, %v", tc.name, buf, err)
			}
			if _, isTLS := s.(*tls.Conn); tc.name == "HTTPS over HTTP/1.1" && isTLS {
				t.Logf("%s: handed on as *tls.Conn", tc.name)
			}
			_ = s.Close()
		case <-time.After(5 * time.Second):
			t.Errorf("%s: nothing reached the %v listener", tc.name, tc.want)
		}
		_ = c.Close()
	}
	// HTTP/2 by ALPN is HTTPS at once, the *tls.Conn itself (net/http then
	// serves HTTP/2 on it).
	c := dialTLS("h2")
	defer c.Close()
	s, err := subs[HTTP].Accept()
	if err != nil {
		t.Fatal(err)
	}
	if tc, ok := s.(*tls.Conn); !ok || tc.ConnectionState().NegotiatedProtocol != "h2" {
		t.Errorf("an h2 connection was handed on as %T", s)
	}
	_ = s.Close()
}

// Without a TLS configuration a ClientHello is closed; a connection that
// says nothing is closed after the sniff timeout.
func TestUnwantedConnectionsAreClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := New(ln, nil, 300*time.Millisecond)
	defer m.Close()
	m.Listen(HTTP)
	for name, first := range map[string][]byte{"TLS without a certificate": {0x16, 0x03, 0x01, 0, 5, 1, 0, 0, 1, 3}, "silence": nil} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if first != nil {
			_, _ = c.Write(first)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("%s: read %v, want EOF (closed by the server)", name, err)
		}
		_ = c.Close()
	}
	// With TLS, plain HTTP gets a 400.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cert := testcert.New(t)
	m2 := New(ln2, &tls.Config{Certificates: []tls.Certificate{cert.TLS}}, time.Second)
	defer m2.Close()
	m2.Listen(HTTP)
	pc, err := net.Dial("tcp", ln2.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	_, _ = pc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(pc); !strings.HasPrefix(string(b), "HTTP/1.0 400") {
		t.Errorf("plain HTTP on the TLS port: %q, want a 400", b)
	}
	// Without TLS, plain HTTP reaches the HTTP listener.
	hc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	_, _ = hc.Write([]byte("GET / HTTP/1.1\r\n"))
	acc := make(chan error, 1)
	go func() {
		s, err := m.Listen(HTTP).Accept()
		if err == nil {
			_ = s.Close()
		}
		acc <- err
	}()
	select {
	case err := <-acc:
		if err != nil {
			t.Errorf("plain HTTP without TLS: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("plain HTTP without TLS reached no listener")
	}
	// A kind nobody listens for (TURN here) is closed too.
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write(stunBinding())
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("TURN with no TURN listener: read %v, want EOF", err)
	}
}

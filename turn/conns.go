package turn

// The sockets pion/turn reads and writes through the gate: UDP, and TCP or
// TLS streams. Each is read by one pion goroutine, which holds the conn's
// handling while pion handles what it read; Close may come from any
// goroutine.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

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

// lock takes handling from outside the reader, giving up after d (a reader
// stuck in pion must not stop a participant from leaving).
func (h *handling) lock(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !h.mu.TryLock() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
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
		r, pass := c.g.inspect(b[:n])
		if !pass {
			if r != nil {
				_, _ = c.PacketConn.WriteTo(r, from)
			}
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
		r, pass := c.g.inspect(frame)
		if !pass {
			if r != nil {
				_ = c.Conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
				if _, err := c.Conn.Write(r); err != nil {
					return 0, err
				}
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

// errBadFrame: a stream that is neither STUN nor ChannelData (pion would
// stop reading it too); the connection ends.
var errBadFrame = errors.New("turn: not a STUN or ChannelData frame")

// next reads one frame the way pion's STUNConn cuts them: ChannelData
// (a valid channel number) padded to four bytes, or a STUN message (the
// magic cookie) of its header's length.
func (c *gatedStream) next() ([]byte, error) {
	h, err := c.r.Peek(4)
	if err != nil {
		return nil, err
	}
	var size int
	if n := binary.BigEndian.Uint16(h); n >= 0x4000 && n <= 0x7FFF {
		size = 4 + (int(binary.BigEndian.Uint16(h[2:]))+3)&^3
	} else {
		if h, err = c.r.Peek(8); err != nil {
			return nil, err
		}
		if binary.BigEndian.Uint32(h[4:]) != magicCookie {
			return nil, errBadFrame
		}
		size = stunHeaderSize + int(binary.BigEndian.Uint16(h[2:]))
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

// Close runs on pion's reader goroutine once it stops reading the
// connection: it lets go of handling, and closes the allocations made over
// this connection (RFC 8656 §3.1: a TCP or TLS allocation ends with its
// connection; pion v2 keeps them until they expire).
func (c *gatedStream) Close() error {
	c.h.release()
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	err := c.Conn.Close()
	for _, rc := range c.g.relaysWhere(func(rc *relayConn) bool { return rc.owner == &c.h }) {
		c.g.closeRelay(rc)
	}
	return err
}

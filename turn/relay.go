package turn

// Ownership: a relayConn is one allocation's relayed transport address,
// read by pion's per-allocation goroutine and written by the goroutine that
// handles the client's Send indications and ChannelData; peers is built once
// and only read afterwards.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
)

// peers is the relay's whole world: the transport addresses it may send to
// and receive from (Roundtable's ICE UDP addresses), and, for a server
// behind 1:1 NAT (-nat-ip), the advertised address of each. Clients only
// ever see advertised addresses; the relay, on the same host, talks to the
// local ones.
type peers struct {
	ips    map[netip.Addr]bool               // IPs a permission may name (advertised)
	local  map[netip.AddrPort]netip.AddrPort // advertised -> local
	report map[netip.AddrPort]*net.UDPAddr   // local -> advertised, as pion wants it
}

func newPeers(local []netip.AddrPort, nat []netip.Addr) *peers {
	p := &peers{ips: map[netip.Addr]bool{}, local: map[netip.AddrPort]netip.AddrPort{}, report: map[netip.AddrPort]*net.UDPAddr{}}
	for _, l := range local {
		l = netip.AddrPortFrom(l.Addr().Unmap(), l.Port())
		adv := l
		for _, n := range nat {
			if n.Unmap().Is4() == l.Addr().Is4() {
				adv = netip.AddrPortFrom(n.Unmap(), l.Port())
				break
			}
		}
		p.ips[adv.Addr()] = true
		p.local[adv] = l
		if _, ok := p.report[l]; !ok {
			p.report[l] = net.UDPAddrFromAddrPort(adv)
		}
	}
	return p
}

// allowIP reports whether a permission toward ip may be installed.
func (p *peers) allowIP(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	return ok && p.ips[a.Unmap()]
}

// localFor returns the local address behind an advertised one, or false
// when the relay may not send there.
func (p *peers) localFor(a netip.AddrPort) (netip.AddrPort, bool) {
	l, ok := p.local[netip.AddrPortFrom(a.Addr().Unmap(), a.Port())]
	return l, ok
}

// relays is the RelayAddressGenerator (pion/turn's hook for creating a
// relayed transport address): each allocation gets a UDP socket on ip,
// wrapped so that it reaches only peers. It refuses (pion answers 508
// Insufficient Capacity) beyond the total cap.
type relays struct {
	ip        netip.Addr
	peers     *peers
	g         *gate
	transport string // between client and server: "udp", "tcp" or "tls"
}

func (r *relays) Validate() error {
	if !r.ip.IsValid() {
		return errors.New("turn: no relay address")
	}
	return nil
}

func (r *relays) AllocatePacketConn(network string, port int) (net.PacketConn, net.Addr, error) {
	g := r.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.relays) >= g.maxTotal {
		return nil, nil, errTotalQuota
	}
	conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(r.ip, uint16(port))))
	if err != nil {
		return nil, nil, fmt.Errorf("turn: relay socket: %w", err)
	}
	rc := &relayConn{UDPConn: conn, peers: r.peers, g: g, addr: conn.LocalAddr().(*net.UDPAddr).AddrPort(), transport: r.transport,
		pionClosed: make(chan struct{})}
	g.relays[rc.addr] = rc
	return rc, conn.LocalAddr(), nil
}

// AllocateConn is for TCP relays (RFC 6062), which pion/turn v2 does not
// implement.
func (r *relays) AllocateConn(string, int) (net.Conn, net.Addr, error) {
	return nil, nil, errors.New("turn: TCP relays are not supported")
}

// relayConn is one relayed transport address. It sends only to peers
// (whatever the client's permissions say: a permission is per IP, so
// without this a client could reach any port of Roundtable's host) and
// hands pion only what peers sent, with their advertised address.
type relayConn struct {
	*net.UDPConn
	peers      *peers
	g          *gate
	addr       netip.AddrPort
	transport  string
	closes     atomic.Int32  // Close calls: ours, then pion's (or the other way)
	pionClosed chan struct{} // closed at the second Close

	participant string    // g.mu; set when pion's success response names this relay
	owner       *handling // g.mu; the conn its client's requests come on (closeRelay)
}

// WriteTo sends to an allowed peer; anything else is dropped and counted
// (it reports success, as a lossy network would).
func (c *relayConn) WriteTo(b []byte, to net.Addr) (int, error) {
	u, ok := to.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("turn: relay to %T", to)
	}
	l, ok := c.peers.localFor(u.AddrPort())
	if !ok {
		c.g.dropped.Add(1)
		return len(b), nil
	}
	return c.UDPConn.WriteToUDPAddrPort(b, l)
}

// ReadFrom returns the next datagram from a peer, dropping any other.
func (c *relayConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, from, err := c.UDPConn.ReadFromUDPAddrPort(b)
		if err != nil {
			return n, nil, err
		}
		if adv, ok := c.peers.report[netip.AddrPortFrom(from.Addr().Unmap(), from.Port())]; ok {
			return n, adv, nil
		}
		c.g.dropped.Add(1)
	}
}

// Close closes the socket and gives its slot back. pion closes it once
// more when it deletes the allocation: the second call closes pionClosed
// and returns nil (pion would log the "use of closed network connection"
// of a socket closed on purpose as a failure, once per allocation).
func (c *relayConn) Close() error {
	switch c.closes.Add(1) {
	case 1:
		err := c.UDPConn.Close()
		c.g.removeRelay(c)
		return err
	case 2:
		close(c.pionClosed)
	}
	return nil
}

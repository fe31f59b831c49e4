package sfu

// Ownership: a check owns the sockets and mux registrations it makes and
// removes them before it returns.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pion/stun"
)

// ErrNoAnswer: a self-check's packet never arrived.
var ErrNoAnswer = errors.New("sfu: nothing arrived")

// CheckICE sends this engine a STUN Binding request through target, an
// address it advertises (a -nat-ip, say), from a socket of its own, and
// reports whether the request arrived at its ICE port: UDP, or TCP with
// RFC 4571 framing (ICE-TCP, which must be on). The request names a
// username fragment registered with the mux for the check only, so no
// PeerConnection sees it. It retries until ctx is done (ErrNoAnswer).
func (e *Engine) CheckICE(ctx context.Context, target netip.AddrPort, tcp bool) error {
	var b [6]byte
	_, _ = rand.Read(b[:])
	ufrag := "rtcheck" + hex.EncodeToString(b[:])
	arrived := make(chan struct{}, 1)
	var conns []net.PacketConn // closing one ends its wait and unregisters it
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	wait := func(c net.PacketConn) {
		buf := make([]byte, 1500)
		if _, _, err := c.ReadFrom(buf); err == nil {
			select {
			case arrived <- struct{}{}:
			default:
			}
		}
	}
	if tcp {
		if e.tcpMux == nil {
			return errors.New("sfu: ICE over TCP is off")
		}
		defer e.tcpMux.RemoveConnByUfrag(ufrag)
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				c, err := e.tcpMux.GetConnByUfrag(ufrag, n.IP.To4() == nil, n.IP)
				if err == nil {
					conns = append(conns, c)
					go wait(c)
				}
			}
		}
	} else {
		defer e.mux.RemoveConnByUfrag(ufrag)
		for _, a := range e.mux.GetListenAddresses() {
			c, err := e.mux.GetConn(ufrag, a)
			if err != nil {
				return fmt.Errorf("sfu: self-check on %v: %w", a, err)
			}
			conns = append(conns, c)
			go wait(c)
		}
	}
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.NewUsername(ufrag+":selfcheck"), stun.Fingerprint)
	if err != nil {
		return err
	}
	send, closeConn, err := dialCheck(ctx, target, tcp, req.Raw)
	if err != nil {
		return err
	}
	defer closeConn()
	if err := send(); err != nil {
		return fmt.Errorf("%w: %v", ErrNoAnswer, err)
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-arrived:
			return nil
		case <-ctx.Done():
			return ErrNoAnswer
		case <-tick.C:
			if !tcp { // UDP may lose it; one framed request per connection is enough
				_ = send()
			}
		}
	}
}

// dialCheck opens the socket a self-check sends from.
func dialCheck(ctx context.Context, target netip.AddrPort, tcp bool, msg []byte) (send func() error, closeConn func(), err error) {
	if tcp {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", target.String())
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrNoAnswer, err)
		}
		framed := binary.BigEndian.AppendUint16(nil, uint16(len(msg)))
		framed = append(framed, msg...)
		return func() error { _, err := c.Write(framed); return err }, func() { _ = c.Close() }, nil
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(target))
	if err != nil {
		return nil, nil, fmt.Errorf("sfu: self-check to %v: %w", target, err)
	}
	return func() error { _, err := c.Write(msg); return err }, func() { _ = c.Close() }, nil
}

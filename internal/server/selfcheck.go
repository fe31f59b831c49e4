package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/stun"
)

// Check is one startup self-check: an address the server advertises to
// clients, the flag that makes it, and whether a STUN Binding request the
// server sent itself through it arrived.
type Check struct {
	Flag string // the flag to look at when it fails, e.g. "-nat-ip"
	What string // "ICE UDP", "ICE TCP", "TURN UDP", "TURN TCP" or "TURN TLS"
	Addr netip.AddrPort
	Err  error // nil: it answered
}

// SelfCheck checks, all at once and each for at most timeout, the
// addresses the server advertises beyond its own interfaces: each -nat-ip
// on the ICE UDP and ICE-TCP ports, the ICE-TCP listener, and the built-in
// TURN server (UDP, TCP, and TLS on the HTTPS port) at -turn-host, else at
// each -nat-ip, else on the -listen host. (Clients are told the host they
// reached the page by, which the server cannot know in advance.) It logs
// one line per check, a warning naming the flag for each that got no
// answer.
func (s *Server) SelfCheck(ctx context.Context, timeout time.Duration) []Check {
	checks := s.selfChecks()
	var wg sync.WaitGroup
	for i := range checks {
		wg.Add(1)
		go func(c *Check) {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			switch c.What {
			case "ICE UDP":
				c.Err = s.Engine.CheckICE(cctx, c.Addr, false)
			case "ICE TCP":
				c.Err = s.Engine.CheckICE(cctx, c.Addr, true)
			case "TURN UDP":
				c.Err = stunBinding(cctx, "udp", c.Addr)
			case "TURN TCP":
				c.Err = stunBinding(cctx, "tcp", c.Addr)
			case "TURN TLS":
				c.Err = stunBinding(cctx, "tls", c.Addr)
			}
		}(&checks[i])
	}
	wg.Wait()
	for _, c := range checks {
		if c.Err != nil {
			s.log.Warn("self-check: no answer through an advertised address: clients told to use it will not reach the server",
				"flag", c.Flag, "what", c.What, "addr", c.Addr.String(), "err", c.Err)
		} else {
			s.log.Info("self-check ok", "flag", c.Flag, "what", c.What, "addr", c.Addr.String())
		}
	}
	return checks
}

// selfChecks lists what SelfCheck tries.
func (s *Server) selfChecks() []Check {
	var out []Check
	var udpPort, tcpPort int
	var local []netip.Addr
	for _, a := range s.Engine.UDPAddrs() {
		if u, ok := a.(*net.UDPAddr); ok {
			udpPort = u.Port
			local = append(local, u.AddrPort().Addr().Unmap())
		}
	}
	if a, ok := s.Engine.TCPAddr().(*net.TCPAddr); ok {
		tcpPort = a.Port
	}
	var nat []netip.Addr
	for _, ip := range s.cfg.NAT1To1IPs {
		if a, err := netip.ParseAddr(ip); err == nil {
			nat = append(nat, a.Unmap())
		}
	}
	for _, ip := range nat {
		out = append(out, Check{Flag: "-nat-ip", What: "ICE UDP", Addr: netip.AddrPortFrom(ip, uint16(udpPort))})
		if tcpPort != 0 {
			out = append(out, Check{Flag: "-nat-ip", What: "ICE TCP", Addr: netip.AddrPortFrom(ip, uint16(tcpPort))})
		}
	}
	if tcpPort != 0 && len(nat) == 0 && len(local) > 0 {
		out = append(out, Check{Flag: "-ice-tcp-port", What: "ICE TCP", Addr: netip.AddrPortFrom(local[0], uint16(tcpPort))})
	}
	if s.turn.srv != nil {
		flag, hosts := "-turn-port", nat
		if h := s.cfg.TURNHost; h != "" {
			flag, hosts = "-turn-host", nil
			if a, err := netip.ParseAddr(h); err == nil {
				hosts = []netip.Addr{a.Unmap()}
			} else if ips, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip", h); err == nil {
				hosts = ips
			}
		}
		if len(hosts) == 0 {
			host, _, _ := net.SplitHostPort(s.cfg.Listen)
			if a, err := netip.ParseAddr(host); err == nil && !a.IsUnspecified() {
				hosts = []netip.Addr{a.Unmap()}
			} else if len(local) > 0 {
				hosts = local[:1]
			}
		}
		for _, h := range hosts {
			out = append(out,
				Check{Flag: flag, What: "TURN UDP", Addr: netip.AddrPortFrom(h, uint16(s.turn.udpPort))},
				Check{Flag: flag, What: "TURN TCP", Addr: netip.AddrPortFrom(h, uint16(s.turn.tcpPort))})
			if s.turn.tlsPort != 0 {
				out = append(out, Check{Flag: flag, What: "TURN TLS", Addr: netip.AddrPortFrom(h, uint16(s.turn.tlsPort))})
			}
		}
	}
	return out
}

// stunBinding sends a STUN Binding request (RFC 8489) to addr over udp,
// tcp or tls and waits for any answer with its transaction id. Over TLS
// the certificate is not verified: this checks reachability, and the
// server's own name may not resolve from itself.
func stunBinding(ctx context.Context, network string, addr netip.AddrPort) error {
	var c net.Conn
	var err error
	if network == "tls" {
		d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"stun.turn"}}} //nolint:gosec // reachability only
		c, err = d.DialContext(ctx, "tcp", addr.String())
		network = "tcp"
	} else {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr.String())
	}
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for {
		if _, err := c.Write(req.Raw); err != nil {
			return err
		}
		retry := time.Now().Add(300 * time.Millisecond) // UDP: send again
		if network == "tcp" {
			retry = time.Now().Add(time.Hour)
		}
		_ = c.SetReadDeadline(earliest(ctx, retry))
		n, err := c.Read(buf)
		if err == nil {
			res := &stun.Message{Raw: buf[:n]}
			if res.Decode() == nil && res.TransactionID == req.TransactionID {
				return nil
			}
			continue
		}
		if ctx.Err() != nil || network == "tcp" {
			return fmt.Errorf("no STUN answer over %s: %w", network, err)
		}
	}
}

func earliest(ctx context.Context, t time.Time) time.Time {
	if dl, ok := ctx.Deadline(); ok && dl.Before(t) {
		return dl
	}
	return t
}

// Package netns gives tests a network of their own: a Linux network
// namespace joined to the root namespace by a veth pair, addressed from
// 198.18.0.0/15 (RFC 2544's benchmarking range, nothing else is ever
// addressed), with nftables rules inside it to impair the path (drop UDP,
// allow only TCP to one port, drop DTLS). Code runs inside it as a child
// process (Command): the test binary itself, re-executed for one helper
// test, or a browser.
//
// It needs root, iproute2 and nftables; scripts/test.sh installs them. New
// skips the test when they are missing, or fails it when RT_REQUIRE_TOOLS
// is set (as the test command sets it). Everything New makes is removed in
// the test's cleanup, also when the test fails.
package netns

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// NS is one namespace and its link to the root namespace.
type NS struct {
	Name   string // the namespace, for `ip netns exec`
	HostIf string // the root namespace's end of the veth pair
	HostIP string // its address, where servers under test listen
	NSIP   string // the address inside the namespace
	nsIf   string // the namespace's end of the veth pair
}

var seq atomic.Int32

// Available reports why namespaces cannot be made here, or "".
func Available() string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " not installed (scripts/test.sh installs iproute2 and nftables)"
		}
	}
	return ""
}

// New makes a namespace with a /30 from 198.18.0.0/15 and applies rules,
// an nftables ruleset (nft -f syntax) for inside it; "" leaves the path
// open.
func New(t testing.TB, rules string) *NS {
	t.Helper()
	if why := Available(); why != "" {
		if os.Getenv("RT_REQUIRE_TOOLS") != "" {
			t.Fatalf("network namespaces: %s", why)
		}
		t.Skipf("network namespaces: %s", why)
	}
	// A /30 per namespace, chosen by process and sequence so that test
	// processes running side by side do not collide: 2^15 subnets.
	n, hostIP, nsIP := subnet()
	ns := &NS{
		Name:   fmt.Sprintf("rt-%d-%d", os.Getpid(), seq.Load()),
		HostIf: fmt.Sprintf("rth%d", n),
		HostIP: hostIP,
		NSIP:   nsIP,
		nsIf:   fmt.Sprintf("rtn%d", n),
	}
	nsIf := ns.nsIf
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "del", ns.Name).Run()
		_ = exec.Command("ip", "link", "del", ns.HostIf).Run() // gone with the namespace, unless that failed
	})
	run(t, "ip", "netns", "add", ns.Name)
	run(t, "ip", "link", "add", ns.HostIf, "type", "veth", "peer", "name", nsIf)
	run(t, "ip", "link", "set", nsIf, "netns", ns.Name)
	// No IPv6 on the pair: its link-local addresses would appear a second
	// or two after the links come up, and a browser already running (the
	// namespace tests start Chromium right after New) takes that for a
	// network change that aborts its page loads and connections.
	// (A kernel without IPv6 has no such file, and nothing to turn off.)
	noIPv6 := "f=/proc/sys/net/ipv6/conf/$0/disable_ipv6; [ ! -e $f ] || echo 1 > $f"
	run(t, "sh", "-c", noIPv6, ns.HostIf)
	run(t, "ip", "netns", "exec", ns.Name, "sh", "-c", noIPv6, nsIf)
	run(t, "ip", "addr", "add", ns.HostIP+"/30", "dev", ns.HostIf)
	run(t, "ip", "link", "set", ns.HostIf, "up")
	run(t, "ip", "-n", ns.Name, "addr", "add", ns.NSIP+"/30", "dev", nsIf)
	run(t, "ip", "-n", ns.Name, "link", "set", nsIf, "up")
	run(t, "ip", "-n", ns.Name, "link", "set", "lo", "up")
	waitUp(t, ns.HostIf)
	if rules != "" {
		ns.Nft(t, rules)
	}
	return ns
}

// subnet picks the next /30 and returns its number and its two addresses.
func subnet() (n int, host, inside string) {
	n = (os.Getpid()*64 + int(seq.Add(1))) % (1 << 15)
	third, fourth := 18+n>>14, (n>>6)&0xff
	return n, fmt.Sprintf("198.%d.%d.%d", third, fourth, (n&63)*4+1), fmt.Sprintf("198.%d.%d.%d", third, fourth, (n&63)*4+2)
}

// Readdress moves the namespace to a new address, as a phone that leaves
// Wi-Fi for cellular gets: the old one is removed (connections bound to
// it are dead from then on, with no reset), the new one (from a /30 of its
// own, unused otherwise) takes its place, and the root namespace routes
// to it through the same veth pair. NSIP is the new address afterwards.
func (ns *NS) Readdress(t testing.TB) string {
	t.Helper()
	_, _, addr := subnet()
	run(t, "ip", "-n", ns.Name, "addr", "add", addr+"/32", "dev", ns.nsIf)
	run(t, "ip", "route", "add", addr+"/32", "dev", ns.HostIf)
	run(t, "ip", "-n", ns.Name, "addr", "del", ns.NSIP+"/30", "dev", ns.nsIf)
	run(t, "ip", "-n", ns.Name, "route", "add", ns.HostIP+"/32", "dev", ns.nsIf, "src", addr)
	ns.NSIP = addr
	return addr
}

// waitUp waits (at most 5 s) until the host end of the pair has its
// carrier: New returns with the links settled.
func waitUp(t testing.TB, ifname string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile("/sys/class/net/" + ifname + "/operstate")
		if err == nil && strings.TrimSpace(string(b)) == "up" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not up after 5 s (operstate %q, %v)", ifname, strings.TrimSpace(string(b)), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Nft applies an nftables ruleset inside the namespace (`nft -f -`).
func (ns *NS) Nft(t testing.TB, rules string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns.Name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v\n%s\nrules:\n%s", ns.Name, err, out, rules)
	}
}

// Command runs name inside the namespace.
func (ns *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// Rulesets for New and Nft. Each creates the table "roundtable_test" in the inet
// family, so apply one per namespace: at New, or later with Nft on an open
// one (DropUDP in the middle of a call).
const (
	// DropUDP drops every UDP datagram in and out: ICE over UDP and TURN
	// over UDP fail, TCP works.
	DropUDP = `table inet roundtable_test {
	chain in { type filter hook input priority 0; meta l4proto udp drop; }
	chain out { type filter hook output priority 0; meta l4proto udp drop; }
}`
	// DropDTLS drops UDP datagrams that look like DTLS (first byte 20-63,
	// RFC 7983 §7): STUN passes, so ICE connects, and the handshake never
	// completes.
	DropDTLS = `table inet roundtable_test {
	chain in { type filter hook input priority 0; meta l4proto udp @th,64,8 20-63 drop; }
	chain out { type filter hook output priority 0; meta l4proto udp @th,64,8 20-63 drop; }
}`
)

// OnlyTCPTo returns a ruleset that lets out only TCP to port (and what
// answers it): every UDP datagram and any other TCP connection is dropped.
func OnlyTCPTo(port int) string {
	return fmt.Sprintf(`table inet roundtable_test {
	chain out {
		type filter hook output priority 0; policy drop;
		oif "lo" accept
		ct state established,related accept
		tcp dport %d accept
	}
	chain in {
		type filter hook input priority 0; policy drop;
		iif "lo" accept
		ct state established,related accept
	}
}`, port)
}

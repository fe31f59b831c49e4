package e2e

// Tests in network namespaces (issue 11): a participant runs inside a
// namespace whose nftables rules break the path in one way, the server in
// the root namespace, listening on the namespace's veth peer only
// (198.18.0.0/15). The participant is this test binary re-executed inside
// the namespace for TestNetnsHelper.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/internal/netns"
	"github.com/roundtable-sfu/roundtable/internal/server"
	"github.com/roundtable-sfu/roundtable/internal/testcert"
)

// helperSpec tells TestNetnsHelper whom to be.
type helperSpec struct {
	URL, Room, Name string
	UseICEServers   bool
	Relay           string
	CAFile          string // trusted for wss: and turns: (SSL_CERT_FILE)
	// KeyframeInterval of the participant's video (default the client's).
	KeyframeInterval time.Duration
}

// helperReport is what TestNetnsHelper prints when its session ends.
type helperReport struct {
	Connected bool
	Path      string
	Errors    []client.ErrorMsg
	Bye       string
}

// TestNetnsHelper is not a test of its own: the namespace tests run it
// inside a namespace (RT_NETNS_HELPER holds a helperSpec) as one
// participant publishing audio and video. It prints "CONNECTED <path>"
// when its PeerConnection connects and "REPORT <helperReport>" when its
// session ends or its stdin closes.
func TestNetnsHelper(t *testing.T) {
	raw := os.Getenv("RT_NETNS_HELPER")
	if raw == "" {
		t.Skip("run inside a namespace by the namespace tests")
	}
	var spec helperSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := client.Join(ctx, client.Config{URL: spec.URL, Room: spec.Room, Name: spec.Name, Audio: 1, Video: 1,
		AllInterfaces: true, UseICEServers: spec.UseICEServers, Relay: spec.Relay, KeyframeInterval: spec.KeyframeInterval})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	// stdin: "MOVE" lines (the namespace's address changed: resume and
	// restart ICE, then print "MOVED <local address> <ICE connected at,
	// Unix ns>"); anything else, or its end, ends the session.
	stdin := make(chan struct{})
	go func() {
		r := bufio.NewReader(os.Stdin)
		for {
			l, err := r.ReadString('\n')
			if err != nil || strings.TrimSpace(l) != "MOVE" {
				close(stdin)
				return
			}
			moveHelper(ctx, c, spec.Room)
		}
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	announced := false
	for done := false; !done; {
		select {
		case <-c.Closed():
			done = true
		case <-stdin:
			done = true
		case <-ctx.Done():
			done = true
		case <-tick.C:
			if !announced && c.Connected() && c.SelectedPath() != "" {
				fmt.Printf("CONNECTED %s\n", c.SelectedPath())
				announced = true
			}
		}
	}
	b, _ := json.Marshal(helperReport{Connected: c.Connected(), Path: c.SelectedPath(), Errors: c.Errors(), Bye: c.Bye()})
	fmt.Printf("REPORT %s\n", b)
}

// moveHelper is what a client does when its operating system tells it the
// network changed (a browser closes its sockets on that, ERR_NETWORK_CHANGED):
// it drops its socket, resumes on a new one, and restarts ICE.
func moveHelper(ctx context.Context, c *client.Client, room string) {
	c.DropSocket()
	if err := c.Resume(ctx, "", room); err != nil {
		fmt.Printf("MOVE-FAILED %v\n", err)
		return
	}
	restart := time.Now()
	if err := c.RestartICE(); err != nil {
		fmt.Printf("MOVE-FAILED %v\n", err)
		return
	}
	if err := client.Wait(ctx, func() bool { return c.ICEConnectedAt().After(restart) }); err != nil {
		fmt.Printf("MOVE-FAILED %v\n", err)
		return
	}
	fmt.Printf("MOVED %s %d\n", c.SelectedLocal(), c.ICEConnectedAt().UnixNano())
}

// participantIn runs TestNetnsHelper inside ns as a participant of s.
type nsParticipant struct {
	t     *testing.T
	lines chan string
	stdin io.WriteCloser
	done  chan struct{}

	mu  sync.Mutex
	all []string
}

func participantIn(t *testing.T, ns *netns.NS, s *testServer, spec helperSpec) *nsParticipant {
	t.Helper()
	spec.URL = s.WSURL()
	b, _ := json.Marshal(spec)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := ns.Command(ctx, os.Args[0], "-test.run=^TestNetnsHelper$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "RT_NETNS_HELPER="+string(b))
	if spec.CAFile != "" {
		cmd.Env = append(cmd.Env, "SSL_CERT_FILE="+spec.CAFile)
	}
	cmd.Stderr = cmd.Stdout
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nsParticipant{t: t, lines: make(chan string, 1000), stdin: in, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.all = append(p.all, sc.Text())
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = in.Close()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
		}
		cancel()
		<-p.done
		if t.Failed() {
			p.mu.Lock()
			t.Logf("participant in %s:\n%s", ns.Name, strings.Join(p.all, "\n"))
			p.mu.Unlock()
		}
	})
	return p
}

// wait returns the rest of the first line that starts with prefix.
func (p *nsParticipant) wait(ctx context.Context, prefix string) string {
	p.t.Helper()
	for {
		select {
		case l := <-p.lines:
			if rest, ok := strings.CutPrefix(l, prefix+" "); ok {
				return rest
			}
		case <-ctx.Done():
			p.t.Fatalf("participant: no %q line", prefix)
		}
	}
}

func (p *nsParticipant) report(ctx context.Context) helperReport {
	p.t.Helper()
	var r helperReport
	if err := json.Unmarshal([]byte(p.wait(ctx, "REPORT")), &r); err != nil {
		p.t.Fatal(err)
	}
	return r
}

// inNamespace makes the server listen on ns's veth peer only: HTTP,
// TURN, and ICE candidates on that interface.
func inNamespace(ns *netns.NS, more ...serverOpt) serverOpt {
	return func(c *server.Config, f *[]interceptor.Factory) {
		c.Listen = net.JoinHostPort(ns.HostIP, "0")
		c.ICEInterfaces = []string{ns.HostIf}
		c.ICELoopback = false
		c.AllowOpen = true
		for _, o := range more {
			o(c, f)
		}
	}
}

func connectTimeout(d time.Duration) serverOpt {
	return func(c *server.Config, _ *[]interceptor.Factory) { c.ConnectTimeout = d }
}

// Each way a network can break a join gets its diagnosis: the client
// hears error ice_failed with the reason, and the metric's label moves.
func TestDiagnosisInNamespaces(t *testing.T) {
	noTURN := func(c *server.Config, _ *[]interceptor.Factory) { c.TURN = false }
	fastICE := func(c *server.Config, _ *[]interceptor.Factory) {
		c.ICEDisconnectedTimeout, c.ICEFailedTimeout = time.Second, 2*time.Second
	}
	for _, tc := range []struct {
		reason, rules string
		opts          []serverOpt
		spec          helperSpec
		cutUDPLater   bool
		bye           string
	}{
		{reason: "no_response", rules: netns.DropUDP, opts: []serverOpt{noTURN}, bye: "connect_timeout"},
		{reason: "turn_unreachable", rules: "tcp-to-http", spec: helperSpec{UseICEServers: true}, bye: "connect_timeout"},
		{reason: "dtls_failed", rules: netns.DropDTLS, bye: "connect_timeout"},
		{reason: "consent_lost", opts: []serverOpt{fastICE}, cutUDPLater: true, bye: "ice_failed"},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			checkGoroutines(t)
			ns := netns.New(t, "")
			s := startServer(t, inNamespace(ns, append(tc.opts, connectTimeout(4*time.Second))...))
			switch tc.rules {
			case "":
			case "tcp-to-http":
				ns.Nft(t, netns.OnlyTCPTo(s.Addr().(*net.TCPAddr).Port))
			default:
				ns.Nft(t, tc.rules)
			}
			ctx := testContext(t, 40*time.Second)
			spec := tc.spec
			spec.Room, spec.Name = "diagnosis", tc.reason
			p := participantIn(t, ns, s, spec)
			if tc.cutUDPLater {
				t.Logf("connected over %s", p.wait(ctx, "CONNECTED"))
				ns.Nft(t, netns.DropUDP)
			}
			r := p.report(ctx)
			var got []string
			for _, e := range r.Errors {
				if e.Code == "ice_failed" {
					got = append(got, e.Reason)
				}
			}
			if len(got) != 1 || got[0] != tc.reason || r.Bye != tc.bye {
				t.Fatalf("ice_failed reasons %v, bye %q; want [%s], bye %q (report %+v)", got, r.Bye, tc.reason, tc.bye, r)
			}
			text := scrape(t, s)
			if v := metricValue(t, text, `roundtable_ice_failures_total{reason="`+tc.reason+`"}`); v != 1 {
				t.Errorf("roundtable_ice_failures_total{reason=%q} = %v, want 1", tc.reason, v)
			}
		})
	}
}

// Everything on port 443 (issue 11, item 3): from a namespace that lets
// out only TCP to port 443, a participant that may use relayed candidates
// only reaches the room through TURN over TLS on the HTTPS port, and the
// server counts the path as relay_tls.
func TestRelayOverTLSOnPort443(t *testing.T) {
	checkGoroutines(t)
	ns := netns.New(t, netns.OnlyTCPTo(443))
	cert := testcert.New(t, ns.HostIP)
	s := startServer(t, inNamespace(ns, func(c *server.Config, _ *[]interceptor.Factory) {
		c.Listen = net.JoinHostPort(ns.HostIP, "443")
		c.TLSCert, c.TLSKey = cert.CertFile, cert.KeyFile
		c.ICETCPPort = 7881 // with TLS it moves onto 443
	}))
	if !strings.HasPrefix(s.WSURL(), "wss://"+ns.HostIP+":443/") {
		t.Fatalf("signaling at %s", s.WSURL())
	}
	ctx := testContext(t, 40*time.Second)
	// The publisher, outside: the veth address, trusting the test CA.
	pub, err := client.Join(ctx, client.Config{URL: s.WSURL(), Room: "443", Name: "outside", Audio: 1, Video: 1,
		Interfaces: []string{ns.HostIf}, TLS: &tls.Config{RootCAs: cert.Pool}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Abort)
	// The ICE servers name TURN over TLS on 443, and the server offers
	// ICE-TCP on 443 too.
	var turns bool
	for _, ice := range pub.ICEServers() {
		for _, u := range ice.URLs {
			turns = turns || u == "turns:"+ns.HostIP+":443?transport=tcp"
		}
	}
	if !turns {
		t.Errorf("iceServers %+v: no turns: URL on port 443", pub.ICEServers())
	}
	waitFor(t, ctx, "a passive TCP candidate on 443", func() bool {
		for _, c := range pub.RemoteCandidates() {
			if strings.Contains(c, " tcp ") && strings.Contains(c, " 443 typ host") {
				return true
			}
		}
		return false
	})
	p := participantIn(t, ns, &testServer{Server: s.Server, t: t}, helperSpec{Room: "443", Name: "inside", Relay: "tls", CAFile: cert.CertFile})
	t.Logf("connected over %s", p.wait(ctx, "CONNECTED"))
	waitFor(t, ctx, "the relay_tls path counted", func() bool {
		return metricValue(t, scrapeTLS(t, s, cert), `roundtable_ice_connected_total{path="relay_tls"}`) == 1
	})
	// Media both ways through it: the outside publisher receives the
	// inside one's video.
	waitFor(t, ctx, "video from inside", func() bool {
		for _, r := range pub.Remote() {
			if r.Kind == webrtc.RTPCodecTypeVideo && r.Stats().Packets > 50 {
				return true
			}
		}
		return false
	})
}

// scrapeTLS reads /metrics over HTTPS.
func scrapeTLS(t *testing.T, s *testServer, cert testcert.Cert) string {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.Pool}}}
	resp, err := hc.Get(s.URL() + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// At start the server sends itself a STUN binding through each address it
// advertises, and names the flag of each that does not answer: here a
// -nat-ip that is a namespace's address (nothing forwards it back), beside
// one that works.
func TestSelfCheckNamesTheFlag(t *testing.T) {
	checkGoroutines(t)
	ns := netns.New(t, "")
	for _, tc := range []struct {
		nat    string
		failed []string // "flag what", sorted
	}{
		{"127.0.0.1", nil},
		{ns.NSIP, []string{"-nat-ip ICE TCP", "-nat-ip ICE UDP", "-turn-port TURN TCP", "-turn-port TURN UDP"}},
	} {
		s := startServer(t, withICETCP(t), func(c *server.Config, _ *[]interceptor.Factory) { c.NAT1To1IPs = []string{tc.nat} })
		checks := s.SelfCheck(context.Background(), time.Second)
		var failed []string
		for _, c := range checks {
			if c.Err != nil {
				failed = append(failed, c.Flag+" "+c.What)
			}
		}
		slices.Sort(failed)
		if len(checks) != 4 || !slices.Equal(failed, tc.failed) {
			t.Errorf("-nat-ip %s: %d checks, failed %v; want 4, failed %v (%+v)", tc.nat, len(checks), failed, tc.failed, checks)
		}
	}
}

package browser

// Chromium in a network namespace (issue 11): the browser runs inside a
// namespace whose nftables rules drop every UDP datagram, the server and a
// publisher in the root namespace. The browser is driven from inside: this
// test binary, re-executed there for TestNetnsBrowserHelper, starts
// Chromium, waits for a condition and prints what it read.

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/roundtable-sfu/roundtable/internal/netns"
	"github.com/roundtable-sfu/roundtable/internal/server"
	"github.com/roundtable-sfu/roundtable/internal/testcert"
)

// browserJob tells TestNetnsBrowserHelper what to do: open URL, wait up
// to Timeout for the JavaScript condition Until, then evaluate Read (name
// -> expression returning a string).
type browserJob struct {
	URL        string
	Origin     string // treated as secure, so that the page may use the camera
	IgnoreCert bool   // accept the server's test certificate
	Until      string
	Timeout    time.Duration
	Read       map[string]string
}

// TestNetnsBrowserHelper is not a test of its own: the namespace tests run
// it inside a namespace with RT_NETNS_BROWSER set to a browserJob. It
// prints "RESULT <json>": {"ok": the condition held, name: value...}.
func TestNetnsBrowserHelper(t *testing.T) {
	raw := os.Getenv("RT_NETNS_BROWSER")
	if raw == "" {
		t.Skip("run inside a namespace by the namespace tests")
	}
	var job browserJob
	if err := json.Unmarshal([]byte(raw), &job); err != nil {
		t.Fatal(err)
	}
	b := startBrowser(t, true, chromedp.Flag("unsafely-treat-insecure-origin-as-secure", job.Origin),
		chromedp.Flag("ignore-certificate-errors", job.IgnoreCert))
	tab := b.open(job.URL)
	out := map[string]string{"ok": "false"}
	if pollJS(tab, job.Until, job.Timeout) {
		out["ok"] = "true"
	}
	for name, js := range job.Read {
		v, err := evaluate[string](tab, js)
		if err != nil {
			v = "error: " + err.Error()
		}
		out[name] = v
	}
	enc, _ := json.Marshal(out)
	os.Stdout.WriteString("RESULT " + string(enc) + "\n")
	if out["ok"] != "true" {
		b.mu.Lock()
		for _, l := range b.console {
			os.Stdout.WriteString(l + "\n")
		}
		b.mu.Unlock()
	}
}

// runBrowserIn runs job in Chromium inside ns and returns what it read.
func runBrowserIn(t *testing.T, ns *netns.NS, job browserJob) map[string]string {
	t.Helper()
	if job.Origin == "" {
		u, _ := url.Parse(job.URL)
		job.Origin = u.Scheme + "://" + u.Host
	}
	b, _ := json.Marshal(job)
	ctx, cancel := context.WithTimeout(context.Background(), job.Timeout+60*time.Second)
	defer cancel()
	cmd := ns.Command(ctx, os.Args[0], "-test.run=^TestNetnsBrowserHelper$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "RT_NETNS_BROWSER="+string(b))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var lines []string
	result := map[string]string{}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		mu.Lock()
		lines = append(lines, sc.Text())
		mu.Unlock()
		if rest, ok := strings.CutPrefix(sc.Text(), "RESULT "); ok {
			if err := json.Unmarshal([]byte(rest), &result); err != nil {
				t.Errorf("helper result: %v", err)
			}
		}
	}
	werr := cmd.Wait()
	if werr != nil || result["ok"] != "true" {
		t.Logf("browser in %s (%v):\n%s", ns.Name, werr, strings.Join(lines, "\n"))
	}
	return result
}

// inboundJS summarizes the inbound RTP streams, for failure reports.
const inboundJS = `(async () => {
  const pc = window.roundtable && window.roundtable.session.pc;
  if (!pc) return 'no pc';
  const out = [];
  (await pc.getStats()).forEach(s => {
    if (s.type === 'inbound-rtp') out.push(s.kind + ' pkts=' + s.packetsReceived + ' frames=' + (s.framesDecoded || 0) + ' lost=' + s.packetsLost);
  });
  return out.join('; ');
})()`

// secureOrigin lets Chromium treat the server's plain-HTTP origin as
// secure: getUserMedia needs a secure context, which only loopback is
// without TLS.
func secureOrigin(srv *server.Server) chromedp.ExecAllocatorOption {
	return chromedp.Flag("unsafely-treat-insecure-origin-as-secure", strings.TrimSuffix(srv.URL(), "/"))
}

// serveInto starts a server reachable from ns only through its veth peer.
func serveInto(t *testing.T, ns *netns.NS, opts ...func(*server.Config)) *server.Server {
	return startServer(t, append([]func(*server.Config){func(c *server.Config) {
		c.Listen = net.JoinHostPort(ns.HostIP, "0")
		c.ICEInterfaces = []string{ns.HostIf}
		c.ICELoopback = false
		c.AllowOpen = true
	}}, opts...)...)
}

// A network that drops all UDP: Chromium joins over ICE-TCP and plays the
// video of a publisher outside, and the connection check says UDP is
// blocked while TCP and the relay (TURN over TCP) work.
func TestChromiumWithoutUDP(t *testing.T) {
	chromiumPath(t)
	ns := netns.New(t, netns.DropUDP)
	// No TURN: the only way in is ICE-TCP, which the pair must show.
	srv := serveInto(t, ns, func(c *server.Config) { c.TURN = false })
	// The publisher: Chromium in the root namespace, with the fake camera
	// (its video is what the browser inside must decode and play).
	outside := startBrowser(t, true, secureOrigin(srv))
	defer outside.screenshots()
	pub := outside.open(strings.TrimSuffix(srv.URL(), "/") + "/r/no-udp?name=Outside")
	waitJS(t, pub, "the publisher connected", `window.roundtable && window.roundtable.session.state === 'connected'`, 20*time.Second)

	got := runBrowserIn(t, ns, browserJob{
		URL: strings.TrimSuffix(srv.URL(), "/") + "/r/no-udp?name=Inside", Until: remoteVideosPlaying + "(1)", Timeout: 40 * time.Second,
		Read: map[string]string{"protocol": selectedProtocolJS, "state": stateJS, "inbound": inboundJS},
	})
	if got["ok"] != "true" || got["protocol"] != "tcp" {
		t.Errorf("in a namespace without UDP: video playing %s, selected pair over %q; want true, tcp (state %s; inbound %s)",
			got["ok"], got["protocol"], got["state"], got["inbound"])
	}

	// The connection check, against a server with its TURN server on.
	srv = serveInto(t, ns)
	cell := func(transport string) string {
		return `(document.querySelector('td[data-transport="` + transport + `"]') || {}).textContent || ''`
	}
	got = runBrowserIn(t, ns, browserJob{
		URL: strings.TrimSuffix(srv.URL(), "/") + "/doctor?room=no-udp", Until: `document.body.dataset.done === 'true'`, Timeout: 40 * time.Second,
		Read: map[string]string{"udp": cell("udp"), "tcp": cell("tcp"), "relay": cell("relay"),
			"summary": `document.getElementById('doctor-summary').textContent`, "report": `document.getElementById('doctor-report').value`},
	})
	if got["ok"] != "true" || !strings.HasPrefix(got["udp"], "blocked (no_response") || !strings.HasPrefix(got["tcp"], "works (tcp") ||
		!strings.HasPrefix(got["relay"], "works (relay_tcp") || !strings.Contains(got["summary"], "blocks UDP") ||
		!strings.Contains(got["report"], `"transport": "tcp"`) {
		t.Errorf("connection check without UDP: %v", got)
	}
	t.Logf("connection check: udp %q, tcp %q, relay %q: %s", got["udp"], got["tcp"], got["relay"], got["summary"])
}

// When nothing gets through (no UDP, and the server offers neither ICE-TCP
// nor TURN), the page says so in words, with a link to the check.
func TestChromiumExplainsAFailedJoin(t *testing.T) {
	chromiumPath(t)
	ns := netns.New(t, netns.DropUDP)
	srv := serveInto(t, ns, func(c *server.Config) {
		c.ICETCPPort, c.TURN, c.ConnectTimeout = 0, false, 5*time.Second
	})
	got := runBrowserIn(t, ns, browserJob{
		URL: strings.TrimSuffix(srv.URL(), "/") + "/r/blocked?name=Inside", Until: `!document.getElementById('fatal').hidden`, Timeout: 30 * time.Second,
		Read: map[string]string{
			"title":   `document.getElementById('fatal-title').textContent`,
			"message": `document.getElementById('fatal-message').textContent`,
			"doctor":  `document.getElementById('fatal-doctor').hidden ? '' : document.getElementById('fatal-doctor').getAttribute('href')`,
		},
	})
	if got["ok"] != "true" || got["title"] != "Your network blocks this call" ||
		!strings.Contains(got["message"], "Your network blocks the connection") || !strings.HasPrefix(got["doctor"], "/doctor?room=blocked") {
		t.Errorf("failed join: %v", got)
	}
}

// Everything on port 443 (issue 11, item 3): from a namespace that lets
// out only TCP to port 443, Chromium joins a server in one-port mode (TLS
// on 443: HTTPS, WSS, ICE-TCP and TURN over TLS) and plays the video of a
// publisher outside.
func TestChromiumThroughPort443Only(t *testing.T) {
	chromiumPath(t)
	ns := netns.New(t, netns.OnlyTCPTo(443))
	cert := testcert.New(t, ns.HostIP)
	srv := serveInto(t, ns, func(c *server.Config) {
		c.Listen = net.JoinHostPort(ns.HostIP, "443")
		c.TLSCert, c.TLSKey = cert.CertFile, cert.KeyFile
	})
	if srv.URL() != "https://"+ns.HostIP+":443/" {
		t.Fatalf("server at %s", srv.URL())
	}
	outside := startBrowser(t, true, chromedp.Flag("ignore-certificate-errors", true))
	defer outside.screenshots()
	pub := outside.open(srv.URL() + "r/only-443?name=Outside")
	waitJS(t, pub, "the publisher connected", `window.roundtable && window.roundtable.session.state === 'connected'`, 20*time.Second)
	got := runBrowserIn(t, ns, browserJob{
		URL: srv.URL() + "r/only-443?name=Inside", IgnoreCert: true, Until: remoteVideosPlaying + "(1)", Timeout: 40 * time.Second,
		Read: map[string]string{"protocol": selectedProtocolJS, "state": stateJS, "inbound": inboundJS},
	})
	if got["ok"] != "true" {
		t.Errorf("only TCP to 443: no video playing (state %s; inbound %s)", got["state"], got["inbound"])
	}
	t.Logf("only TCP to 443: the selected pair's local candidate is over %q", got["protocol"])
}

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/roundtable-sfu/roundtable/internal/server"
	"github.com/roundtable-sfu/roundtable/internal/testcert"
)

// TLS by itself: against Debian's pebble (Let's Encrypt's test CA), with
// pebble-challtestsrv answering its DNS queries with 127.0.0.1, a server
// started with -acme-domain obtains a certificate through the tls-alpn-01
// challenge on its own port and serves HTTPS with it; the certificate and
// account key land in the cache directory, and a restarted server serves
// the cached certificate with the CA gone.
func TestACMECertificateFromPebble(t *testing.T) {
	pebble, challsrv := acmeTool(t, "pebble"), acmeTool(t, "pebble-challtestsrv")
	checkGoroutines(t)
	const domain = "sfu.roundtable.test"
	dir := t.TempDir()
	dns, mgmt, pebblePort, pebbleMgmt, srvPort, httpPort := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)

	// The mock DNS: every A query gets 127.0.0.1, AAAA none.
	startProcess(t, "challtestsrv", challsrv, nil, "-dns01", "127.0.0.1:"+dns, "-http01", "", "-https01", "",
		"-tlsalpn01", "", "-management", "127.0.0.1:"+mgmt, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")

	// pebble serves its ACME API over HTTPS with a certificate of ours, and
	// checks tls-alpn-01 on the Roundtable server's port.
	api := testcert.New(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": "127.0.0.1:" + pebblePort, "managementListenAddress": "127.0.0.1:" + pebbleMgmt,
		"certificate": api.CertFile, "privateKey": api.KeyFile, "httpPort": atoi(t, httpPort), "tlsPort": atoi(t, srvPort),
		"ocspResponderURL": "", "externalAccountBindingRequired": false,
	}}
	b, _ := json.Marshal(cfg)
	pebbleCfg := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(pebbleCfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	stopPebble := startProcess(t, "pebble", pebble, []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"},
		"-config", pebbleCfg, "-dnsserver", "127.0.0.1:"+dns)
	apiClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: api.Pool}}}
	waitHTTP(t, apiClient, "https://127.0.0.1:"+pebblePort+"/dir")

	cache := filepath.Join(dir, "acme")
	withACME := func(c *server.Config, _ *[]interceptor.Factory) {
		c.Listen = "127.0.0.1:" + srvPort
		c.ACMEDomains = []string{domain}
		c.ACMEDirectoryURL = "https://127.0.0.1:" + pebblePort + "/dir"
		c.ACMECARoots = api.CertFile
		c.ACMECacheDir = cache
		c.ACMEEmail = "ops@roundtable.test"
		c.ACMEHTTPListen = "127.0.0.1:" + httpPort
	}
	srv := startServer(t, withACME)
	if got := srv.URL(); got != "https://"+domain+":"+srvPort+"/" {
		t.Errorf("URL %s, want the domain's", got)
	}

	// A browser's view: the name resolves to the server, and only pebble's
	// root is trusted (fetched from its management API: a new one each run).
	roots := x509.NewCertPool()
	root, err := getBody(apiClient, "https://127.0.0.1:"+pebbleMgmt+"/roots/0")
	if err != nil || !roots.AppendCertsFromPEM(root) {
		t.Fatalf("pebble's root: %v %q", err, root)
	}
	browser := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, "127.0.0.1:"+srvPort)
		},
	}}
	url := "https://" + domain + ":" + srvPort + "/healthz"
	deadline := time.Now().Add(60 * time.Second)
	var resp *http.Response
	for {
		if resp, err = browser.Get(url); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("HTTPS with the ACME certificate: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	leaf := resp.TLS.PeerCertificates[0]
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		t.Errorf("GET /healthz: %s %q", resp.Status, body)
	}
	if err := leaf.VerifyHostname(domain); err != nil || !strings.Contains(leaf.Issuer.CommonName, "Pebble") {
		t.Errorf("certificate for %v from %q: %v", leaf.DNSNames, leaf.Issuer.CommonName, err)
	}
	t.Logf("certificate for %v from %q, valid until %v", leaf.DNSNames, leaf.Issuer.CommonName, leaf.NotAfter)
	for _, f := range []string{domain, "acme_account+key"} {
		if _, err := os.Stat(filepath.Join(cache, f)); err != nil {
			t.Errorf("cache: %v", err)
		}
	}

	// The plain HTTP listener (http-01) sends everything else to HTTPS.
	plain := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+httpPort+"/r/standup?name=Ann", nil)
	req.Host = domain
	if resp, err := plain.Do(req); err != nil {
		t.Errorf("http listener: %v", err)
	} else {
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != "https://"+domain+":"+srvPort+"/r/standup?name=Ann" {
			t.Errorf("http listener: %s to %q, want a redirect to HTTPS", resp.Status, loc)
		}
	}

	// Restarted with the CA gone, the server serves the cached certificate.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	stopPebble()
	srv2 := startServer(t, withACME)
	_ = srv2
	browser.CloseIdleConnections()
	resp, err = browser.Get(url)
	if err != nil {
		t.Fatalf("after a restart without the CA: %v", err)
	}
	resp.Body.Close()
	if again := resp.TLS.PeerCertificates[0]; !again.Equal(leaf) {
		t.Errorf("after a restart: another certificate (%v), want the cached one", again.SerialNumber)
	}
}

// acmeTool finds a tool the ACME test needs (scripts/test.sh installs it).
func acmeTool(t *testing.T, name string) string {
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("RT_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s not installed (scripts/test.sh installs the pebble package)", name)
		}
		t.Skipf("%s not installed; run scripts/test.sh", name)
	}
	return p
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

func atoi(t *testing.T, s string) int {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// startProcess runs a helper until the test ends (or stop), showing its
// output if the test fails.
func startProcess(t *testing.T, name, bin string, env []string, args ...string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("%s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	return stop
}

// waitHTTP waits until u answers 200.
func waitHTTP(t *testing.T, c *http.Client, u string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := c.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not answering: %v", u, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func getBody(c *http.Client, u string) ([]byte, error) {
	resp, err := c.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

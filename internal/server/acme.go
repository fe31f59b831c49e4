package server

// TLS by itself: with Config.ACMEDomains the server obtains and renews its
// certificate from an ACME CA (RFC 8555; Let's Encrypt by default) with
// golang.org/x/crypto/acme/autocert, answering the CA's tls-alpn-01
// challenge (RFC 8737) on its own TLS port and, with ACMEHTTPListen, the
// http-01 challenge on a plain HTTP listener, which otherwise redirects to
// HTTPS. Certificates and the account key are kept in ACMECacheDir.
//
// Ownership: the autocert.Manager is safe for concurrent use; the demux
// calls GetCertificate on its handshake goroutines, each asking on a
// goroutine of its own that outlives a handshake given up on until the CA
// answers (each request bounded by acmeRequestTimeout). warmACME's
// goroutine, started by New, waits for Serve and asks for each domain's
// certificate once (so the first visitor does not wait, and a failure
// shows in the log at once); Shutdown waits for it as long as its context
// allows. The Manager renews in the background (autocert's timers).

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// DefaultACMEDirectory is Let's Encrypt's production ACME directory.
const DefaultACMEDirectory = autocert.DefaultACMEDirectory

// acmeRequestTimeout bounds one HTTP request to the ACME CA.
const acmeRequestTimeout = 30 * time.Second

// newACME builds the certificate manager for cfg's domains.
func newACME(cfg Config) (*autocert.Manager, error) {
	// Every request to the CA is bounded: an order that hangs must not
	// hold certificates (and the handshakes waiting for them) forever.
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.ACMECARoots != "" {
		pem, err := os.ReadFile(cfg.ACMECARoots)
		if err != nil {
			return nil, fmt.Errorf("acme-ca-roots: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("acme-ca-roots %s: no PEM certificate in it", cfg.ACMECARoots)
		}
		tlsConf.RootCAs = pool
	}
	client := &acme.Client{DirectoryURL: cfg.ACMEDirectoryURL, UserAgent: "roundtable",
		HTTPClient: &http.Client{Timeout: acmeRequestTimeout, Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, TLSClientConfig: tlsConf, TLSHandshakeTimeout: 10 * time.Second}}}
	dir := cfg.ACMECacheDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("acme-cache-dir not set and no user cache directory: %w", err)
		}
		dir = filepath.Join(base, "roundtable", "acme")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("acme-cache-dir: %w", err)
	}
	return &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		HostPolicy: autocert.HostWhitelist(cfg.ACMEDomains...),
		Cache:      autocert.DirCache(dir),
		Email:      cfg.ACMEEmail,
		Client:     client,
	}, nil
}

// acmeTLSConfig serves m's certificates: the domain a client names (SNI),
// the first domain for a client that names none (one that connects by
// address), and the tls-alpn-01 challenge certificate to the CA.
func acmeTLSConfig(m *autocert.Manager, domains []string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1", "stun.turn", acme.ALPNProto},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			h := *hello
			if h.ServerName == "" {
				h.ServerName = domains[0]
			}
			// autocert waits for an order in flight without looking at the
			// handshake's context: give up with the handshake (its own
			// timeout, the listener closing), leaving the order to finish.
			type result struct {
				cert *tls.Certificate
				err  error
			}
			done := make(chan result, 1)
			go func() {
				c, err := m.GetCertificate(&h)
				done <- result{c, err}
			}()
			select {
			case r := <-done:
				return r.cert, r.err
			case <-hello.Context().Done():
				return nil, fmt.Errorf("acme: no certificate for %s yet: %w", h.ServerName, hello.Context().Err())
			}
		},
	}
}

// warmACME obtains (or loads from the cache) every domain's certificate,
// logging the outcome; the listener must be serving, for the challenge.
func (s *Server) warmACME() {
	defer close(s.acmeDone)
	select {
	case <-s.serving:
	case <-s.acmeStop:
		return
	}
	for _, d := range s.cfg.ACMEDomains {
		start := time.Now()
		// An ECDSA-capable hello, as browsers send: autocert keeps an ECDSA
		// and an RSA certificate apart and picks by what the client supports.
		cert, err := s.acme.GetCertificate(&tls.ClientHelloInfo{ServerName: d,
			SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
			SupportedCurves:  []tls.CurveID{tls.CurveP256},
			CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}})
		if err != nil {
			s.log.Error("acme certificate failed", "domain", d, "directory", s.cfg.ACMEDirectoryURL, "err", err)
			continue
		}
		expires := ""
		if cert.Leaf != nil {
			expires = cert.Leaf.NotAfter.UTC().Format(time.RFC3339)
		}
		s.log.Info("acme certificate ready", "domain", d, "expires", expires, "after", time.Since(start).Round(time.Millisecond))
	}
}

// serveACMEHTTP serves the http-01 challenge and redirects the rest to
// HTTPS, until Shutdown.
func (s *Server) serveACMEHTTP() {
	if err := s.acmeHTTP.Serve(s.acmeLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Warn("acme http listener stopped", "err", err)
	}
}

// shutdownACME stops the http-01 listener and waits a moment (at most
// acmeShutdownWait, within ctx) for warmACME: an order stuck on the CA is
// not worth holding the exit for; it is logged and left to its timeouts.
func (s *Server) shutdownACME(ctx context.Context) error {
	close(s.acmeStop)
	var err error
	if s.acmeHTTP != nil {
		err = s.acmeHTTP.Shutdown(ctx)
		_ = s.acmeLn.Close() // in case Serve never ran
	}
	select {
	case <-s.acmeDone:
		return err
	default:
	}
	wait := time.NewTimer(acmeShutdownWait)
	defer wait.Stop()
	select {
	case <-s.acmeDone:
	case <-wait.C:
		s.log.Warn("acme certificate order still running at shutdown: not waiting for the CA")
	case <-ctx.Done():
		s.log.Warn("acme certificate order still running at shutdown: not waiting for the CA")
	}
	return err
}

// acmeShutdownWait is how long Shutdown waits for a certificate order.
const acmeShutdownWait = time.Second

// redirectHTTPS answers the http-01 listener's other requests: a
// redirect to the same path over HTTPS, on a configured name (the one
// asked for, else the first) and the TLS listener's port.
func (s *Server) redirectHTTPS(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if !slices.Contains(s.cfg.ACMEDomains, host) {
		host = s.cfg.ACMEDomains[0]
	}
	if _, port, _ := net.SplitHostPort(s.ln.Addr().String()); port != "443" {
		host = net.JoinHostPort(host, port)
	}
	http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusFound)
}

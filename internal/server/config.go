package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/roundtable-sfu/roundtable/sfu"
)

// Config is everything the server can be told. cmd/roundtable fills it from
// flags and ROUNDTABLE_* environment variables; tests fill it directly.
type Config struct {
	Listen        string   // HTTP address (web client, /ws, /metrics)
	ICEPort       int      // the one UDP port of every PeerConnection; 0 = ephemeral
	ICETCPPort    int      // the one TCP port of ICE over TCP (RFC 6544); 0 = off
	NAT1To1IPs    []string // public IPs to advertise (1:1 NAT)
	ICEInterfaces []string // restrict ICE to these interfaces; empty = all
	ICELoopback   bool     // offer loopback candidates
	ICEIPv4Only   bool     // no IPv6 candidates
	MDNS          bool     // resolve browsers' .local candidates
	// ICEDisconnectedTimeout and ICEFailedTimeout: how long a silent peer
	// stays connected, then disconnected, before its PeerConnection fails
	// and it is removed.
	ICEDisconnectedTimeout, ICEFailedTimeout time.Duration
	ICEServers                               []string // STUN/TURN URLs handed to clients
	// ICEUsername and ICECredential are static credentials for the turn:
	// URLs of ICEServers; without them, and with TURNSecret, each
	// participant gets minted ones (an external coturn with use-auth-secret).
	ICEUsername, ICECredential string

	// TURN runs the built-in TURN server (package turn) on TURNPort, UDP
	// and TCP (0: ephemeral), on the listener's host.
	TURN     bool
	TURNPort int
	// TURNSecret signs the TURN REST API credentials minted at join (for
	// the built-in server, or an external coturn's static-auth-secret);
	// empty: a random one per start, built-in server only.
	TURNSecret string
	// TURNCredentialTTL is how long a minted credential works: it bounds
	// how long a relayed call may last.
	TURNCredentialTTL time.Duration
	// TURNHost names the server in the TURN URLs handed out; empty: the
	// host the client reached the web page by.
	TURNHost string
	// TURNMaxAllocations and TURNMaxPerParticipant cap the built-in
	// server's allocations, in all and per participant.
	TURNMaxAllocations, TURNMaxPerParticipant int
	AllowedOrigins                            []string // extra WebSocket origins
	LogFormat                                 string   // text | json
	LogLevel                                  string   // debug | info | warn | error

	MaxRooms        int
	MaxParticipants int
	MaxTracks       int // tracks one participant may publish
	// MaxPublishBitrate caps what one participant may publish, in bits per
	// second (REMB to its browser); 0: no cap.
	MaxPublishBitrate int
	DataMaxMessage    int     // bytes per data-channel message
	DataRate          float64 // data-channel messages per second per sender (bursts: DataBurst)
	// MessageRate: signaling messages per second per socket (bursts:
	// MessageBurst).
	MessageRate float64
	// ConnectTimeout frees a participant whose PeerConnection has not
	// connected this long after joining.
	ConnectTimeout time.Duration

	// MaxProbes bounds the web client's connection checks (/doctor) open
	// at once; ProbeTimeout is how long one may take to connect.
	MaxProbes    int
	ProbeTimeout time.Duration

	// AnswerTimeout bounds how long a server offer waits for the client's
	// answer before the PeerConnection gives up on it (sfu.Settings).
	AnswerTimeout time.Duration

	// The signaling socket's limits (no flags): the largest client frame in
	// bytes, the time to send join, the ping interval (a client silent for
	// two is dropped) and the bound on one socket write.
	SignalMaxMessage int64
	JoinTimeout      time.Duration
	PingInterval     time.Duration
	// WebhookURLs get every room change as a signed JSON POST (package
	// webhook); WebhookQueue events wait per URL, each retried for
	// WebhookRetryFor, each POST bounded by WebhookTimeout.
	WebhookURLs     []string
	WebhookQueue    int
	WebhookRetryFor time.Duration
	WebhookTimeout  time.Duration
	// RecordDir, when set, records every room into it (-record-dir);
	// RecordingsDir is where recordings started through the admin API go
	// when RecordDir is not set (-recordings-dir). Package record; one
	// directory per recording, DIR/{room}/{start}.
	RecordDir     string
	RecordingsDir string
	// ResumeWindow: how long a participant whose signaling socket dropped
	// is kept for a resume (-resume-window).
	ResumeWindow time.Duration
	WriteTimeout time.Duration

	// PprofListen, when set, serves Go's profiler (/debug/pprof/) on this
	// separate address; off by default, and kept off the public listener.
	PprofListen string

	// APIKey and APISecret: with a secret, join needs a token signed with
	// it and issued under the key (docs/security.md). Without, the server
	// is open, which Validate allows only on a loopback listener unless
	// AllowOpen says so.
	APIKey, APISecret string
	AllowOpen         bool

	// TLSCert and TLSKey (PEM files) make the listener serve HTTPS and WSS.
	TLSCert, TLSKey string
	// ACMEDomains, instead of TLSCert, make the server get and renew its
	// certificate for these names from the ACME CA at ACMEDirectoryURL
	// (acme.go): the CA checks the first names' control over the TLS
	// listener itself (tls-alpn-01, port 443 for a public CA) or, with
	// ACMEHTTPListen (":80"), over plain HTTP (http-01). ACMEEmail is the
	// account's contact; ACMECacheDir keeps the account key and the
	// certificates (default: the user's cache directory); ACMECARoots, a
	// PEM file, is trusted for the CA's own HTTPS (a private or test CA).
	ACMEDomains      []string
	ACMEEmail        string
	ACMECacheDir     string
	ACMEDirectoryURL string
	ACMECARoots      string
	ACMEHTTPListen   string
	// DrainTimeout bounds Shutdown's wait for participants to go.
	DrainTimeout time.Duration

	// RedisURL makes the server a node of a cluster (package cluster,
	// docs/cluster.md): redis://host:port. Empty: one node, no Redis.
	RedisURL string
	// NodeID names this node in the cluster ("" a random one); NodeURL is
	// its base URL as clients reach it ("" the listener's).
	NodeID, NodeURL string
	// ClusterRedirect sends a join for a new room to the least loaded
	// node when this one is busier (-cluster-redirect); MaxLoad (0 to 1,
	// a share of the machine's CPU; 0 none) is the load over which this
	// node takes no new room (-max-load).
	ClusterRedirect bool
	MaxLoad         float64
}

// MinSecret is the shortest API secret accepted: HS256 wants a key of at
// least its 256-bit output.
const MinSecret = 32

// MinTURNSecret is the shortest TURN secret accepted.
const MinTURNSecret = 16

// Open reports whether anyone who reaches the server may join.
func (c Config) Open() bool { return c.APISecret == "" }

// DefaultConfig is what `go run ./cmd/roundtable` uses. It is the one
// place where Roundtable's defaults live: the flags start from it, and
// packages room, signal and sfu get every value from here (they keep no
// defaults of their own). README's flag table and docs/security.md's
// limits list these values.
func DefaultConfig() Config {
	return Config{
		Listen:                 "127.0.0.1:8080",
		ACMEDirectoryURL:       DefaultACMEDirectory,
		ICEPort:                7882,
		ICETCPPort:             7881,
		ICELoopback:            true,
		TURN:                   true,
		TURNPort:               3478,
		TURNCredentialTTL:      24 * time.Hour,
		TURNMaxAllocations:     1000,
		TURNMaxPerParticipant:  10,
		MDNS:                   true,
		ICEDisconnectedTimeout: 5 * time.Second,
		ICEFailedTimeout:       15 * time.Second,
		LogFormat:              "text",
		LogLevel:               "info",
		MaxRooms:               1000,
		MaxParticipants:        50,
		DataMaxMessage:         16 << 10,
		DataRate:               50,
		MaxTracks:              8,
		MaxPublishBitrate:      6_000_000,
		MessageRate:            50,
		ConnectTimeout:         30 * time.Second,
		AnswerTimeout:          10 * time.Second,
		MaxProbes:              20,
		ProbeTimeout:           10 * time.Second,
		SignalMaxMessage:       1 << 20,
		JoinTimeout:            10 * time.Second,
		PingInterval:           15 * time.Second,
		ResumeWindow:           20 * time.Second,
		RecordingsDir:          "recordings",
		WebhookQueue:           1024,
		WebhookRetryFor:        30 * time.Second,
		WebhookTimeout:         5 * time.Second,
		WriteTimeout:           10 * time.Second,
		DrainTimeout:           10 * time.Second,
	}
}

// DataBurst is how many data-channel messages a sender may send at once:
// twice DataRate (README, docs/protocol.md), at least one.
func (c Config) DataBurst() int { return max(1, int(2*c.DataRate)) }

// MessageBurst is how many signaling messages a socket may send at once:
// four times MessageRate, at least one.
func (c Config) MessageBurst() int { return max(1, int(4*c.MessageRate)) }

// Validate reports every bad value at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if _, port, err := net.SplitHostPort(c.Listen); err != nil || port == "" {
		bad("listen %q: want host:port", c.Listen)
	}
	if c.APISecret != "" && len(c.APISecret) < MinSecret {
		bad("api-secret: %d bytes, want at least %d", len(c.APISecret), MinSecret)
	}
	if host, _, err := net.SplitHostPort(c.Listen); err == nil && c.Open() && !c.AllowOpen && !IsLoopback(host) {
		bad("listen %q without api-secret: an open server on a non-loopback address needs -allow-open", c.Listen)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("tls-cert and tls-key: give both or neither")
	}
	if len(c.ACMEDomains) > 0 {
		if c.TLSCert != "" {
			bad("acme-domain and tls-cert: give one or the other")
		}
		for _, d := range c.ACMEDomains {
			if net.ParseIP(d) != nil || !strings.Contains(d, ".") || strings.ContainsAny(d, "/:* ") {
				bad("acme-domain %q: want a DNS name such as sfu.example.org", d)
			}
		}
		if u, err := url.Parse(c.ACMEDirectoryURL); err != nil || u.Scheme != "https" || u.Host == "" {
			bad("acme-directory %q: want an https:// URL", c.ACMEDirectoryURL)
		}
		if c.ACMEHTTPListen != "" {
			if _, _, err := net.SplitHostPort(c.ACMEHTTPListen); err != nil {
				bad("acme-http-listen %q: want host:port, e.g. :80", c.ACMEHTTPListen)
			}
		}
	} else {
		for _, o := range []struct{ name, v string }{
			{"acme-http-listen", c.ACMEHTTPListen}, {"acme-ca-roots", c.ACMECARoots}, {"acme-email", c.ACMEEmail}} {
			if o.v != "" {
				bad("%s %q: needs acme-domain", o.name, o.v)
			}
		}
	}
	if c.MaxTracks < 1 {
		bad("max-tracks %d: want at least 1", c.MaxTracks)
	}
	if c.MaxPublishBitrate < 0 {
		bad("max-publish-bitrate %d: want 0 (no cap) or more", c.MaxPublishBitrate)
	}
	if c.MessageRate <= 0 {
		bad("message-rate %v: want more than 0", c.MessageRate)
	}
	if c.ConnectTimeout <= 0 {
		bad("connect-timeout %v: want more than 0", c.ConnectTimeout)
	}
	if c.MaxProbes < 1 || c.ProbeTimeout <= 0 {
		bad("max-probes %d, probe timeout %v: want at least 1 and more than 0", c.MaxProbes, c.ProbeTimeout)
	}
	if c.DrainTimeout <= 0 {
		bad("drain-timeout %v: want more than 0", c.DrainTimeout)
	}
	if c.PprofListen != "" {
		if _, port, err := net.SplitHostPort(c.PprofListen); err != nil || port == "" {
			bad("pprof-listen %q: want host:port", c.PprofListen)
		}
	}
	if c.ICEPort < 0 || c.ICEPort > 65535 {
		bad("ice-port %d: want 0-65535", c.ICEPort)
	}
	if c.ICETCPPort < 0 || c.ICETCPPort > 65535 {
		bad("ice-tcp-port %d: want 0 (off) to 65535", c.ICETCPPort)
	}
	if c.TURNPort < 0 || c.TURNPort > 65535 {
		bad("turn-port %d: want 0-65535", c.TURNPort)
	}
	if c.TURNSecret != "" && len(c.TURNSecret) < MinTURNSecret {
		bad("turn-secret: %d bytes, want at least %d", len(c.TURNSecret), MinTURNSecret)
	}
	if c.TURNCredentialTTL <= 0 {
		bad("turn-ttl %v: want more than 0", c.TURNCredentialTTL)
	}
	if c.TURN && (c.TURNMaxAllocations < 1 || c.TURNMaxPerParticipant < 1) {
		bad("turn-max-allocations %d, turn-max-per-participant %d: want each at least 1", c.TURNMaxAllocations, c.TURNMaxPerParticipant)
	}
	for _, ip := range c.NAT1To1IPs {
		if net.ParseIP(ip) == nil {
			bad("nat-ip %q: not an IP address", ip)
		}
	}
	for _, u := range c.ICEServers {
		if !strings.HasPrefix(u, "stun:") && !strings.HasPrefix(u, "stuns:") &&
			!strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
			bad("ice-servers %q: want a stun:, stuns:, turn: or turns: URL", u)
		}
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log-format %q: want text or json", c.LogFormat)
	}
	if _, err := ParseLevel(c.LogLevel); err != nil {
		bad("log-level: %v", err)
	}
	if c.MaxRooms < 1 {
		bad("max-rooms %d: want at least 1", c.MaxRooms)
	}
	if c.MaxParticipants < 1 {
		bad("max-participants %d: want at least 1", c.MaxParticipants)
	}
	if c.DataMaxMessage < 1 || c.DataMaxMessage > sfu.MaxDataMessage {
		bad("data-max-message %d: want 1-%d bytes", c.DataMaxMessage, sfu.MaxDataMessage)
	}
	if c.DataRate <= 0 {
		bad("data-rate %v: want more than 0", c.DataRate)
	}
	if c.ICEDisconnectedTimeout <= 0 || c.ICEFailedTimeout <= 0 {
		bad("ICE timeouts %v (disconnected), %v (failed): want both more than 0", c.ICEDisconnectedTimeout, c.ICEFailedTimeout)
	}
	if c.AnswerTimeout <= 0 {
		bad("answer timeout %v: want more than 0", c.AnswerTimeout)
	}
	if c.SignalMaxMessage < 1 {
		bad("signaling max message %d bytes: want at least 1", c.SignalMaxMessage)
	}
	for _, u := range c.WebhookURLs {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			bad("webhook-url %q: want an http:// or https:// URL", u)
		}
	}
	if c.WebhookQueue < 1 || c.WebhookRetryFor <= 0 || c.WebhookTimeout <= 0 {
		bad("webhook queue %d, retry %v, timeout %v: want each more than 0", c.WebhookQueue, c.WebhookRetryFor, c.WebhookTimeout)
	}
	if c.MaxLoad < 0 || c.MaxLoad > 1 {
		bad("max-load %v: want a share of the CPU from 0 (no limit) to 1", c.MaxLoad)
	}
	if (c.ClusterRedirect || c.MaxLoad > 0) && c.RedisURL == "" {
		bad("cluster-redirect and max-load need redis-url (a cluster)")
	}
	if c.NodeURL != "" {
		if u, err := url.Parse(c.NodeURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("node-url %q: want http(s)://host[:port]/", c.NodeURL)
		}
	}
	if c.ResumeWindow <= 0 {
		bad("resume-window %v: want more than 0", c.ResumeWindow)
	}
	if c.JoinTimeout <= 0 || c.PingInterval <= 0 || c.WriteTimeout <= 0 {
		bad("signaling timeouts %v (join), %v (ping), %v (write): want each more than 0", c.JoinTimeout, c.PingInterval, c.WriteTimeout)
	}
	return errors.Join(errs...)
}

// ParseLevel parses a log level name.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q: want debug, info, warn or error", s)
	}
	return l, nil
}

// IsLoopback reports whether a listen host is a loopback address or name.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

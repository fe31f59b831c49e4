// Command roundtable runs the Roundtable SFU: the web client, WebSocket
// signaling at /ws and Prometheus metrics at /metrics on one HTTP address,
// and every PeerConnection on one UDP port. Every flag also reads a
// ROUNDTABLE_* environment variable (flag -ice-port: ROUNDTABLE_ICE_PORT);
// a flag given on the command line wins.
//
// `roundtable load` is the load tool: simulated participants against a
// running server, with a delivery, latency and server-cost summary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/roundtable-sfu/roundtable/internal/server"
)

func main() {
	args, cmd := os.Args[1:], run
	if len(args) > 0 {
		switch args[0] {
		case "load":
			args, cmd = args[1:], runLoad
		case "baseline":
			args, cmd = args[1:], runBaseline
		case "token":
			args, cmd = args[1:], runToken
		case "rooms":
			args, cmd = args[1:], runRooms
		case "config":
			args, cmd = args[1:], runConfig
		case "archive":
			args, cmd = args[1:], runArchive
		}
	}
	if err := cmd(args, os.Stdout, os.Stderr); errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "roundtable:", err)
		if errors.Is(err, errLowDelivery) {
			os.Exit(1)
		}
		os.Exit(2)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, os.LookupEnv, stderr)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	level, _ := server.ParseLevel(cfg.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(stderr, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(stderr, opts)
	}
	log := slog.New(h)

	srv, err := server.New(cfg, log)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve() }()
	fmt.Fprintf(stdout, "Roundtable is up: open %s in two browser tabs\n", srv.URL())
	turnUDP, turnTCP := srv.TURNPorts()
	iceUDP, iceTCP := cfg.ICEPort, cfg.ICETCPPort // the ports bound, when 0 asked for any
	if as := srv.Engine.UDPAddrs(); len(as) > 0 {
		if a, ok := as[0].(*net.UDPAddr); ok {
			iceUDP = a.Port
		}
	}
	if a, ok := srv.Engine.TCPAddr().(*net.TCPAddr); ok {
		iceTCP = a.Port
	}
	log.Info("serving", "url", srv.URL(), "signaling", srv.WSURL(), "ice_udp_port", iceUDP, "ice_tcp_port", iceTCP,
		"turn_udp_port", turnUDP, "turn_tcp_port", turnTCP)
	// Each advertised address gets a STUN binding from the server itself;
	// the ones that do not answer are logged by flag (3 s at most).
	srv.SelfCheck(context.Background(), 3*time.Second)
	if cfg.Open() {
		log.Warn("open server: anyone who can reach it may join any room; set -api-secret to require tokens", "listen", cfg.Listen)
	} else {
		log.Info("join tokens required", "api_key", cfg.APIKey)
	}
	if a := srv.PprofAddr(); a != nil {
		log.Warn("profiler on: do not expose this address", "pprof", "http://"+a.String()+"/debug/pprof/")
	}

	select {
	case err := <-errc:
		return err
	case <-sigs:
	}
	// Drain: no new joins, bye to everyone, wait for them up to the drain
	// timeout. A second signal ends it at once.
	log.Info("draining", "timeout", cfg.DrainTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	go func() {
		select {
		case <-sigs:
			log.Warn("second signal: exiting without waiting")
			os.Exit(1)
		case <-sctx.Done():
		}
	}()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("drain incomplete", "err", err)
	}
	log.Info("stopped")
	return nil
}

// parseConfig reads flags, falling back to ROUNDTABLE_* variables, then to
// the -config file (config.go), then to the defaults.
func parseConfig(args []string, env func(string) (string, bool), stderr io.Writer) (server.Config, error) {
	cfg, _, err := parseFlags(args, env, stderr)
	return cfg, err
}

// parseFlags is parseConfig, also returning the flag set with the values
// in force (config print).
func parseFlags(args []string, env func(string) (string, bool), stderr io.Writer) (server.Config, *flag.FlagSet, error) {
	cfg := server.DefaultConfig()
	layer := 1 // the file, then the environment, then the command line
	fs := flags(&cfg, &layer, stderr)
	if file := configPath(args, env); file != "" {
		if errs := loadConfigFile(fs, file); len(errs) > 0 {
			return cfg, fs, errors.Join(errs...)
		}
	}
	// The environment next, so the command line overrides both.
	layer = 2
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v, ok := env(name); ok && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s=%q: %w", name, v, err)
			}
		}
	})
	if envErr != nil {
		return cfg, fs, envErr
	}
	layer = 3
	if err := fs.Parse(args); err != nil {
		return cfg, fs, err
	}
	if fs.NArg() > 0 {
		return cfg, fs, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return cfg, fs, nil
}

// envName is the environment variable of flag name: ROUNDTABLE_ICE_PORT
// for ice-port.
func envName(name string) string {
	return "ROUNDTABLE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// flags registers every server flag on a new flag set, writing into cfg;
// layer says which source sets values now (repeatFlag).
func flags(cfg *server.Config, layer *int, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("roundtable", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: roundtable [flags]          run the server
       roundtable token ...          mint a join or admin token
       roundtable rooms ...          the admin API from a shell (docs/api.md)
       roundtable config check|print the configuration file
       roundtable archive DIR        one file of a room's recording (docs/recording.md)
       roundtable load ...           the load tool
       roundtable baseline ...       the stock pion yardstick
(each takes -help) flags:
`)
		fs.PrintDefaults()
	}
	fs.Var(&repeatFlag{vals: &cfg.WebhookURLs, layer: layer}, "webhook-url",
		"an HTTP(S) endpoint that gets every room event as a signed JSON POST (docs/api.md); repeat it, or list them comma-separated, for several")
	fs.String("config", "", "a YAML file of flag values (keys are the flag names); flags and ROUNDTABLE_* variables override it")
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "HTTP address for the web client, /ws and /metrics")
	fs.IntVar(&cfg.ICEPort, "ice-port", cfg.ICEPort, "UDP port shared by all PeerConnections (0 = ephemeral)")
	fs.IntVar(&cfg.ICETCPPort, "ice-tcp-port", cfg.ICETCPPort, "TCP port for ICE over TCP, for clients that cannot reach the UDP port (0 = off); with TLS, ICE-TCP shares the -listen port instead")
	fs.Var((*listFlag)(&cfg.NAT1To1IPs), "nat-ip", "comma-separated public IPs to advertise (1:1 NAT)")
	fs.Var((*listFlag)(&cfg.ICEInterfaces), "ice-interfaces", "comma-separated network interfaces to use for ICE (default all)")
	fs.BoolVar(&cfg.ICELoopback, "ice-loopback", cfg.ICELoopback, "offer loopback ICE candidates")
	fs.BoolVar(&cfg.ICEIPv4Only, "ice-ipv4-only", cfg.ICEIPv4Only, "offer IPv4 candidates only")
	fs.BoolVar(&cfg.MDNS, "mdns", cfg.MDNS, "resolve browsers' mDNS (.local) candidates")
	fs.Var((*listFlag)(&cfg.ICEServers), "ice-servers", "comma-separated STUN/TURN URLs handed to clients")
	fs.StringVar(&cfg.ICEUsername, "ice-username", cfg.ICEUsername, "username for the turn: URLs")
	fs.StringVar(&cfg.ICECredential, "ice-credential", cfg.ICECredential, "credential for the turn: URLs")
	fs.BoolVar(&cfg.TURN, "turn", cfg.TURN, "run the built-in TURN server (relays only to this server's media port)")
	fs.IntVar(&cfg.TURNPort, "turn-port", cfg.TURNPort, "UDP and TCP port of the built-in TURN server (0 = ephemeral)")
	fs.StringVar(&cfg.TURNSecret, "turn-secret", cfg.TURNSecret, "secret for TURN REST API credentials minted at join (coturn's static-auth-secret; prefer ROUNDTABLE_TURN_SECRET); default: random per start")
	fs.DurationVar(&cfg.TURNCredentialTTL, "turn-ttl", cfg.TURNCredentialTTL, "lifetime of a minted TURN credential (bounds a relayed call's length)")
	fs.StringVar(&cfg.TURNHost, "turn-host", cfg.TURNHost, "host name or IP in the built-in TURN server's URLs (default: the host the browser used)")
	fs.IntVar(&cfg.TURNMaxAllocations, "turn-max-allocations", cfg.TURNMaxAllocations, "relay allocations the built-in TURN server holds at most")
	fs.IntVar(&cfg.TURNMaxPerParticipant, "turn-max-per-participant", cfg.TURNMaxPerParticipant, "relay allocations one participant may hold")
	fs.Var((*listFlag)(&cfg.AllowedOrigins), "allowed-origins", "comma-separated extra WebSocket origins (scheme://host:port)")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "log format: text or json")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "log level: debug, info, warn or error")
	fs.IntVar(&cfg.MaxRooms, "max-rooms", cfg.MaxRooms, "maximum rooms")
	fs.IntVar(&cfg.MaxParticipants, "max-participants", cfg.MaxParticipants, "maximum participants per room")
	fs.IntVar(&cfg.MaxTracks, "max-tracks", cfg.MaxTracks, "tracks one participant may publish (too_many_tracks beyond)")
	fs.IntVar(&cfg.MaxPublishBitrate, "max-publish-bitrate", cfg.MaxPublishBitrate, "bits per second one participant may publish in all, sent to it as REMB (0: no cap)")
	fs.Float64Var(&cfg.MessageRate, "message-rate", cfg.MessageRate, "signaling messages per second per socket (bursts of four times that)")
	fs.DurationVar(&cfg.ConnectTimeout, "connect-timeout", cfg.ConnectTimeout, "free a participant whose PeerConnection has not connected this long after joining")
	fs.IntVar(&cfg.MaxProbes, "max-probes", cfg.MaxProbes, "connection checks (the /doctor page's probes) running at once")
	fs.IntVar(&cfg.DataMaxMessage, "data-max-message", cfg.DataMaxMessage, "maximum data-channel message size in bytes")
	fs.Float64Var(&cfg.DataRate, "data-rate", cfg.DataRate, "data-channel messages per second per sender (burst: twice that)")
	fs.StringVar(&cfg.APIKey, "api-key", cfg.APIKey, "API key that join tokens are issued under (their iss claim)")
	fs.StringVar(&cfg.APISecret, "api-secret", cfg.APISecret, "secret that signs join tokens (HS256, at least 32 bytes; prefer ROUNDTABLE_API_SECRET); without it the server is open")
	fs.BoolVar(&cfg.AllowOpen, "allow-open", cfg.AllowOpen, "allow an open server (no api-secret) on a non-loopback address")
	fs.StringVar(&cfg.TLSCert, "tls-cert", cfg.TLSCert, "PEM certificate file: serve HTTPS and WSS (with -tls-key), and ICE-TCP and TURN over TLS on the same port")
	fs.StringVar(&cfg.TLSKey, "tls-key", cfg.TLSKey, "PEM private key file for -tls-cert")
	fs.Var((*listFlag)(&cfg.ACMEDomains), "acme-domain", "comma-separated DNS names to get a certificate for from the ACME CA (Let's Encrypt by default), instead of -tls-cert; the CA must reach -listen on port 443, or -acme-http-listen on 80")
	fs.StringVar(&cfg.ACMEEmail, "acme-email", cfg.ACMEEmail, "contact address for the ACME account (expiry and incident mail from the CA)")
	fs.StringVar(&cfg.ACMECacheDir, "acme-cache-dir", cfg.ACMECacheDir, "directory for the ACME account key and certificates (default: the user's cache directory, roundtable/acme)")
	fs.StringVar(&cfg.ACMEDirectoryURL, "acme-directory", cfg.ACMEDirectoryURL, "ACME directory URL of the CA (e.g. Let's Encrypt's staging one while trying things)")
	fs.StringVar(&cfg.ACMECARoots, "acme-ca-roots", cfg.ACMECARoots, "PEM file of CA certificates to trust for the ACME server's own HTTPS (a private or test CA)")
	fs.StringVar(&cfg.ACMEHTTPListen, "acme-http-listen", cfg.ACMEHTTPListen, "plain HTTP address, e.g. :80, for the ACME http-01 challenge; everything else there redirects to HTTPS (default off: tls-alpn-01 on -listen)")
	fs.StringVar(&cfg.RecordDir, "record-dir", cfg.RecordDir, "record every room into this directory (docs/recording.md); empty: only rooms the admin API starts recording")
	fs.StringVar(&cfg.RecordingsDir, "recordings-dir", cfg.RecordingsDir, "where recordings started through the admin API go, when -record-dir is not set")
	fs.DurationVar(&cfg.ResumeWindow, "resume-window", cfg.ResumeWindow, "how long a participant whose signaling socket dropped stays in its room, waiting to resume")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", cfg.DrainTimeout, "on SIGINT or SIGTERM, how long to wait for participants to leave after bye")
	fs.StringVar(&cfg.RedisURL, "redis-url", cfg.RedisURL, "redis://host:port: make this server a node of the cluster that shares this Redis (docs/cluster.md); empty: one node, no Redis")
	fs.StringVar(&cfg.NodeID, "node-id", cfg.NodeID, "this node's name in the cluster (default: a random one per start)")
	fs.BoolVar(&cfg.ClusterRedirect, "cluster-redirect", cfg.ClusterRedirect, "send a join for a new room to the least loaded node of the cluster when this one is busier (the client is told the node's URL)")
	fs.Float64Var(&cfg.MaxLoad, "max-load", cfg.MaxLoad, "in a cluster, the share of the machine's CPU (0 to 1) over which this node takes no new room (0: no limit)")
	fs.StringVar(&cfg.NodeURL, "node-url", cfg.NodeURL, "this node's own base URL as clients reach it, for the cluster's redirects (default: the listener's)")
	fs.StringVar(&cfg.PprofListen, "pprof-listen", cfg.PprofListen, "serve Go's profiler (/debug/pprof/) on this separate address, e.g. 127.0.0.1:6060 (default off)")
	return fs
}

// repeatFlag is a list flag that may be given more than once (and
// comma-separated): within one layer (file, environment, command line)
// the values add up; a higher layer replaces what a lower one set.
type repeatFlag struct {
	vals  *[]string
	layer *int
	at    int // the layer the values came from
}

func (r *repeatFlag) String() string {
	if r == nil || r.vals == nil {
		return ""
	}
	return strings.Join(*r.vals, ",")
}

func (r *repeatFlag) Set(s string) error {
	if r.at != *r.layer {
		*r.vals, r.at = nil, *r.layer
	}
	*r.vals = append(*r.vals, splitList(s)...)
	return nil
}

// listFlag is a comma-separated list flag.
type listFlag []string

func (l *listFlag) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

func (l *listFlag) Set(s string) error {
	*l = splitList(s)
	return nil
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

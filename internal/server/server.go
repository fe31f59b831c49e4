// Package server wires Roundtable together: the media engine, the room
// manager, signaling, metrics and the web client behind one HTTP listener.
// It is what cmd/roundtable runs and what the integration tests start; it
// owns no protocol or media logic of its own.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/roundtable-sfu/roundtable/admin"
	"github.com/roundtable-sfu/roundtable/cluster"
	"github.com/roundtable-sfu/roundtable/demux"
	"github.com/roundtable-sfu/roundtable/internal/auth"
	"github.com/roundtable-sfu/roundtable/metrics"
	"github.com/roundtable-sfu/roundtable/record"
	"github.com/roundtable-sfu/roundtable/room"
	"github.com/roundtable-sfu/roundtable/sfu"
	"github.com/roundtable-sfu/roundtable/signal"
	"github.com/roundtable-sfu/roundtable/web"
	"github.com/roundtable-sfu/roundtable/webhook"
	"github.com/roundtable-sfu/roundtable/whip"
	"golang.org/x/crypto/acme/autocert"
)

// Server is a running Roundtable instance.
type Server struct {
	// WHIP serves WHIP ingest (/whip/), WHEP playback (/whep/).
	WHIP *whip.Handler
	WHEP *whip.Handler
	// Recorder records rooms (-record-dir, or the admin API).
	Recorder *record.Service
	// Cluster is this node's membership of a cluster, nil without
	// Config.RedisURL.
	Cluster *cluster.Node
	Engine  *sfu.Engine
	Rooms   *room.Manager
	Signal  *signal.Server

	log  *slog.Logger
	cfg  Config
	ln   net.Listener
	http *http.Server

	turn      *turnSide
	webhooks  *webhook.Sender
	httpLn    net.Listener // ln, or demux's HTTP listener with TLS
	mux       *demux.Mux   // nil without TLS
	pprofLn   net.Listener // nil unless Config.PprofListen
	pprofHTTP *http.Server
	tls       bool
	draining  atomic.Bool
	acme      *autocert.Manager // nil unless Config.ACMEDomains (acme.go)
	acmeLn    net.Listener      // the http-01 listener, nil unless Config.ACMEHTTPListen
	acmeHTTP  *http.Server
	acmeDone  chan struct{} // closed when warmACME (started by New) returns, at once without ACME
	serving   chan struct{} // closed by Serve: warmACME may order
	acmeStop  chan struct{} // closed by Shutdown: warmACME gives up waiting
	serveOnce sync.Once
	downOnce  sync.Once // Shutdown's work, done once
	downErr   error
}

// New validates cfg, opens the HTTP listener and the ICE UDP port.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	return NewWithInterceptors(cfg, log, nil)
}

// NewWithInterceptors is New with extra pion interceptors on every
// PeerConnection (tests use them to impair the network).
func NewWithInterceptors(cfg Config, log *slog.Logger, extra []interceptor.Factory) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	var tlsCfg *tls.Config
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1", "stun.turn"}}
	}
	var certs *autocert.Manager
	if len(cfg.ACMEDomains) > 0 {
		m, err := newACME(cfg)
		if err != nil {
			return nil, err
		}
		certs, tlsCfg = m, acmeTLSConfig(m, cfg.ACMEDomains)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	undo := []func(){func() { _ = ln.Close() }}
	ok := false
	defer func() { // on error, close what was opened, newest first
		for i := len(undo) - 1; i >= 0 && !ok; i-- {
			undo[i]()
		}
	}()
	// With TLS, one port serves everything over TCP (package demux):
	// HTTPS and WSS, ICE-TCP (instead of -ice-tcp-port's own port) and
	// TURN over TLS.
	var dm *demux.Mux
	httpLn := ln
	var iceTCPLn, turnsLn net.Listener
	if tlsCfg != nil {
		dm = demux.New(ln, tlsCfg, sniffTimeout)
		undo[0] = func() { _ = dm.Close() }
		httpLn = dm.Listen(demux.HTTP)
		if cfg.ICETCPPort != 0 {
			iceTCPLn = dm.Listen(demux.ICETCP)
		}
		if cfg.TURN {
			turnsLn = dm.Listen(demux.TURNS)
		}
	}
	tcpPort := cfg.ICETCPPort
	if iceTCPLn != nil {
		tcpPort = 0
	}
	var ts *turnSide // set below, before any Peer exists
	engine, err := sfu.NewEngine(sfu.Settings{
		UDPPort: cfg.ICEPort, TCPPort: tcpPort, TCPListener: iceTCPLn, NAT1To1IPs: cfg.NAT1To1IPs, Interfaces: cfg.ICEInterfaces,
		Loopback: cfg.ICELoopback, DisableMDNS: !cfg.MDNS, IPv4Only: cfg.ICEIPv4Only, Logger: log,
		Interceptors: extra, ICEDisconnectedTimeout: cfg.ICEDisconnectedTimeout, ICEFailedTimeout: cfg.ICEFailedTimeout,
		MaxIncomingBitrate: cfg.MaxPublishBitrate, MaxDataMessage: cfg.DataMaxMessage,
		AnswerTimeout: cfg.AnswerTimeout, OnPeerClosed: func(id string) { ts.release(id) },
		RelayTransport: func(a netip.AddrPort) string { return ts.relayTransport(a) }, RelayOffered: func() bool { return ts.relayOffered() },
	})
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { _ = engine.Close() })
	if ts, err = openTURN(cfg, engine, turnsLn, log); err != nil {
		return nil, err
	}
	undo = append(undo, func() { _ = ts.close() })
	rooms, err := room.NewManager(engine.NewPeer, room.Limits{
		MaxRooms: cfg.MaxRooms, MaxParticipants: cfg.MaxParticipants,
		DataRate: cfg.DataRate, DataBurst: cfg.DataBurst(),
		MaxTracks: cfg.MaxTracks, ConnectTimeout: cfg.ConnectTimeout,
		MaxProbes: cfg.MaxProbes, ProbeTimeout: cfg.ProbeTimeout, MoveGrace: cfg.ResumeWindow,
	}, log)
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { rooms.Close("shutdown") })
	recDir := cfg.RecordDir
	if recDir == "" {
		recDir = cfg.RecordingsDir
	}
	recorder := record.New(recDir, engine.Stats(), log)
	if cfg.RecordDir != "" {
		rooms.RecordAll(recorder.Start)
	}
	var clusterNode *cluster.Node
	var sigRef atomic.Pointer[signal.Server] // set below, before any participant exists
	if cfg.RedisURL != "" {
		url := cfg.NodeURL
		if url == "" {
			url = (&Server{cfg: cfg, ln: ln, tls: tlsCfg != nil}).URL()
		}
		n, err := cluster.Open(cluster.Config{RedisURL: cfg.RedisURL, NodeID: cfg.NodeID, URL: url, Rooms: rooms,
			Load: newLoadMeter(engine.Stats(), rooms).sample, ParticipantTTL: cfg.ResumeWindow + cluster.DefaultTTL,
			Redirect: cfg.ClusterRedirect, MaxLoad: cfg.MaxLoad,
			OnRelease: func(id string) {
				if sig := sigRef.Load(); sig != nil {
					sig.CloseParticipant(id, room.ReasonMoved)
				}
			},
			Logger: log})
		if err != nil {
			return nil, err
		}
		undo = append(undo, func() { _ = n.Close() })
		clusterNode = n
	}
	var keys *auth.Keys
	if !cfg.Open() {
		keys = &auth.Keys{Key: cfg.APIKey, Secret: cfg.APISecret}
	}
	sig, err := signal.NewServer(rooms, signal.Config{
		ICEServers: ts.iceServers, AllowedOrigins: cfg.AllowedOrigins, Keys: keys,
		MaxMessage: cfg.SignalMaxMessage, JoinTimeout: cfg.JoinTimeout,
		PingInterval: cfg.PingInterval, WriteTimeout: cfg.WriteTimeout, ResumeWindow: cfg.ResumeWindow,
		MessageRate: cfg.MessageRate, MessageBurst: cfg.MessageBurst(),
		Cluster: clusterSide(clusterNode),
	}, log)
	if err != nil {
		return nil, err
	}
	sigRef.Store(sig)

	hooks := webhook.New(webhook.Config{URLs: cfg.WebhookURLs, Secret: cfg.APISecret, Queue: cfg.WebhookQueue,
		RetryFor: cfg.WebhookRetryFor, Timeout: cfg.WebhookTimeout}, log)
	undo = append(undo, func() { hooks.Close(context.Background()) })
	rooms.Observe(func(c room.Change) {
		hooks.Send(c)
		if clusterNode != nil {
			clusterNode.Kick() // the directory changed: written and reconciled now
		}
	})
	s := &Server{Engine: engine, Rooms: rooms, Signal: sig, log: log, cfg: cfg, ln: ln, httpLn: httpLn, mux: dm, turn: ts, webhooks: hooks, acme: certs, Recorder: recorder, Cluster: clusterNode}
	if certs != nil && cfg.ACMEHTTPListen != "" {
		if s.acmeLn, err = net.Listen("tcp", cfg.ACMEHTTPListen); err != nil {
			return nil, fmt.Errorf("acme-http-listen %s: %w", cfg.ACMEHTTPListen, err)
		}
		undo = append(undo, func() { _ = s.acmeLn.Close() })
		s.acmeHTTP = &http.Server{Handler: certs.HTTPHandler(http.HandlerFunc(s.redirectHTTPS)),
			ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	}
	s.serving, s.acmeStop, s.acmeDone = make(chan struct{}), make(chan struct{}), make(chan struct{})
	if certs != nil {
		go s.warmACME()
		undo = append(undo, func() { close(s.acmeStop) })
	} else {
		close(s.acmeDone)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", sig)
	whipCfg := whip.Config{Keys: keys, ICEServers: ts.iceServers, Draining: s.draining.Load}
	s.WHIP = whip.New(rooms, whipCfg, log)
	mux.Handle(whip.Prefix, s.WHIP)
	s.WHEP = whip.NewWHEP(rooms, whipCfg, log)
	mux.Handle(whip.PlaybackPrefix, s.WHEP)
	adminCfg := admin.Config{Keys: keys, MaxData: cfg.DataMaxMessage, Record: s.Recorder.Start}
	if clusterNode != nil {
		adminCfg.Node, adminCfg.Peers = clusterNode.ID(), func() []admin.Peer {
			var out []admin.Peer
			for _, ni := range clusterNode.Nodes() {
				if ni.ID != clusterNode.ID() && ni.URL != "" {
					out = append(out, admin.Peer{ID: ni.ID, URL: ni.URL})
				}
			}
			return out
		}
	}
	mux.Handle(admin.Prefix, admin.New(rooms, adminCfg, log))
	mux.Handle("/metrics", metrics.Handler(metrics.Sources{Media: engine.Stats(), Rooms: rooms, Signal: sig.Stats(), Estimates: engine.Estimates, TURN: ts.stats(),
		Webhooks: hooks.Stats(), WHIP: s.WHIP.States, WHEP: s.WHEP.States, Recording: s.Recorder.Stats(), Cluster: clusterStats(s.Cluster)}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if s.draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("/", web.Handler())
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if tlsCfg != nil {
		s.http.TLSConfig = tlsCfg // net/http serves HTTP/2 on the *tls.Conns demux hands it
		s.tls = true
	}
	if cfg.PprofListen != "" {
		if s.pprofLn, err = net.Listen("tcp", cfg.PprofListen); err != nil {
			return nil, fmt.Errorf("pprof listen %s: %w", cfg.PprofListen, err)
		}
		undo = append(undo, func() { _ = s.pprofLn.Close() })
		pm := http.NewServeMux()
		pm.HandleFunc("/debug/pprof/", pprof.Index)
		pm.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		pm.HandleFunc("/debug/pprof/profile", pprof.Profile)
		pm.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		pm.HandleFunc("/debug/pprof/trace", pprof.Trace)
		s.pprofHTTP = &http.Server{Handler: pm, ReadHeaderTimeout: 10 * time.Second}
	}
	ok = true
	return s, nil
}

// clusterSide is what signaling needs of the cluster, nil without one.
func clusterSide(n *cluster.Node) signal.Cluster {
	if n == nil {
		return nil
	}
	return n
}

// clusterStats returns n's counters, nil without a cluster.
func clusterStats(n *cluster.Node) *cluster.Stats {
	if n == nil {
		return nil
	}
	return n.Stats()
}

// sniffTimeout bounds how long a connection to the shared TLS port may take
// to send its first bytes and finish its TLS handshake.
const sniffTimeout = 10 * time.Second

// PprofAddr returns the profiler's address, or nil when it is off.
func (s *Server) PprofAddr() net.Addr {
	if s.pprofLn == nil {
		return nil
	}
	return s.pprofLn.Addr()
}

// TURNPorts returns the built-in TURN server's UDP and TCP ports, 0 when
// it is off.
func (s *Server) TURNPorts() (udp, tcp int) {
	if s.turn.srv == nil {
		return 0, 0
	}
	return s.turn.udpPort, s.turn.tcpPort
}

// Webhooks returns the webhook counters.
func (s *Server) Webhooks() *webhook.Stats { return s.webhooks.Stats() }

// Addr returns the HTTP listener's address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL returns the web client's URL: with ACME, on the first domain.
func (s *Server) URL() string {
	if s.tls {
		return "https://" + s.host() + "/"
	}
	return "http://" + s.host() + "/"
}

// WSURL returns the signaling URL.
func (s *Server) WSURL() string {
	if s.tls {
		return "wss://" + s.host() + "/ws"
	}
	return "ws://" + s.host() + "/ws"
}

// host is the listener's address, or with ACME the first domain and the
// listener's port (none for 443).
func (s *Server) host() string {
	addr := s.ln.Addr().String()
	if len(s.cfg.ACMEDomains) == 0 {
		return addr
	}
	if _, port, _ := net.SplitHostPort(addr); port != "443" {
		return net.JoinHostPort(s.cfg.ACMEDomains[0], port)
	}
	return s.cfg.ACMEDomains[0]
}

// Serve serves HTTP until Shutdown.
func (s *Server) Serve() error {
	if s.acmeHTTP != nil {
		go s.serveACMEHTTP()
	}
	s.serveOnce.Do(func() { close(s.serving) })
	if s.pprofHTTP != nil {
		go func() {
			if err := s.pprofHTTP.Serve(s.pprofLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Warn("pprof server stopped", "err", err)
			}
		}()
	}
	if err := s.http.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http: %w", err)
	}
	return nil
}

// Drain starts draining: /readyz turns 503, new sockets get 503, joins on
// open ones get "draining", and every participant gets bye "shutdown".
// Safe to call more than once.
//
// In a cluster, participants move instead: the node is marked draining in
// Redis, and every client gets "reconnect" naming the least loaded other
// node, where it resumes (the others see no one leave); Shutdown ends
// whoever is left once the drain timeout is nearly over.
func (s *Server) Drain() {
	s.draining.Store(true)
	s.Signal.Drain()
	if s.Cluster != nil {
		s.Cluster.SetDraining()
		if target := s.Cluster.Target(); target != "" {
			s.log.Info("draining: participants move", "to", target)
			s.Signal.Reconnect(target)
			return
		}
		s.log.Info("draining: no other node to move to")
	}
	s.Rooms.Close("shutdown")
	s.Signal.CloseAll("shutdown")
}

// Shutdown drains the server, waits for the sessions to end (until ctx is
// done), then closes the listener and the UDP port. A second call returns
// the first one's result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.downOnce.Do(func() { s.downErr = s.shutdown(ctx) })
	return s.downErr
}

func (s *Server) shutdown(ctx context.Context) error {
	s.Drain()
	var waitErr error
	if s.Cluster != nil {
		// Moves first, until a second before ctx's end; then the rest go.
		mctx := ctx
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) > 2*time.Second {
			var cancel context.CancelFunc
			mctx, cancel = context.WithDeadline(ctx, dl.Add(-time.Second))
			defer cancel()
		}
		if err := s.Signal.Wait(mctx); err != nil {
			s.log.Warn("drain: some participants did not move", "err", err)
		}
		s.Rooms.Close("shutdown") // whoever is left; and the speaker loop
		s.Signal.CloseAll("shutdown")
	}
	waitErr = s.Signal.Wait(ctx)
	var clusterErr error
	if s.Cluster != nil {
		clusterErr = s.Cluster.Close() // its goroutines, then its keys in Redis (the relays closed with their rooms)
	}
	s.Rooms.StopRecordings() // every file complete before the process ends
	s.webhooks.Close(ctx)    // the last room_finished events, as far as ctx allows
	httpErr := s.http.Shutdown(ctx)
	var pprofErr error
	if s.pprofHTTP != nil {
		pprofErr = s.pprofHTTP.Shutdown(ctx)
	}
	acmeErr := s.shutdownACME(ctx) // waits for warmACME as long as ctx allows
	turnErr := s.turn.close()
	engErr := s.Engine.Close()
	var muxErr error
	if s.mux != nil {
		muxErr = s.mux.Close()
	}
	return errors.Join(waitErr, clusterErr, httpErr, pprofErr, acmeErr, turnErr, engErr, muxErr)
}

package signal

// Ownership: net/http runs ServeHTTP in one goroutine per socket, which
// becomes that Session's reader. mu guards the set of live sessions (for
// CloseAll); the counters are atomics.

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/roundtable-sfu/roundtable/internal/auth"
	"github.com/roundtable-sfu/roundtable/internal/stat"
	"github.com/roundtable-sfu/roundtable/room"
)

// Config configures the signaling server.
type Config struct {
	// ICEServers are handed to every client in "joined".
	ICEServers []ICEServer
	// AllowedOrigins lists extra Origins (scheme://host[:port]) allowed to
	// open a socket; the server's own origin is always allowed.
	AllowedOrigins []string
	// MaxMessage bounds one client frame in bytes (default 64 KiB).
	MaxMessage int64
	// JoinTimeout closes a socket that has not joined (default 10 s).
	JoinTimeout time.Duration
	// PingInterval between pings; a client silent for two intervals is
	// dropped (default 15 s).
	PingInterval time.Duration
	// WriteTimeout bounds one socket write (default 10 s).
	WriteTimeout time.Duration
	// MessageRate and MessageBurst limit each socket's messages (default
	// 50 a second, bursts of 200: a browser's ICE candidates come in
	// bursts); messages over it are dropped with error "rate_limited".
	MessageRate  float64
	MessageBurst int
	// Keys, when set, make join require a token signed with them
	// (docs/security.md); nil runs the server open.
	Keys *auth.Keys
}

func (c *Config) defaults() {
	if c.MessageRate == 0 {
		c.MessageRate = 50
	}
	if c.MessageBurst == 0 {
		c.MessageBurst = 200
	}
	if c.MaxMessage == 0 {
		c.MaxMessage = 64 << 10
	}
	if c.JoinTimeout == 0 {
		c.JoinTimeout = 10 * time.Second
	}
	if c.PingInterval == 0 {
		c.PingInterval = 15 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
}

// Stats are the signaling counters, read by package metrics.
type Stats struct {
	In       *stat.CounterSet // client messages by type ("invalid" for undecodable)
	Out      *stat.CounterSet // server messages by type
	Errors   *stat.CounterSet // error messages sent, by code
	JoinTime *stat.Histogram  // socket open -> PeerConnection connected
	Sessions atomic.Int64
}

// JoinBuckets are the join-time histogram's upper bounds, in seconds.
var JoinBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30}

// Server accepts WebSockets at its handler and runs one Session per socket.
type Server struct {
	rooms *room.Manager
	cfg   Config
	log   *slog.Logger
	stats *Stats
	up    websocket.Upgrader
	wg    sync.WaitGroup

	draining atomic.Bool // set once by Drain

	mu       sync.Mutex
	sessions map[*Session]struct{}
}

// NewServer returns a signaling server for rooms.
func NewServer(rooms *room.Manager, cfg Config, log *slog.Logger) *Server {
	cfg.defaults()
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		rooms: rooms, cfg: cfg, log: log,
		stats: &Stats{
			In:       stat.NewCounterSet("invalid", ClientTypes...),
			Out:      stat.NewCounterSet("other", ServerTypes...),
			Errors:   stat.NewCounterSet(CodeInternal, ErrorCodes...),
			JoinTime: stat.NewHistogram(JoinBuckets...),
		},
	}
	s.sessions = map[*Session]struct{}{}
	s.up = websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		CheckOrigin:     s.checkOrigin,
	}
	return s
}

// Stats returns the counters.
func (s *Server) Stats() *Stats { return s.stats }

// checkOrigin allows requests without an Origin (non-browser clients), from
// the server's own host, and from the configured origins.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return slices.ContainsFunc(s.cfg.AllowedOrigins, func(o string) bool { return strings.EqualFold(o, origin) })
}

// ServeHTTP upgrades the request and runs the session until it ends.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	conn, err := s.up.Upgrade(w, r, nil)
	if err != nil {
		s.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	s.wg.Add(1)
	defer s.wg.Done()
	s.stats.Sessions.Add(1)
	defer s.stats.Sessions.Add(-1)
	sess := newSession(s, conn, r.RemoteAddr)
	s.mu.Lock()
	s.sessions[sess] = struct{}{}
	s.mu.Unlock()
	sess.run()
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
}

// CloseParticipant sends bye with reason to the session of participant id
// and closes its socket; it reports whether such a session was open.
func (s *Server) CloseParticipant(id, reason string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess := range s.sessions {
		if p := sess.partID.Load(); p != nil && *p == id {
			sess.Close(reason)
			return true
		}
	}
	return false
}

// CloseAll sends bye with reason to every session and closes it.
func (s *Server) CloseAll(reason string) {
	s.mu.Lock()
	all := make([]*Session, 0, len(s.sessions))
	for sess := range s.sessions {
		all = append(all, sess)
	}
	s.mu.Unlock()
	for _, sess := range all {
		sess.Close(reason)
	}
}

// Drain refuses new sockets (HTTP 503) and joins on open ones (error
// "draining") from now on.
func (s *Server) Drain() { s.draining.Store(true) }

// Wait blocks until every session has ended or ctx is done.
func (s *Server) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

package signal

// Ownership: net/http runs ServeHTTP in one goroutine per socket, which
// becomes that Session's reader. mu guards the set of live sessions (for
// CloseAll) and the members by participant id (for resume and
// CloseParticipant), and orders Drain against new sockets: ServeHTTP
// checks draining and counts the socket in wg under mu, so every socket is
// either refused or counted before Wait starts; wg also counts the resume
// windows of detached members (member.go). The counters are atomics.

import (
	"context"
	"errors"
	"fmt"
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
	"github.com/roundtable-sfu/roundtable/sfu"
)

// Config configures the signaling server. It has no defaults of its own:
// internal/server.DefaultConfig holds them, and NewServer refuses a Config
// that fails Validate (a zero limit or timeout included).
type Config struct {
	// ICEServers returns the "iceServers" of one participant's "joined":
	// its id and the host (HTTP Host, port included when there is one) by
	// which it reached the server, so that minted TURN credentials and URLs
	// fit it. Nil: none.
	ICEServers func(participant, host string) []ICEServer
	// AllowedOrigins lists extra Origins (scheme://host[:port]) allowed to
	// open a socket; the server's own origin is always allowed.
	AllowedOrigins []string
	// MaxMessage bounds one client frame in bytes; a larger frame gets
	// "message_too_large" and ends the session.
	MaxMessage int64
	// JoinTimeout closes a socket that has not joined within it.
	JoinTimeout time.Duration
	// PingInterval between pings; a client silent for two intervals is
	// dropped.
	PingInterval time.Duration
	// WriteTimeout bounds one socket write.
	WriteTimeout time.Duration
	// MessageRate (messages per second) and MessageBurst limit each
	// socket's messages (a browser's ICE candidates come in bursts);
	// messages over it are dropped with error "rate_limited".
	MessageRate  float64
	MessageBurst int
	// Keys, when set, make join require a token signed with them
	// (docs/security.md); nil runs the server open.
	Keys *auth.Keys
	// ResumeWindow is how long a participant whose socket dropped stays in
	// its room, waiting for a resume (docs/protocol.md, "Resume"). Its
	// resume tokens last twice that plus three PingIntervals, and are
	// renewed every half window.
	ResumeWindow time.Duration
	// Cluster, when set, makes this server one node of a cluster (package
	// cluster): resume tokens are signed with the cluster's key, and a
	// resume for a participant of another node moves it here. Nil: one
	// node.
	Cluster Cluster
}

// Cluster is what signaling needs of a cluster (a *cluster.Node).
type Cluster interface {
	// ID is this node's id.
	ID() string
	// ResumeKey is the key every node signs resume tokens with.
	ResumeKey() []byte
	// Locate finds a participant in the directory: its node, whether that
	// node is alive, its room and what it joined with; ok false if the
	// directory does not know it (it left, or its record expired).
	Locate(ctx context.Context, participant string) (node string, alive bool, roomName string, e room.DirectoryEntry, ok bool, err error)
	// Release asks node to let participant go: it continues here.
	Release(node, participant string)
	// Target returns the base URL of the node a client of a draining node
	// should go to ("" none: the client's own URL, through its load
	// balancer).
	Target() string
	// NodeOrigin reports whether origin (scheme://host[:port]) is a live
	// node's own: its pages' sockets may come here.
	NodeOrigin(origin string) bool
	// Place says where a join for roomName goes: "" here, or another
	// node's base URL (a new room, and that node is less loaded); an
	// error (cluster.ErrOverloaded) when it cannot go anywhere.
	Place(roomName string) (string, error)
}

// Validate reports every value NewServer cannot run with: each limit and
// timeout must be positive, the burst at least one message.
func (c Config) Validate() error {
	var errs []error
	if c.MaxMessage <= 0 {
		errs = append(errs, fmt.Errorf("signal: max message %d bytes: want more than 0", c.MaxMessage))
	}
	if c.JoinTimeout <= 0 {
		errs = append(errs, fmt.Errorf("signal: join timeout %v: want more than 0", c.JoinTimeout))
	}
	if c.PingInterval <= 0 {
		errs = append(errs, fmt.Errorf("signal: ping interval %v: want more than 0", c.PingInterval))
	}
	if c.WriteTimeout <= 0 {
		errs = append(errs, fmt.Errorf("signal: write timeout %v: want more than 0", c.WriteTimeout))
	}
	if c.MessageRate <= 0 {
		errs = append(errs, fmt.Errorf("signal: message rate %v: want more than 0", c.MessageRate))
	}
	if c.ResumeWindow <= 0 {
		errs = append(errs, fmt.Errorf("signal: resume window %v: want more than 0", c.ResumeWindow))
	}
	if c.MessageBurst < 1 {
		errs = append(errs, fmt.Errorf("signal: message burst %d: want at least 1", c.MessageBurst))
	}
	return errors.Join(errs...)
}

// Stats are the signaling counters, read by package metrics.
type Stats struct {
	In     *stat.CounterSet // client messages by type ("invalid" for undecodable)
	Out    *stat.CounterSet // server messages by type
	Errors *stat.CounterSet // error messages sent, by code
	// JoinTime: socket open -> PeerConnection connected, by the path it
	// connected over (every sfu.Paths value has one).
	JoinTime map[sfu.Path]*stat.Histogram
	// ICEFailures counts error "ice_failed" by reason (sfu.FailReasons).
	ICEFailures *stat.CounterSet
	Sessions    atomic.Int64
	// Resumes counts resume attempts by result (ResumeResults).
	Resumes *stat.CounterSet
	// Detached is the number of participants whose socket dropped, now
	// waiting for a resume.
	Detached atomic.Int64
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

	resumer *resumeSigner

	mu       sync.Mutex
	sessions map[*Session]struct{}
	members  map[string]*member // by participant id, attached or detached
}

// NewServer returns a signaling server for rooms, or the errors of
// cfg.Validate.
func NewServer(rooms *room.Manager, cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		rooms: rooms, cfg: cfg, log: log,
		stats: &Stats{
			In:       stat.NewCounterSet("invalid", ClientTypes...),
			Out:      stat.NewCounterSet("other", ServerTypes...),
			Errors:   stat.NewCounterSet(CodeInternal, ErrorCodes...),
			JoinTime: map[sfu.Path]*stat.Histogram{},
			Resumes:  stat.NewCounterSet(ResumeInvalid, ResumeResults...),
		},
		members: map[string]*member{},
	}
	var err error
	// A token is at most half a window plus a ping interval old when the
	// socket drops (renewals go at pings), the drop is seen within two
	// ping intervals, and the window runs from then.
	var key []byte
	if cfg.Cluster != nil {
		key = cfg.Cluster.ResumeKey()
	}
	if s.resumer, err = newResumeSigner(2*cfg.ResumeWindow+3*cfg.PingInterval, key); err != nil {
		return nil, err
	}
	for _, p := range sfu.Paths() {
		s.stats.JoinTime[p] = stat.NewHistogram(JoinBuckets...)
	}
	reasons := make([]string, 0, len(sfu.FailReasons()))
	for _, r := range sfu.FailReasons() {
		reasons = append(reasons, string(r))
	}
	s.stats.ICEFailures = stat.NewCounterSet("other", reasons...)
	s.sessions = map[*Session]struct{}{}
	s.up = websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		CheckOrigin:     s.checkOrigin,
	}
	return s, nil
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
	if cl := s.cfg.Cluster; cl != nil && cl.NodeOrigin(origin) {
		return true // a page another node served (a redirect, a drain)
	}
	return slices.ContainsFunc(s.cfg.AllowedOrigins, func(o string) bool { return strings.EqualFold(o, origin) })
}

// ServeHTTP upgrades the request and runs the session until it ends.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	s.wg.Add(1) // before Drain returns, so before Wait
	s.mu.Unlock()
	defer s.wg.Done()
	conn, err := s.up.Upgrade(w, r, nil)
	if err != nil {
		s.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	s.stats.Sessions.Add(1)
	defer s.stats.Sessions.Add(-1)
	sess := newSession(s, conn, r.RemoteAddr, r.Host)
	s.mu.Lock()
	s.sessions[sess] = struct{}{}
	late := s.draining.Load() // drained during the upgrade: CloseAll may have run already
	s.mu.Unlock()
	if late {
		sess.Close("shutdown")
	}
	sess.run()
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
}

// CloseParticipant ends participant id: its session, if one is attached,
// gets bye with reason and closes; a detached participant leaves its room
// at once. It reports whether there was such a participant.
func (s *Server) CloseParticipant(id, reason string) bool {
	s.mu.Lock()
	m := s.members[id]
	s.mu.Unlock()
	if m == nil {
		return false
	}
	if reason == room.ReasonMoved && m.part != nil {
		m.part.SetMoving() // a reason set before (a failed write) must not hide it
	}
	m.Close(reason)
	return true
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
// "draining") from now on; a socket whose upgrade was under way gets bye
// "shutdown" at once.
func (s *Server) Drain() {
	s.mu.Lock()
	s.draining.Store(true)
	s.mu.Unlock()
}

// Reconnect tells every client, in a cluster, to move: each session gets
// "reconnect" with the base URL of the node to go to ("" none: its own
// URL), and its client resumes there (docs/protocol.md). Call it after
// Drain, which turns away their resumes here.
func (s *Server) Reconnect(url string) {
	s.mu.Lock()
	all := make([]*Session, 0, len(s.sessions))
	for sess := range s.sessions {
		all = append(all, sess)
	}
	s.mu.Unlock()
	for _, sess := range all {
		sess.send(TypeReconnect, reconnectMsg{Type: TypeReconnect, URL: url})
	}
}

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

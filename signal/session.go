package signal

// Ownership: run (the reader goroutine) owns the protocol state (part,
// mem) and every call into room and sfu; writeLoop owns every socket
// write and the resume-token renewals. Notify and Close may be called from
// any goroutine (the participant's member forwards room events to the
// session attached now) and only touch the out queue and the closing
// channel. The logger gains the participant's attributes at
// join, in the reader, while the writer and Notify's callers log too: it is
// an atomic pointer, never a plain field another goroutine reassigns.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/roundtable-sfu/roundtable/room"
)

const outQueueLen = 512

// Session is one client socket.
type Session struct {
	srv    *Server
	conn   *websocket.Conn
	log    atomic.Pointer[slog.Logger] // replaced by the reader at join; use logger()
	opened time.Time

	out       chan []byte
	closing   chan struct{}
	closeOnce sync.Once
	reason    atomic.Pointer[string]
	writerEnd chan struct{}

	part        *room.Participant // reader goroutine only
	mem         *member           // reader goroutine only; nil for a probe
	rate        *room.TokenBucket // reader goroutine only
	lastRateErr time.Time         // reader goroutine only
	probing     atomic.Bool       // set once, by probe
	host        string            // the HTTP Host the client reached the server by; set once
	// resumeFor is the room and participant the session's resume tokens
	// name, set at join or resume; tokenAt (Unix nanoseconds) is when the
	// last one was minted, for the writer's renewals.
	resumeFor atomic.Pointer[resumeClaims]
	tokenAt   atomic.Int64
	// lastRead is when the last frame or pong arrived (Unix nanoseconds);
	// pingNow asks the writer for a ping at once (silent).
	lastRead atomic.Int64
	pingNow  chan struct{}
}

func newSession(srv *Server, conn *websocket.Conn, remote, host string) *Session {
	s := &Session{
		srv: srv, conn: conn, opened: time.Now(), host: host,
		rate:      room.NewTokenBucket(srv.cfg.MessageRate, srv.cfg.MessageBurst, nil),
		out:       make(chan []byte, outQueueLen),
		closing:   make(chan struct{}),
		writerEnd: make(chan struct{}),
		pingNow:   make(chan struct{}, 1),
	}
	s.log.Store(srv.log.With("remote", remote))
	return s
}

// isProbe reports whether the session runs a connection check; any
// goroutine may call it.
func (s *Session) isProbe() bool { return s.probing.Load() }

// logger returns the session's logger; any goroutine may call it.
func (s *Session) logger() *slog.Logger { return s.log.Load() }

// addLogAttrs gives the session's logger more attributes. Reader only: it
// is the one goroutine that replaces the logger.
func (s *Session) addLogAttrs(args ...any) { s.log.Store(s.logger().With(args...)) }

func (s *Session) run() {
	go s.writeLoop()
	s.conn.SetPongHandler(func(string) error {
		s.lastRead.Store(time.Now().UnixNano())
		return s.conn.SetReadDeadline(time.Now().Add(2 * s.srv.cfg.PingInterval))
	})
	_ = s.conn.SetReadDeadline(time.Now().Add(s.srv.cfg.JoinTimeout))
	reason := "closed"
	for {
		mt, data, err := s.readFrame()
		if err != nil {
			var closed *websocket.CloseError
			switch {
			case errors.Is(err, errFrameTooLarge):
				s.sendError(CodeMessageTooBig, fmt.Sprintf("frame exceeds %d bytes", s.srv.cfg.MaxMessage))
				reason = "message_too_large"
			case errors.As(err, &closed) && closed.Code != websocket.CloseAbnormalClosure:
				// A close frame, with any code or none (1005): the client
				// closed on purpose. 1006 is gorilla's name for no frame.
				reason = "closed"
			default:
				reason = "disconnected"
			}
			break
		}
		s.lastRead.Store(time.Now().UnixNano())
		if mt != websocket.TextMessage {
			s.srv.stats.In.Add("invalid")
			s.sendError(CodeBadMessage, "binary frames are not part of the protocol")
			continue
		}
		if !s.rate.Allow() {
			// Over the per-socket rate: dropped, with one error a second.
			s.srv.stats.In.Add("rate_limited")
			if now := time.Now(); now.Sub(s.lastRateErr) >= time.Second {
				s.lastRateErr = now
				s.sendError(CodeRateLimited, fmt.Sprintf("more than %.0f messages a second: message dropped", s.srv.cfg.MessageRate))
			}
			continue
		}
		msg, err := Decode(data)
		if err != nil {
			s.srv.stats.In.Add("invalid")
			s.sendError(decodeErrorCode(err), err.Error())
			continue
		}
		s.srv.stats.In.Add(msg.Type)
		if done := s.handle(msg); done {
			reason = "left"
			break
		}
	}
	if r := s.reason.Load(); r != nil {
		reason = *r
	}
	switch {
	case s.part != nil && s.part.IsProbe():
		s.srv.rooms.EndProbe(s.part)
	case s.mem != nil && (reason == "disconnected" || reason == "write_failed"):
		// The socket dropped (no close frame, a read or write that
		// failed, pings unanswered): the participant waits for a resume.
		s.mem.detach(s, reason)
	case s.mem != nil:
		s.mem.end(s, reason)
	}
	s.Close(reason)
	<-s.writerEnd
}

// errFrameTooLarge: a client frame over Config.MaxMessage.
var errFrameTooLarge = errors.New("signal: frame too large")

// readFrame reads one frame of at most Config.MaxMessage bytes. A larger
// one gives errFrameTooLarge, so that the client gets error and bye
// "message_too_large" before the socket closes (gorilla's own read limit
// would close it at once with status 1009). The rest of the frame is read
// and dropped first, up to discardLimit bytes for discardTime: closing a
// socket with unread data resets it, and the client would lose the bye.
func (s *Session) readFrame() (int, []byte, error) {
	mt, r, err := s.conn.NextReader()
	if err != nil {
		return 0, nil, err
	}
	data, err := io.ReadAll(io.LimitReader(r, s.srv.cfg.MaxMessage+1))
	if err != nil {
		return 0, nil, err
	}
	if int64(len(data)) > s.srv.cfg.MaxMessage {
		_ = s.conn.SetReadDeadline(time.Now().Add(discardTime))
		_, _ = io.Copy(io.Discard, io.LimitReader(r, discardLimit))
		return 0, nil, errFrameTooLarge
	}
	return mt, data, nil
}

// What is read and dropped of an oversize frame before the socket closes.
const (
	discardLimit = 64 << 20
	discardTime  = 2 * time.Second
)

// handle runs one client message; it returns true when the session ends.
func (s *Session) handle(m Inbound) bool {
	switch m.Type {
	case TypeJoin:
		s.join(m)
		return false
	case TypeProbe:
		s.probe(m)
		return false
	case TypeResume:
		s.resume(m)
		return false
	}
	if s.part == nil {
		s.sendError(CodeNotJoined, "send join first")
		return false
	}
	if s.part.IsProbe() && m.Type != TypeOffer && m.Type != TypeCandidate && m.Type != TypeLeave {
		s.sendError(CodeNotJoined, m.Type+" needs join, not probe")
		return false
	}
	peer := s.part.Peer()
	var err error
	switch m.Type {
	case TypeOffer:
		err = peer.HandleOffer(m.SDP)
	case TypeAnswer:
		err = peer.HandleAnswer(m.SDP)
	case TypeCandidate:
		err = peer.HandleCandidate(*m.Candidate)
	case TypeTrackUpdate:
		err = s.srv.rooms.UpdateTrack(s.part, m.Track, room.TrackMeta{Source: m.Source, Muted: m.Muted})
	case TypeViewport:
		err = s.srv.rooms.SetViewport(s.part, m.Track, m.Width, m.Height, *m.Visible)
	case TypeLeave:
		s.setReason("left")
		return true
	}
	if err != nil {
		s.sendError(errorCode(err), err.Error())
	}
	return false
}

// probe starts a connection check: a PeerConnection in no room
// (room.Manager.Probe). With keys, it needs a token for m.Room, like join.
func (s *Session) probe(m Inbound) {
	if s.part != nil {
		s.sendError(CodeAlreadyJoined, "probe or join may be sent once")
		return
	}
	if s.srv.draining.Load() {
		s.sendError(CodeDraining, "the server is draining")
		return
	}
	if k := s.srv.cfg.Keys; k != nil {
		if _, err := k.Check(m.Token, m.Room, time.Now()); err != nil {
			s.sendError(errorCode(err), err.Error())
			return
		}
	}
	s.probing.Store(true) // before the Peer exists: its events come as a probe's
	p, err := s.srv.rooms.Probe(s, m.Transport)
	if err != nil {
		s.probing.Store(false)
		s.sendError(errorCode(err), err.Error())
		return
	}
	s.part = p
	id := p.ID()
	s.addLogAttrs("probe", id, "transport", m.Transport)
	_ = s.conn.SetReadDeadline(time.Now().Add(2 * s.srv.cfg.PingInterval))
	var ice []ICEServer
	if s.srv.cfg.ICEServers != nil {
		ice = s.srv.cfg.ICEServers(id, s.host)
	}
	if ice == nil {
		ice = []ICEServer{}
	}
	s.send(TypeProbeReady, probeReadyMsg{Type: TypeProbeReady, ICEServers: ice})
}

func (s *Session) join(m Inbound) {
	if s.part != nil {
		s.sendError(CodeAlreadyJoined, "join may be sent once")
		return
	}
	if s.srv.draining.Load() {
		s.refuseDraining()
		return
	}
	who := room.Member{Name: m.Name, Perm: room.AllowAll}
	if k := s.srv.cfg.Keys; k != nil {
		c, err := k.Check(m.Token, m.Room, time.Now())
		if err != nil {
			s.logger().Info("join refused", "room", m.Room, "err", err)
			s.sendError(errorCode(err), err.Error())
			return
		}
		if c.Name != "" {
			who.Name = c.Name
		}
		who.Identity = c.Subject
		who.Perm = room.Permissions{Publish: c.Grants.Publish, Subscribe: c.Grants.Subscribe, PublishData: c.Grants.PublishData}
		s.addLogAttrs("identity", c.Subject)
	}
	if cl := s.srv.cfg.Cluster; cl != nil {
		url, err := cl.Place(m.Room)
		if err != nil {
			s.logger().Info("join refused", "room", m.Room, "err", err)
			s.sendError(CodeOverloaded, err.Error())
			return
		}
		if url != "" {
			s.logger().Info("join redirected", "room", m.Room, "to", url)
			s.send(TypeReconnect, reconnectMsg{Type: TypeReconnect, URL: url})
			return
		}
	}
	mem := &member{srv: s.srv, sess: s}
	p, err := s.srv.rooms.Join(m.Room, who, mem)
	if err != nil {
		s.sendError(errorCode(err), err.Error())
		return
	}
	mem.mu.Lock()
	mem.part = p
	mem.mu.Unlock()
	s.srv.mu.Lock()
	s.srv.members[p.ID()] = mem
	s.srv.mu.Unlock()
	s.part, s.mem = p, mem
	s.addLogAttrs("participant", p.ID(), "room", p.Room())
	_ = s.conn.SetReadDeadline(time.Now().Add(2 * s.srv.cfg.PingInterval))
}

// Notify implements room.Client: encode and queue; never blocks.
func (s *Session) Notify(ev room.Event) {
	switch ev := ev.(type) {
	case room.Connected:
		if s.isProbe() {
			s.send(TypeProbeResult, probeResultMsg{Type: TypeProbeResult, Connected: true, Path: string(ev.Path)})
			s.Close("probe_done")
			return
		}
		if h := s.srv.stats.JoinTime[ev.Path]; h != nil {
			h.Observe(time.Since(s.opened))
		}
		return
	case room.ICEFailed:
		if s.isProbe() { // a check that fails is a result, not an incident
			s.send(TypeProbeResult, probeResultMsg{Type: TypeProbeResult, Reason: string(ev.Reason)})
			return
		}
		s.srv.stats.ICEFailures.Add(string(ev.Reason))
		s.srv.stats.Errors.Add(CodeICEFailed)
		s.send(TypeError, errorMsg{Type: TypeError, Code: CodeICEFailed, Reason: string(ev.Reason),
			Message: "the media connection failed: " + ev.Reason.Explain()})
		return
	case room.Error:
		s.sendError(errorCode(ev.Err), ev.Err.Error())
		return
	}
	typ, v := s.encodeEvent(ev)
	s.send(typ, v)
}

func (s *Session) sendError(code, msg string) {
	s.srv.stats.Errors.Add(code)
	s.logger().Debug("signaling error", "code", code, "message", msg)
	s.send(TypeError, errorMsg{Type: TypeError, Code: code, Message: msg})
}

func (s *Session) send(typ string, v any) {
	if v == nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		s.logger().Error("encode message", "type", typ, "err", err)
		return
	}
	select {
	case <-s.closing:
		return
	default:
	}
	select {
	case s.out <- b:
		s.srv.stats.Out.Add(typ)
	default:
		// The client does not read: it cannot follow the room any more.
		s.srv.stats.Errors.Add(CodeSlowClient)
		s.Close(CodeSlowClient)
	}
}

// silent reports whether nothing (no frame, no pong) arrived since t; if
// so it has the writer ping the client at once, so that a live client
// answers soon. Any goroutine.
func (s *Session) silent(t time.Time) bool {
	if s.lastRead.Load() > t.UnixNano() {
		return false
	}
	select {
	case s.pingNow <- struct{}{}:
	default:
	}
	return true
}

func (s *Session) setReason(r string) { s.reason.CompareAndSwap(nil, &r) }

// Close implements room.Client: send "bye" with reason and close the
// socket. It returns at once; the reader then leaves the room.
func (s *Session) Close(reason string) {
	s.setReason(reason)
	s.closeOnce.Do(func() { close(s.closing) })
}

func (s *Session) writeLoop() {
	defer close(s.writerEnd)
	defer s.conn.Close()
	ping := time.NewTicker(s.srv.cfg.PingInterval)
	defer ping.Stop()
	wt := s.srv.cfg.WriteTimeout
	for {
		select {
		case b := <-s.out:
			_ = s.conn.SetWriteDeadline(time.Now().Add(wt))
			if err := s.conn.WriteMessage(websocket.TextMessage, b); err != nil {
				s.Close("write_failed")
				return
			}
		case <-ping.C:
			s.renewResumeToken()
			if err := s.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(wt)); err != nil {
				s.Close("write_failed")
				return
			}
		case <-s.pingNow:
			if err := s.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(wt)); err != nil {
				s.Close("write_failed")
				return
			}
		case <-s.closing:
			s.flushAndBye(wt)
			return
		}
	}
}

// flushAndBye writes what is queued, then "bye" and a close frame.
func (s *Session) flushAndBye(wt time.Duration) {
	deadline := time.Now().Add(wt)
	_ = s.conn.SetWriteDeadline(deadline)
	for {
		select {
		case b := <-s.out:
			if s.conn.WriteMessage(websocket.TextMessage, b) != nil {
				return
			}
			continue
		default:
		}
		break
	}
	reason := "closed"
	if r := s.reason.Load(); r != nil {
		reason = *r
	}
	if b, err := json.Marshal(byeMsg{Type: TypeBye, Reason: reason}); err == nil {
		if s.conn.WriteMessage(websocket.TextMessage, b) == nil {
			s.srv.stats.Out.Add(TypeBye)
		}
	}
	_ = s.conn.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, reason), deadline)
	s.logger().Debug("session closed", "reason", reason)
}

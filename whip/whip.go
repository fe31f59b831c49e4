// Package whip serves WHIP, the WebRTC-HTTP ingestion protocol (RFC 9725),
// and WHEP, its egress twin (draft-ietf-wish-whep): an encoder (OBS,
// GStreamer, a hardware box) POSTs an SDP offer to /whip/{room} and
// publishes into the room as a participant that everyone sees and hears; a
// player POSTs one to /whep/{room} (or /whep/{room}/{participant}) and
// receives one audio and one video track, the active speaker's (or that
// participant's). The answer carries the server's candidates, the Location
// header names the session, PATCH trickles candidates or restarts ICE, and
// DELETE ends it. The two differ only in the grant a token needs and in
// how the session joins the room (room.Manager.Join, room.Manager.Watch).
//
// Ownership: the Handler's mutex guards its session table and each
// session's participant (set once Join returns). A session is a
// room.Client: room and sfu goroutines call Notify and Close; its pending
// answer channel is written by Notify and read by the request that posted
// the offer (one at a time, under the session's own mutex). Nothing here
// runs a goroutine of its own.
package whip

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/internal/auth"
	"github.com/roundtable-sfu/roundtable/room"
	"github.com/roundtable-sfu/roundtable/sfu"
	"github.com/roundtable-sfu/roundtable/signal"
)

// Prefix is where WHIP is served; PlaybackPrefix WHEP.
const (
	Prefix         = "/whip/"
	PlaybackPrefix = "/whep/"
)

// Media types of RFC 9725.
const (
	typeSDP     = "application/sdp"
	typeSDPFrag = "application/trickle-ice-sdpfrag" // RFC 8840
)

// Limits of a request.
const (
	maxSDP        = 64 << 10 // bytes of an offer or fragment
	answerTimeout = 10 * time.Second
)

// Config is what the Handler needs from the server.
type Config struct {
	// Keys verify bearer join tokens (publish grant); nil: an open server,
	// where anyone may publish (allowed on loopback only, as joins are).
	Keys *auth.Keys
	// ICEServers gives a new session's STUN/TURN servers (Link headers),
	// as for a WebSocket join: the participant id and the host the client
	// used. Nil: none.
	ICEServers func(participant, host string) []signal.ICEServer
	// Draining reports whether the server takes no new sessions.
	Draining func() bool
}

// Handler serves /whip/ or /whep/.
type Handler struct {
	rooms  *room.Manager
	cfg    Config
	log    *slog.Logger
	whep   bool   // a WHEP handler (NewWHEP)
	prefix string // Prefix or PlaybackPrefix
	proto  string // "whip" or "whep", for messages and logs

	mu       sync.Mutex
	sessions map[string]*session // by id (the Location's last segment)
}

// New returns the WHIP handler of rooms, served at Prefix.
func New(rooms *room.Manager, cfg Config, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	return &Handler{rooms: rooms, cfg: cfg, log: log, prefix: Prefix, proto: "whip", sessions: map[string]*session{}}
}

// NewWHEP returns the WHEP handler of rooms, served at PlaybackPrefix:
// POST /whep/{room} plays the active speaker, /whep/{room}/{participant}
// one participant (by id or identity); a session is
// /whep/{room}/session/{id}. A bearer token needs the subscribe grant.
func NewWHEP(rooms *room.Manager, cfg Config, log *slog.Logger) *Handler {
	h := New(rooms, cfg, log)
	h.whep, h.prefix, h.proto = true, PlaybackPrefix, "whep"
	return h
}

// Sessions returns how many WHIP sessions exist now.
func (h *Handler) Sessions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

// States counts the sessions whose media has connected and those still
// connecting.
func (h *Handler) States() (connecting, connected int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.sessions {
		if s.part != nil && s.part.Connected() {
			connected++
		} else {
			connecting++
		}
	}
	return connecting, connected
}

// ServeHTTP routes /whip/{room} (POST, OPTIONS) and /whip/{room}/{session}
// (PATCH, DELETE, OPTIONS); for WHEP /whep/{room} and
// /whep/{room}/{participant} (POST, OPTIONS) and
// /whep/{room}/session/{session} (PATCH, DELETE, OPTIONS).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cors(w)
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, h.prefix), "/")
	if slices.Contains(parts, "") {
		http.NotFound(w, r)
		return
	}
	var roomName, target, id string
	switch {
	case len(parts) == 1:
		roomName = parts[0]
	case h.whep && len(parts) == 2:
		roomName, target = parts[0], parts[1]
	case h.whep && len(parts) == 3 && parts[1] == "session":
		roomName, id = parts[0], parts[2]
	case !h.whep && len(parts) == 2:
		roomName, id = parts[0], parts[1]
	default:
		http.NotFound(w, r)
		return
	}
	switch {
	case id == "":
		switch r.Method {
		case http.MethodPost:
			h.post(w, r, roomName, target)
		case http.MethodOptions:
			w.Header().Set("Accept-Post", typeSDP)
			w.Header().Set("Allow", "POST, OPTIONS")
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Header().Set("Allow", "POST, OPTIONS")
			http.Error(w, "POST an SDP offer here", http.StatusMethodNotAllowed)
		}
	default:
		s := h.session(roomName, id)
		if s == nil && r.Method != http.MethodOptions {
			http.Error(w, "no such "+strings.ToUpper(h.proto)+" session", http.StatusNotFound)
			return
		}
		switch r.Method {
		case http.MethodPatch:
			h.patch(w, r, s)
		case http.MethodDelete:
			if !h.authorized(w, r, s) {
				return
			}
			s.end("left")
			w.WriteHeader(http.StatusOK)
		case http.MethodOptions:
			w.Header().Set("Accept-Patch", typeSDPFrag)
			w.Header().Set("Allow", "PATCH, DELETE, OPTIONS")
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Header().Set("Allow", "PATCH, DELETE, OPTIONS")
			http.Error(w, "PATCH or DELETE the session", http.StatusMethodNotAllowed)
		}
	}
}

// cors lets a WHIP client in a web page call from another origin (RFC
// 9725 §4.1 expects it): the session URL and the ETag are readable, and
// Authorization may be sent.
func cors(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "POST, PATCH, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
	h.Set("Access-Control-Expose-Headers", "Location, Link, ETag, Accept-Post, Accept-Patch")
}

// post creates a session from an offer: 201 with the answer. target is
// the participant a WHEP viewer watches ("" the active speaker).
func (h *Handler) post(w http.ResponseWriter, r *http.Request, roomName, target string) {
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); !strings.EqualFold(strings.TrimSpace(ct), typeSDP) {
		http.Error(w, "the offer must be "+typeSDP, http.StatusUnsupportedMediaType)
		return
	}
	if h.cfg.Draining != nil && h.cfg.Draining() {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "the server is draining", http.StatusServiceUnavailable)
		return
	}
	offer, err := readBody(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	q := r.URL.Query()
	who := room.Member{Name: q.Get("name"), Perm: room.Permissions{Publish: true}}
	if who.Name == "" {
		who.Name = strings.ToUpper(h.proto)
	}
	listed := q.Get("listed") == "1" // an open server's viewer asks
	if k := h.cfg.Keys; k != nil {
		c, err := k.Check(bearer(r), roomName, time.Now())
		if err != nil {
			code := http.StatusUnauthorized
			if errors.Is(err, auth.ErrWrongRoom) || errors.Is(err, auth.ErrNoGrants) {
				code = http.StatusForbidden // a valid token that does not allow this (RFC 9110 §15.5.4)
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+h.proto+`"`)
			http.Error(w, err.Error(), code)
			return
		}
		if h.whep && !c.Grants.Subscribe {
			http.Error(w, "the token has no subscribe grant", http.StatusForbidden)
			return
		}
		if !h.whep && !c.Grants.Publish {
			http.Error(w, "the token has no publish grant", http.StatusForbidden)
			return
		}
		if c.Name != "" {
			who.Name = c.Name
		}
		who.Identity = c.Subject
		who.Perm.PublishData = c.Grants.PublishData
		listed = c.Grants.Listed
	}
	who.CandidatesInAnswer = true // RFC 9725: the server does not trickle
	s := &session{h: h, room: roomName, identity: who.Identity, answers: make(chan answer, 1)}
	var p *room.Participant
	if h.whep {
		if target != "" && !h.rooms.HasMember(roomName, target) {
			http.Error(w, fmt.Sprintf("no participant %q in room %q", target, roomName), http.StatusNotFound)
			return
		}
		p, err = h.rooms.Watch(roomName, who, target, listed, s)
	} else {
		p, err = h.rooms.Join(roomName, who, s)
	}
	if err != nil {
		http.Error(w, err.Error(), joinStatus(err))
		return
	}
	h.mu.Lock() // also orders s.part and s.id before end's reads
	s.part, s.id = p, p.ID()
	h.sessions[s.id] = s
	h.mu.Unlock()
	sdp, err := s.negotiate(r.Context(), func() error { return p.Peer().HandleOffer(offer) })
	if err != nil {
		s.end("bad_offer")
		http.Error(w, err.Error(), offerStatus(err))
		return
	}
	if f := h.cfg.ICEServers; f != nil {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		for _, ice := range f(s.id, host) {
			for _, u := range ice.URLs {
				w.Header().Add("Link", linkHeader(u, ice.Username, ice.Credential))
			}
		}
	}
	w.Header().Set("Location", h.location(roomName, s.id))
	w.Header().Set("ETag", `"`+s.id+`"`)
	w.Header().Set("Content-Type", typeSDP)
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, sdp)
	h.log.Info(h.proto+" session", "room", roomName, "participant", s.id, "name", p.Name(), "watching", target)
}

// location is a session's URL path.
func (h *Handler) location(roomName, id string) string {
	if h.whep {
		return h.prefix + roomName + "/session/" + id
	}
	return h.prefix + roomName + "/" + id
}

// patch takes trickled candidates (204) or an ICE restart (200 with the
// server's new credentials and candidates), RFC 9725 §4.3.
func (h *Handler) patch(w http.ResponseWriter, r *http.Request, s *session) {
	if !h.authorized(w, r, s) {
		return
	}
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); !strings.EqualFold(strings.TrimSpace(ct), typeSDPFrag) {
		http.Error(w, "a PATCH must be "+typeSDPFrag, http.StatusUnsupportedMediaType)
		return
	}
	body, err := readBody(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	frag := parseFrag(body)
	remote := s.part.Peer().RemoteSDP()
	if frag.ufrag != "" && remote != "" && !strings.Contains(remote, "a=ice-ufrag:"+frag.ufrag+"\r\n") {
		// New credentials: an ICE restart. The offer is the session's
		// with the new ones and no old candidates; the answer's
		// credentials and candidates go back as a fragment.
		if frag.pwd == "" {
			http.Error(w, "an ICE restart needs a=ice-pwd", http.StatusBadRequest)
			return
		}
		offer := restartOffer(remote, frag)
		sdp, err := s.negotiate(r.Context(), func() error { return s.part.Peer().HandleOffer(offer) })
		if err != nil {
			http.Error(w, err.Error(), offerStatus(err))
			return
		}
		if err := s.addCandidates(frag); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", typeSDPFrag)
		w.Header().Set("ETag", `"`+s.id+`"`)
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, answerFrag(sdp))
		return
	}
	if err := s.addCandidates(frag); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// authorized checks a request on a session: with tokens, a valid token
// for the room of the identity that created it (a renewed token works).
func (h *Handler) authorized(w http.ResponseWriter, r *http.Request, s *session) bool {
	k := h.cfg.Keys
	if k == nil {
		return true
	}
	if c, err := k.Check(bearer(r), s.room, time.Now()); err == nil && c.Subject == s.identity {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="`+h.proto+`"`)
	http.Error(w, "not a token of this session's identity", http.StatusUnauthorized)
	return false
}

func (h *Handler) session(roomName, id string) *session {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.sessions[id]; s != nil && s.room == roomName {
		return s
	}
	return nil
}

// session is one WHIP publisher: a room participant without a signaling
// socket.
type session struct {
	h        *Handler
	room     string
	identity string // the token's subject ("" on an open server)
	id       string
	part     *room.Participant

	negMu   sync.Mutex  // one offer at a time
	answers chan answer // the Peer's answer (or refusal) to the offer in flight
	once    sync.Once
}

type answer struct {
	sdp string
	err error
}

// negotiate hands an offer to the Peer and waits for its answer.
func (s *session) negotiate(ctx context.Context, offer func() error) (string, error) {
	s.negMu.Lock()
	defer s.negMu.Unlock()
	for len(s.answers) > 0 { // a stale one, from an offer given up on
		<-s.answers
	}
	if err := offer(); err != nil {
		return "", err
	}
	t := time.NewTimer(answerTimeout)
	defer t.Stop()
	select {
	case a := <-s.answers:
		return a.sdp, a.err
	case <-t.C:
		return "", errors.New(s.h.proto + ": no answer in time")
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (s *session) addCandidates(f frag) error {
	for _, c := range f.candidates {
		if err := s.part.Peer().HandleCandidate(c); err != nil {
			return fmt.Errorf("%s: candidate: %w", s.h.proto, err)
		}
	}
	return nil
}

// Notify implements room.Client: the answer goes to the waiting request;
// a WHIP client hears nothing else (it subscribes to nothing, so the
// server never offers).
func (s *session) Notify(ev room.Event) {
	switch ev := ev.(type) {
	case room.Signal:
		if ev.Kind == sfu.SignalAnswer {
			s.deliver(answer{sdp: ev.SDP})
		}
	case room.Error:
		if errors.Is(ev.Err, sfu.ErrBadSDP) || errors.Is(ev.Err, sfu.ErrNegotiationFailed) {
			s.deliver(answer{err: ev.Err})
		}
	case room.ICEFailed:
		s.h.log.Info(s.h.proto+" session failed", "participant", s.id, "reason", ev.Reason)
	}
}

func (s *session) deliver(a answer) {
	select {
	case s.answers <- a:
	default: // nobody waits (an error after the answer): dropped
	}
}

// Close implements room.Client: the session ends (connect timeout, ICE
// failure, removed by an operator, the room closed, the server draining).
func (s *session) Close(reason string) { s.end(reason) }

// end leaves the room once.
func (s *session) end(reason string) {
	s.once.Do(func() {
		s.h.mu.Lock()
		part := s.part
		if part != nil && s.h.sessions[s.id] == s {
			delete(s.h.sessions, s.id)
		}
		s.h.mu.Unlock()
		if part != nil {
			go s.h.rooms.Leave(part, reason) // Close may be called under room locks
		}
	})
}

// readBody reads at most maxSDP bytes.
func readBody(r *http.Request) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxSDP+1))
	if err != nil {
		return "", fmt.Errorf("read: %w", err)
	}
	if len(b) > maxSDP {
		return "", fmt.Errorf("body over %d bytes", maxSDP)
	}
	return string(b), nil
}

func bearer(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// linkHeader is one ICE server as RFC 9725 §4.6 writes it.
func linkHeader(url, user, cred string) string {
	l := "<" + url + `>; rel="ice-server"`
	if user != "" {
		l += fmt.Sprintf(`; username=%q; credential=%q; credential-type="password"`, user, cred)
	}
	return l
}

// joinStatus maps a refused join to an HTTP status.
func joinStatus(err error) int {
	switch {
	case errors.Is(err, room.ErrBadRoomName), errors.Is(err, room.ErrBadName):
		return http.StatusBadRequest
	case errors.Is(err, room.ErrRoomFull), errors.Is(err, room.ErrTooManyRooms), errors.Is(err, room.ErrClosed):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// offerStatus maps a refused offer to an HTTP status.
func offerStatus(err error) int {
	if errors.Is(err, sfu.ErrBadSDP) || errors.Is(err, sfu.ErrNegotiationFailed) {
		return http.StatusBadRequest
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// frag is what a trickle-ice-sdpfrag (RFC 8840) says.
type frag struct {
	ufrag, pwd string
	candidates []webrtc.ICECandidateInit
}

// parseFrag reads the session-level credentials and each media section's
// candidates (by a=mid, else by the m-line's index).
func parseFrag(body string) frag {
	var f frag
	mid, index := "", -1
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			f.ufrag = strings.TrimPrefix(line, "a=ice-ufrag:")
		case strings.HasPrefix(line, "a=ice-pwd:"):
			f.pwd = strings.TrimPrefix(line, "a=ice-pwd:")
		case strings.HasPrefix(line, "m="):
			index++
			mid = ""
		case strings.HasPrefix(line, "a=mid:"):
			mid = strings.TrimPrefix(line, "a=mid:")
		case strings.HasPrefix(line, "a=candidate:"):
			c := webrtc.ICECandidateInit{Candidate: strings.TrimPrefix(line, "a=")}
			if mid != "" {
				m := mid
				c.SDPMid = &m
			} else if index >= 0 {
				i := uint16(index)
				c.SDPMLineIndex = &i
			}
			f.candidates = append(f.candidates, c)
		}
	}
	return f
}

// restartOffer is the session's offer again with the fragment's ICE
// credentials, without candidates (they come in the fragment).
func restartOffer(remote string, f frag) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(remote, "\r\n"), "\r\n") {
		switch {
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			line = "a=ice-ufrag:" + f.ufrag
		case strings.HasPrefix(line, "a=ice-pwd:"):
			line = "a=ice-pwd:" + f.pwd
		case strings.HasPrefix(line, "a=candidate:"), strings.HasPrefix(line, "a=end-of-candidates"):
			continue
		}
		b.WriteString(line + "\r\n")
	}
	return b.String()
}

// answerFrag is the ICE part of an answer as a fragment (RFC 8840): its
// credentials, then each media section's m-line, mid and candidates.
func answerFrag(sdp string) string {
	var ufrag, pwd string
	var media strings.Builder
	for _, line := range strings.Split(sdp, "\r\n") {
		switch {
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			if ufrag == "" {
				ufrag = line
			}
		case strings.HasPrefix(line, "a=ice-pwd:"):
			if pwd == "" {
				pwd = line
			}
		case strings.HasPrefix(line, "m="), strings.HasPrefix(line, "a=mid:"), strings.HasPrefix(line, "a=candidate:"),
			line == "a=end-of-candidates":
			media.WriteString(line + "\r\n")
		}
	}
	return ufrag + "\r\n" + pwd + "\r\n" + media.String()
}

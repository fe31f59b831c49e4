package signal

// Resume tokens (docs/protocol.md, "Resume"). A resumeSigner is immutable
// after newResumeSigner; any goroutine may mint and check.

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/roundtable-sfu/roundtable/room"
)

// Reasons a resume fails; each is a value of the resumes metric's result
// label and the "reason" of error "resume_failed".
const (
	ResumeOK        = "ok"
	ResumeInvalid   = "invalid"    // not a token this server process signed (forged, malformed, or from before a restart)
	ResumeExpired   = "expired"    // past its expiry
	ResumeWrongRoom = "wrong_room" // the resume names another room than the token's
	ResumeGone      = "gone"       // the participant left, or its resume window ran out
)

// ResumeResults lists every result label, for metrics.
var ResumeResults = []string{ResumeOK, ResumeInvalid, ResumeExpired, ResumeWrongRoom, ResumeGone}

// resumeError is a refused resume; reason is one of the Resume* reasons.
type resumeError struct{ reason, msg string }

func (e *resumeError) Error() string { return "resume refused: " + e.msg }

// resumeSigner mints and checks resume tokens: HMAC-SHA256 (RFC 2104) over
// {"r": room, "p": participant id, "e": expiry in Unix milliseconds}, with a
// key drawn from crypto/rand when the server starts, so a restart
// invalidates every token; in a cluster, with the cluster's key (from
// Redis), so that any node can take any node's participant back. The token is base64url(payload) "."
// base64url(MAC), unpadded.
type resumeSigner struct {
	key [32]byte
	ttl time.Duration
}

type resumeClaims struct {
	Room        string `json:"r"`
	Participant string `json:"p"`
	Expiry      int64  `json:"e"`
}

// newResumeSigner returns a signer with key (a cluster's, shared by every
// node: at least 32 bytes), or with a random one when key is nil.
func newResumeSigner(ttl time.Duration, key []byte) (*resumeSigner, error) {
	s := &resumeSigner{ttl: ttl}
	if key != nil {
		if len(key) < len(s.key) {
			return nil, fmt.Errorf("signal: resume key of %d bytes: want at least %d", len(key), len(s.key))
		}
		s.key = sha256.Sum256(key)
		return s, nil
	}
	if _, err := rand.Read(s.key[:]); err != nil {
		return nil, fmt.Errorf("signal: resume key: %w", err)
	}
	return s, nil
}

func (s *resumeSigner) mac(payload string) []byte {
	h := hmac.New(sha256.New, s.key[:])
	h.Write([]byte(payload))
	return h.Sum(nil)
}

// mint returns a token for participant id of room, valid for ttl from now.
func (s *resumeSigner) mint(room, id string, now time.Time) string {
	b, _ := json.Marshal(resumeClaims{Room: room, Participant: id, Expiry: now.Add(s.ttl).UnixMilli()})
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + base64.RawURLEncoding.EncodeToString(s.mac(payload))
}

// check verifies a token's signature and expiry and returns its claims,
// or a *resumeError with ResumeInvalid or ResumeExpired.
func (s *resumeSigner) check(tok string, now time.Time) (resumeClaims, error) {
	var c resumeClaims
	payload, sig, ok := strings.Cut(tok, ".")
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if !ok || err != nil || !hmac.Equal(mac, s.mac(payload)) {
		return c, &resumeError{ResumeInvalid, "the token is not one this server issued (a server restart invalidates them)"}
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || json.Unmarshal(b, &c) != nil || c.Participant == "" {
		return c, &resumeError{ResumeInvalid, "malformed token"}
	}
	if now.UnixMilli() >= c.Expiry {
		return c, &resumeError{ResumeExpired, "the token expired"}
	}
	return c, nil
}

// resumeReason returns the Resume* reason of a refused resume.
func resumeReason(err error) string {
	var re *resumeError
	if errors.As(err, &re) {
		return re.reason
	}
	return ResumeGone
}

// mintResumeToken returns a token for participant id of roomName and
// notes it for renewals. Any goroutine.
func (s *Session) mintResumeToken(roomName, id string) string {
	now := time.Now()
	s.resumeFor.Store(&resumeClaims{Room: roomName, Participant: id})
	s.tokenAt.Store(now.UnixNano())
	return s.srv.resumer.mint(roomName, id, now)
}

// renewResumeToken queues a "resume-token" once the last token is half a
// window old. The writer calls it at each ping.
func (s *Session) renewResumeToken() {
	c := s.resumeFor.Load()
	if c == nil || c.Participant == "" || time.Since(time.Unix(0, s.tokenAt.Load())) < s.srv.cfg.ResumeWindow/2 {
		return
	}
	s.send(TypeResumeToken, resumeTokenMsg{Type: TypeResumeToken, Token: s.mintResumeToken(c.Room, c.Participant)})
}

// resume gives this socket a detached (or still attached) participant
// back: the token must verify, name m.Room if m.Room is set, and name a
// participant still in its room. The participant's older socket, if any,
// closes with bye "resumed_elsewhere". The participant gets "resumed",
// then its outstanding offer again (sfu.Peer.SetHeld), then, if its media
// path is down, "ice-restart". A refused resume gets error "resume_failed"
// with the reason, and the socket may join instead.
func (s *Session) resume(m Inbound) {
	if s.part != nil {
		s.sendError(CodeAlreadyJoined, "resume may be sent once, instead of join")
		return
	}
	if s.srv.draining.Load() {
		s.refuseDraining()
		return
	}
	c, err := s.srv.resumer.check(m.Token, time.Now())
	if err == nil && m.Room != "" && m.Room != c.Room {
		err = &resumeError{ResumeWrongRoom, fmt.Sprintf("the token is for another room than %q", m.Room)}
	}
	var mem *member
	if err == nil {
		s.srv.mu.Lock()
		mem = s.srv.members[c.Participant]
		s.srv.mu.Unlock()
		if mem == nil && s.srv.cfg.Cluster != nil {
			if moved, merr := s.moveHere(c); moved || merr != nil {
				if merr != nil {
					err = merr
				} else {
					return
				}
			}
		}
		if mem == nil && err == nil {
			err = &resumeError{ResumeGone, "the participant is gone: it left, or its resume window ran out"}
		}
	}
	var old *Session
	if err == nil {
		err = s.srv.rooms.Resume(mem.part, func() bool {
			var ok bool
			old, ok = mem.attach(s)
			if ok {
				s.part, s.mem = mem.part, mem
			}
			return ok
		})
		if err != nil {
			err = &resumeError{ResumeGone, "the participant is gone: it left, or its resume window ran out"}
		}
	}
	if err != nil {
		reason := resumeReason(err)
		s.srv.stats.Resumes.Add(reason)
		s.srv.stats.Errors.Add(CodeResumeFailed)
		s.logger().Info("resume refused", "reason", reason)
		s.send(TypeError, errorMsg{Type: TypeError, Code: CodeResumeFailed, Reason: reason, Message: err.Error()})
		return
	}
	if old != nil {
		old.Close("resumed_elsewhere")
	}
	p := mem.part
	id := p.ID()
	s.addLogAttrs("participant", id, "room", p.Room())
	_ = s.conn.SetReadDeadline(time.Now().Add(2 * s.srv.cfg.PingInterval))
	mem.release(s)
	if p.Connected() && !p.Peer().PathUp() {
		s.Notify(room.ICERestart{})
	}
	s.srv.stats.Resumes.Add(ResumeOK)
	s.logger().Info("participant resumed", "replaced_socket", old != nil)
}

// moveHere takes a participant of another node of the cluster (the
// resume's claims c) into this node: its node died, or its client came
// back through this one (a load balancer chose it). The participant keeps
// its id; the client gets "resumed" with "migrated": true and makes a new
// PeerConnection. It reports false, with no error, if the directory does
// not know the participant.
func (s *Session) moveHere(c resumeClaims) (bool, error) {
	cl := s.srv.cfg.Cluster
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	node, alive, roomName, e, ok, err := cl.Locate(ctx, c.Participant)
	switch {
	case err != nil:
		s.logger().Warn("resume: cluster directory unavailable", "err", err)
		return false, nil
	case !ok || roomName != c.Room || e.Viewer:
		return false, nil
	case node == cl.ID():
		return false, nil // ours, and gone
	}
	mem := &member{srv: s.srv, sess: s}
	who := room.Member{ID: c.Participant, Name: e.Name, Identity: e.Identity, Perm: e.Perm}
	p, err := s.srv.rooms.Join(roomName, who, mem)
	if err != nil {
		s.logger().Info("resume: participant not moved here", "participant", c.Participant, "from", node, "err", err)
		return false, &resumeError{ResumeGone, "the participant could not continue on this node: " + err.Error()}
	}
	mem.mu.Lock()
	mem.part = p
	mem.mu.Unlock()
	s.srv.mu.Lock()
	s.srv.members[p.ID()] = mem
	s.srv.mu.Unlock()
	s.part, s.mem = p, mem
	if alive {
		cl.Release(node, c.Participant) // only now: it is here
	}
	s.addLogAttrs("participant", p.ID(), "room", p.Room())
	_ = s.conn.SetReadDeadline(time.Now().Add(2 * s.srv.cfg.PingInterval))
	s.srv.stats.Resumes.Add(ResumeOK)
	s.logger().Info("participant moved here", "from", node, "node_alive", alive)
	return true, nil
}

// refuseDraining answers a join or resume on a draining server: error
// "draining"; in a cluster, "reconnect" to another node instead.
func (s *Session) refuseDraining() {
	if cl := s.srv.cfg.Cluster; cl != nil {
		if url := cl.Target(); url != "" {
			s.send(TypeReconnect, reconnectMsg{Type: TypeReconnect, URL: url})
			return
		}
	}
	s.sendError(CodeDraining, "the server is draining: join another one")
}

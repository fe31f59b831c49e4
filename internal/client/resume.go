package client

// Resume (docs/protocol.md, "Resume"): the client keeps its PeerConnection
// when its socket drops, and takes its participant back on a new socket.
// resumeState's token is under Client.mu; the rest are atomics. The glare
// staging (RestartICEOnNextOffer) runs on the signaling reader, under
// negMu, like CollideOnNextOffer.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/transport/v2/stdnet"
	"github.com/pion/webrtc/v3"
	sig "github.com/roundtable-sfu/roundtable/signal"
)

type resumeState struct {
	migrations  atomic.Int64           // "resumed" with "migrated": new PeerConnections
	reconnects  atomic.Int64           // "reconnect" messages received
	redirect    atomic.Pointer[string] // a "reconnect"'s socket URL, until it fails twice
	redirectBad atomic.Int64           // failed dials to it
	autoResumed atomic.Int64           // AutoResume's successes
	token       string                 // the newest resume token (joined, resumed, resume-token)
	dropped     atomic.Bool
	stalled     atomic.Pointer[websocket.Conn] // Stall's socket
	restartNext atomic.Bool                    // RestartICEOnNextOffer
	restartAsks atomic.Int64                   // ice-restart messages received
	resumes     atomic.Int64                   // resumed messages received
	tokens      atomic.Int64                   // resume-token messages received
	result      chan error                     // the pending Resume's outcome
	net         *stdnet.Net                    // the PeerConnection's network, set before it exists
	// iceConnectedAt is when ICE last reached connected (Unix nanoseconds).
	iceConnectedAt atomic.Int64
}

// ICEConnectedAt returns when the PeerConnection's ICE last reached
// connected (zero before it did).
func (c *Client) ICEConnectedAt() time.Time {
	if n := c.resume.iceConnectedAt.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// ResumeToken returns the newest resume token the server gave.
func (c *Client) ResumeToken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resume.token
}

// Departures returns the ids of every participant-left received, in order.
func (c *Client) Departures() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.departures...)
}

// Resumes counts the "resumed" messages received.
func (c *Client) Resumes() int { return int(c.resume.resumes.Load()) }

// ICERestartRequests counts the server's "ice-restart" messages.
func (c *Client) ICERestartRequests() int { return int(c.resume.restartAsks.Load()) }

// TokenRenewals counts the server's "resume-token" messages.
func (c *Client) TokenRenewals() int { return int(c.resume.tokens.Load()) }

// Stall makes the client go silent on its signaling socket without
// closing it: from now on it neither handles what arrives on it nor
// answers pings, as a socket whose network went away without a word looks
// to the server (a NAT that forgot the mapping, a laptop asleep). Resume
// opens a new socket.
func (c *Client) Stall() {
	c.wsMu.Lock()
	c.resume.stalled.Store(c.ws)
	c.resume.dropped.Store(true)
	c.wsMu.Unlock()
}

// DropSocket closes the signaling socket's TCP connection under it, with
// no close frame and no leave, as a network that goes away does. The
// PeerConnection stays; Resume takes the participant back.
func (c *Client) DropSocket() {
	c.resume.dropped.Store(true)
	c.wsMu.Lock()
	_ = c.ws.NetConn().Close()
	c.wsMu.Unlock()
}

// Resume opens a new signaling socket and sends "resume" with token (the
// client's own newest if ""), and room when it is not "". It returns once
// "resumed" arrived, or the error "resume_failed" (as an error naming its
// reason). On success the socket is the client's from then on.
func (c *Client) Resume(ctx context.Context, token, room string) error {
	if token == "" {
		token = c.ResumeToken()
	}
	ws, err := c.dialResume(ctx)
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	result := make(chan error, 1)
	c.mu.Lock()
	c.resume.result = result
	c.mu.Unlock()
	c.wsMu.Lock()
	old := c.ws
	c.ws = ws
	c.wsMu.Unlock()
	_ = old.Close()
	c.resume.dropped.Store(false)
	c.wg.Add(1)
	go c.readLoop(ws)
	msg := map[string]string{"type": sig.TypeResume, "token": token}
	if room != "" {
		msg["room"] = room
	}
	if err := c.SendJSON(msg); err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	select {
	case err := <-result:
		return err
	case <-c.closed:
		return errors.New("resume: the socket closed")
	case <-ctx.Done():
		return fmt.Errorf("resume: %w", ctx.Err())
	}
}

// resumeResult hands the pending Resume its outcome.
func (c *Client) resumeResult(err error) bool {
	c.mu.Lock()
	ch := c.resume.result
	c.resume.result = nil
	c.mu.Unlock()
	if ch == nil {
		return false
	}
	ch <- err
	return true
}

// onResumeMessage handles resumed, resume-token and ice-restart.
func (c *Client) onResumeMessage(m serverMsg, raw []byte) {
	switch m.Type {
	case sig.TypeResumed:
		var j joinedMsg
		_ = json.Unmarshal(raw, &j)
		c.mu.Lock()
		c.snapshotLocked(j)
		c.mu.Unlock()
		c.resume.resumes.Add(1)
		var err error
		if j.Migrated {
			err = c.migrate()
		}
		c.resumeResult(err)
	case sig.TypeResumeToken:
		c.mu.Lock()
		c.resume.token = m.Token
		c.mu.Unlock()
		c.resume.tokens.Add(1)
	case sig.TypeReconnect:
		c.mu.Lock()
		joined := c.ID != ""
		c.mu.Unlock()
		if !joined { // a join sent elsewhere (-cluster-redirect)
			if m.URL != "" {
				select {
				case c.redirected <- socketURL(m.URL):
				default:
				}
			}
			return
		}
		// The node drains (cluster): resume elsewhere, AutoResume's way.
		c.resume.reconnects.Add(1)
		if m.URL != "" {
			u := socketURL(m.URL)
			c.resume.redirect.Store(&u)
			c.resume.redirectBad.Store(0)
		}
		if c.resumeResult(errors.New("reconnect: the node is draining")) {
			return // a pending Resume fails; AutoResume tries again, there
		}
		if c.cfg.AutoResume {
			c.wsMu.Lock()
			_ = c.ws.NetConn().Close() // the reader sees the drop and resumes
			c.wsMu.Unlock()
		}
	case sig.TypeICERestart:
		c.resume.restartAsks.Add(1)
		go func() {
			if err := c.RestartICE(); err != nil {
				c.fail(err)
			}
		}()
	}
}

// snapshotLocked takes the room as joined or resumed describes it in place
// of what the client knew, and its resume token; mu is held.
func (c *Client) snapshotLocked(j joinedMsg) {
	c.resume.token = j.ResumeToken
	clear(c.participants)
	clear(c.published)
	for _, p := range j.Participants {
		c.participants[p.ID] = p.Name
		for _, t := range p.Tracks {
			c.published[t.ID] = p.ID
			c.trackMeta[t.ID] = t
		}
	}
}

// RestartICE offers an ICE restart (RFC 8445 §9) on the same
// PeerConnection: new credentials, candidates gathered again (through
// Config.IPFilter as it is now).
func (c *Client) RestartICE() error {
	c.negMu.Lock()
	defer c.negMu.Unlock()
	return c.restartLocked()
}

func (c *Client) restartLocked() error {
	if c.pc == nil {
		return errors.New("ice restart: no PeerConnection")
	}
	if st := c.pc.SignalingState(); st != webrtc.SignalingStateStable {
		return fmt.Errorf("ice restart: signaling state %v", st)
	}
	if err := c.resume.net.UpdateInterfaces(); err != nil {
		return fmt.Errorf("ice restart: list interfaces: %w", err)
	}
	offer, err := c.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		return fmt.Errorf("ice restart offer: %w", err)
	}
	if err := c.pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("ice restart: set offer: %w", err)
	}
	return c.SendJSON(map[string]string{"type": sig.TypeOffer, "sdp": c.pc.LocalDescription().SDP})
}

// RestartICEOnNextOffer makes the client behave, at the next server offer,
// as a polite browser whose network changed at that very moment: it sends
// an ICE-restart offer that crosses the server's (never set locally: the
// browser would roll it back), answers the server's offer, then restarts
// ICE for real.
func (c *Client) RestartICEOnNextOffer() { c.resume.restartNext.Store(true) }

// freshCredentials gives an SDP other ICE credentials, as an ICE-restart
// offer has (RFC 8839 §4.4.1.1.1).
func freshCredentials(sdp string) string {
	sdp = strings.ReplaceAll(sdp, "a=ice-ufrag:", "a=ice-ufrag:rst")
	return strings.ReplaceAll(sdp, "a=ice-pwd:", "a=ice-pwd:restarted")
}

// Migrations counts the "resumed" messages that said "migrated" (the
// participant continues on another node: a new PeerConnection).
func (c *Client) Migrations() int { return int(c.resume.migrations.Load()) }

// AutoResumes counts the resumes AutoResume made that succeeded.
func (c *Client) AutoResumes() int { return int(c.resume.autoResumed.Load()) }

// migrate replaces the PeerConnection with a new one that publishes the
// same tracks (Config.Audio, Config.Video) and offers them: the
// participant continues on another node, which has none of the old one's
// state. On the signaling reader.
func (c *Client) migrate() error {
	c.resume.migrations.Add(1)
	c.mu.Lock()
	local := c.local
	c.local = nil
	c.cands = nil
	c.mu.Unlock()
	for _, l := range local {
		l.stop() // before Close: see Abort
	}
	c.negMu.Lock()
	if c.pc != nil {
		c.settleICE()
		_ = c.pc.Close()
	}
	c.negMu.Unlock()
	for _, l := range local {
		l.wait()
	}
	c.connected.Store(false)
	if err := c.startPeer(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// autoResume takes the participant back on a new socket after the old one
// dropped (Config.AutoResume); it gives up after 30 s, or at once when the
// server refuses the resume.
func (c *Client) autoResume() {
	defer c.wg.Done()
	delay := 100 * time.Millisecond
	deadline := time.Now().Add(30 * time.Second)
	for !c.closing.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.Resume(ctx, "", c.cfg.Room)
		cancel()
		if err == nil {
			c.resume.autoResumed.Add(1)
			return
		}
		if strings.Contains(err.Error(), sig.CodeResumeFailed) || time.Now().After(deadline) {
			c.fail(fmt.Errorf("auto resume: %w", err))
			c.once.Do(func() { close(c.closed) })
			return
		}
		time.Sleep(delay)
		delay = min(2*delay, 2*time.Second)
	}
}

// Reconnects counts the "reconnect" messages received.
func (c *Client) Reconnects() int { return int(c.resume.reconnects.Load()) }

// socketURL is the signaling socket of a node's base URL.
func socketURL(base string) string {
	u := strings.TrimSuffix(base, "/") + "/ws"
	if rest, ok := strings.CutPrefix(u, "https://"); ok {
		return "wss://" + rest
	}
	if rest, ok := strings.CutPrefix(u, "http://"); ok {
		return "ws://" + rest
	}
	return u
}

// dialResume opens the socket a resume goes on: the URL a "reconnect"
// named, until it failed twice, else the client's own.
func (c *Client) dialResume(ctx context.Context) (*websocket.Conn, error) {
	if u := c.resume.redirect.Load(); u != nil {
		cfg := c.cfg
		cfg.URL = *u
		ws, err := cfg.dial(ctx)
		if err == nil {
			return ws, nil
		}
		if c.resume.redirectBad.Add(1) >= 2 {
			c.resume.redirect.Store(nil)
		}
		return nil, err
	}
	return c.cfg.dial(ctx)
}

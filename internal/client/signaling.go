package client

// The signaling reader goroutine: it applies the server's messages, in
// order, to the PeerConnection and to the observation state.

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v3"
	sig "github.com/roundtable-sfu/roundtable/signal"
)

func (c *Client) readLoop(ws *websocket.Conn) {
	defer c.wg.Done()
	ws.SetPingHandler(func(data string) error {
		if c.resume.stalled.Load() == ws {
			return nil // Stall: no pong
		}
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			// The client ends with its socket, unless the socket was
			// dropped to be resumed (DropSocket) or replaced (Resume).
			c.wsMu.Lock()
			current := c.ws == ws
			c.wsMu.Unlock()
			c.mu.Lock()
			bye := c.bye
			c.mu.Unlock()
			if current && !c.closing.Load() && c.cfg.AutoResume && bye == "" && !c.resume.dropped.Load() {
				c.resume.dropped.Store(true)
				c.wg.Add(1)
				go c.autoResume()
				return
			}
			if c.closing.Load() || current && !c.resume.dropped.Load() {
				c.once.Do(func() { close(c.closed) })
			}
			return
		}
		if c.resume.stalled.Load() == ws {
			continue
		}
		var m serverMsg
		if err := json.Unmarshal(b, &m); err != nil {
			continue
		}
		c.handle(m, b)
	}
}

func (c *Client) handle(m serverMsg, raw []byte) {
	switch m.Type {
	case sig.TypeJoined:
		var j joinedMsg
		_ = json.Unmarshal(raw, &j)
		c.mu.Lock()
		c.ID, c.Room, c.joinMsg = j.ID, j.Room, j
		c.snapshotLocked(j)
		c.mu.Unlock()
		c.joined <- sig.Inbound{}
	case sig.TypeResumed, sig.TypeResumeToken, sig.TypeICERestart, sig.TypeReconnect:
		c.onResumeMessage(m, raw)
	case sig.TypeParticipantJoined:
		var p sig.ParticipantJSON
		_ = json.Unmarshal(m.Participant, &p)
		c.mu.Lock()
		c.participants[p.ID] = p.Name
		c.mu.Unlock()
	case sig.TypeParticipantLeft:
		c.mu.Lock()
		c.departures = append(c.departures, m.ID)
		delete(c.participants, m.ID)
		for t, p := range c.published {
			if p == m.ID {
				delete(c.published, t)
			}
		}
		c.mu.Unlock()
	case sig.TypeTrackPublished:
		var pid string
		_ = json.Unmarshal(m.Participant, &pid)
		if m.Track != nil {
			c.mu.Lock()
			c.published[m.Track.ID] = pid
			c.trackMeta[m.Track.ID] = *m.Track
			c.mu.Unlock()
		}
	case sig.TypeConnectionQuality:
		var q struct {
			Participants []sig.QualityJSON `json:"participants"`
		}
		_ = json.Unmarshal(raw, &q)
		c.mu.Lock()
		for _, p := range q.Participants {
			c.quality[p.ID] = p
			c.qualityLog = append(c.qualityLog, QualityEvent{QualityJSON: p, At: time.Now()})
		}
		c.mu.Unlock()
	case sig.TypeActiveSpeaker:
		var pid string
		_ = json.Unmarshal(m.Participant, &pid)
		c.mu.Lock()
		c.speakers = append(c.speakers, SpeakerEvent{Participant: pid, At: time.Now()})
		c.mu.Unlock()
	case sig.TypeTrackUpdated:
		if m.Track != nil {
			c.mu.Lock()
			c.trackMeta[m.Track.ID] = *m.Track
			c.mu.Unlock()
		}
	case sig.TypeTrackUnpublished:
		c.mu.Lock()
		delete(c.published, m.TrackID)
		c.mu.Unlock()
	case sig.TypeOffer:
		c.offers.Add(1)
		c.mu.Lock()
		c.lastOffer = m.SDP
		c.mu.Unlock()
		c.onOffer(m.SDP)
	case sig.TypeAnswer:
		c.onAnswer(m.SDP)
	case sig.TypeCandidate:
		if m.Candidate == nil {
			return
		}
		c.mu.Lock()
		c.serverCands = append(c.serverCands, m.Candidate.Candidate)
		c.mu.Unlock()
		if c.pc == nil || c.holdCandidate(*m.Candidate, true) {
			return
		}
		if c.pc.RemoteDescription() == nil {
			c.mu.Lock()
			c.cands = append(c.cands, *m.Candidate)
			c.mu.Unlock()
			return
		}
		_ = c.pc.AddICECandidate(*m.Candidate)
	case sig.TypeError:
		e := ErrorMsg{Code: m.Code, Message: m.Message, Reason: m.Reason}
		c.mu.Lock()
		c.errors = append(c.errors, e)
		joined := c.ID != ""
		c.mu.Unlock()
		if e.Code == sig.CodeResumeFailed {
			c.resumeResult(fmt.Errorf("%s (%s): %s", e.Code, e.Reason, e.Message))
			return
		}
		if !joined {
			select {
			case c.joinErr <- e:
			default:
			}
		}
	case sig.TypeBye:
		c.mu.Lock()
		c.bye = m.Reason
		c.mu.Unlock()
	}
}

// onOffer answers a server offer. A browser is the polite peer and rolls
// its own pending offer back when offers collide; pion v3 cannot roll back
// from have-local-offer, so this client avoids collisions instead: it
// offers only at start and in Publish/Unpublish, and a collision is
// recorded as a failure. CollideOnNextOffer stages the server's half of a
// collision (see there).
func (c *Client) onOffer(sdp string) {
	c.negMu.Lock()
	defer c.negMu.Unlock()
	if c.pc == nil {
		return
	}
	restart := c.resume.restartNext.Swap(false)
	if restart {
		// The crossing restart offer, as the server sees a polite
		// browser's (see RestartICEOnNextOffer): new ICE credentials. Not
		// CreateOffer's ICERestart, which would restart this agent.
		c.collisions.Add(1)
		offer, err := c.pc.CreateOffer(nil)
		if err != nil {
			c.fail(fmt.Errorf("colliding restart offer: %w", err))
			return
		}
		_ = c.SendJSON(map[string]string{"type": sig.TypeOffer, "sdp": freshCredentials(offer.SDP)})
	}
	staged := c.collide.Swap(false)
	if staged {
		// What the server sees of a polite browser's collision: an offer
		// that crosses its own. The browser would then roll back, which
		// happens only in the browser; so this offer is never set locally.
		c.collisions.Add(1)
		offer, err := c.pc.CreateOffer(nil)
		if err != nil {
			c.fail(fmt.Errorf("colliding offer: %w", err))
			return
		}
		_ = c.SendJSON(map[string]string{"type": sig.TypeOffer, "sdp": offer.SDP})
	}
	if c.pc.SignalingState() != webrtc.SignalingStateStable {
		c.fail(fmt.Errorf("offer collision in state %s: pion cannot roll back", c.pc.SignalingState()))
		return
	}
	// pion v3.3.6 sets the ICE agent's remote credentials on a goroutine
	// of its own after the first answer; an offer applied before that
	// looks like an ICE restart and fails ("attempting to gather
	// candidates during gathering state"). Wait, at most 5 s, for ICE to
	// start (sfu.Peer.awaitTransports is the server's side of this).
	if c.pc.RemoteDescription() != nil {
		deadline := time.NewTimer(5 * time.Second)
		for wait := true; wait && c.pc.ICEConnectionState() == webrtc.ICEConnectionStateNew; {
			select {
			case <-c.iceChange:
			case <-deadline.C:
				wait = false
			}
		}
		deadline.Stop()
	}
	sdp = c.stripCandidates(sdp, true)
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		c.fail(fmt.Errorf("apply server offer: %w", err))
		return
	}
	c.flushCandidates()
	ans, err := c.pc.CreateAnswer(nil)
	if err != nil {
		c.fail(fmt.Errorf("create answer: %w", err))
		return
	}
	if err := c.pc.SetLocalDescription(ans); err != nil {
		c.fail(fmt.Errorf("set answer: %w", err))
		return
	}
	answer := c.stripCandidates(c.pc.LocalDescription().SDP, false)
	if c.cfg.OnServerOffer != nil {
		answer = c.cfg.OnServerOffer(answer)
	}
	if answer != "" {
		_ = c.SendJSON(map[string]string{"type": sig.TypeAnswer, "sdp": answer})
	}
	if restart {
		// The rolled-back restart, offered again after answering.
		if err := c.restartLocked(); err != nil {
			c.fail(err)
		}
	}
	if staged {
		// The rolled-back change, offered again after answering.
		if err := c.publishLocked(webrtc.RTPCodecTypeVideo); err != nil {
			c.fail(err)
		}
	}
}

func (c *Client) onAnswer(sdp string) {
	c.negMu.Lock()
	defer c.negMu.Unlock()
	c.answers.Add(1)
	if c.pc == nil {
		return // a Dial-only client that offered from its own PeerConnection
	}
	if c.pc.SignalingState() != webrtc.SignalingStateHaveLocalOffer {
		c.fail(fmt.Errorf("answer in state %s", c.pc.SignalingState()))
		return
	}
	sdp = c.stripCandidates(sdp, true)
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		c.fail(fmt.Errorf("apply answer: %w", err))
		return
	}
	c.flushCandidates()
}

// offerLocked sends an offer; negMu is held.
func (c *Client) offerLocked() error {
	offer, err := c.pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("create offer: %w", err)
	}
	if err := c.pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("set offer: %w", err)
	}
	return c.SendJSON(map[string]string{"type": sig.TypeOffer, "sdp": c.stripCandidates(c.pc.LocalDescription().SDP, false)})
}

// fail records a client-side negotiation failure (see Failures).
func (c *Client) fail(err error) {
	c.mu.Lock()
	c.failures = append(c.failures, err.Error())
	c.mu.Unlock()
}

func (c *Client) flushCandidates() {
	c.mu.Lock()
	cands := c.cands
	c.cands = nil
	c.mu.Unlock()
	for _, cand := range cands {
		_ = c.pc.AddICECandidate(cand)
	}
}

package client

// The signaling reader goroutine: it applies the server's messages, in
// order, to the PeerConnection and to the observation state.

import (
	"encoding/json"

	"github.com/pion/webrtc/v3"
	sig "github.com/roundtable-sfu/roundtable/signal"
)

func (c *Client) readLoop() {
	defer c.wg.Done()
	defer c.once.Do(func() { close(c.closed) })
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			return
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
		for _, p := range j.Participants {
			c.participants[p.ID] = p.Name
			for _, t := range p.Tracks {
				c.published[t.ID] = p.ID
			}
		}
		c.mu.Unlock()
		c.joined <- sig.Inbound{}
	case sig.TypeParticipantJoined:
		var p sig.ParticipantJSON
		_ = json.Unmarshal(m.Participant, &p)
		c.mu.Lock()
		c.participants[p.ID] = p.Name
		c.mu.Unlock()
	case sig.TypeParticipantLeft:
		c.mu.Lock()
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
			c.mu.Unlock()
		}
	case sig.TypeTrackUnpublished:
		c.mu.Lock()
		delete(c.published, m.TrackID)
		c.mu.Unlock()
	case sig.TypeOffer:
		c.offers.Add(1)
		c.onOffer(m.SDP)
	case sig.TypeAnswer:
		if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP}); err == nil {
			c.flushCandidates()
		}
	case sig.TypeCandidate:
		if m.Candidate == nil || c.pc == nil {
			return
		}
		c.mu.Lock()
		c.serverCands = append(c.serverCands, m.Candidate.Candidate)
		c.mu.Unlock()
		if c.pc.RemoteDescription() == nil {
			c.mu.Lock()
			c.cands = append(c.cands, *m.Candidate)
			c.mu.Unlock()
			return
		}
		_ = c.pc.AddICECandidate(*m.Candidate)
	case sig.TypeError:
		e := ErrorMsg{Code: m.Code, Message: m.Message}
		c.mu.Lock()
		c.errors = append(c.errors, e)
		joined := c.ID != ""
		c.mu.Unlock()
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

// onOffer answers a server offer. The client offers only once, before any
// server offer, so it never meets an offer collision.
func (c *Client) onOffer(sdp string) {
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return
	}
	c.flushCandidates()
	ans, err := c.pc.CreateAnswer(nil)
	if err != nil {
		return
	}
	if err := c.pc.SetLocalDescription(ans); err != nil {
		return
	}
	_ = c.SendJSON(map[string]string{"type": sig.TypeAnswer, "sdp": c.pc.LocalDescription().SDP})
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

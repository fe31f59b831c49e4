package client

// Holding ICE (Config.HoldICE): a PeerConnection that negotiates but does
// not connect until ReleaseICE. The held candidates are under Client.mu;
// the signaling reader and pion's candidate callback add to them.

import (
	"strings"

	"github.com/pion/webrtc/v3"

	sig "github.com/roundtable-sfu/roundtable/signal"
)

// holdCandidate keeps a candidate while ICE is held (remote: the
// server's; else the client's own) and reports whether it did.
func (c *Client) holdCandidate(cand webrtc.ICECandidateInit, remote bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case !c.iceHeld:
		return false
	case remote:
		c.heldRemote = append(c.heldRemote, cand)
	default:
		c.heldLocal = append(c.heldLocal, cand)
	}
	return true
}

// stripCandidates takes the a=candidate lines out of sdp while ICE is
// held; remote: they are the server's, kept for ReleaseICE (the client's
// own go out trickled on release).
func (c *Client) stripCandidates(sdp string, remote bool) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.iceHeld {
		return sdp
	}
	lines := strings.SplitAfter(sdp, "\n")
	kept := lines[:0]
	mid := ""
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if m, ok := strings.CutPrefix(t, "a=mid:"); ok {
			mid = m
		}
		if v, ok := strings.CutPrefix(t, "a="); ok && strings.HasPrefix(v, "candidate:") {
			if remote {
				m := mid
				c.heldRemote = append(c.heldRemote, webrtc.ICECandidateInit{Candidate: v, SDPMid: &m})
			}
			continue
		}
		kept = append(kept, l)
	}
	return strings.Join(kept, "")
}

// ReleaseICE ends Config.HoldICE: the client's candidates go to the server
// and the server's are added, so ICE, then DTLS, start.
func (c *Client) ReleaseICE() {
	c.mu.Lock()
	c.iceHeld = false
	local, remote := c.heldLocal, c.heldRemote
	c.heldLocal, c.heldRemote = nil, nil
	c.mu.Unlock()
	for _, cand := range local {
		_ = c.SendJSON(map[string]any{"type": sig.TypeCandidate, "candidate": cand})
	}
	c.negMu.Lock()
	defer c.negMu.Unlock()
	for _, cand := range remote {
		_ = c.pc.AddICECandidate(cand)
	}
}

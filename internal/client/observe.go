package client

// What the client has seen, for tests and the load tool: read-only
// accessors over the observation state (mu, or atomics), callable from any
// goroutine.

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/pion/webrtc/v3"
	sig "github.com/roundtable-sfu/roundtable/signal"
)

// SpeakerEvent is one active-speaker message as received.
type SpeakerEvent struct {
	Participant string
	At          time.Time
}

// Speakers returns the active-speaker messages received so far.
func (c *Client) Speakers() []SpeakerEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]SpeakerEvent(nil), c.speakers...)
}

// QualityEvent is one participant's levels in a connection-quality
// message, as received.
type QualityEvent struct {
	sig.QualityJSON
	At time.Time
}

// Quality returns the last connection quality levels received for a
// participant (its own id too), and whether any were.
func (c *Client) Quality(id string) (sig.QualityJSON, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	q, ok := c.quality[id]
	return q, ok
}

// QualityLog returns every participant's levels as received, in order.
func (c *Client) QualityLog() []QualityEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]QualityEvent(nil), c.qualityLog...)
}

// AnswersReceived counts the server's answers.
func (c *Client) AnswersReceived() int { return int(c.answers.Load()) }

// Collisions counts the collisions CollideOnNextOffer staged.
func (c *Client) Collisions() int { return int(c.collisions.Load()) }

// Failures returns client-side negotiation failures.
func (c *Client) Failures() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.failures...)
}

// ICEServers returns the "iceServers" of "joined".
func (c *Client) ICEServers() []sig.ICEServer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.joinMsg.ICEServers
}

// RemoteCandidates returns the server's trickled candidates.
func (c *Client) RemoteCandidates() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.serverCands...)
}

// RemoteSDP returns the PeerConnection's current remote description ("" before one).
func (c *Client) RemoteSDP() string {
	if c.pc == nil {
		return ""
	}
	if d := c.pc.RemoteDescription(); d != nil {
		return d.SDP
	}
	return ""
}

// SelectedPath describes the ICE candidate pair in use as
// "<local protocol> <local type> -> <remote protocol> <remote type>", or ""
// before one is selected.
func (c *Client) SelectedPath() string {
	pair := c.selectedPair()
	if pair == nil {
		return ""
	}
	return fmt.Sprintf("%s %s -> %s %s", pair.Local.Protocol, pair.Local.Typ, pair.Remote.Protocol, pair.Remote.Typ)
}

// SelectedLocal returns the local address and port of the selected
// candidate pair, "" before there is one.
func (c *Client) SelectedLocal() string {
	pair := c.selectedPair()
	if pair == nil {
		return ""
	}
	return net.JoinHostPort(pair.Local.Address, strconv.Itoa(int(pair.Local.Port)))
}

// selectedPair returns the selected ICE candidate pair, or nil.
func (c *Client) selectedPair() *webrtc.ICECandidatePair {
	if c.pc == nil {
		return nil
	}
	pair, err := c.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil {
		return nil
	}
	return pair
}

// LastServerOffer returns the SDP of the server's latest offer.
func (c *Client) LastServerOffer() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastOffer
}

// OffersReceived counts the server's offers.
func (c *Client) OffersReceived() int { return int(c.offers.Load()) }

// Debug describes the client's state in one line, for test failures.
func (c *Client) Debug() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q connected=%v", c.ID, c.cfg.Name, c.Connected())
	if c.pc != nil {
		fmt.Fprintf(&b, " signaling=%s ice=%s pc=%s", c.pc.SignalingState(), c.pc.ICEConnectionState(), c.pc.ConnectionState())
	}
	fmt.Fprintf(&b, " offers=%d answers=%d errors=%v failures=%v bye=%q", c.OffersReceived(), c.AnswersReceived(), c.Errors(), c.Failures(), c.Bye())
	for _, r := range c.Remote() {
		st := r.Stats()
		fmt.Fprintf(&b, " [%s %s pkts=%d ended=%v]", r.Kind, r.StreamID, st.Packets, st.Ended)
	}
	for _, l := range c.Local() {
		fmt.Fprintf(&b, " [local sent=%d pli=%d]", l.Sent.Load(), l.PLIsReceived.Load())
	}
	return b.String()
}

// Connected reports whether the PeerConnection has connected.
func (c *Client) Connected() bool { return c.connected.Load() }

// Errors returns the error messages received so far.
func (c *Client) Errors() []ErrorMsg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]ErrorMsg(nil), c.errors...)
}

// HasError reports whether an error with code arrived.
func (c *Client) HasError(code string) bool {
	for _, e := range c.Errors() {
		if e.Code == code {
			return true
		}
	}
	return false
}

// Bye returns the reason of the server's "bye", or "".
func (c *Client) Bye() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bye
}

// Closed is closed when the signaling socket is gone.
func (c *Client) Closed() <-chan struct{} { return c.closed }

// Participants returns the other members as id -> name.
func (c *Client) Participants() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.participants))
	for k, v := range c.participants {
		out[k] = v
	}
	return out
}

// Publisher returns the participant that publishes track id, per the
// server's track events.
func (c *Client) Publisher(trackID string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.published[trackID]
	return p, ok
}

// TrackInfo returns what the server last said about a published track.
func (c *Client) TrackInfo(trackID string) (sig.TrackJSON, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.trackMeta[trackID]
	return t, ok
}

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/internal/server"
	"github.com/roundtable-sfu/roundtable/sfu"
	"github.com/roundtable-sfu/roundtable/signal"
)

// Bad input gets a specific error code (or a clean close) and the members
// of the room carry on: their media keeps flowing throughout.
func TestBadInputGetsErrorsAndHurtsNoOne(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, func(c *server.Config, _ *[]interceptor.Factory) {})
	ctx := testContext(t, 40*time.Second)
	a, b := s.join(ctx, "calm", "a", 1, 1), s.join(ctx, "calm", "b", 1, 1)
	waitFor(t, ctx, "media", func() bool { return len(b.ActiveRemote()) == 2 && videoTrack(b).Stats().Packets > 10 })

	steps := []struct {
		name  string
		join  bool // send a valid join first
		frame string
		bin   bool
		code  string
	}{
		{"malformed json", false, `{"type":`, false, signal.CodeBadJSON},
		{"unknown type", false, `{"type":"dance"}`, false, signal.CodeUnknownType},
		{"binary frame", false, `{"type":"leave"}`, true, signal.CodeBadMessage},
		{"offer before join", false, `{"type":"offer","sdp":"v=0"}`, false, signal.CodeNotJoined},
		{"candidate before join", false, `{"type":"candidate","candidate":{"candidate":"x"}}`, false, signal.CodeNotJoined},
		{"join without name", false, `{"type":"join","room":"calm"}`, false, signal.CodeBadMessage},
		{"bad room name", false, `{"type":"join","room":"no spaces","name":"x"}`, false, signal.CodeBadRoom},
		{"control characters in name", false, `{"type":"join","room":"calm","name":"a\u0007b"}`, false, signal.CodeBadName},
		{"200-character name", false, `{"type":"join","room":"calm","name":"` + strings.Repeat("n", 200) + `"}`, false, signal.CodeBadName},
		{"second join", true, `{"type":"join","room":"calm","name":"again"}`, false, signal.CodeAlreadyJoined},
		{"bogus sdp", true, `{"type":"offer","sdp":"this is not sdp"}`, false, signal.CodeBadSDP},
		{"answer without offer", true, `{"type":"answer","sdp":"v=0"}`, false, signal.CodeBadSDP},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			c, err := client.Dial(ctx, client.Config{URL: s.WSURL()})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Abort()
			if st.join {
				if err := c.SendJSON(map[string]string{"type": "join", "room": "calm", "name": "hostile"}); err != nil {
					t.Fatal(err)
				}
			}
			typ := websocket.TextMessage
			if st.bin {
				typ = websocket.BinaryMessage
			}
			if err := c.SendRaw(typ, []byte(st.frame)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, ctx, "error "+st.code, func() bool { return c.HasError(st.code) })
		})
	}

	t.Run("oversize frame: error and bye, then close", func(t *testing.T) {
		c, err := client.Dial(ctx, client.Config{URL: s.WSURL()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Abort()
		_ = c.SendRaw(websocket.TextMessage, []byte(`{"type":"offer","sdp":"`+strings.Repeat("x", 10<<20)+`"}`))
		select {
		case <-c.Closed():
		case <-time.After(10 * time.Second):
			t.Fatal("socket still open after a 10 MiB frame")
		}
		if !c.HasError(signal.CodeMessageTooBig) || c.Bye() != signal.CodeMessageTooBig {
			t.Errorf("errors %v, bye %q; want error and bye message_too_large", c.Errors(), c.Bye())
		}
	})

	t.Run("1,000 messages a second", func(t *testing.T) {
		c, err := client.Dial(ctx, client.Config{URL: s.WSURL()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Abort()
		if err := c.SendJSON(map[string]string{"type": "join", "room": "calm", "name": "flood"}); err != nil {
			t.Fatal(err)
		}
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		flood := `{"type":"viewport","track":"TRnothing","width":1,"height":1,"visible":true}`
		for i := 0; i < 1000; i++ {
			<-tick.C
			if err := c.SendRaw(websocket.TextMessage, []byte(flood)); err != nil {
				break // closed: also an answer
			}
		}
		waitFor(t, ctx, "error "+signal.CodeRateLimited, func() bool { return c.HasError(signal.CodeRateLimited) })
		// About 1 s of flood: the burst (200) and the rate (50/s) pass and
		// get their own unknown_track; the rest is dropped with one
		// rate_limited a second.
		limited, answered := 0, 0
		for _, e := range c.Errors() {
			switch e.Code {
			case signal.CodeRateLimited:
				limited++
			case signal.CodeUnknownTrack:
				answered++
			}
		}
		if limited > 3 || answered > 320 {
			t.Errorf("%d rate_limited and %d answered of 1,000: want the excess dropped", limited, answered)
		}
	})

	t.Run("connect timeout frees a member that never connects", func(t *testing.T) {
		quick := startServer(t, func(c *server.Config, _ *[]interceptor.Factory) { c.ConnectTimeout = time.Second })
		c, err := client.Dial(ctx, client.Config{URL: quick.WSURL()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Abort()
		if err := c.SendJSON(map[string]string{"type": "join", "room": "stuck", "name": "never-offers"}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, "bye connect_timeout", func() bool { return c.Bye() == "connect_timeout" })
		waitFor(t, ctx, "the member freed", func() bool { _, n := quick.Rooms.Counts(); return n == 0 })
	})

	t.Run("too many tracks", func(t *testing.T) {
		few := startServer(t, func(c *server.Config, _ *[]interceptor.Factory) { c.MaxTracks = 2 })
		greedy := few.join(ctx, "few", "greedy", 3, 0)
		watcher := few.join(ctx, "few", "watcher", 0, 0)
		waitFor(t, ctx, "error "+signal.CodeTooManyTracks, func() bool { return greedy.HasError(signal.CodeTooManyTracks) })
		waitFor(t, ctx, "two tracks forwarded", func() bool { return len(watcher.ActiveRemote()) == 2 })
		// The third track is still read (drained), but its packets are
		// dropped at the door, not cached.
		waitFor(t, ctx, "the refused track's packets dropped", func() bool {
			return few.Engine.Stats().Dropped[sfu.DropTrackRefused].Load() > 20
		})
		time.Sleep(300 * time.Millisecond)
		if n := len(watcher.Remote()); n != 2 {
			t.Errorf("watcher receives %d tracks, want the limit of 2", n)
		}
	})

	t.Run("room full", func(t *testing.T) {
		full := startServer(t, func(c *server.Config, _ *[]interceptor.Factory) { c.MaxParticipants = 1 })
		first := full.join(ctx, "tiny", "first", 0, 0)
		waitFor(t, ctx, "first connected", first.Connected)
		_, err := client.Join(ctx, client.Config{URL: full.WSURL(), Room: "tiny", Name: "second"})
		if err == nil || !strings.Contains(err.Error(), signal.CodeRoomFull) {
			t.Fatalf("second join: %v, want %s", err, signal.CodeRoomFull)
		}
	})

	// The members never noticed.
	v := videoTrack(b)
	before := v.Stats().Packets
	time.Sleep(500 * time.Millisecond)
	if got := v.Stats().Packets - before; got < 20 {
		t.Errorf("b received %d video packets in 500 ms after the abuse", got)
	}
	if len(a.Errors())+len(b.Errors()) != 0 {
		t.Errorf("members got errors: %v %v", a.Errors(), b.Errors())
	}
	// The hostile sockets were cut as their subtests ended; each leaves
	// when the server reads the close.
	waitFor(t, ctx, "only the two members left (hostile joins gone)", func() bool { _, n := s.Rooms.Counts(); return n == 2 })
}

// The configured ICE servers reach clients in "joined", and with -nat-ip
// the server advertises that address instead of its own. (The client only
// offers, from a PeerConnection that never gathers, so nothing tries to
// reach the unreachable advertised address.)
func TestICEServersAndNATIP(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, func(c *server.Config, _ *[]interceptor.Factory) {
		c.ICEServers = []string{"stun:stun.example.org:3478", "turn:turn.example.org:3478"}
		c.ICEUsername, c.ICECredential = "u", "p"
		c.NAT1To1IPs = []string{"127.0.0.2"} // not the address the server listens on
	})
	ctx := testContext(t, 20*time.Second)
	c, err := client.Dial(ctx, client.Config{URL: s.WSURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	if err := c.SendJSON(map[string]string{"type": "join", "room": "ice", "name": "a"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "joined", func() bool { return len(c.ICEServers()) > 0 })
	got := c.ICEServers()
	// The operator's servers (static credentials for the turn: one), then
	// the built-in TURN server, by the host the client used, with a
	// credential minted for this participant.
	udpPort, tcpPort := s.TURNPorts()
	if len(got) != 3 || got[0].URLs[0] != "stun:stun.example.org:3478" || got[0].Username != "" ||
		got[1].Username != "u" || got[1].Credential != "p" ||
		strings.Join(got[2].URLs, " ") != fmt.Sprintf("turn:127.0.0.1:%d?transport=udp turn:127.0.0.1:%d?transport=tcp", udpPort, tcpPort) ||
		!strings.HasSuffix(got[2].Username, ":"+c.ID) || got[2].Credential == "" {
		t.Errorf("iceServers %+v", got)
	}
	sendBareOffer(t, c)
	waitFor(t, ctx, "server candidates", func() bool { return len(c.RemoteCandidates()) > 0 })
	for _, cand := range c.RemoteCandidates() {
		if !strings.Contains(cand, " 127.0.0.2 ") {
			t.Errorf("candidate %q does not advertise the NAT address", cand)
		}
	}
}

// A candidate that arrives before the client's offer is buffered, then
// applied with the offer: no error, and the offer is answered.
func TestCandidateBeforeOfferIsBuffered(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := testContext(t, 20*time.Second)
	c, err := client.Dial(ctx, client.Config{URL: s.WSURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	if err := c.SendJSON(map[string]string{"type": "join", "room": "early", "name": "e"}); err != nil {
		t.Fatal(err)
	}
	mid, zero := "0", uint16(0)
	cand := webrtc.ICECandidateInit{Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host", SDPMid: &mid, SDPMLineIndex: &zero}
	if err := c.SendJSON(map[string]any{"type": "candidate", "candidate": cand}); err != nil {
		t.Fatal(err)
	}
	sendBareOffer(t, c)
	waitFor(t, ctx, "the answer", func() bool { return c.AnswersReceived() == 1 })
	time.Sleep(200 * time.Millisecond)
	if errs := c.Errors(); len(errs) != 0 {
		t.Errorf("errors: %v", errs)
	}
}

// sendBareOffer sends an offer (a data channel only) from a PeerConnection
// that is never set up, so it gathers no candidates and opens no socket.
func sendBareOffer(t *testing.T, c *client.Client) { sendOffer(t, c, nil) }

// sendOffer sends an offer from such a PeerConnection with a data channel
// and an m-line for each of kinds, changed by edit if it is not nil.
func sendOffer(t *testing.T, c *client.Client, edit func(string) string, kinds ...webrtc.RTPCodecType) {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.CreateDataChannel("roundtable", nil); err != nil {
		t.Fatal(err)
	}
	for _, k := range kinds {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	sdp := offer.SDP
	if edit != nil {
		sdp = edit(sdp)
	}
	if err := c.SendJSON(map[string]string{"type": "offer", "sdp": sdp}); err != nil {
		t.Fatal(err)
	}
}

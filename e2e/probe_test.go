package e2e

// The connection check behind the web client's /doctor page: "probe"
// instead of "join" gets a PeerConnection in no room, and "probe-result"
// says whether and how it connected, or the diagnosis.

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/ice/v2"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/internal/server"
)

type probeResult struct {
	Type, Path, Reason string
	Connected          bool
}

// runProbe runs one connection check as the /doctor page does, keeping
// only the server candidates keep accepts; it returns probe-result and the
// messages seen.
func runProbe(t *testing.T, ctx context.Context, wsURL, transport string, keep func(candidate string) bool) (probeResult, []string) {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, wsURL, http.Header{})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(n string) bool { return n == "lo" })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4})
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var wmu sync.Mutex
	write := func(v any) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = ws.WriteJSON(v)
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			write(map[string]any{"type": "candidate", "candidate": c.ToJSON()})
		}
	})
	if _, err := pc.CreateDataChannel("roundtable", nil); err != nil {
		t.Fatal(err)
	}
	write(map[string]string{"type": "probe", "transport": transport})
	var seen []string
	for {
		_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
		var m struct {
			Type, SDP, Code, Path, Reason string
			Connected                     bool
			Candidate                     *webrtc.ICECandidateInit
		}
		if err := ws.ReadJSON(&m); err != nil {
			t.Fatalf("probe: %v after %v", err, seen)
		}
		seen = append(seen, m.Type+":"+m.Code)
		switch m.Type {
		case "probe-ready":
			offer, err := pc.CreateOffer(nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := pc.SetLocalDescription(offer); err != nil {
				t.Fatal(err)
			}
			write(map[string]string{"type": "offer", "sdp": offer.SDP})
		case "answer":
			var lines []string
			for _, l := range strings.Split(m.SDP, "\r\n") {
				if !strings.HasPrefix(l, "a=candidate:") || keep(l) {
					lines = append(lines, l)
				}
			}
			if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: strings.Join(lines, "\r\n")}); err != nil {
				t.Fatal(err)
			}
		case "candidate":
			if keep(m.Candidate.Candidate) {
				_ = pc.AddICECandidate(*m.Candidate)
			}
		case "probe-result":
			return probeResult{Type: m.Type, Path: m.Path, Reason: m.Reason, Connected: m.Connected}, seen
		case "error":
			t.Fatalf("probe: error %s", m.Code)
		}
	}
}

func TestProbeReportsThePath(t *testing.T) {
	checkGoroutines(t)
	short := func(c *server.Config, _ *[]interceptor.Factory) { c.ProbeTimeout = 3 * time.Second }
	s := startServer(t, withICETCP(t), short)
	ctx := testContext(t, 40*time.Second)
	all := func(string) bool { return true }
	for _, transport := range []string{"udp", "tcp"} {
		r, seen := runProbe(t, ctx, s.WSURL(), transport, all)
		if !r.Connected || r.Path != transport {
			t.Errorf("%s probe: %+v (%v)", transport, r, seen)
		}
	}
	// The server's TCP candidates only, and a client without TCP: the
	// check fails, with the diagnosis, and the failure of a check is not
	// counted as a participant's.
	r, seen := runProbe(t, ctx, s.WSURL(), "tcp", func(c string) bool { return !strings.Contains(strings.ToLower(c), " tcp ") })
	if r.Connected || r.Reason != "no_response" {
		t.Errorf("probe without server candidates: %+v (%v)", r, seen)
	}
	text := scrape(t, s)
	if v := metricValue(t, text, `roundtable_ice_failures_total{reason="no_response"}`); v != 0 {
		t.Errorf("a failed probe counted as an ICE failure: %v", v)
	}
	if v := metricValue(t, text, "roundtable_participants"); v != 0 {
		t.Errorf("probes counted as participants: %v", v)
	}
	// The server holds no probe afterwards.
	waitFor(t, ctx, "probes closed", func() bool { return s.Engine.Stats().Peers.Load() == 0 })
}

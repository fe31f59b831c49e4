package e2e

// ICE over TCP (issue 11, item 1): the server offers passive TCP host
// candidates on one TCP port beside the UDP ones; a client that cannot use
// UDP connects over TCP, one that can keeps UDP.

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/internal/server"
)

// withICETCP turns ICE over TCP on, on a free port.
func withICETCP(t *testing.T) serverOpt {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	return func(c *server.Config, _ *[]interceptor.Factory) { c.ICETCPPort = port }
}

func TestICEOverTCP(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, withICETCP(t))
	ctx := testContext(t, 30*time.Second)
	tcpOnly := []webrtc.NetworkType{webrtc.NetworkTypeTCP4}
	both := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4}
	udp := s.joinWith(ctx, client.Config{Room: "tcp", Name: "udp", Audio: 1, Video: 1, Networks: both})
	tcp := s.joinWith(ctx, client.Config{Room: "tcp", Name: "tcp", Audio: 1, Video: 1, Networks: tcpOnly})
	for _, c := range []struct{ sub, pub *client.Client }{{udp, tcp}, {tcp, udp}} {
		for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
			r := waitMedia(t, ctx, c.sub, c.pub, kind, 50)
			if st := r.Stats(); st.Bad != 0 {
				t.Errorf("%s: %d bad payloads", c.sub.ID, st.Bad)
			}
		}
	}
	// The server's candidates name the TCP port; each client took the path
	// it could: TCP when it must, UDP when it can.
	port := s.Engine.TCPAddr().(*net.TCPAddr).Port
	found := false
	for _, cand := range tcp.RemoteCandidates() {
		found = found || strings.Contains(cand, " tcp ") && strings.Contains(cand, " tcptype passive") && strings.Contains(cand, " "+strconv.Itoa(port)+" typ host")
	}
	if !found {
		t.Errorf("no passive TCP host candidate on port %d among %v", port, tcp.RemoteCandidates())
	}
	// The server's end is its host candidate, or the same address learnt
	// as peer-reflexive when its check arrived before its candidate did.
	if p := tcp.SelectedPath(); !strings.HasPrefix(p, "tcp host -> tcp host") && !strings.HasPrefix(p, "tcp host -> tcp prflx") {
		t.Errorf("the TCP-only client's path is %q, want TCP", p)
	}
	if p := udp.SelectedPath(); !strings.HasPrefix(p, "udp host -> udp host") && !strings.HasPrefix(p, "udp host -> udp prflx") {
		t.Errorf("the client that can use UDP took %q, want UDP", p)
	}
	t.Logf("paths: tcp-only %q, udp+tcp %q", tcp.SelectedPath(), udp.SelectedPath())
	waitFor(t, ctx, "the paths counted", func() bool {
		text := scrape(t, s)
		return metricValue(t, text, `roundtable_ice_connected_total{path="tcp"}`) == 1 &&
			metricValue(t, text, `roundtable_ice_connected_total{path="udp"}`) == 1
	})
}

package e2e

// The built-in TURN server (issue 11, item 2): a client that may use
// relayed candidates only reaches the room through it, over UDP and over
// TCP, with the credentials "joined" minted for it; the same credentials
// work against Debian's coturn configured with use-auth-secret.

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/internal/server"
)

// exchangeMedia waits for audio and video both ways between a and b.
func exchangeMedia(t *testing.T, ctx context.Context, a, b *client.Client) {
	t.Helper()
	for _, c := range []struct{ sub, pub *client.Client }{{a, b}, {b, a}} {
		for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
			if r := waitMedia(t, ctx, c.sub, c.pub, kind, 50); r.Stats().Bad != 0 {
				t.Errorf("%s: %d bad payloads", c.sub.ID, r.Stats().Bad)
			}
		}
	}
}

func TestMediaThroughBuiltInTURN(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			checkGoroutines(t)
			s := startServer(t)
			ctx := testContext(t, 30*time.Second)
			host := s.join(ctx, "turn-"+transport, "host", 1, 1)
			relayed := s.joinWith(ctx, client.Config{Room: "turn-" + transport, Name: "relayed", Audio: 1, Video: 1, Relay: transport})
			exchangeMedia(t, ctx, host, relayed)
			if p := relayed.SelectedPath(); !strings.Contains(p, "relay") {
				t.Errorf("relay-only client's path %q, want a relay candidate", p)
			}
			// The credential is the REST API form, for this participant.
			var user string
			for _, ice := range relayed.ICEServers() {
				for _, u := range ice.URLs {
					if strings.Contains(u, "transport="+transport) {
						user = ice.Username
					}
				}
			}
			exp, who, _ := strings.Cut(user, ":")
			if sec, err := strconv.ParseInt(exp, 10, 64); err != nil || who != relayed.ID || sec <= time.Now().Unix() {
				t.Errorf("TURN username %q, want <future expiry>:%s", user, relayed.ID)
			}
			text := scrape(t, s)
			if n := metricValue(t, text, "roundtable_turn_allocations"); n < 1 {
				t.Errorf("roundtable_turn_allocations %v with a relayed participant", n)
			}
			// The server saw each path: the relay by the client's transport.
			waitFor(t, ctx, "both paths counted", func() bool {
				text := scrape(t, s)
				return metricValue(t, text, `roundtable_ice_connected_total{path="relay_`+transport+`"}`) == 1 &&
					metricValue(t, text, `roundtable_ice_connected_total{path="udp"}`) == 1
			})
			// Leaving closes the participant's relays.
			relayed.Leave()
			waitFor(t, ctx, "the relays closed", func() bool {
				return metricValue(t, scrape(t, s), "roundtable_turn_allocations") == 0
			})
		})
	}
}

// Roundtable mints, coturn checks: the TURN REST API credentials work
// against an external coturn started with use-auth-secret and the same
// -turn-secret, the built-in server being off.
func TestExternalCoturn(t *testing.T) {
	bin, err := exec.LookPath("turnserver")
	if err != nil {
		if os.Getenv("RT_REQUIRE_TOOLS") != "" {
			t.Fatal("coturn not installed (scripts/test.sh installs the coturn package)")
		}
		t.Skip("coturn not installed; run scripts/test.sh")
	}
	checkGoroutines(t)
	const secret = "coturn-and-roundtable-share-this"
	port := freeUDPPort(t)
	ctx := testContext(t, 40*time.Second)
	cctx, stop := context.WithCancel(context.Background())
	cmd := exec.CommandContext(cctx, bin, "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
		"--listening-port="+strconv.Itoa(port), "--alt-listening-port="+strconv.Itoa(freeUDPPort(t)),
		"--use-auth-secret", "--static-auth-secret="+secret, "--realm=roundtable",
		"--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers", "--no-tcp-relay",
		"--min-port=40000", "--max-port=40999", "--log-file=stdout", "--simple-log", "--verbose")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logLines []string
	logDone := make(chan struct{})
	ready := make(chan struct{}, 1)
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			logLines = append(logLines, sc.Text())
			if strings.Contains(sc.Text(), "Total UDP servers") || strings.Contains(sc.Text(), "IPv4. UDP listener opened on") {
				select {
				case ready <- struct{}{}:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		stop()
		_ = cmd.Wait()
		<-logDone
		if t.Failed() {
			t.Logf("coturn:\n%s", strings.Join(logLines, "\n"))
		}
	})
	select {
	case <-ready:
	case <-ctx.Done():
		t.Fatal("coturn did not open its UDP listener")
	}

	s := startServer(t, func(c *server.Config, _ *[]interceptor.Factory) {
		c.TURN = false
		c.TURNSecret = secret
		c.ICEServers = []string{"turn:127.0.0.1:" + strconv.Itoa(port) + "?transport=udp"}
	})
	host := s.join(ctx, "coturn", "host", 1, 1)
	relayed := s.joinWith(ctx, client.Config{Room: "coturn", Name: "relayed", Audio: 1, Video: 1, Relay: "udp"})
	if ice := relayed.ICEServers(); len(ice) != 1 || !strings.HasSuffix(ice[0].Username, ":"+relayed.ID) {
		t.Fatalf("iceServers %+v: want only coturn's URL, with a credential minted for %s", ice, relayed.ID)
	}
	exchangeMedia(t, ctx, host, relayed)
	if p := relayed.SelectedPath(); !strings.Contains(p, "relay") {
		t.Errorf("relay-only client's path %q, want a relay candidate", p)
	}
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/internal/netns"
)

// WHIP from an independent stack: aiortc (Debian's python3-aiortc, its
// own ICE, DTLS, SRTP and real Opus and VP8 encoders) in a network
// namespace publishes through the WHIP endpoint; a room member receives
// its audio and video, and its DELETE takes it out of the room.
func TestWHIPFromAiortc(t *testing.T) {
	// Debian's python3, where Debian's python3-aiortc is (another python3
	// may come first on the PATH).
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import aiortc").Run(); err != nil {
		if os.Getenv("RT_REQUIRE_TOOLS") != "" {
			t.Fatalf("python3-aiortc not installed (scripts/test.sh installs it): %v", err)
		}
		t.Skip("python3-aiortc not installed; run scripts/test.sh")
	}
	checkGoroutines(t)
	ns := netns.New(t, "")
	s := startServer(t, inNamespace(ns))
	ctx := testContext(t, 60*time.Second)
	watcher := s.joinWith(ctx, client.Config{Room: "aio", Name: "watcher", Interfaces: []string{ns.HostIf}})

	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := ns.Command(pctx, py, "testdata/whip_aiortc.py", s.URL()+"whip/aio?name=aiortc")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	var all []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			all = append(all, sc.Text())
			lines <- sc.Text()
		}
		close(lines)
	}()
	defer func() {
		_ = stdin.Close()
		cancel()
		<-done
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("aiortc:\n%s", strings.Join(all, "\n"))
		}
	}()
	expect := func(prefix string) string {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("aiortc ended without %q", prefix)
				}
				if rest, found := strings.CutPrefix(l, prefix+" "); found {
					return rest
				}
			case <-ctx.Done():
				t.Fatalf("aiortc: no %q", prefix)
			}
		}
	}
	location := expect("CONNECTED")
	id := location[strings.LastIndex(location, "/")+1:]
	waitFor(t, ctx, "aiortc's audio and video at the watcher", func() bool {
		return packetsFrom(watcher, id, webrtc.RTPCodecTypeVideo) > 50 && packetsFrom(watcher, id, webrtc.RTPCodecTypeAudio) > 50
	})
	if name := watcher.Participants()[id]; name != "aiortc" {
		t.Errorf("the watcher sees %q, want aiortc", name)
	}
	_ = stdin.Close()
	if status := expect("DELETED"); status != "200" {
		t.Errorf("DELETE: %s, want 200", status)
	}
	waitFor(t, ctx, "aiortc gone from the room", func() bool { return slices.Contains(watcher.Departures(), id) })
	watcher.Leave()
}

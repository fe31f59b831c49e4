// Package browser tests the web client in headless Debian Chromium and
// Firefox ESR with fake cameras and microphones, against a real server on
// 127.0.0.1.
package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/roundtable-sfu/roundtable/internal/server"
)

func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("RT_REQUIRE_TOOLS") != "" {
		t.Fatal("chromium not installed (scripts/test.sh installs it)")
	}
	t.Skip("chromium not installed; run scripts/test.sh")
	return ""
}

// startServer starts a server as `go run ./cmd/roundtable` would, on
// ephemeral ports and loopback only: ICE over TCP on as by default, on a
// free port, so the browsers see both kinds of candidates.
func startServer(t *testing.T, opts ...func(*server.Config)) *server.Server {
	cfg := server.DefaultConfig()
	cfg.Listen, cfg.ICEPort, cfg.ICETCPPort, cfg.TURNPort = "127.0.0.1:0", 0, freeTCPPort(t), 0
	cfg.ICEInterfaces, cfg.ICELoopback, cfg.ICEIPv4Only, cfg.MDNS = []string{"lo"}, true, true, false
	for _, o := range opts {
		o(&cfg)
	}
	var w io.Writer = io.Discard
	if os.Getenv("RT_LOG") != "" {
		w = os.Stderr
	}
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv
}

// freeTCPPort returns a TCP port nothing listens on now.
func freeTCPPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// browser starts one headless Chromium; tabs are contexts derived from the
// first one (the first tab must be opened before its siblings).
type browser struct {
	tabSet
	root context.Context
}

// newBrowser starts Chromium with a fake camera and microphone.
func newBrowser(t *testing.T) *browser { return startBrowser(t, true) }

// newBrowserWithoutDevices starts Chromium with no camera or microphone.
func newBrowserWithoutDevices(t *testing.T) *browser { return startBrowser(t, false) }

// startBrowser keeps Chromium's default window size: a test that needs a
// bigger window would hide what users of that default see.
func startBrowser(t *testing.T, devices bool, extra ...chromedp.ExecAllocatorOption) *browser {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.Flag("use-fake-device-for-media-stream", devices),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
	)
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	b := &browser{tabSet: tabSet{t: t, name: "chromium"}}
	root, cancel := chromedp.NewContext(actx, chromedp.WithListener(b.listener(1)))
	t.Cleanup(cancel)
	b.root = root
	return b
}

// listener records console output and exceptions of tab n.
func (b *browser) listener(n int) func(ev any) {
	return func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var parts []string
			for _, a := range ev.Args {
				if a.Description != "" {
					parts = append(parts, a.Description)
				} else {
					parts = append(parts, string(a.Value))
				}
			}
			b.logf(n, "console.%s: %s", ev.Type, strings.Join(parts, " "))
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			if d.Exception != nil {
				b.logf(n, "exception: %s: %s (line %d)", d.Text, d.Exception.Description, d.LineNumber)
			} else {
				b.logf(n, "exception: %s (line %d)", d.Text, d.LineNumber)
			}
		}
	}
}

// open navigates a new tab (the first tab reuses the browser's first target).
func (b *browser) open(url string) context.Context {
	b.t.Helper()
	ctx := b.root
	if len(b.tabs) > 0 {
		var cancel context.CancelFunc
		ctx, cancel = chromedp.NewContext(b.root, chromedp.WithListener(b.listener(len(b.tabs)+1)))
		b.t.Cleanup(cancel)
	}
	// A network namespace made just before (the netns tests) can make
	// Chromium see its interfaces change and abort the first load.
	_, err := chromedp.Run(ctx, chromedp.Navigate(url))
	for try := 0; err != nil && strings.Contains(err.Error(), "ERR_NETWORK_CHANGED") && try < 3; try++ {
		_, err = chromedp.Run(ctx, chromedp.Navigate(url))
	}
	if err != nil {
		b.t.Fatalf("open %s: %v", url, err)
	}
	b.tabs = append(b.tabs, ctx)
	return ctx
}

// tabSet is what Chromium's and Firefox's drivers share: the tabs opened,
// as contexts that eval and waitJS take (a Firefox tab is a context
// carrying a *firefoxTab, see firefox_test.go), and every tab's console.
type tabSet struct {
	t    *testing.T
	name string // "chromium" or "firefox", in front of every line reported
	tabs []context.Context

	mu      sync.Mutex
	console []string // every tab's console and uncaught exceptions
}

// logf records a console line of tab n (1-based).
func (s *tabSet) logf(n int, format string, args ...any) {
	line := fmt.Sprintf("%s tab%d ", s.name, n) + fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.console = append(s.console, line)
	s.mu.Unlock()
}

// screenshots saves every tab and prints the console when the test failed.
func (s *tabSet) screenshots() {
	if !s.t.Failed() {
		return
	}
	s.mu.Lock()
	for _, l := range s.console {
		s.t.Log(l)
	}
	s.mu.Unlock()
	dir := os.Getenv("RT_ARTIFACTS")
	if dir == "" {
		dir = s.t.TempDir()
	}
	for i, ctx := range s.tabs {
		if st, err := evaluate[string](ctx, stateJS); err == nil {
			s.t.Logf("%s tab%d state: %s", s.name, i+1, st)
		}
		if st, err := evaluate[string](ctx, rtpJS); err == nil {
			s.t.Logf("%s tab%d video RTP: %s", s.name, i+1, st)
		}
		if png, err := screenshot(ctx); err == nil {
			p := filepath.Join(dir, fmt.Sprintf("%s-%s-tab%d.png", strings.ReplaceAll(s.t.Name(), "/", "-"), s.name, i+1))
			_ = os.WriteFile(p, png, 0o644)
			s.t.Logf("screenshot: %s", p)
		}
	}
}

// stateJS describes a tab's client state for failure reports.
const stateJS = `JSON.stringify((() => {
  const r = window.roundtable; if (!r) return 'no client';
  const s = r.session;
  return { id: s.id, state: s.state, pc: s.pc && [s.pc.signalingState, s.pc.connectionState],
    tiles: [...r.tiles.tiles].map(([k, t]) => [k, [...t.tracks.keys()], t.video.videoWidth]),
    meta: [...s.meta], people: [...s.people], hints: r.tiles.sent ? [...r.tiles.sent] : [],
    hidden: [...r.tiles.tiles.values()].filter(t => t.el.hidden).map(t => t.key),
    stage: r.stage && { mode: r.stage.mode, pinned: r.stage.pinned, speaker: r.stage.speaker, main: r.stage.lastMain, page: r.stage.page,
      speaking: [...document.querySelectorAll('.tile.speaking')].map(t => t.dataset.participant) } };
})())`

// rtpJS describes a tab's video streams for failure reports (W3C
// webrtc-stats): each received one ("in": track, frames received, decoded,
// dropped, keyframes decoded, PLIs and NACKs sent, packets lost, freezes,
// frames per second) and each sent layer ("out": rid, width, frames per
// second, what limits its quality, target kbit/s, keyframes, PLIs got).
const rtpJS = `(async () => {
  const s = window.roundtable && window.roundtable.session; if (!s || !s.pc) return 'no PeerConnection';
  const out = [];
  (await s.pc.getStats()).forEach(r => {
    if (r.kind !== 'video') return;
    const fps = Math.round(r.framesPerSecond || 0);
    if (r.type === 'inbound-rtp') out.push(['in', r.trackIdentifier, r.framesReceived, r.framesDecoded, r.framesDropped,
      r.keyFramesDecoded, r.pliCount, r.nackCount, r.packetsLost, r.freezeCount, fps]);
    if (r.type === 'outbound-rtp') out.push(['out', r.rid, r.frameWidth, fps, r.qualityLimitationReason,
      Math.round((r.targetBitrate || 0) / 1000), r.keyFramesEncoded, r.pliCount]);
  });
  return JSON.stringify(out);
})()`

// evaluate runs js in a tab of either browser, awaiting a promise.
// Firefox returns primitive values only (return JSON.stringify(...) for
// more).
func evaluate[T any](ctx context.Context, js string) (T, error) {
	if ft := firefoxTabOf(ctx); ft != nil {
		var v T
		raw, err := ft.evaluate(js)
		if err == nil {
			err = json.Unmarshal(raw, &v)
		}
		return v, err
	}
	return chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
}

// screenshot is a PNG of a tab's whole page.
func screenshot(ctx context.Context) ([]byte, error) {
	if ft := firefoxTabOf(ctx); ft != nil {
		return ft.screenshot()
	}
	return chromedp.Run(ctx, chromedp.FullScreenshot(100))
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := evaluate[T](ctx, js)
	if err != nil {
		t.Fatalf("evaluate %q: %v", js, err)
	}
	return v
}

// pollJS is true once js evaluates to true in the tab, false at the timeout.
func pollJS(ctx context.Context, js string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if ok, err := evaluate[bool](ctx, js); err == nil && ok {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func waitJS(t *testing.T, ctx context.Context, what, js string, timeout time.Duration) {
	t.Helper()
	if !pollJS(ctx, js, timeout) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// remoteVideosPlaying is true when n remote tiles show video whose decoded
// frame count grows.
const remoteVideosPlaying = `(async (n) => {
  const pc = window.roundtable && window.roundtable.session.pc;
  if (!pc) return false;
  const vids = [...document.querySelectorAll('.tile:not(.self) video')].filter(v => v.videoWidth > 0);
  if (vids.length < n) return false;
  const frames = async () => {
    let total = 0, count = 0;
    (await pc.getStats()).forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video') { total += s.framesDecoded || 0; count++; } });
    return [total, count];
  };
  const [a, c] = await frames();
  await new Promise(r => setTimeout(r, 500));
  const [b] = await frames();
  return c >= n && b > a;
})`

// The brief's first command: two tabs on the printed URL make a working
// video room, and chat works over the data channel.
func TestTwoTabsMakeAVideoRoom(t *testing.T) {
	srv := startServer(t)
	b := newBrowser(t)
	defer b.screenshots()
	base := srv.URL()
	tab1 := b.open(base + "r/smoke?name=Ann")
	tab2 := b.open(base + "r/smoke?name=Bob")
	for i, tab := range []context.Context{tab1, tab2} {
		waitJS(t, tab, fmt.Sprintf("remote video playing in tab %d", i+1), remoteVideosPlaying+"(1)", 20*time.Second)
	}
	if got := eval[string](t, tab2, `document.querySelector('.tile:not(.self) .label .name').textContent`); got != "Ann" {
		t.Errorf("tab 2 labels the remote tile %q, want Ann", got)
	}
	eval[bool](t, tab1, `document.getElementById('chat-input').value = 'hello from Ann';
		document.getElementById('chat-form').requestSubmit(); true`)
	waitJS(t, tab2, "the chat message", `document.getElementById('messages').textContent.includes('Ann: hello from Ann')`, 5*time.Second)
	// The server offers UDP and TCP candidates; Chromium picks UDP when it can.
	for i, tab := range []context.Context{tab1, tab2} {
		if got := eval[string](t, tab, selectedProtocolJS); got != "udp" {
			t.Errorf("tab %d's selected candidate pair is %q, want udp", i+1, got)
		}
	}
}

// selectedProtocolJS is the protocol of the local candidate of the
// PeerConnection's selected candidate pair.
const selectedProtocolJS = `(async () => {
  const stats = await window.roundtable.session.pc.getStats();
  let proto = '';
  stats.forEach(s => {
    if (s.type === 'transport' && s.selectedCandidatePairId) {
      const pair = stats.get(s.selectedCandidatePairId);
      const local = pair && stats.get(pair.localCandidateId);
      proto = local ? local.protocol : '';
    }
  });
  return proto;
})()`

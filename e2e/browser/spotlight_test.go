package browser

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// mainTile is the key ("participant:kind") of the tile shown large, or ”
// in the grid.
const mainTile = `(() => { const t = document.querySelector('#stage .tile.main'); return t ? t.dataset.participant + ':' + t.dataset.kind : ''; })()`

// mainIsLargest is true when the main tile is more than twice as wide as
// every other tile on the stage.
const mainIsLargest = `(() => {
  const tiles = [...document.querySelectorAll('#stage .tile:not([hidden])')];
  const main = tiles.find(t => t.classList.contains('main'));
  return !!main && tiles.every(t => t === main || main.clientWidth > 2 * t.clientWidth);
})()`

// gridIsEven is true when every shown camera tile has the same size and
// none is main.
const gridIsEven = `(() => {
  const tiles = [...document.querySelectorAll('#stage .tile.camera:not([hidden])')];
  return !document.querySelector('#stage .tile.main') && tiles.every(t => t.clientWidth === tiles[0].clientWidth);
})()`

// canvasShare makes a 640x360 canvas capture and shares it as the screen
// (headless Chromium cannot capture a screen).
const canvasShare = `(() => {
  const c = document.createElement('canvas'); c.width = 640; c.height = 360;
  const g = c.getContext('2d'); let n = 0;
  setInterval(() => { g.fillStyle = n++ % 2 ? '#246' : '#642'; g.fillRect(0, 0, 640, 360); }, 100);
  window.roundtable.shareStream(c.captureStream(10)); return true; })()`

// Issue 12, test 3: pinning, the speaker layout (kept across a reload), a
// screen share taking the main area by itself, and full screen for one
// tile.
func TestSpeakerLayoutPinAndScreenShare(t *testing.T) {
	srv := startServer(t)
	b := newBrowser(t)
	defer b.screenshots()
	tabs := openRoom(b, srv.URL(), "spot", "Ann", "Bob", "Cat")
	for _, tab := range tabs {
		setViewport(t, tab, 1280, 720)
	}
	for _, tab := range tabs {
		waitJS(t, tab, "two remote videos", remoteVideosPlaying+"(2)", 30*time.Second)
	}
	ann, bob, cat := tabs[0], selfID(t, tabs[1]), selfID(t, tabs[2])

	t.Run("pin", func(t *testing.T) {
		waitJS(t, ann, "the grid", gridIsEven, 5*time.Second)
		eval[bool](t, ann, tileOf(bob, "camera")+`.querySelector('.pin').click(); true`)
		waitJS(t, ann, "Bob large", mainTile+` === '`+bob+`:camera' && `+mainIsLargest, 5*time.Second)
		if p := eval[string](t, ann, tileOf(bob, "camera")+`.querySelector('.pin').getAttribute('aria-pressed')`); p != "true" {
			t.Errorf("pin button aria-pressed %q", p)
		}
		waitLayout(t, ann, "pinned", 3, 10*time.Second)
		saveScreenshot(t, ann, "room-pinned-1280x720.png")
		eval[bool](t, ann, tileOf(bob, "camera")+`.querySelector('.pin').click(); true`)
		waitJS(t, ann, "the grid again", gridIsEven, 5*time.Second)
	})

	t.Run("speaker layout kept across a reload", func(t *testing.T) {
		eval[bool](t, ann, `document.getElementById('layout-toggle').click(); true`)
		// The fake microphones beep: the server names an active speaker.
		// Ann's main tile is the speaker's, or, while Ann herself speaks,
		// someone else's.
		speakerShown := `(() => { const m = ` + mainTile + `, s = document.querySelector('#stage .tile.camera.speaking');
			return m !== '' && !m.startsWith(window.roundtable.session.id) && (!s || s.classList.contains('self') || s.classList.contains('main')); })()`
		waitJS(t, ann, "the active speaker large", speakerShown+` && `+mainIsLargest, 10*time.Second)
		if _, err := chromedp.Run(ann, chromedp.Reload()); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ann, "two remote videos after the reload", remoteVideosPlaying+"(2)", 30*time.Second)
		// The choice is kept: someone else large, the toggle pressed.
		waitWhy(t, ann, "the speaker layout after the reload", `(() => { const m = `+mainTile+`;
			const ok = m !== '' && !m.startsWith(window.roundtable.session.id) && document.getElementById('stage').dataset.layout === 'speaker' &&
				document.getElementById('layout-toggle').getAttribute('aria-pressed') === 'true';
			return ok ? '' : JSON.stringify({ main: `+mainTile+`, pressed: document.getElementById('layout-toggle').getAttribute('aria-pressed'),
				stored: localStorage.getItem('roundtable.layout'), mode: window.roundtable && window.roundtable.stage.mode,
				speaking: [...document.querySelectorAll('.tile.speaking')].map(t => t.dataset.participant + (t.classList.contains('self') ? ' self' : '')) }); })()`, 10*time.Second)
		eval[bool](t, ann, `document.getElementById('layout-toggle').click(); true`)
		waitJS(t, ann, "the grid", gridIsEven, 5*time.Second)
	})

	t.Run("screen share takes the main area", func(t *testing.T) {
		eval[bool](t, tabs[2], canvasShare)
		waitJS(t, ann, "Cat's screen large", mainTile+` === '`+cat+`:screen' && `+mainIsLargest, 15*time.Second)
		waitJS(t, ann, "Cat's screen playing", tileOf(cat, "screen")+`.querySelector('video').videoWidth > 0`, 15*time.Second)
		// A pin beats the screen share.
		eval[bool](t, ann, tileOf(bob, "camera")+`.querySelector('.pin').click(); true`)
		waitJS(t, ann, "Bob pinned over the screen", mainTile+` === '`+bob+`:camera'`, 5*time.Second)
		eval[bool](t, ann, tileOf(bob, "camera")+`.querySelector('.pin').click(); true`)
		waitJS(t, ann, "the screen large again", mainTile+` === '`+cat+`:screen'`, 5*time.Second)
		eval[bool](t, tabs[2], `window.roundtable.stopScreen(); true`)
		waitJS(t, ann, "the grid after the share", gridIsEven, 10*time.Second)
	})

	t.Run("full screen", func(t *testing.T) {
		// A real click (a user gesture, which requestFullscreen needs).
		sel := `.tile.camera[data-participant="` + bob + `"] .full`
		if _, err := chromedp.Run(ann, chromedp.Click(chromedp.CSS(sel))); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ann, "Bob's tile full screen", `document.fullscreenElement === `+tileOf(bob, "camera"), 5*time.Second)
		waitJS(t, ann, "filling the window", `(() => { const r = document.fullscreenElement.getBoundingClientRect(); return r.width === innerWidth && r.height === innerHeight; })()`, 5*time.Second)
		eval[bool](t, ann, `document.exitFullscreen().then(() => true)`)
		waitJS(t, ann, "full screen left", `!document.fullscreenElement`, 5*time.Second)
	})
}

// senderTrack is the id of the track a tab sends on its video (or audio)
// sender.
func senderTrack(t *testing.T, tab context.Context, kind string) string {
	return eval[string](t, tab, `(() => { const s = window.roundtable.session.pc.getSenders().find(s => s.track && s.track.kind === '`+kind+`'); return s ? s.track.id : ''; })()`)
}

// waitWhy waits until js, which says what is wrong, returns the empty
// string, and reports its last answer when it never does.
func waitWhy(t *testing.T, tab context.Context, what, js string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		var err error
		if last, err = evaluate[string](tab, js); err == nil && last == "" {
			return
		} else if err != nil {
			last = "error: " + err.Error()
		}
		time.Sleep(150 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %s", what, last)
}

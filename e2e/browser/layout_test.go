package browser

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/roundtable-sfu/roundtable/internal/auth"
	"github.com/roundtable-sfu/roundtable/internal/server"
)

// The window sizes issue 12 names: a phone in portrait, a small window,
// and two common screens.
var viewports = []struct{ w, h int }{{390, 844}, {800, 600}, {1280, 720}, {1920, 1080}}

// setViewport resizes a tab's window (its layout viewport).
func setViewport(t *testing.T, tab context.Context, w, h int) {
	t.Helper()
	if _, err := chromedp.Run(tab, chromedp.EmulateViewport(int64(w), int64(h))); err != nil {
		t.Fatalf("resize to %dx%d: %v", w, h, err)
	}
}

// openRoom opens one tab per name in room, in order.
func openRoom(b *browser, base, room string, names ...string) []context.Context {
	var tabs []context.Context
	for _, n := range names {
		tabs = append(tabs, b.open(base+"r/"+room+"?name="+n))
	}
	return tabs
}

// layoutProblems lists what is wrong with the tab's tiles for n
// participants (” when nothing): a scrollbar, a missing, hidden, tiny,
// overlapping or cut-off tile, or a remote video not decoding.
const layoutProblems = `((n) => {
  const W = innerWidth, H = innerHeight, de = document.documentElement, out = [];
  if (de.scrollWidth > de.clientWidth || de.scrollHeight > de.clientHeight)
    out.push('scrollbar: page ' + de.scrollWidth + 'x' + de.scrollHeight + ' in ' + de.clientWidth + 'x' + de.clientHeight);
  const tiles = [...document.querySelectorAll('#stage .tile.camera')];
  if (tiles.length !== n) out.push(tiles.length + ' camera tiles');
  const boxes = [];
  for (const t of tiles) {
    const name = t.getAttribute('aria-label'), v = t.querySelector('video'), r = v.getBoundingClientRect();
    if (t.hidden || r.width === 0) { out.push(name + ' not shown'); continue; }
    if (r.left < 0 || r.top < 0 || r.right > W || r.bottom > H) out.push(name + ' cut off: ' + [r.left, r.top, r.right, r.bottom].join(','));
    if (r.width < 160) out.push(name + ' ' + r.width + ' px wide');
    if (!t.classList.contains('self') && v.videoWidth === 0) out.push(name + ' not playing');
    for (const b of boxes) if (r.left < b.right && b.left < r.right && r.top < b.bottom && b.top < r.bottom) out.push(name + ' overlaps');
    boxes.push(r);
  }
  return out.join('; ');
})`

// waitLayout waits until layoutProblems is empty in tab, reporting the
// last problems seen.
func waitLayout(t *testing.T, tab context.Context, what string, n int, timeout time.Duration) {
	t.Helper()
	waitWhy(t, tab, what, layoutProblems+"("+strconv.Itoa(n)+")", timeout)
}

// saveScreenshot writes tab's page to $RT_SCREENSHOTS/name (the README's
// pictures: RT_SCREENSHOTS=$PWD/docs/screenshots).
func saveScreenshot(t *testing.T, tab context.Context, name string) {
	dir := os.Getenv("RT_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Issue 12, test 1: with 3 and with 6 participants, at every window size
// from a phone to a large screen, every tab shows every participant's
// video playing and wholly inside the window, with no scrollbar.
func TestLayoutFitsEveryWindow(t *testing.T) {
	for _, n := range []int{3, 6} {
		t.Run(fmt.Sprintf("%d participants", n), func(t *testing.T) {
			srv := startServer(t)
			b := newBrowser(t)
			defer b.screenshots()
			names := []string{"Ann", "Bob", "Cat", "Dan", "Eve", "Fay"}[:n]
			tabs := openRoom(b, srv.URL(), "fit", names...)
			for i, tab := range tabs {
				waitJS(t, tab, fmt.Sprintf("tab %d playing %d remote videos", i+1, n-1), remoteVideosPlaying+"("+strconv.Itoa(n-1)+")", 45*time.Second)
			}
			for _, vp := range viewports {
				for _, tab := range tabs {
					setViewport(t, tab, vp.w, vp.h)
				}
				for i, tab := range tabs {
					waitLayout(t, tab, fmt.Sprintf("%dx%d tab %d", vp.w, vp.h, i+1), n, 15*time.Second)
				}
				if n == 6 {
					saveScreenshot(t, tabs[0], fmt.Sprintf("room-%dx%d.png", vp.w, vp.h))
				}
			}
		})
	}
}

// shownPlaying is true when exactly n remote camera tiles are on the
// current page and each one's video renders new frames.
const shownPlaying = `(async (n) => {
  const vids = [...document.querySelectorAll('#stage .tile.camera:not(.self):not([hidden]) video')];
  if (vids.length !== n) return false;
  const before = vids.map(v => v.getVideoPlaybackQuality().totalVideoFrames);
  await new Promise(r => setTimeout(r, 800));
  return vids.every((v, i) => v.videoWidth > 0 && v.getVideoPlaybackQuality().totalVideoFrames > before[i]);
})`

// waitPaused waits until the server has n paused subscriptions.
func waitPaused(t *testing.T, srv *server.Server, n int64, what string) {
	t.Helper()
	paused := srv.Engine.Stats().PausedSubscriptions.Load
	deadline := time.Now().Add(10 * time.Second)
	for paused() != n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := paused(); got != n {
		t.Fatalf("%s: %d paused subscriptions, want %d", what, got, n)
	}
}

// Issue 12, test 1 (paging): twelve people on an 800x600 window do not
// fit legibly, so the grid pages (nine to a page). The server sends no
// video for the tiles on the other page, and sends it again, from a
// keyframe, when the user turns to that page.
func TestTwelvePeoplePage(t *testing.T) {
	keys := auth.Keys{Key: "k", Secret: strings.Repeat("t", 32)}
	srv := startServer(t, func(c *server.Config) { c.APIKey, c.APISecret = keys.Key, keys.Secret })
	b := newBrowser(t)
	defer b.screenshots()
	mint := func(name string, grants auth.Grants) string {
		tok, err := keys.Mint(auth.Token{Room: "twelve", Identity: name, TTL: time.Hour, Grants: grants}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	viewer := b.open(srv.URL() + "r/twelve?name=Ann&token=" + url.QueryEscape(mint("Ann", auth.All)))
	setViewport(t, viewer, 800, 600)
	// The eleven others are real browser peers, each with its own
	// PeerConnection and socket (session.js), run from one more tab
	// without the room page: one 320x180 camera each (one layer, ten
	// frames a second), so that twelve participants fit on two cores.
	// Their tokens grant no subscribing: every paused subscription is the
	// viewer's.
	var others []string
	for _, n := range []string{"Bob", "Cat", "Dan", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jon", "Kim", "Lea"} {
		others = append(others, fmt.Sprintf("[%q, %q]", n, mint(n, auth.Grants{Publish: true, PublishData: true})))
	}
	farm := b.open(srv.URL())
	eval[bool](t, farm, `(async (people) => {
		const { Session } = await import('/session.js');
		const cam = (await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 180, frameRate: 10 } })).getVideoTracks()[0];
		window.farm = people.map(([name, token]) => {
			const s = new Session({ room: 'twelve', name, token });
			const track = cam.clone();
			s.publish(track, new MediaStream([track]), 'camera');
			s.start();
			return s;
		});
		return true;
	})([`+strings.Join(others, ",")+`])`)
	waitJS(t, viewer, "page 1 of 2", `document.getElementById('page').textContent === 'Page 1 of 2' && !document.getElementById('pager').hidden`, 30*time.Second)
	waitJS(t, viewer, "eight remote videos playing on page 1", shownPlaying+"(8)", 60*time.Second)
	waitLayoutShown(t, viewer, 9)
	waitPaused(t, srv, 3, "page 1")
	saveScreenshot(t, viewer, "room-12-800x600.png")
	if n := eval[int](t, farm, `window.farm.filter(s => s.state === 'connected').length`); n != 11 {
		t.Errorf("%d of the 11 other participants connected", n)
	}

	eval[bool](t, viewer, `document.getElementById('page-next').click(); true`)
	waitJS(t, viewer, "page 2 of 2", `document.getElementById('page').textContent === 'Page 2 of 2'`, 5*time.Second)
	waitJS(t, viewer, "the three on page 2 playing", shownPlaying+"(3)", 15*time.Second)
	waitPaused(t, srv, 8, "page 2")

	eval[bool](t, viewer, `document.getElementById('page-prev').click(); true`)
	waitJS(t, viewer, "page 1 again, playing", shownPlaying+"(8)", 15*time.Second)
	waitPaused(t, srv, 3, "back on page 1")
}

// waitLayoutShown checks the tiles on the current page: n of them, none
// cut off, overlapping or under 160 px, and no scrollbar.
func waitLayoutShown(t *testing.T, tab context.Context, n int) {
	t.Helper()
	js := `(() => { const p = ` + layoutProblems + `(document.querySelectorAll('#stage .tile.camera').length);
	  const shown = document.querySelectorAll('#stage .tile.camera:not([hidden])').length;
	  return p.split('; ').filter(s => s && !s.endsWith(' not shown')).concat(shown === ` + strconv.Itoa(n) + ` ? [] : [shown + ' shown']).join('; '); })()`
	waitWhy(t, tab, "the page's layout", js, 10*time.Second)
}

// Issue 12, test 2: resizing the window resizes the tiles, the client
// sends the new size, and the server switches the simulcast layer: the
// decoded frame width follows, down and back up.
func TestResizeMovesTheLayer(t *testing.T) {
	srv := startServer(t)
	b := newBrowser(t)
	defer b.screenshots()
	tabs := openRoom(b, srv.URL(), "resize", "Pub", "Sub")
	sub := tabs[1]
	setViewport(t, sub, 1920, 1080)
	waitJS(t, sub, "the remote video playing", remoteVideosPlaying+"(1)", 20*time.Second)
	// Chromium turns its upper layers on as its bandwidth estimate grows:
	// the middle one (320 px) at least.
	waitJS(t, sub, "an upper layer in a large window", inboundFrameWidth+`.then(w => w >= 320)`, 30*time.Second)
	tileWidth := `document.querySelector('.tile.camera:not(.self)').clientWidth`
	large := eval[int](t, sub, tileWidth)
	big := eval[int](t, sub, inboundFrameWidth)

	setViewport(t, sub, 360, 300)
	waitJS(t, sub, "the tile resized with the window", tileWidth+` < `+strconv.Itoa(large/2), 5*time.Second)
	small := eval[int](t, sub, tileWidth)
	waitJS(t, sub, "a smaller layer for the small tile", inboundFrameWidth+`.then(w => w > 0 && w < `+strconv.Itoa(big)+`)`, 15*time.Second)
	t.Logf("tile %d px -> %d px, frame width %d -> %d", large, small, big, eval[int](t, sub, inboundFrameWidth))

	setViewport(t, sub, 1280, 720)
	waitJS(t, sub, "the larger layer again", inboundFrameWidth+`.then(w => w >= `+strconv.Itoa(big)+`)`, 15*time.Second)
}

// phoneProblems lists what is wrong with the call page on a phone (”
// for nothing): scrolling, a top bar on two rows, controls out of a
// thumb's reach or too small to hit (44 px, WCAG 2.5.5).
const phoneProblems = `(() => {
  const out = [], de = document.documentElement, H = innerHeight;
  if (de.scrollWidth > de.clientWidth) out.push('horizontal scroll ' + de.scrollWidth);
  if (de.scrollHeight > de.clientHeight) out.push('vertical scroll ' + de.scrollHeight);
  const bar = document.getElementById('topbar'), tops = [...bar.children].filter(c => c.offsetWidth).map(c => c.getBoundingClientRect());
  if (bar.offsetHeight > 56 || tops.some(r => Math.abs(r.top - tops[0].top) > 8)) out.push('top bar on two rows (' + bar.offsetHeight + ' px)');
  const controls = document.getElementById('controls').getBoundingClientRect();
  if (Math.abs(controls.bottom - H) > 1) out.push('controls end at ' + controls.bottom + ' of ' + H);
  for (const b of document.querySelectorAll('#controls button:not([hidden])')) {
    const r = b.getBoundingClientRect();
    if (r.width < 44 || r.height < 44) out.push(b.id + ' ' + r.width + 'x' + r.height);
    if (r.top < H * 0.85 || r.right > innerWidth) out.push(b.id + ' out of reach at ' + r.top + ',' + r.right);
  }
  return out.join('; ');
})()`

// sheetOverStage is true when the open sheet lies over the tiles (which
// keep the whole width) and inside the window.
const sheetOverStage = `((id) => {
  const s = document.getElementById(id).getBoundingClientRect(), g = document.getElementById('stage').getBoundingClientRect();
  return !document.getElementById(id).hidden && g.width === innerWidth && s.top < g.bottom && s.bottom <= innerHeight && s.left >= 0 && s.right <= innerWidth;
})`

// Issue 12, point 4: on a phone, in portrait and landscape, nothing
// scrolls, the top bar stays one row, the controls sit at the bottom in
// thumb-sized buttons, and the chat and people list open as sheets over
// the video; the tiles a sheet covers get no video while it is open.
func TestPhoneLayout(t *testing.T) {
	srv := startServer(t)
	b := newBrowser(t)
	defer b.screenshots()
	tabs := openRoom(b, srv.URL(), "phone-room-with-a-rather-long-name", "Ann", "Bob", "Cat")
	phone := tabs[0]
	for _, size := range []struct{ w, h int64 }{{390, 844}, {844, 390}} {
		if _, err := chromedp.Run(phone, chromedp.EmulateViewport(size.w, size.h, chromedp.EmulateMobile, chromedp.EmulateTouch)); err != nil {
			t.Fatal(err)
		}
		what := fmt.Sprintf("%dx%d", size.w, size.h)
		waitJS(t, phone, "two remote videos", remoteVideosPlaying+"(2)", 30*time.Second)
		waitLayout(t, phone, what, 3, 10*time.Second)
		if p := eval[string](t, phone, phoneProblems); p != "" {
			t.Errorf("%s: %s", what, p)
		}
		for _, sheet := range []string{"chat", "people"} {
			eval[bool](t, phone, `document.getElementById('`+sheet+`-toggle').click(); true`)
			waitJS(t, phone, what+" "+sheet+" as a sheet over the tiles", sheetOverStage+`('`+sheet+`')`, 5*time.Second)
			if p := eval[string](t, phone, phoneProblems); p != "" {
				t.Errorf("%s with the %s open: %s", what, sheet, p)
			}
			if size.w == 390 {
				// Tiles wholly under the sheet get no video until it closes.
				under := eval[int](t, phone, `(() => { const c = document.getElementById('`+sheet+`').getBoundingClientRect();
					return [...document.querySelectorAll('#stage .tile.camera:not(.self)')].filter(el => { const r = el.getBoundingClientRect();
						return r.left >= c.left && r.right <= c.right && r.top >= c.top && r.bottom <= c.bottom; }).length; })()`)
				if under == 0 {
					t.Fatalf("no tile under the %s sheet: the check checks nothing", sheet)
				}
				waitPaused(t, srv, int64(under), sheet+" sheet open")
			}
			if sheet == "chat" && size.w == 390 {
				say(t, tabs[1], "Hello from Bob, with a link: https://example.com/agenda")
				waitJS(t, phone, "Bob's message", `document.getElementById('messages').textContent.includes('Hello from Bob')`, 5*time.Second)
				saveScreenshot(t, phone, "room-phone-chat-390x844.png")
			}
			eval[bool](t, phone, `document.getElementById('`+sheet+`-toggle').click(); true`)
			waitPaused(t, srv, 0, sheet+" sheet closed")
		}
	}
}

// Issue 12, point 1, for every size rather than four: layout.js's plan()
// run in Chromium for 1 to 12 tiles, in the grid and the speaker layout,
// on stages from a phone's to a 2560x1440 screen's. Every tile is on
// exactly one page, inside the stage, 16:9, at least 160 px wide, and
// overlaps no other; a layout pages only when one page cannot hold them.
func TestPlanFitsEverySize(t *testing.T) {
	srv := startServer(t)
	b := newBrowser(t)
	defer b.screenshots()
	tab := b.open(srv.URL())
	problems := eval[string](t, tab, `(async () => {
	  const { plan, MIN_TILE_WIDTH } = await import('/layout.js');
	  const out = [];
	  // Stages: the window less the top bar and the controls (about 104 px).
	  for (let w = 390; w <= 2560; w += 47) for (let h = 390 - 104; h <= 1440 - 104; h += 50) {
	    for (let n = 1; n <= 12; n++) for (const speaker of [false, true]) {
	      const keys = [...Array(n).keys()].map(i => 'p' + i);
	      const main = speaker && n > 1 ? 'p1' : null;
	      const first = plan(keys, w, h, main, 0), seen = new Map();
	      for (let page = 0; page < first.pages; page++) {
	        const p = plan(keys, w, h, main, page), boxes = [];
	        if (p.page !== page) out.push([w, h, n, speaker, 'page ' + page + ' is ' + p.page].join(' '));
	        for (const [k, r] of p.tiles) {
	          if (k !== main) seen.set(k, (seen.get(k) || 0) + 1);
	          const bottom = p.pager ? p.pager.y : h;
	          if (r.x < 0 || r.y < 0 || r.x + r.w > w || r.y + r.h > bottom) out.push([w, h, n, speaker, k, 'outside', JSON.stringify(r)].join(' '));
	          if (r.w < MIN_TILE_WIDTH) out.push([w, h, n, speaker, k, r.w + ' px wide'].join(' '));
	          if (Math.abs(r.h - r.w * 9 / 16) > 1) out.push([w, h, n, speaker, k, 'not 16:9', JSON.stringify(r)].join(' '));
	          for (const o of boxes) if (r.x < o.x + o.w && o.x < r.x + r.w && r.y < o.y + o.h && o.y < r.y + r.h) out.push([w, h, n, speaker, k, 'overlaps'].join(' '));
	          boxes.push(r);
	        }
	      }
	      const want = main ? n - 1 : n;
	      if (seen.size !== want || [...seen.values()].some(c => c !== 1)) out.push([w, h, n, speaker, 'tiles on pages: ' + JSON.stringify([...seen])].join(' '));
	      if (first.pages > 1 && !main && n <= 6 && h >= 600 - 104) out.push([w, h, n, speaker, 'pages with ' + n].join(' '));
	    }
	  }
	  return out.slice(0, 20).join('\n');
	})()`)
	if problems != "" {
		t.Errorf("plan():\n%s", problems)
	}
}

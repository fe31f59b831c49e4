package browser

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// axeSource is axe-core's axe.min.js, which scripts/test.sh installs from
// npm and names in RT_AXE.
func axeSource(t *testing.T) string {
	p := os.Getenv("RT_AXE")
	if p == "" {
		if os.Getenv("RT_REQUIRE_TOOLS") != "" {
			t.Fatal("RT_AXE is not set (scripts/test.sh installs axe-core)")
		}
		t.Skip("RT_AXE not set: run scripts/test.sh")
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// axeViolations runs axe-core in tab and returns its serious and critical
// violations, one line each ("" for none).
func axeViolations(t *testing.T, tab context.Context, axe string) string {
	t.Helper()
	if !eval[bool](t, tab, `typeof window.axe === 'object'`) {
		eval[bool](t, tab, axe+"\n;true")
	}
	return eval[string](t, tab, `axe.run(document, { resultTypes: ['violations'] }).then(r => r.violations
		.filter(v => v.impact === 'serious' || v.impact === 'critical')
		.map(v => v.id + ' (' + v.impact + '): ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))
		.join('\n'))`)
}

// key types one key (with modifiers) into a tab as the user would.
func key(t *testing.T, tab context.Context, k string, mods ...chromedp.Modifier) {
	t.Helper()
	var opts []chromedp.KeyOption
	if len(mods) > 0 {
		opts = append(opts, chromedp.KeyModifiers(mods...))
	}
	if _, err := chromedp.Run(tab, chromedp.KeyEvent(k, opts...)); err != nil {
		t.Fatalf("key %q: %v", k, err)
	}
}

// announced waits until the screen-reader live region says text.
func announced(t *testing.T, tab context.Context, text string) {
	t.Helper()
	waitJS(t, tab, "the announcement "+text, `document.getElementById('announcer').textContent.trim() === '`+text+`'`, 5*time.Second)
}

// Issue 12, test 5: the keyboard shortcuts, focus, announcements, and an
// axe-core check of every page and dialog that finds nothing serious.
func TestKeyboardAndAccessibility(t *testing.T) {
	axe := axeSource(t)
	srv := startServer(t)
	b := newBrowser(t)
	defer b.screenshots()

	home := b.open(srv.URL())
	waitJS(t, home, "the start page", `!document.getElementById('home').hidden`, 5*time.Second)
	if v := axeViolations(t, home, axe); v != "" {
		t.Errorf("start page:\n%s", v)
	}
	pre := b.open(srv.URL() + "r/keys")
	waitJS(t, pre, "the pre-join page", `!document.getElementById('prejoin').hidden && document.getElementById('preview').videoWidth > 0`, 10*time.Second)
	if v := axeViolations(t, pre, axe); v != "" {
		t.Errorf("pre-join page:\n%s", v)
	}

	ann := b.open(srv.URL() + "r/keys?name=Ann")
	setViewport(t, ann, 1280, 720)
	waitJS(t, ann, "joined", `window.roundtable && window.roundtable.session.state === 'connected'`, 15*time.Second)
	bob := b.open(srv.URL() + "r/keys?name=Bob")
	announced(t, ann, "Bob joined")
	waitJS(t, ann, "Bob's video", remoteVideosPlaying+"(1)", 20*time.Second)
	_ = bob

	t.Run("shortcuts", func(t *testing.T) {
		key(t, ann, "m")
		waitJS(t, ann, "the microphone off", `document.getElementById('mic').getAttribute('aria-pressed') === 'false' && !window.roundtable.local.mic.enabled`, 5*time.Second)
		announced(t, ann, "Microphone off")
		key(t, ann, "m")
		waitJS(t, ann, "the microphone on", `window.roundtable.local.mic.enabled`, 5*time.Second)
		key(t, ann, "v")
		waitJS(t, ann, "the camera off", `document.getElementById('cam').getAttribute('aria-pressed') === 'false' && !window.roundtable.local.camera.enabled`, 5*time.Second)
		announced(t, ann, "Camera off")
		key(t, ann, "v")
		waitJS(t, ann, "the camera on", `window.roundtable.local.camera.enabled`, 5*time.Second)

		key(t, ann, "c")
		waitJS(t, ann, "the chat open, its field focused", `!document.getElementById('chat').hidden && document.activeElement.id === 'chat-input'`, 5*time.Second)
		// Typing in the chat is typing, not shortcuts.
		key(t, ann, "m")
		if eval[bool](t, ann, `!window.roundtable.local.mic.enabled`) {
			t.Error("typing m in the chat muted the microphone")
		}
		key(t, ann, kb.Escape)
		waitJS(t, ann, "the chat closed, focus back on its button", `document.getElementById('chat').hidden && document.activeElement.id === 'chat-toggle'`, 5*time.Second)
		key(t, ann, "p")
		waitJS(t, ann, "the people list open", `!document.getElementById('people').hidden && document.getElementById('people-list').textContent.includes('Bob')`, 5*time.Second)
		if v := axeViolations(t, ann, axe); v != "" {
			t.Errorf("call page, people list open:\n%s", v)
		}
		key(t, ann, kb.Escape)
		key(t, ann, "g")
		waitJS(t, ann, "the speaker layout", `document.getElementById('stage').dataset.layout === 'speaker'`, 5*time.Second)
		key(t, ann, "g")
		waitJS(t, ann, "the grid", `document.getElementById('stage').dataset.layout === 'grid'`, 5*time.Second)
	})

	t.Run("focus is visible", func(t *testing.T) {
		// From the top bar's first button through every control, by Tab.
		key(t, ann, kb.Escape) // the last input came from the keyboard
		eval[bool](t, ann, `document.getElementById('layout-toggle').focus(); true`)
		checked := 0
		for range 20 {
			if eval[bool](t, ann, `document.activeElement === document.body`) {
				break // past the last control
			}
			checked++
			style := eval[string](t, ann, `(() => { const s = getComputedStyle(document.activeElement); return s.outlineStyle + ' ' + s.outlineWidth; })()`)
			if strings.HasPrefix(style, "none") || strings.HasSuffix(style, " 0px") {
				t.Errorf("%s focused without an outline (%s)", eval[string](t, ann, `document.activeElement.outerHTML.slice(0, 80)`), style)
			}
			key(t, ann, kb.Tab)
		}
		if checked < 10 {
			t.Errorf("Tab reached %d controls, want the top bar's, the tiles' and the call controls", checked)
		}
	})

	t.Run("help and axe", func(t *testing.T) {
		eval[bool](t, ann, `document.activeElement.blur(); true`)
		key(t, ann, "?")
		waitJS(t, ann, "the shortcuts dialog", `document.getElementById('help').open && document.getElementById('help').textContent.includes('Leave the call')`, 5*time.Second)
		if v := axeViolations(t, ann, axe); v != "" {
			t.Errorf("help dialog:\n%s", v)
		}
		key(t, ann, kb.Escape)
		waitJS(t, ann, "the dialog closed", `!document.getElementById('help').open`, 5*time.Second)
		eval[bool](t, ann, `document.getElementById('settings-open').click(); true`)
		waitJS(t, ann, "the settings dialog", `document.getElementById('settings').open && document.getElementById('set-camera').options.length > 0`, 5*time.Second)
		if v := axeViolations(t, ann, axe); v != "" {
			t.Errorf("settings dialog:\n%s", v)
		}
		key(t, ann, kb.Escape)
		eval[bool](t, ann, `document.getElementById('chat-toggle').click(); true`)
		if v := axeViolations(t, ann, axe); v != "" {
			t.Errorf("call page, chat open:\n%s", v)
		}
		eval[bool](t, ann, `document.getElementById('chat-toggle').click(); true`)
	})

	t.Run("leave", func(t *testing.T) {
		eval[bool](t, ann, `document.activeElement.blur(); true`)
		key(t, ann, "L", chromedp.ModifierShift)
		waitJS(t, bob, "Ann gone from Bob's room", remoteCameraTiles+` === 0`, 10*time.Second)
	})
}

package browser

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// say sends a chat message from a tab.
func say(t *testing.T, tab context.Context, text string) {
	t.Helper()
	eval[bool](t, tab, `(() => { document.getElementById('chat-input').value = `+jsString(text)+`;
		document.getElementById('chat-form').requestSubmit(); return true; })()`)
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`, "<", `\x3c`).Replace(s) + "'"
}

// Issue 12, test 6: the unread count, names and messages carrying HTML
// shown as text, web links made safe links, long messages wrapped, and
// the history kept across a reconnect and a reload.
func TestChatBehaves(t *testing.T) {
	srv := startServer(t)
	b := newBrowser(t)
	defer b.screenshots()
	const evilName = `<img src=x onerror="window.pwned=1">Eve`
	ann := b.open(srv.URL() + "r/chat?name=Ann")
	eve := b.open(srv.URL() + "r/chat?name=" + url.QueryEscape(evilName))
	for _, tab := range []context.Context{ann, eve} {
		setViewport(t, tab, 800, 600)
		waitJS(t, tab, "the remote video", remoteVideosPlaying+"(1)", 20*time.Second)
	}

	evil := `<script>window.pwned=2</script><img src=x onerror="window.pwned=3"> read https://example.com/a?b=1&c=2. or javascript:alert(1)`
	long := strings.Repeat("w", 3000)
	say(t, eve, evil)
	say(t, eve, long)
	waitJS(t, ann, "two unread", `!document.getElementById('chat-unread').hidden &&
		document.getElementById('chat-unread').textContent === '2 unread' &&
		document.getElementById('chat').hidden`, 5*time.Second)
	announced(t, ann, "Message from "+evilName)

	eval[bool](t, ann, `document.getElementById('chat-toggle').click(); true`)
	waitJS(t, ann, "the badge gone with the chat open", `document.getElementById('chat-unread').hidden && !document.getElementById('chat').hidden`, 5*time.Second)
	checks := map[string]string{
		"the name as text":              `document.querySelector('#messages li strong').textContent === ` + jsString(evilName+": "),
		"the message as text":           `document.querySelector('#messages li .text').textContent === ` + jsString(evil),
		"no element from the message":   `document.querySelectorAll('#messages script, #messages img, #stage .label img, #people-list img').length === 0`,
		"no script ran":                 `window.pwned === undefined`,
		"one link, to the web address":  `(() => { const a = document.querySelectorAll('#messages a'); return a.length === 1 && a[0].href === 'https://example.com/a?b=1&c=2' && a[0].textContent === 'https://example.com/a?b=1&c=2'; })()`,
		"the link opens apart":          `(() => { const a = document.querySelector('#messages a'); return a.target === '_blank' && a.relList.contains('noopener') && a.relList.contains('noreferrer'); })()`,
		"the long message wraps":        `[...document.querySelectorAll('#messages li')].every(li => li.scrollWidth <= li.clientWidth + 1) && document.getElementById('messages').scrollWidth <= document.getElementById('messages').clientWidth + 1`,
		"no horizontal scroll anywhere": `document.documentElement.scrollWidth <= document.documentElement.clientWidth`,
	}
	for what, js := range checks {
		if !eval[bool](t, ann, js) {
			t.Errorf("Ann's chat: not %s", what)
		}
	}

	// A dropped socket: the client joins again; the history stays.
	if !srv.Signal.CloseParticipant(selfID(t, ann), "test_drop") {
		t.Fatal("no session for Ann")
	}
	waitJS(t, ann, "Ann back", `window.roundtable.session.state === 'connected'`, 15*time.Second)
	if n := eval[int](t, ann, `document.querySelectorAll('#messages li').length`); n != 2 {
		t.Errorf("%d messages after the reconnect, want 2", n)
	}
	// A reload: the history comes back from the tab's session storage,
	// still as text.
	if _, err := chromedp.Run(ann, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ann, "Ann back after the reload", `window.roundtable && window.roundtable.session.state === 'connected'`, 15*time.Second)
	waitJS(t, ann, "the history after the reload", `document.querySelectorAll('#messages li').length === 2 &&
		document.querySelector('#messages li .text').textContent === `+jsString(evil)+` && window.pwned === undefined`, 5*time.Second)
	say(t, ann, "still here")
	waitJS(t, eve, "Ann's message after her reload", `document.getElementById('messages').textContent.includes('Ann: still here')`, 10*time.Second)
}

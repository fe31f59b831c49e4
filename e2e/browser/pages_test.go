package browser

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/roundtable-sfu/roundtable/internal/server"
	"github.com/roundtable-sfu/roundtable/web"
)

// The pages around the room: start page, pre-join screen with preview and
// device pickers, and the clear messages for a bad room name, a full room
// and an unreachable server; every button has a label.
func TestPagesAndErrors(t *testing.T) {
	srv := startServer(t, func(c *server.Config) { c.MaxParticipants = 1 })
	b := newBrowser(t)
	defer b.screenshots()
	base := srv.URL()

	t.Run("start page", func(t *testing.T) {
		tab := b.open(base)
		waitJS(t, tab, "the start form with a generated room", `!document.getElementById('home').hidden &&
			/^[A-Za-z0-9._-]+$/.test(document.getElementById('home-room').value)`, 5*time.Second)
		eval[bool](t, tab, `document.getElementById('home-room').value = 'from-home';
			document.getElementById('home-name').value = 'Hal';
			document.getElementById('home-form').requestSubmit(); true`)
		waitJS(t, tab, "the room from the start page", `location.pathname === '/r/from-home' &&
			window.roundtable && window.roundtable.session.state === 'connected'`, 15*time.Second)
		eval[bool](t, tab, `document.getElementById('leave').click(); true`)
	})

	t.Run("pre-join", func(t *testing.T) {
		tab := b.open(base + "r/prejoin")
		waitJS(t, tab, "the camera preview", `!document.getElementById('prejoin').hidden &&
			document.getElementById('preview').videoWidth > 0`, 10*time.Second)
		waitJS(t, tab, "device pickers", `document.querySelectorAll('#camera-select option').length > 0 &&
			document.querySelectorAll('#mic-select option').length > 0`, 5*time.Second)
		eval[bool](t, tab, `document.getElementById('prejoin-name').value = 'Pia';
			document.getElementById('prejoin-form').requestSubmit(); true`)
		waitJS(t, tab, "joined from the pre-join screen", `window.roundtable && window.roundtable.session.state === 'connected'`, 15*time.Second)
		unlabelled := eval[int](t, tab, `[...document.querySelectorAll('button, input, select')].filter(e =>
			!(e.textContent.trim() || e.getAttribute('aria-label') || (e.labels && e.labels.length))).length`)
		if unlabelled != 0 {
			t.Errorf("%d controls without a label", unlabelled)
		}

		full := b.open(base + "r/prejoin?name=Second")
		waitJS(t, full, "the room-full message", `!document.getElementById('fatal').hidden &&
			document.getElementById('fatal-title').textContent.includes('full')`, 10*time.Second)
	})

	t.Run("bad room name", func(t *testing.T) {
		tab := b.open(base + "r/no%20spaces?name=x")
		waitJS(t, tab, "the bad-name message", `!document.getElementById('fatal').hidden &&
			document.getElementById('fatal-title').textContent === 'Bad room name'`, 5*time.Second)
	})

	t.Run("server unreachable", func(t *testing.T) {
		// The page, but no signaling behind it.
		pages := httptest.NewServer(web.Handler())
		defer pages.Close()
		tab := b.open(pages.URL + "/r/lonely?name=x")
		waitJS(t, tab, "the unreachable message", `!document.getElementById('hint').hidden &&
			document.getElementById('hint').textContent.includes('Cannot reach the server') &&
			document.getElementById('status').textContent === 'connecting'`, 15*time.Second)
	})
}

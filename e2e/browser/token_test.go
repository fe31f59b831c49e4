package browser

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/roundtable-sfu/roundtable/internal/auth"
	"github.com/roundtable-sfu/roundtable/internal/server"
)

// On a server that requires tokens, the room link's ?token= gets the tab
// in (through the pre-join screen too), and a link without one shows a
// clear message instead of a broken room. A second tab with the same
// token replaces the first, which stays out.
func TestRoomLinkToken(t *testing.T) {
	keys := auth.Keys{Key: "k", Secret: strings.Repeat("b", 32)}
	srv := startServer(t, func(c *server.Config) { c.APIKey, c.APISecret = keys.Key, keys.Secret })
	b := newBrowser(t)
	defer b.screenshots()
	tok, err := keys.Mint(auth.Token{Room: "guarded", Identity: "tess", TTL: time.Hour,
		Grants: auth.Grants{Publish: true, Subscribe: true, PublishData: true}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	base := srv.URL() + "r/guarded"

	none := b.open(base + "?name=Nobody")
	waitJS(t, none, "the invitation message", `!document.getElementById('fatal').hidden &&
		document.getElementById('fatal-title').textContent === 'This room needs an invitation'`, 10*time.Second)

	direct := b.open(base + "?name=Tess&token=" + url.QueryEscape(tok))
	waitJS(t, direct, "joined with the link's token", `window.roundtable && window.roundtable.session.state === 'connected'`, 15*time.Second)

	pre := b.open(base + "?token=" + url.QueryEscape(tok))
	waitJS(t, pre, "the pre-join screen with its preview", `!document.getElementById('prejoin').hidden &&
		document.getElementById('preview').videoWidth > 0`, 10*time.Second)
	// Submitted as soon as the preview shows, while the device lists may
	// still be filling: the form must not submit natively (a CI run saw
	// the page reload that way, before the handler was set up first).
	eval[bool](t, pre, `document.getElementById('prejoin-name').value = 'Tess again';
		document.getElementById('prejoin-form').requestSubmit(); true`)
	waitJS(t, pre, "joined from the pre-join screen, token kept", `window.roundtable && window.roundtable.session.state === 'connected' &&
		new URLSearchParams(location.search).get('token') !== null`, 15*time.Second)

	// Both tabs hold the same identity: the second replaced the first,
	// which says so and does not rejoin (that would push the second out).
	waitJS(t, direct, "the first tab replaced", `!document.getElementById('fatal').hidden &&
		document.getElementById('fatal-title').textContent === 'You joined from somewhere else' &&
		window.roundtable.session.state === 'closed'`, 10*time.Second)
	time.Sleep(2 * time.Second) // a rejoin would have happened by now (backoff 0.5 s)
	if st := eval[string](t, pre, `window.roundtable.session.state`); st != "connected" {
		t.Errorf("second tab %s after the first was replaced, want connected", st)
	}
	if _, n := srv.Rooms.Counts(); n != 1 {
		t.Errorf("%d participants, want 1", n)
	}
}

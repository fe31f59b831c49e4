package browser

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/roundtable-sfu/roundtable/internal/server"
	"github.com/roundtable-sfu/roundtable/internal/testcluster"
	"github.com/roundtable-sfu/roundtable/room"
)

// Issue 16, test 2: two nodes on one Redis behind haproxy; two Chromium
// tabs, whose sockets land on different nodes, see and hear each other
// through the relay, and chat.
func TestClusterTabsOnTwoNodes(t *testing.T) {
	rd := testcluster.StartRedis(t)
	var nodes []*server.Server
	var backends []string
	for _, id := range []string{"n1", "n2"} {
		// A short resume window: at the end, the tabs' participants
		// stay for it while their nodes drain (docs/cluster.md).
		srv := startServer(t, func(c *server.Config) { c.RedisURL, c.NodeID, c.ResumeWindow = rd.URL(), id, 2*time.Second })
		nodes = append(nodes, srv)
		backends = append(backends, srv.Addr().String())
	}
	h := testcluster.StartHAProxy(t, backends...)
	base := "http://" + h.Addr + "/"
	b := newBrowser(t)
	defer b.screenshots()

	// haproxy goes round-robin over every request (the page, its scripts,
	// the socket), so which node a tab's socket reaches depends on how many
	// came before: open the second tab again until it is on the other node.
	tab1 := b.open(base + "r/span?name=Ann")
	waitJS(t, tab1, "tab 1 joined", `!!(window.roundtable && window.roundtable.session.id)`, 20*time.Second)
	ann := selfID(t, tab1)
	nodeOf := func(id string) int {
		for i, n := range nodes {
			_, members, _ := n.Rooms.Room("span")
			if slices.ContainsFunc(members, func(m room.MemberInfo) bool { return m.ID == id }) {
				return i
			}
		}
		return -1
	}
	tab2 := b.open(base + "r/span?name=Bob")
	var bob string
	for attempt := 0; ; attempt++ {
		waitJS(t, tab2, "tab 2 joined", `!!(window.roundtable && window.roundtable.session.id)`, 20*time.Second)
		bob = selfID(t, tab2)
		if nodeOf(bob) != nodeOf(ann) && nodeOf(bob) >= 0 {
			break
		}
		if attempt == 5 {
			t.Fatalf("both tabs keep landing on node %d", nodeOf(ann))
		}
		if _, err := chromedp.Run(tab2, chromedp.Navigate(base+"r/span?name=Bob")); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("Ann on node %d, Bob on node %d", nodeOf(ann)+1, nodeOf(bob)+1)
	for i, tab := range []context.Context{tab1, tab2} {
		waitJS(t, tab, fmt.Sprintf("remote video playing in tab %d", i+1), remoteVideosPlaying+"(1)", 30*time.Second)
		waitJS(t, tab, fmt.Sprintf("remote audio flowing in tab %d", i+1), remoteAudioFlowing+"(1)", 10*time.Second)
	}
	if got := eval[string](t, tab2, `document.querySelector('.tile:not(.self) .label .name').textContent`); got != "Ann" {
		t.Errorf("tab 2 labels the remote tile %q, want Ann", got)
	}
	eval[bool](t, tab1, `document.getElementById('chat-input').value = 'hello across nodes';
		document.getElementById('chat-form').requestSubmit(); true`)
	waitJS(t, tab2, "the chat message", `document.getElementById('messages').textContent.includes('Ann: hello across nodes')`, 5*time.Second)
	for _, n := range nodes {
		if got := n.Rooms.RelayCount(); got != 1 {
			t.Errorf("node %s has %d relays, want 1", n.Cluster.ID(), got)
		}
	}
}

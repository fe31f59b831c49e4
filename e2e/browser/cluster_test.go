package browser

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/roundtable-sfu/roundtable/internal/client"
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

// A drained node's tab moves (issue 16, point 5, as a browser sees it):
// Ann and Bob on two nodes; Bob's node shuts down (the drain SIGTERM
// starts): Bob's tab gets reconnect, resumes on Ann's node, is told it
// migrated and makes a new PeerConnection; both see and hear each other
// again, Ann's tab never dropped Bob's tile, and the drain ends once he
// moved.
func TestClusterDrainMovesTab(t *testing.T) {
	rd := testcluster.StartRedis(t)
	var nodes []*server.Server
	var backends []string
	for _, id := range []string{"d1", "d2"} {
		srv := startServer(t, func(c *server.Config) {
			c.RedisURL, c.NodeID, c.ResumeWindow, c.DrainTimeout = rd.URL(), id, 2*time.Second, 15*time.Second
		})
		nodes = append(nodes, srv)
		backends = append(backends, srv.Addr().String())
	}
	h := testcluster.StartHAProxy(t, backends...)
	base := "http://" + h.Addr + "/"
	b := newBrowser(t)
	defer b.screenshots()
	nodeOf := func(id string) int {
		for i, n := range nodes {
			_, members, _ := n.Rooms.Room("move")
			if slices.ContainsFunc(members, func(m room.MemberInfo) bool { return m.ID == id }) {
				return i
			}
		}
		return -1
	}
	tab1 := b.open(base + "r/move?name=Ann")
	waitJS(t, tab1, "tab 1 joined", `!!(window.roundtable && window.roundtable.session.id)`, 20*time.Second)
	ann := selfID(t, tab1)
	tab2 := b.open(base + "r/move?name=Bob")
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
		if _, err := chromedp.Run(tab2, chromedp.Navigate(base+"r/move?name=Bob")); err != nil {
			t.Fatal(err)
		}
	}
	for i, tab := range []context.Context{tab1, tab2} {
		waitJS(t, tab, fmt.Sprintf("remote video playing in tab %d", i+1), remoteVideosPlaying+"(1)", 30*time.Second)
	}
	// Ann's tab notes any tile of Bob's that goes away.
	eval[bool](t, tab1, `window.__bobGone = false;
		new MutationObserver(() => { if (!document.querySelector('.tile.camera[data-participant="`+bob+`"]')) window.__bobGone = true; })
			.observe(document.body, {childList: true, subtree: true}); true`)
	oldPC := `window.__oldPC = window.roundtable.session.pc; true`
	eval[bool](t, tab2, oldPC)

	drained := nodes[nodeOf(bob)]
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- drained.Shutdown(ctx)
	}()
	waitJS(t, tab2, "a new PeerConnection in tab 2", `window.roundtable.session.pc && window.roundtable.session.pc !== window.__oldPC`, 15*time.Second)
	for i, tab := range []context.Context{tab1, tab2} {
		waitJS(t, tab, fmt.Sprintf("remote video playing again in tab %d", i+1), remoteVideosPlaying+"(1)", 20*time.Second)
		waitJS(t, tab, fmt.Sprintf("remote audio flowing again in tab %d", i+1), remoteAudioFlowing+"(1)", 10*time.Second)
	}
	t.Logf("Bob moved and both see each other %v after the drain began", time.Since(start).Round(time.Millisecond))
	if err := <-done; err != nil {
		t.Errorf("the drain: %v", err)
	}
	t.Logf("the drained node stopped %v after the drain began", time.Since(start).Round(time.Millisecond))
	if gone := eval[bool](t, tab1, `window.__bobGone`); gone {
		t.Errorf("Ann's tab dropped Bob's tile during the move")
	}
	if id := selfID(t, tab2); id != bob {
		t.Errorf("Bob is %s after the move, was %s", id, bob)
	}
	if n := nodeOf(bob); n < 0 || nodes[n] == drained {
		t.Errorf("Bob is on node %d after the move", n)
	}
}

// A join redirected (issue 16, point 3, as a browser sees it): node p1,
// with -cluster-redirect, is busier than p2 (two pion members); a tab
// opened on p1 for a new room is told to join on p2, and does.
func TestClusterRedirectsTab(t *testing.T) {
	rd := testcluster.StartRedis(t)
	busy := startServer(t, func(c *server.Config) {
		c.RedisURL, c.NodeID, c.ResumeWindow, c.ClusterRedirect = rd.URL(), "p1", 2*time.Second, true
	})
	idle := startServer(t, func(c *server.Config) { c.RedisURL, c.NodeID, c.ResumeWindow = rd.URL(), "p2", 2*time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range []string{"ann", "bob"} {
		c, err := client.Join(ctx, client.Config{URL: busy.WSURL(), Room: "elsewhere", Name: n})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Abort()
	}
	if err := client.Wait(ctx, func() bool {
		for _, ni := range busy.Cluster.Nodes() {
			if ni.ID == "p1" && ni.Load.Participants == 2 {
				return len(busy.Cluster.Nodes()) == 2
			}
		}
		return false
	}); err != nil {
		t.Fatal("the loads never reached the registry")
	}
	b := newBrowser(t)
	defer b.screenshots()
	tab := b.open(busy.URL() + "r/fresh?name=Cat")
	waitJS(t, tab, "joined", `!!(window.roundtable && window.roundtable.session.id)`, 20*time.Second)
	cat := selfID(t, tab)
	if _, members, ok := idle.Rooms.Room("fresh"); !ok || len(members) != 1 || members[0].ID != cat {
		t.Errorf("the new room is not on the idle node with Cat in it: %v %v", ok, members)
	}
	if _, _, ok := busy.Rooms.Room("fresh"); ok {
		t.Errorf("the busy node holds the new room")
	}
	if got := eval[string](t, tab, `window.roundtable.session.url`); !strings.Contains(got, idle.Addr().String()) {
		t.Errorf("the tab's socket is %s, want the idle node's", got)
	}
}

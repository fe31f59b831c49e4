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

// twoNodes is a cluster of two in-process nodes on one Redis behind
// haproxy, and a Chromium.
type twoNodes struct {
	t     *testing.T
	nodes []*server.Server
	base  string // haproxy's URL
	b     *browser
}

// startTwoNodes starts the two nodes (drain timeout drain; a short resume
// window: at the end, the tabs' participants stay for it while their nodes
// drain, docs/cluster.md), haproxy and the browser.
func startTwoNodes(t *testing.T, id1, id2 string, drain time.Duration) *twoNodes {
	rd := testcluster.StartRedis(t)
	c := &twoNodes{t: t}
	var backends []string
	for _, id := range []string{id1, id2} {
		srv := startServer(t, func(cfg *server.Config) {
			cfg.RedisURL, cfg.NodeID, cfg.ResumeWindow, cfg.DrainTimeout = rd.URL(), id, 2*time.Second, drain
		})
		c.nodes = append(c.nodes, srv)
		backends = append(backends, srv.Addr().String())
	}
	c.base = "http://" + testcluster.StartHAProxy(t, backends...).Addr + "/"
	c.b = newBrowser(t)
	t.Cleanup(c.b.screenshots)
	return c
}

// nodeOf returns the index of the node that has participant id in
// roomName, -1 if none.
func (c *twoNodes) nodeOf(roomName, id string) int {
	for i, n := range c.nodes {
		_, members, _ := n.Rooms.Room(roomName)
		if slices.ContainsFunc(members, func(m room.MemberInfo) bool { return m.ID == id }) {
			return i
		}
	}
	return -1
}

// tabsOnTwoNodes opens Ann's and Bob's tabs on roomName through haproxy,
// Bob's again until its socket is on the other node than Ann's: haproxy
// goes round-robin over every request (the page, its scripts, the
// socket), so where a socket lands depends on how many came before.
func (c *twoNodes) tabsOnTwoNodes(roomName string) (tab1, tab2 context.Context, ann, bob string) {
	t := c.t
	t.Helper()
	tab1 = c.b.open(c.base + "r/" + roomName + "?name=Ann")
	waitJS(t, tab1, "tab 1 joined", `!!(window.roundtable && window.roundtable.session.id)`, 20*time.Second)
	ann = selfID(t, tab1)
	tab2 = c.b.open(c.base + "r/" + roomName + "?name=Bob")
	for attempt := 0; ; attempt++ {
		waitJS(t, tab2, "tab 2 joined", `!!(window.roundtable && window.roundtable.session.id)`, 20*time.Second)
		bob = selfID(t, tab2)
		if n := c.nodeOf(roomName, bob); n >= 0 && n != c.nodeOf(roomName, ann) {
			return tab1, tab2, ann, bob
		}
		if attempt == 5 {
			t.Fatalf("both tabs keep landing on node %d", c.nodeOf(roomName, ann))
		}
		if _, err := chromedp.Run(tab2, chromedp.Navigate(c.base+"r/"+roomName+"?name=Bob")); err != nil {
			t.Fatal(err)
		}
	}
}

// Issue 16, test 2: two nodes on one Redis behind haproxy; two Chromium
// tabs, whose sockets land on different nodes, see and hear each other
// through the relay, and chat.
func TestClusterTabsOnTwoNodes(t *testing.T) {
	c := startTwoNodes(t, "n1", "n2", 10*time.Second)
	tab1, tab2, ann, bob := c.tabsOnTwoNodes("span")
	nodeOf := func(id string) int { return c.nodeOf("span", id) }
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
	for _, n := range c.nodes {
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
	c := startTwoNodes(t, "d1", "d2", 15*time.Second)
	nodes := c.nodes
	nodeOf := func(id string) int { return c.nodeOf("move", id) }
	tab1, tab2, _, bob := c.tabsOnTwoNodes("move")
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
	// Both nodes run in this process, and each heartbeat samples its CPU
	// over its own second: under load the two samples may differ by more
	// than the margin, and the busy node is then not busier. What is
	// tested here is the tab following the redirect, so wait for a
	// heartbeat whose loads call for one.
	if err := client.Wait(ctx, func() bool {
		url, err := busy.Cluster.Place("fresh")
		return err == nil && strings.Contains(url, idle.Addr().String())
	}); err != nil {
		t.Fatal("the busy node never placed a new room on the idle one")
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

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/admin"
	"github.com/roundtable-sfu/roundtable/internal/client"
	"github.com/roundtable-sfu/roundtable/internal/testcluster"
)

// node is one roundtable process of a test cluster.
type node struct {
	id  string
	url string // http://127.0.0.1:port/
	cmd *exec.Cmd
}

// lockedBuffer is a bytes.Buffer a child process writes while the test
// may read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startNode is startMain for a cluster node: if the test fails, the
// node's log lines about the cluster (relays, moves, joins and leaves)
// are shown, once it is stopped.
func startNode(t *testing.T, id string, args ...string) (*exec.Cmd, *bufio.Reader, fmt.Stringer) {
	t.Helper()
	logs := &lockedBuffer{}
	t.Cleanup(func() { // after startMainTo's, which stops the node
		if !t.Failed() {
			return
		}
		var lines []string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, `"level":"DEBUG"`) || !strings.ContainsAny(l, "{") {
				continue
			}
			for _, w := range []string{"relay", "participant", "moved", "resume", "node", "track published", "track unpublished", "cluster"} {
				if strings.Contains(l, w) {
					lines = append(lines, l)
					break
				}
			}
		}
		t.Logf("node %s log (%d lines about the cluster):\n%s", id, len(lines), strings.Join(lines[max(0, len(lines)-200):], "\n"))
	})
	cmd, out := startMainTo(t, logs, args...)
	return cmd, out, logs
}

// startCluster starts redis-server, n roundtable processes on it and
// haproxy round-robin in front of them; everything stops at the end of the
// test. It returns the nodes and the WebSocket URL through haproxy.
func startCluster(t *testing.T, n int, extra ...string) (*testcluster.Redis, []*node, string) {
	t.Helper()
	rd := testcluster.StartRedis(t)
	var nodes []*node
	var backends []string
	for i := range n {
		id := fmt.Sprintf("n%d", i+1)
		args := append([]string{"-listen", "127.0.0.1:0", "-ice-port", "0", "-ice-tcp-port", "0", "-turn-port", "0",
			"-ice-interfaces", "lo", "-ice-ipv4-only", "-mdns=false", "-log-format", "json",
			"-redis-url", rd.URL(), "-node-id", id}, extra...)
		cmd, out, stderr := startNode(t, id, args...)
		url := printedURL(t, out, stderr)
		go func(r *bufio.Reader) { // keep the pipe drained
			for {
				if _, err := r.ReadString('\n'); err != nil {
					return
				}
			}
		}(out)
		nodes = append(nodes, &node{id: id, url: url, cmd: cmd})
		backends = append(backends, strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/"))
	}
	h := testcluster.StartHAProxy(t, backends...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Wait(ctx, func() bool { return metric(t, "http://"+h.Addr+"/", "roundtable_rooms") >= 0 }); err != nil {
		t.Fatalf("haproxy does not forward: %v", err)
	}
	return rd, nodes, "ws://" + h.Addr + "/ws"
}

// metric reads one unlabelled sample (or the sum of a labelled one's
// series) from a node's /metrics, -1 if it cannot.
func metric(t *testing.T, url, name string) float64 {
	resp, err := http.Get(url + "metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return -1
	}
	sum, found := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum, found = sum+v, true
		}
	}
	if !found {
		return -1
	}
	return sum
}

// sentCounters returns each publisher's newest payload counter per kind
// ("id/video"), for delivery over a window (CountersIn).
func sentCounters(cs []*client.Client) map[string]uint64 {
	out := map[string]uint64{}
	for _, p := range cs {
		for _, l := range p.Local() {
			out[fmt.Sprintf("%s/%v", p.ID, l.Video())] = l.LastCounter.Load()
		}
	}
	return out
}

// delivered returns how many of publisher pub's packets of one kind with
// a counter in (from, to] receiver c got, over every track it had of it.
func delivered(c *client.Client, pub string, video bool, from, to uint64) int {
	n := 0
	for _, r := range c.Remote() {
		if r.StreamID == pub && (r.Kind == webrtc.RTPCodecTypeVideo) == video {
			n += r.CountersIn(from+1, to)
		}
	}
	return n
}

// checkDelivery fails the test for each receiver in rs that got less than
// 99 % of what a publisher in ps sent between the two counter snapshots
// (of the kinds asked for).
func checkDelivery(t *testing.T, what string, rs, ps []*client.Client, before, after map[string]uint64, kinds ...bool) {
	t.Helper()
	for _, c := range rs {
		for _, o := range ps {
			if o == c {
				continue
			}
			for _, video := range kinds {
				k := fmt.Sprintf("%s/%v", o.ID, video)
				sent := after[k] - before[k]
				got := delivered(c, o.ID, video, before[k], after[k])
				if sent == 0 || float64(got) < 0.99*float64(sent) {
					t.Errorf("%s: %s got %d of %s's %d %s packets (want at least 99 %%)", what, c.ID, got, o.ID, sent,
						map[bool]string{false: "audio", true: "video"}[video])
				}
			}
		}
	}
}

// Issue 16, test 1: six pion participants join one room through haproxy,
// which spreads them over three nodes; each receives every other's audio
// and video (delivery at least 99 % over 8 s) and data messages, and each
// published track crosses each relay once: every node holds two relays
// (one per other node), each one PeerConnection whose end there
// subscribes to its own two members' four tracks, and no more.
func TestClusterSixParticipantsThreeNodes(t *testing.T) {
	_, nodes, ws := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var cs []*client.Client
	for i := range 6 {
		c, err := client.Join(ctx, client.Config{URL: ws, Room: "six", Name: fmt.Sprintf("p%d", i), Audio: 1, Video: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Abort()
		cs = append(cs, c)
	}
	for _, n := range nodes {
		if got := metric(t, n.url, "roundtable_participants"); got != 2 {
			t.Errorf("node %s has %v participants, want 2 (haproxy round-robin)", n.id, got)
		}
	}
	for _, c := range cs {
		for _, o := range cs {
			if o == c {
				continue
			}
			if err := client.Wait(ctx, func() bool { return c.ReceivesFrom(o.ID, 30, time.Time{}) }); err != nil {
				t.Fatalf("%s does not receive %s's media: %s", c.ID, o.ID, c.Debug())
			}
		}
	}
	before := sentCounters(cs)
	time.Sleep(8 * time.Second) // the delivery window
	after := sentCounters(cs)
	time.Sleep(time.Second) // what was on its way arrives
	checkDelivery(t, "over 8 s", cs, cs, before, after, false, true)

	for i, c := range cs {
		if err := c.WaitDataChannel(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		if err := c.SendText(fmt.Sprintf("hello from %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cs {
		err := client.Wait(ctx, func() bool {
			n := 0
			for _, m := range c.Data() {
				if strings.HasPrefix(string(m.Data), "hello from ") {
					n++
				}
			}
			return n == 5
		})
		if err != nil {
			t.Errorf("participant %d got data %v, want five hellos", i, c.Data())
		}
	}

	for _, n := range nodes {
		relays := metric(t, n.url, "roundtable_relays")
		subs := metric(t, n.url, "roundtable_subscriptions")
		out := metric(t, n.url, "roundtable_relay_packets_total")
		pcs := metric(t, n.url, "roundtable_peer_connections")
		t.Logf("node %s: relays %v, PeerConnections %v, subscriptions %v, relay packets %v", n.id, relays, pcs, subs, out)
		if relays != 2 {
			t.Errorf("node %s: %v relays, want 2", n.id, relays)
		}
		if pcs != 4 {
			t.Errorf("node %s: %v PeerConnections, want 4 (two members, one per relay)", n.id, pcs)
		}
		// Two members receiving five others' two tracks, and two relays
		// carrying the two members' two tracks each.
		if want := 2.0*5*2 + 2*2*2; subs != want {
			t.Errorf("node %s: %v subscriptions, want %v (each track once per relay)", n.id, subs, want)
		}
	}
	for _, c := range cs {
		c.Leave()
	}
}

// localMembers returns the ids of roomName's members on node n (its admin
// API, asked for the node's own), nil if it cannot tell.
func localMembers(n *node, roomName string) []string {
	req, err := http.NewRequest(http.MethodGet, n.url+"api/v1/rooms/"+roomName, nil)
	if err != nil {
		return nil
	}
	req.Header.Set(admin.LocalHeader, "1") // this node's own, not the cluster's
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var body struct {
		Participants []struct {
			ID string `json:"id"`
		} `json:"participants"`
	}
	if json.NewDecoder(resp.Body).Decode(&body) != nil {
		return nil
	}
	var ids []string
	for _, p := range body.Participants {
		ids = append(ids, p.ID)
	}
	return ids
}

// joinSix joins six participants (audio, video, AutoResume) to roomName
// through ws and waits until each receives every other's media; they
// are aborted at the end of the test.
func joinSix(t *testing.T, ctx context.Context, ws, roomName string) []*client.Client {
	t.Helper()
	var cs []*client.Client
	for i := range 6 {
		c, err := client.Join(ctx, client.Config{URL: ws, Room: roomName, Name: fmt.Sprintf("p%d", i), Audio: 1, Video: 1, AutoResume: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Abort)
		cs = append(cs, c)
	}
	for _, c := range cs {
		for _, o := range cs {
			if o != c {
				if err := client.Wait(ctx, func() bool { return c.ReceivesFrom(o.ID, 30, time.Time{}) }); err != nil {
					t.Fatalf("%s does not receive %s's media: %s", c.ID, o.ID, c.Debug())
				}
			}
		}
	}
	return cs
}

// waitBack waits until every pair of participants one of which is among
// gone (they moved) exchanges media again on tracks that started after
// since.
func waitBack(t *testing.T, ctx context.Context, cs []*client.Client, gone []string, since time.Time) {
	t.Helper()
	for _, c := range cs {
		for _, o := range cs {
			if o == c || !slices.Contains(gone, o.ID) && !slices.Contains(gone, c.ID) {
				continue
			}
			if err := client.Wait(ctx, func() bool { return c.ReceivesFrom(o.ID, 10, since) }); err != nil {
				t.Fatalf("%s does not receive %s's media again: %s", c.ID, o.ID, c.Debug())
			}
		}
	}
}

// checkNoneLeft fails t if c saw any of gone leave.
func checkNoneLeft(t *testing.T, c *client.Client, gone []string) {
	t.Helper()
	for _, id := range c.Departures() {
		if slices.Contains(gone, id) {
			t.Errorf("%s saw %s leave", c.ID, id)
		}
	}
}

// Issue 16, test 3: kill -9 one node of three. Its two participants'
// clients resume through haproxy on the nodes left and are back in the
// room, publishing and receiving, within 5 s of the loss; the others see
// no participant-left for them; Redis holds nothing of the dead node once
// its keys expired.
func TestClusterNodeLoss(t *testing.T) {
	rd, ctx, cs, victim, gone := sixOnThree(t, "loss")
	killed := time.Now()
	if err := victim.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	waitBack(t, ctx, cs, gone, killed)
	back := time.Since(killed)
	t.Logf("the lost node's participants were back with media %v after the kill", back.Round(time.Millisecond))
	if back > 5*time.Second {
		t.Errorf("back after %v, want within 5 s", back)
	}
	for _, c := range cs {
		if slices.Contains(gone, c.ID) {
			if c.Migrations() != 1 {
				t.Errorf("%s: %d migrations, want 1", c.ID, c.Migrations())
			}
			continue
		}
		checkNoneLeft(t, c, gone)
	}
	// Its keys expire 3 s after its last heartbeat; its participants'
	// records are the nodes' they moved to.
	c := rd.Client()
	defer c.Close()
	err := client.Wait(ctx, func() bool {
		for _, k := range rd.Keys(ctx) {
			if strings.Contains(k, ":"+victim.id) {
				return false
			}
		}
		return c.ZScore(ctx, "rt:nodes", victim.id).Err() != nil // gone from the registry
	})
	if err != nil {
		t.Errorf("Redis still holds %v", rd.Keys(ctx))
	}
	for _, id := range gone {
		v, err := c.Get(ctx, "rt:participant:"+id).Result()
		if err != nil || strings.Contains(v, `"node":"`+victim.id+`"`) {
			t.Errorf("record of %s: %q, %v; want another node's", id, v, err)
		}
	}
	for _, c := range cs {
		c.Leave()
	}
}

// sixOnThree starts a cluster of three nodes (extra: flags for each),
// joins six participants to roomName through haproxy (joinSix) and returns
// them, with a context for the test, the third node (the one the test
// kills or drains) and the ids of its two members.
func sixOnThree(t *testing.T, roomName string, extra ...string) (*testcluster.Redis, context.Context, []*client.Client, *node, []string) {
	t.Helper()
	rd, nodes, ws := startCluster(t, 3, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	cs := joinSix(t, ctx, ws, roomName)
	victim := nodes[2]
	gone := localMembers(victim, roomName)
	if len(gone) != 2 {
		t.Fatalf("node %s has members %v, want two", victim.id, gone)
	}
	return rd, ctx, cs, victim, gone
}

// Issue 16, test 4: SIGTERM one node of three. Its two participants get
// "reconnect", move to the other nodes (resumed, migrated) and are back
// with media; the process exits 0 once they are gone; the others see no
// one leave, and the audio the others send each other during the move
// arrives at 99 % or more.
func TestClusterDrain(t *testing.T) {
	_, ctx, cs, victim, gone := sixOnThree(t, "drain", "-drain-timeout", "10s")
	before := sentCounters(cs)
	term := time.Now()
	if err := victim.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- victim.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the drained node exited with %v, want 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the drained node still runs 15 s after SIGTERM")
	}
	t.Logf("the drained node exited %v after SIGTERM", time.Since(term).Round(time.Millisecond))
	waitBack(t, ctx, cs, gone, term)
	t.Logf("the drained node's participants were back with media %v after SIGTERM", time.Since(term).Round(time.Millisecond))
	after := sentCounters(cs)
	time.Sleep(time.Second) // what was on its way arrives
	var stayed []*client.Client
	for _, c := range cs {
		if slices.Contains(gone, c.ID) {
			if c.Reconnects() != 1 || c.Migrations() != 1 {
				t.Errorf("%s: %d reconnects, %d migrations; want 1 and 1", c.ID, c.Reconnects(), c.Migrations())
			}
			continue
		}
		stayed = append(stayed, c)
		checkNoneLeft(t, c, gone)
	}
	checkDelivery(t, "during the drain", stayed, stayed, before, after, false)
	for _, c := range cs {
		c.Leave()
	}
}

// Issue 16, point 6: `roundtable load` spreads its participants over
// several URLs (a cluster's nodes) and sums the nodes' figures: a room of
// six over three nodes delivers at least 99.5 %, and packets cross between
// the nodes.
func TestLoadAcrossCluster(t *testing.T) {
	_, nodes, _ := startCluster(t, 3)
	var urls []string
	for _, n := range nodes {
		urls = append(urls, "ws"+strings.TrimPrefix(n.url, "http")+"ws")
	}
	cmd := exec.Command(os.Args[0], "load", "-json", "-warmup", "1s", "-url", strings.Join(urls, ","), "-scenario", "room", "-size", "6", "-duration", "5s")
	cmd.Env = append(os.Environ(), "RT_BE_MAIN=1")
	var lerr bytes.Buffer
	cmd.Stderr = &lerr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("load: %v\n%s\n%s", err, b, lerr.String())
	}
	var res struct {
		Connected, Participants, Nodes int
		Delivery                       float64
		Expected                       uint64  `json:"expected_packets"`
		Forwarded                      float64 `json:"server_forwarded_packets_per_second"`
		Relayed                        float64 `json:"server_relayed_packets_per_second"`
		CPU                            float64 `json:"server_cpu_us_per_forwarded_packet"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	t.Logf("room of 6 over 3 nodes: delivery %.4f of %d packets, %.0f forwarded/s, %.0f relayed/s, %.1f µs CPU per forwarded packet",
		res.Delivery, res.Expected, res.Forwarded, res.Relayed, res.CPU)
	if res.Nodes != 3 || res.Connected != 6 || res.Delivery < 0.995 || res.Relayed <= 0 {
		t.Errorf("%d nodes, %d/6 connected, delivery %.4f, %.0f relayed packets/s; want 3, all, >= 0.995, some", res.Nodes, res.Connected, res.Delivery, res.Relayed)
	}
}

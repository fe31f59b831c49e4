// Package cluster makes several Roundtable nodes act as one, with Redis
// (github.com/redis/go-redis/v9) as the only shared component: a node
// registry with heartbeats and load, the directory of rooms and
// participants per node, and pub/sub for the relays' signaling and room
// presence. Any node serves any room: a room with members on several nodes
// is linked, on each, by one room.Relay per other node (package room), set
// up and torn down here as the directory changes.
//
// Everything a node writes lives under keys of its own that expire TTL
// after its last heartbeat (docs/cluster.md lists them): a node that dies
// leaves nothing behind once they expire, and one that comes back, or a
// Redis that restarted empty, is written again in full at the next
// heartbeat.
//
// Ownership: a Node runs three goroutines: the heartbeat loop (writes the
// node's keys, reads the others', reconciles the relays), the pub/sub
// reader (dispatches relay signals, presence events and releases), and the
// sender (publishes the relays' signals in order); and a short one per
// relay it ends (endRelay). All are counted by wg. Its counters are
// atomics; the live nodes and the rooms they hold are under mu; the last
// directory written and the rebuild deadline are the heartbeat loop's.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/roundtable-sfu/roundtable/room"
)

// Defaults of Config.
const (
	DefaultTTL       = 3 * time.Second
	DefaultHeartbeat = time.Second
)

// Config configures a Node.
type Config struct {
	// RedisURL: redis://[[user]:password@]host:port[/db] (or rediss:// for
	// TLS), as go-redis's ParseURL reads it.
	RedisURL string
	// NodeID names this node in the cluster; "" draws a random one.
	NodeID string
	// URL is this node's own base URL, as clients reach it (redirects).
	URL string
	// Rooms is this node's room manager.
	Rooms *room.Manager
	// Redirect: a join for a room that no node holds yet, arriving here
	// while another node is less loaded, is sent there (Place).
	Redirect bool
	// MaxLoad, when more than 0, is the share of the machine's CPU (0 to
	// 1, as Load.CPU) over which this node takes no new room.
	MaxLoad float64
	// OnRelease is called, on the pub/sub reader, when another node took
	// over participant (a resume there): the participant's session here
	// should end with bye "moved" (room.ReasonMoved). It must not block.
	OnRelease func(participant string)
	// Load reports this node's load at each heartbeat; nil: none.
	Load func() Load
	// TTL is how long a node's keys outlive its last heartbeat, and
	// Heartbeat how often it writes them (0: the defaults).
	TTL, Heartbeat time.Duration
	// ParticipantTTL is how long a participant's record outlives its
	// node's last heartbeat: as long as its client may come back through
	// another node (0: TTL).
	ParticipantTTL time.Duration
	Logger         *slog.Logger
}

// Load is a node's load, as its heartbeat publishes it.
type Load struct {
	// CPU is the share of the machine's cores the process used since the
	// previous heartbeat, 0 to 1.
	CPU float64 `json:"cpu"`
	// PacketsPerSecond: RTP packets forwarded per second.
	PacketsPerSecond float64 `json:"pps"`
	Participants     int     `json:"participants"`
	Rooms            int     `json:"rooms"`
}

// NodeInfo is what a node publishes about itself.
type NodeInfo struct {
	ID       string    `json:"id"`
	URL      string    `json:"url"`
	Started  time.Time `json:"started"`
	Draining bool      `json:"draining,omitempty"`
	Load     Load      `json:"load"`
}

// Stats are a Node's counters, for /metrics.
type Stats struct {
	RedisErrors   atomic.Uint64 // failed Redis commands and pipelines
	Nodes         atomic.Int64  // live nodes seen at the last heartbeat, this one included
	RelaySignals  atomic.Uint64 // relay signals sent to other nodes
	SignalsQueued atomic.Int64  // waiting to be sent
}

// Node is this process's membership of the cluster.
type Node struct {
	cfg   Config
	rdb   *redis.Client
	log   *slog.Logger
	stats Stats
	info  NodeInfo
	// resumeKey is the cluster's resume token key (set by Open).
	resumeKey string
	draining  atomic.Bool // SetDraining: published with the heartbeat

	kick    chan struct{}
	outbox  chan outMsg
	stop    chan struct{}
	wg      sync.WaitGroup
	closeMu sync.Once

	// the heartbeat loop's (and Open's, before it starts)
	beats        int                              // heartbeats written
	rooms        map[string][]room.DirectoryEntry // the directory last written
	parts        map[string]bool                  // the participant records last written
	rebuildUntil time.Time                        // Redis lost the directory: no relay closes before

	mu    sync.Mutex
	live  []NodeInfo          // at the last heartbeat
	where map[string][]string // room → the other nodes that hold it, at the last heartbeat
}

// outMsg is one pub/sub message to send.
type outMsg struct {
	channel string
	body    []byte
}

// Record is a participant's entry in the directory
// (rt:participant:{id}): where it is, and what a resume on another node
// needs to let it continue there.
type Record struct {
	Node string `json:"node"`
	Room string `json:"room"`
	room.DirectoryEntry
}

// delIfOurs deletes a participant record only if this node (ARGV[1]) wrote
// it: a participant that moved has another node's record, which stays.
var delIfOurs = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v).node == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0`)

// message is what nodes publish to each other.
type message struct {
	// Kind: "relay"; "presence" (the sender's rooms changed); "release"
	// (Participant continues on the sender).
	Kind        string            `json:"kind"`
	From        string            `json:"from"`
	Room        string            `json:"room,omitempty"`
	Participant string            `json:"participant,omitempty"`
	Signal      *room.RelaySignal `json:"signal,omitempty"`
}

// outboxLen bounds the signals waiting for Redis; beyond it they are
// dropped (the relay's negotiation times out and starts again).
const outboxLen = 1024

// Keys and channels (docs/cluster.md).
const (
	keyNodes      = "rt:nodes" // sorted set: node id → expiry (Unix ms)
	presenceTopic = "rt:presence"
	// keyResume holds the key every node signs resume tokens with: the
	// first node sets it, the others take it; every heartbeat renews it
	// (and sets it again after Redis lost it).
	keyResume = "rt:resume-key"
	resumeTTL = time.Hour
)

func keyNode(id string) string        { return "rt:node:" + id }
func keyRooms(id string) string       { return "rt:node:" + id + ":rooms" }
func keyParticipant(id string) string { return "rt:participant:" + id }
func inbox(id string) string          { return "rt:inbox:" + id }

// Open connects to Redis (a clear error if it cannot, within 5 s), writes
// this node's keys and starts its goroutines.
func Open(cfg Config) (*Node, error) {
	if cfg.Rooms == nil {
		return nil, errors.New("cluster: no room manager")
	}
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("cluster: redis url: %w", err)
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.ParticipantTTL < cfg.TTL {
		cfg.ParticipantTTL = cfg.TTL
	}
	if cfg.Heartbeat >= cfg.TTL {
		return nil, fmt.Errorf("cluster: heartbeat %v must be shorter than the ttl %v", cfg.Heartbeat, cfg.TTL)
	}
	if cfg.NodeID == "" {
		cfg.NodeID = NewNodeID()
	}
	if strings.ContainsAny(cfg.NodeID, ": \t\r\n") || len(cfg.NodeID) > 64 {
		return nil, fmt.Errorf("cluster: node id %q: at most 64 bytes, no spaces or colons", cfg.NodeID)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	logOnce.Do(func() { redis.SetLogger(redisLogger{log}) })
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = 2*time.Second, 2*time.Second, 2*time.Second
	opt.MaxRetries = 1
	rdb := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("cluster: redis at %s does not answer: %w", opt.Addr, err)
	}
	n := &Node{cfg: cfg, rdb: rdb, log: log.With("node", cfg.NodeID),
		info: NodeInfo{ID: cfg.NodeID, URL: cfg.URL, Started: time.Now().UTC()},
		kick: make(chan struct{}, 1), outbox: make(chan outMsg, outboxLen), stop: make(chan struct{})}
	if err := n.loadResumeKey(ctx); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("cluster: resume key: %w", err)
	}
	if err := n.heartbeat(ctx); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("cluster: first heartbeat: %w", err)
	}
	sub := rdb.Subscribe(context.Background(), inbox(cfg.NodeID), presenceTopic)
	if _, err := sub.Receive(ctx); err != nil { // the subscription is in place
		_ = sub.Close()
		_ = rdb.Close()
		return nil, fmt.Errorf("cluster: subscribe: %w", err)
	}
	n.wg.Add(3)
	go n.heartbeatLoop()
	go n.readLoop(sub)
	go n.sendLoop()
	n.log.Info("cluster joined", "redis", opt.Addr, "url", cfg.URL, "ttl", cfg.TTL)
	return n, nil
}

// logOnce sets go-redis's logger (a global) once per process.
var logOnce sync.Once

// redisLogger takes go-redis's own log lines (reconnection attempts) to
// slog at debug level: failures the node sees are logged where it sees
// them, once per heartbeat at most.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug("redis: " + fmt.Sprintf(format, v...))
}

// NewNodeID returns a random node id.
func NewNodeID() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// loadResumeKey takes the cluster's resume token key from Redis, or sets
// a new random one if there is none.
func (n *Node) loadResumeKey(ctx context.Context) error {
	var b [32]byte
	_, _ = rand.Read(b[:])
	fresh := base32.StdEncoding.EncodeToString(b[:])
	if err := n.rdb.SetNX(ctx, keyResume, fresh, resumeTTL).Err(); err != nil {
		return err
	}
	key, err := n.rdb.Get(ctx, keyResume).Result()
	if err != nil {
		return err
	}
	n.resumeKey = key
	return nil
}

// ResumeKey returns the key every node of the cluster signs resume tokens
// with (signal.Cluster).
func (n *Node) ResumeKey() []byte { return []byte(n.resumeKey) }

// Locate finds participant in the directory (signal.Cluster): its node,
// whether that node is alive (as of the last heartbeat), its room and
// what it joined with; ok is false if no record names it.
func (n *Node) Locate(ctx context.Context, participant string) (node string, alive bool, roomName string, e room.DirectoryEntry, ok bool, err error) {
	b, err := n.rdb.Get(ctx, keyParticipant(participant)).Bytes()
	if errors.Is(err, redis.Nil) {
		return "", false, "", e, false, nil
	}
	if err != nil {
		n.stats.RedisErrors.Add(1)
		return "", false, "", e, false, fmt.Errorf("cluster: locate %s: %w", participant, err)
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return "", false, "", e, false, fmt.Errorf("cluster: record of %s: %w", participant, err)
	}
	n.mu.Lock()
	alive = slices.ContainsFunc(n.live, func(ni NodeInfo) bool { return ni.ID == rec.Node })
	n.mu.Unlock()
	return rec.Node, alive, rec.Room, rec.DirectoryEntry, true, nil
}

// Release asks node to let participant go: it continues on this node
// (signal.Cluster). It never blocks; node ends the participant's session
// there with bye "moved" (Config.OnRelease).
func (n *Node) Release(node, participant string) {
	body, _ := json.Marshal(message{Kind: "release", From: n.cfg.NodeID, Participant: participant})
	select {
	case n.outbox <- outMsg{channel: inbox(node), body: body}:
		n.stats.SignalsQueued.Add(1)
	default:
		n.stats.RedisErrors.Add(1)
	}
}

// SetDraining marks this node as draining in the registry (at once): the
// other nodes send it no clients (Target) and no new rooms.
func (n *Node) SetDraining() {
	n.draining.Store(true)
	n.Kick()
}

// Target returns the base URL of the live node, other than this one and
// not draining, with the fewest participants (then the least CPU), as of
// the last heartbeat; "" if there is none (signal.Cluster).
func (n *Node) Target() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var best *NodeInfo
	for i := range n.live {
		ni := &n.live[i]
		if ni.ID == n.cfg.NodeID || ni.Draining || ni.URL == "" {
			continue
		}
		if best == nil || ni.Load.Participants < best.Load.Participants ||
			ni.Load.Participants == best.Load.Participants && ni.Load.CPU < best.Load.CPU {
			best = ni
		}
	}
	if best == nil {
		return ""
	}
	return best.URL
}

// NodeOrigin reports whether origin (scheme://host[:port], an HTTP Origin)
// is the origin of a live node's URL, as of the last heartbeat
// (signal.Cluster): a page that node served may open sockets here (it was
// redirected, or its node drains).
func (n *Node) NodeOrigin(origin string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ni := range n.live {
		u, err := url.Parse(ni.URL)
		if err == nil && u.Host != "" && strings.EqualFold(u.Scheme+"://"+u.Host, origin) {
			return true
		}
	}
	return false
}

// ErrOverloaded: this node is over Config.MaxLoad, and no other node can
// take a new room.
var ErrOverloaded = errors.New("cluster: every node is over its load limit; try again later")

// busyMargin: within it, two nodes' CPU shares count as equal and their
// participants decide which is busier.
const busyMargin = 0.1

// busier reports whether a is busier than b: more CPU by over busyMargin,
// or as much and more participants.
func busier(a, b Load) bool {
	if a.CPU > b.CPU+busyMargin {
		return true
	}
	return a.CPU >= b.CPU-busyMargin && a.Participants > b.Participants
}

// Place says where a join for roomName goes (signal.Cluster): here ("")
// if the room is here or on any node already, or if this node is not
// busier than every other; with Config.Redirect, to the base URL of the
// least loaded node otherwise. A node over Config.MaxLoad takes no new
// room: the join goes elsewhere if Redirect allows and a node is under
// its limit, else ErrOverloaded. Reads the state of the last heartbeat.
func (n *Node) Place(roomName string) (string, error) {
	if n.cfg.Rooms.Relays(roomName) != nil {
		return "", nil // here already
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.where[roomName]) > 0 {
		return "", nil // on another node: any node serves any room
	}
	var self *NodeInfo
	var best *NodeInfo
	for i := range n.live {
		ni := &n.live[i]
		if ni.ID == n.cfg.NodeID {
			self = ni
			continue
		}
		if ni.Draining || ni.URL == "" {
			continue
		}
		if best == nil || busier(best.Load, ni.Load) {
			best = ni
		}
	}
	over := n.cfg.MaxLoad > 0 && self != nil && self.Load.CPU > n.cfg.MaxLoad
	switch {
	case n.cfg.Redirect && best != nil && self != nil && (over || busier(self.Load, best.Load)):
		if n.cfg.MaxLoad > 0 && best.Load.CPU > n.cfg.MaxLoad {
			break
		}
		return best.URL, nil
	case !over:
		return "", nil
	}
	if over {
		return "", fmt.Errorf("%w (this node uses %.0f %% of its CPU, over -max-load %.0f %%)", ErrOverloaded,
			100*self.Load.CPU, 100*n.cfg.MaxLoad)
	}
	return "", nil
}

// ID returns this node's id.
func (n *Node) ID() string { return n.cfg.NodeID }

// Stats returns the node's counters.
func (n *Node) Stats() *Stats { return &n.stats }

// Kick makes the heartbeat loop write the directory and reconcile the
// relays now (a room or member came or went). It never blocks.
func (n *Node) Kick() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// Nodes returns the live nodes as of the last heartbeat.
func (n *Node) Nodes() []NodeInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.live)
}

// Close leaves the cluster: the goroutines stop, every relay closes (the
// other nodes' members leave this node's rooms), and this node's keys are
// deleted.
func (n *Node) Close() error {
	var err error
	n.closeMu.Do(func() {
		close(n.stop)
		n.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		id := n.cfg.NodeID
		pipe := n.rdb.TxPipeline()
		pipe.Del(ctx, keyNode(id), keyRooms(id))
		pipe.ZRem(ctx, keyNodes, id)
		for pid := range n.parts {
			delIfOurs.Eval(ctx, pipe, []string{keyParticipant(pid)}, id)
		}
		if _, perr := pipe.Exec(ctx); perr != nil {
			err = fmt.Errorf("cluster: remove node keys: %w", perr)
		}
		if cerr := n.rdb.Close(); cerr != nil && err == nil {
			err = cerr
		}
		n.log.Info("cluster left")
	})
	return err
}

func (n *Node) heartbeatLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(n.cfg.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
		case <-n.kick:
		}
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Heartbeat)
		if err := n.heartbeat(ctx); err != nil {
			n.stats.RedisErrors.Add(1)
			n.log.Warn("cluster heartbeat failed", "err", err)
		}
		cancel()
	}
}

// heartbeat writes this node's keys in full, reads which nodes live and
// which rooms they hold, and opens and closes relays to match.
func (n *Node) heartbeat(ctx context.Context) error {
	id, ttl := n.cfg.NodeID, n.cfg.TTL
	dir := n.cfg.Rooms.Directory()
	if n.cfg.Load != nil {
		n.info.Load = n.cfg.Load()
	}
	n.info.Draining = n.draining.Load()
	info, _ := json.Marshal(n.info)
	now := time.Now()
	pipe := n.rdb.TxPipeline()
	existed := pipe.Exists(ctx, keyNode(id))
	pipe.SetNX(ctx, keyResume, n.resumeKey, resumeTTL)
	pipe.PExpire(ctx, keyResume, resumeTTL)
	pipe.Set(ctx, keyNode(id), info, ttl)
	pipe.ZAdd(ctx, keyNodes, redis.Z{Score: float64(now.Add(ttl).UnixMilli()), Member: id})
	pipe.PExpire(ctx, keyNodes, ttl)
	pipe.ZRemRangeByScore(ctx, keyNodes, "-inf", fmt.Sprint(now.UnixMilli()))
	pipe.Del(ctx, keyRooms(id))
	names := make([]any, 0, len(dir))
	now2 := map[string]bool{}
	for r, entries := range dir {
		names = append(names, r)
		for _, e := range entries {
			if e.Viewer {
				continue
			}
			b, _ := json.Marshal(Record{Node: id, Room: r, DirectoryEntry: e})
			pipe.Set(ctx, keyParticipant(e.ID), b, n.cfg.ParticipantTTL)
			now2[e.ID] = true
		}
	}
	if len(names) > 0 {
		pipe.SAdd(ctx, keyRooms(id), names...)
		pipe.PExpire(ctx, keyRooms(id), ttl)
	}
	for pid := range n.parts {
		if !now2[pid] { // it left, or moved: its record goes unless another node wrote it since
			delIfOurs.Eval(ctx, pipe, []string{keyParticipant(pid)}, id)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("write node keys: %w", err)
	}
	if existed.Val() == 0 && n.beats > 0 {
		// Our key had not expired yet: Redis lost it (a restart, a flush).
		// The other nodes write theirs again within a heartbeat; until
		// then their absence means nothing.
		n.rebuildUntil = now.Add(ttl)
		n.log.Warn("cluster directory lost by redis (restarted?): written again")
	}
	n.beats++
	n.parts = now2
	if changed := !sameKeys(dir, n.rooms); changed {
		n.rooms = dir
		body, _ := json.Marshal(message{Kind: "presence", From: id})
		if err := n.rdb.Publish(ctx, presenceTopic, body).Err(); err != nil {
			return fmt.Errorf("publish presence: %w", err)
		}
	}
	live, where, err := n.readDirectory(ctx)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.live, n.where = live, where
	n.mu.Unlock()
	n.stats.Nodes.Store(int64(len(live)))
	n.reconcile(dir, live, where, now.Before(n.rebuildUntil))
	return nil
}

// sameKeys reports whether two directories name the same rooms.
func sameKeys(a, b map[string][]room.DirectoryEntry) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// readDirectory returns the live nodes and, for every room, the other
// nodes that hold it.
func (n *Node) readDirectory(ctx context.Context) ([]NodeInfo, map[string][]string, error) {
	ids, err := n.rdb.ZRangeByScore(ctx, keyNodes, &redis.ZRangeBy{Min: fmt.Sprint(time.Now().UnixMilli()), Max: "+inf"}).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("read nodes: %w", err)
	}
	pipe := n.rdb.Pipeline()
	infos := make([]*redis.StringCmd, len(ids))
	rooms := make([]*redis.StringSliceCmd, len(ids))
	for i, id := range ids {
		infos[i] = pipe.Get(ctx, keyNode(id))
		rooms[i] = pipe.SMembers(ctx, keyRooms(id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("read directory: %w", err)
	}
	var live []NodeInfo
	where := map[string][]string{}
	for i, id := range ids {
		var ni NodeInfo
		b, err := infos[i].Bytes()
		if err != nil || json.Unmarshal(b, &ni) != nil {
			continue // expired between the two reads
		}
		live = append(live, ni)
		if id == n.cfg.NodeID {
			continue
		}
		for _, r := range rooms[i].Val() {
			where[r] = append(where[r], id)
		}
	}
	return live, where, nil
}

// reconcile opens a relay to every other node that holds one of this
// node's rooms, and closes those to nodes that no longer do (or died),
// unless the directory is being rebuilt.
func (n *Node) reconcile(dir map[string][]room.DirectoryEntry, live []NodeInfo, where map[string][]string, rebuilding bool) {
	for name := range dir {
		have := n.cfg.Rooms.Relays(name)
		for _, node := range where[name] {
			if have[node] == nil {
				n.openRelay(name, node)
			}
		}
		for node, rl := range have {
			switch {
			case rebuilding || slices.Contains(where[name], node):
			case !slices.ContainsFunc(live, func(ni NodeInfo) bool { return ni.ID == node }):
				// Its keys expired: it died. Its members stay a while, to
				// come back through another node.
				n.log.Warn("node lost", "room", name, "node_lost", node)
				n.endRelay(rl.Lost)
			default:
				n.log.Info("relay no longer needed", "room", name, "to", node)
				n.endRelay(rl.Close)
			}
		}
	}
}

// endRelay ends a relay on a goroutine of its own (counted in wg): closing
// its connection takes up to a second or two, and the heartbeat must not wait
// (its keys would expire).
func (n *Node) endRelay(end func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		end()
	}()
}

// openRelay links room name here with the same room on node.
func (n *Node) openRelay(name, node string) *room.Relay {
	// Of two nodes, the one whose id sorts first leads the relay.
	rl, err := n.cfg.Rooms.OpenRelay(name, node, n.cfg.NodeID < node, func(s room.RelaySignal) {
		n.sendSignal(node, name, s)
	})
	switch {
	case errors.Is(err, room.ErrRelayExists):
		return n.cfg.Rooms.Relays(name)[node]
	case errors.Is(err, room.ErrNoRoom): // it ended here meanwhile
		n.log.Debug("relay not opened", "room", name, "to", node, "err", err)
		return nil
	case err != nil:
		n.log.Warn("relay not opened", "room", name, "to", node, "err", err)
		return nil
	}
	return rl
}

// sendSignal queues a relay signal for node; it never blocks (a Peer's
// goroutine calls it).
func (n *Node) sendSignal(node, roomName string, s room.RelaySignal) {
	body, err := json.Marshal(message{Kind: "relay", From: n.cfg.NodeID, Room: roomName, Signal: &s})
	if err != nil {
		return
	}
	select {
	case n.outbox <- outMsg{channel: inbox(node), body: body}:
		n.stats.SignalsQueued.Add(1)
	default:
		n.stats.RedisErrors.Add(1)
		n.log.Warn("relay signal dropped: outbox full", "room", roomName, "to", node)
	}
}

func (n *Node) sendLoop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.stop:
			return
		case m := <-n.outbox:
			n.stats.SignalsQueued.Add(-1)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err := n.rdb.Publish(ctx, m.channel, m.body).Err()
			cancel()
			if err != nil {
				n.stats.RedisErrors.Add(1)
				n.log.Warn("relay signal not sent", "channel", m.channel, "err", err)
				continue
			}
			n.stats.RelaySignals.Add(1)
		}
	}
}

func (n *Node) readLoop(sub *redis.PubSub) {
	defer n.wg.Done()
	defer sub.Close()
	ch := sub.Channel(redis.WithChannelSize(1024))
	for {
		select {
		case <-n.stop:
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			n.dispatch(m)
		}
	}
}

// dispatch handles one message from another node.
func (n *Node) dispatch(m *redis.Message) {
	var msg message
	if err := json.Unmarshal([]byte(m.Payload), &msg); err != nil || msg.From == n.cfg.NodeID {
		return
	}
	switch msg.Kind {
	case "presence":
		n.Kick() // a room appeared or went somewhere: reconcile now
	case "release":
		if n.cfg.OnRelease != nil && msg.Participant != "" {
			n.cfg.OnRelease(msg.Participant)
		}
	case "relay":
		if msg.Signal == nil || msg.Room == "" {
			return
		}
		rl := n.cfg.Rooms.Relays(msg.Room)[msg.From]
		if rl == nil {
			// Only the leading node's first offer of a connection opens
			// the relay here; anything else is of one that is gone.
			if n.cfg.Rooms.Relays(msg.Room) == nil || !msg.Signal.Start || msg.From > n.cfg.NodeID {
				return // the room is not here (any more), or no connection starts with it
			}
			if rl = n.openRelay(msg.Room, msg.From); rl == nil {
				return
			}
		}
		if err := rl.HandleSignal(*msg.Signal); err != nil {
			n.log.Debug("relay signal refused", "room", msg.Room, "from", msg.From, "err", err)
		}
	}
}

// Package load runs simulated participants against a Roundtable server and
// measures what they receive: `roundtable load`. Every participant is a
// real pion PeerConnection from internal/client, joined through the same
// signaling as the browser, publishing synthetic VP8-shaped video and
// Opus-shaped audio whose payloads carry the send time, so receivers
// measure delivery and latency. The server's own CPU and memory come from
// its /metrics.
//
// It owns the participants it creates and closes them all before Run
// returns. It must not reach into the server's process: everything it
// learns comes over the network.
//
// Ownership: Run's goroutine owns the participant list and the live line;
// each remote track's read goroutine updates that track's dedup window and
// the shared atomic counters and latency histogram.
package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/internal/auth"
	"github.com/roundtable-sfu/roundtable/internal/client"
)

// Limits keep a run bounded whatever the flags say.
const (
	MaxParticipants = 1000
	MaxDuration     = 10 * time.Minute
)

// Config describes one run; start from DefaultConfig.
type Config struct {
	// URL is the server's signaling URL, ws://127.0.0.1:8080/ws; several,
	// comma-separated (the nodes of a cluster), take the participants in
	// turn, and the server figures are the nodes' sums.
	URL      string
	Scenario string // fanout, room, rooms or audio
	// Publishers and Subscribers size fanout (video and audio publishers)
	// and audio (speakers and listeners), all in one room.
	Publishers, Subscribers int
	// Size is the room size of room and rooms; Rooms the room count of rooms.
	Size, Rooms int
	// Duration is measured after Warmup.
	Duration, Warmup time.Duration
	// Video shape: bitrate in bits per second, frames per second, payload
	// bytes per packet (at most 1,200), keyframe interval (PLIs add more).
	VideoBitrate, FPS, PacketSize int
	KeyframeInterval              time.Duration
	// Live, when set, gets a status line every second ("\r"-rewritten).
	Live io.Writer
	// JoinParallel participants join at once.
	JoinParallel int
	// Transport is every participant's path to the server: "udp" (ICE
	// over UDP), "tcp" (ICE over TCP), or through the built-in TURN server
	// with relayed candidates only: "turn-udp", "turn-tcp", "turn-tls"
	// (the server's certificate must be trusted: SSL_CERT_FILE).
	Transport string
	// Keys, if Keys.Secret is set, mint each participant a join token
	// (every grant, its room, its name as identity): for a server that
	// requires one (-api-secret). The server's /metrics needs none.
	Keys auth.Keys
}

// Transports lists the values of Config.Transport.
var Transports = []string{"udp", "tcp", "turn-udp", "turn-tcp", "turn-tls"}

// DefaultConfig is the one place the load tool's defaults live (the flags
// of `roundtable load` start from it): fanout 1 -> 10 against
// ws://127.0.0.1:8080/ws, a 10 s run after 3 s of warm-up, 800 kbit/s
// 30 fps video in 1,100-byte packets, keyframes every 3 s, 8 joins at once.
func DefaultConfig() Config {
	return Config{
		URL: "ws://127.0.0.1:8080/ws", Scenario: "fanout",
		Publishers: 1, Subscribers: 10, Size: 4, Rooms: 2,
		Duration: 10 * time.Second, Warmup: 3 * time.Second,
		VideoBitrate: 800_000, FPS: 30, PacketSize: 1100, KeyframeInterval: 3 * time.Second,
		JoinParallel: 8, Transport: "udp",
	}
}

// validate reports the first value Run cannot use (the scenario's sizes
// are checked by plan).
func (c *Config) validate() error {
	switch {
	case c.Duration <= 0 || c.Duration > MaxDuration || c.Warmup < 0 || c.Warmup > MaxDuration:
		return fmt.Errorf("duration %v, warm-up %v: want 0 < duration <= %v and 0 <= warm-up <= %v", c.Duration, c.Warmup, MaxDuration, MaxDuration)
	case c.PacketSize < 100 || c.PacketSize > 1200:
		return errors.New("packet size must be 100 to 1,200 bytes")
	case c.VideoBitrate <= 0 || c.FPS <= 0 || c.KeyframeInterval <= 0:
		return errors.New("video bitrate, fps and keyframe interval must be more than 0")
	case c.JoinParallel < 1:
		return errors.New("join parallelism must be at least 1")
	case !slices.Contains(Transports, c.Transport):
		return fmt.Errorf("transport %q: want one of %s", c.Transport, strings.Join(Transports, ", "))
	}
	return nil
}

// member is one participant to create.
type member struct {
	room         string
	name         string
	audio, video int
}

// plan lists the participants of the scenario.
func (c *Config) plan() ([]member, error) {
	var ms []member
	switch c.Scenario {
	case "fanout", "audio":
		if c.Publishers < 1 || c.Subscribers < 0 {
			return nil, errors.New("fanout and audio need -publishers >= 1 and -subscribers >= 0")
		}
		video := 1
		if c.Scenario == "audio" {
			video = 0
		}
		for i := 0; i < c.Publishers; i++ {
			ms = append(ms, member{room: "load-" + c.Scenario, name: fmt.Sprintf("pub%d", i), audio: 1, video: video})
		}
		for i := 0; i < c.Subscribers; i++ {
			ms = append(ms, member{room: "load-" + c.Scenario, name: fmt.Sprintf("sub%d", i)})
		}
	case "room", "rooms":
		rooms := 1
		if c.Scenario == "rooms" {
			rooms = c.Rooms
		}
		if c.Size < 2 || rooms < 1 {
			return nil, errors.New("room and rooms need -size >= 2 (and -rooms >= 1)")
		}
		for r := 0; r < rooms; r++ {
			for i := 0; i < c.Size; i++ {
				ms = append(ms, member{room: fmt.Sprintf("load-room%d", r), name: fmt.Sprintf("p%d", i), audio: 1, video: 1})
			}
		}
	default:
		return nil, fmt.Errorf("unknown scenario %q (fanout, room, rooms, audio)", c.Scenario)
	}
	if len(ms) > MaxParticipants {
		return nil, fmt.Errorf("%d participants, at most %d", len(ms), MaxParticipants)
	}
	return ms, nil
}

// Result is what a run measured. Latencies are in milliseconds.
type Result struct {
	Scenario     string  `json:"scenario"`
	Transport    string  `json:"transport"`
	Participants int     `json:"participants"`
	Nodes        int     `json:"nodes"` // the URLs the participants were spread over
	Connected    int     `json:"connected"`
	Seconds      float64 `json:"seconds"`
	Expected     uint64  `json:"expected_packets"`
	Received     uint64  `json:"received_packets"`
	Delivery     float64 `json:"delivery"`
	LatencyP50   float64 `json:"latency_p50_ms"`
	LatencyP95   float64 `json:"latency_p95_ms"`
	LatencyP99   float64 `json:"latency_p99_ms"`
	JoinP50      float64 `json:"join_p50_ms"`
	JoinMax      float64 `json:"join_max_ms"`
	// From the server's /metrics over the measured window (0 if it has none).
	ServerForwardedPerSec float64 `json:"server_forwarded_packets_per_second"`
	// ServerRelayedPerSec: packets per second that crossed between nodes
	// (each counted once, though both nodes see it); 0 on one node.
	ServerRelayedPerSec  float64  `json:"server_relayed_packets_per_second"`
	ServerCPUPerPacketUS float64  `json:"server_cpu_us_per_forwarded_packet"`
	ServerCPUCores       float64  `json:"server_cpu_cores"`
	ServerRSSBytes       float64  `json:"server_rss_bytes"`
	ServerRSSDeltaBytes  float64  `json:"server_rss_delta_bytes"`
	Subscriptions        float64  `json:"server_subscriptions"`
	Errors               []string `json:"errors,omitempty"`
}

// JSON returns the result as one JSON object.
func (r *Result) JSON() []byte {
	b, _ := json.MarshalIndent(r, "", "  ")
	return b
}

// String is the human summary.
func (r *Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scenario %s over %s: %d/%d participants connected, %.1f s measured\n", r.Scenario, r.Transport, r.Connected, r.Participants, r.Seconds)
	if r.Nodes > 1 {
		fmt.Fprintf(&b, "cluster   %d nodes, %.0f packets/s between them\n", r.Nodes, r.ServerRelayedPerSec)
	}
	fmt.Fprintf(&b, "delivery  %.3f %% (%d of %d packets)\n", 100*r.Delivery, r.Received, r.Expected)
	fmt.Fprintf(&b, "latency   p50 %.2f ms  p95 %.2f ms  p99 %.2f ms\n", r.LatencyP50, r.LatencyP95, r.LatencyP99)
	fmt.Fprintf(&b, "join      p50 %.0f ms  max %.0f ms\n", r.JoinP50, r.JoinMax)
	if r.ServerForwardedPerSec > 0 {
		fmt.Fprintf(&b, "server    %.0f forwarded packets/s, %.2f µs CPU per packet (%.2f cores), RSS %.1f MiB (+%.1f MiB, %.0f KiB per subscription)\n",
			r.ServerForwardedPerSec, r.ServerCPUPerPacketUS, r.ServerCPUCores, r.ServerRSSBytes/(1<<20), r.ServerRSSDeltaBytes/(1<<20),
			r.ServerRSSDeltaBytes/1024/math.Max(1, r.Subscriptions))
	}
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "error     %s\n", e)
	}
	return b.String()
}

// meter is shared by every receiving track of a run.
type meter struct {
	from, to atomic.Int64 // measured window, unix nanos of the send time
	received atomic.Uint64
	latency  histogram
	tracks   sync.Map // *client.RemoteTrack -> *dedup
}

// onPacket counts a packet sent inside the window once, however often it
// arrives (retransmissions).
func (m *meter) onPacket(r *client.RemoteTrack, p *rtp.Packet, pl client.Payload, err error) {
	if err != nil {
		return
	}
	now := time.Now()
	sent := pl.Sent.UnixNano()
	if sent < m.from.Load() || sent >= m.to.Load() {
		return
	}
	d, ok := m.tracks.Load(r)
	if !ok {
		d, _ = m.tracks.LoadOrStore(r, &dedup{})
	}
	if !d.(*dedup).first(p.SequenceNumber) {
		return
	}
	m.received.Add(1)
	m.latency.add(now.Sub(pl.Sent))
}

// Run joins the scenario's participants, measures for Duration after
// Warmup, closes everyone and returns the result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	members, err := cfg.plan()
	if err != nil {
		return nil, err
	}
	urls := splitURLs(cfg.URL)
	var metricsURLs []string
	for _, u := range urls {
		mu, err := metricsURLFor(u)
		if err != nil {
			return nil, err
		}
		metricsURLs = append(metricsURLs, mu)
	}
	res := &Result{Scenario: cfg.Scenario, Transport: cfg.Transport, Participants: len(members), Nodes: len(urls)}
	before, _ := scrapeAll(ctx, metricsURLs)

	m := &meter{}
	m.from.Store(math.MaxInt64) // nothing counts before the window opens
	m.to.Store(math.MaxInt64)
	ppf := max(1, int(math.Round(float64(cfg.VideoBitrate)/8/float64(cfg.FPS)/float64(cfg.PacketSize))))
	clients := make([]*client.Client, len(members))
	joins := make([]time.Duration, len(members))
	var errMu sync.Mutex
	sem := make(chan struct{}, cfg.JoinParallel)
	var wg sync.WaitGroup
	for i, mb := range members {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			start := time.Now()
			cc := client.Config{URL: urls[i%len(urls)], Room: mb.room, Name: mb.name, Audio: mb.audio, Video: mb.video,
				VideoFPS: cfg.FPS, PacketsPerFrame: ppf, PacketSize: cfg.PacketSize, KeyframeInterval: cfg.KeyframeInterval,
				OnPacket: m.onPacket}
			if cfg.Keys.Secret != "" {
				tok, err := cfg.Keys.Mint(auth.Token{Room: mb.room, Identity: mb.name, TTL: cfg.Warmup + cfg.Duration + time.Hour,
					Grants: auth.All}, time.Now())
				if err != nil { // a secret shorter than auth's minimum
					errMu.Lock()
					if len(res.Errors) < 10 {
						res.Errors = append(res.Errors, fmt.Sprintf("%s/%s: token: %v", mb.room, mb.name, err))
					}
					errMu.Unlock()
					return
				}
				cc.Token = tok
			}
			switch cfg.Transport {
			case "tcp":
				cc.Networks = []webrtc.NetworkType{webrtc.NetworkTypeTCP4}
			case "turn-udp", "turn-tcp", "turn-tls":
				cc.Relay = strings.TrimPrefix(cfg.Transport, "turn-")
			}
			c, err := client.Join(ctx, cc)
			if err == nil {
				wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				err = client.Wait(wctx, c.Connected)
				cancel()
				if err != nil {
					err = fmt.Errorf("not connected within 20 s: %w (%s)", err, c.Debug())
					c.Abort()
				}
			}
			if err != nil {
				errMu.Lock()
				if len(res.Errors) < 10 {
					res.Errors = append(res.Errors, fmt.Sprintf("%s/%s: %v", mb.room, mb.name, err))
				}
				errMu.Unlock()
				return
			}
			clients[i], joins[i] = c, time.Since(start)
		}()
	}
	wg.Wait()
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Leave()
			}
		}
	}()
	var joined []time.Duration
	for i, c := range clients {
		if c != nil {
			res.Connected++
			joined = append(joined, joins[i])
		}
	}
	if len(joined) > 0 {
		sort.Slice(joined, func(a, b int) bool { return joined[a] < joined[b] })
		res.JoinP50 = ms(joined[len(joined)/2])
		res.JoinMax = ms(joined[len(joined)-1])
	}
	if err := sleep(ctx, cfg.Warmup, nil); err != nil {
		return nil, err
	}

	// Open the window: from now on packets count, and every publisher
	// track's send counter is the baseline of what was expected.
	sent0 := sentByRoom(members, clients)
	start := time.Now()
	m.from.Store(start.UnixNano())
	atStart, _ := scrapeAll(ctx, metricsURLs)
	live := func(elapsed time.Duration) {
		if cfg.Live == nil {
			return
		}
		exp := expected(members, clients, sent0)
		got := m.received.Load()
		fmt.Fprintf(cfg.Live, "\r%3.0fs  connected %d/%d  received %8.0f pkt/s  delivery %7.3f %%  p99 %6.2f ms ",
			elapsed.Seconds(), res.Connected, res.Participants, float64(got)/elapsed.Seconds(),
			100*ratio(got, exp), ms(m.latency.quantile(0.99)))
	}
	if err := sleep(ctx, cfg.Duration, live); err != nil {
		return nil, err
	}
	end := time.Now()
	m.to.Store(end.UnixNano())
	res.Expected = expected(members, clients, sent0)
	atEnd, _ := scrapeAll(ctx, metricsURLs)
	// Packets sent before the end may still be in flight or repaired.
	if err := sleep(ctx, time.Second, nil); err != nil {
		return nil, err
	}
	if cfg.Live != nil {
		fmt.Fprintln(cfg.Live)
	}
	res.Seconds = end.Sub(start).Seconds()
	res.Received = m.received.Load()
	res.Delivery = ratio(res.Received, res.Expected)
	res.LatencyP50 = ms(m.latency.quantile(0.50))
	res.LatencyP95 = ms(m.latency.quantile(0.95))
	res.LatencyP99 = ms(m.latency.quantile(0.99))
	if atStart != nil && atEnd != nil {
		fwd := atEnd.sum("roundtable_rtp_packets_sent_total") - atStart.sum("roundtable_rtp_packets_sent_total")
		cpu := atEnd.sum("process_cpu_seconds_total") - atStart.sum("process_cpu_seconds_total")
		res.ServerForwardedPerSec = fwd / res.Seconds
		res.ServerRelayedPerSec = (atEnd.sum("roundtable_relay_packets_total") - atStart.sum("roundtable_relay_packets_total")) / 2 / res.Seconds
		res.ServerCPUCores = cpu / res.Seconds
		if fwd > 0 {
			res.ServerCPUPerPacketUS = cpu / fwd * 1e6
		}
		res.ServerRSSBytes = atEnd.sum("process_resident_memory_bytes")
		res.Subscriptions = atEnd.sum("roundtable_subscriptions")
		if before != nil {
			res.ServerRSSDeltaBytes = res.ServerRSSBytes - before.sum("process_resident_memory_bytes")
		}
	}
	return res, nil
}

// sentByRoom sums the packets every connected publisher has sent, by room.
func sentByRoom(members []member, clients []*client.Client) map[string]uint64 {
	out := map[string]uint64{}
	for i, c := range clients {
		if c == nil {
			continue
		}
		for _, l := range c.Local() {
			out[members[i].room] += l.Sent.Load()
		}
	}
	return out
}

// expected is how many packets should have arrived since sent0: what each
// room's publishers sent, times the room's other connected members.
func expected(members []member, clients []*client.Client, sent0 map[string]uint64) uint64 {
	now := sentByRoom(members, clients)
	connected := map[string]uint64{}
	for i, c := range clients {
		if c != nil {
			connected[members[i].room]++
		}
	}
	var n uint64
	for room, s := range now {
		if connected[room] > 1 {
			n += (s - sent0[room]) * (connected[room] - 1)
		}
	}
	return n
}

func ratio(got, want uint64) float64 {
	if want == 0 {
		return 0
	}
	return float64(got) / float64(want)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// sleep waits d, calling tick (if any) every second with the time elapsed.
func sleep(ctx context.Context, d time.Duration, tick func(time.Duration)) error {
	start := time.Now()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	done := time.NewTimer(d)
	defer done.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done.C:
			return nil
		case now := <-t.C:
			if tick != nil {
				tick(now.Sub(start))
			}
		}
	}
}

// splitURLs splits a comma-separated list of signaling URLs.
func splitURLs(s string) []string {
	var out []string
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// scrapeAll scrapes every node and sums what they report; an error only
// if no node answered.
func scrapeAll(ctx context.Context, urls []string) (samples, error) {
	var total samples
	var firstErr error
	for _, u := range urls {
		s, err := scrape(ctx, u)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if total == nil {
			total = samples{}
		}
		for k, v := range s {
			total[k] += v
		}
	}
	if total == nil {
		return nil, firstErr
	}
	return total, nil
}

// metricsURLFor turns ws://host/ws into http://host/metrics.
func metricsURLFor(ws string) (string, error) {
	u, err := url.Parse(ws)
	if err != nil {
		return "", fmt.Errorf("server URL: %w", err)
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	default:
		return "", fmt.Errorf("server URL %q: want ws:// or wss://", ws)
	}
	u.Path, u.RawQuery = "/metrics", ""
	return u.String(), nil
}

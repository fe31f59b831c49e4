// Package metrics exports Roundtable's counters in the Prometheus text
// format. It owns the server's Prometheus registry and is the only package
// of the server that imports the Prometheus library (internal/baseline, the
// stock pion yardstick run by `roundtable baseline`, has a registry of its
// own): the other packages count with atomics (sfu.Stats, signal.Stats,
// room.Manager) and this package reads them at scrape time, so no packet
// path ever calls into Prometheus. No label value grows with rooms or
// participants.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/roundtable-sfu/roundtable/cluster"
	"github.com/roundtable-sfu/roundtable/record"
	"github.com/roundtable-sfu/roundtable/room"
	"github.com/roundtable-sfu/roundtable/sfu"
	"github.com/roundtable-sfu/roundtable/signal"
	"github.com/roundtable-sfu/roundtable/turn"
	"github.com/roundtable-sfu/roundtable/webhook"
)

const ns = "roundtable"

// Sources are the counters to export.
type Sources struct {
	Media     *sfu.Stats
	Rooms     *room.Manager
	Signal    *signal.Stats
	Estimates func() []int      // current bandwidth estimates, bits per second
	TURN      func() turn.Stats // the built-in TURN server's; nil when it is off
	Webhooks  *webhook.Stats    // nil: none
	// WHIP counts WHIP sessions connecting and connected; nil: none.
	WHIP func() (connecting, connected int)
	// WHEP counts WHEP sessions the same way; nil: none.
	WHEP func() (connecting, connected int)
	// Recording is the recorders' counters; nil: none.
	Recording *record.Stats
	// Cluster is the cluster node's counters; nil: not in a cluster.
	Cluster *cluster.Stats
}

// Handler returns the /metrics handler: Roundtable's metrics plus the Go and
// process collectors.
func Handler(src Sources) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newCollector(src),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(ns, "", name), help, labels, nil)
}

// collector is called by the Prometheus handler, possibly from several
// scrapes at once; it only reads atomics and takes the room manager's lock
// briefly (Counts).
type collector struct {
	src Sources

	rooms, participants, peers, tracks, subscriptions  *prometheus.Desc
	pausedSubscriptions                                *prometheus.Desc
	packetsIn, bytesIn, packetsOut, bytesOut           *prometheus.Desc
	dropped, nacksRecv, nacksSent, retransmits         *prometheus.Desc
	keyframeReqRecv, keyframeReqSent, rtcpErrors       *prometheus.Desc
	dataIn, dataInBytes, dataOut, dataOutBytes         *prometheus.Desc
	sigIn, sigOut, sigErrors, sessions, joinTime       *prometheus.Desc
	estimates, layerSwitches                           *prometheus.Desc
	turnAllocations, turnRefused, turnDropped          *prometheus.Desc
	iceConnected, iceFailures                          *prometheus.Desc
	resumes, detached, iceRestarts                     *prometheus.Desc
	webhooks                                           *prometheus.Desc
	qualityNow, qualitySeconds, loss, rtt, freezes     *prometheus.Desc
	whip, whep                                         *prometheus.Desc
	recordings, recordBytes, recordDropped, recordLost *prometheus.Desc
	clusterNodes, redisErrors, relays, relayPackets    *prometheus.Desc
	relayFailures                                      *prometheus.Desc
}

func newCollector(src Sources) *collector {
	return &collector{
		src:                 src,
		rooms:               desc("rooms", "Rooms that exist now."),
		participants:        desc("participants", "Participants in all rooms now."),
		peers:               desc("peer_connections", "Open PeerConnections."),
		tracks:              desc("published_tracks", "Tracks being published now.", "kind"),
		subscriptions:       desc("subscriptions", "Forwarded (subscribed) tracks now: one per subscriber and track (a relay: one per simulcast layer)."),
		pausedSubscriptions: desc("paused_subscriptions", "Video subscriptions paused: the subscriber's tile is hidden, or (a relay's) the layer is above the one the other node's largest tile needs."),
		packetsIn:           desc("rtp_packets_received_total", "RTP packets received from publishers.", "kind"),
		bytesIn:             desc("rtp_received_bytes_total", "RTP bytes received from publishers.", "kind"),
		packetsOut:          desc("rtp_packets_sent_total", "RTP packets sent to subscribers, retransmissions included.", "kind"),
		bytesOut:            desc("rtp_sent_bytes_total", "RTP bytes sent to subscribers.", "kind"),
		dropped:             desc("dropped_total", "Packets or data messages not delivered, by reason.", "reason"),
		nacksRecv:           desc("nacks_received_total", "RTCP NACK packets received from subscribers."),
		nacksSent:           desc("nacks_sent_total", "RTCP NACK packets sent to publishers on upstream loss."),
		retransmits:         desc("retransmitted_packets_total", "RTP packets resent to subscribers in answer to NACKs."),
		keyframeReqRecv:     desc("keyframe_requests_received_total", "PLI and FIR packets received from subscribers.", "type"),
		keyframeReqSent:     desc("keyframe_requests_sent_total", "PLI/FIR packets sent to publishers after throttling."),
		rtcpErrors:          desc("rtcp_errors_total", "RTCP packets that could not be parsed or that an interceptor refused."),
		dataIn:              desc("data_messages_received_total", "Data-channel messages received."),
		dataInBytes:         desc("data_received_bytes_total", "Data-channel bytes received."),
		dataOut:             desc("data_messages_sent_total", "Data-channel messages forwarded."),
		dataOutBytes:        desc("data_sent_bytes_total", "Data-channel bytes forwarded, sender tag included."),
		sigIn:               desc("signaling_messages_received_total", "Signaling messages received, by type.", "type"),
		sigOut:              desc("signaling_messages_sent_total", "Signaling messages sent, by type.", "type"),
		sigErrors:           desc("signaling_errors_total", "Signaling error messages sent, by code.", "code"),
		sessions:            desc("signaling_sessions", "Open signaling WebSockets."),
		joinTime:            desc("join_duration_seconds", "Time from WebSocket open to PeerConnection connected, by the path media took.", "path"),
		iceConnected:        desc("ice_connected_total", "PeerConnections that connected, by path: udp, tcp (ICE-TCP), relay_udp/relay_tcp/relay_tls (built-in TURN, by the client's transport), relay (another TURN server).", "path"),
		iceFailures:         desc("ice_failures_total", "PeerConnections that did not connect in time or failed later, by the server's diagnosis (error ice_failed's reason).", "reason"),
		layerSwitches:       desc("layer_switches_total", "Simulcast layer changes of subscribers."),
		resumes:             desc("resumes_total", "Resume attempts after a dropped signaling socket, by result: ok, or why it was refused (invalid, expired, wrong_room, gone).", "result"),
		detached:            desc("sessions_detached", "Participants whose signaling socket dropped, kept in their room for the resume window."),
		iceRestarts:         desc("ice_restarts_total", "ICE restarts offered by clients and answered (a new network, a lost path)."),
		qualityNow:          desc("participants_by_quality", "Participants by connection quality level now, the worse of their two directions (sampled each second).", "level"),
		qualitySeconds:      desc("quality_seconds_total", "Seconds participants spent at each connection quality level, by direction (upstream: what they send; downstream: what they receive).", "direction", "level"),
		loss:                desc("packet_loss_ratio", "Per-second packet loss of each participant and direction, over seconds with at least 30 packets (upstream: sequence gaps at the server; downstream: first NACKs of video and receiver-reported audio loss).", "direction"),
		rtt:                 desc("rtt_seconds", "Per-second round-trip times of participants, from their RTCP receiver reports."),
		freezes:             desc("video_freezes_total", "Video freezes participants saw: a second or more without frames of a video whose publisher kept sending."),
		whip:                desc("whip_sessions", "WHIP publishing sessions now, by state: connecting (answered, media not up yet) or connected.", "state"),
		recordings:          desc("recordings_active", "Rooms being recorded now."),
		recordBytes:         desc("recording_bytes_total", "Bytes written to recorded track files."),
		recordDropped:       desc("recorder_dropped_packets_total", "Packets a recorder's queue could not take (a disk too slow); forwarding to participants is never slowed."),
		recordLost:          desc("recording_lost_packets_total", "Packets missing from recordings because the server never received them (after retransmissions were asked for)."),
		whep:                desc("whep_sessions", "WHEP playback sessions now, by state: connecting (answered, media not up yet) or connected.", "state"),
		clusterNodes:        desc("cluster_nodes", "Live nodes of the cluster, this one included, as of its last heartbeat (only with -redis-url)."),
		redisErrors:         desc("cluster_redis_errors_total", "Redis commands and pipelines that failed, and relay signals dropped for want of Redis (only with -redis-url)."),
		relays:              desc("relays", "Relays open now: one per room and other node that has members in it, each one PeerConnection."),
		relayFailures:       desc("relay_failures_total", "Relay connections that failed (ICE, a negotiation, a stuck data channel) and were replaced by a new one."),
		relayPackets:        desc("relay_packets_total", "RTP packets of relays between nodes, by direction: out (sent to other nodes) and in (received from them); they count in the rtp_packets totals too.", "direction"),
		webhooks:            desc("webhooks_total", "Webhook events by result: delivered (2xx), failed (still failing after the retry time), dropped (the queue was full).", "result"),
		turnAllocations:     desc("turn_allocations", "Relayed transport addresses the built-in TURN server holds now."),
		turnRefused:         desc("turn_refused_total", "TURN requests the built-in server refused, by reason (unauthorized: 401, forbidden: 403, quota: 486, malformed: 400 or dropped).", "reason"),
		turnDropped:         desc("turn_relay_dropped_total", "Relayed datagrams dropped because they were to or from an address that is not Roundtable's."),
		estimates: desc("bandwidth_estimate_bytes_per_second",
			"Current send-side bandwidth estimates toward subscribers (GCC from TWCC feedback, else REMB), one observation per participant at scrape time."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	rooms, parts := c.src.Rooms.Counts()
	gauge(c.rooms, float64(rooms))
	gauge(c.participants, float64(parts))

	m := c.src.Media
	gauge(c.peers, float64(m.Peers.Load()))
	gauge(c.subscriptions, float64(m.Subscriptions.Load()))
	gauge(c.pausedSubscriptions, float64(m.PausedSubscriptions.Load()))
	for _, k := range []sfu.Kind{sfu.KindAudio, sfu.KindVideo} {
		l := k.String()
		gauge(c.tracks, float64(m.UpTracks[k].Load()), l)
		counter(c.packetsIn, m.PacketsIn[k].Load(), l)
		counter(c.bytesIn, m.BytesIn[k].Load(), l)
		counter(c.packetsOut, m.PacketsOut[k].Load(), l)
		counter(c.bytesOut, m.BytesOut[k].Load(), l)
	}
	for _, r := range sfu.DropReasons() {
		counter(c.dropped, m.Dropped[r].Load(), r.String())
	}
	counter(c.nacksRecv, m.NACKsReceived.Load())
	counter(c.nacksSent, m.NACKsSent.Load())
	counter(c.retransmits, m.Retransmits.Load())
	counter(c.keyframeReqRecv, m.PLIsReceived.Load(), "pli")
	counter(c.keyframeReqRecv, m.FIRsReceived.Load(), "fir")
	counter(c.keyframeReqSent, m.KeyframesSent.Load())
	counter(c.layerSwitches, m.LayerSwitches.Load())
	counter(c.iceRestarts, m.ICERestarts.Load())
	counter(c.rtcpErrors, m.RTCPReadErrors.Load())
	gauge(c.relays, float64(c.src.Rooms.RelayCount()))
	counter(c.relayFailures, c.src.Rooms.RelayFailures())
	counter(c.relayPackets, m.RelayPacketsOut.Load(), "out")
	counter(c.relayPackets, m.RelayPacketsIn.Load(), "in")
	if cl := c.src.Cluster; cl != nil {
		gauge(c.clusterNodes, float64(cl.Nodes.Load()))
		counter(c.redisErrors, cl.RedisErrors.Load())
	}
	counter(c.dataIn, m.DataIn.Load())
	counter(c.dataInBytes, m.DataInBytes.Load())
	counter(c.dataOut, m.DataOut.Load())
	counter(c.dataOutBytes, m.DataOutBytes.Load())

	s := c.src.Signal
	s.In.Each(func(n string, v uint64) { counter(c.sigIn, v, n) })
	s.Out.Each(func(n string, v uint64) { counter(c.sigOut, v, n) })
	s.Errors.Each(func(n string, v uint64) { counter(c.sigErrors, v, n) })
	gauge(c.sessions, float64(s.Sessions.Load()))
	for _, p := range sfu.Paths() {
		count, sum, buckets := s.JoinTime[p].Snapshot()
		ch <- prometheus.MustNewConstHistogram(c.joinTime, count, sum, buckets, string(p))
		counter(c.iceConnected, count, string(p))
	}
	s.ICEFailures.Each(func(n string, v uint64) { counter(c.iceFailures, v, n) })
	s.Resumes.Each(func(n string, v uint64) { counter(c.resumes, v, n) })
	gauge(c.detached, float64(s.Detached.Load()))
	if w := c.src.Webhooks; w != nil {
		counter(c.webhooks, w.Delivered.Load(), "delivered")
		counter(c.webhooks, w.Failed.Load(), "failed")
		counter(c.webhooks, w.Dropped.Load(), "dropped")
	}

	if rm := c.src.Rooms; rm != nil {
		levels := rm.QualityLevels()
		q := rm.Quality()
		for _, l := range sfu.Qualities() {
			gauge(c.qualityNow, float64(levels[l]), l.String())
			for dir, name := range room.DirectionNames {
				counter(c.qualitySeconds, q.Seconds[dir][l].Load(), name, l.String())
			}
		}
		for dir, name := range room.DirectionNames {
			count, sum, buckets := q.Loss[dir].Snapshot()
			ch <- prometheus.MustNewConstHistogram(c.loss, count, sum, buckets, name)
		}
		count, sum, buckets := q.RTT.Snapshot()
		ch <- prometheus.MustNewConstHistogram(c.rtt, count, sum, buckets)
		counter(c.freezes, q.Freezes.Load())
	}

	if r := c.src.Recording; r != nil {
		gauge(c.recordings, float64(r.Active.Load()))
		counter(c.recordBytes, r.Bytes.Load())
		counter(c.recordDropped, r.Dropped.Load())
		counter(c.recordLost, r.Lost.Load())
	}
	for _, s := range []struct {
		desc   *prometheus.Desc
		states func() (int, int)
	}{{c.whip, c.src.WHIP}, {c.whep, c.src.WHEP}} {
		if s.states != nil {
			connecting, connected := s.states()
			gauge(s.desc, float64(connecting), "connecting")
			gauge(s.desc, float64(connected), "connected")
		}
	}

	if c.src.TURN != nil {
		t := c.src.TURN()
		gauge(c.turnAllocations, float64(t.Allocations))
		for _, r := range turn.RefusedReasons {
			counter(c.turnRefused, uint64(t.Refused[r]), r)
		}
		counter(c.turnDropped, uint64(t.Dropped))
	}

	// The distribution of the estimates now, not over time: a histogram
	// rebuilt at every scrape.
	var est []int
	if c.src.Estimates != nil {
		est = c.src.Estimates()
	}
	eb := make(map[float64]uint64, len(EstimateBuckets))
	var total float64
	for _, v := range est {
		bytes := float64(v) / 8
		total += bytes
		for _, b := range EstimateBuckets {
			if bytes <= b {
				eb[b]++
			}
		}
	}
	ch <- prometheus.MustNewConstHistogram(c.estimates, uint64(len(est)), total, eb)
}

// EstimateBuckets are the bandwidth estimate histogram's upper bounds in
// bytes per second (100 kbit/s to 16 Mbit/s).
var EstimateBuckets = []float64{12_500, 31_250, 62_500, 125_000, 250_000, 500_000, 1_000_000, 2_000_000}

package room

// Relays: a room with members on several nodes (package cluster) has, on
// each node, one Relay per other node that has members in it. A Relay's
// connection to the other node is one PeerConnection at a time (a
// relayLeg; a new one, of a new epoch, replaces one that failed), a relay
// Peer at each end (sfu.PeerConfig.Relay). Of the two nodes, the one whose
// id sorts first leads: its end is the Initiator, which offers first, and
// starts a new connection when one fails. Both ends work alike:
//
//   - each subscribes to every track a member of its node publishes (the
//     other node's members subscribe to them there, as to any track), and
//     offers their m-lines (the end that does not lead, in its turns);
//   - each sends its node's side of the room on the connection's data
//     channel: members, track sources and mutes, audio levels, data
//     messages (control frames, sent in order by the leg's writer
//     goroutine), and "view"s of the other node's tracks;
//   - the tracks each receives are UpTracks of proxies, the Participants
//     that stand for the other node's members here (Relay.proxies,
//     Room.remote), which local members see join, publish and leave as any
//     member.
//
// Ownership: Room.mu guards a Relay's proxies, pending tracks, leg and
// ended flag (the room's lock order: Manager.mu, Room.mu). A leg's Peer
// and writer goroutine are the leg's; legs are closed with no room lock
// held (Peer.Close waits for hooks that take it). Proxies are never in
// Room.members or Room.order: whatever loops over local members (their
// Peers, their clients, the webhooks) leaves them alone by construction.
// remote.go keeps the proxies (and the orphans a relay no longer names);
// relayview.go sends the "view"s of the other nodes' videos.

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v3"
	"github.com/roundtable-sfu/roundtable/sfu"
)

// RelaySignal is one signaling message between the two ends of a
// relay's connection, carried between nodes by package cluster, in order.
type RelaySignal struct {
	// Epoch names the connection: the leading node gives each a new one.
	// Signals of a connection that is gone are dropped.
	Epoch string `json:"epoch"`
	// Signal is an offer, answer, candidate or turn (sfu.Signal), unless
	// Failed.
	Signal sfu.Signal `json:"signal"`
	// Start marks the leading node's first offer of a connection: only
	// that one starts the other node's end.
	Start bool `json:"start,omitempty"`
	// Failed (from the node that does not lead): its end of connection
	// Epoch failed, or is not there (a signal of a connection it does not
	// know), or, with Epoch empty, it has none (its relay is new). The
	// leading node starts a new connection if Epoch is its current one's,
	// or if Epoch is empty and the current one was answered once (by an
	// end that is gone).
	Failed bool `json:"failed,omitempty"`
}

// ErrRelayExists: the room already has a relay to that node.
var ErrRelayExists = errors.New("room: relay to that node exists")

// relayQueue bounds the control and data frames waiting for a leg's data
// channel writer; a leg whose queue overflows is restarted.
const relayQueue = 4096

// Relay links a room here with the same room on another node.
type Relay struct {
	room *Room
	node string // the other node's id
	lead bool   // this node leads: its end offers first, and starts new connections
	send func(RelaySignal)
	log  *slog.Logger
	done chan struct{}
	once sync.Once

	// guarded by room.mu
	leg     *relayLeg                 // the connection, nil until the leading node's offer (or while it starts a new one)
	failed  string                    // not leading: the last epoch it told the leading node is gone
	proxies map[string]*Participant   // the other node's members, by id
	pending map[string][]*sfu.UpTrack // tracks whose member is not known yet, by its id
	joins   map[string]relayControl   // "join"s of members still local here, until they leave (moved)
	views   map[string]view           // the "view" last sent of each relayed track, by its id
	levels  map[string]float64        // the other node's members' audio levels, from its last "levels"
	levelAt time.Time                 // when they came
	ended   bool
}

// relayLeg is one connection of a relay: a PeerConnection to the other
// node, and the writer goroutine of its data channel.
type relayLeg struct {
	peer    *sfu.Peer
	epoch   string
	offered atomic.Bool        // its first offer went out (RelaySignal.Start)
	ctl     chan relayFrame    // frames for the data channel writer
	flush   chan chan struct{} // send what is queued, then close the channel given
	// stopped is closed when the writer returns.
	stopped chan struct{}
	done    chan struct{} // closed when the leg is retired
	// failed: legFailed acted on it (guarded by Room.mu)
	failed bool
}

// relayFrame is one data-channel message a relay sends: a data message
// from member `from`, or with from "" a control message.
type relayFrame struct {
	from string
	msg  sfu.DataMessage
}

// relayControl is a control message (JSON, sent with an empty sender).
type relayControl struct {
	// Type: "hello" (a connection's first message: what follows is the
	// sender's snapshot), "synced" (the snapshot is complete), "join",
	// "leave", "track" (a track's source and muted state), "levels" (audio
	// levels); and, back to the node a track comes from, "view".
	Type        string `json:"t"`
	Participant string `json:"p,omitempty"`
	Name        string `json:"name,omitempty"`
	Identity    string `json:"identity,omitempty"`
	Track       string `json:"track,omitempty"`
	Source      string `json:"source,omitempty"`
	Muted       bool   `json:"muted,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// At ("join"): when the member joined the sending node (Unix
	// nanoseconds): of two nodes that both have a member, the later join
	// is the member (it moved there).
	At int64 `json:"at,omitempty"`
	// "view" (from the node that receives Track): the largest tile its
	// members show it in (0 unknown: the best layer), and whether any
	// shows it at all.
	Width   int  `json:"w,omitempty"`
	Height  int  `json:"h,omitempty"`
	Visible bool `json:"visible,omitempty"`
	// "levels" (every SpeakerInterval): the sending node's members' audio
	// levels over the tick (SpeakerDetector's samples), by participant.
	Levels map[string]float64 `json:"l,omitempty"`
}

// OpenRelay links room roomName, which must have members here, with the
// same room on node. If lead (one of the two nodes leads, the same on
// both: package cluster picks the one whose id sorts first), it starts the
// connection, which offers through send at once; else the connection
// starts with the other node's offer. HandleSignal takes what the other
// node sends. The relay ends with Close, when the room ends here, or never
// on its own otherwise: a failed connection is started again. Errors:
// ErrNoRoom, ErrRelayExists.
func (m *Manager) OpenRelay(roomName, node string, lead bool, send func(RelaySignal)) (*Relay, error) {
	r := m.room(roomName)
	if r == nil {
		return nil, ErrNoRoom
	}
	rl := &Relay{room: r, node: node, lead: lead, send: send, done: make(chan struct{}),
		log:     m.log.With("room", roomName, "node", node),
		proxies: map[string]*Participant{}, pending: map[string][]*sfu.UpTrack{}, joins: map[string]relayControl{},
		views: map[string]view{}}
	r.mu.Lock()
	if r.ended {
		r.mu.Unlock()
		return nil, ErrNoRoom
	}
	if r.relays[node] != nil {
		r.mu.Unlock()
		return nil, ErrRelayExists
	}
	if r.relays == nil {
		r.relays = map[string]*Relay{}
	}
	r.relays[node] = rl
	r.mu.Unlock()
	m.relays.Add(1)
	if lead {
		if _, err := rl.startLeg(newEpoch()); err != nil {
			rl.Close()
			return nil, err
		}
	}
	if !lead {
		// The leading node may hold a connection whose end here is gone
		// (this node closed the relay a moment ago, or restarted).
		send(RelaySignal{Failed: true})
	}
	rl.log.Info("relay opened", "lead", lead)
	return rl, nil
}

// Node returns the other node's id.
func (rl *Relay) Node() string { return rl.node }

// Done is closed when the relay has ended.
func (rl *Relay) Done() <-chan struct{} { return rl.done }

// newEpoch returns a random leg name.
func newEpoch() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// startLeg makes connection epoch, retiring the current one: the leading
// node's new one, or (not leading) the one the leading node's offer
// names. It subscribes to every local track and sends the room as it is
// here. Errors: ErrNoRoom (the relay ended).
func (rl *Relay) startLeg(epoch string) (*relayLeg, error) {
	leg := &relayLeg{epoch: epoch, ctl: make(chan relayFrame, relayQueue), flush: make(chan chan struct{}),
		stopped: make(chan struct{}), done: make(chan struct{})}
	peer, err := rl.room.mgr.newPeer(sfu.PeerConfig{
		ID:                 "relay:" + rl.node,
		Initiator:          rl.lead,
		Relay:              true,
		CandidatesInAnswer: !rl.lead,
		OnSignal: func(s sfu.Signal) {
			select {
			case <-leg.done:
				return // retired: a late offer would only confuse the other end
			default:
			}
			start := rl.lead && s.Kind == sfu.SignalOffer && leg.offered.CompareAndSwap(false, true)
			rl.send(RelaySignal{Epoch: epoch, Signal: s, Start: start})
		},
		OnTrack:      func(up *sfu.UpTrack) bool { return rl.onTrack(leg, up) },
		OnTrackEnded: rl.onTrackEnded,
		OnData:       func(d sfu.DataMessage) { rl.onData(leg, d) },
		OnState: func(s webrtc.PeerConnectionState) {
			if s == webrtc.PeerConnectionStateFailed {
				rl.legFailed(leg, "ice failed")
			}
		},
		OnError: func(err error) {
			if errors.Is(err, sfu.ErrNegotiationFailed) {
				rl.legFailed(leg, err.Error())
			}
		},
		Logger: rl.log,
	})
	if err != nil {
		return nil, fmt.Errorf("relay with %s: %w", rl.node, err)
	}
	leg.peer = peer
	r := rl.room
	r.mu.Lock()
	if rl.ended {
		r.mu.Unlock()
		_ = peer.Close()
		return nil, ErrNoRoom
	}
	old := rl.leg
	rl.leg = leg
	rl.views = map[string]view{} // the other end of a new connection knows none
	rl.controlLocked(relayControl{Type: "hello"})
	for _, p := range r.order {
		rl.announceLocked(p)
	}
	rl.controlLocked(relayControl{Type: "synced"})
	r.mu.Unlock()
	go rl.writeLoop(leg)
	if old != nil {
		// Now, before the new connection's tracks come: they keep their
		// ids, and the old ones must be unpublished first. What the old
		// one had queued is moot: the new snapshot says it all.
		old.retireFlushing(false)
	}
	rl.log.Info("relay connection started", "epoch", epoch, "lead", rl.lead)
	return leg, nil
}

// announceLocked tells the other node of local member p and its tracks,
// and subscribes the relay's Peer to them (r.mu held).
func (rl *Relay) announceLocked(p *Participant) {
	rl.controlLocked(relayControl{Type: "join", Participant: p.id, Name: p.name, Identity: p.identity, At: p.joined.UnixNano()})
	for _, up := range p.tracks {
		rl.trackLocked(p, up)
	}
}

// trackLocked sends a local track's source and muted state and subscribes
// the relay's Peer to it (r.mu held).
func (rl *Relay) trackLocked(p *Participant, up *sfu.UpTrack) {
	info := p.trackInfo(up)
	rl.controlLocked(relayControl{Type: "track", Participant: p.id, Track: up.ID(), Source: info.Source, Muted: info.Muted})
	rl.leg.peer.Subscribe(up)
}

// controlLocked queues a control message for the other node (r.mu held).
func (rl *Relay) controlLocked(c relayControl) {
	b, err := json.Marshal(c)
	if err != nil {
		return // plain strings and bools: cannot happen
	}
	rl.queueLocked(relayFrame{msg: sfu.DataMessage{Data: b, IsString: true}})
}

// queueLocked queues a frame for the other node without blocking; a full
// queue (the data channel stuck for thousands of messages) fails the
// connection, whose successor's snapshot makes up for what was lost (r.mu
// held). Without a connection it drops it: the next one's snapshot says
// it.
func (rl *Relay) queueLocked(f relayFrame) {
	leg := rl.leg
	if leg == nil {
		return
	}
	select {
	case leg.ctl <- f:
	default:
		go rl.legFailed(leg, "control queue full")
	}
}

// writeLoop sends a leg's frames in order until the leg is retired;
// a flush request makes it send what is queued and wait (at most
// flushWait) for the data channel to have sent it.
func (rl *Relay) writeLoop(leg *relayLeg) {
	defer close(leg.stopped)
	send := func(f relayFrame) bool {
		err := leg.peer.SendData(f.from, f.msg)
		if err != nil && f.from == "" && !errors.Is(err, sfu.ErrClosed) {
			rl.legFailed(leg, "control message not sent: "+err.Error())
			return false
		}
		return true
	}
	for {
		select {
		case <-leg.done:
			return
		case f := <-leg.ctl:
			if !send(f) {
				return
			}
		case flushed := <-leg.flush:
			for more := true; more; {
				select {
				case f := <-leg.ctl:
					more = send(f)
				default:
					more = false
				}
			}
			deadline := time.Now().Add(flushWait)
			for leg.peer.DataPending() > 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			close(flushed)
			return
		}
	}
}

// flushWait bounds how long a relay that closes waits for its last
// control messages (the members that left) to go out.
const flushWait = time.Second

// retireFlushing ends a leg: its writer stops and its Peer closes (no
// room lock held). With flush, the writer first sends what is queued
// (unless the other node is gone), so that the other node hears of the
// last members to leave.
func (leg *relayLeg) retireFlushing(flush bool) {
	if flush {
		flushed := make(chan struct{})
		select {
		case leg.flush <- flushed:
			<-flushed // the writer waits at most flushWait
		case <-leg.stopped: // the writer stopped already
		}
	}
	close(leg.done)
	_ = leg.peer.Close()
}

// legFailed acts on a failed connection: the leading node starts a new
// one; the other retires it and tells the leading node (which may not
// have seen it fail), whose new one follows. Called at most once per leg
// with effect.
func (rl *Relay) legFailed(leg *relayLeg, why string) {
	r := rl.room
	r.mu.Lock()
	current := rl.leg == leg && !leg.failed
	leg.failed = true
	if current && !rl.lead {
		rl.leg, rl.failed = nil, leg.epoch
	}
	ended := rl.ended
	r.mu.Unlock()
	if ended || !current {
		return
	}
	rl.room.mgr.relayFails.Add(1)
	rl.log.Warn("relay connection failed", "epoch", leg.epoch, "lead", rl.lead, "why", why)
	if !rl.lead {
		rl.send(RelaySignal{Epoch: leg.epoch, Failed: true})
		go leg.retireFlushing(false)
		return
	}
	go func() {
		if _, err := rl.startLeg(newEpoch()); err != nil && !errors.Is(err, ErrNoRoom) {
			rl.log.Error("relay connection not restarted", "err", err)
			rl.Close()
		}
	}()
}

// HandleSignal takes a signal from the other node's end of the relay. Not
// leading, the first offer of a connection this relay has not seen starts
// it (the leading node started a new one), and its snapshot replaces the
// proxies'; any other signal of a connection it does not have (but a
// candidate) is answered Failed, once, so that the leading node starts a
// new one. Leading, a signal of a connection that is gone is dropped.
// Errors: ErrNoRoom (the relay ended), and what the Peer says of the
// signal.
func (rl *Relay) HandleSignal(s RelaySignal) error {
	r := rl.room
	r.mu.Lock()
	leg, ended := rl.leg, rl.ended
	r.mu.Unlock()
	if ended {
		return ErrNoRoom
	}
	if rl.lead && s.Failed {
		if leg != nil && (s.Epoch == leg.epoch || s.Epoch == "" && leg.peer.RemoteSDP() != "") {
			rl.legFailed(leg, "its end on the other node failed or is gone")
		}
		return nil
	}
	if leg == nil || leg.epoch != s.Epoch {
		switch {
		case rl.lead || s.Failed || s.Signal.Kind == sfu.SignalCandidate:
			return nil // of a connection that is gone, or a candidate ahead of its offer
		case !s.Start:
			r.mu.Lock()
			tell := rl.failed != s.Epoch
			rl.failed = s.Epoch
			r.mu.Unlock()
			if tell {
				rl.send(RelaySignal{Epoch: s.Epoch, Failed: true})
			}
			return nil
		}
		var err error
		if leg, err = rl.startLeg(s.Epoch); err != nil {
			return err
		}
	}
	switch s.Signal.Kind {
	case sfu.SignalOffer:
		return leg.peer.HandleOffer(s.Signal.SDP)
	case sfu.SignalAnswer:
		return leg.peer.HandleAnswer(s.Signal.SDP)
	case sfu.SignalCandidate:
		return leg.peer.HandleCandidate(s.Signal.Candidate)
	case sfu.SignalTurnRequest:
		return leg.peer.HandleTurnRequest()
	case sfu.SignalTurnGrant:
		return leg.peer.HandleTurnGrant()
	}
	return fmt.Errorf("relay: unknown signal kind %d", s.Signal.Kind)
}

// onData is a message from the other node: with a sender, a data message
// of that member, for every local member; without, a control message. On
// the leg's reader goroutine; d.Data is reused after it returns.
func (rl *Relay) onData(leg *relayLeg, d sfu.DataMessage) {
	i := bytes.IndexByte(d.Data, ':')
	if i < 0 {
		return
	}
	from, body := string(d.Data[:i]), d.Data[i+1:]
	r := rl.room
	if from != "" {
		r.mu.Lock()
		known := rl.proxies[from] != nil && rl.leg == leg
		others := slices.Clone(r.order)
		r.mu.Unlock()
		if !known {
			return
		}
		for _, o := range others {
			_ = o.peer.SendData(from, sfu.DataMessage{Data: body, IsString: d.IsString})
		}
		return
	}
	var c relayControl
	if err := json.Unmarshal(body, &c); err != nil {
		rl.log.Warn("relay control message refused", "err", err)
		return
	}
	if c.Type == "view" {
		rl.onView(leg, c)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if rl.ended || rl.leg != leg {
		return
	}
	rl.controlFromLocked(c)
}

// controlFromLocked applies a control message from the other node (r.mu
// held).
func (rl *Relay) controlFromLocked(c relayControl) {
	r := rl.room
	switch c.Type {
	case "hello":
		for _, p := range rl.proxies {
			p.stale = true // until the snapshot names it again
		}
	case "synced":
		for _, p := range rl.proxies {
			if p.stale {
				// Not named by the new snapshot: it left, or is moving
				// and its "leave" went with the old leg. It waits.
				r.orphanLocked(p)
			}
		}
	case "join":
		if c.Participant == "" {
			return
		}
		if p := r.members[c.Participant]; p != nil {
			// A member here that joined that node later continues there
			// (a resume there): its session here ends ("moved") and the
			// relay takes it over then (Room.removeLocked). An older
			// join (a snapshot taken before it left that node) is stale.
			if c.At <= p.joined.UnixNano() {
				return
			}
			rl.joins[p.id] = c
			if !p.moving {
				p.moving = true
				go p.client.Close(ReasonMoved)
			}
			return
		}
		if p := rl.proxies[c.Participant]; p != nil {
			p.stale = false
			return
		}
		if p := r.remoteLocked(c.Participant); p != nil {
			// It was another node's (lost, or it moved from there): the
			// same participant, now by this relay. Nobody sees it leave.
			rl.adoptLocked(p)
			return
		}
		name, err := NormalizeName(c.Name)
		if err != nil {
			name = "?"
		}
		p := &Participant{id: c.Participant, name: name, identity: c.Identity, perm: Permissions{Publish: true},
			relay: rl, room: r, mgr: r.mgr, roomName: r.name, joined: time.Now(), meta: map[string]TrackMeta{}}
		rl.proxies[p.id] = p
		r.remote = append(r.remote, p)
		ev := ParticipantJoined{Participant: p.info()}
		for _, o := range r.order {
			o.client.Notify(ev)
		}
		rl.log.Info("remote participant joined", "participant", p.id, "name", p.name)
		for _, up := range rl.pending[p.id] {
			rl.replaceLocked(p, up)
		}
		delete(rl.pending, p.id)
	case "leave":
		if p := rl.proxies[c.Participant]; p != nil {
			if c.Reason == ReasonMoved {
				r.orphanLocked(p) // it comes back through another node
				return
			}
			r.dropRemoteLocked(p, c.Reason)
		}
	case "levels":
		if len(c.Levels) <= 4*r.mgr.limits.MaxParticipants {
			rl.levels, rl.levelAt = c.Levels, time.Now()
		}
	case "track":
		p := rl.proxies[c.Participant]
		if p == nil || len(p.meta) >= 4*MaxTrackMeta || c.Track == "" {
			return
		}
		meta := TrackMeta{Source: c.Source, Muted: c.Muted}
		if p.meta[c.Track] == meta {
			return
		}
		p.meta[c.Track] = meta
		for _, up := range p.tracks {
			if up.ID() == c.Track {
				ev := TrackUpdated{Participant: p.id, Track: p.trackInfo(up)}
				for _, o := range r.order {
					o.client.Notify(ev)
				}
			}
		}
	}
}

// onTrack takes a track the other node relays: its member's, once that
// member is known.
func (rl *Relay) onTrack(leg *relayLeg, up *sfu.UpTrack) bool {
	r := rl.room
	r.mu.Lock()
	defer r.mu.Unlock()
	if rl.ended || rl.leg != leg {
		return false
	}
	if p := rl.proxies[up.StreamID()]; p != nil {
		rl.replaceLocked(p, up)
		return true
	}
	rl.pending[up.StreamID()] = append(rl.pending[up.StreamID()], up)
	return true
}

// replaceLocked publishes relayed track up of proxy p, after the track of
// the same id it replaces (an old leg's), if that one has not ended yet:
// members then hear of the old one's end before the new one (r.mu held).
func (rl *Relay) replaceLocked(p *Participant, up *sfu.UpTrack) {
	for _, t := range slices.Clone(p.tracks) {
		if t != up && t.ID() == up.ID() {
			rl.room.unpublishLocked(p, t)
		}
	}
	rl.room.publishLocked(p, up)
}

func (rl *Relay) onTrackEnded(up *sfu.UpTrack) {
	r := rl.room
	r.mu.Lock()
	defer r.mu.Unlock()
	id := up.StreamID()
	rl.pending[id] = slices.DeleteFunc(rl.pending[id], func(t *sfu.UpTrack) bool { return t == up })
	if len(rl.pending[id]) == 0 {
		delete(rl.pending, id)
	}
	if p := rl.proxies[id]; p != nil {
		r.unpublishLocked(p, up)
		delete(p.meta, up.ID())
	}
}

// Close ends the relay to a node that no longer has members in the room
// (it told of each that left), flushing this side's last messages first;
// the connection closes. Safe to call more than once, with no room lock held.
// Any of the other node's members still here (a message lost, or a member
// moving) waits as Lost's do.
func (rl *Relay) Close() { rl.end(false) }

// Lost ends the relay to a node that died: its members stay in the room
// for Limits.MoveGrace (without their tracks), waiting to come back through
// another node as the same participants, and leave ("node_lost") if they
// do not. With no room lock held.
func (rl *Relay) Lost() { rl.end(true) }

func (rl *Relay) end(lost bool) {
	rl.once.Do(func() {
		r := rl.room
		r.mu.Lock()
		rl.ended = true
		if r.relays[rl.node] == rl {
			delete(r.relays, rl.node)
		}
		// The other node told of every member that left before it left
		// the room; one it named last may still be moving: any left here
		// waits, as after a node's loss.
		for _, p := range rl.proxies {
			if r.ended {
				r.takeRemoteLocked(p) // nobody here to tell, or to wait for it
			} else {
				r.orphanLocked(p)
			}
		}
		rl.pending = map[string][]*sfu.UpTrack{}
		leg := rl.leg
		rl.leg = nil
		r.mu.Unlock()
		if leg != nil {
			leg.retireFlushing(!lost) // a dead node acknowledges nothing
		}
		close(rl.done)
		r.mgr.relays.Add(-1)
		rl.log.Info("relay closed", "node_lost", lost)
	})
}

// RelayCount returns how many relays are open, in every room.
func (m *Manager) RelayCount() int { return int(m.relays.Load()) }

// RelayFailures returns how many relay connections failed (ICE, a
// negotiation, a stuck data channel) and were replaced, as this node saw
// them: one that fails on both nodes counts on each.
func (m *Manager) RelayFailures() uint64 { return m.relayFails.Load() }

// Relays returns the room's relays (for the cluster's reconciliation).
func (m *Manager) Relays(roomName string) map[string]*Relay {
	r := m.room(roomName)
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]*Relay, len(r.relays))
	for k, v := range r.relays {
		out[k] = v
	}
	return out
}

// eachRelayLocked calls f for each of the room's relays that has a
// connection, to tell the other nodes of a local change (r.mu held); one
// that has none sends its snapshot when it has.
func (r *Room) eachRelayLocked(f func(*Relay)) {
	for _, rl := range r.relays {
		if !rl.ended && rl.leg != nil {
			f(rl)
		}
	}
}

// DirectoryEntry is one local participant as the cluster's directory
// keeps it: what a resume on another node needs to let it continue there.
type DirectoryEntry struct {
	ID       string      `json:"id"`
	Name     string      `json:"name"`
	Identity string      `json:"identity,omitempty"`
	Perm     Permissions `json:"perm"`
	// Viewer: a WHEP viewer, which cannot move (its player holds no
	// socket to resume on).
	Viewer bool `json:"viewer,omitempty"`
}

// Directory returns, for each room here, its local members and viewers:
// what this node holds of the cluster's directory (package cluster writes
// it to Redis).
func (m *Manager) Directory() map[string][]DirectoryEntry {
	dir := map[string][]DirectoryEntry{}
	for _, r := range m.allRooms() {
		r.mu.Lock()
		entries := make([]DirectoryEntry, 0, len(r.order)+len(r.viewers))
		for _, p := range r.order {
			if p.moving {
				continue // another node has it now
			}
			entries = append(entries, DirectoryEntry{ID: p.id, Name: p.name, Identity: p.identity, Perm: p.perm, Viewer: p.view != nil})
		}
		for _, p := range r.viewers {
			entries = append(entries, DirectoryEntry{ID: p.id, Name: p.name, Identity: p.identity, Perm: p.perm, Viewer: true})
		}
		ended := r.ended
		r.mu.Unlock()
		if !ended {
			dir[r.name] = entries
		}
	}
	return dir
}

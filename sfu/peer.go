package sfu

// Ownership: the run goroutine (negotiate.go) owns the PeerConnection's
// signaling (every SetLocal/RemoteDescription, AddTransceiver, RemoveTrack),
// the subscription table, the m-lines free for reuse and the remote-candidate
// buffer. Other goroutines talk to it through the events channel (remote
// signaling) and the want map + kick channel (subscription changes). mu
// guards want, the data channels (and the messages queued before the
// member's channel is known, data.go) and the local candidate gate; no
// callback is ever called with mu held. allocateLoop (estimate.go) is the
// Peer's second goroutine; publish.go and data.go start the goroutines of
// what the participant sends. All are counted by wg.

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v3"
)

// Coalesce is how long subscription changes are collected before one offer
// carries all of them.
const Coalesce = 20 * time.Millisecond

const (
	eventQueueLen     = 64
	maxRemoteCands    = 64
	maxDataBuffered   = 1 << 20 // bytes queued on one subscriber's data channel
	dataChannelPrefix = ':'
)

// SignalKind is the type of a Signal.
type SignalKind int

// Signal kinds.
const (
	SignalOffer SignalKind = iota
	SignalAnswer
	SignalCandidate
	// SignalTurnRequest and SignalTurnGrant pass the turn to offer between
	// the two ends of a relay (turns.go); they carry nothing else.
	SignalTurnRequest
	SignalTurnGrant
)

// Signal is a message the Peer needs delivered to its remote.
type Signal struct {
	Kind      SignalKind
	SDP       string
	Candidate webrtc.ICECandidateInit
}

// DataMessage is one data-channel message received from the remote.
type DataMessage struct {
	Data     []byte
	IsString bool
}

// PeerConfig are a Peer's identity and hooks. Hooks are called from pion's
// or the Peer's goroutines; they must not block and must not call Close.
type PeerConfig struct {
	// ID is the participant id; it becomes the stream id of every track the
	// participant publishes.
	ID string
	// OnSignal delivers an offer, answer or candidate to the remote, or a
	// relay's turn (turns.go).
	OnSignal func(Signal)
	// OnTrack announces a track the remote started publishing and reports
	// whether it is accepted. A refused track is still read, so that pion's
	// buffers and reports keep working, but it is neither cached nor
	// forwarded (its packets count as dropped, "track_refused"), and its
	// packet cache is freed. Nil accepts every track.
	OnTrack func(*UpTrack) bool
	// OnTrackEnded announces that a published track stopped.
	OnTrackEnded func(*UpTrack)
	// OnData delivers a data-channel message from the remote, on the
	// channel's reader goroutine; m.Data is reused after it returns.
	OnData func(DataMessage)
	// OnState reports PeerConnection state changes.
	OnState func(webrtc.PeerConnectionState)
	// OnError reports a problem the remote caused: bad SDP or candidates, a
	// track whose codec it cannot receive (ErrCodecNotNegotiated), a data
	// message or channel refused (ErrDataTooLarge, ErrDataChannelLabel).
	// The Peer carries on, except after ErrNegotiationFailed: then it sends
	// no more offers and the caller should end the session.
	OnError func(error)
	// Logger, if nil the engine's.
	Logger *slog.Logger
	// ClientSilent, if set, reports whether nothing at all came from the
	// client since a moment. When the answer to a server offer is overdue
	// (Settings.AnswerTimeout) and the client has been silent since the
	// offer, the offer is presumed lost with a signaling socket that died
	// unnoticed: the Peer waits on (the owner holds it once it sees the
	// drop, SetHeld) instead of failing the negotiation.
	ClientSilent func(since time.Time) bool
	// OnlyTransport, "udp" or "tcp", gives this PeerConnection candidates
	// of that transport only (a connection check); "": both.
	OnlyTransport string
	// CandidatesInAnswer: answers wait (at most gatherWait) for ICE
	// gathering to complete and carry every local candidate, for a remote
	// that gets no trickled candidates (WHIP, RFC 9725 §4.2: the server's
	// candidates are in its answer).
	CandidatesInAnswer bool
	// Playback makes the Peer a viewer's (WHEP): the first audio and the
	// first video m-line of the client's first offer each get a playback
	// DownTrack, whose source Follow sets and changes without
	// renegotiation (playback.go). Such a Peer subscribes to nothing else.
	Playback bool
	// Initiator makes the Peer send the first offer instead of waiting for
	// the remote's (a relay's leading end, whose other end is a Peer too):
	// at once, with its side of the pre-negotiated data channel and every
	// local candidate in the SDP. Its candidates are on a UDP port of its
	// own, not the shared one (see ownUDPPort), and it answers as DTLS
	// server, the role its first offer gave it.
	Initiator bool
	// Relay makes the Peer one end of a relay between nodes, which both
	// send and offer what they send: the end that is not the Initiator
	// offers only in its turn (turns.go); its data channel is the
	// pre-negotiated one, used as soon as it opens; a track it
	// receives keeps the ids its origin gave it (the msid: the track id
	// and the publisher's participant id as stream id) instead of new
	// ones; a simulcast track it sends goes as one track per layer, and
	// one it receives that way is one simulcast track again
	// (relaylayers.go), its layers paused by viewport hints only, with no
	// bandwidth estimate (GCC does not run); it sends no publishing cap;
	// its descriptions may have up to MaxRelayMediaSections m-lines; and a
	// data message may be RelayDataOverhead bytes over the limit (the
	// relay prefixes the sender's id).
	Relay bool
}

// RelayDataOverhead is how many bytes over Settings.MaxDataMessage a
// relay's data message may be: room of the sender's id and its separator.
const RelayDataOverhead = 64

// gatherWait bounds how long an answer waits for gathering
// (PeerConfig.CandidatesInAnswer); the server's host candidates on its
// shared ports are there at once.
const gatherWait = 2 * time.Second

type peerEvent struct {
	kind SignalKind
	sdp  string
	cand webrtc.ICECandidateInit
	err  error // an answer refused before it was posted (already reported)
}

// Peer is one participant's PeerConnection.
type Peer struct {
	cfg    PeerConfig
	engine *Engine
	api    *webrtc.API // this PeerConnection's own (newAPI): its RTPSenders for reused m-lines
	est    *estimator
	pc     *webrtc.PeerConnection
	log    *slog.Logger

	events    chan peerEvent
	kick      chan struct{}
	iceChange chan struct{} // ICE connection state changed
	closed    chan struct{}
	iceUp     atomic.Bool // ICE reached connected once (Diagnose)
	pathDown  atomic.Bool // ICE is disconnected or failed now (resume.go)
	held      atomic.Bool // negotiation on hold: no signaling socket (SetHeld)
	releases  atomic.Int64
	wake      chan struct{} // a release: the run goroutine re-sends its offer
	dtlsUp    atomic.Bool   // the PeerConnection reached connected once
	// remoteCands counts the candidates the client sent, in offers and
	// trickled, usable or not (Diagnose: pion drops mDNS names it cannot
	// resolve, yet the client did send them).
	remoteCands atomic.Int64
	runDone     chan struct{} // the run goroutine has returned
	once        sync.Once
	wg          sync.WaitGroup

	mu         sync.Mutex
	want       map[*UpTrack]bool // pending subscription changes
	data       dataState         // the member's data channel (data.go)
	localOpen  bool              // first answer sent: local candidates may go out
	localCands []webrtc.ICECandidateInit
	closing    bool                             // set before Close waits: no goroutine may start after
	downs      map[*UpTrack]*DownTrack          // current subscriptions, for SetViewport
	ups        map[*UpTrack]struct{}            // published tracks, for pathBack
	simulcast  map[*webrtc.RTPReceiver]*UpTrack // published simulcast tracks by receiver
	videoSSRCs []uint32                         // incoming video streams, for the REMB cap
	playback   []*DownTrack                     // a viewer's tracks (playback.go), set by the run goroutine
	follow     []*UpTrack                       // their sources, as Follow last gave them
	// relayLayers are a relay's simulcast tracks by stream and track id
	// while their layers arrive (relaylayers.go).
	relayLayers map[string]*UpTrack

	neg   negotiation  // run goroutine only
	meter qualityMeter // SampleQuality's caller only (quality.go)
}

// maxCappedSSRCs bounds the video streams one REMB cap names.
const maxCappedSSRCs = 16

// NewPeer creates the participant's PeerConnection and starts its goroutines.
// The remote is expected to send the first offer, unless cfg.Initiator.
func (e *Engine) NewPeer(cfg PeerConfig) (*Peer, error) {
	log := cfg.Logger
	if log == nil {
		log = e.log
	}
	transport := cfg.OnlyTransport
	if cfg.Initiator {
		transport = ownUDPPort
	}
	api, est, err := e.newAPI(transport)
	if err != nil {
		return nil, err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	p := &Peer{
		cfg: cfg, engine: e, api: api, pc: pc, log: log, est: est,
		events:      make(chan peerEvent, eventQueueLen),
		kick:        make(chan struct{}, 1),
		iceChange:   make(chan struct{}, 1),
		wake:        make(chan struct{}, 1),
		closed:      make(chan struct{}),
		runDone:     make(chan struct{}),
		want:        map[*UpTrack]bool{},
		downs:       map[*UpTrack]*DownTrack{},
		ups:         map[*UpTrack]struct{}{},
		simulcast:   map[*webrtc.RTPReceiver]*UpTrack{},
		neg:         newNegotiation(),
		relayLayers: map[string]*UpTrack{},
	}
	pc.OnICECandidate(p.onLocalCandidate)
	pc.OnTrack(p.onTrack)
	pc.OnDataChannel(p.onDataChannel)
	pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		if s == webrtc.ICEConnectionStateConnected || s == webrtc.ICEConnectionStateCompleted {
			p.iceUp.Store(true)
		}
		p.onICEState(s)
		select {
		case p.iceChange <- struct{}{}:
		default:
		}
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			p.dtlsUp.Store(true)
		}
		if cfg.OnState != nil {
			cfg.OnState(s)
		}
	})
	if cfg.Initiator {
		// No remote offer to wait for: offer at once, even with no
		// subscriptions (the data channel goes in the first).
		p.neg.answered, p.neg.force = true, true
	}
	e.stats.Peers.Add(1)
	e.mu.Lock()
	e.peers[p] = struct{}{}
	e.mu.Unlock()
	p.wg.Add(2)
	go p.run()
	go p.allocateLoop()
	if cfg.Initiator {
		p.kickRun()
	}
	return p, nil
}

// ID returns the participant id.
func (p *Peer) ID() string { return p.cfg.ID }

// HandleOffer queues a remote offer.
func (p *Peer) HandleOffer(sdp string) error {
	if err := p.checkSDP(sdp); err != nil {
		return err
	}
	p.remoteCands.Add(int64(strings.Count(sdp, "a=candidate:")))
	return p.post(peerEvent{kind: SignalOffer, sdp: sdp})
}

// HandleAnswer queues a remote answer, after the same checks. An answer
// that fails them fails the negotiation it answers all the same (see
// negotiate.go: pion, still in have-local-offer, cannot go on).
func (p *Peer) HandleAnswer(sdp string) error {
	if err := p.checkSDP(sdp); err != nil {
		_ = p.post(peerEvent{kind: SignalAnswer, err: err})
		return err
	}
	return p.post(peerEvent{kind: SignalAnswer, sdp: sdp})
}

// checkSDP is CheckSDP, with a relay's bound for a relay's Peer.
func (p *Peer) checkSDP(sdp string) error {
	if p.cfg.Relay {
		return checkSDP(sdp, MaxRelayMediaSections)
	}
	return CheckSDP(sdp)
}

// HandleTurnRequest queues the other end's request for its turn to offer
// (a relay's Initiator only; turns.go).
func (p *Peer) HandleTurnRequest() error { return p.post(peerEvent{kind: SignalTurnRequest}) }

// HandleTurnGrant queues the Initiator's grant of the turn asked for (a
// relay's other end only; turns.go).
func (p *Peer) HandleTurnGrant() error { return p.post(peerEvent{kind: SignalTurnGrant}) }

// HandleCandidate queues a remote ICE candidate; candidates that arrive
// before a remote description are buffered.
func (p *Peer) HandleCandidate(c webrtc.ICECandidateInit) error {
	if c.Candidate != "" { // "" ends the client's gathering
		p.remoteCands.Add(1)
	}
	return p.post(peerEvent{kind: SignalCandidate, cand: c})
}

func (p *Peer) post(ev peerEvent) error {
	select {
	case <-p.closed:
		return ErrClosed
	default:
	}
	select {
	case p.events <- ev:
		return nil
	default:
		return ErrBusy
	}
}

// Subscribe makes the Peer receive up. Changes are coalesced and sent in
// one offer once the Peer is negotiated and stable.
func (p *Peer) Subscribe(up *UpTrack) { p.change(up, true) }

// Unsubscribe stops sending up to the Peer.
func (p *Peer) Unsubscribe(up *UpTrack) { p.change(up, false) }

func (p *Peer) change(up *UpTrack, add bool) {
	p.mu.Lock()
	p.want[up] = add
	p.mu.Unlock()
	p.kickRun()
}

// kickRun makes the run goroutine offer within Coalesce if an offer is due.
func (p *Peer) kickRun() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Close closes the PeerConnection and waits for every goroutine the Peer
// started, including the read loops of its published tracks (so their
// OnTrackEnded hooks have run when Close returns).
func (p *Peer) Close() error {
	var err error
	p.once.Do(func() {
		p.mu.Lock()
		p.closing = true
		p.data.stop()
		p.mu.Unlock()
		close(p.closed)
		// The run goroutine may be applying a description: let it finish
		// first. pion v3.3.6 leaks an ICE agent (its taskLoop goroutine)
		// when SetLocalDescription gathers after Close found no agent.
		<-p.runDone
		p.settleICE()
		if cerr := p.pc.Close(); cerr != nil {
			err = fmt.Errorf("close peer %s: %w", p.cfg.ID, cerr)
		}
		p.engine.stats.Peers.Add(-1)
		p.engine.mu.Lock()
		delete(p.engine.peers, p)
		p.engine.mu.Unlock()
		if p.engine.onClosed != nil {
			p.engine.onClosed(p.cfg.ID)
		}
	})
	p.wg.Wait()
	return err
}

// settleICE waits, at most iceSettleWait, while ICE is checking. pion v3.3.6
// races (a data race, harmless but reported by -race) when a PeerConnection
// is closed at the very moment its ICE transport connects; closing after
// the check settled, or long before, avoids that window.
func (p *Peer) settleICE() {
	deadline := time.NewTimer(iceSettleWait)
	defer deadline.Stop()
	for p.pc.ICEConnectionState() == webrtc.ICEConnectionStateChecking {
		select {
		case <-p.iceChange:
		case <-deadline.C:
			return
		}
	}
}

const iceSettleWait = 500 * time.Millisecond

func (p *Peer) onLocalCandidate(c *webrtc.ICECandidate) {
	if c == nil {
		return
	}
	init := c.ToJSON()
	p.mu.Lock()
	if !p.localOpen {
		p.localCands = append(p.localCands, init)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.cfg.OnSignal(Signal{Kind: SignalCandidate, Candidate: init})
}

// openLocalCandidates lets local candidates go out, after the answer that
// precedes them.
func (p *Peer) openLocalCandidates() {
	p.mu.Lock()
	p.localOpen = true
	cands := p.localCands
	p.localCands = nil
	p.mu.Unlock()
	for _, c := range cands {
		p.cfg.OnSignal(Signal{Kind: SignalCandidate, Candidate: c})
	}
}

// SetViewport applies a subscriber's rendering hint for up: its size in
// pixels, and whether it is visible (a hidden video is paused). It reports
// whether the Peer subscribes to up.
func (p *Peer) SetViewport(up *UpTrack, width, height int, visible bool) bool {
	p.mu.Lock()
	d := p.downs[up]
	p.mu.Unlock()
	if d == nil {
		return false
	}
	if d.set != nil {
		setRelayView(up, d.set, width, height, visible)
		return true
	}
	d.SetViewport(width, height)
	d.SetPaused(!visible)
	return true
}

// Viewport returns the subscriber's last rendering hint for up: its size in
// pixels (0 with no hint) and whether it is visible; ok is false if the
// Peer does not receive up.
func (p *Peer) Viewport(up *UpTrack) (width, height int, visible, ok bool) {
	p.mu.Lock()
	d := p.downs[up]
	p.mu.Unlock()
	if d == nil {
		return 0, 0, false, false
	}
	return int(d.width.Load()), int(d.height.Load()), !d.paused.Load(), true
}

// RemoteSDP returns the remote description in force ("" before the first
// offer): a WHIP ICE restart builds its offer from it.
func (p *Peer) RemoteSDP() string {
	if d := p.pc.RemoteDescription(); d != nil {
		return d.SDP
	}
	return ""
}

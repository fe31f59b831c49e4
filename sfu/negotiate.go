package sfu

// The run goroutine: it applies the remote's offers, answers and candidates
// in order, makes the server's offers (one per batch of subscription
// changes, never while one is outstanding) and recovers when a negotiation
// fails. The negotiation struct is its alone.

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"
)

// maxNegotiationFailures is how many server offers in a row may fail
// before the Peer gives up with ErrNegotiationFailed. After the first it
// offers again, when it can: pion v3.3.6 refuses every rollback (its
// signaling state machine has no rollback transition), so only an answer
// that pion applied in part, leaving the PeerConnection stable, can be
// followed by a fresh offer. An answer refused before that, or none within
// Settings.AnswerTimeout, leaves it in have-local-offer for good, and the
// Peer gives up at once.
const maxNegotiationFailures = 2

// silentRecheck is how long an overdue answer from a silent client waits
// before the Peer asks again whether the client is still silent (the
// owner pings it meanwhile, PeerConfig.ClientSilent).
const silentRecheck = time.Second

// negotiation is the run goroutine's state.
type negotiation struct {
	subs        map[*UpTrack]*subscription
	remoteCands []webrtc.ICECandidateInit
	answered    bool      // the client's first offer was answered
	offering    bool      // an offer of ours awaits its answer
	offeredAt   time.Time // when it was sent
	dirty       bool      // subscription changes are due
	force       bool      // offer even without changes: redo a failed negotiation
	failures    int       // failed negotiations in a row
	releases    int64     // SetHeld releases acted on (resume.go)
	dead        bool      // gave up (ErrNegotiationFailed): no more offers

	// kinds are the media kinds some applied remote description carried:
	// pion fixes a PeerConnection's codecs per kind from the first one.
	kinds map[webrtc.RTPCodecType]bool
	// remote describes the m-lines of the last remote description applied,
	// by mid; hasData: it had a data section.
	remote  map[string]remoteMedia
	hasData bool
	// released are m-lines whose subscription the outstanding offer
	// removes; once it is answered they are idle, and a new subscription of
	// their kind takes one (subscribe.go) instead of adding an m-line.
	released, idle []*webrtc.RTPTransceiver
	// turn: a relay's share of the turns to offer (turns.go).
	turn turnState
}

type remoteMedia struct {
	sends    bool     // the remote sends on it (sendrecv or sendonly)
	rejected bool     // port 0
	formats  []string // the payload types it lists
}

func newNegotiation() negotiation {
	return negotiation{subs: map[*UpTrack]*subscription{}, kinds: map[webrtc.RTPCodecType]bool{},
		remote: map[string]remoteMedia{}}
}

func (p *Peer) run() {
	defer p.wg.Done()
	defer close(p.runDone)
	n := &p.neg
	coalesce := time.NewTimer(time.Hour)
	coalesce.Stop()
	armed := false
	answerWait := time.NewTimer(time.Hour)
	answerWait.Stop()
	defer func() {
		coalesce.Stop()
		answerWait.Stop()
		for up, s := range n.subs {
			for _, ls := range s.all() {
				ls.down.close()
			}
			delete(n.subs, up)
		}
		p.mu.Lock()
		playback := p.playback
		p.mu.Unlock()
		for _, d := range playback {
			d.close()
		}
	}()
	for {
		select {
		case <-p.closed:
			return
		case ev := <-p.events:
			p.handle(ev)
		case <-p.kick:
			if !armed {
				coalesce.Reset(Coalesce)
				armed = true
			}
		case <-coalesce.C:
			armed = false
			n.dirty = true
		case <-answerWait.C:
			// Held: the client cannot answer without a socket; the timeout
			// starts again on release. Silent: the socket may be dead
			// without the server knowing yet; look again shortly.
			to := p.engine.answerTO
			if err := p.turnLate(to); err != nil {
				p.giveUp(err)
				break
			}
			switch {
			case !n.offering || p.held.Load() || time.Since(n.offeredAt) < to:
			case p.cfg.ClientSilent != nil && p.cfg.ClientSilent(n.offeredAt):
				answerWait.Reset(silentRecheck)
			default:
				p.failed(fmt.Errorf("no answer to the server's offer within %v", to))
			}
		case <-p.wake:
		}
		if r := p.releases.Load(); r != n.releases && !p.held.Load() {
			n.releases = r
			if !n.dead && p.resendOffer() {
				n.offeredAt = time.Now()
				answerWait.Reset(p.engine.answerTO)
			}
		}
		p.grantWaiting()
		if (n.dirty || n.force) && n.answered && !n.offering && !n.dead && !p.held.Load() &&
			p.stable() && p.mayOffer() {
			n.dirty = false
			if err := p.offer(); err != nil && !errors.Is(err, ErrClosed) {
				p.failed(err) // offered again once, then given up: never silent
				p.kickRun()
			}
			if n.offering && p.engine.answerTO > 0 {
				answerWait.Reset(p.engine.answerTO)
			}
		}
		if n.turn.arm {
			n.turn.arm = false
			if p.engine.answerTO > 0 {
				answerWait.Reset(p.engine.answerTO)
			}
		}
	}
}

// stable reports whether no offer is outstanding either way.
func (p *Peer) stable() bool { return p.pc.SignalingState() == webrtc.SignalingStateStable }

func (p *Peer) handle(ev peerEvent) {
	var err error
	switch ev.kind {
	case SignalOffer:
		err = p.answer(ev.sdp)
	case SignalAnswer:
		if ev.err != nil {
			if p.neg.offering {
				p.failed(ev.err)
			}
			return
		}
		err = p.applyAnswer(ev.sdp)
	case SignalCandidate:
		err = p.addCandidate(ev.cand)
	case SignalTurnRequest:
		err = p.onTurnRequest()
	case SignalTurnGrant:
		err = p.onTurnGrant()
	}
	if err != nil && p.cfg.OnError != nil {
		p.cfg.OnError(err)
	}
}

// answer applies a remote offer. On a collision with our own offer the
// server is the impolite peer and ignores the remote's (perfect negotiation).
// An offer that cannot be applied gets an error (offerFailed).
func (p *Peer) answer(sdp string) error {
	n := &p.neg
	if n.dead {
		return nil
	}
	if n.offering || p.pc.SignalingState() != webrtc.SignalingStateStable {
		p.log.Debug("offer collision: ignoring remote offer", "participant", p.cfg.ID)
		return nil
	}
	restart := p.iceRestart(sdp)
	sdp = p.repairRemote(sdp, nil)
	p.awaitTransports()
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return p.offerFailed(fmt.Errorf("%w: apply offer: %v", ErrBadSDP, err))
	}
	p.noteRemote()
	p.pruneIdle()
	p.flushRemoteCandidates()
	if p.neg.hasData {
		p.openPrenegotiated()
	}
	if p.cfg.Playback && !n.answered {
		p.attachPlayback()
	}
	ans, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return p.offerFailed(fmt.Errorf("%w: create answer: %v", ErrBadSDP, err))
	}
	var gathered <-chan struct{}
	if p.cfg.CandidatesInAnswer {
		gathered = webrtc.GatheringCompletePromise(p.pc)
	}
	if err := p.pc.SetLocalDescription(ans); err != nil {
		return p.offerFailed(fmt.Errorf("%w: set answer: %v", ErrBadSDP, err))
	}
	if gathered != nil {
		p.awaitGathering(gathered)
	}
	p.cfg.OnSignal(Signal{Kind: SignalAnswer, SDP: p.localSDP()})
	p.turnAnswered()
	if restart {
		p.engine.stats.ICERestarts.Add(1)
		p.log.Info("ice restart answered", "participant", p.cfg.ID)
	}
	if !n.answered {
		n.answered = true
		n.dirty = true
		p.openLocalCandidates()
	}
	return nil
}

// awaitGathering waits, at most gatherWait, for ICE gathering to complete
// (gathered), so that the description about to be sent carries every local
// candidate.
func (p *Peer) awaitGathering(gathered <-chan struct{}) {
	wait := time.NewTimer(gatherWait)
	defer wait.Stop()
	select {
	case <-gathered:
	case <-wait.C:
		p.log.Warn("ice gathering unfinished: sending the candidates so far", "participant", p.cfg.ID)
	case <-p.closed:
	}
}

// awaitTransports waits, at most transportStartWait, for ICE to start
// after the first negotiation. pion v3.3.6 starts the transports on its
// own goroutine once a negotiation completes, and sets the agent's remote
// credentials there: a renegotiation offer applied before that looks like
// an ICE restart to pion, which then fails ("attempting to gather
// candidates during gathering state") and the offer with it. A loaded
// machine showed it to about 2 % of the load tool's clients, whose side
// has the same guard.
func (p *Peer) awaitTransports() {
	if p.pc.RemoteDescription() == nil || p.pc.ICEConnectionState() != webrtc.ICEConnectionStateNew {
		return
	}
	deadline := time.NewTimer(transportStartWait)
	defer deadline.Stop()
	for p.pc.ICEConnectionState() == webrtc.ICEConnectionStateNew {
		select {
		case <-p.iceChange:
		case <-p.closed:
			return
		case <-deadline.C:
			return
		}
	}
}

const transportStartWait = 2 * time.Second

// offerFailed handles a remote offer that could not be answered: the client
// may offer again if the PeerConnection is stable (pion refused the offer
// before applying it); if pion was left in have-remote-offer, which it
// cannot roll back, the negotiation is over.
func (p *Peer) offerFailed(err error) error {
	if p.pc.SignalingState() != webrtc.SignalingStateStable {
		p.giveUp(err)
		return nil // giveUp reported it
	}
	return err
}

func (p *Peer) applyAnswer(sdp string) error {
	n := &p.neg
	if !n.offering {
		return fmt.Errorf("%w: answer without an offer", ErrBadSDP)
	}
	// m-lines released by this offer become idle once it is answered; any
	// released from here on wait for the next one.
	released := n.released
	n.released = nil
	sdp = p.repairRemote(sdp, p.pendingOffer())
	p.dropRefused(sdp)
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		n.released = append(released, n.released...)
		err = fmt.Errorf("%w: apply answer: %v", ErrBadSDP, err)
		p.failed(err)
		return err
	}
	n.offering, n.failures = false, 0
	p.noteRemote()
	n.idle = append(n.idle, released...)
	p.pruneIdle()
	p.dropUnusable()
	return nil
}

// repairRemote mends what pion v3.3.6 cannot take from a remote description
// (offer is our pending offer when desc answers it, else nil):
//   - an m-line without a=mid gets the mid of the offer's m-line at its
//     place (JSEP §5.3.1 requires one; pion leaves it out of the m-lines it
//     rejects, and refuses every later offer once a remote description has
//     an m-line without one);
//   - a rejected (port 0) audio or video m-line of a kind no remote
//     description has carried yet gets the codecs of the offer's m-line (or
//     every codec the server forwards, in an offer): pion fixes a kind's
//     codec list from the first m-line of the kind even when it is rejected
//     and lists none, and with no codecs for a kind it fails every later
//     offer (CreateOffer retries until it gives up);
//   - an offer whose BUNDLE group's m-lines carry different ICE
//     credentials (RFC 8843 §7.2 lets an initial offer do so; aiortc does)
//     gets the tagged (first) m-line's everywhere, and only its candidates:
//     the answer bundles them on that transport, and pion v3.3.6 refuses
//     conflicting credentials outright;
//   - an offer's inactive m-line on which this side sends nothing is made
//     recvonly (keepReceivers).
func (p *Peer) repairRemote(desc string, offer *sdp.SessionDescription) string {
	var d sdp.SessionDescription
	if d.UnmarshalString(desc) != nil {
		return desc
	}
	changed := offer == nil && unifyBundleICE(&d)
	if offer == nil && p.keepReceivers(&d) {
		changed = true
	}
	for i, m := range d.MediaDescriptions {
		var o *sdp.MediaDescription
		if offer != nil && i < len(offer.MediaDescriptions) {
			o = offer.MediaDescriptions[i]
		}
		if _, ok := m.Attribute(sdp.AttrKeyMID); !ok && o != nil {
			if mid, ok := o.Attribute(sdp.AttrKeyMID); ok {
				m.WithValueAttribute(sdp.AttrKeyMID, mid)
				changed = true
			}
		}
		kind := webrtc.NewRTPCodecType(m.MediaName.Media)
		if kind == 0 || m.MediaName.Port.Value != 0 || p.neg.kinds[kind] || hasRTPMap(m) {
			continue
		}
		m.MediaName.Formats = nil
		if o != nil {
			m.MediaName.Formats = o.MediaName.Formats
			for _, at := range o.Attributes {
				if at.Key == "rtpmap" || at.Key == "fmtp" || at.Key == "rtcp-fb" {
					m.Attributes = append(m.Attributes, at)
				}
			}
		} else {
			for _, c := range Codecs() {
				if c.Kind == kind {
					pt := strconv.Itoa(int(c.PayloadType))
					name := strings.TrimPrefix(strings.TrimPrefix(c.MimeType, "audio/"), "video/")
					m.MediaName.Formats = append(m.MediaName.Formats, pt)
					m.WithCodec(uint8(c.PayloadType), name, c.ClockRate, c.Channels, c.SDPFmtpLine)
				}
			}
		}
		changed = true
	}
	if !changed {
		return desc
	}
	b, err := d.Marshal()
	if err != nil {
		return desc
	}
	return string(b)
}

// keepReceivers turns the inactive m-lines of remote offer d on which this
// side has no sender into recvonly ones, and reports whether it changed
// any. pion v3.3.6 stops a transceiver for good when an offer makes it
// inactive (RTPTransceiver.Stop), and with it the receiver it holds; a
// receiver stopped before it received anything is then started all the
// same when the remote reuses the m-line for a new track, and its streams
// are never closed: the track neither ends nor is replaced, and its read
// loop outlives the PeerConnection. A relay's end offers its idle m-lines
// inactive (pion turned them sendonly when the other end's offer said
// recvonly) and reuses them (subscribe.go). For this side, recvonly and
// inactive mean the same: the remote sends nothing there, and pion ends
// the m-line's track (configureRTPReceivers) as it should.
func (p *Peer) keepReceivers(d *sdp.SessionDescription) bool {
	changed := false
	var idle map[string]bool // mid → no sender on it
	for _, m := range d.MediaDescriptions {
		if _, inactive := m.Attribute(sdp.AttrKeyInactive); !inactive {
			continue
		}
		if idle == nil {
			idle = map[string]bool{}
			for _, t := range p.pc.GetTransceivers() {
				// Not sendonly: one pion made for a remote recvonly
				// m-line, with nothing on it (a WHEP player's extra
				// m-line), would answer an inactive offer sendonly.
				idle[t.Mid()] = t.Sender() == nil && t.Direction() != webrtc.RTPTransceiverDirectionSendonly
			}
		}
		if mid, _ := m.Attribute(sdp.AttrKeyMID); !idle[mid] {
			continue // none here yet, or one we send on: pion may stop it
		}
		for i, a := range m.Attributes {
			if a.Key == sdp.AttrKeyInactive {
				m.Attributes[i] = sdp.Attribute{Key: sdp.AttrKeyRecvOnly}
			}
		}
		changed = true
	}
	return changed
}

// unifyBundleICE gives the m-lines of d's BUNDLE group the ICE
// credentials and candidates of the group's first m-line, and reports
// whether anything changed (see repairRemote).
func unifyBundleICE(d *sdp.SessionDescription) bool {
	group, ok := d.Attribute("group")
	fields := strings.Fields(group)
	if !ok || len(fields) < 3 || fields[0] != "BUNDLE" {
		return false
	}
	inGroup := map[string]bool{}
	for _, mid := range fields[1:] {
		inGroup[mid] = true
	}
	var tagged *sdp.MediaDescription
	var ufrag, pwd string
	changed := false
	for _, m := range d.MediaDescriptions {
		mid, _ := m.Attribute(sdp.AttrKeyMID)
		if !inGroup[mid] {
			continue
		}
		u, _ := m.Attribute("ice-ufrag")
		pw, _ := m.Attribute("ice-pwd")
		if tagged == nil {
			tagged, ufrag, pwd = m, u, pw
			continue
		}
		if u == "" || u == ufrag && pw == pwd {
			continue
		}
		kept := m.Attributes[:0]
		for _, a := range m.Attributes {
			switch a.Key {
			case "ice-ufrag":
				a.Value = ufrag
			case "ice-pwd":
				a.Value = pwd
			case "candidate", "end-of-candidates":
				continue
			}
			kept = append(kept, a)
		}
		m.Attributes = kept
		changed = true
	}
	return changed
}

func hasRTPMap(m *sdp.MediaDescription) bool {
	_, ok := m.Attribute("rtpmap")
	return ok
}

// pendingOffer returns our outstanding offer, parsed, or nil.
func (p *Peer) pendingOffer() *sdp.SessionDescription {
	ld := p.pc.LocalDescription()
	if ld == nil || ld.Type != webrtc.SDPTypeOffer {
		return nil
	}
	var o sdp.SessionDescription
	if o.UnmarshalString(ld.SDP) != nil {
		return nil
	}
	return &o
}

// dropRefused ends, before an answer is applied, the subscriptions whose
// m-line it rejects (port 0) or answers without the track's payload type:
// pion would fail to bind them half-way through applying the answer, and
// every later one. The client gets codec_not_supported for each.
func (p *Peer) dropRefused(answer string) {
	var d sdp.SessionDescription
	if d.UnmarshalString(answer) != nil {
		return // SetRemoteDescription will say why
	}
	type media struct {
		rejected bool
		formats  []string
	}
	byMid := map[string]media{}
	for _, m := range d.MediaDescriptions {
		if mid, ok := m.Attribute(sdp.AttrKeyMID); ok {
			byMid[mid] = media{m.MediaName.Port.Value == 0, m.MediaName.Formats}
		}
	}
	for up, s := range p.neg.subs {
		for _, ls := range s.all() { // a relay's layers: any refused ends them all
			m, ok := byMid[ls.tr.Mid()]
			pt := strconv.Itoa(int(ls.down.codec.PayloadType))
			var err error
			switch {
			case !ok:
				continue
			case m.rejected:
				err = fmt.Errorf("%w: track %s: the answer rejects its m-line", ErrCodecNotNegotiated, up.id)
			case !slices.Contains(m.formats, pt):
				err = fmt.Errorf("%w: track %s is %s, and the answer leaves it out", ErrCodecNotNegotiated, up.id, up.codec.MimeType)
			}
			if err != nil {
				p.drop(up, s, err)
				break
			}
		}
	}
}

// dropUnusable ends the subscriptions an applied answer left without their
// codec (DownTrack.Bind found none: pion settled the kind's codecs from
// another m-line of the same answer).
func (p *Peer) dropUnusable() {
	for up, s := range p.neg.subs {
		if slices.ContainsFunc(s.all(), func(ls *subscription) bool { return ls.down.unusable.Load() }) {
			p.drop(up, s, fmt.Errorf("%w: track %s is %s, which this participant's first %s m-line did not accept",
				ErrCodecNotNegotiated, up.id, up.codec.MimeType, up.kind))
		}
	}
}

// drop ends a subscription the client cannot receive and tells it; the
// next offer says so to the client.
func (p *Peer) drop(up *UpTrack, s *subscription, err error) {
	p.unsubscribe(up, s)
	p.neg.force = true
	p.log.Info("not subscribed", "participant", p.cfg.ID, "track", up.id, "err", err)
	if p.cfg.OnError != nil {
		p.cfg.OnError(err)
	}
}

// failed handles a server offer whose negotiation failed (its answer could
// not be applied, or never came): if the PeerConnection is stable, the
// first time it offers again, everything pending included; otherwise, or
// the second time in a row, it gives up.
func (p *Peer) failed(err error) {
	n := &p.neg
	n.failures++
	p.log.Info("negotiation failed", "participant", p.cfg.ID, "failures", n.failures, "err", err)
	if n.failures >= maxNegotiationFailures || p.pc.SignalingState() != webrtc.SignalingStateStable {
		p.giveUp(err)
		return
	}
	n.offering = false
	n.force = true
}

// giveUp ends the negotiation for good and tells the owner, who should end
// the session.
func (p *Peer) giveUp(err error) {
	n := &p.neg
	n.dead, n.offering = true, false
	p.log.Warn("negotiation abandoned", "participant", p.cfg.ID, "err", err)
	if p.cfg.OnError != nil {
		p.cfg.OnError(fmt.Errorf("%w: %v", ErrNegotiationFailed, err))
	}
}

// noteRemote records what the remote description just applied says about
// its m-lines: which media kinds pion has now fixed the codecs of, and, by
// mid, whether the remote sends on it or rejected it.
func (p *Peer) noteRemote() {
	rd := p.pc.RemoteDescription()
	if rd == nil {
		return
	}
	// Parse the text, not rd: rd.Unmarshal would rewrite the parsed copy
	// pion's own goroutine reads (a data race).
	var d sdp.SessionDescription
	if err := d.UnmarshalString(rd.SDP); err != nil {
		return
	}
	n := &p.neg
	clear(n.remote)
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media == "application" {
			n.hasData = true
		}
		kind := webrtc.NewRTPCodecType(m.MediaName.Media)
		if kind == 0 {
			continue
		}
		n.kinds[kind] = true
		mid, _ := m.Attribute(sdp.AttrKeyMID)
		_, sendrecv := m.Attribute(sdp.AttrKeySendRecv)
		_, sendonly := m.Attribute(sdp.AttrKeySendOnly)
		_, recvonly := m.Attribute(sdp.AttrKeyRecvOnly)
		_, inactive := m.Attribute(sdp.AttrKeyInactive)
		// No direction attribute means sendrecv (RFC 8866 §6.7).
		sends := sendrecv || sendonly || !(recvonly || inactive)
		n.remote[mid] = remoteMedia{sends: sends, rejected: m.MediaName.Port.Value == 0, formats: m.MediaName.Formats}
	}
}

func (p *Peer) addCandidate(c webrtc.ICECandidateInit) error {
	n := &p.neg
	if p.pc.RemoteDescription() == nil {
		if len(n.remoteCands) >= maxRemoteCands {
			return fmt.Errorf("%w: too many candidates before the offer", ErrBadSDP)
		}
		n.remoteCands = append(n.remoteCands, c)
		return nil
	}
	if err := p.pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("%w: candidate: %v", ErrBadSDP, err)
	}
	return nil
}

func (p *Peer) flushRemoteCandidates() {
	n := &p.neg
	for _, c := range n.remoteCands {
		if err := p.pc.AddICECandidate(c); err != nil && p.cfg.OnError != nil {
			p.cfg.OnError(fmt.Errorf("%w: buffered candidate: %v", ErrBadSDP, err))
		}
	}
	n.remoteCands = nil
}

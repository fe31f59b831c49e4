// Package baseline is the yardstick Roundtable's forwarding is measured
// against: a stock pion fan-out as in pion's sfu-ws example. One
// webrtc.TrackLocalStaticRTP per published track is shared by every
// subscriber (pion writes each packet to every binding in turn), with the
// interceptors of webrtc.RegisterDefaultInterceptors (NACK responder
// buffers per subscriber included). It speaks just enough of Roundtable's
// signaling (docs/protocol.md: join, joined, offer, answer, candidate) for
// `roundtable load` to run the same scenarios against it.
//
// It is a measuring instrument, not a server: no limits, no auth, no
// keyframe requests, no cleanup of a leaver's tracks on the others'
// PeerConnections. It owns its rooms, PeerConnections and sockets, and
// must not use the sfu, room or signal packages' logic.
//
// Ownership: Server.mu guards the rooms and their track lists. Each peer's
// negotiation state is behind peer.mu; socket writes are behind peer.wmu.
// One goroutine per published track reads it and writes the shared local
// track; one per RTPSender and RTPReceiver drains RTCP.
package baseline

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/ice/v2"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server is the baseline fan-out.
type Server struct {
	api *webrtc.API
	mux ice.UDPMux
	log *slog.Logger

	mu    sync.Mutex
	rooms map[string]*room

	packetsOut atomic.Uint64 // RTP packets written to subscribers
	senders    atomic.Int64  // subscriptions
	peerSeq    atomic.Uint64
	handler    http.Handler
}

type room struct {
	peers  map[*peer]struct{}
	tracks []*webrtc.TrackLocalStaticRTP
	owner  map[*webrtc.TrackLocalStaticRTP]*peer
}

// New builds a baseline that puts every PeerConnection on one UDP port of
// the loopback interface (the same deployment choice the Roundtable server
// makes, so only the forwarding differs).
func New(udpPort int, log *slog.Logger) (*Server, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("codecs: %w", err)
	}
	s := &Server{log: log, rooms: map[string]*room{}}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, reg); err != nil {
		return nil, fmt.Errorf("interceptors: %w", err)
	}
	reg.Add(&countFactory{n: &s.packetsOut})
	lo := func(name string) bool { return name == "lo" }
	mux, err := ice.NewMultiUDPMuxFromPort(udpPort, ice.UDPMuxFromPortWithInterfaceFilter(lo),
		ice.UDPMuxFromPortWithLoopback(), ice.UDPMuxFromPortWithNetworks(ice.NetworkTypeUDP4))
	if err != nil {
		return nil, fmt.Errorf("udp port %d: %w", udpPort, err)
	}
	se := webrtc.SettingEngine{LoggerFactory: &logging.DefaultLoggerFactory{Writer: os.Stderr, DefaultLogLevel: logging.LogLevelError}}
	se.SetICEUDPMux(mux)
	se.SetInterfaceFilter(lo)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	s.api = webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
	s.mux = mux

	pr := prometheus.NewRegistry()
	pr.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector(),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "roundtable_rtp_packets_sent_total",
			Help: "RTP packets sent to subscribers."}, func() float64 { return float64(s.packetsOut.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "roundtable_subscriptions",
			Help: "Forwarded (subscribed) tracks now."}, func() float64 { return float64(s.senders.Load()) }))
	h := http.NewServeMux()
	h.Handle("/metrics", promhttp.HandlerFor(pr, promhttp.HandlerOpts{}))
	h.HandleFunc("/ws", s.serveWS)
	s.handler = h
	return s, nil
}

// Handler serves /ws and /metrics.
func (s *Server) Handler() http.Handler { return s.handler }

// Close releases the UDP port.
func (s *Server) Close() error { return s.mux.Close() }

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

// message is every field the baseline reads or writes.
type message struct {
	Type         string                   `json:"type"`
	Room         string                   `json:"room,omitempty"`
	ID           string                   `json:"id,omitempty"`
	SDP          string                   `json:"sdp,omitempty"`
	Candidate    *webrtc.ICECandidateInit `json:"candidate,omitempty"`
	Participants []any                    `json:"participants,omitempty"`
}

type peer struct {
	s    *Server
	room string
	pc   *webrtc.PeerConnection
	ws   *websocket.Conn
	wmu  sync.Mutex

	mu          sync.Mutex
	answered    bool // the client's first offer was answered
	negotiating bool // our offer awaits its answer
	pending     bool // renegotiate when the current exchange ends
	subscribed  map[*webrtc.TrackLocalStaticRTP]bool
}

func (p *peer) send(m message) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_ = p.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_ = p.ws.WriteJSON(m)
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer ws.Close()
	ws.SetReadLimit(64 << 10)
	var join message
	if err := ws.ReadJSON(&join); err != nil || join.Type != "join" || join.Room == "" {
		return
	}
	pc, err := s.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		s.log.Warn("baseline peer connection", "err", err)
		return
	}
	p := &peer{s: s, room: join.Room, pc: pc, ws: ws, subscribed: map[*webrtc.TrackLocalStaticRTP]bool{}}
	// Offer only once connected: an offer that crosses the DTLS handshake
	// can make the client answer with the other DTLS role.
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			p.renegotiate()
		}
	})
	defer s.leave(p)
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			init := c.ToJSON()
			p.send(message{Type: "candidate", Candidate: &init})
		}
	})
	pc.OnTrack(func(t *webrtc.TrackRemote, recv *webrtc.RTPReceiver) { s.publish(p, t, recv) })
	p.send(message{Type: "joined", ID: fmt.Sprintf("baseline%016d", s.peerSeq.Add(1)), Room: join.Room, Participants: []any{}})
	s.mu.Lock()
	rm := s.rooms[join.Room]
	if rm == nil {
		rm = &room{peers: map[*peer]struct{}{}, owner: map[*webrtc.TrackLocalStaticRTP]*peer{}}
		s.rooms[join.Room] = rm
	}
	rm.peers[p] = struct{}{}
	s.mu.Unlock()

	for {
		var m message
		if err := ws.ReadJSON(&m); err != nil {
			return
		}
		switch m.Type {
		case "offer":
			p.onOffer(m.SDP)
		case "answer":
			p.onAnswer(m.SDP)
		case "candidate":
			if m.Candidate != nil {
				_ = pc.AddICECandidate(*m.Candidate)
			}
		case "leave":
			return
		}
	}
}

// onOffer answers the client's offer; after the first one the client
// gets every track already in the room.
func (p *peer) onOffer(sdp string) {
	p.mu.Lock()
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		p.mu.Unlock()
		return
	}
	ans, err := p.pc.CreateAnswer(nil)
	if err == nil {
		err = p.pc.SetLocalDescription(ans)
	}
	if err != nil {
		p.mu.Unlock()
		return
	}
	p.send(message{Type: "answer", SDP: ans.SDP})
	first := !p.answered
	p.answered = true
	p.mu.Unlock()
	if first {
		p.s.mu.Lock()
		rm := p.s.rooms[p.room]
		tracks := append([]*webrtc.TrackLocalStaticRTP(nil), rm.tracks...)
		p.s.mu.Unlock()
		for _, t := range tracks {
			p.addTrack(t)
		}
	}
	p.renegotiate()
}

func (p *peer) onAnswer(sdp string) {
	p.mu.Lock()
	_ = p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp})
	p.negotiating = false
	p.mu.Unlock()
	p.renegotiate()
}

// renegotiate sends an offer when one is pending and nothing is in flight.
func (p *peer) renegotiate() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.pending || !p.answered || p.negotiating || p.pc.SignalingState() != webrtc.SignalingStateStable ||
		p.pc.ConnectionState() != webrtc.PeerConnectionStateConnected {
		return
	}
	offer, err := p.pc.CreateOffer(nil)
	if err == nil {
		err = p.pc.SetLocalDescription(offer)
	}
	if err != nil {
		return
	}
	p.pending, p.negotiating = false, true
	p.send(message{Type: "offer", SDP: offer.SDP})
}

// addTrack subscribes the peer to a shared local track, once.
func (p *peer) addTrack(t *webrtc.TrackLocalStaticRTP) {
	p.mu.Lock()
	if p.subscribed[t] {
		p.mu.Unlock()
		return
	}
	p.subscribed[t] = true
	p.mu.Unlock()
	sender, err := p.pc.AddTrack(t)
	if err != nil {
		return
	}
	p.s.senders.Add(1)
	go func() { // the NACK responder and reports only see RTCP that is read
		defer p.s.senders.Add(-1)
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	}()
	p.mu.Lock()
	p.pending = true
	p.mu.Unlock()
}

// publish shares a publisher's track with the room: every other member
// gets the same TrackLocalStaticRTP.
func (s *Server) publish(p *peer, t *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	local, err := webrtc.NewTrackLocalStaticRTP(t.Codec().RTPCodecCapability, t.ID(), t.StreamID())
	if err != nil {
		return
	}
	s.mu.Lock()
	rm := s.rooms[p.room]
	rm.tracks = append(rm.tracks, local)
	rm.owner[local] = p
	var others []*peer
	for o := range rm.peers {
		if o != p {
			others = append(others, o)
		}
	}
	s.mu.Unlock()
	for _, o := range others {
		o.mu.Lock()
		ready := o.answered
		o.mu.Unlock()
		if ready { // otherwise its first offer's answer adds the room's tracks
			o.addTrack(local)
			o.renegotiate()
		}
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := recv.Read(buf); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 1500)
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		_, _ = local.Write(buf[:n])
	}
}

// leave closes the peer and drops its tracks from the room's list.
func (s *Server) leave(p *peer) {
	s.mu.Lock()
	if rm := s.rooms[p.room]; rm != nil {
		delete(rm.peers, p)
		kept := rm.tracks[:0]
		for _, t := range rm.tracks {
			if rm.owner[t] == p {
				delete(rm.owner, t)
			} else {
				kept = append(kept, t)
			}
		}
		rm.tracks = kept
		if len(rm.peers) == 0 {
			delete(s.rooms, p.room)
		}
	}
	s.mu.Unlock()
	_ = p.pc.Close()
}

// countFactory counts RTP packets written to subscribers, for /metrics.
type countFactory struct{ n *atomic.Uint64 }

func (f *countFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &counter{n: f.n}, nil
}

type counter struct {
	interceptor.NoOp
	n *atomic.Uint64
}

func (c *counter) BindLocalStream(_ *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	return interceptor.RTPWriterFunc(func(h *rtp.Header, p []byte, a interceptor.Attributes) (int, error) {
		c.n.Add(1)
		return w.Write(h, p, a)
	})
}

// Listen serves the baseline on addr until the listener fails.
func (s *Server) Listen(ln net.Listener) error {
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	return srv.Serve(ln)
}

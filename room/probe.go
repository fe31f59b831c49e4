package room

import (
	"time"

	"github.com/roundtable-sfu/roundtable/sfu"
)

// Probe opens a PeerConnection that belongs to no room, for the web
// client's connection check (/doctor): the client offers a data channel,
// the Peer answers; c hears Connected with the path, or ICEFailed with the
// diagnosis after Limits.ProbeTimeout, and nothing else. It publishes and
// receives nothing. At most Limits.MaxProbes are open (ErrTooManyProbes);
// the caller ends each with EndProbe.
//
// transport "udp" or "tcp" gives the server's side candidates of that
// transport only, so the check tells whether that path works; "relay" or
// "" gives both (a relay check is the client's iceTransportPolicy).
func (m *Manager) Probe(c Client, transport string) (*Participant, error) {
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if m.probes.Add(1) > int64(m.limits.MaxProbes) {
		m.probes.Add(-1)
		return nil, ErrTooManyProbes
	}
	p := &Participant{id: NewID(), name: "probe", client: c, mgr: m, joined: time.Now(), probe: true}
	peer, err := m.newPeer(sfu.PeerConfig{
		ID:            p.id,
		OnSignal:      func(s sfu.Signal) { c.Notify(Signal{s}) },
		OnTrack:       func(*sfu.UpTrack) bool { return false },
		OnData:        func(sfu.DataMessage) {},
		OnState:       p.onState,
		OnError:       func(err error) { c.Notify(Error{err}) },
		Logger:        m.log.With("probe", p.id),
		OnlyTransport: map[string]string{"udp": "udp", "tcp": "tcp"}[transport],
	})
	if err != nil {
		m.probes.Add(-1)
		return nil, err
	}
	p.peer = peer
	p.connectTimer = time.AfterFunc(m.limits.ProbeTimeout, func() {
		if !p.connected.Load() {
			p.iceFailed("connect_timeout")
		}
	})
	return p, nil
}

// EndProbe closes a Probe's PeerConnection. Safe to call twice.
func (m *Manager) EndProbe(p *Participant) {
	if !p.probe || !p.ended.CompareAndSwap(false, true) {
		return
	}
	p.connectTimer.Stop()
	if err := p.peer.Close(); err != nil {
		m.log.Debug("probe close", "probe", p.id, "err", err)
	}
	m.probes.Add(-1)
}

// IsProbe reports whether p is a Probe rather than a room member.
func (p *Participant) IsProbe() bool { return p.probe }

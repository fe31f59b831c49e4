package sfu

// The participant's data channel: pion's SCTP goroutine delivers its
// messages (OnData hook); SendData is called by room for other members'
// messages and never blocks. Until the channel is open on the server's side,
// SendData queues frames in dataPending (guarded by Peer.mu, bounded by
// maxDataPending bytes); the channel's open callback sends them in order,
// still holding mu, before it marks the channel open, so no later message
// can overtake a queued one.

import (
	"fmt"

	"github.com/pion/webrtc/v3"
)

// maxDataPending bounds the bytes queued for a member whose data channel is
// not open yet (the client offers it first; the server's side opens a round
// trip later).
const maxDataPending = 256 << 10

type dataFrame struct {
	b        []byte
	isString bool
}

func (p *Peer) onDataChannel(dc *webrtc.DataChannel) {
	p.mu.Lock()
	if p.dc != nil {
		p.mu.Unlock()
		_ = dc.Close() // one data channel per participant
		return
	}
	p.dc = dc
	p.mu.Unlock()
	stats := p.engine.stats
	dc.OnOpen(p.flushData)
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		stats.DataIn.Add(1)
		stats.DataInBytes.Add(uint64(len(m.Data)))
		if p.cfg.OnData != nil {
			p.cfg.OnData(DataMessage{Data: m.Data, IsString: m.IsString})
		}
	})
}

// flushData sends the frames queued before the channel opened, then lets
// SendData write directly.
func (p *Peer) flushData() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, f := range p.dataPending {
		if err := p.sendFrame(p.dc, f); err != nil {
			p.log.Debug("queued data message not sent", "err", err, "dropped", len(p.dataPending)-i)
			break
		}
	}
	p.dataPending, p.dataPendingBytes = nil, 0
	p.dcOpen = true
}

// SendData sends a message from participant `from` on this Peer's data
// channel, framed as "<from>:<data>" (text stays text, binary stays binary).
// It never blocks. Before the channel is open the message is queued (up to
// maxDataPending bytes, then dropped with ErrDataBackpressure); when the
// subscriber has more than 1 MiB unsent, the message is dropped with
// ErrDataBackpressure; once the channel has closed, ErrNoDataChannel.
func (p *Peer) SendData(from string, m DataMessage) error {
	frame := make([]byte, 0, len(from)+1+len(m.Data))
	frame = append(append(append(frame, from...), dataChannelPrefix), m.Data...)
	f := dataFrame{b: frame, isString: m.IsString}
	p.mu.Lock()
	if !p.dcOpen {
		defer p.mu.Unlock()
		if p.closing || p.dataPendingBytes+len(frame) > maxDataPending {
			p.engine.stats.Drop(DropDataBackpressure)
			return ErrDataBackpressure
		}
		p.dataPending = append(p.dataPending, f)
		p.dataPendingBytes += len(frame)
		return nil
	}
	dc := p.dc
	p.mu.Unlock()
	if dc.ReadyState() != webrtc.DataChannelStateOpen {
		return ErrNoDataChannel
	}
	if dc.BufferedAmount() > maxDataBuffered {
		p.engine.stats.Drop(DropDataBackpressure)
		return ErrDataBackpressure
	}
	return p.sendFrame(dc, f)
}

func (p *Peer) sendFrame(dc *webrtc.DataChannel, f dataFrame) error {
	var err error
	if f.isString {
		err = dc.SendText(string(f.b))
	} else {
		err = dc.Send(f.b)
	}
	if err != nil {
		return fmt.Errorf("data channel send: %w", err)
	}
	p.engine.stats.DataOut.Add(1)
	p.engine.stats.DataOutBytes.Add(uint64(len(f.b)))
	return nil
}

// CountDrop counts a message dropped by a policy outside this package.
func (p *Peer) CountDrop(r DropReason) { p.engine.stats.Drop(r) }

package sfu

// The participant's data channel: pion's SCTP goroutine delivers its
// messages (OnData hook); SendData is called by room for other members'
// messages and never blocks.

import (
	"fmt"

	"github.com/pion/webrtc/v3"
)

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
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		stats.DataIn.Add(1)
		stats.DataInBytes.Add(uint64(len(m.Data)))
		if p.cfg.OnData != nil {
			p.cfg.OnData(DataMessage{Data: m.Data, IsString: m.IsString})
		}
	})
}

// SendData sends a message from participant `from` on this Peer's data
// channel, framed as "<from>:<data>" (text stays text, binary stays binary).
// It never blocks: when the subscriber has more than 1 MiB unsent, the
// message is dropped with ErrDataBackpressure.
func (p *Peer) SendData(from string, m DataMessage) error {
	p.mu.Lock()
	dc := p.dc
	p.mu.Unlock()
	if dc == nil || dc.ReadyState() != webrtc.DataChannelStateOpen {
		return ErrNoDataChannel
	}
	if dc.BufferedAmount() > maxDataBuffered {
		p.engine.stats.Drop(DropDataBackpressure)
		return ErrDataBackpressure
	}
	frame := make([]byte, 0, len(from)+1+len(m.Data))
	frame = append(append(append(frame, from...), dataChannelPrefix), m.Data...)
	var err error
	if m.IsString {
		err = dc.SendText(string(frame))
	} else {
		err = dc.Send(frame)
	}
	if err != nil {
		return fmt.Errorf("data channel send: %w", err)
	}
	p.engine.stats.DataOut.Add(1)
	p.engine.stats.DataOutBytes.Add(uint64(len(frame)))
	return nil
}

// CountDrop counts a message dropped by a policy outside this package.
func (p *Peer) CountDrop(r DropReason) { p.engine.stats.Drop(r) }

package sfu

// The participant's data channel. Each data channel the Peer uses is
// detached (pion's SettingEngine.DetachDataChannels) and read by a goroutine
// of its own (readData, counted by the Peer's WaitGroup), into a buffer one
// byte larger than Settings.MaxDataMessage, so that an oversize message is
// refused and the channel lives on: pion's own reader closes the channel on
// a message over 65,535 bytes. Everything in dataState is guarded by
// Peer.mu; SendData is called by room for other members' messages and never
// blocks.
//
// The member's channel is the one labelled "roundtable": created in band by
// the client (RFC 8832 DCEP), or pre-negotiated by both sides with
// negotiated: true and id 0 (the server always opens its side of that one
// when the client's offer has a data section). An in-band "roundtable"
// wins (the newest, if the client opens another); the pre-negotiated one is
// used once the client sends on it, or when no in-band one has appeared
// dataAdoptWait after it opened. Until the
// member's channel is known and open, SendData queues frames (bounded by
// maxDataPending bytes); adopting a channel sends them in order, still
// holding mu, so no later message overtakes a queued one. Channels with
// other labels are closed with ErrDataChannelLabel.

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v3"
)

// DataLabel is the label of a member's data channel.
const DataLabel = "roundtable"

// maxDataPending bounds the bytes queued for a member whose data channel is
// not open yet (the client offers it first; the server's side opens a round
// trip later).
const maxDataPending = 256 << 10

// dataAdoptWait is how long the server waits, after its side of the
// pre-negotiated channel opened, for an in-band "roundtable" channel
// before it sends on the pre-negotiated one.
const dataAdoptWait = 2 * time.Second

// MaxDataMessage is the largest data-channel message pion can read (its
// buffers are 65,535 bytes), so the largest Settings.MaxDataMessage.
const MaxDataMessage = 65535

// dataState is the member's data channel; guarded by Peer.mu.
type dataState struct {
	ch           *webrtc.DataChannel // the member's channel once known (in band or pre-negotiated)
	open         bool                // ch is open: SendData writes directly
	inband       *webrtc.DataChannel // the client's in-band "roundtable"
	prenego      *webrtc.DataChannel // the server's side of the pre-negotiated one (id 0)
	adopt        *time.Timer         // dataAdoptWait after prenego opened
	pending      []dataFrame         // messages for the member before ch opened
	pendingBytes int
}

type dataFrame struct {
	b        []byte
	isString bool
}

// openPrenegotiated opens the server's side of the pre-negotiated channel
// (negotiated: true, id 0), once, when the remote's offer has a data
// section. Run goroutine, before the answer is created.
func (p *Peer) openPrenegotiated() {
	p.mu.Lock()
	done := p.data.prenego != nil
	p.mu.Unlock()
	if done {
		return
	}
	negotiated, id := true, uint16(0)
	dc, err := p.pc.CreateDataChannel(DataLabel, &webrtc.DataChannelInit{Negotiated: &negotiated, ID: &id})
	if err != nil {
		p.log.Warn("pre-negotiated data channel", "participant", p.cfg.ID, "err", err)
		return
	}
	p.mu.Lock()
	p.data.prenego = dc
	p.mu.Unlock()
	dc.OnOpen(func() {
		if !p.startReader(dc, true) {
			return
		}
		if p.cfg.Initiator || p.cfg.Relay {
			p.adoptData(dc, false) // a relay's: there is no in-band one to wait for
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if !p.closing {
			p.data.adopt = time.AfterFunc(dataAdoptWait, func() { p.adoptData(dc, false) })
		}
	})
}

// onDataChannel is pion's callback for a channel the client opened in band.
func (p *Peer) onDataChannel(dc *webrtc.DataChannel) {
	p.mu.Lock()
	ours := dc.Label() == DataLabel
	var old *webrtc.DataChannel
	if ours {
		// The newest "roundtable" is the member's: a client that closed its
		// channel and opened another may be heard of the new one first.
		old, p.data.inband = p.data.inband, dc
	}
	p.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	if !ours {
		// Closed once open: pion calls this before the channel has its
		// stream, when Close would only mark it closing.
		dc.OnOpen(func() {
			if raw, err := dc.Detach(); err == nil {
				_ = raw.Close()
			}
		})
		if p.cfg.OnError != nil {
			p.cfg.OnError(fmt.Errorf("%w: data channel %s is closed; messages go on the one labelled %q",
				ErrDataChannelLabel, strconv.Quote(dc.Label()), DataLabel))
		}
		return
	}
	dc.OnOpen(func() {
		if p.startReader(dc, false) {
			p.adoptData(dc, true)
		}
	})
}

// startReader detaches dc and starts its reader goroutine; false once the
// Peer is closing.
func (p *Peer) startReader(dc *webrtc.DataChannel, pre bool) bool {
	raw, err := dc.Detach()
	if err != nil {
		p.log.Warn("detach data channel", "participant", p.cfg.ID, "err", err)
		return false
	}
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		_ = raw.Close()
		return false
	}
	p.wg.Add(1) // under mu: never after Close started waiting
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		p.readData(dc, raw, pre)
	}()
	return true
}

// readData reads one channel's messages until it closes. A message over
// the limit is refused (ErrDataTooLarge) and reading goes on: pion's SCTP
// stream drops a message that does not fit the buffer and says so with
// io.ErrShortBuffer.
func (p *Peer) readData(dc *webrtc.DataChannel, raw datachannel.ReadWriteCloser, pre bool) {
	limit := p.engine.maxData
	if p.cfg.Relay {
		limit += RelayDataOverhead
	}
	buf := make([]byte, limit+1)
	stats := p.engine.stats
	for {
		n, isString, err := raw.ReadDataChannel(buf)
		if err != nil && !errors.Is(err, io.ErrShortBuffer) {
			p.dataClosed(dc)
			return
		}
		if err != nil || n > limit {
			stats.Drop(DropDataTooLarge)
			if p.cfg.OnError != nil {
				p.cfg.OnError(fmt.Errorf("%w: a message over %d bytes was dropped", ErrDataTooLarge, limit))
			}
			continue
		}
		if pre {
			p.adoptData(dc, false) // the client has the pre-negotiated channel
		}
		stats.DataIn.Add(1)
		stats.DataInBytes.Add(uint64(n))
		if p.cfg.OnData != nil {
			p.cfg.OnData(DataMessage{Data: buf[:n], IsString: isString})
		}
	}
}

// adoptData makes dc the member's channel and sends what was queued for it.
// An in-band channel replaces a pre-negotiated one; the pre-negotiated one
// never replaces the in-band one.
func (p *Peer) adoptData(dc *webrtc.DataChannel, inband bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := &p.data
	if d.ch == dc || (!inband && d.ch != nil) || p.closing {
		return
	}
	d.ch = dc
	for i, f := range d.pending {
		if err := p.sendFrame(dc, f); err != nil {
			p.log.Debug("queued data message not sent", "err", err, "dropped", len(d.pending)-i)
			break
		}
	}
	d.pending, d.pendingBytes = nil, 0
	d.open = true
}

// dataClosed forgets a channel that closed: messages for the member are held
// again until a new one opens, and a new in-band "roundtable" is welcome.
func (p *Peer) dataClosed(dc *webrtc.DataChannel) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := &p.data
	if d.inband == dc {
		d.inband = nil
	}
	if d.ch == dc {
		d.ch, d.open = nil, false
	}
}

// stop stops the adoption timer; Close calls it with Peer.mu held.
func (d *dataState) stop() {
	if d.adopt != nil {
		d.adopt.Stop()
	}
}

// SendData sends a message from participant `from` on this Peer's data
// channel, framed as "<from>:<data>" (text stays text, binary stays binary).
// It never blocks and does not keep m.Data. Until the member's channel is
// known and open (and after it closed, until a new one opens) the message is
// queued (up to maxDataPending bytes, then dropped with ErrDataBackpressure);
// when the subscriber has more than 1 MiB unsent, the message is dropped
// with ErrDataBackpressure; ErrNoDataChannel if the channel is closing;
// ErrClosed once the Peer is.
func (p *Peer) SendData(from string, m DataMessage) error {
	frame := make([]byte, 0, len(from)+1+len(m.Data))
	frame = append(append(append(frame, from...), dataChannelPrefix), m.Data...)
	f := dataFrame{b: frame, isString: m.IsString}
	p.mu.Lock()
	d := &p.data
	if !d.open {
		defer p.mu.Unlock()
		if p.closing {
			return ErrClosed
		}
		if d.pendingBytes+len(frame) > maxDataPending {
			p.engine.stats.Drop(DropDataBackpressure)
			return ErrDataBackpressure
		}
		d.pending = append(d.pending, f)
		d.pendingBytes += len(frame)
		return nil
	}
	dc := d.ch
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

// DataPending returns how many bytes of data messages wait to be sent: queued
// before the channel opened, or buffered by the open channel.
func (p *Peer) DataPending() int {
	p.mu.Lock()
	dc, pending := p.data.ch, p.data.pendingBytes
	p.mu.Unlock()
	if dc != nil {
		pending += int(dc.BufferedAmount())
	}
	return pending
}

// CountDrop counts a message dropped by a policy outside this package.
func (p *Peer) CountDrop(r DropReason) { p.engine.stats.Drop(r) }

// localSDP returns the local description to send: pion's, with the data
// section's a=max-message-size (RFC 8841 §6), which pion v3.3.6 does not
// write; without it browsers assume 64 KiB and send messages pion cannot
// read.
func (p *Peer) localSDP() string {
	s := p.pc.LocalDescription().SDP
	if strings.Contains(s, "a=max-message-size:") {
		return s
	}
	const port = "a=sctp-port:"
	i := strings.Index(s, port)
	if i < 0 {
		return s
	}
	end := strings.Index(s[i:], "\n")
	if end < 0 {
		return s
	}
	end += i + 1
	return s[:end] + "a=max-message-size:" + strconv.Itoa(p.engine.maxData) + "\r\n" + s[end:]
}

package sfu

import (
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// rtcpCounterFactory builds rtcpCounter interceptors.
type rtcpCounterFactory struct{ stats *Stats }

func (f *rtcpCounterFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &rtcpCounter{stats: f.stats}, nil
}

// rtcpCounter counts the NACKs and PLIs that leave a PeerConnection,
// including those written by the NACK generator.
type rtcpCounter struct {
	interceptor.NoOp
	stats *Stats
}

func (c *rtcpCounter) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	return interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, a interceptor.Attributes) (int, error) {
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.TransportLayerNack:
				c.stats.NACKsSent.Add(1)
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				c.stats.KeyframesSent.Add(1)
			}
		}
		return w.Write(pkts, a)
	})
}

// twccTrimFactory builds twccTrim interceptors.
type twccTrimFactory struct{}

func (twccTrimFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &twccTrim{}, nil
}

// twccTrim works around a pion/interceptor v0.1.29 bug (pion/interceptor
// pull request 414): its TWCC feedback adapter reads every symbol of a
// status vector chunk, including the padding after the last reported
// packet, and hands those to Google congestion control as lost packets.
// Each phantom loss lowers the loss-based estimate; they come in bursts
// when arrivals are more than 64 ms apart (a layer switch, a slow link),
// and pinned a recovering subscriber to the lowest layer. twccTrim runs
// before the estimator on the read path and cuts every feedback packet's
// chunks to its packet status count. It edits the parsed packets cached in
// the attributes, which is what the estimator reads.
type twccTrim struct{ interceptor.NoOp }

func (*twccTrim) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err != nil {
			return n, a, err
		}
		if a == nil {
			a = make(interceptor.Attributes)
		}
		pkts, err := a.GetRTCPPackets(b[:n])
		if err != nil {
			return n, a, nil // not ours to reject; the next reader reports it
		}
		for _, p := range pkts {
			if fb, ok := p.(*rtcp.TransportLayerCC); ok {
				trimTWCC(fb)
			}
		}
		return n, a, nil
	})
}

// trimTWCC cuts the feedback's chunks so that they describe exactly
// PacketStatusCount packets (RFC draft-holmer-rmcat-transport-wide-cc-
// extensions-01 §3.1: the last chunk may carry padding symbols).
func trimTWCC(fb *rtcp.TransportLayerCC) {
	left := int(fb.PacketStatusCount)
	for i, c := range fb.PacketChunks {
		if left <= 0 {
			fb.PacketChunks = fb.PacketChunks[:i]
			return
		}
		switch c := c.(type) {
		case *rtcp.RunLengthChunk:
			if int(c.RunLength) > left {
				c.RunLength = uint16(left)
			}
			left -= int(c.RunLength)
		case *rtcp.StatusVectorChunk:
			if len(c.SymbolList) > left {
				c.SymbolList = c.SymbolList[:left]
			}
			left -= len(c.SymbolList)
		}
	}
}

// gateFactory builds gate interceptors around another factory's.
type gateFactory struct {
	inner interceptor.Factory
	est   *estimator
}

func (f gateFactory) NewInterceptor(id string) (interceptor.Interceptor, error) {
	i, err := f.inner.NewInterceptor(id)
	if err != nil {
		return nil, err
	}
	return &gate{inner: i, est: f.est}, nil
}

// gate runs send-side bandwidth estimation only while the estimate is of
// use: while the subscriber receives a simulcast track, whose layer it
// picks. It wraps both pion interceptors involved: Google congestion
// control, and the transport-wide sequence number extension whose packets
// the subscriber answers with TWCC feedback. For everyone else they were a
// third of the server's CPU per forwarded packet (GCC's send history takes
// a lock, a map entry and a list element per packet, the extension is
// marshalled per packet, and every feedback is parsed and runs GCC's delay
// and loss controllers). While the gate is shut, packets go out without
// the extension, so no feedback comes back (a browser may send REMB instead,
// which the estimator records). When it opens, the sequence numbers go on
// from where they stopped, feedback about packets GCC never saw is skipped
// by pion's adapter, and the estimate resumes from its last value. The
// gate is read per packet, atomically.
type gate struct {
	inner interceptor.Interceptor
	est   *estimator
}

func (g *gate) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	gated := g.inner.BindRTCPReader(r)
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		if g.est.on.Load() {
			return gated.Read(b, a)
		}
		return r.Read(b, a)
	})
}

func (g *gate) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	return g.inner.BindRTCPWriter(w)
}

func (g *gate) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	gated := g.inner.BindLocalStream(info, w)
	return interceptor.RTPWriterFunc(func(h *rtp.Header, p []byte, a interceptor.Attributes) (int, error) {
		if g.est.on.Load() {
			return gated.Write(h, p, a)
		}
		return w.Write(h, p, a)
	})
}

func (g *gate) UnbindLocalStream(info *interceptor.StreamInfo) { g.inner.UnbindLocalStream(info) }

func (g *gate) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	return g.inner.BindRemoteStream(info, r)
}

func (g *gate) UnbindRemoteStream(info *interceptor.StreamInfo) { g.inner.UnbindRemoteStream(info) }

func (g *gate) Close() error { return g.inner.Close() }

package sfu

import (
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
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

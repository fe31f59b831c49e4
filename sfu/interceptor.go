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

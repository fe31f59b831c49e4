package sfu

import (
	"testing"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// FuzzForwardRTP feeds arbitrary bytes to the forwarding path as if they
// came from a publisher: header parsing, the cache, keyframe and frame-size
// detection for every codec, and a subscriber's queue and rewriting. It
// must never panic.
func FuzzForwardRTP(f *testing.F) {
	key, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 7, Marker: true},
		Payload: []byte{0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01}}).Marshal()
	f.Add(key)
	withExt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 8}, Payload: []byte{0x78, 0, 3, 0x67, 0x42, 0xc0}}
	_ = withExt.SetExtension(1, []byte{0x30})
	b, _ := withExt.Marshal()
	f.Add(b)
	f.Add([]byte{0x80})
	r := newRig(f, 1)
	parsers := [][2]any{}
	for _, mime := range []string{"video/VP8", "video/VP9", "video/H264", "audio/opus"} {
		k, s := videoParsers(mime)
		parsers = append(parsers, [2]any{k, s})
	}
	var hdr rtp.Header
	var unwrap SeqUnwrapper
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if len(pkt) > maxPacketSize {
			return // the read loop's buffer is this size
		}
		r.up.forward((*r.up.layers.Load())[0], pkt, &hdr, &unwrap, KindVideo)
		for _, p := range parsers {
			p[0].(func([]byte) bool)(pkt)
			p[1].(func([]byte) (int, int, bool))(pkt)
		}
	})
}

// FuzzRTCP feeds arbitrary RTCP from a subscriber to what the server does
// with it: the TWCC trim and a DownTrack's NACK handling.
func FuzzRTCP(f *testing.F) {
	fb, _ := paddedFeedback(10, 1).Marshal()
	f.Add(fb)
	nack, _ := (&rtcp.TransportLayerNack{MediaSSRC: 5000, Nacks: []rtcp.NackPair{{PacketID: 3, LostPackets: 0xffff}}}).Marshal()
	f.Add(nack)
	pli, _ := (&rtcp.PictureLossIndication{MediaSSRC: 5000}).Marshal()
	f.Add(pli)
	r := newRig(f, 1)
	for i := 0; i < 20; i++ {
		r.sendFrame(i == 0)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pkts, err := rtcp.Unmarshal(b)
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.TransportLayerCC:
				trimTWCC(p)
				left := int(p.PacketStatusCount)
				for _, c := range p.PacketChunks {
					switch c := c.(type) {
					case *rtcp.RunLengthChunk:
						left -= int(c.RunLength)
					case *rtcp.StatusVectorChunk:
						left -= len(c.SymbolList)
					}
				}
				if left < 0 {
					t.Errorf("trimmed feedback still describes %d packets too many", -left)
				}
			case *rtcp.TransportLayerNack:
				r.downs[0].nack(p)
			}
		}
	})
}

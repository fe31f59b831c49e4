package client

import (
	"testing"

	"github.com/pion/rtp"
)

// Sequence numbers wrap every 65,536 packets; a long-running receiver must
// not count the second lap as duplicates, nor lose track of what is missing.
func TestObserveAcrossWrap(t *testing.T) {
	r := newRemoteTrack()
	const total = 70_000
	seq := uint16(65_000) // wraps after 536 packets
	for i := 0; i < total; i++ {
		if i != 40_000 { // one lost packet
			r.observe(&rtp.Packet{Header: rtp.Header{SequenceNumber: seq}, Payload: []byte{1}}, false)
		}
		seq++
	}
	r.observe(&rtp.Packet{Header: rtp.Header{SequenceNumber: seq - 1}, Payload: []byte{1}}, false) // a duplicate
	st := r.Stats()
	if st.Packets != total-1 || st.Dups != 1 || st.Missing != 1 || st.SeqGaps != 1 {
		t.Errorf("packets %d dups %d missing %d gaps %d, want %d, 1, 1, 1", st.Packets, st.Dups, st.Missing, st.SeqGaps, total-1)
	}
	if got := r.LastSeq(); got != seq-1 {
		t.Errorf("last seq %d, want %d", got, seq-1)
	}
}

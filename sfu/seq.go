package sfu

// SeqUnwrapper extends 16-bit RTP sequence numbers to 64 bits (RFC 3550
// §A.1), so that wrap-around and reordering are handled in one place.
// It is owned by one goroutine.
type SeqUnwrapper struct {
	started bool
	highest uint64
}

// Unwrap returns the extended sequence number of seq, choosing the value
// closest to the highest one seen so far. Late packets from before the first
// one map below it; the extended space starts at 1<<16 so that never wraps
// under zero.
func (u *SeqUnwrapper) Unwrap(seq uint16) uint64 {
	if !u.started {
		u.started = true
		u.highest = 1<<16 | uint64(seq)
		return u.highest
	}
	delta := int64(int16(seq - uint16(u.highest)))
	ext := uint64(int64(u.highest) + delta)
	if ext > u.highest {
		u.highest = ext
	}
	return ext
}

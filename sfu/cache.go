package sfu

import "sync"

// maxPacketSize bounds one cached RTP packet; larger packets are not cached
// (and not forwarded): the receive MTU is set to this value.
const maxPacketSize = 1500

// PacketCache is a fixed ring of RTP packets of one UpTrack, allocated once.
// It serves the subscribers' writers (which copy packets out by extended
// sequence number), NACK retransmissions, and nothing else.
//
// Put is called only by the UpTrack's read loop; Get by any number of
// DownTrack writers. Each slot has its own lock held only for a copy, so a
// slow subscriber never holds the publisher.
type PacketCache struct {
	slots []cacheSlot
	mask  uint64
}

type cacheSlot struct {
	mu  sync.RWMutex
	ext uint64 // extended sequence number + 1; 0 means empty
	n   int
	buf [maxPacketSize]byte
}

// NewPacketCache returns a cache of size slots; size is rounded up to a power
// of two.
func NewPacketCache(size int) *PacketCache {
	n := 1
	for n < size {
		n <<= 1
	}
	return &PacketCache{slots: make([]cacheSlot, n), mask: uint64(n - 1)}
}

// Size returns the number of slots.
func (c *PacketCache) Size() int { return len(c.slots) }

// Put stores pkt under its extended sequence number, evicting whatever
// occupied the slot. Packets longer than maxPacketSize are ignored.
func (c *PacketCache) Put(ext uint64, pkt []byte) bool {
	if len(pkt) > maxPacketSize {
		return false
	}
	s := &c.slots[ext&c.mask]
	s.mu.Lock()
	s.ext = ext + 1
	s.n = copy(s.buf[:], pkt)
	s.mu.Unlock()
	return true
}

// Get copies the packet with extended sequence number ext into dst and
// returns its length, or 0 and false when the packet is no longer cached.
func (c *PacketCache) Get(ext uint64, dst []byte) (int, bool) {
	s := &c.slots[ext&c.mask]
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.ext != ext+1 {
		return 0, false
	}
	return copy(dst, s.buf[:s.n]), true
}

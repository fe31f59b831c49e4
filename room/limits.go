package room

// Limits is a plain value: the Manager keeps a copy, read-only, from
// NewManager on.

import (
	"errors"
	"fmt"
	"time"
)

// Limits bound what rooms and members may do. Every field must be set
// (Validate); the defaults live in internal/server.DefaultConfig, not here.
type Limits struct {
	MaxRooms        int     // rooms on this server
	MaxParticipants int     // members per room
	DataRate        float64 // data-channel messages per second per sender
	DataBurst       int     // messages a sender may send at once (the bucket's size)
	MaxTracks       int     // tracks a member may publish at once
	// ConnectTimeout: a member whose PeerConnection has not connected this
	// long after joining is closed ("connect_timeout") and freed.
	ConnectTimeout time.Duration
	// MaxProbes bounds the connectivity probes (Probe) open at once;
	// ProbeTimeout is how long one may take to connect.
	MaxProbes    int
	ProbeTimeout time.Duration
	// MoveGrace: in a cluster, how long the members of a node that was
	// lost stay in their rooms on the other nodes, waiting to come back
	// through another node, before they leave ("node_lost").
	MoveGrace time.Duration
}

// Validate reports every limit a Manager cannot run with: each must be
// positive, and DataBurst at least one message.
func (l Limits) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("room: "+format, a...)) }
	if l.MaxRooms < 1 {
		bad("max rooms %d: want at least 1", l.MaxRooms)
	}
	if l.MaxParticipants < 1 {
		bad("max participants %d: want at least 1", l.MaxParticipants)
	}
	if l.DataRate <= 0 {
		bad("data rate %v: want more than 0", l.DataRate)
	}
	if l.DataBurst < 1 {
		bad("data burst %d: want at least 1", l.DataBurst)
	}
	if l.MaxTracks < 1 {
		bad("max tracks %d: want at least 1", l.MaxTracks)
	}
	if l.ConnectTimeout <= 0 {
		bad("connect timeout %v: want more than 0", l.ConnectTimeout)
	}
	if l.MaxProbes < 1 {
		bad("max probes %d: want at least 1", l.MaxProbes)
	}
	if l.ProbeTimeout <= 0 {
		bad("probe timeout %v: want more than 0", l.ProbeTimeout)
	}
	if l.MoveGrace <= 0 {
		bad("move grace %v: want more than 0", l.MoveGrace)
	}
	return errors.Join(errs...)
}

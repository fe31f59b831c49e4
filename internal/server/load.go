package server

// A cluster node's load, as its heartbeat publishes it (package cluster):
// the process's CPU time and the packets forwarded since the previous
// sample. Sampled on the cluster's heartbeat goroutine only.

import (
	"runtime"
	"syscall"
	"time"

	"github.com/roundtable-sfu/roundtable/cluster"
	"github.com/roundtable-sfu/roundtable/room"
	"github.com/roundtable-sfu/roundtable/sfu"
)

type loadMeter struct {
	stats *sfu.Stats
	rooms *room.Manager
	at    time.Time
	cpu   time.Duration // user + system, at `at`
	out   uint64        // packets forwarded, at `at`
}

func newLoadMeter(stats *sfu.Stats, rooms *room.Manager) *loadMeter {
	l := &loadMeter{stats: stats, rooms: rooms}
	l.at, l.cpu, l.out = time.Now(), cpuTime(), l.packetsOut()
	return l
}

func (l *loadMeter) packetsOut() uint64 {
	var n uint64
	for i := range l.stats.PacketsOut {
		n += l.stats.PacketsOut[i].Load()
	}
	return n
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sample returns the load since the previous sample.
func (l *loadMeter) sample() cluster.Load {
	now, cpu, out := time.Now(), cpuTime(), l.packetsOut()
	wall := now.Sub(l.at)
	var ld cluster.Load
	if wall > 0 {
		ld.CPU = min(1, float64(cpu-l.cpu)/float64(wall)/float64(runtime.NumCPU()))
		ld.PacketsPerSecond = float64(out-l.out) / wall.Seconds()
	}
	ld.Rooms, ld.Participants = l.rooms.Counts()
	l.at, l.cpu, l.out = now, cpu, out
	return ld
}

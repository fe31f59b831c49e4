package e2e

import (
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roundtable-sfu/roundtable/internal/client"
)

// Issue 6, test 2: 200 join/leave cycles across 5 rooms, ten at a time,
// 30 % of them abrupt (socket and PeerConnection cut without leave): no
// panic, and with the server still running, goroutines, open files and
// the participant, peer and subscription gauges come back to where they
// started.
func TestChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("churn takes a while")
	}
	checkGoroutines(t)
	// Abrupt leavers are detached, then removed when the resume window
	// runs out: a short one keeps the test short, and churns that path too.
	s := startServer(t, withResumeWindow(time.Second))
	ctx := testContext(t, 150*time.Second)
	goroutines, fds := runtime.NumGoroutine(), openFDs()
	fdsBefore := fdTargets()

	const cycles, parallel = 200, 10
	rng := rand.New(rand.NewSource(1))
	var mu sync.Mutex
	plan := make([]struct {
		abrupt       bool
		audio, video int
		stay         time.Duration
	}, cycles)
	for i := range plan {
		plan[i].abrupt = rng.Intn(10) < 3
		plan[i].audio, plan[i].video = rng.Intn(2), rng.Intn(2)
		plan[i].stay = time.Duration(rng.Intn(400)) * time.Millisecond
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	failed := 0
	for i := range plan {
		p := plan[i]
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			c, err := client.Join(ctx, client.Config{URL: s.WSURL(), Room: fmt.Sprintf("churn%d", i%5),
				Name: fmt.Sprintf("c%d", i), Audio: p.audio, Video: p.video})
			if err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
				return
			}
			time.Sleep(p.stay)
			if p.abrupt {
				c.Abort()
			} else {
				c.Leave()
			}
		}(i)
	}
	wg.Wait()
	if failed > 0 {
		t.Errorf("%d of %d joins failed", failed, cycles)
	}
	st := s.Engine.Stats()
	waitFor(t, ctx, "gauges back to 0", func() bool {
		_, parts := s.Rooms.Counts()
		return parts == 0 && st.Peers.Load() == 0 && st.Subscriptions.Load() == 0
	})
	// Up to 30 s: a PeerConnection cut mid-handshake may wait out its ICE
	// timeouts (5 s disconnected, then failed) before pion lets go.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && (runtime.NumGoroutine() > goroutines || openFDs() > fds) {
		time.Sleep(100 * time.Millisecond)
	}
	if g, f := runtime.NumGoroutine(), openFDs(); g > goroutines || f > fds {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		var extra []string
		for fd, target := range fdTargets() {
			if fdsBefore[fd] != target {
				extra = append(extra, fd+" -> "+target+" "+socketKind(target))
			}
		}
		var full []string // whole stacks of pion's ICE agents, to tell whose they are
		for _, st := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(st, "ice/v2.(*Agent)") {
				full = append(full, st)
			}
		}
		t.Errorf("after churn: %d goroutines (%d before), %d open files (%d before); new files %v\n%s\n%s",
			g, goroutines, f, fds, extra, summarize(string(buf[:n])), strings.Join(full, "\n\n"))
	}
	if rooms, _ := s.Rooms.Counts(); rooms != 0 {
		t.Errorf("%d rooms left", rooms)
	}
}

// fdTargets maps this process's open file descriptors to what they are.
func fdTargets() map[string]string {
	out := map[string]string{}
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
			out[e.Name()] = l
		}
	}
	return out
}

// socketKind says which /proc/net table holds a "socket:[inode]" target.
func socketKind(target string) string {
	inode := strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")
	for _, table := range []string{"tcp", "tcp6", "udp", "udp6", "unix"} {
		b, _ := os.ReadFile("/proc/net/" + table)
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 9 && (f[9] == inode || (table == "unix" && len(f) > 6 && f[6] == inode)) {
				return table + ": " + line
			}
		}
	}
	return ""
}

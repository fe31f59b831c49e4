package sfu

import (
	"sync"
	"time"
)

// Throttle lets an action run at most once per interval without losing the
// last request: a request inside the interval is deferred to the end of it,
// and any number of requests inside one interval cause one deferred run.
// It is safe for concurrent use. Time is injected for tests.
type Throttle struct {
	interval time.Duration
	fire     func()
	now      func() time.Time
	after    func(time.Duration, func()) (stop func() bool)

	mu      sync.Mutex
	last    time.Time
	pending bool
	gen     uint64 // identifies the scheduled deferred run
	stopped bool
	stop    func() bool
}

// NewThrottle returns a Throttle that calls fire at most once per interval.
func NewThrottle(interval time.Duration, fire func()) *Throttle {
	return &Throttle{
		interval: interval,
		fire:     fire,
		now:      time.Now,
		after: func(d time.Duration, f func()) func() bool {
			return time.AfterFunc(d, f).Stop
		},
	}
}

// Request asks for the action. It returns true when the action ran now.
func (t *Throttle) Request() bool {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return false
	}
	now := t.now()
	if t.last.IsZero() || now.Sub(t.last) >= t.interval {
		t.last = now
		if t.pending {
			// The deferred run is due but its timer has not fired yet:
			// this run replaces it.
			t.pending = false
			t.stop()
		}
		t.mu.Unlock()
		t.fire()
		return true
	}
	if !t.pending {
		t.pending = true
		t.gen++
		gen := t.gen
		t.stop = t.after(t.interval-now.Sub(t.last), func() { t.deferred(gen) })
	}
	t.mu.Unlock()
	return false
}

// deferred runs the deferred action, unless it was replaced: a timer that
// fires late may find a newer deferred run pending, which is not its own.
func (t *Throttle) deferred(gen uint64) {
	t.mu.Lock()
	if t.stopped || !t.pending || gen != t.gen {
		t.mu.Unlock()
		return
	}
	t.pending = false
	t.last = t.now()
	t.mu.Unlock()
	t.fire()
}

// Stop cancels a deferred run; later requests do nothing.
func (t *Throttle) Stop() {
	t.mu.Lock()
	t.stopped = true
	if t.pending && t.stop != nil {
		t.stop()
	}
	t.pending = false
	t.mu.Unlock()
}

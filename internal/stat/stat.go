// Package stat holds lock-free counters that packages fill on their own
// paths and package metrics reads at scrape time. It owns no goroutines and
// must not import the Prometheus library: it exists so that no package of
// the server but metrics does (internal/baseline, the measuring yardstick,
// is not part of the server and has its own registry).
package stat

import (
	"math"
	"sync/atomic"
	"time"
)

// CounterSet is a fixed set of named counters (one label's values). Names
// are fixed at construction, so the set never grows with input.
type CounterSet struct {
	names    []string
	counters map[string]*atomic.Uint64
	other    string
}

// NewCounterSet returns counters for names; Add with an unknown name counts
// under other (which is added to the set).
func NewCounterSet(other string, names ...string) *CounterSet {
	c := &CounterSet{counters: map[string]*atomic.Uint64{}, other: other}
	for _, n := range append(names, other) {
		if _, ok := c.counters[n]; !ok {
			c.names = append(c.names, n)
			c.counters[n] = &atomic.Uint64{}
		}
	}
	return c
}

// Add counts one event under name.
func (c *CounterSet) Add(name string) {
	ctr, ok := c.counters[name]
	if !ok {
		ctr = c.counters[c.other]
	}
	ctr.Add(1)
}

// Get returns the count of name.
func (c *CounterSet) Get(name string) uint64 {
	if ctr, ok := c.counters[name]; ok {
		return ctr.Load()
	}
	return 0
}

// Each calls f for every name in construction order.
func (c *CounterSet) Each(f func(name string, v uint64)) {
	for _, n := range c.names {
		f(n, c.counters[n].Load())
	}
}

// Histogram is a fixed-bucket histogram of durations, in seconds.
type Histogram struct {
	bounds  []float64
	buckets []atomic.Uint64 // non-cumulative; last is +Inf
	count   atomic.Uint64
	sumNano atomic.Int64
}

// NewHistogram returns a histogram with the given upper bounds in seconds.
func NewHistogram(bounds ...float64) *Histogram {
	return &Histogram{bounds: bounds, buckets: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(h.bounds) && s > h.bounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.count.Add(1)
	h.sumNano.Add(int64(d))
}

// ObserveValue records one unitless value (a ratio): the histogram's
// bounds and sum are then in the value's unit.
func (h *Histogram) ObserveValue(v float64) { h.Observe(time.Duration(v * float64(time.Second))) }

// Snapshot returns the count, the sum in seconds and the cumulative count
// per upper bound, as Prometheus wants them.
func (h *Histogram) Snapshot() (count uint64, sum float64, cumulative map[float64]uint64) {
	cumulative = make(map[float64]uint64, len(h.bounds))
	var acc uint64
	for i, b := range h.bounds {
		acc += h.buckets[i].Load()
		cumulative[b] = acc
	}
	count = acc + h.buckets[len(h.bounds)].Load()
	if c := h.count.Load(); c > count {
		count = c
	}
	return count, float64(h.sumNano.Load()) / float64(time.Second), cumulative
}

// Inf is +Inf, for callers building bucket lists.
var Inf = math.Inf(1)

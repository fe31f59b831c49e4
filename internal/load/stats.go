package load

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// dedup remembers which of the last 1,024 sequence numbers of one track
// arrived, so a retransmission of a packet that did arrive is not counted
// twice. Only the track's read goroutine uses it.
type dedup struct {
	started bool
	highest uint16
	seen    [16]uint64 // bit seq%1024
}

// first reports whether seq arrives for the first time (a packet older
// than the window counts as a duplicate).
func (d *dedup) first(seq uint16) bool {
	if !d.started {
		d.started, d.highest = true, seq
		d.set(seq)
		return true
	}
	diff := int16(seq - d.highest)
	if diff > 0 {
		for s := d.highest + 1; s != seq; s++ { // forget what the window leaves
			d.clear(s)
			if int(uint16(s-d.highest)) >= 1024 {
				break
			}
		}
		d.highest = seq
		d.set(seq)
		return true
	}
	if -int(diff) >= 1024 {
		return false
	}
	if d.has(seq) {
		return false
	}
	d.set(seq)
	return true
}

func (d *dedup) set(s uint16)      { d.seen[s%1024/64] |= 1 << (s % 64) }
func (d *dedup) clear(s uint16)    { d.seen[s%1024/64] &^= 1 << (s % 64) }
func (d *dedup) has(s uint16) bool { return d.seen[s%1024/64]&(1<<(s%64)) != 0 }

// histogram counts latencies in 50 µs buckets up to 100 ms, then 10 ms
// buckets up to 10 s; lock-free.
type histogram struct {
	fine   [2000]atomic.Uint64
	coarse [991]atomic.Uint64
}

func (h *histogram) add(d time.Duration) {
	us := d.Microseconds()
	switch {
	case us < 0:
		us = 0
		fallthrough
	case us < 100_000:
		h.fine[us/50].Add(1)
	default:
		h.coarse[min(990, (us-100_000)/10_000)].Add(1)
	}
}

// quantile returns the upper edge of the bucket holding quantile q.
func (h *histogram) quantile(q float64) time.Duration {
	var total uint64
	for i := range h.fine {
		total += h.fine[i].Load()
	}
	for i := range h.coarse {
		total += h.coarse[i].Load()
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q * float64(total))
	var n uint64
	for i := range h.fine {
		if n += h.fine[i].Load(); n > rank {
			return time.Duration(i+1) * 50 * time.Microsecond
		}
	}
	for i := range h.coarse {
		if n += h.coarse[i].Load(); n > rank {
			return 100*time.Millisecond + time.Duration(i+1)*10*time.Millisecond
		}
	}
	return 10 * time.Second
}

// samples are the values of one /metrics scrape, by metric name with
// labels dropped (sum reads them summed).
type samples map[string]float64

func (s samples) sum(name string) float64 { return s[name] }

// scrape reads the Prometheus text exposition at url.
func scrape(ctx context.Context, url string) (samples, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("metrics request: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: %s", resp.Status)
	}
	out := samples{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if i := strings.IndexByte(line, '{'); i >= 0 {
			name = line[:i]
			if j := strings.LastIndexByte(line, '}'); j > i {
				rest, ok = strings.TrimSpace(line[j+1:]), true
			}
		}
		fields := strings.Fields(rest)
		if !ok || len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		out[name] += v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return out, nil
}

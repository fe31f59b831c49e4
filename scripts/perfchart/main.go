// Command perfchart draws docs/perf/cpu.svg from the JSON lines that
// scripts/perf.sh collects: server CPU (cores) against forwarded packets per
// second, one line per server. Standard library only.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
)

type point struct {
	Server string  `json:"server"`
	N      int     `json:"n"`
	PPS    float64 `json:"server_forwarded_packets_per_second"`
	Cores  float64 `json:"server_cpu_cores"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "perfchart:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	series := map[string][]point{}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var p point
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			return fmt.Errorf("bad line %q: %w", line, err)
		}
		if p.PPS > 0 {
			series[p.Server] = append(series[p.Server], p)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(series) == 0 {
		return fmt.Errorf("no results")
	}
	var maxX, maxY float64
	names := make([]string, 0, len(series))
	for name, ps := range series {
		names = append(names, name)
		sort.Slice(ps, func(i, j int) bool { return ps[i].PPS < ps[j].PPS })
		for _, p := range ps {
			maxX, maxY = math.Max(maxX, p.PPS), math.Max(maxY, p.Cores)
		}
	}
	sort.Strings(names)
	maxX = niceCeil(maxX)
	maxY = niceCeil(maxY)
	const w, h, left, bottom, top, right = 640.0, 400.0, 70.0, 50.0, 30.0, 150.0
	px := func(x float64) float64 { return left + x/maxX*(w-left-right) }
	py := func(y float64) float64 { return h - bottom - y/maxY*(h-bottom-top) }
	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd"}

	fmt.Fprintf(out, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(out, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(out, `<text x="%.0f" y="18" font-size="14">Server CPU against forwarded packets/s (fanout 2 → N)</text>`+"\n", left)
	for i := 0; i <= 5; i++ {
		x, y := maxX*float64(i)/5, maxY*float64(i)/5
		fmt.Fprintf(out, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", px(0), py(y), px(maxX), py(y))
		fmt.Fprintf(out, `<text x="%.1f" y="%.1f" text-anchor="end">%.2f</text>`+"\n", px(0)-6, py(y)+4, y)
		fmt.Fprintf(out, `<text x="%.1f" y="%.1f" text-anchor="middle">%.0fk</text>`+"\n", px(x), py(0)+18, x/1000)
	}
	fmt.Fprintf(out, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", px(0), py(0), px(maxX), py(0))
	fmt.Fprintf(out, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", px(0), py(0), px(0), py(maxY))
	fmt.Fprintf(out, `<text x="%.1f" y="%.1f" text-anchor="middle">forwarded packets per second</text>`+"\n", px(maxX/2), h-10)
	fmt.Fprintf(out, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle">server CPU (cores)</text>`+"\n", py(maxY/2))
	for i, name := range names {
		c := colors[i%len(colors)]
		var pts []string
		for _, p := range series[name] {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p.PPS), py(p.Cores)))
		}
		fmt.Fprintf(out, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", c, strings.Join(pts, " "))
		for _, p := range series[name] {
			fmt.Fprintf(out, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s N=%d: %.0f pkt/s, %.2f cores</title></circle>`+"\n",
				px(p.PPS), py(p.Cores), c, name, p.N, p.PPS, p.Cores)
		}
		ly := top + 20 + float64(i)*20
		fmt.Fprintf(out, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", w-right+15, ly, w-right+40, ly, c)
		fmt.Fprintf(out, `<text x="%.1f" y="%.1f">%s</text>`+"\n", w-right+46, ly+4, name)
	}
	fmt.Fprintln(out, `</svg>`)
	return nil
}

// niceCeil rounds v up to a round number (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten).
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

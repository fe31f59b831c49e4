#!/usr/bin/env bash
# The measurements behind docs/performance.md: fanout 2 -> N for N = 10 ... 200
# against Roundtable and against the stock pion baseline, each server pinned
# to CPU 0 and the load tool to CPU 1 (taskset), then the chart.
# Usage: ./scripts/perf.sh [seconds per run, default 15]
# Writes docs/perf/results.jsonl and docs/perf/cpu.svg. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
bin=$(mktemp -d)/roundtable
go build -o "$bin" ./cmd/roundtable
out=docs/perf/results.jsonl
: >"$out"

run() { # server-kind N
	local kind=$1 n=$2 url pid
	if [ "$kind" = roundtable ]; then
		taskset -c 0 "$bin" -listen 127.0.0.1:8095 -ice-port 7895 -ice-tcp-port 0 -ice-interfaces lo -max-participants 300 -log-level warn &
		url=ws://127.0.0.1:8095/ws
	else
		taskset -c 0 "$bin" baseline -listen 127.0.0.1:8096 -ice-port 7896 >/dev/null &
		url=ws://127.0.0.1:8096/ws
	fi
	pid=$!
	sleep 1
	taskset -c 1 "$bin" load -url "$url" -publishers 2 -subscribers "$n" -warmup 5s -duration "${secs}s" -json -min-delivery 0 |
		tr -d '\n ' | sed "s/^{/{\"server\":\"$kind\",\"n\":$n,/" >>"$out" || true
	echo >>"$out"
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	tail -n 1 "$out"
}

for n in 10 25 50 100 150 200; do
	run roundtable "$n"
	run baseline "$n"
done
go run ./scripts/perfchart <"$out" >docs/perf/cpu.svg
echo "wrote $out and docs/perf/cpu.svg"

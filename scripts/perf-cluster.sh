#!/usr/bin/env bash
# The cost of a relayed packet against a local one (docs/performance.md,
# issue 16): N rooms of two (roundtable load -scenario rooms -size 2, both
# members publishing audio and video) against one node, then against two
# nodes of a cluster on one redis-server, the load tool spreading its
# participants over both: the two members of each room are on different
# nodes, so every packet crosses a relay (out on one node, in on the
# other) before its subscriber gets it.
# Every roundtable process is pinned to CPU 0, the load tool to CPU 1; the
# two setups are interleaved, ROUNDS times. The server figures are the
# nodes' sums (CPU, forwarded and relayed packets).
# Usage: ./scripts/perf-cluster.sh [N rooms, default 10] [seconds, default 15] [rounds, default 2]
# Writes docs/perf/cluster.jsonl. Loopback only; needs redis-server and taskset.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10}
secs=${2:-15}
rounds=${3:-2}
dir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$dir"' EXIT
bin=$dir/roundtable
go build -o "$bin" ./cmd/roundtable
redis-server --port 6391 --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" >/dev/null &
pids+=($!)
node() { # id listen-port ice-port [extra flags]
	taskset -c 0 "$bin" -listen "127.0.0.1:$2" -ice-port "$3" -ice-tcp-port 0 -turn=false -ice-interfaces lo \
		-ice-ipv4-only -mdns=false -max-participants 300 -log-level warn "${@:4}" >/dev/null &
	pids+=($!)
}
node single 8191 7191
node n1 8192 7192 -redis-url redis://127.0.0.1:6391 -node-id n1
node n2 8193 7193 -redis-url redis://127.0.0.1:6391 -node-id n2
sleep 2
out=docs/perf/cluster.jsonl
: >"$out"
for round in $(seq "$rounds"); do
	for setup in single cluster; do
		url=ws://127.0.0.1:8191/ws
		[ "$setup" = cluster ] && url=ws://127.0.0.1:8192/ws,ws://127.0.0.1:8193/ws
		taskset -c 1 "$bin" load -url "$url" -scenario rooms -rooms "$n" -size 2 -warmup 5s -duration "${secs}s" -json -min-delivery 0 |
			tr -d '\n ' | sed "s/^{/{\"round\":$round,\"setup\":\"$setup\",\"n\":$n,/" >>"$out" || true
		echo >>"$out"
		tail -n 1 "$out"
	done
done
echo "wrote $out"

#!/usr/bin/env bash
# The per-path cost in docs/performance.md (issue 11): fanout 2 -> N through
# each path a client can take to the server (roundtable load -transport): ICE
# over UDP, ICE over TCP, and relayed through the built-in TURN server over
# UDP, TCP and TLS. One server with TLS (a throwaway certificate for
# 127.0.0.1, trusted by the load tool through SSL_CERT_FILE) is pinned to
# CPU 0, the load tool to CPU 1; the transports are interleaved, ROUNDS times.
# Usage: ./scripts/perf-transport.sh [N, default 50] [seconds, default 15] [rounds, default 2]
# Writes docs/perf/transport.jsonl. Loopback only; needs openssl and taskset.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-50}
secs=${2:-15}
rounds=${3:-2}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
bin=$dir/roundtable
go build -o "$bin" ./cmd/roundtable
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
	-keyout "$dir/key.pem" -out "$dir/cert.pem" -subj /CN=127.0.0.1 \
	-addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:TRUE 2>/dev/null
out=docs/perf/transport.jsonl
: >"$out"
taskset -c 0 "$bin" -listen 127.0.0.1:8097 -tls-cert "$dir/cert.pem" -tls-key "$dir/key.pem" \
	-ice-port 7897 -turn-port 3497 -ice-interfaces lo -ice-ipv4-only -mdns=false \
	-max-participants 300 -log-level warn >/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
sleep 2
for round in $(seq "$rounds"); do
	for t in udp tcp turn-udp turn-tcp turn-tls; do
		SSL_CERT_FILE=$dir/cert.pem taskset -c 1 "$bin" load -url wss://127.0.0.1:8097/ws -transport "$t" \
			-publishers 2 -subscribers "$n" -warmup 5s -duration "${secs}s" -json -min-delivery 0 |
			tr -d '\n ' | sed "s/^{/{\"round\":$round,\"n\":$n,/" >>"$out" || true
		echo >>"$out"
		tail -n 1 "$out"
	done
done
echo "wrote $out"

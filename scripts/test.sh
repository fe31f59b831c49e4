#!/usr/bin/env bash
# Roundtable's test command: installs what the tests need when it is
# missing (promtool and prometheus from the prometheus package, Debian's
# chromium, firefox-esr and coturn, pebble (the ACME test CA), aiortc (an
# independent WebRTC stack, a WHIP client), ffmpeg (media for the
# recording tests, and ffprobe to read what was recorded), redis-server
# and haproxy (the cluster tests),
# systemd-analyze, iproute2 and nftables for the network-namespace tests,
# which need root, and TypeScript and axe-core from npm), checks
# the web client's types, then runs every test with the race detector and
# the benchmarks once so they cannot rot, then fuzzes each target for a
# count of executions worth about 30 s (RT_FUZZTIME replaces it).
# Usage: ./scripts/test.sh [extra go test flags]
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v firefox-esr >/dev/null 2>&1 || need_apt+=(firefox-esr)
command -v turnserver >/dev/null 2>&1 || need_apt+=(coturn)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v nft >/dev/null 2>&1 || need_apt+=(nftables)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v pebble >/dev/null 2>&1 || need_apt+=(pebble)
command -v ffprobe >/dev/null 2>&1 || need_apt+=(ffmpeg)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
/usr/bin/python3 -c 'import aiortc' >/dev/null 2>&1 || need_apt+=(python3-aiortc)
if ((${#need_apt[@]})); then
	echo "installing: ${need_apt[*]}"
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# From npm, pinned and kept outside the clone: TypeScript checks the web
# client's JSDoc types (web/jsconfig.json; the client itself has no build
# step), and axe-core checks the room page's accessibility in Chromium
# (e2e/browser/a11y_test.go).
npm_tools="${XDG_CACHE_HOME:-$HOME/.cache}/roundtable/npm-tools-1"
if [ ! -f "$npm_tools/node_modules/axe-core/axe.min.js" ] || [ ! -x "$npm_tools/node_modules/.bin/tsc" ]; then
	npm install --prefix "$npm_tools" --no-save --no-audit --no-fund --no-package-lock axe-core@4.14.1 typescript@5.9.3 >/dev/null
fi
export RT_AXE="$npm_tools/node_modules/axe-core/axe.min.js"
"$npm_tools/node_modules/.bin/tsc" -p web/jsconfig.json

export RT_REQUIRE_TOOLS=1
go vet ./...
# -p 1: one package at a time, so the timing-sensitive media tests (e2e/) and
# the browser tests (e2e/browser/) never share the two cores.
go test -race -count=1 -p 1 -timeout 15m "$@" ./...
# The hot-path benchmarks, once, without the race detector.
go test -run '^$' -bench . -benchtime 1x -benchmem ./sfu/
# Each fuzz target for about 30 s (issue 6): signaling decoding, SDP
# checks, and the RTP and RTCP handling of the media plane. Seeds:
# */testdata/fuzz. The budgets are counts of executions (about 30 s each
# on two cores), not durations: a duration races Go's fuzz coordinator,
# which then fails with "context deadline exceeded" and no crasher
# (go.dev/issue/75804, fixed in Go 1.27). Minimizing a new input (whose
# executions the count leaves out) stops after 10 s; -timeout bounds a
# stuck target.
# RT_FUZZTIME (e.g. 5s or 1000x) replaces every budget.
for target in signal:FuzzDecode:300000x sfu:FuzzCheckSDP:400000x sfu:FuzzForwardRTP:60000x sfu:FuzzRTCP:350000x; do
	IFS=: read -r pkg name budget <<<"$target"
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "${RT_FUZZTIME:-$budget}" -fuzzminimizetime 10s -timeout 5m "./${pkg}/"
done

#!/usr/bin/env bash
# The idle rows of `make bench` (called by build/bench.sh; runnable alone after make build):
# per variant, RSS per idle connection at 1, 100 and 1,000 connections (client connections:
# tests/bench/conns.lua against the Go echo server; server-accepted: the Go client's -idle mode
# against conns.lua's ws.listen), the RSS once they are closed, and the wakeups/s of the idle
# process over IDLE_SECS (context switches, voluntary + involuntary, summed over its threads).
# Out of process the helper's figures are shown beside the Lua process's.
# Usage: build/bench-idle.sh [VARIANT=DIR ...]   (default: inproc=. and oop=build/out/amd64/oop)
# Env: IDLE_COUNTS (default "1 100 1000"), IDLE_SECS (default 10), LUA (default lua5.1).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
counts=${IDLE_COUNTS:-1 100 1000} secs=${IDLE_SECS:-10} lua=${LUA:-lua5.1}
settle=2 # seconds from the last open (or close) to the RSS reading: the engine gives memory back 1 s after a burst
# 1,000 connections and the echo server's ends of them: raise the soft limit (bounded by the hard one).
want=4096
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] || [ "$hard" -ge $want ] || want=$hard
[ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want" ] && ulimit -n "$want"

declare -A dir
if [ $# -gt 0 ]; then
	for a in "$@"; do dir[${a%%=*}]=${a#*=}; done
else
	[ -f verawebsockets.so ] && dir[inproc]=.
	[ -x build/out/amd64/oop/vws-helper ] && dir[oop]=build/out/amd64/oop
fi
mkdir -p build/out/host
go build -o build/out/host/echoserver ./tests/demo/echoserver
go build -o build/out/host/goclient ./tests/bench/goclient

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
build/out/host/echoserver -quiet -max-time 30m >"$tmp/url" 2>"$tmp/server.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$tmp/url" ] && break; sleep 0.05; done
url=$(head -1 "$tmp/url")
[ -n "$url" ] || { echo "bench-idle: echo server did not start" >&2; exit 1; }

rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# switches PID: context switches of all its threads so far
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { n += $2 } END { print n + 0 }'; }
helper_of() { cat /proc/"$1"/task/*/children 2>/dev/null | awk '{ print $1 }' | head -1; }
# wait_for FILE PATTERN SECS: until a line of FILE matches (false on timeout)
wait_for() {
	local i
	for ((i = 0; i < $2 * 20; i++)); do grep -q "$3" "$1" 2>/dev/null && return 0; sleep 0.05; done
	return 1
} 2>/dev/null
# pair FN: "FN of the Lua process, FN of its helper (0 without one)", for the caller's lp and hp
pair() {
	local a h=0
	a=$("$1" "$lp")
	[ -n "$hp" ] && h=$("$1" "$hp")
	echo "$a $h"
}
# idle_sample: the caller's open RSS (o, oh) and its context switches before and after $secs
# idle (s0 s1, h0 h1) (bash's dynamic scope: the caller's locals)
idle_sample() {
	read -r o oh <<<"$(pair rss)"
	read -r s0 h0 <<<"$(pair switches)"
	sleep "$secs"
	read -r s1 h1 <<<"$(pair switches)"
}
# report ROLE N: the row of one measurement (and the helper's share) from the caller's figures
report() {
	row "$v $1 (Lua+helper)" "$2" "$((b + bh))" "$((o + oh))" "$(per $((o + oh)) $((b + bh)) "$2")" "$((c + ch))" \
		"$(rate "$s1" "$s0" "$secs")" "$([ -n "$hp" ] && rate "$h1" "$h0" "$secs" || echo -)"
	if [ -n "$hp" ]; then
		row "  of which the helper" "$2" "$bh" "$oh" "$(per "$oh" "$bh" "$2")" "$ch" "" ""
	fi
}
per() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.1f", (a - b) / n }'; }
rate() { awk -v a="$1" -v b="$2" -v s="$3" 'BEGIN { printf "%.1f", (a - b) / s }'; }

printf '\n%-34s %6s %10s %10s %10s %10s %9s %9s\n' "idle connections (RSS KiB)" "conns" "base" "open" "KiB/conn" "closed" "wakeup/s" "helper/s"
# One measurement: its phases are driven through a fifo on the Lua process's stdin.
# client VARIANT N: conns.lua client against the Go echo server
client_row() {
	local v=$1 n=$2 lp hp b bh o oh c ch s0 s1 h0 h1
	rm -f "$tmp/fifo" "$tmp/out"
	mkfifo "$tmp/fifo"
	LUA_CPATH="${dir[$v]}/?.so" timeout $((secs + 120)) $lua tests/bench/conns.lua client "$url" "$n" "$((secs + settle + 2))" <"$tmp/fifo" >"$tmp/out" 2>"$tmp/err" &
	local bg=$!
	pids+=($bg)
	exec 4>"$tmp/fifo"
	if ! wait_for "$tmp/out" 20 BASE; then echo "bench-idle: $v client $n: no BASE: $(head -2 "$tmp/err")" >&2; exec 4>&-; wait $bg || true; return; fi
	lp=$(cat /proc/$bg/task/$bg/children | awk '{ print $1 }')
	sleep 0.3
	hp=$(helper_of "$lp")
	read -r b bh <<<"$(pair rss)"
	echo >&4
	if ! wait_for "$tmp/out" 70 OPEN; then echo "bench-idle: $v client $n: not open: $(head -2 "$tmp/err")" >&2; exec 4>&-; wait $bg || true; return; fi
	sleep "$settle"
	[ -z "$hp" ] && hp=$(helper_of "$lp")
	idle_sample
	wait_for "$tmp/out" 40 CLOSED || echo "bench-idle: $v client $n: not closed" >&2
	sleep "$settle"
	read -r c ch <<<"$(pair rss)"
	exec 4>&-
	wait $bg || echo "bench-idle: $v client $n failed: $(head -2 "$tmp/err")" >&2
	report client "$n"
}
# server VARIANT N: the Go client's N idle connections to conns.lua's ws.listen
server_row() {
	local v=$1 n=$2 lp hp b bh o oh c ch s0 s1 h0 h1 surl
	rm -f "$tmp/out"
	LUA_CPATH="${dir[$v]}/?.so" timeout $((secs + 120)) $lua tests/bench/conns.lua server $((secs + 60)) >"$tmp/out" 2>"$tmp/err" &
	local bg=$!
	pids+=($bg)
	if ! wait_for "$tmp/out" 20 '^ws:'; then echo "bench-idle: $v server: no URL: $(head -2 "$tmp/err")" >&2; kill $bg 2>/dev/null || true; wait $bg 2>/dev/null || true; return; fi
	surl=$(head -1 "$tmp/out")
	lp=$(cat /proc/$bg/task/$bg/children | awk '{ print $1 }')
	sleep 0.3
	hp=$(helper_of "$lp")
	read -r b bh <<<"$(pair rss)"
	build/out/host/goclient -url "$surl" -idle "$n" -hold "$((secs + settle + 2))s" >"$tmp/gout" 2>"$tmp/gerr" &
	local gc=$!
	pids+=($gc)
	if ! wait_for "$tmp/gout" 70 OPEN; then echo "bench-idle: $v server $n: not open: $(head -2 "$tmp/gerr")" >&2; kill $bg $gc 2>/dev/null || true; wait $bg $gc 2>/dev/null || true; return; fi
	sleep "$settle"
	idle_sample
	wait $gc || echo "bench-idle: $v server $n: Go client failed: $(head -2 "$tmp/gerr")" >&2
	sleep "$settle"
	read -r c ch <<<"$(pair rss)"
	kill $bg 2>/dev/null || true
	wait $bg 2>/dev/null || true
	report server "$n"
}
row() { printf '%-34s %6s %10s %10s %10s %10s %9s %9s\n' "$@"; }
for v in inproc oop; do
	[ -n "${dir[$v]:-}" ] || continue
	for n in $counts; do client_row "$v" "$n"; done
	for n in $counts; do server_row "$v" "$n"; done
done
echo "(base: module loaded, no connection open; open: $settle s after the last one opened; KiB/conn ="
echo " (open - base) / conns; closed: $settle s after the last close; wakeup/s: context switches of"
echo " every thread over $secs s idle, in ws.loop; Lua+helper: the sum of both processes out of process)"

#!/usr/bin/env bash
# make bench: round trips/s (100 B text, next message sent on receipt) and MiB/s (1 MiB
# binary echo) through the Lua API (lua5.1 + the real .so, standalone ws.loop) beside a plain
# Go gobwas client (tests/bench/goclient), all against one Go echo server (tests/demo/echoserver)
# in the same run; then the Go client against a Lua echo server (tests/bench/server.lua,
# ws.listen) beside the Go echo server; then the RSS of lua5.1 holding one idle connection,
# per variant; then idle connections (build/bench-idle.sh: RSS per idle connection at 1, 100
# and 1,000 client and server-accepted connections, RSS once they closed, wakeups/s over 10 s
# idle; about 3 minutes); then the engine's Go benchmarks (-benchmem) of its read and write paths.
# Beside the variants (lua5.1), the client table has LuaJIT with the in-process .so and
# Debian's lua-http client (pure Lua framing on cqueues; installed here when missing), and a
# table of CPU time, context switches and syscalls per round trip of each client (perf stat,
# the oop helper included: it is a child).
# Env: RTT_N (default 30000), MIB_N (default 256), INGEST_N (default 100000), ROUNDS (default 3),
# LUA (default lua5.1), BENCH_SERVER=0 skips the Lua-server table, BENCH_RSS=0 the RSS table,
# BENCH_IDLE=0 the idle-connection table (IDLE_COUNTS, IDLE_SECS: see build/bench-idle.sh),
# BENCH_PEERS=0 the LuaJIT and lua-http columns, BENCH_PERF=0 the per-round-trip table.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
rtt_n=${RTT_N:-30000} mib_n=${MIB_N:-256} ingest_n=${INGEST_N:-100000} rounds=${ROUNDS:-3} lua=${LUA:-lua5.1}
mkdir -p build/out/host
go build -o build/out/host/echoserver ./tests/demo/echoserver
go build -o build/out/host/goclient ./tests/bench/goclient

# Variants: inproc = ./verawebsockets.so (make build), oop = build/out/amd64/oop (built here if missing).
declare -A dir
if [ -f verawebsockets.so ]; then dir[inproc]=.; elif [ -f build/out/amd64/inproc/verawebsockets.so ]; then dir[inproc]=build/out/amd64/inproc; fi
if [ ! -x build/out/amd64/oop/vws-helper ] && [ -d proxy ]; then
	build/build.sh oop amd64 >/dev/null 2>&1 || echo "bench: oop build failed; oop skipped" >&2
fi
[ -x build/out/amd64/oop/vws-helper ] && dir[oop]=build/out/amd64/oop
variants=()
for v in inproc oop; do [ -n "${dir[$v]:-}" ] && variants+=("$v"); done
[ ${#variants[@]} -gt 0 ] || { echo "bench: no built variant (make build)" >&2; exit 1; }
# runners of the client table: the variants, then luajit (the in-process .so) and luahttp.
runners=("${variants[@]}")
if [ "${BENCH_PEERS:-1}" != 0 ]; then
	build/deps.sh luajit lua-http >/dev/null 2>&1 || true
	[ -n "${dir[inproc]:-}" ] && command -v luajit >/dev/null && { dir[luajit]=${dir[inproc]}; runners+=(luajit); }
	lua5.1 -e 'require "http.websocket"' 2>/dev/null && runners+=(luahttp)
fi

tmp=$(mktemp -d)
srv= bg=
cleanup() {
	[ -n "$bg" ] && kill "$bg" 2>/dev/null
	[ -n "$srv" ] && kill "$srv" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
build/out/host/echoserver -quiet -max-time 30m >"$tmp/url" 2>"$tmp/server.log" &
srv=$!
for _ in $(seq 100); do [ -s "$tmp/url" ] && break; sleep 0.05; done
url=$(head -1 "$tmp/url")
[ -n "$url" ] || { echo "bench: echo server did not start" >&2; exit 1; }

rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }
# median of the arguments ("-" when none)
median() { printf '%s\n' "$@" | grep -v '^-*$' | sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a == "" || a == "-" || b == "" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
declare -A res   # res[WORKLOAD,RUNNER] = median rate
declare -A rates # rates[WORKLOAD,RUNNER] = the rates of every round, space separated
declare -A rats  # rats[WORKLOAD,VARIANT] = the per-round ratios Lua/Go, space separated
workloads=(rtt ingest mib)
count_of() { case $1 in rtt) echo "$rtt_n" ;; mib) echo "$mib_n" ;; ingest) echo "$ingest_n" ;; esac; }
# one_run WORKLOAD RUNNER: prints the rate of one run ("-" when it failed)
one_run() {
	local w=$1 r=$2 n out s
	n=$(count_of "$w")
	if [ "$r" = go ]; then
		out=$(timeout 60 build/out/host/goclient -url "$url" -rtt 0 -mib 0 "-$w" "$n" 2>"$tmp/err") || { echo "bench: go $w failed: $(head -3 "$tmp/err")" >&2; echo -; return; }
	elif [ "$r" = luahttp ]; then
		[ "$w" = mib ] && n=$(((n + 7) / 8)) # pure Lua unmasking: a few MiB/s
		out=$(timeout 120 lua5.1 tests/bench/luahttp.lua "$w" "$url" "$n" 100 2>"$tmp/err") || { echo "bench: lua-http $w failed: $(head -3 "$tmp/err")" >&2; echo -; return; }
	elif [ "$r" = luajit ]; then
		out=$(LUA_CPATH="${dir[$r]}/?.so;;" timeout 60 luajit tests/bench/bench.lua "$w" "$url" "$n" 100 2>"$tmp/err") || { echo "bench: luajit $w failed: $(head -3 "$tmp/err")" >&2; echo -; return; }
	else
		# shellcheck disable=SC2086
		out=$(LUA_CPATH="${dir[$r]}/?.so;;" timeout 60 $lua tests/bench/bench.lua "$w" "$url" "$n" 100 2>"$tmp/err") || { echo "bench: lua $r $w failed: $(head -3 "$tmp/err")" >&2; echo -; return; }
	fi
	read -r _ n s <<<"$out"
	rate "$n" "$s"
}
# Rounds: in each, per workload, the Go client then each variant, back to back, so that
# each ratio compares runs under the same machine load; the table shows medians.
for ((round = 1; round <= rounds; round++)); do
	for w in "${workloads[@]}"; do
		g=$(one_run "$w" go)
		rates[$w,go]+="$g "
		for v in "${runners[@]}"; do
			l=$(one_run "$w" "$v")
			rates[$w,$v]+="$l "
			rats[$w,$v]+="$(ratio "$l" "$g") "
		done
	done
done
for w in "${workloads[@]}"; do
	# shellcheck disable=SC2086
	res[$w,go]=$(median ${rates[$w,go]})
	for v in "${runners[@]}"; do
		# shellcheck disable=SC2086
		res[$w,$v]=$(median ${rates[$w,$v]})
		# shellcheck disable=SC2086
		res[$w,ratio_$v]=$(median ${rats[$w,$v]})
	done
done
label_of() {
	case $1 in
	rtt) echo "round trips/s (100 B text)" ;;
	ingest) echo "msgs/s (100 B pushed)" ;;
	mib) echo "MiB/s (1 MiB binary echo)" ;;
	esac
}
echo
runner_name() { case $1 in inproc | oop) echo "Lua $1" ;; luajit) echo "LuaJIT inproc" ;; luahttp) echo "lua-http" ;; esac; }
printf '%-28s %12s' "workload (one connection)" "Go gobwas"
for v in "${runners[@]}"; do printf ' %13s %7s' "$(runner_name "$v")" "/Go"; done
echo
for w in "${workloads[@]}"; do
	printf '%-28s %12s' "$(label_of "$w")" "${res[$w,go]}"
	for v in "${runners[@]}"; do printf ' %13s %7s' "${res[$w,$v]}" "${res[$w,ratio_$v]}"; done
	echo
done
echo "(medians of $rounds rounds; /Go is the median of per-round ratios to the Go client, runs"
echo " interleaved; rtt: $rtt_n round trips; ingest: $ingest_n messages; MiB/s: $mib_n echoes"
echo " (lua-http: $(((mib_n + 7) / 8))); $(nproc) cores)"
for w in "${workloads[@]}"; do
	for v in "${runners[@]}"; do echo "  $w $v per-round ratios: ${rats[$w,$v]}"; done
done

if [ "${BENCH_PERF:-1}" != 0 ] && perf stat -e task-clock true >/dev/null 2>&1; then
	# perf_run RUNNER N: "cpu_us ctxsw syscalls" per round trip of one rtt run of N under perf stat
	perf_run() {
		local r=$1 n=$2 cmd
		case $r in
		go) cmd=(build/out/host/goclient -url "$url" -rtt "$n" -mib 0) ;;
		luahttp) cmd=(lua5.1 tests/bench/luahttp.lua rtt "$url" "$n" 100) ;;
		luajit) cmd=(env LUA_CPATH="${dir[$r]}/?.so;;" luajit tests/bench/bench.lua rtt "$url" "$n" 100) ;;
		*-ka) cmd=(env BENCH_PING_INTERVAL=30 LUA_CPATH="${dir[${r%-ka}]}/?.so;;" "$lua" tests/bench/bench.lua rtt "$url" "$n" 100) ;;
		*) cmd=(env LUA_CPATH="${dir[$r]}/?.so;;" "$lua" tests/bench/bench.lua rtt "$url" "$n" 100) ;;
		esac
		timeout 120 perf stat -x, -e task-clock,context-switches,raw_syscalls:sys_enter -o "$tmp/perf" "${cmd[@]}" >/dev/null 2>&1 || { echo "- - -"; return; }
		awk -F, -v n="$n" '$3 == "task-clock" { c = $1 } $3 == "context-switches" { x = $1 } $3 == "raw_syscalls:sys_enter" { s = $1 }
			END { printf "%.1f %.2f %.2f\n", c * 1000 / n, x / n, (s == "" ? -1 : s / n) }' "$tmp/perf"
	}
	echo
	printf '%-28s %14s %14s %14s\n' "per round trip (100 B)" "CPU us" "ctx switches" "syscalls"
	for r in go "${runners[@]}" "${variants[@]/%/-ka}"; do
		read -r c x s <<<"$(perf_run "$r" "$rtt_n")"
		case $r in
		go) name="Go gobwas" ;;
		*-ka) name="$(runner_name "${r%-ka}"), keepalive" ;;
		*) name=$(runner_name "$r") ;;
		esac
		printf '%-28s %14s %14s %14s\n' "$name" "$c" "$x" "$s"
	done
	echo "(one run each under perf stat, the client process and its children, startup included;"
	echo " keepalive: ping_interval = 30, its timers running)"
fi

if [ "${BENCH_SERVER:-1}" != 0 ]; then
# The server side: the Go client against a Lua echo server, per variant.
for v in "${variants[@]}"; do
	# shellcheck disable=SC2086
	LUA_CPATH="${dir[$v]}/?.so" timeout 100 $lua tests/bench/server.lua 90 >"$tmp/surl" 2>"$tmp/serr" &
	bg=$!
	for _ in $(seq 100); do [ -s "$tmp/surl" ] && break; sleep 0.05; done
	surl=$(head -1 "$tmp/surl")
	if [ -n "$surl" ] && out=$(timeout 60 build/out/host/goclient -url "$surl" -rtt "$rtt_n" -mib "$mib_n"); then
		while read -r w n s; do res[$w,srv_$v]=$(rate "$n" "$s"); done <<<"$out"
	else
		echo "bench: Lua $v server failed: $(head -3 "$tmp/serr")" >&2
	fi
	kill "$bg" 2>/dev/null || true # gone already when it failed
	wait "$bg" 2>/dev/null || true
	bg=
done

# table TITLE GO_COLUMN LUA_SUFFIX KEY_PREFIX: one row per workload, the Go rate, then per
# variant the Lua rate res[w,KEY_PREFIX$v] and its ratio to Go.
table() {
	echo
	printf '%-28s %12s' "$1" "$2"
	for v in "${variants[@]}"; do printf ' %12s %9s' "Lua $v$3" "Lua/Go"; done
	echo
	for w in rtt mib; do
		label="round trips/s (100 B text)"
		[ $w = mib ] && label="MiB/s (1 MiB binary echo)"
		printf '%-28s %12s' "$label" "${res[$w,go]:--}"
		for v in "${variants[@]}"; do
			printf ' %12s %9s' "${res[$w,$4$v]:--}" "$(ratio "${res[$w,$4$v]:-}" "${res[$w,go]:-}")"
		done
		echo
	done
}
table "Go client against" "Go server" " srv" "srv_"
fi

if [ "${BENCH_RSS:-1}" != 0 ]; then
# RSS with one idle connection: VmRSS of the lua5.1 process (and of the oop helper, its child).
vmrss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo -; }
echo
printf '%-36s %14s %14s\n' "RSS, one idle connection" "lua5.1 (KiB)" "helper (KiB)"
mkfifo "$tmp/fifo"
# shellcheck disable=SC2086
$lua -e 'io.read()' <"$tmp/fifo" &
bg=$!
exec 3>"$tmp/fifo"
sleep 0.5
printf '%-36s %14s %14s\n' "lua5.1 alone, no module" "$(vmrss "$bg")" "-"
exec 3>&-
wait "$bg" 2>/dev/null || true
bg=
for v in "${variants[@]}"; do
	: >"$tmp/idle"
	# shellcheck disable=SC2086
	LUA_CPATH="${dir[$v]}/?.so" timeout 20 $lua tests/bench/bench.lua idle "$url" 3 >"$tmp/idle" 2>&1 &
	bg=$!
	for _ in $(seq 100); do grep -q READY "$tmp/idle" && break; sleep 0.05; done
	sleep 0.5
	pid=$(cat "/proc/$bg/task/$bg/children" 2>/dev/null | awk '{ print $1 }') # timeout's child: lua5.1
	lrss=$(vmrss "$pid") hrss=-
	if [ "$v" = oop ]; then
		h=$(cat /proc/"$pid"/task/*/children 2>/dev/null | awk '{ print $1 }')
		[ -n "$h" ] && hrss=$(vmrss "$h")
	fi
	grep -q READY "$tmp/idle" || lrss="- (never open: $(head -1 "$tmp/idle"))"
	printf '%-36s %14s %14s\n' "$v ($([ "$v" = oop ] && echo "Lua + proxy .so" || echo "Go runtime in process"))" "$lrss" "$hrss"
	wait "$bg" 2>/dev/null || true
	bg=
done
fi

if [ "${BENCH_IDLE:-1}" != 0 ]; then
	idle_args=()
	for v in "${variants[@]}"; do idle_args+=("$v=${dir[$v]}"); done
	LUA=$lua build/bench-idle.sh "${idle_args[@]}" || echo "bench: idle-connection table failed" >&2
fi

# The engine's read and write paths per message, with allocations (BENCH_GO=0 skips).
if [ "${BENCH_GO:-1}" != 0 ]; then
	echo
	echo "engine per message (go test -bench, wsengine/bench_test.go; small messages in pooled buffers: 0 allocs in steady state)"
	go test -run - -bench 'Receive100B|Send100B' -benchmem -count=3 ./wsengine | grep '^Benchmark'
fi

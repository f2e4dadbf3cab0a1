#!/usr/bin/env bash
# The Luup host test: plugins of the original API in a pure-Lua Luup host stand-in
# (tests/luuphost/host.lua: one lua_State, setfenv'd plugin environments, one
# socket.select loop, an HTTP server on 127.0.0.1 that the module wakes).
#   build/test-luuphost.sh [VARIANT...]   VARIANT inproc|oop (default both); also
#                                         "shim": the inproc .so behind a Lua stand-in of
#                                         the Luup delivery (tests/luuphost/shim), to check
#                                         the test itself
# Env:
#   LUA                   interpreter (default lua5.1), e.g. build/out/lua-race/bin/lua5.1
#   LUUPHOST_SECONDS      length of the idle and of the busy run (default 30)
#   LUUPHOST_SHORT_SECONDS  length of the close-after-each-response and the chunked
#                         runs (default 10; 0 leaves them out)
#   LUUPHOST_RATE         messages a second per plugin (default 20)
# Steps: the host's own HTTP checks (tests/luuphost/httpcheck.lua against a fake plugin:
# keep-alive, close, chunked); then per variant a probe (does the module register its
# wake handler in the plugin's device?), and runs of plugin_names.lua + plugin_funcs.lua
# against tests/demo/echoserver: idle, busy (--busy), close (--close), chunked (--chunked).
# Checks per run: the host ran its time and exited 0; the module registered lr_vws_* in
# each plugin's device; every message came back in order and byte-exact, open and close
# events came; every handler ran in its plugin's device context (and its luup.log lines
# carry that device number); no level-1 log line, no handler error, only 200 answers; no
# wake the module judged failed. Every wait is bounded (timeout), every child killed.
# Prints TAP lines, the figures as "# " lines and a closing "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export PATH=/usr/local/go/bin:$PATH
[ $# -gt 0 ] || set -- inproc oop
lua_cmd=${LUA:-lua5.1}
secs=${LUUPHOST_SECONDS:-30}
short=${LUUPHOST_SHORT_SECONDS:-10}
rate=${LUUPHOST_RATE:-20}
export LUUPHOST_RATE=$rate
dir=tests/luuphost

n=0 pass=0 fail=0 skip=0
ok() { n=$((n + 1)) pass=$((pass + 1)); echo "ok $n - $1"; }
notok() { # notok NAME [DETAIL...]
	n=$((n + 1)) fail=$((fail + 1))
	echo "not ok $n - $1"
	shift
	for d in "$@"; do [ -n "$d" ] && printf '%s\n' "$d" | sed 's/^/#   /'; done
	return 0
}
skipped() { n=$((n + 1)) skip=$((skip + 1)); echo "ok $n - $1 # SKIP $2"; }
finish() {
	line="$pass passed, $fail failed"
	[ "$skip" -gt 0 ] && line="$line, $skip skipped"
	echo "$line"
	[ "$fail" -eq 0 ]
	exit
}

build/deps.sh lua lua-socket >/dev/null || { notok "build/deps.sh lua lua-socket"; finish; }
if ! $lua_cmd -e 'require "socket"' 2>/dev/null; then
	notok "LuaSocket loads in $lua_cmd" "$($lua_cmd -e 'require "socket"' 2>&1 | head -5)"
	finish
fi

tmp=$(mktemp -d /tmp/vws-luuphost.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	if [ -f "$tmp/wakers" ]; then while read -r p; do kill "$p" 2>/dev/null; done <"$tmp/wakers"; fi
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port: a port nothing listens on now (the host retries on a bind failure).
free_port() {
	$lua_cmd -e 'local s = require "socket"; local t = assert(s.bind("127.0.0.1", 0)); local _, p = t:getsockname(); print(p); t:close()'
}

# rep FILE DEV KEY: a value from a host report ("dev<TAB>key<TAB>value" lines)
rep() { awk -F'\t' -v d="$2" -v k="$3" '$1 == d && $2 == k { print $3; exit }' "$1"; }

# run_host NAME SECONDS HOSTARGS...: runs the host (retrying on a taken port, 3 times)
# with stdout/stderr/log/report in $tmp/NAME.*; sets $port and $rc.
run_host() {
	local name=$1 s=$2
	shift 2
	for _ in 1 2 3; do
		port=$(free_port)
		VWS_LUUP_PORT=$port timeout -k 5 $((s + 60)) $lua_cmd $dir/host.lua --port "$port" --seconds "$s" \
			--log "$tmp/$name.log" --report "$tmp/$name.report" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" </dev/null
		rc=$?
		[ "$rc" -eq 3 ] || return 0
	done
}

# ---------------------------------------------------------------- 1. the host itself
# A fake plugin (no WebSockets) loaded twice; httpcheck.lua pokes it while the host runs.
for mode in keepalive close chunked; do
	flag=
	[ $mode = close ] && flag=--close
	[ $mode = chunked ] && flag=--chunked
	port=$(free_port)
	VWS_LUUP_PORT=$port timeout -k 5 60 $lua_cmd $dir/host.lua --port "$port" --seconds 6 --drain 0.5 $flag \
		--log "$tmp/self-$mode.log" --report "$tmp/self-$mode.report" $dir/plugin_fake.lua $dir/plugin_fake.lua \
		>"$tmp/self-$mode.out" 2>"$tmp/self-$mode.err" </dev/null &
	hpid=$!
	pids+=("$hpid")
	for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
	timeout -k 5 60 $lua_cmd $dir/httpcheck.lua "$port" "$mode" >"$tmp/self-$mode.tap" 2>&1
	while IFS= read -r line; do
		case $line in
		"ok "*) ok "${line#ok [0-9]* - }" ;;
		"not ok "*) notok "${line#not ok [0-9]* - }" ;;
		"#"*) echo "$line" ;;
		*) echo "#   $line" ;;
		esac
	done <"$tmp/self-$mode.tap"
	wait "$hpid"
	hrc=$?
	r=$tmp/self-$mode.report l=$tmp/self-$mode.log
	problems=()
	[ "$hrc" -eq 0 ] || problems+=("host exit status $hrc: $(tail -3 "$tmp/self-$mode.err")")
	for dev in 11 12; do
		[ "$(rep "$r" $dev wrong_device)" = "" ] || problems+=("device $dev: a call_delay callback ran in device $(rep "$r" $dev wrong_device)")
		[ "$(rep "$r" $dev env_is_own)" = true ] || problems+=("device $dev: globals not in its own environment")
		ticks=$(rep "$r" $dev ticks) timer_ticks=$(rep "$r" $dev timer_ticks)
		[ "${ticks:-0}" -ge 20 ] || problems+=("device $dev: ${ticks:-0} call_delay ticks (0.2 s) in 6 s")
		[ "${timer_ticks:-0}" -ge 4 ] || problems+=("device $dev: ${timer_ticks:-0} call_timer ticks (1 s) in 6 s")
		grep -q "luup_log:$dev: \[fake\] started as device $dev (luup.device $dev)" "$l" ||
			problems+=("no startup line of device $dev in the log")
		bad=$(grep -F '[fake]' "$l" | grep -F "device $dev" | grep -v "luup_log:$dev:" | head -3)
		[ -z "$bad" ] || problems+=("log lines of device $dev with another device: $bad")
	done
	grep -q "^01.*ERROR in handler lr_fake_fail_12 (fake_fail, device 12): .*deliberate failure" "$l" ||
		problems+=("the handler error is not in the log with its device")
	reqs=$(rep "$r" 0 host.requests)
	lines=$(grep -c $'^10\t.* http: #[0-9]* [A-Z]* /' "$l")
	[ "${reqs:-0}" -gt 10 ] && [ "$lines" -eq "${reqs:-0}" ] || problems+=("$reqs requests but $lines request lines in the log")
	if [ ${#problems[@]} -eq 0 ]; then
		ok "host ($mode): exit 0, call_delay/call_timer in their devices, request lines and the handler error logged"
	else
		notok "host ($mode): exit 0, call_delay/call_timer in their devices, request lines and the handler error logged" "${problems[@]}"
	fi
done

# ---------------------------------------------------------------- 2. echo server
srv=build/out/luuphost/echoserver
if [ ! -x "$srv" ] || [ -n "$(find tests/demo/echoserver -newer "$srv" -name '*.go' 2>/dev/null)" ]; then
	mkdir -p build/out/luuphost
	go build -o "$srv" ./tests/demo/echoserver || { notok "go build ./tests/demo/echoserver"; finish; }
fi
"$srv" -quiet -max-time 30m >"$tmp/echo.url" 2>"$tmp/echo.err" </dev/null &
pids+=($!)
for _ in $(seq 100); do [ -s "$tmp/echo.url" ] && break; sleep 0.05; done
url=$(head -1 "$tmp/echo.url")
[ -n "$url" ] || { notok "echo server starts" "$(cat "$tmp/echo.err")"; finish; }
export VWS_LUUPHOST_ECHO_URL=$url

# ---------------------------------------------------------------- 3. per variant
# check_run NAME SECONDS MODE: the TAP lines of one run of the two echo plugins.
check_run() {
	local name=$1 s=$2 mode=$3 r=$tmp/$1.report l=$tmp/$1.log o=$tmp/$1.out
	local label="$variant $mode"
	local problems=()
	local ran
	ran=$(rep "$r" 0 host.seconds)
	if [ "$rc" -eq 0 ] && grep -q '^luuphost: ran ' "$o" && awk -v a="${ran:-0}" -v b="$s" 'BEGIN { exit !(a >= b - 0.5) }'; then
		ok "$label: the host ran its ${s} s and exited 0"
	else
		notok "$label: the host ran its ${s} s and exited 0" "exit status $rc, ran ${ran:-?} s" "$(tail -5 "$o" 2>/dev/null)" "$(tail -20 "$tmp/$name.err" 2>/dev/null)"
	fi
	# The module registered its wake handler in each plugin's device.
	local devs
	devs=$(awk -F'\t' '$1 == 0 && $2 ~ /^handler\.lr_vws_/ { print $3 }' "$r" 2>/dev/null | sort -n | tr '\n' ' ')
	if [ "$devs" = "11 12 " ]; then
		ok "$label: lr_vws_* registered in devices 11 and 12 (the plugins' contexts)"
	else
		notok "$label: lr_vws_* registered in devices 11 and 12 (the plugins' contexts)" "registered in: ${devs:-none}" \
			"$(grep -E 'register_handler|unknown global' "$l" 2>/dev/null | head -5)"
	fi
	# the plugins pace themselves with call_delay/call_timer: on a loaded machine they fall
	# behind, so this only checks that they ran (half the nominal rate); what was sent must
	# all come back, in order, below
	local min=$(((s - 4) * rate / 2))
	for dev in 11 12; do
		local file tag sent recv bad missing
		file=$(rep "$r" $dev file)
		tag=$([ "$file" = plugin_names.lua ] && echo names || echo funcs)
		sent=$(rep "$r" $dev sent) recv=$(rep "$r" $dev received) bad=$(rep "$r" $dev bad) missing=$(rep "$r" $dev missing)
		problems=()
		[ "$(rep "$r" $dev open)" = 1 ] || problems+=("opened $(rep "$r" $dev open) times")
		[ -z "$(rep "$r" $dev errors)" ] || problems+=("$(rep "$r" $dev errors) connection errors: $(grep -F "[$tag] " "$l" | grep -E 'on_error|error:' | head -2)")
		[ "${sent:-0}" -ge "$min" ] || problems+=("sent ${sent:-0} < $min")
		[ -n "$sent" ] && [ "$sent" = "$recv" ] && [ "$bad" = 0 ] && [ "$missing" = 0 ] ||
			problems+=("sent ${sent:-?}, received ${recv:-?}, out of order/corrupted ${bad:-?}, missing ${missing:-?}: $(rep "$r" $dev first_bad)")
		[ "$(rep "$r" $dev send_fail)" = 0 ] || problems+=("ws.send failed $(rep "$r" $dev send_fail) times")
		[ "$(rep "$r" $dev closed)" = 1 ] || problems+=("close event after ws.close: $(rep "$r" $dev closed)")
		if [ ${#problems[@]} -eq 0 ]; then
			ok "$label: $file (device $dev): $sent messages echoed in order, byte-exact; open and close events"
		else
			notok "$label: $file (device $dev): messages echoed in order, byte-exact; open and close events" "${problems[@]}"
		fi
		problems=()
		[ "$(rep "$r" $dev ctx_bad)" = 0 ] || problems+=("$(rep "$r" $dev ctx_bad) handler calls in another device's context")
		[ "$(rep "$r" $dev wrong_wso)" = 0 ] || problems+=("$(rep "$r" $dev wrong_wso) handler calls with another wso")
		[ -z "$(rep "$r" $dev host_report_wrong_device)" ] || problems+=("host_report from another device's context")
		[ "$(rep "$r" $dev decoy)" = "" ] || [ "$(rep "$r" $dev decoy)" = 0 ] || problems+=("$(rep "$r" $dev decoy) calls of plugin_funcs' decoy globals")
		local lines wrong
		lines=$(grep -cF "[$tag] " "$l")
		wrong=$(grep -F "[$tag] " "$l" | grep -v "luup_log:$dev: " | head -3)
		[ -z "$wrong" ] || problems+=("log lines of [$tag] with another device: $wrong")
		grep -qE "luup_log:$dev: \[$tag\] (on_)?message: " "$l" || problems+=("no message-handler line of [$tag] in the log")
		if [ ${#problems[@]} -eq 0 ]; then
			ok "$label: $file (device $dev): every handler ran in its device; its $lines log lines carry luup_log:$dev"
		else
			notok "$label: $file (device $dev): every handler ran in its device; its log lines carry luup_log:$dev" "${problems[@]}"
		fi
	done
	problems=()
	local errs
	errs=$(grep -E $'^01\t' "$l" | head -5)
	[ -z "$errs" ] || problems+=("level-1 lines in the host log: $errs")
	! grep -qi 'error in handler' "$tmp/$name.err" || problems+=("stderr: $(grep -i 'error in handler' "$tmp/$name.err" | head -3)")
	[ "$(rep "$r" 0 host.handler_errors)" = 0 ] || problems+=("$(rep "$r" 0 host.handler_errors) request handlers raised")
	[ "$(rep "$r" 0 host.callback_errors)" = 0 ] || problems+=("$(rep "$r" 0 host.callback_errors) callbacks raised")
	local st
	st=$(awk -F'\t' '$1 == 0 && $2 ~ /^host\.status\./ && $2 != "host.status.200" { print $2 "=" $3 }' "$r" | tr '\n' ' ')
	[ -z "$st" ] || problems+=("answers other than 200: $st")
	local vws
	vws=$(rep "$r" 0 host.vws_requests)
	[ "${vws:-0}" -gt 0 ] || problems+=("no lr_vws_* request reached the host")
	if [ "$mode" = busy ]; then
		local pok
		pok=$(rep "$r" 0 host.poll_ok)
		# the internal client proves the host was busy; under a loaded machine its
		# ~20 polls/s slow down, so ask for a quarter of them, and no failure
		[ "${pok:-0}" -ge $((s * 5)) ] && [ "$(rep "$r" 0 host.poll_fail)" = 0 ] ||
			problems+=("internal client: ${pok:-0} answers (want >= $((s * 5))), $(rep "$r" 0 host.poll_fail) failed")
	fi
	if [ ${#problems[@]} -eq 0 ]; then
		ok "$label: no handler error, every answer 200, wakes reached the host"
	else
		notok "$label: no handler error, every answer 200, wakes reached the host" "${problems[@]}"
	fi
	# The engine's own lines (plugin_names turns on its CLIENT lines) go to luup.log, at
	# Luup level 50, in a plugin's device (the module writes them from its request handler).
	local el
	el=$(grep -cE $'^50\t.* luup_log:1[12]: verawebsockets: wsengine: .*(connecting to|established)' "$l")
	if [ "$el" -ge 2 ]; then
		ok "$label: the engine's CLIENT lines are in luup.log, in a plugin's device ($el lines)"
	else
		notok "$label: the engine's CLIENT lines are in luup.log, in a plugin's device" "$el lines" \
			"$(grep -F 'wsengine' "$l" | head -3)" "$(grep -F 'wsengine' "$tmp/$name.err" | head -3)"
	fi
	# The module's own account of its wakes: a wake it judged failed (stderr, and a
	# luup.log line at the next delivery) costs a reconnect and a back-off.
	local wf
	wf=$(grep -c 'Luup wake .* failed' "$tmp/$name.err")
	if [ "$wf" -eq 0 ] && ! grep -q 'wake request(s) to the Luup port failed' "$l"; then
		ok "$label: no wake failed (the module's stderr and luup.log)"
	else
		notok "$label: no wake failed (the module's stderr and luup.log)" "$wf failed wake(s):" \
			"$(grep 'Luup wake .* failed' "$tmp/$name.err" | sort | uniq -c | head -5)"
	fi
	# Figures
	local loops total
	loops=$(rep "$r" 0 host.loops)
	total=$(awk -v s="$ran" -v d=2 'BEGIN { printf "%.1f", s + d }')
	echo "# $label: host: $(rep "$r" 0 host.requests) requests ($(rep "$r" 0 host.vws_requests) lr_vws_* = $(awk -v a="${vws:-0}" -v t="$total" 'BEGIN { printf "%.1f", a / t }') module wakes/s, $(rep "$r" 0 host.conns) connections, $wf failed wakes), host loop wakes $(awk -v a="${loops:-0}" -v t="$total" 'BEGIN { printf "%.0f", a / t }')/s, slowest handler $(rep "$r" 0 host.max_handler_ms) ms$([ "$mode" = busy ] && echo ", busy ticks $(rep "$r" 0 host.busy_ticks), internal client $(rep "$r" 0 host.poll_ok) answers")"
	for dev in 11 12; do
		echo "# $label: device $dev $(rep "$r" $dev file) ($(rep "$r" $dev env) env): sent/received $(rep "$r" $dev sent)/$(rep "$r" $dev received), latency median $(rep "$r" $dev lat_median_ms) ms, p99 $(rep "$r" $dev lat_p99_ms) ms, max $(rep "$r" $dev lat_max_ms) ms"
	done
}

for variant in "$@"; do
	so_variant=$variant
	[ "$variant" = shim ] && so_variant=inproc
	out=build/out/amd64/$so_variant
	case $so_variant in inproc | oop) ;; *) notok "variant $variant (inproc|oop|shim)"; continue ;; esac
	if [ ! -f "$out/verawebsockets.so" ] || { [ "$so_variant" = oop ] && [ ! -x "$out/vws-helper" ]; }; then
		build/build.sh "$so_variant" amd64 >"$tmp/build.log" 2>&1 || { notok "build $so_variant" "$(tail -20 "$tmp/build.log")"; continue; }
	fi
	export LUA_CPATH="$root/$out/?.so;;"
	if [ "$variant" = shim ]; then
		export LUA_PATH="$root/$dir/shim/?.lua;;" LUUPHOST_SHIM_LUA="$lua_cmd" LUUPHOST_SHIM_PIDFILE="$tmp/wakers"
		export LUUPHOST_SHIM_MAX_SECONDS=$((secs + 30))
	else
		unset LUA_PATH LUUPHOST_SHIM_LUA LUUPHOST_SHIM_PIDFILE
	fi
	echo "# ---- $variant: $(basename "$lua_cmd"), $LUA_CPATH"

	# Probe: does the module register its wake handler from a plugin's environment?
	run_host "$variant-probe" 1 --drain 0.3 $dir/plugin_probe.lua
	pdev=$(awk -F'\t' '$1 == 0 && $2 ~ /^handler\.lr_vws_/ { print $3; exit }' "$tmp/$variant-probe.report" 2>/dev/null)
	if [ "$rc" -eq 0 ] && [ "$pdev" = 11 ] && [ "$(rep "$tmp/$variant-probe.report" 11 created)" = true ]; then
		ok "$variant: Luup-mode ws.create registers lr_vws_* in the plugin's device (11)$([ "$(rep "$tmp/$variant-probe.report" 11 shim)" = true ] && echo ' [shim]')"
	else
		notok "$variant: Luup-mode ws.create registers lr_vws_* in the plugin's device (11)" \
			"exit status $rc; registered in device: ${pdev:-none} (a module without Luup delivery over HTTP registers nothing)" \
			"$(grep -E 'register_handler|ERROR' "$tmp/$variant-probe.log" | head -5)" "$(tail -5 "$tmp/$variant-probe.err")"
		modes="idle busy"
		[ "$short" -gt 0 ] && modes="$modes close chunked"
		for m in $modes; do skipped "$variant $m: the echo plugins" "no wake handler registered"; done
		continue
	fi

	run_host "$variant-idle" "$secs" $dir/plugin_names.lua $dir/plugin_funcs.lua
	check_run "$variant-idle" "$secs" idle
	run_host "$variant-busy" "$secs" --busy $dir/plugin_names.lua $dir/plugin_funcs.lua
	check_run "$variant-busy" "$secs" busy
	if [ "$short" -gt 0 ]; then
		run_host "$variant-close" "$short" --close $dir/plugin_names.lua $dir/plugin_funcs.lua
		check_run "$variant-close" "$short" close
		run_host "$variant-chunked" "$short" --chunked $dir/plugin_names.lua $dir/plugin_funcs.lua
		check_run "$variant-chunked" "$short" chunked
	fi
done
finish

#!/usr/bin/env bash
# The LuaUPnP-like host (tests/host/): several lua_States on several pthreads, each
# with a luup table, Luup-mode connections, an idle host, jobs, in two modes:
#   luup  the host's own mutex per state; the module's events come as lr_ requests
#         to the host's port, run on the host's worker threads under that mutex
#   lock  vws_lua_lock around the host's Lua; events on the module's dispatcher
# First the host's request port alone (curl against a fake registered handler).
# TAP per run and a final "N passed, N failed" over all of them.
# Usage: build/test-host.sh [VARIANT...]   (inproc oop; default both), ARCH amd64.
# Env: HOST_MODES (default "luup lock"), HOST_STATES (default 4), HOST_TIMEOUT (s per
#      run, default 60), HOST_LUA: auto (default: the race-detecting Lua of
#      build/lua-race.sh when build/out/lua-race exists, else Debian's liblua5.1),
#      race (builds it if needed), debian, or both.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
[ $# -gt 0 ] || set -- inproc oop
build/deps.sh lua lua-dev >/dev/null || exit 1
mkdir -p build/out/host
case ${HOST_LUA:-auto} in
auto) if [ -d build/out/lua-race ]; then luas=race; else luas=debian; fi ;;
race | debian) luas=$HOST_LUA ;;
both) luas="race debian" ;;
*) echo "test-host.sh: HOST_LUA auto|race|debian|both" >&2; exit 2 ;;
esac
for lua in $luas; do
	case $lua in
	race)
		build/lua-race.sh || { echo "not ok - build/lua-race.sh failed"; echo "0 passed, 1 failed"; exit 1; }
		R=build/out/lua-race
		# -Wl,-E: the module's .so resolves the Lua API from this executable.
		gcc -O2 -Wall -Wextra -I$R/include tests/host/*.c -o build/out/host/vws-host-race \
			-Wl,-E $R/lib/liblua-race.a -lm -lpthread -ldl ;;
	debian)
		gcc -O2 -Wall -Wextra -I/usr/include/lua5.1 tests/host/*.c -o build/out/host/vws-host-debian \
			-llua5.1 -lpthread -ldl ;;
	esac || { echo "not ok - building the host ($lua Lua) failed"; echo "0 passed, 1 failed"; exit 1; }
done
go build -o build/out/host/echoserver ./tests/demo/echoserver || { echo "0 passed, 1 failed"; exit 1; }

tmp=$(mktemp -d)
srv= hold= http=
cleanup() {
	for p in $srv $hold $http; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
pass=0 fail=0
tap() { # tap OK DESC: a line of this script's own (the runs print their own)
	if [ "$1" = 1 ]; then pass=$((pass + 1)); echo "ok - $2"; else fail=$((fail + 1)); echo "not ok - $2"; fi
}

# ---- The request port alone: a fake plugin's handlers, called with curl.
host1=build/out/host/vws-host-${luas%% *}
echo "# ---- the host's request port ($host1 --http-test, curl)"
timeout -k 5 30 "$host1" --http-test 20 >"$tmp/http" 2>"$tmp/http.err" &
http=$!
for _ in $(seq 100); do grep -q '^port ' "$tmp/http" 2>/dev/null && break; sleep 0.05; done
hp=$(awk '/^port /{print $2; exit}' "$tmp/http")
if [ -z "$hp" ]; then
	tap 0 "the host's request port did not start"
else
	base=http://127.0.0.1:$hp/data_request
	out=$(curl -sS --max-time 5 -w '|%{http_code} %{num_connects}\n' "$base?id=lr_fake&x=1" "$base?id=lr_fake&x=a%20b+c&output_format=json" 2>&1)
	want=$'fake lr_fake n=1 x=1 fmt=nil device=7|200 1\nfake lr_fake n=2 x=a b c fmt=json device=7|200 0'
	tap "$([ "$out" = "$want" ] && echo 1)" "lr_fake twice on one kept-alive connection: parameters, output_format, luup.device ($(echo $out))"
	out=$(curl -sS --max-time 5 -w ' %{http_code}' "$base?id=lr_nosuch")
	tap "$([ "$out" = "No handler 404" ] && echo 1)" "an unregistered lr_ name: $out"
	out=$(curl -sS --max-time 5 -w ' %{http_code}' "$base?id=lr_fake_error")
	tap "$([[ $out == *"fake failure 500" ]] && echo 1)" "a handler that raises: $out"
	out=$(/usr/bin/python3 - "$hp" <<'PY' 2>&1
import socket, sys, time
p = int(sys.argv[1])
req = lambda k: ("GET /data_request?id=lr_fake&seq=%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                 "User-Agent: verawebsockets\r\n\r\n" % (k, p)).encode()
s = socket.create_connection(("127.0.0.1", p), timeout=3)
s.sendall(req(1) + req(2))  # the module's request format, two in one write
import re
buf, t = b"", time.time()
# read until both answers are whole (the second status line can come before its body)
while len(re.findall(rb"n=(\d+) x=nil", buf)) < 2 and time.time() - t < 3:
    d = s.recv(4096)
    if not d: break
    buf += d
ns = [int(n) for n in re.findall(rb"n=(\d+) x=nil", buf)]  # the fake handler counts its calls
print(buf.count(b"HTTP/1.1 200 OK"), buf.count(b"Content-Length: "), len(ns) == 2 and ns[1] == ns[0] + 1)
PY
)
	tap "$([ "$out" = "2 2 True" ] && echo 1)" "two requests in one write (the module's format) answered in order on one connection ($out)"
	out=$(curl -sS --max-time 5 -w ' %{http_code}' "$base?id=lr_stop")
	wait $http; rc=$? http=
	line=$(grep '^http-test:' "$tmp/http")
	tap "$([ $rc = 0 ] && [ "$out" = "stopping 200" ] && echo 1)" "host exit $rc: $line"
	grep -q '^lua-race:' "$tmp/http.err" && { tap 0 "lua-race in the request port test"; sed 's/^/# /' "$tmp/http.err" | head; }
fi

# ---- The plugin in several states.
build/out/host/echoserver -quiet -max-time 600s >"$tmp/url" 2>"$tmp/server.log" &
srv=$!
for _ in $(seq 100); do [ -s "$tmp/url" ] && break; sleep 0.05; done
url=$(head -1 "$tmp/url")
[ -n "$url" ] || { echo "echo server did not start"; echo "$pass passed, $((fail + 1)) failed"; exit 1; }
# A port nothing listens on: bound but not listening, held for the whole run so
# that no other program can take it (a connect to it is refused).
python3 -c 'import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1], flush=True); time.sleep(600)' >"$tmp/refused" &
hold=$!
for _ in $(seq 100); do [ -s "$tmp/refused" ] && break; sleep 0.05; done
refused=ws://127.0.0.1:$(head -1 "$tmp/refused")/

for v in "$@"; do
	dir=build/out/amd64/$v
	if [ ! -f "$dir/verawebsockets.so" ] || { [ "$v" = oop ] && [ ! -x "$dir/vws-helper" ]; }; then
		build/build.sh "$v" amd64 >/dev/null || { echo "not ok - build of $v failed"; fail=$((fail + 1)); continue; }
	fi
	for lua in $luas; do
		for mode in ${HOST_MODES:-luup lock}; do
			label="$v variant, $mode mode, $lua Lua"
			echo "# ---- LuaUPnP-like host, $label"
			log=$tmp/stderr.$v.$lua.$mode
			( ulimit -c 0; HOST_STDERR_LOG=$log timeout -k 5 "${HOST_TIMEOUT:-60}" \
				build/out/host/vws-host-$lua --mode=$mode "$dir" "$url" "$refused" "${HOST_STATES:-4}" >"$tmp/out" 2>&1 ) 2>/dev/null
			rc=$? # (the subshell keeps bash's "Aborted" off the output)
			cat "$tmp/out"
			grep -v -e '^verawebsockets: error in handler' -e '^stack traceback:' -e '^	' \
				-e 'luup_log:[0-9]*: verawebsockets: error in handler' "$log" | head -20 | sed 's/^/# stderr: /'
			line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$tmp/out" | tail -1)
			f=
			if [ -n "$line" ]; then
				read -r p _ f _ <<<"$line"
				pass=$((pass + p)) fail=$((fail + f))
			fi
			if grep -q '^lua-race:' "$log"; then
				tap 0 "$label: the race-detecting Lua aborted: $(grep -m1 '^lua-race: thread' "$log")"
			elif [ $rc -ne 0 ] && { [ -z "$line" ] || [ "${f:-0}" = 0 ]; }; then
				tap 0 "$label: host exited with status $rc$([ $rc = 124 ] && echo " (timeout)")$([ $rc -gt 128 ] && echo " (signal $((rc - 128)))")"
			fi
		done
	done
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

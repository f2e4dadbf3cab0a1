#!/usr/bin/env bash
# The LuaUPnP-like host (tests/host/host.c): several lua_States on several pthreads,
# Luup-mode connections, an idle host, jobs under vws_lua_lock. TAP per variant and a
# final "N passed, N failed" over all of them.
# Usage: build/test-host.sh [VARIANT...]   (inproc oop; default both), ARCH amd64.
# Env: HOST_STATES (default 4), HOST_TIMEOUT (s, default 60).
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
[ $# -gt 0 ] || set -- inproc oop
build/deps.sh lua lua-dev >/dev/null || exit 1
mkdir -p build/out/host
gcc -O2 -Wall -Wextra -I/usr/include/lua5.1 tests/host/host.c -o build/out/host/vws-host -llua5.1 -lpthread -ldl ||
	{ echo "0 passed, 1 failed"; exit 1; }
go build -o build/out/host/echoserver ./tests/demo/echoserver || { echo "0 passed, 1 failed"; exit 1; }

tmp=$(mktemp -d)
srv= hold=
cleanup() { [ -n "$srv" ] && kill "$srv" 2>/dev/null; [ -n "$hold" ] && kill "$hold" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
build/out/host/echoserver -quiet -max-time 300s >"$tmp/url" 2>"$tmp/server.log" &
srv=$!
for _ in $(seq 100); do [ -s "$tmp/url" ] && break; sleep 0.05; done
url=$(head -1 "$tmp/url")
[ -n "$url" ] || { echo "echo server did not start"; echo "0 passed, 1 failed"; exit 1; }
# A port nothing listens on: bound but not listening, held for the whole run so
# that no other program can take it (a connect to it is refused).
python3 -c 'import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1], flush=True); time.sleep(600)' >"$tmp/refused" &
hold=$!
for _ in $(seq 100); do [ -s "$tmp/refused" ] && break; sleep 0.05; done
refused=ws://127.0.0.1:$(head -1 "$tmp/refused")/

pass=0 fail=0
for v in "$@"; do
	dir=build/out/amd64/$v
	if [ ! -f "$dir/verawebsockets.so" ] || { [ "$v" = oop ] && [ ! -x "$dir/vws-helper" ]; }; then
		build/build.sh "$v" amd64 >/dev/null || { echo "not ok - build of $v failed"; fail=$((fail + 1)); continue; }
	fi
	echo "# ---- LuaUPnP-like host, $v variant"
	HOST_STDERR_LOG=$tmp/stderr.$v timeout -k 5 "${HOST_TIMEOUT:-60}" \
		build/out/host/vws-host "$dir" "$url" "$refused" "${HOST_STATES:-4}" >"$tmp/out.$v" 2>&1
	rc=$?
	cat "$tmp/out.$v"
	grep -v -e '^verawebsockets: error in handler' -e '^stack traceback:' -e '^	' "$tmp/stderr.$v" | head -20 | sed 's/^/# stderr: /'
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$tmp/out.$v" | tail -1)
	if [ -n "$line" ]; then
		read -r p _ f _ <<<"$line"
		pass=$((pass + p)) fail=$((fail + f))
	fi
	if [ $rc -ne 0 ] && { [ -z "$line" ] || [ "${f:-0}" = 0 ]; }; then
		echo "not ok - $v host exited with status $rc$([ $rc = 124 ] && echo " (timeout)")$([ $rc -gt 128 ] && echo " (signal $((rc - 128)))")"
		fail=$((fail + 1))
	fi
	line= f=
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

#!/usr/bin/env bash
# Self-test of the race-detecting Lua 5.1 (build/lua-race.sh, tests/race/): a thread
# that enters a lua_State while another runs Lua in it aborts the interpreter (and a
# C host linked with liblua-race.a); clean threaded use (entering only while the
# state's thread waits in C, or under a host's mutex) and Debian's LuaSocket work.
# Prints TAP and a final "N passed, N failed".
# Usage: build/test-race.sh   Env: RACE_TIMEOUT (s per case, default 30).
set -uo pipefail
cd "$(dirname "$0")/.."
ulimit -c 0
n=0 pass=0 fail=0
tap() { # tap OK DESC
	n=$((n + 1))
	if [ "$1" = 1 ]; then pass=$((pass + 1)); echo "ok $n - $2"; else fail=$((fail + 1)); echo "not ok $n - $2"; fi
}
finish() { echo "1..$n"; echo "$pass passed, $fail failed"; [ $fail -eq 0 ]; exit; }

build/deps.sh lua-socket >/dev/null 2>&1 || true
if build/lua-race.sh; then tap 1 "build/lua-race.sh built the race interpreter and liblua-race.a"
else tap 0 "build/lua-race.sh failed"; finish; fi
R=build/out/lua-race out=build/out/race
mkdir -p "$out"
if gcc -O2 -Wall -Wextra -fPIC -shared -I$R/include tests/race/racy.c -o $out/racy.so -pthread &&
	gcc -O2 -Wall -Wextra -I$R/include tests/race/host-race.c -o $out/host-race -Wl,-E $R/lib/liblua-race.a -lm -ldl -pthread
then tap 1 "racy.so and host-race built against build/out/lua-race"
else tap 0 "building racy.so or host-race failed"; finish; fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export LUA_CPATH="$out/?.so;;"
to=${RACE_TIMEOUT:-30}
msg='^lua-race: thread [0-9]+ entered a Lua state that thread [0-9]+ is in$'

# expect_abort DESC CMD...: a non-zero exit within the timeout, with the message.
expect_abort() {
	local desc=$1 rc t0 t1; shift
	t0=$(date +%s%3N)
	( timeout -k 5 "$to" "$@" >"$tmp/out" 2>"$tmp/err" ) 2>/dev/null; rc=$? # (no "Aborted" from bash)
	t1=$(date +%s%3N)
	local line; line=$(grep -E "$msg" "$tmp/err" | head -1)
	if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ -n "$line" ]; then
		tap 1 "$desc: aborted (status $rc, $((t1 - t0)) ms): $line"
	else
		tap 0 "$desc: status $rc$([ $rc = 124 ] && echo ' (timeout)'), no abort message"
		sed 's/^/# /' "$tmp/out" "$tmp/err" | head -10
	fi
}
# expect_clean DESC CMD...: exit 0, no lua-race line; the command's own TAP lines count too.
expect_clean() {
	local desc=$1 rc; shift
	( timeout -k 5 "$to" "$@" >"$tmp/out" 2>"$tmp/err" ) 2>/dev/null; rc=$? # (no "Aborted" from bash)
	while IFS= read -r l; do
		case $l in "ok - "*) tap 1 "${l#ok - }" ;; "not ok - "*) tap 0 "${l#not ok - }" ;; *) echo "# $l" ;; esac
	done <"$tmp/out"
	if [ $rc -eq 0 ] && ! grep -q '^lua-race:' "$tmp/err"; then
		tap 1 "$desc: exited 0, no race reported"
	else
		tap 0 "$desc: status $rc$([ $rc = 124 ] && echo ' (timeout)')"
		sed 's/^/# stderr: /' "$tmp/err" | head -10
	fi
}

echo "# ---- races must abort"
expect_abort "a thread pushes into the state while the script runs Lua" $R/bin/lua5.1 tests/race/race.lua push
expect_abort "a thread lua_pcalls into the state while the script runs Lua" $R/bin/lua5.1 tests/race/race.lua pcall
expect_abort "a C host on liblua-race.a: two threads run chunks in one state at once" $out/host-race race
echo "# ---- clean threaded use must not"
expect_clean "clean.lua (threads enter while the script waits in C; lua_close runs __gc)" $R/bin/lua5.1 tests/race/clean.lua
expect_clean "a C host on liblua-race.a: the same threads under the host's mutex, LuaSocket loaded" $out/host-race serial
echo "# ---- Debian's LuaSocket"
expect_clean "socket.lua" $R/bin/lua5.1 tests/race/socket.lua
finish

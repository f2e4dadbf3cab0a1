#!/usr/bin/env bash
# The Luup-mode Lua suites on the race-detecting lua5.1 (build/lua-race.sh): it aborts
# when a second thread enters a Lua state another thread is in, so a thread of the
# module running Lua on its own fails the run. Both variants; one closing
# "N passed, N failed" line over all of them.
set -uo pipefail
cd "$(dirname "$0")/.."
build/lua-race.sh >/dev/null || { echo "test-lua-race.sh: cannot build the race-detecting Lua"; echo "0 passed, 1 failed"; exit 1; }
lua=$PWD/build/out/lua-race/bin/lua5.1
pass=0 fail=0
for v in inproc oop; do
	out=$(LUA=$lua VWS_TEST_TIME_FACTOR=${VWS_TEST_TIME_FACTOR:-1} VWS_TESTS="${VWS_RACE_TESTS:-tests/test-luup.lua tests/test-server.lua tests/test-server-peers.lua}" \
		build/test-lua.sh "$v" amd64 2>&1)
	rc=$?
	echo "$out" | grep -v '^ok '
	line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)
	p=$(echo "$line" | cut -d' ' -f1) f=$(echo "$line" | cut -d' ' -f3 | tr -d ,)
	pass=$((pass + ${p:-0})) fail=$((fail + ${f:-1}))
	[ $rc -ne 0 ] && [ "${f:-0}" = 0 ] && fail=$((fail + 1))
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

#!/usr/bin/env bash
# The Lua suite (build/test-lua.sh) on Lua 5.2, 5.3 and 5.4, in process: each version's
# module freshly built from the one binding source (build/build.sh inproc amd64 5.x, against
# Debian's liblua5.x-dev headers) and run by Debian's lua5.x. (5.1 and LuaJIT run in their
# own parts of make test.) Prints each version's results and a closing "N passed, N failed"
# over all of them (skips are listed per version, not counted as failures).
# Usage: build/test-lua-versions.sh [VERSION...]   (default: 5.2 5.3 5.4)
#   Env: VWS_TESTS (a subset of test files, as for build/test-lua.sh)
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
[ $# -gt 0 ] || set -- 5.2 5.3 5.4
build/deps.sh lua5x >/dev/null || { echo "test-lua-versions.sh: build/deps.sh lua5x failed"; echo "0 passed, 1 failed"; exit 1; }
pass=0 fail=0 summary=()
for v in "$@"; do
	echo "=== Lua $v (in process)"
	if ! build/build.sh inproc amd64 "$v" >/dev/null; then
		echo "not ok - build/build.sh inproc amd64 $v failed"
		fail=$((fail + 1)) summary+=("lua$v: build FAILED")
		continue
	fi
	out=$(build/test-lua.sh inproc amd64 "$v" 2>&1)
	rc=$?
	echo "$out" | grep -v '^ok '
	line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)
	p=$(echo "$line" | cut -d' ' -f1) f=$(echo "$line" | cut -d' ' -f3 | tr -d ,)
	pass=$((pass + ${p:-0})) fail=$((fail + ${f:-1}))
	[ $rc -ne 0 ] && [ "${f:-0}" = 0 ] && fail=$((fail + 1))
	summary+=("lua$v: ${line:-no summary (status $rc)}")
done
echo "=== Lua versions"
printf '%s\n' "${summary[@]}"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

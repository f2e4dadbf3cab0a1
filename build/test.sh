#!/usr/bin/env bash
# make test: every suite, each printing its runner's summary line.
# Each part is a script owned by its suite; a failing part fails the run,
# but every part runs so the summary shows everything.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
build/deps.sh lua luajit lua-dev lua5x luarocks peers proxy || exit 1
fail=0
part() { # part NAME CMD...
	echo "=== $1"
	shift
	if ! "$@"; then echo "=== FAILED: $*"; fail=1; fi
}
# Both native variants, fresh: every part below tests these builds.
build/build.sh inproc amd64 >/dev/null && build/build.sh oop amd64 >/dev/null || { echo "=== build FAILED"; exit 1; }
part "lint (gofmt, go vet, staticcheck, C -Werror)" build/lint.sh
part "wiki demo (make demo)" build/demo.sh
part "go test -race" build/test-go.sh
part "lua suite, in-process variant" build/test-lua.sh inproc amd64
part "lua suite, out-of-process variant" build/test-lua.sh oop amd64
part "lua suite, in-process variant under LuaJIT" env LUA=luajit VWS_TEST_TIME_FACTOR=1 build/test-lua.sh inproc amd64
part "lua suite, in-process variant on Lua 5.2, 5.3, 5.4 (one binding source)" build/test-lua-versions.sh
part "install: luarocks make, make install/uninstall, make dist's tarball" build/test-install.sh
# Strict: every case OK (NON-STRICT, a message's echo missing before a failure, fails).
part "conformance (RFC 6455, Autobahn-style cases, client and server role), in-process variant" \
	env VWS_CONFORMANCE_STRICT=1 build/test-conformance.sh inproc amd64
part "conformance (RFC 6455, Autobahn-style cases, client and server role), out-of-process variant" \
	env VWS_CONFORMANCE_STRICT=1 build/test-conformance.sh oop amd64
part "race-detecting Lua (self-test)" build/test-race.sh
part "LuaUPnP-like host (luup and lock modes, race-detecting Lua)" build/test-host.sh
part "Luup suite on the race-detecting Lua, both variants" build/test-lua-race.sh
part "pure-Lua Luup host (openLuup-like): two plugins, idle and busy, both variants" build/test-luuphost.sh
part "pure-Lua Luup host on the race-detecting Lua, both variants" \
	env LUA="$PWD/build/out/lua-race/bin/lua5.1" LUUPHOST_SECONDS=10 LUUPHOST_SHORT_SECONDS=0 build/test-luuphost.sh
part "docs coverage" build/test-docs.sh
if [ -z "${VWS_SKIP_CROSS:-}" ]; then
	part "lua suite under qemu (mipsel, armel)" build/test-cross.sh mipsel armel
fi
[ $fail -eq 0 ] && echo "=== make test: all parts passed" || echo "=== make test: some parts FAILED"
exit $fail

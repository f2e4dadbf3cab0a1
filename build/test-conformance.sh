#!/usr/bin/env bash
# RFC 6455 conformance: the raw-frame server of tests/conformance plays every
# case (named after Autobahn|Testsuite's) against tests/conformance/client.lua
# running in real Lua with a built variant of verawebsockets.so.
#   build/test-conformance.sh [VARIANT [ARCH]]   (default: inproc amd64)
# Env: LUA (interpreter command, default lua5.1; may be "qemu-mipsel -L ... lua5.1"),
#      VWS_CONF_RUN / VWS_CONF_SKIP (regexps: only / not these case IDs), VWS_CONF_TRACE=1 (per-case lines on stderr),
#      VWS_CONF_DIR (directory of the .so to test instead of build/out/ARCH/VARIANT),
#      VWS_TEST_TIME_FACTOR (stretches the judge's deadlines, e.g. 4 for an emulated client).
# Prints the server's per-case table and a closing line "N passed, N failed";
# exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
variant=${1:-inproc} arch=${2:-amd64}
lua=${LUA:-lua5.1}
dir=${VWS_CONF_DIR:-build/out/$arch/$variant}
if [ ! -f "$dir/verawebsockets.so" ]; then
	build/build.sh "$variant" "$arch" >&2 || { echo "test-conformance: build of $variant $arch failed" >&2; exit 1; }
fi
tmp=$(mktemp -d)
spid=
cleanup() {
	[ -n "$spid" ] && kill "$spid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# the server runs on this machine, whatever ARCH the client is; first check
# that its judge fails what it must (a deliberately broken mini client)
export GOARCH= GOARM= GOMIPS= CGO_ENABLED=0
go test -count=1 ./tests/conformance/ >&2 || { echo "test-conformance: the judge's own tests failed" >&2; exit 1; }
go build -o "$tmp/conformance" ./tests/conformance || exit 1
"$tmp/conformance" -port-file "$tmp/port" -timeout "${VWS_CONF_TIMEOUT:-170s}" ${VWS_CONF_RUN:+-run "$VWS_CONF_RUN"} ${VWS_CONF_SKIP:+-skip "$VWS_CONF_SKIP"} &
spid=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
[ -s "$tmp/port" ] || { echo "test-conformance: server did not start" >&2; exit 1; }
port=$(cat "$tmp/port")
LUA_CPATH="$dir/?.so;;" VWS_CONF_URL="ws://127.0.0.1:$port" timeout -k 5 175 $lua tests/conformance/client.lua
lrc=$?
[ $lrc -eq 0 ] || echo "test-conformance: the Lua client exited with status $lrc" >&2
# After /report the server prints the table and exits; if the client never
# got there, SIGTERM makes it print the table (unrun cases fail) and exit.
for _ in $(seq 50); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
kill -TERM "$spid" 2>/dev/null
wait "$spid"
src=$?
spid=
[ $src -eq 0 ] && [ $lrc -eq 0 ]

#!/usr/bin/env bash
# make demo: the wiki's example script (tests/demo/example.lua) through the real module
# against a local echo server (tests/demo/echoserver, 127.0.0.1, ephemeral port) that
# closes the connection after the second echo. Exits 0 only if the expected lines appear.
#
# Usage: build/demo.sh [--plain] [VARIANT ARCH]
#   default: ./verawebsockets.so over wss:// with a client certificate (as in the wiki);
#   --plain: ws:// and no SSL settings;
#   VARIANT ARCH: use build/out/ARCH/VARIANT/ instead of ./verawebsockets.so.
# Env: LUA (interpreter command, default lua5.1; e.g. "qemu-arm -L build/sysroot/armel
#   build/sysroot/armel/usr/bin/lua5.1"), VWS_HELPER_WRAPPER (oop), DEMO_TIMEOUT (s, default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
plain=
[ "${1:-}" = --plain ] && { plain=1; shift; }
if [ $# -ge 2 ]; then
	dir=build/out/$2/$1
	[ -f "$dir/verawebsockets.so" ] || { echo "demo: $dir/verawebsockets.so missing (build/build.sh $1 $2)" >&2; exit 1; }
	export LUA_CPATH="$dir/?.so"
else
	[ -f verawebsockets.so ] || { echo "demo: ./verawebsockets.so missing (make build)" >&2; exit 1; }
	export LUA_CPATH="./?.so"
fi
lua=${LUA:-lua5.1}
timeout=${DEMO_TIMEOUT:-30}

mkdir -p build/out/host
go build -o build/out/host/echoserver ./tests/demo/echoserver
tmp=$(mktemp -d)
srv=
cleanup() { [ -n "$srv" ] && kill "$srv" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
tlsargs=()
[ -z "$plain" ] && tlsargs=(-tls-dir "$tmp/certs")
build/out/host/echoserver -close-after 2 -max-time "$((timeout + 10))s" "${tlsargs[@]}" >"$tmp/url" 2>"$tmp/server.log" &
srv=$!
for _ in $(seq 100); do [ -s "$tmp/url" ] && break; sleep 0.05; done
url=$(head -1 "$tmp/url")
[ -n "$url" ] || { echo "demo: echo server did not start"; cat "$tmp/server.log"; exit 1; }
args=("$url")
[ -z "$plain" ] && args+=("$tmp/certs")

echo "demo: server $url; LUA_CPATH=$LUA_CPATH; running: $lua tests/demo/example.lua ${args[*]}"
echo "----"
rc=0
# shellcheck disable=SC2086
timeout -k 5 "$timeout" $lua tests/demo/example.lua "${args[@]}" >"$tmp/out" 2>&1 || rc=$?
cat "$tmp/out"
echo "----"
sed 's/^/server: /' "$tmp/server.log"
[ $rc -eq 124 ] && echo "demo: TIMEOUT after ${timeout}s"
expected=(
	"Connection successful, send message: Hello world!"
	"Received message: Hello world!"
	"Received message: Hello again!"
	"Connection closed"
)
# The expected lines must appear in this order.
ok=1 rest=$(cat "$tmp/out")
for line in "${expected[@]}"; do
	if grep -qxF "$line" <<<"$rest"; then
		rest=$(sed -n "/^$(sed 's/[][\.*^$/]/\\&/g' <<<"$line")\$/,\$p" <<<"$rest" | tail -n +2)
	else
		echo "demo: missing (in order): $line"
		ok=0
	fi
done
if [ $ok = 1 ] && [ $rc = 0 ]; then
	echo "demo: OK (lua exit 0, all ${#expected[@]} expected lines in order)"
	exit 0
fi
echo "demo: FAILED (lua exit $rc)"
exit 1

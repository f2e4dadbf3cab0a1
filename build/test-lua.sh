#!/usr/bin/env bash
# The Lua suite (tests/test-*.lua) against one built variant.
#   build/test-lua.sh [VARIANT [ARCH [LUAVER]]]    VARIANT inproc|oop (default inproc), ARCH default amd64,
#   LUAVER 5.1 (default), 5.2, 5.3 or 5.4: the build of build/build.sh VARIANT ARCH LUAVER,
#   run by lua$LUAVER (build/deps.sh lua5x installs 5.2..5.4)
# Env:
#   LUA          interpreter command (default lua$LUAVER), e.g. for the cross tests
#                LUA="qemu-mipsel -cpu 24KEc -L build/sysroot/mipsel build/sysroot/mipsel/usr/bin/lua5.1"
#   VWS_TESTS    space separated subset of test files (default: every tests/test-*.lua)
#   VWS_FILE_TIMEOUT  seconds per file (default 120)
#   VWS_TEST_TIME_FACTOR  multiplies every bounded wait in the tests (default 1; 4 when LUA is set)
# Starts the Go test server (tests/server), the independent peers (Python websockets,
# Node ws from tests/peers, libwebsockets-test-server) and tinyproxy on 127.0.0.1 with ephemeral ports, exports their
# addresses as VWS_TEST_*, runs each file with LUA_CPATH=build/out/ARCH/VARIANT[-LUAVER]/?.so,
# kills every server on exit, prints per-file results and a closing "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export PATH=/usr/local/go/bin:$PATH
variant=${1:-inproc} arch=${2:-amd64} luaver=${3:-5.1}
case $luaver in
5.1) out=build/out/$arch/$variant ;;
5.2 | 5.3 | 5.4) out=build/out/$arch/$variant-$luaver; build/deps.sh lua5x || exit 1 ;;
*) echo "test-lua.sh: LUAVER 5.1, 5.2, 5.3 or 5.4, not '$luaver'"; echo "0 passed, 1 failed"; exit 1 ;;
esac
lua_cmd=${LUA:-lua$luaver}

if [ ! -f "$out/verawebsockets.so" ] || { [ "$variant" = oop ] && [ ! -f "$out/vws-helper" ]; }; then
	build/build.sh "$variant" "$arch" "$luaver" || { echo "test-lua.sh: build of $variant $arch (Lua $luaver) failed"; echo "0 passed, 1 failed"; exit 1; }
fi

# luasocket for the event_fd readability test (optional: the test skips without it).
if [ -z "${LUA:-}" ] && ! lua5.1 -e 'require "socket"' 2>/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=120 --no-install-recommends lua-socket >/dev/null 2>&1 ||
		echo "test-lua.sh: lua-socket not installed (event_fd test will skip)" >&2
fi
# copas (Debian lua-copas) for the lua-websockets compatible copas client and server (test-compat.lua skips those without it).
if [ -z "${LUA:-}" ] && ! lua5.1 -e 'require "copas"' 2>/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
	build/deps.sh lua-copas >/dev/null 2>&1 || echo "test-lua.sh: lua-copas not installed (copas compat tests will skip)" >&2
fi

tmp=$(mktemp -d /tmp/vws-test-lua.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# waitfor FILE: until FILE has a READY=1 line (10 s)
waitfor() {
	for _ in $(seq 1 200); do
		grep -q '^READY=1' "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}
# exportkv FILE: KEY=VALUE lines -> export VWS_TEST_KEY=VALUE
exportkv() {
	while IFS='=' read -r k v; do
		[[ $k =~ ^[A-Z_][A-Z0-9_]*$ ]] && [ "$k" != READY ] && export "VWS_TEST_$k=$v"
	done <"$1"
}

# The peers read stdin only to notice EOF: give them a FIFO that never ends.
mkfifo "$tmp/hold"
exec 9<>"$tmp/hold"

# 1. Go test server (built for this machine once, rebuilt when its sources change)
srv=build/out/testserver
if [ ! -x "$srv" ] || [ -n "$(find tests/server -newer "$srv" -name '*.go' 2>/dev/null)" ]; then
	mkdir -p build/out
	go build -o "$srv" ./tests/server || { echo "test-lua.sh: cannot build tests/server"; echo "0 passed, 1 failed"; exit 1; }
fi
mkdir -p "$tmp/certs"
"$srv" -dir "$tmp/certs" -max-time 10m >"$tmp/server.env" 2>"$tmp/server.log" <&9 &
pids+=($!)
waitfor "$tmp/server.env" || { echo "test-lua.sh: test server did not start:"; cat "$tmp/server.log"; echo "0 passed, 1 failed"; exit 1; }
exportkv "$tmp/server.env"

# 2. Python websockets echo peer
if /usr/bin/python3 -c 'import websockets' 2>/dev/null; then
	/usr/bin/python3 tests/peers/echo.py >"$tmp/py.env" 2>"$tmp/py.log" <&9 &
	pids+=($!)
	if waitfor "$tmp/py.env"; then exportkv "$tmp/py.env"; else echo "test-lua.sh: python peer did not start" >&2; cat "$tmp/py.log" >&2; fi
else
	echo "test-lua.sh: python3-websockets missing (build/deps.sh peers); its tests skip" >&2
fi

# 3. Node ws echo peer
if command -v node >/dev/null && [ ! -d tests/peers/node_modules/ws ] && command -v npm >/dev/null; then
	(cd tests/peers && timeout 120 npm install --no-audit --no-fund --silent >/dev/null 2>&1) ||
		echo "test-lua.sh: npm install ws failed; node tests skip" >&2
fi
if command -v node >/dev/null && [ -d tests/peers/node_modules/ws ]; then
	node tests/peers/echo.js >"$tmp/node.env" 2>"$tmp/node.log" <&9 &
	pids+=($!)
	if waitfor "$tmp/node.env"; then exportkv "$tmp/node.env"; else echo "test-lua.sh: node peer did not start" >&2; cat "$tmp/node.log" >&2; fi
fi

# 4. tinyproxy (Debian), configured in the temp dir, on the port the server left free
if command -v tinyproxy >/dev/null; then
	cat >"$tmp/tinyproxy.conf" <<EOF
Port $VWS_TEST_FREE_PORT
Listen 127.0.0.1
Timeout 60
MaxClients 50
Allow 127.0.0.1
LogLevel Connect
PidFile "$tmp/tinyproxy.pid"
LogFile "$tmp/tinyproxy.log"
EOF
	tinyproxy -d -c "$tmp/tinyproxy.conf" >/dev/null 2>&1 <&9 &
	pids+=($!)
	for _ in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$VWS_TEST_FREE_PORT") 2>/dev/null && break
		sleep 0.05
	done
	if (exec 3<>"/dev/tcp/127.0.0.1/$VWS_TEST_FREE_PORT") 2>/dev/null; then
		export VWS_TEST_TINYPROXY_PORT=$VWS_TEST_FREE_PORT VWS_TEST_TINYPROXY_LOG=$tmp/tinyproxy.log
	else
		echo "test-lua.sh: tinyproxy did not start; its test skips" >&2
	fi
fi

# 5. libwebsockets-test-server (Debian; optional): lws-mirror-protocol and dumb-increment-protocol
if command -v libwebsockets-test-server >/dev/null; then
	(cd "$tmp" && exec libwebsockets-test-server --port="$VWS_TEST_FREE_PORT2" -i lo) >"$tmp/lws.log" 2>&1 <&9 &
	pids+=($!)
	for _ in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$VWS_TEST_FREE_PORT2") 2>/dev/null && { export VWS_TEST_LWS_PORT=$VWS_TEST_FREE_PORT2; break; }
		sleep 0.05
	done
	[ -n "${VWS_TEST_LWS_PORT:-}" ] || echo "test-lua.sh: libwebsockets-test-server did not start; its tests skip" >&2
fi

export LUA_CPATH="$root/$out/?.so;;"
export LUA_PATH="$root/tests/lib/?.lua;$root/lua/?.lua;$root/lua/?/init.lua;;"
export VWS_TEST_LUA="$lua_cmd" VWS_TEST_VARIANT=$variant VWS_TEST_ARCH=$arch
# Emulated interpreters are slower: stretch every bounded wait (tests/lib/tap.lua).
[ -n "${LUA:-}" ] && export VWS_TEST_TIME_FACTOR=${VWS_TEST_TIME_FACTOR:-4}

files=${VWS_TESTS:-$(ls tests/test-*.lua)}
tp=0 tf=0 ts=0
summary=()
for f in $files; do
	[ -f "$f" ] || f=tests/$f
	name=$(basename "$f")
	echo "### $name ($variant $arch)"
	start=$(date +%s)
	timeout -k 5 "${VWS_FILE_TIMEOUT:-120}" $lua_cmd "$f" 2>&1 | tee "$tmp/out.txt"
	rc=${PIPESTATUS[0]}
	secs=$(($(date +%s) - start))
	last=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$tmp/out.txt" | tail -1)
	if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)?$ ]]; then
		p=${BASH_REMATCH[1]} fl=${BASH_REMATCH[2]} s=${BASH_REMATCH[4]:-0}
		if [ "$rc" -ne 0 ] && [ "$fl" -eq 0 ]; then fl=1; echo "not ok - $name exited with status $rc"; fi
	else
		p=$(grep -c '^ok ' "$tmp/out.txt") fl=$(($(grep -c '^not ok ' "$tmp/out.txt") + 1)) s=0
		echo "not ok - $name did not finish (exit status $rc$([ "$rc" = 124 ] && echo ', timeout'))"
	fi
	tp=$((tp + p)) tf=$((tf + fl)) ts=$((ts + s))
	summary+=("$(printf '%-22s %4d passed %4d failed %4d skipped %4ds' "$name" "$p" "$fl" "$s" "$secs")")
done

echo "### results ($variant $arch, $lua_cmd)"
printf '%s\n' "${summary[@]}"
line="$tp passed, $tf failed"
[ "$ts" -gt 0 ] && line="$line, $ts skipped"
echo "$line"
[ "$tf" -eq 0 ]

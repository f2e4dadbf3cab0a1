#!/usr/bin/env bash
# RFC 6455 conformance of both roles, with cases named after Autobahn|Testsuite's:
#  1. client role: the raw-frame server of tests/conformance plays every case
#     against tests/conformance/client.lua;
#  2. server role: tests/conformance (-role server) runs tests/conformance/server.lua
#     (ws.listen echo servers) and plays every case as a raw-frame client that masks.
# Both run in real Lua with a built variant of verawebsockets.so.
#   build/test-conformance.sh [VARIANT [ARCH]]   (default: inproc amd64)
# Env: LUA (interpreter command, default lua5.1; may be "qemu-mipsel -L ... lua5.1"),
#      VWS_CONF_RUN / VWS_CONF_SKIP (regexps: only / not these case IDs), VWS_CONF_TRACE=1 (per-case lines on stderr),
#      VWS_CONF_DIR (directory of the .so to test instead of build/out/ARCH/VARIANT),
#      VWS_CONF_ROLES ("client server" by default; one of them to run only that suite),
#      VWS_CONFORMANCE_STRICT=1 (NON-STRICT fails the run; by default it passes, as in Autobahn),
#      VWS_TEST_TIME_FACTOR (stretches the judge's deadlines, e.g. 4 for an emulated peer).
# Prints each suite's per-case table, per-group counts and closing line "N passed, N failed",
# then the two suites' total as "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
variant=${1:-inproc} arch=${2:-amd64}
lua=${LUA:-lua5.1}
dir=${VWS_CONF_DIR:-build/out/$arch/$variant}
roles=${VWS_CONF_ROLES:-client server}
if [ ! -f "$dir/verawebsockets.so" ] || { [ "$variant" = oop ] && [ ! -f "$dir/vws-helper" ]; }; then
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
# the judge runs on this machine, whatever ARCH the peer is; first check
# that it fails what it must (deliberately broken mini clients and servers)
export GOARCH= GOARM= GOMIPS= CGO_ENABLED=0
go test -count=1 ./tests/conformance/ >&2 || { echo "test-conformance: the judge's own tests failed" >&2; exit 1; }
go build -o "$tmp/conformance" ./tests/conformance || exit 1
flags=(${VWS_CONF_RUN:+-run "$VWS_CONF_RUN"} ${VWS_CONF_SKIP:+-skip "$VWS_CONF_SKIP"})
tp=0 tf=0 status=0
total() { # total FILE: adds the file's closing line to the totals
	local last
	last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$1" | tail -1)
	if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
		tp=$((tp + BASH_REMATCH[1])) tf=$((tf + BASH_REMATCH[2]))
	else
		tf=$((tf + 1))
	fi
}

for role in $roles; do
	echo "### conformance, $role role ($variant $arch)"
	case $role in
	client)
		"$tmp/conformance" -port-file "$tmp/port" -timeout "${VWS_CONF_TIMEOUT:-170s}" "${flags[@]}" >"$tmp/client.txt" &
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
		cat "$tmp/client.txt"
		total "$tmp/client.txt"
		[ $src -eq 0 ] && [ $lrc -eq 0 ] || status=1
		;;
	server)
		# The driver starts the Lua server itself (and kills it with itself).
		timeout -k 5 "${VWS_CONF_SERVER_TIMEOUT:-240}" "$tmp/conformance" -role server -lua "$lua" -so "$dir" \
			-timeout "${VWS_CONF_TIMEOUT:-230s}" "${flags[@]}" >"$tmp/server.txt"
		src=$?
		cat "$tmp/server.txt"
		total "$tmp/server.txt"
		[ $src -eq 0 ] || { echo "test-conformance: the server-role run exited with status $src" >&2; status=1; }
		;;
	*) echo "test-conformance: unknown role $role (client or server)" >&2; exit 2 ;;
	esac
done
echo "### conformance total ($variant $arch: $roles)"
echo "$tp passed, $tf failed"
[ $status -eq 0 ] && [ $tf -eq 0 ]

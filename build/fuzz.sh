#!/bin/sh
# build/fuzz.sh [DURATION] - runs each native fuzz target (wsengine, internal/wire) for
# DURATION (go test -fuzztime syntax: 30s, 2m, 10000x; default 10s) and prints
# how many inputs each one ran. Fails if any target finds a crasher.
set -eu
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
DURATION=${1:-10s}
status=0
for spec in wsengine:FuzzFrameHeader wsengine:FuzzClosePayload wsengine:FuzzHandshakeResponse wsengine:FuzzUTF8 internal/wire:FuzzDecode; do
	pkg=${spec%%:*} target=${spec#*:}
	log=$(mktemp)
	if CGO_ENABLED=0 go test -run='^$' -fuzz="^${target}\$" -fuzztime="$DURATION" -parallel=2 "./$pkg" >"$log" 2>&1; then
		result=ok
	else
		result=FAIL
		status=1
	fi
	# The last progress line looks like: "fuzz: elapsed: 10s, execs: 123456 (12345/sec), new interesting: 3 (total: 40)"
	execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	interesting=$(grep -o 'total: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	printf '%-24s %-4s execs=%s corpus=%s\n' "$target" "$result" "${execs:-?}" "${interesting:-?}"
	if [ "$result" = FAIL ]; then
		tail -30 "$log"
	fi
	rm -f "$log"
done
exit $status

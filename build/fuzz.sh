#!/bin/sh
# build/fuzz.sh [BUDGET] - runs each native fuzz target (wsengine, internal/wire) and prints
# how many inputs each one ran. Fails if any target finds a crasher.
#
# BUDGET is "quick" (the default, used by make test): a fixed number of inputs per target,
# sized to a few seconds each on the development machine. Or any go test -fuzztime value
# (30s, 2m, 100000x) applied to every target, for longer runs by hand.
#
# make test uses input counts, not durations: a duration -fuzztime is a context deadline in
# Go's fuzz coordinator, and go1.26 can report that deadline as a failure
# ("context deadline exceeded", no crasher written) when a loaded machine stops a worker
# late (go.dev/issue/75804, fixed in Go 1.27). A count budget has no deadline. For duration
# runs, a bare deadline report with no new input in testdata/fuzz is printed as "race", not
# failed; any written crasher or other failure still fails.
set -eu
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
BUDGET=${1:-quick}
status=0
for spec in wsengine:FuzzFrameHeader:60000x wsengine:FuzzClosePayload:60000x \
	wsengine:FuzzHandshakeResponse:60000x wsengine:FuzzUTF8:20000x internal/wire:FuzzDecode:200000x; do
	pkg=${spec%%:*} rest=${spec#*:}
	target=${rest%%:*} quick=${rest#*:}
	fuzztime=$BUDGET
	[ "$BUDGET" = quick ] && fuzztime=$quick
	corpus="$pkg/testdata/fuzz/$target"
	before=$(ls "$corpus" 2>/dev/null | wc -l)
	log=$(mktemp)
	if CGO_ENABLED=0 go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" -parallel=2 "./$pkg" >"$log" 2>&1; then
		result=ok
	else
		result=FAIL
		after=$(ls "$corpus" 2>/dev/null | wc -l)
		if [ "$after" = "$before" ] && grep -q '^    context deadline exceeded$' "$log" &&
			! grep -q -e 'Failing input written' -e '^panic' "$log"; then
			result=race
		else
			status=1
		fi
	fi
	# The last progress line looks like: "fuzz: elapsed: 10s, execs: 123456 (12345/sec), new interesting: 3 (total: 40)"
	execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	interesting=$(grep -o 'total: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	printf '%-24s %-4s execs=%s corpus=%s budget=%s\n' "$target" "$result" "${execs:-?}" "${interesting:-?}" "$fuzztime"
	if [ "$result" != ok ]; then
		tail -30 "$log"
	fi
	rm -f "$log"
done
exit $status

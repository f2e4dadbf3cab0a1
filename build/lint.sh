#!/usr/bin/env bash
# make lint: gofmt, go vet, staticcheck (built once into build/out/tools), and the C of
# the binding, the proxy and the test hosts with -Wall -Wextra -Werror.
# Prints one line per check and "N passed, N failed"; exits non-zero on any finding.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
build/lua-headers.sh >/dev/null || exit 1
pass=0 fail=0
check() { # check NAME CMD...: passes when CMD succeeds and prints nothing
	local name=$1 out
	shift
	out=$("$@" 2>&1)
	if [ $? -eq 0 ] && [ -z "$out" ]; then
		echo "ok - $name"
		pass=$((pass + 1))
	else
		echo "not ok - $name"
		echo "$out" | head -40 | sed 's/^/#   /'
		fail=$((fail + 1))
	fi
}
check "gofmt -l" gofmt -l $(git ls-files '*.go')
check "go vet ./..." go vet ./...
sc=build/out/tools/staticcheck
if [ ! -x "$sc" ]; then
	mkdir -p build/out/tools
	GOBIN=$PWD/build/out/tools go install honnef.co/go/tools/cmd/staticcheck@v0.8.2 >/dev/null 2>&1 ||
		echo "lint.sh: cannot install staticcheck" >&2
fi
check "staticcheck ./..." "$sc" ./...
cflags=(-fsyntax-only -Wall -Wextra -Werror -Wno-unused-parameter -Iinclude -Ibuild/include/lua5.1)
for f in lualib/*.c proxy/*.c; do
	check "cc -Wall -Wextra -Werror $f" gcc "${cflags[@]}" -fPIC -fvisibility=hidden "$f"
done
# The binding compiles warning-free against every Lua it supports (lualib/compat.h).
for v in 5.2 5.3 5.4; do
	build/lua-headers.sh "$v" >/dev/null || { echo "not ok - build/lua-headers.sh $v"; fail=$((fail + 1)); continue; }
	for f in lualib/*.c; do
		check "cc -Wall -Wextra -Werror $f (Lua $v)" gcc "${cflags[@]/lua5.1/lua$v}" -fPIC -fvisibility=hidden "$f"
	done
done
for f in tests/host/*.c; do
	[ -f "$f" ] && check "cc -Wall -Wextra -Werror $f" gcc "${cflags[@]}" -I/usr/include/lua5.1 "$f"
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

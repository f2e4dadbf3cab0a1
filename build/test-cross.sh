#!/usr/bin/env bash
# make test-cross: the Lua suite (build/test-lua.sh) and the wiki demo (build/demo.sh) with
# Debian's foreign-arch lua5.1 under qemu-user, against the native test servers.
#   armel armhf arm64: the in-process variant;  mipsel: the out-of-process variant, its
#   vws-helper (GOMIPS=softfloat) run by "qemu-mipsel -cpu 24KEc" (a MIPS32 CPU without FPU).
# Debian's mipsel lua5.1 is built for hard float: it gets SIGILL on 24KEc, so the emulated
# Lua runs on qemu's default MIPS CPU (24Kf, with FPU) while the helper proves soft float.
# For mipsel, cmd/vws-helper's TestSharedWrites also runs with the emulated helper.
# Usage: build/test-cross.sh ARCH...   (default: armel armhf arm64 mipsel; amd64 runs natively)
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
[ $# -gt 0 ] || set -- armel armhf arm64 mipsel
build/deps.sh qemu lua || exit 1
summary=() fail=0
for arch in "$@"; do
	helper_wrapper=
	case $arch in
	amd64) variant=inproc lua=lua5.1 ;;
	armel | armhf) variant=inproc lua="qemu-arm -L build/sysroot/$arch build/sysroot/$arch/usr/bin/lua5.1" ;;
	arm64) variant=inproc lua="qemu-aarch64 -L build/sysroot/$arch build/sysroot/$arch/usr/bin/lua5.1" ;;
	mipsel)
		variant=oop lua="qemu-mipsel -L build/sysroot/$arch build/sysroot/$arch/usr/bin/lua5.1"
		helper_wrapper="qemu-mipsel -cpu 24KEc" ;;
	*) echo "test-cross.sh: unknown arch $arch" >&2; exit 2 ;;
	esac
	echo "=== $arch ($variant): LUA=\"$lua\"${helper_wrapper:+ VWS_HELPER_WRAPPER=\"$helper_wrapper\"}"
	if [ "$arch" != amd64 ] && ! build/sysroot.sh "$arch"; then
		summary+=("$arch: sysroot FAILED") fail=1
		continue
	fi
	dir=build/out/$arch/$variant
	build/cross.sh "$arch" >/dev/null || { summary+=("$arch: build FAILED") fail=1; continue; }
	# The module really is foreign: show what the emulated Lua loads.
	file -b "$dir/verawebsockets.so" 2>/dev/null | cut -d, -f1-3 | sed 's/^/module: /'
	out=$(mktemp)
	LUA=$lua VWS_HELPER_WRAPPER=$helper_wrapper VWS_FILE_TIMEOUT=${VWS_FILE_TIMEOUT:-300} \
		build/test-lua.sh "$variant" "$arch" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	suite=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -1)
	[ "$rc" = 0 ] && [ -n "$suite" ] || fail=1
	echo "--- demo under emulation ($arch)"
	if LUA=$lua VWS_HELPER_WRAPPER=$helper_wrapper DEMO_TIMEOUT=120 build/demo.sh "$variant" "$arch"; then
		demo=ok
	else
		demo=FAILED fail=1
	fi
	share=
	if [ "$variant" = oop ]; then
		# The gate of shared writes across the native proxy and the emulated helper.
		echo "--- shared writes with the emulated helper ($arch)"
		if VWS_TEST_HELPER=$PWD/$dir/vws-helper VWS_HELPER_WRAPPER=$helper_wrapper \
			go test -count=1 -run 'TestSharedWrites' ./cmd/vws-helper; then
			share="; shared writes (emulated helper): ok"
		else
			share="; shared writes (emulated helper): FAILED" fail=1
		fi
	fi
	summary+=("$arch ($variant): lua suite: ${suite:-no summary}; demo: $demo$share")
	rm -f "$out"
done
echo "=== test-cross summary"
printf '%s\n' "${summary[@]}"
exit $fail

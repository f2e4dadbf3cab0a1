#!/usr/bin/env bash
# make cross: builds the variants each arch gets and prints a size table.
#   amd64             inproc (Go c-shared) + oop (.so + vws-helper)
#   armel armhf arm64 inproc (GOARM=5 / GOARM=7 / arm64)
#   mipsel            oop (Go cannot build c-shared for MIPS; helper GOMIPS=softfloat)
# Usage: build/cross.sh [--sizes] ARCH...   (default: amd64 armel armhf arm64 mipsel)
#   --sizes: no build, only the size table of what is already in build/out.
# Installs the cross compilers (build/deps.sh cross-arm / cross-mips) when missing.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
. build/arch.sh
sizes_only=
[ "${1:-}" = --sizes ] && { sizes_only=1; shift; }
[ $# -gt 0 ] || set -- amd64 armel armhf arm64 mipsel
variants() {
	case $1 in
	amd64) echo inproc oop ;;
	mipsel) echo oop ;;
	*) echo inproc ;;
	esac
}
fail=0 rows=()
for arch in "$@"; do
	if [ -n "$sizes_only" ]; then
		for v in $(variants "$arch"); do
			[ -f "build/out/$arch/$v/verawebsockets.so" ] && rows+=("$arch $v ok") || rows+=("$arch $v missing")
		done
		continue
	fi
	case $arch in
	armel | armhf | arm64) build/deps.sh cross-arm || fail=1 ;;
	mipsel) build/deps.sh cross-mips || fail=1 ;;
	amd64) ;;
	*) echo "cross.sh: unknown arch $arch" >&2; exit 2 ;;
	esac
	# The cross gcc packages only recommend their libc headers (deps.sh installs with
	# --no-install-recommends); without them gcc falls back to the build machine's /usr/include.
	vws_arch "$arch"
	if [ "$arch" != amd64 ] && [ ! -f "/usr/$TRIPLE/include/stdio.h" ]; then
		debarch=$arch
		echo "cross.sh: installing libc6-dev-$debarch-cross" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 \
			--no-install-recommends "libc6-dev-$debarch-cross" >/dev/null || fail=1
	fi
	for v in $(variants "$arch"); do
		echo "=== build/build.sh $v $arch"
		if ! build/build.sh "$v" "$arch"; then
			echo "=== FAILED: build/build.sh $v $arch"
			fail=1
			rows+=("$arch $v FAILED")
			continue
		fi
		rows+=("$arch $v ok")
	done
done

# Size table: each file stripped once more with the arch's strip (a no-op for the Go
# outputs, which are linked -s -w), in bytes and KiB; NEEDED = shared libraries required.
kib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1024 }'; }
echo
printf '%-7s %-7s %-40s %10s %8s  %s\n' arch variant file bytes KiB NEEDED
for row in "${rows[@]}"; do
	read -r arch v st <<<"$row"
	if [ "$st" != ok ]; then
		printf '%-7s %-7s %s\n' "$arch" "$v" "$([ "$st" = missing ] && echo "not built" || echo "build FAILED")"
		continue
	fi
	vws_arch "$arch"
	dir=build/out/$arch/$v
	for f in verawebsockets.so vws-helper; do
		[ -f "$dir/$f" ] || continue
		s=$(mktemp)
		"${TRIPLE}-strip" -o "$s" "$dir/$f" 2>/dev/null || strip -o "$s" "$dir/$f" 2>/dev/null || cp "$dir/$f" "$s"
		b=$(stat -c %s "$s")
		needed=$(readelf -d "$s" 2>/dev/null | awk -F'[][]' '/NEEDED/ { printf "%s ", $2 }')
		[ -n "$needed" ] || needed="(static)"
		printf '%-7s %-7s %-40s %10s %8s  %s\n' "$arch" "$v" "$dir/$f" "$b" "$(kib "$b")" "$needed"
		rm -f "$s"
	done
done
exit $fail

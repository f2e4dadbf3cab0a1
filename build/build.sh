#!/usr/bin/env bash
# Builds one variant of verawebsockets.so for one arch.
#   build/build.sh inproc ARCH  -> build/out/ARCH/inproc/verawebsockets.so (Go c-shared)
#   build/build.sh oop ARCH     -> build/out/ARCH/oop/{verawebsockets.so,vws-helper}
# ARCH: amd64 (default) armel armhf arm64 mipsel (oop only).
set -euo pipefail
cd "$(dirname "$0")/.."
. build/arch.sh
variant=${1:-inproc} arch=${2:-amd64}
vws_arch "$arch"
build/lua-headers.sh
out=build/out/$arch/$variant
mkdir -p "$out/obj"
CFLAGS="-O2 -fPIC -fvisibility=hidden -Wall -Wextra -Wno-unused-parameter -Iinclude -Ibuild/include/lua5.1 ${VWS_CFLAGS:-}"
objs=()
compile() { # compile SRC...
	for src in "$@"; do
		o=$out/obj/$(basename "${src%.c}").o
		$CC $CFLAGS -c "$src" -o "$o"
		objs+=("$o")
	done
}
compile lualib/*.c
case $variant in
inproc)
	rm -f "$out/obj/lualib.a"
	ar rcs "$out/obj/lualib.a" "${objs[@]}"
	sum=$(cat "${objs[@]}" | sha256sum | cut -c1-16) # relinks when the binding changed (see capi/main.go)
	CGO_ENABLED=1 go build -trimpath -buildmode=c-shared \
		-ldflags="-s -w -X main.lualibSum=$sum -extldflags '-Wl,--whole-archive $PWD/$out/obj/lualib.a -Wl,--no-whole-archive -Wl,--version-script=$PWD/build/exports.map'" \
		-o "$out/verawebsockets.so" ./capi
	rm -f "$out/verawebsockets.h" # cgo's generated header; include/verawebsockets.h is the ABI
	;;
oop)
	compile proxy/*.c
	$CC -shared -o "$out/verawebsockets.so" "${objs[@]}" -Wl,--version-script=build/exports.map -lpthread -ldl
	$CC --version >/dev/null
	[ -n "${VWS_NOSTRIP:-}" ] || ${TRIPLE}-strip "$out/verawebsockets.so" 2>/dev/null || strip "$out/verawebsockets.so" 2>/dev/null || true
	CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$out/vws-helper" ./cmd/vws-helper
	;;
*) echo "build.sh: variant inproc|oop" >&2; exit 2 ;;
esac
echo "built $out/verawebsockets.so"

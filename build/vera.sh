#!/usr/bin/env bash
# make vera CROSS=mipsel-openwrt-linux-: the out-of-process variant for a Vera controller
# (OpenWrt, uClibc or musl, MIPS without FPU), built with the device's own toolchain.
#   - the C part (lualib/ + proxy/ -> verawebsockets.so) with ${CROSS}gcc, because the
#     device's liblua/libc are uClibc or musl, soft-float: a .so built by Debian's
#     mipsel-linux-gnu-gcc needs glibc symbol versions and the hard-float ABI;
#   - vws-helper with Go: static (CGO_ENABLED=0), so no libc at all; GOMIPS=softfloat
#     because the Vera's MIPS 24K cores have no FPU (Go's default mips code uses it).
# Output: build/out/vera/<CROSS without trailing ->/{verawebsockets.so,vws-helper}; copy both
# into the same directory on the device (the .so finds the helper next to itself).
# Env: VERA_GOARCH (default from the prefix: mipsel* -> mipsle, mips* -> mips, arm* -> arm,
# aarch64* -> arm64), VERA_GOARM (default 5), VERA_CFLAGS, VERA_LDFLAGS (e.g. --sysroot=...),
# VERA_LUA_INCLUDE (the device's Lua 5.1 headers, e.g. the SDK's staging_dir/target-*/usr/include:
# use them when the device's luaconf.h differs from stock Lua 5.1, as OpenWrt's LNUM-patched Lua
# may; default build/include/lua5.1, stock Debian Lua 5.1 headers).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
cross=${1:-${CROSS:-}}
[ -n "$cross" ] || { echo "usage: make vera CROSS=<toolchain prefix, e.g. mipsel-openwrt-linux->" >&2; exit 2; }
cc=${cross}gcc
command -v "$cc" >/dev/null || { echo "vera.sh: $cc not found (put the device toolchain's bin/ on PATH)" >&2; exit 1; }
goarch=${VERA_GOARCH:-}
if [ -z "$goarch" ]; then
	case $cross in
	mipsel* | mipsle*) goarch=mipsle ;;
	mips64*) echo "vera.sh: mips64 prefix: set VERA_GOARCH" >&2; exit 2 ;;
	mips*) goarch=mips ;;
	aarch64*) goarch=arm64 ;;
	arm*) goarch=arm ;;
	*) echo "vera.sh: cannot tell GOARCH from '$cross'; set VERA_GOARCH" >&2; exit 2 ;;
	esac
fi
build/lua-headers.sh
luainc=${VERA_LUA_INCLUDE:-build/include/lua5.1}
[ -f "$luainc/lua.h" ] || { echo "vera.sh: no lua.h in $luainc" >&2; exit 1; }
name=${cross%-}
out=build/out/vera/${name:-native}
mkdir -p "$out/obj"
cflags="-Os -fPIC -fvisibility=hidden -Wall -Wno-unused-parameter -Iinclude -I$luainc ${VERA_CFLAGS:-}"
objs=()
for src in lualib/*.c proxy/*.c; do
	o=$out/obj/$(basename "${src%.c}").o
	$cc $cflags -c "$src" -o "$o"
	objs+=("$o")
done
# Lua's symbols stay undefined: the device's lua5.1 (or LuaUPnP) provides them.
$cc -shared ${VERA_LDFLAGS:-} -o "$out/verawebsockets.so" "${objs[@]}" \
	-Wl,--version-script=build/exports.map -lpthread -ldl
if command -v "${cross}strip" >/dev/null; then
	"${cross}strip" "$out/verawebsockets.so"
else
	echo "vera.sh: ${cross}strip not found; .so left unstripped" >&2
fi
GOARCH=$goarch GOMIPS=softfloat GOARM=${VERA_GOARM:-5} CGO_ENABLED=0 \
	go build -trimpath -ldflags="-s -w" -o "$out/vws-helper" ./cmd/vws-helper
echo "built $out/verawebsockets.so ($cc) and $out/vws-helper (GOARCH=$goarch GOMIPS=softfloat, static)"
for f in "$out/verawebsockets.so" "$out/vws-helper"; do
	printf '  %-48s %9s bytes  %s\n' "$f" "$(stat -c %s "$f")" "$(file -b "$f" | cut -d, -f1-4)"
done
readelf -d "$out/verawebsockets.so" | awk -F'[][]' '/NEEDED/ { n = n $2 " " } END { print "  NEEDED: " n }'

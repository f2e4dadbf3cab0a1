#!/usr/bin/env bash
# Builds one variant of verawebsockets.so for one arch.
#   build/build.sh inproc ARCH  -> build/out/ARCH/inproc/verawebsockets.so (Go c-shared)
#   build/build.sh oop ARCH     -> build/out/ARCH/oop/{verawebsockets.so,vws-helper}
#   build/build.sh VARIANT ARCH LUA -> build/out/ARCH/VARIANT-LUA/... for LUA 5.2, 5.3, 5.4
#     (LUA 5.1 or luajit: the default build above; LuaJIT loads the 5.1 build)
# ARCH: amd64 (default) armel armhf arm64 mipsel (oop only).
# The binding compiles against Debian's headers of that Lua (build/lua-headers.sh);
# Lua's symbols stay undefined (the interpreter that loads the module has them).
# Env: VWS_CC (compiler), VWS_CFLAGS (added), VWS_LUA_INCDIR (other Lua headers, same
# version), VWS_OUT (output directory instead of build/out/...).
set -euo pipefail
cd "$(dirname "$0")/.."
. build/arch.sh
variant=${1:-inproc} arch=${2:-amd64} luaver=${3:-5.1}
vws_arch "$arch"
case $luaver in
5.1 | 51 | luajit) luaver=5.1 suffix= ;;
5.2 | 5.3 | 5.4) suffix=-$luaver ;;
52 | 53 | 54) luaver=${luaver:0:1}.${luaver:1} suffix=-$luaver ;;
*) echo "build.sh: Lua version 5.1 (luajit), 5.2, 5.3 or 5.4, not '$luaver'" >&2; exit 2 ;;
esac
if [ -n "${VWS_LUA_INCDIR:-}" ]; then
	luainc=$VWS_LUA_INCDIR # e.g. LuaRocks' LUA_INCDIR (build/install.sh)
else
	build/lua-headers.sh "$luaver"
	luainc=build/include/lua$luaver
fi
out=${VWS_OUT:-build/out/$arch/$variant$suffix}
mkdir -p "$out/obj"
outabs=$(cd "$out" && pwd)
CFLAGS="-O2 -fPIC -fvisibility=hidden -Wall -Wextra -Wno-unused-parameter -Iinclude -I$luainc ${VWS_CFLAGS:-}"
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
		-ldflags="-s -w -X main.lualibSum=$sum -extldflags '-Wl,--whole-archive $outabs/obj/lualib.a -Wl,--no-whole-archive -Wl,--version-script=$PWD/build/exports.map'" \
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
echo "built $out/verawebsockets.so (Lua $luaver)"

#!/usr/bin/env bash
# make build / make install / make uninstall, and the build and install passes of
# rockspecs/verawebsockets-scm-1.rockspec (LuaRocks runs the same make targets).
# Usage: build/install.sh build|install|uninstall|paths
# Env (the Makefile passes its variables; all optional):
#   LUAVER      5.1 (default) 5.2 5.3 5.4 luajit (= 5.1): the Lua the module is for
#   LUA_INCDIR  that Lua's headers (LuaRocks passes it): used instead of Debian's, and
#               the version is read from its lua.h (LUA_VERSION_NUM)
#   ARCH        amd64 armel armhf arm64 mipsel (default: this machine)
#   VARIANT     inproc | oop (default: inproc, oop on mipsel)
#   PREFIX      /usr/local (default); DESTDIR  staging root
#   LUA_CMOD    where the C module (and vws-helper) go; default $PREFIX/lib/lua/<ver>, or
#               with PREFIX=/usr Debian's INSTALL_CMOD (pkg-config lua<ver>)
#   LUA_LMOD    where lua/**/*.lua go (tree kept); default $PREFIX/share/lua/<ver>, or
#               with PREFIX=/usr Debian's INSTALL_LMOD
#   ROCK_CFLAGS added to the C flags (LuaRocks' CFLAGS); CC_OVERRIDE the C compiler
set -euo pipefail
cd "$(dirname "$0")/.."
. build/arch.sh
export PATH=/usr/local/go/bin:$PATH
action=${1:-}

arch=${ARCH:-}
[ -n "$arch" ] || arch=$(vws_native_arch)
variant=${VARIANT:-}
[ -n "$variant" ] || variant=$(vws_default_variant "$arch")

incdir=${LUA_INCDIR:-}
if [ -n "$incdir" ]; then
	[ -f "$incdir/lua.h" ] || { echo "install.sh: no lua.h in LUA_INCDIR=$incdir" >&2; exit 1; }
	num=$(sed -n 's/^#define[[:space:]]*LUA_VERSION_NUM[[:space:]]*\([0-9]*\).*/\1/p' "$incdir/lua.h" | head -1)
	case $num in
	501 | 502 | 503 | 504) ver=5.${num:2:1} ;;
	*) echo "install.sh: $incdir/lua.h: LUA_VERSION_NUM '$num' is not 5.1..5.4" >&2; exit 1 ;;
	esac
	suffix=-rock-$ver # not the project's own builds: other headers, other flags
else
	case ${LUAVER:-5.1} in
	5.1 | luajit | lua5.1) ver=5.1 suffix= ;;
	5.2 | 5.3 | 5.4) ver=$LUAVER suffix=-$ver ;;
	lua5.[234]) ver=${LUAVER#lua} suffix=-$ver ;;
	*) echo "install.sh: LUA=5.1, 5.2, 5.3, 5.4 or luajit, not '$LUAVER'" >&2; exit 2 ;;
	esac
fi
out=build/out/$arch/$variant$suffix

prefix=${PREFIX:-/usr/local}
cmod=${LUA_CMOD:-} lmod=${LUA_LMOD:-}
if [ "$prefix" = /usr ] && pkg-config --exists "lua$ver" 2>/dev/null; then
	# Debian's own places for a distribution-style install.
	[ -n "$cmod" ] || cmod=$(pkg-config --variable=INSTALL_CMOD "lua$ver")
	[ -n "$lmod" ] || lmod=$(pkg-config --variable=INSTALL_LMOD "lua$ver")
fi
# Upstream Lua's default paths (and Debian's, which include /usr/local/{lib,share}/lua/<ver>).
[ -n "$cmod" ] || cmod=$prefix/lib/lua/$ver
[ -n "$lmod" ] || lmod=$prefix/share/lua/$ver
destdir=${DESTDIR:-}

build() {
	local env=(VWS_OUT="$out")
	[ -n "$incdir" ] && env+=(VWS_LUA_INCDIR="$incdir")
	[ -n "${ROCK_CFLAGS:-}" ] && env+=(VWS_CFLAGS="${VWS_CFLAGS:-} $ROCK_CFLAGS")
	[ -n "${CC_OVERRIDE:-}" ] && env+=(VWS_CC="$CC_OVERRIDE")
	env "${env[@]}" build/build.sh "$variant" "$arch" "$ver"
}

# The files a build installs: "SRC DEST MODE" lines.
files() {
	echo "$out/verawebsockets.so $cmod/verawebsockets.so 755"
	[ "$variant" = oop ] && echo "$out/vws-helper $cmod/vws-helper 755"
	if [ -d lua ]; then
		find lua -name '*.lua' -type f | LC_ALL=C sort | while read -r f; do
			echo "$f $lmod/${f#lua/} 644"
		done
	fi
	return 0
}

case $action in
build)
	build
	# The default build is also ./verawebsockets.so (make demo, the docs check).
	if [ -z "$incdir" ] && [ "$ver" = 5.1 ] && [ "$variant" = inproc ] && [ "$arch" = "$(vws_native_arch)" ]; then
		cp "$out/verawebsockets.so" ./verawebsockets.so
	fi
	;;
install)
	if [ ! -f "$out/verawebsockets.so" ] || { [ "$variant" = oop ] && [ ! -f "$out/vws-helper" ]; }; then
		build
	fi
	files | while read -r src dst mode; do
		install -D -m "$mode" "$src" "$destdir$dst"
		echo "installed $destdir$dst"
	done
	;;
uninstall)
	files | while read -r src dst mode; do
		if [ -e "$destdir$dst" ]; then rm -f "$destdir$dst" && echo "removed $destdir$dst"; fi
	done
	# Directories of the Lua modules that are now empty (never $lmod itself).
	if [ -d lua ]; then
		find lua -mindepth 1 -type d | LC_ALL=C sort -r | while read -r d; do
			rmdir "$destdir$lmod/${d#lua/}" 2>/dev/null || true
		done
	fi
	;;
paths)
	echo "LUA $ver  ARCH $arch  VARIANT $variant  build $out"
	echo "LUA_CMOD $destdir$cmod"
	echo "LUA_LMOD $destdir$lmod"
	;;
*) echo "usage: build/install.sh build|install|uninstall|paths" >&2; exit 2 ;;
esac

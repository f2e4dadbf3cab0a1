#!/usr/bin/env bash
# make dist: release tarballs from what build/cross.sh (make cross) and build/vera.sh
# (make vera) built, for the Lua 5.1 these targets run (Vera's LuaUPnP, openLuup, LuaJIT).
#   build/dist/verawebsockets-<version>-<arch>.tar.gz   one per ARCH: its default variant
#       (amd64 armel armhf arm64: in process; mipsel: out of process, .so + vws-helper)
#   build/dist/verawebsockets-<version>-vera-<toolchain>.tar.gz   one per build/out/vera/*/
#   build/dist/SHA256SUMS   sha256sum of every tarball (sha256sum -c SHA256SUMS)
#   build/dist/SIZES        bytes of every tarball and of every file in it
# Each tarball: verawebsockets-<version>-<name>/{verawebsockets.so, vws-helper (oop),
# lua/ (the pure-Lua modules, if any), README.md, LICENSE, BUILDINFO}. Reproducible: files
# sorted, owner 0, mtime of the last commit, gzip -n.
# Usage: build/dist.sh [ARCH...]   (default: amd64 armel armhf arm64 mipsel)
# Env: VWS_DIST_DIR (default build/dist; emptied first)
set -euo pipefail
cd "$(dirname "$0")/.."
. build/arch.sh
[ $# -gt 0 ] || set -- amd64 armel armhf arm64 mipsel
version=$(sed -n 's/^#define VL_VERSION *"\(.*\)".*/\1/p' lualib/vws_lua.h)
[ -n "$version" ] || { echo "dist.sh: no VL_VERSION in lualib/vws_lua.h" >&2; exit 1; }
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || commit="$commit+modified"
mtime=$(git log -1 --format=%ct 2>/dev/null || date +%s)
dist=${VWS_DIST_DIR:-build/dist}
rm -rf "$dist"
mkdir -p "$dist"
stage=$(mktemp -d /tmp/vws-dist.XXXXXX)
trap 'rm -rf "$stage"' EXIT

# pack NAME DIR VARIANT HOW: one tarball of the build in DIR.
pack() {
	local name=verawebsockets-$version-$1 dir=$2 variant=$3 how=$4 top
	top=$stage/verawebsockets-$version-$1
	mkdir -p "$top"
	install -m 755 "$dir/verawebsockets.so" "$top/"
	[ "$variant" = oop ] && install -m 755 "$dir/vws-helper" "$top/"
	if [ -d lua ]; then
		(cd lua && find . -name '*.lua' -type f) | while read -r f; do
			install -D -m 644 "lua/${f#./}" "$top/lua/${f#./}"
		done
	fi
	install -m 644 README.md LICENSE "$top/"
	{
		echo "verawebsockets $version ($commit), Lua 5.1 (LuaUPnP, lua5.1, LuaJIT), $how"
		echo "variant: $variant ($([ "$variant" = oop ] && echo "verawebsockets.so drives vws-helper, which must stay next to it" || echo "the engine is inside verawebsockets.so"))"
		for f in verawebsockets.so vws-helper; do
			[ -f "$top/$f" ] && echo "$f: $(file -b "$top/$f" | cut -d, -f1-5)"
		done
		echo "install: see README.md, \"Install\", \"On a Vera (LuaUPnP)\", \"On openLuup\""
	} >"$top/BUILDINFO"
	touch -d "@$mtime" "$top" "$top"/* 2>/dev/null || true
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" -C "$stage" -cf - "$(basename "$top")" |
		gzip -9n >"$dist/$name.tar.gz"
	echo "wrote $dist/$name.tar.gz"
	{
		printf '%s.tar.gz %d bytes\n' "$name" "$(stat -c %s "$dist/$name.tar.gz")"
		tar -tvzf "$dist/$name.tar.gz" | awk '$1 !~ /^d/ { printf "  %10d  %s\n", $3, $6 }'
	} >>"$dist/SIZES"
}

for arch in "$@"; do
	vws_arch "$arch" >/dev/null
	variant=$(vws_default_variant "$arch")
	dir=build/out/$arch/$variant
	if [ ! -f "$dir/verawebsockets.so" ] || { [ "$variant" = oop ] && [ ! -f "$dir/vws-helper" ]; }; then
		echo "dist.sh: $dir is not built (make cross ARCHS=$arch)" >&2
		exit 1
	fi
	how="built by build/cross.sh for $arch (Debian's $TRIPLE toolchain, glibc)"
	pack "$arch" "$dir" "$variant" "$how"
done
# Device-toolchain builds (make vera CROSS=...): the .so for the controller's own libc.
for dir in build/out/vera/*/; do
	[ -f "$dir/verawebsockets.so" ] && [ -f "$dir/vws-helper" ] || continue
	name=$(basename "$dir")
	pack "vera-$name" "${dir%/}" oop "built by build/vera.sh with the $name- toolchain (the device's libc)"
done
(cd "$dist" && sha256sum -- *.tar.gz >SHA256SUMS)
echo "wrote $dist/SHA256SUMS and $dist/SIZES"
cat "$dist/SIZES"

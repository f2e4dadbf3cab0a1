#!/usr/bin/env bash
# Makes build/include/lua5.X (default 5.1): Debian's Lua 5.X headers without the
# build machine's multiarch include, so the same headers serve cross builds.
# Usage: build/lua-headers.sh [5.1|5.2|5.3|5.4]
set -euo pipefail
cd "$(dirname "$0")/.."
ver=${1:-5.1}
case $ver in
5.1) group=lua-dev ;;
5.2 | 5.3 | 5.4) group=lua5x ;;
*) echo "lua-headers.sh: Lua version 5.1, 5.2, 5.3 or 5.4, not '$ver'" >&2; exit 2 ;;
esac
out=build/include/lua$ver
[ -f "$out/lua.h" ] && exit 0
build/deps.sh $group
mkdir -p "$out"
for h in lua.h luaconf.h lauxlib.h lualib.h; do
	cp "/usr/include/lua$ver/$h" "$out/$h"
done
# The multiarch header only names the Debian triplet for default search paths.
sed -i "s|#include \"lua$ver-deb-multiarch.h\"|/* multiarch include removed for cross builds */|" "$out/luaconf.h"
grep -q 'deb-multiarch' "$out/luaconf.h" && { echo "lua-headers.sh: $out/luaconf.h still includes a multiarch header" >&2; exit 1; }
exit 0

#!/usr/bin/env bash
# Makes build/include/lua5.1: Debian's Lua 5.1 headers without the build
# machine's multiarch include, so the same headers serve cross builds.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/include/lua5.1
[ -f "$out/lua.h" ] && exit 0
build/deps.sh lua-dev
mkdir -p "$out"
for h in lua.h luaconf.h lauxlib.h lualib.h; do
	cp "/usr/include/lua5.1/$h" "$out/$h"
done
# The multiarch header only names the Debian triplet for default search paths.
sed -i 's|#include "lua5.1-deb-multiarch.h"|/* multiarch include removed for cross builds */|' "$out/luaconf.h"

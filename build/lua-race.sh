#!/usr/bin/env bash
# Builds the race-detecting Lua 5.1 into build/out/lua-race/ (cached; reruns only
# when this script or tests/race/lrace.[ch] changed):
#   bin/lua5.1           the standalone interpreter, -Wl,-E (C modules load into it)
#   lib/liblua-race.a    the core and standard libraries, for C hosts (link -Wl,-E)
#   include/             lua.h luaconf.h lauxlib.h lualib.h (+ Debian's multiarch header)
# From Debian's source package (apt-get source lua5.1, Debian's patches applied:
# module paths, the vararg stack overflow fix), with lua_lock/lua_unlock turned into
# a checker (tests/race/lrace.h): a thread that enters a Lua state another thread is
# in aborts with "lua-race: thread X entered a Lua state that thread Y is in".
# Enables deb-src in /etc/apt/sources.list.d/debian.sources once if needed.
# Env: LUA_RACE_READLINE=0 builds the interpreter without readline.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/out/lua-race
mkdir -p "$out"
exec 9>"$out/.lock"
flock -w 600 9 || { echo "lua-race.sh: $out is locked" >&2; exit 1; }

readline=0
if [ "${LUA_RACE_READLINE:-1}" != 0 ] && [ -f /usr/include/readline/readline.h ]; then readline=1; fi
stamp=$(cat build/lua-race.sh tests/race/lrace.h tests/race/lrace.c | sha256sum | cut -c1-16)-rl$readline
if [ -x "$out/bin/lua5.1" ] && [ -f "$out/lib/liblua-race.a" ] && [ -f "$out/include/lua.h" ] &&
	[ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
	exit 0
fi

# ---- Debian's source package, fetched once.
src=$out/src/lua5.1-5.1.5
if [ ! -f "$src/.pc/applied-patches" ]; then
	export DEBIAN_FRONTEND=noninteractive
	command -v dpkg-source >/dev/null || apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends dpkg-dev >/dev/null
	if ! grep -Rqs -e '^Types:.*deb-src' -e '^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/; then
		f=/etc/apt/sources.list.d/debian.sources
		[ -f "$f" ] || { echo "lua-race.sh: no deb-src and no $f to enable it in" >&2; exit 1; }
		echo "lua-race.sh: enabling deb-src in $f" >&2
		sed -i 's/^Types: deb$/Types: deb deb-src/' "$f"
		apt-get update -qq -o DPkg::Lock::Timeout=300
	fi
	rm -rf "$out/src" && mkdir -p "$out/src"
	# apt-get source unpacks with dpkg-source -x, which applies debian/patches/series.
	(cd "$out/src" && timeout 300 apt-get source -qq lua5.1 >apt.log 2>&1) || {
		cat "$out/src/apt.log" >&2; echo "lua-race.sh: apt-get source lua5.1 failed" >&2; exit 1; }
	[ -f "$src/.pc/applied-patches" ] || {
		echo "lua-race.sh: $src: Debian's patches were not applied" >&2; exit 1; }
fi
for p in 0002-module_paths 0004-Fix-stack-overflow-in-vararg-functions; do
	grep -q "^$p" "$src/.pc/applied-patches" || { echo "lua-race.sh: Debian patch $p not applied" >&2; exit 1; }
done

# ---- A fresh copy of src/ with the checker configured in.
b=$out/build
rm -rf "$b" "$out/bin" "$out/lib" "$out/include" "$out/.stamp"
mkdir -p "$b" "$out/bin" "$out/lib" "$out/include"
cp "$src"/src/*.c "$src"/src/*.h tests/race/lrace.h tests/race/lrace.c "$b/"
multiarch=$(gcc -print-multiarch 2>/dev/null || true)
[ -n "$multiarch" ] || multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
# As debian/rules does: the triplet for the default package.cpath (socket/core.so).
printf '#ifndef _LUA_DEB_MULTIARCH_\n#define _LUA_DEB_MULTIARCH_\n#define DEB_HOST_MULTIARCH "%s"\n#endif\n' \
	"$multiarch" >"$b/lua5.1-deb-multiarch.h"
grep -q '^#define LUAI_EXTRASPACE' "$b/luaconf.h" || { echo "lua-race.sh: unexpected luaconf.h" >&2; exit 1; }
# The include goes last in luaconf.h (lrace.h redefines LUAI_EXTRASPACE and
# luai_userstateopen); llimits.h keeps a lua_lock/luai_threadyield defined before it.
python3 - "$b/luaconf.h" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
i = s.rindex("#endif")
s = s[:i] + ("/* lua-race (build/lua-race.sh): lua_lock/lua_unlock check that one thread at a\n"
             "** time is inside a Lua state; see lrace.h. Core files only. */\n"
             "#if defined(LUA_CORE)\n#include \"lrace.h\"\n#endif\n\n") + s[i:]
open(p, "w").write(s)
PY

cflags=(-O2 -g -Wall -Wno-misleading-indentation -Wno-address -pthread -DLUA_USE_POSIX -DLUA_USE_DLOPEN)
objs=()
for c in "$b"/*.c; do
	case $(basename "$c") in lua.c | luac.c | print.c) continue ;; esac
	gcc "${cflags[@]}" -c "$c" -o "${c%.c}.o"
	objs+=("${c%.c}.o")
done
ar rcs "$out/lib/liblua-race.a" "${objs[@]}"
libs=(-lm -ldl -pthread)
if [ $readline = 1 ]; then
	gcc "${cflags[@]}" -DLUA_USE_READLINE -c "$b/lua.c" -o "$b/lua.o"
	libs+=(-lreadline)
else
	gcc "${cflags[@]}" -c "$b/lua.c" -o "$b/lua.o"
fi
gcc -Wl,-E -o "$out/bin/lua5.1" "$b/lua.o" "$out/lib/liblua-race.a" "${libs[@]}"
cp "$b/lua.h" "$b/luaconf.h" "$b/lauxlib.h" "$b/lualib.h" "$b/lua5.1-deb-multiarch.h" "$out/include/"

# The checker is in: the interpreter exports it and runs.
for o in lapi ldo lstate; do nm "$b/$o.o" | grep " U luarace_lock$" >/dev/null || { echo "lua-race.sh: $o.o does not call luarace_lock" >&2; exit 1; }; done
nm "$out/bin/lua5.1" | grep ' T luarace_lock$' >/dev/null || { echo "lua-race.sh: luarace_lock missing" >&2; exit 1; }
"$out/bin/lua5.1" -e 'assert(_VERSION == "Lua 5.1" and package.cpath:find("'"$multiarch"'", 1, true))'
echo "$stamp" >"$out/.stamp"
echo "built $out/bin/lua5.1 and $out/lib/liblua-race.a (readline $([ $readline = 1 ] && echo on || echo off))" >&2

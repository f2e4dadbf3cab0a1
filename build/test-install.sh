#!/usr/bin/env bash
# Installing it the way Lua users do, checked in scratch directories (nothing outside
# them is touched; amd64, this machine's Lua interpreters):
#   - luarocks make --tree <scratch> (Lua 5.1 and 5.4; 5.1 also the out-of-process
#     variant, VARIANT=oop, its vws-helper next to the .so), then require "verawebsockets"
#     with the paths `luarocks path` prints;
#   - make install DESTDIR=<scratch> (PREFIX=/usr/local and, for 5.4, PREFIX=/usr: Debian's
#     INSTALL_CMOD), a require from there, the Lua modules of lua/ installed with their
#     tree, and make uninstall leaving nothing behind;
#   - make dist's tarball of amd64 (when build/out/amd64/inproc is built): its files,
#     SHA256SUMS, and a require from the unpacked directory.
# Prints TAP and a closing "N passed, N failed".
# Usage: build/test-install.sh   Env: VWS_INSTALL_LUAS (default "5.1 5.4", the luarocks runs)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export PATH=/usr/local/go/bin:$PATH
n=0 pass=0 fail=0
tap() { # tap OK DESC
	n=$((n + 1))
	if [ "$1" = 1 ]; then pass=$((pass + 1)); echo "ok $n - $2"; else fail=$((fail + 1)); echo "not ok $n - $2"; fi
}
finish() { echo "1..$n"; echo "$pass passed, $fail failed"; [ $fail -eq 0 ]; exit; }
# check DESC CMD...: runs CMD (stdout+stderr kept), one TAP line; the output as # lines on failure.
check() {
	local desc=$1 out rc; shift
	out=$("$@" 2>&1); rc=$?
	if [ $rc -eq 0 ]; then tap 1 "$desc"; else tap 0 "$desc (status $rc)"; echo "$out" | tail -15 | sed 's/^/#   /'; fi
	return $rc
}

# Only the variables each check names: none from an outer make (make test LUA=...) or the caller.
unset MAKEFLAGS MFLAGS MAKELEVEL LUA LUAVER ARCH VARIANT PREFIX DESTDIR LUA_CMOD LUA_LMOD LUA_INCDIR CFLAGS CC
build/deps.sh lua lua-dev lua5x luarocks >/dev/null || { tap 0 "build/deps.sh lua lua-dev lua5x luarocks"; finish; }
tmp=$(mktemp -d /tmp/vws-test-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/home"
# LuaRocks runs with HOME=$tmp/home (no user config or tree of ours is read or written);
# Go keeps its build and module caches (a fresh HOME would rebuild everything).
export GOCACHE GOMODCACHE GOPATH
GOCACHE=$(go env GOCACHE) GOMODCACHE=$(go env GOMODCACHE) GOPATH=$(go env GOPATH)

# The script every check runs: the module loads from where it was installed, and a
# connection to a closed port ends with an error event (the engine runs; for the
# out-of-process variant this starts the installed vws-helper).
cat >"$tmp/probe.lua" <<'EOF'
local ws = require "verawebsockets"
local where = package.searchpath and package.searchpath("verawebsockets", package.cpath) or "?"
local wso = ws.create { url = "ws://127.0.0.1:1/", standalone = true,
	event_handlers = { error = function(_, reason) io.write("error event: ", reason, "\n") end } }
assert(ws.connect(wso))
assert(ws.loop(10000), "loop timed out")
print(("loaded %s %s (%s) from %s"):format(ws._NAME, ws._VERSION, _VERSION, where))
EOF
# probe DESC EXPECTED_PATH LUA SETUP: in a clean environment, after the shell code SETUP
# (e.g. export LUA_CPATH=...), the module loads from EXPECTED_PATH and works.
probe() {
	local desc=$1 want=$2 lua=$3 setup=$4 out
	out=$(cd "$tmp" && env -i PATH="$PATH" HOME="$tmp/home" bash -c "$setup
exec timeout 30 $lua probe.lua" 2>&1)
	if [ $? -eq 0 ] && grep -qF "from $want" <<<"$out" && grep -q '^error event: ' <<<"$out"; then
		tap 1 "$desc: $(grep '^loaded' <<<"$out")"
	else
		tap 0 "$desc: wanted a load from $want"
		echo "$out" | tail -10 | sed 's/^/#   /'
	fi
}
# Lua 5.1 has no package.searchpath: the probe prints "?" there; these find it instead.
cat >"$tmp/searchpath.lua" <<'EOF'
package.searchpath = package.searchpath or function(name, path)
	for p in path:gmatch("[^;]+") do
		local f = p:gsub("%?", (name:gsub("%.", "/")))
		local h = io.open(f)
		if h then h:close() return f end
	end
end
EOF
cat "$tmp/searchpath.lua" "$tmp/probe.lua" >"$tmp/probe2.lua" && mv "$tmp/probe2.lua" "$tmp/probe.lua"

# ---- luarocks make --tree
rockspec=rockspecs/verawebsockets-scm-1.rockspec
for v in ${VWS_INSTALL_LUAS:-5.1 5.4}; do
	tree=$tmp/rocks-$v
	if check "luarocks --lua-version $v make --tree <scratch> $rockspec" \
		env HOME="$tmp/home" luarocks --lua-version "$v" make --tree "$tree" "$rockspec"; then
		probe "lua$v, eval \"\$(luarocks --lua-version $v --tree <scratch> path)\"" "$tree/lib/lua/$v/verawebsockets.so" "lua$v" \
			"eval \"\$(luarocks --lua-version $v --tree '$tree' path)\""
		if [ -d lua ]; then
			missing=$(cd lua && find . -name '*.lua' -type f | while read -r f; do [ -f "$tree/share/lua/$v/${f#./}" ] || echo "${f#./}"; done)
			[ -z "$missing" ] && tap 1 "lua$v rock: every lua/**/*.lua in share/lua/$v with its tree" || tap 0 "lua$v rock: missing $missing"
		fi
	fi
done
tree=$tmp/rocks-oop
if check "VARIANT=oop luarocks make --tree <scratch> (the out-of-process variant)" \
	env HOME="$tmp/home" VARIANT=oop luarocks --lua-version 5.1 make --tree "$tree" "$rockspec"; then
	[ -x "$tree/lib/lua/5.1/vws-helper" ] && tap 1 "vws-helper installed next to the .so, executable" ||
		tap 0 "no executable $tree/lib/lua/5.1/vws-helper"
	probe "lua5.1, out-of-process rock (starts the installed vws-helper)" "$tree/lib/lua/5.1/verawebsockets.so" lua5.1 \
		"eval \"\$(luarocks --lua-version 5.1 --tree '$tree' path)\""
fi

# ---- make install / uninstall
# installed_files DIR: the files under DIR, sorted
installed_files() { (cd "$1" 2>/dev/null && find . -type f | LC_ALL=C sort); }
dest=$tmp/root
if check "make install DESTDIR=<scratch> (Lua 5.1, PREFIX=/usr/local)" make --no-print-directory install DESTDIR="$dest"; then
	[ -f "$dest/usr/local/lib/lua/5.1/verawebsockets.so" ] && tap 1 "the .so is in <DESTDIR>/usr/local/lib/lua/5.1 (on lua5.1's default cpath)" ||
		tap 0 "no <DESTDIR>/usr/local/lib/lua/5.1/verawebsockets.so: $(installed_files "$dest" | tr '\n' ' ')"
	probe "lua5.1 from the DESTDIR install" "$dest/usr/local/lib/lua/5.1/verawebsockets.so" lua5.1 \
		"export LUA_CPATH='$dest/usr/local/lib/lua/5.1/?.so' LUA_PATH='$dest/usr/local/share/lua/5.1/?.lua'"
	if [ -d lua ]; then
		missing=$(cd lua && find . -name '*.lua' -type f | while read -r f; do [ -f "$dest/usr/local/share/lua/5.1/${f#./}" ] || echo "${f#./}"; done)
		[ -z "$missing" ] && tap 1 "lua/**/*.lua installed in share/lua/5.1 with their tree" || tap 0 "not installed: $missing"
	fi
	check "make uninstall DESTDIR=<scratch>" make --no-print-directory uninstall DESTDIR="$dest"
	left=$(installed_files "$dest")
	[ -z "$left" ] && tap 1 "make uninstall left no file" || tap 0 "make uninstall left: $(tr '\n' ' ' <<<"$left")"
fi
dest=$tmp/root54
want=$(pkg-config --variable=INSTALL_CMOD lua5.4)
if check "make install LUA=5.4 PREFIX=/usr DESTDIR=<scratch> (Debian's INSTALL_CMOD $want)" \
	make --no-print-directory install LUA=5.4 PREFIX=/usr DESTDIR="$dest"; then
	probe "lua5.4 from the DESTDIR install" "$dest$want/verawebsockets.so" lua5.4 "export LUA_CPATH='$dest$want/?.so'"
	make --no-print-directory uninstall LUA=5.4 PREFIX=/usr DESTDIR="$dest" >/dev/null 2>&1
	left=$(installed_files "$dest")
	[ -z "$left" ] && tap 1 "make uninstall LUA=5.4 PREFIX=/usr left no file" || tap 0 "left: $(tr '\n' ' ' <<<"$left")"
fi
dest=$tmp/rootcmod
if check "make install LUA_CMOD=/opt/vws LUA_LMOD=/opt/vws DESTDIR=<scratch>" \
	make --no-print-directory install LUA_CMOD=/opt/vws LUA_LMOD=/opt/vws DESTDIR="$dest"; then
	[ -f "$dest/opt/vws/verawebsockets.so" ] && tap 1 "LUA_CMOD overrides the place" || tap 0 "not in <DESTDIR>/opt/vws: $(installed_files "$dest" | tr '\n' ' ')"
fi

# ---- make dist's layout (amd64 only here: make dist needs make cross for the others)
if [ -f build/out/amd64/inproc/verawebsockets.so ]; then
	distdir=$tmp/dist
	if check "build/dist.sh amd64" env VWS_DIST_DIR="$distdir" build/dist.sh amd64; then
		tgz=$(ls "$distdir"/verawebsockets-*-amd64.tar.gz 2>/dev/null | head -1)
		(cd "$distdir" && sha256sum -c --quiet SHA256SUMS) >/dev/null 2>&1 && tap 1 "SHA256SUMS verifies $(basename "$tgz")" || tap 0 "sha256sum -c SHA256SUMS failed"
		grep -q "^$(basename "$tgz") [0-9]* bytes" "$distdir/SIZES" && tap 1 "SIZES lists it" || tap 0 "SIZES does not list $(basename "$tgz")"
		mkdir -p "$tmp/unpacked" && tar -xzf "$tgz" -C "$tmp/unpacked"
		top=$(ls -d "$tmp"/unpacked/verawebsockets-*-amd64)
		missing=
		for f in verawebsockets.so README.md LICENSE BUILDINFO; do [ -f "$top/$f" ] || missing="$missing $f"; done
		[ -z "$missing" ] && tap 1 "the tarball holds verawebsockets.so README.md LICENSE BUILDINFO" || tap 0 "the tarball lacks$missing"
		probe "lua5.1 from the unpacked tarball, LUA_CPATH an absolute path" "$top/verawebsockets.so" lua5.1 "export LUA_CPATH='$top/?.so;;'"
	fi
else
	echo "# build/out/amd64/inproc not built: the dist check skips"
fi
finish

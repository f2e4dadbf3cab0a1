#!/usr/bin/env bash
# Docs coverage (luv .ci/docscov.sh style): every function the Lua module
# registers must have a heading in docs/api.md (the API reference):
#   ws.NAME          -> "### ws.NAME("
#   ws.client.NAME   -> "### ws.client.NAME("
#   wso methods      -> "**Method form:** `wso:NAME(" under the ws.NAME heading (luv style)
#   client methods   -> "### client:NAME("
#   server methods   -> "**Method form:** `server:NAME(" under the ws.NAME heading
# Usage: build/test-docs.sh [MODULE] [DOC]
#   MODULE: path to verawebsockets.so, or a LUA_CPATH; default ./verawebsockets.so
#   DOC: default docs/api.md
# Prints one line per name and "N passed, N failed"; exits non-zero when a
# name is undocumented or the module does not load.
set -uo pipefail
cd "$(dirname "$0")/.."
mod=${1:-./verawebsockets.so}
readme=${2:-docs/api.md}
if [[ $mod == *\?* ]]; then
	cpath=$mod
elif [ -f "$mod" ]; then
	cpath="$(cd "$(dirname "$mod")" && pwd)/?.so"
	if [ "$(basename "$mod")" != verawebsockets.so ]; then
		echo "test-docs: the module file must be named verawebsockets.so: $mod" >&2
		exit 2
	fi
else
	echo "test-docs: no module at $mod (run make build, or pass the .so)" >&2
	exit 2
fi
if [ ! -f "$readme" ]; then
	echo "test-docs: no $readme" >&2
	exit 2
fi
command -v lua5.1 >/dev/null || build/deps.sh lua

names=$(LUA_CPATH="$cpath" lua5.1 - <<'EOF'
local ws = require "verawebsockets"
local out = {}
local function funcs(t, prefix)
	for k, v in pairs(t) do
		if type(v) == "function" then out[#out + 1] = prefix .. k end
	end
end
funcs(ws, "ws.")
funcs(ws.client, "ws.client.")
local reg = debug.getregistry()
funcs(reg["verawebsockets.Conn"].__index, "wso:")
funcs(reg["verawebsockets.Client"].__index, "client:")
funcs(reg["verawebsockets.Server"].__index, "server:")
table.sort(out)
io.write(table.concat(out, "\n"), "\n")
EOF
) || { echo "test-docs: cannot load the module with LUA_CPATH=$cpath" >&2; exit 2; }

pass=0 fail=0 missing=()
for n in $names; do
	if grep -qF -- "### $n(" "$readme" || { [[ $n == wso:* || $n == server:* ]] && grep -qF -- "**Method form:** \`$n(" "$readme"; }; then
		pass=$((pass + 1))
		echo "ok $((pass + fail)) - $n"
	else
		fail=$((fail + 1))
		missing+=("$n")
		echo "not ok $((pass + fail)) - $n: no '### $n(' heading (or, for a method, '**Method form:** \`$n(' line) in $readme"
	fi
done
if [ $((pass + fail)) -eq 0 ]; then
	echo "test-docs: the module registered no functions" >&2
	fail=1
fi
echo "$pass passed, $fail failed"
if [ $fail -ne 0 ]; then
	echo "undocumented: ${missing[*]}" >&2
	exit 1
fi

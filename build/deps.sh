#!/usr/bin/env bash
# Installs what a target needs on a fresh Debian machine, only when missing.
# Usage: build/deps.sh GROUP...   (groups: lua luajit lua-dev lua-socket lua-copas lua-http lua5x luarocks peers proxy chromium qemu cross-arm cross-mips)
#   lua5x: Lua 5.2, 5.3, 5.4 interpreters and headers (the binding builds for each: make LUA=5.4)
set -euo pipefail
need=()
want() { # want CMD-or-FILE PACKAGE...
	local probe=$1; shift
	if [[ $probe == /* ]]; then [ -e "$probe" ] && return 0; else command -v "$probe" >/dev/null 2>&1 && return 0; fi
	need+=("$@")
}
for g in "$@"; do
	case $g in
	lua) want lua5.1 lua5.1 ;;
	luajit) want luajit luajit ;;
	lua-dev) want /usr/include/lua5.1/lua.h liblua5.1-0-dev ;;
	lua-socket) want /usr/share/lua/5.1/socket.lua lua-socket ;;
	lua-copas) want /usr/share/lua/5.1/copas.lua lua-copas lua-socket ;;
	lua-http) want /usr/share/lua/5.1/http/websocket.lua lua-http ;; # the lua-http client of make bench
	lua5x)
		for v in 5.2 5.3 5.4; do
			want "lua$v" "lua$v"
			want "/usr/include/lua$v/lua.h" "liblua$v-dev"
		done ;;
	luarocks) want luarocks luarocks ;;
	peers)
		want /usr/lib/python3/dist-packages/websockets python3-websockets
		want libwebsockets-test-server libwebsockets-test-server
		want node nodejs npm ;;
	proxy) want tinyproxy tinyproxy ;;
	chromium) want chromium chromium ;; # the browser test of the Origin policy (tests/test-secure.lua)
	qemu) want qemu-mipsel qemu-user ;;
	cross-arm)
		want arm-linux-gnueabi-gcc gcc-arm-linux-gnueabi
		want /usr/arm-linux-gnueabi/include/stdio.h libc6-dev-armel-cross
		want arm-linux-gnueabihf-gcc gcc-arm-linux-gnueabihf
		want /usr/arm-linux-gnueabihf/include/stdio.h libc6-dev-armhf-cross
		want aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu
		want /usr/aarch64-linux-gnu/include/stdio.h libc6-dev-arm64-cross ;;
	cross-mips)
		want mipsel-linux-gnu-gcc gcc-mipsel-linux-gnu
		want /usr/mipsel-linux-gnu/include/stdio.h libc6-dev-mipsel-cross ;;
	*) echo "deps.sh: unknown group $g" >&2; exit 2 ;;
	esac
done
[ ${#need[@]} -eq 0 ] && exit 0
echo "deps.sh: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if [ ! -f /var/lib/apt/lists/.vws-updated ] || [ -z "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v lock)" ]; then
	apt-get update -qq -o DPkg::Lock::Timeout=300 && touch /var/lib/apt/lists/.vws-updated
fi
apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${need[@]}" >/dev/null

-- LuaRocks: luarocks make rockspecs/verawebsockets-scm-1.rockspec (from a checkout), or
-- luarocks install on this file. Needs Go (1.22 or later) and a C compiler: the in-process
-- module is Go built as a C shared library (amd64, arm, arm64); on MIPS the out-of-process
-- variant (a small C .so and a static Go vws-helper next to it) is built instead.
rockspec_format = "3.0"
package = "verawebsockets"
version = "scm-1"
source = {
   url = "git+https://github.com/verawebsockets/verawebsockets.git",
   branch = "main",
}
description = {
   summary = "WebSocket client and server for Lua (Vera Luup plugins, lua5.1-5.4, LuaJIT)",
   detailed = [[
      A WebSocket client (and server) library for Lua, drop-in compatible with the original
      verawebsockets API of Vera controllers (LuaUPnP), with a lua-websockets compatible
      sync client. The engine is Go (gobwas/ws) behind a C ABI; the Lua binding is C.
   ]],
   homepage = "https://github.com/verawebsockets/verawebsockets",
   license = "MIT",
   labels = { "websocket", "vera", "luup", "network" },
}
dependencies = {
   "lua >= 5.1, < 5.5",
}
build = {
   type = "make",
   -- build/install.sh: the Lua version is read from LUA_INCDIR's lua.h; the .so lands in
   -- LIBDIR (with vws-helper where built), lua/**/*.lua in LUADIR keeping the tree.
   build_target = "build",
   build_variables = {
      CFLAGS = "$(CFLAGS)",
      LUA_INCDIR = "$(LUA_INCDIR)",
   },
   install_target = "install",
   install_variables = {
      LUA_INCDIR = "$(LUA_INCDIR)",
      LUA_CMOD = "$(LIBDIR)",
      LUA_LMOD = "$(LUADIR)",
   },
   copy_directories = {},
}

-- Debian's LuaSocket in the race interpreter (build/test-race.sh): a TCP round trip
-- on 127.0.0.1, select and sleep (C functions that block after unlocking). TAP lines.
local function check(ok, desc, ...)
	print((ok and "ok - " or "not ok - ") .. desc, ...)
end
local socket = require "socket"
check(socket._VERSION ~= nil, "require 'socket' (" .. tostring(socket._VERSION) .. ")")
local srv = assert(socket.bind("127.0.0.1", 0))
local _, port = srv:getsockname()
local cli = assert(socket.tcp())
cli:settimeout(2)
assert(cli:connect("127.0.0.1", port))
srv:settimeout(2)
local conn = assert(srv:accept())
conn:settimeout(2)
assert(cli:send("hello race\n"))
local line = conn:receive("*l")
conn:send(line:upper() .. "\n")
local back = cli:receive("*l")
check(line == "hello race" and back == "HELLO RACE", "TCP round trip over 127.0.0.1:" .. port)
local t0 = socket.gettime()
local r = socket.select({ srv }, nil, 0.1)
socket.sleep(0.05)
local dt = socket.gettime() - t0
check(#r == 0 and dt >= 0.14 and dt < 2, string.format("select timed out and sleep slept (%.2f s)", dt))
cli:close() conn:close() srv:close()
local mime = require "mime"
check(mime.b64("race") == "cmFjZQ==", "require 'mime' (mime/core.so)")

-- The synchronous client in lua-websockets style: ws.client.sync / ws.client.new.
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/lib/?.lua;" .. package.path
local tap = require "tap"
local ws = tap.ws
local test, ok, eq, like = tap.test, tap.ok, tap.eq, tap.like

test("connect, send/receive text and binary, close", function()
	local c = ws.client.sync { timeout = 5 * tap.factor }
	eq(c:connect(tap.url("/echo")), true)
	eq(c:send("hello sync"), true)
	local msg, op = c:receive()
	eq(msg, "hello sync"); eq(op, ws.TEXT)
	local bin = "\0\1\2\255"
	eq(c:send(bin, ws.BINARY), true)
	msg, op = c:receive()
	eq(msg, bin); eq(op, ws.BINARY)
	eq(c:send("explicit", ws.TEXT), true)
	msg, op = c:receive()
	eq(msg, "explicit"); eq(op, 1)
	local was_clean, code = c:close(4001, "lost interest")
	eq(was_clean, true); eq(code, 4001)
end)

test("ws.client.new is the same client; close() defaults to 1000", function()
	local id = tap.uid("sync")
	local c = ws.client.new()
	eq(c:connect(tap.url("/echo?id=" .. id)), true)
	local was_clean, code = c:close()
	eq(was_clean, true); eq(code, 1000)
	local seen = tap.closeinfo(id)
	eq(seen.code, 1000)
end)

test("connect with a protocol", function()
	local c = ws.client.sync { timeout = 5 * tap.factor }
	eq(c:connect(tap.url("/subproto"), "echo-protocol"), true)
	eq(c:send("p"), true)
	eq(c:receive(), "p")
	c:close()
end)

test("messages pushed by the server, in order, and a 1 MiB round trip", function()
	local c = ws.client.sync { timeout = 5 * tap.factor }
	eq(c:connect(tap.url("/push?n=50")), true)
	for i = 1, 50 do
		local m = c:receive()
		if m ~= tostring(i) then eq(m, tostring(i), "message " .. i) end
	end
	local big = string.rep("0123456789abcdef", 65536)
	eq(c:send(big, ws.BINARY), true)
	local m, op = c:receive()
	eq(op, ws.BINARY)
	ok(m == big, "1 MiB intact (" .. tostring(m and #m) .. " bytes)")
	c:close()
end)

test("receive after the server closed -> nil, nil, was_clean, code, reason", function()
	local c = ws.client.sync { timeout = 5 * tap.factor }
	eq(c:connect(tap.url("/closewith?code=4002&reason=why")), true)
	local msg, op, was_clean, code, reason = c:receive()
	eq(msg, nil); eq(op, nil)
	eq(was_clean, true); eq(code, 4002); eq(reason, "why")
	local r = c:send("after close")
	eq(r, nil, "send after close")
end)

test("receive after a dropped connection -> nil, nil, false, 1006", function()
	local c = ws.client.sync { timeout = 5 * tap.factor }
	eq(c:connect(tap.url("/drop?msg=last")), true)
	eq(c:receive(), "last")
	local msg, op, was_clean, code = c:receive()
	eq(msg, nil); eq(op, nil)
	eq(was_clean, false); eq(code, 1006)
end)

test("connect failures -> nil, err", function()
	local c = ws.client.sync { timeout = 5 * tap.factor }
	local r, err = c:connect(tap.url("/status404"))
	eq(r, nil); eq(type(err), "string")
	like(err, "101")
	r, err = c:connect("ws://127.0.0.1:" .. tap.env("CLOSED_PORT") .. "/")
	eq(r, nil); eq(type(err), "string")
end)

test("receive honours the timeout", function()
	-- the client has one timeout, also the connect timeout: long enough for a connect under load
	local timeout = 2 * tap.factor
	local c = ws.client.sync { timeout = timeout }
	eq(c:connect(tap.url("/noping")), true)
	local t0 = tap.now()
	local msg, err = c:receive()
	local dt = tap.now() - t0
	eq(msg, nil); eq(err, "timeout")
	ok(dt >= timeout - 0.2 and dt < timeout + 3 * tap.factor, "returned after " .. dt .. " s for timeout " .. timeout)
	c:close()
end)

test("sync{...} with an unknown option raises", function()
	tap.raises(function() ws.client.sync { bogus = 1 } end, "bogus")
end)

tap.done()

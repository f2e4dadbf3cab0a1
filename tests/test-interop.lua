-- The same echo checks against independent servers: Python `websockets`
-- (Debian python3-websockets) and Node `ws` (tests/peers), incl. permessage-deflate.
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/lib/?.lua;" .. package.path
local tap = require "tap"
local ws = tap.ws
local test, ok, eq, like = tap.test, tap.ok, tap.eq, tap.like

local open = tap.open

local function close(wso, rec)
	ws.close(wso, 1000)
	rec.wait(4, 5)
	local clean, code = rec.last(4)
	eq(clean, true, "clean close")
	eq(code, 1000)
end

local function bytes(n)
	local t = {}
	for i = 0, 250 do t[#t + 1] = string.char(i) end
	local c = table.concat(t)
	local s = string.rep(c, math.floor(n / 251))
	return s .. c:sub(1, n - #s)
end

local function suite(peer, port)
	local base = "ws://127.0.0.1:" .. port

	test(peer .. ": text and binary echo", function()
		local wso, rec = open(base .. "/echo")
		eq(ws.send(wso, "hello " .. peer), true)
		eq(ws.send(wso, "\0\1\2\255", "binary"), true)
		eq(ws.send(wso, "ünïcödé ✓"), true)
		rec.wait(8, 5, 3)
		local d, k = rec.nth(8, 1); eq(d, "hello " .. peer); eq(k, "text")
		d, k = rec.nth(8, 2); eq(d, "\0\1\2\255"); eq(k, "binary")
		d, k = rec.nth(8, 3); eq(d, "ünïcödé ✓"); eq(k, "text")
		close(wso, rec)
	end)

	test(peer .. ": fragmented messages from the server", function()
		local wso, rec = open(base .. "/fragments")
		rec.wait(8, 5, 2)
		local d, k = rec.nth(8, 1); eq(d, "Hello, " .. peer); eq(k, "text")
		d, k = rec.nth(8, 2); eq(d, "\0\1\2\255"); eq(k, "binary")
		close(wso, rec)
	end)

	test(peer .. ": 64-bit length messages (70000 bytes both ways, 1 MiB echo)", function()
		local wso, rec = open(base .. "/big?n=70000")
		rec.wait(8, 10)
		local d, k = rec.nth(8, 1)
		eq(k, "binary"); eq(#d, 70000)
		ok(d == bytes(70000), "server's 70000 bytes intact")
		local big = bytes(1024 * 1024)
		eq(ws.send(wso, big, "binary"), true)
		eq(ws.send(wso, string.rep("t", 65536)), true)
		rec.wait(8, 15, 3)
		ok(rec.nth(8, 2) == big, "1 MiB echo intact")
		eq(rec.nth(8, 3), string.rep("t", 65536))
		close(wso, rec)
	end)

	test(peer .. ": 200 messages in order", function()
		local wso, rec = open(base .. "/echo")
		for i = 1, 200 do ws.send(wso, "m" .. i) end
		rec.wait(8, 10, 200)
		for i = 1, 200 do
			local d = rec.nth(8, i)
			if d ~= "m" .. i then eq(d, "m" .. i, "message " .. i) end
		end
		close(wso, rec)
	end)

	test(peer .. ": ping -> pong", function()
		local wso, rec = open(base .. "/echo")
		eq(ws.ping(wso, peer), true)
		rec.wait(9)
		eq(rec.last(9), peer)
		close(wso, rec)
	end)

	test(peer .. ": compression = true negotiates permessage-deflate and echoes", function()
		local wso, rec = open(base .. "/ext", { compression = true })
		rec.wait(8)
		like(rec.nth(8, 1), "permessage%-deflate", "negotiated extensions")
		local text = string.rep("compress me please, ", 5000)
		local bin = bytes(300000)
		eq(ws.send(wso, text), true)
		eq(ws.send(wso, bin, "binary"), true)
		eq(ws.send(wso, ""), true)
		rec.wait(8, 10, 4)
		eq(rec.nth(8, 2), text)
		local d, k = rec.nth(8, 3)
		eq(k, "binary")
		ok(d == bin, "binary intact through deflate")
		eq(rec.nth(8, 4), "")
		close(wso, rec)
	end)

	test(peer .. ": compression = true, fragmented and large messages from the server", function()
		local wso, rec = open(base .. "/fragments", { compression = true })
		rec.wait(8, 5, 2)
		eq(rec.nth(8, 1), "Hello, " .. peer)
		eq(rec.nth(8, 2), "\0\1\2\255")
		close(wso, rec)
		local wso2, rec2 = open(base .. "/big?n=200000", { compression = true })
		rec2.wait(8, 10)
		ok(rec2.nth(8, 1) == bytes(200000), "200000 deflated bytes intact")
		close(wso2, rec2)
	end)

	test(peer .. ": without compression no extension is negotiated", function()
		local wso, rec = open(base .. "/ext")
		rec.wait(8)
		eq(rec.nth(8, 1), "")
		close(wso, rec)
	end)
end

local py = os.getenv("VWS_TEST_PY_PORT")
if py and py ~= "" then suite("python", py) else tap.skip("python websockets peer", "not running") end
local node = os.getenv("VWS_TEST_NODE_PORT")
if node and node ~= "" then suite("node", node) else tap.skip("node ws peer", "not running") end

local lws = os.getenv("VWS_TEST_LWS_PORT")
if lws and lws ~= "" then
	local base = "ws://127.0.0.1:" .. lws .. "/"
	test("libwebsockets-test-server: lws-mirror-protocol echoes text, protocol chosen", function()
		local wso, rec = open(base, { protocols = { "lws-mirror-protocol" } })
		eq(rec.last(3), "lws-mirror-protocol")
		eq(ws.protocol(wso), "lws-mirror-protocol")
		eq(ws.send(wso, "hello lws"), true)
		eq(ws.send(wso, string.rep("L", 3000)), true)
		rec.wait(8, 5, 2)
		eq(rec.nth(8, 1), "hello lws")
		eq(rec.nth(8, 2), string.rep("L", 3000))
		eq(ws.ping(wso, "lws"), true)
		rec.wait(9)
		eq(rec.last(9), "lws")
		close(wso, rec)
	end)
	test("libwebsockets-test-server: dumb-increment-protocol pushes increasing numbers", function()
		local wso, rec = open(base, { protocols = { "dumb-increment-protocol" } })
		rec.wait(8, 5, 5)
		local first = tonumber((rec.nth(8, 1)))
		ok(first, "a number: " .. tap.show((rec.nth(8, 1))))
		for i = 2, 5 do eq(tonumber((rec.nth(8, i))), first + i - 1, "message " .. i) end
		close(wso, rec)
	end)
else
	tap.skip("libwebsockets-test-server peer", "not running")
end

tap.done()

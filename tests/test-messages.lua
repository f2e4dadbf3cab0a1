-- Messages: text/binary, sizes, order, fragments, close codes, ping/pong, writeable.
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/lib/?.lua;" .. package.path
local tap = require "tap"
local ws = tap.ws
local test, ok, eq, like = tap.test, tap.ok, tap.eq, tap.like

-- open(path, opts) -> wso, rec   (standalone, waits for event 3)
local open = tap.open

local function close(wso, rec, code, reason)
	ws.close(wso, code, reason)
	rec.wait(4, 5)
	eq(ws.state(wso), "closed")
	return rec.last(4)
end

local function pattern(n)
	local t, chunk = {}, {}
	for i = 0, 255 do chunk[#chunk + 1] = string.char(i) end
	chunk = table.concat(chunk)
	local reps = math.floor(n / 256)
	return string.rep(chunk, reps) .. chunk:sub(1, n - reps * 256)
end

test("text and binary keep their type; all 256 byte values and NULs survive", function()
	local wso, rec = open()
	eq(ws.send(wso, "plain text"), true)
	eq(ws.send(wso, "explicit text", "text"), true)
	local bin = pattern(256) .. "\0\0end"
	eq(ws.send(wso, bin, "binary"), true)
	eq(ws.send(wso, "héllo wörld ✓", "text"), true)
	rec.wait(8, 5, 4)
	local d, k = rec.nth(8, 1); eq(d, "plain text"); eq(k, "text")
	d, k = rec.nth(8, 2); eq(d, "explicit text"); eq(k, "text")
	d, k = rec.nth(8, 3); eq(d, bin); eq(k, "binary")
	d, k = rec.nth(8, 4); eq(d, "héllo wörld ✓"); eq(k, "text")
	close(wso, rec)
end)

test("empty messages", function()
	local wso, rec = open()
	eq(ws.send(wso, ""), true)
	eq(ws.send(wso, "", "binary"), true)
	rec.wait(8, 5, 2)
	local d, k = rec.nth(8, 1); eq(d, ""); eq(k, "text")
	d, k = rec.nth(8, 2); eq(d, ""); eq(k, "binary")
	close(wso, rec)
end)

test("method call style and constants as kind are the same connection", function()
	local wso, rec = open()
	eq(wso:send("via method"), true)
	eq(wso:send("bin", "binary"), true)
	rec.wait(8, 5, 2)
	eq(rec.nth(8, 1), "via method")
	local _, k = rec.nth(8, 2)
	eq(k, "binary")
	close(wso, rec)
end)

test("1 MiB binary echo", function()
	local wso, rec = open()
	local big = pattern(1024 * 1024)
	eq(ws.send(wso, big, "binary"), true)
	rec.wait(8, 15)
	local d, k = rec.last(8)
	eq(k, "binary")
	eq(#d, #big)
	ok(d == big, "content intact")
	close(wso, rec)
end)

test("a 16 MiB message from the server (= max_message_size) is delivered", function()
	local wso, rec = open("/big?n=16777216")
	rec.wait(8, 30)
	local d, k = rec.last(8)
	eq(k, "binary")
	eq(#d, 16777216)
	eq(d:byte(1), 0); eq(d:byte(252), 0); eq(d:byte(#d), (16777216 - 1) % 251)
	close(wso, rec)
end)

test("sending 16 MiB + 1 -> nil, err (too big); the connection stays usable", function()
	local wso, rec = open()
	local r, err, name = ws.send(wso, string.rep("x", 16777217), "binary")
	eq(r, nil, "send over max_message_size")
	eq(type(err), "string")
	eq(name, "ETOOBIG", "the stable error name")
	eq(ws.state(wso), "open")
	eq(ws.send(wso, "still fine"), true)
	rec.wait(8)
	eq(rec.last(8), "still fine")
	close(wso, rec)
end)

test("receiving 16 MiB + 1 -> the client closes with 1009", function()
	local id = tap.uid("big")
	local wso, rec = open("/big?n=16777217&id=" .. id)
	rec.wait(4, 30)
	eq(rec.count(8), 0, "the oversized message is not delivered")
	local clean, code = rec.last(4)
	eq(code, 1009, "event 4 code")
	local seen = tap.closeinfo(id)
	eq(seen.code, 1009, "close code the server received")
	eq(ws.state(wso), "closed")
end)

test("max_message_size = 1000: send 1000 ok, 1001 refused, 1001 received -> 1009", function()
	local wso, rec = open("/echo", { max_message_size = 1000 })
	eq(ws.send(wso, string.rep("a", 1000)), true)
	local r, err = ws.send(wso, string.rep("a", 1001))
	eq(r, nil); eq(type(err), "string")
	rec.wait(8)
	eq(#rec.last(8), 1000)
	close(wso, rec)
	local id = tap.uid("mms")
	local wso2, rec2 = open("/big?n=1001&id=" .. id, { max_message_size = 1000 })
	rec2.wait(4, 10)
	local _, code = rec2.last(4)
	eq(code, 1009)
	eq(tap.closeinfo(id).code, 1009, "server saw 1009")
	eq(rec2.count(8), 0)
end)

test("1000 messages sent back to back arrive in order", function()
	local wso, rec = open()
	for i = 1, 1000 do eq(ws.send(wso, tostring(i)), true) end
	rec.wait(8, 20, 1000)
	for i = 1, 1000 do
		local d = rec.nth(8, i)
		if d ~= tostring(i) then eq(d, tostring(i), "message #" .. i) end
	end
	close(wso, rec)
end)

test("300 messages of mixed sizes (10 B to 70 KB, small ones copied and large ones handed on in the same batches) arrive whole and in order", function()
	local sizes = { 10, 5000, 100, 70000, 4096, 4095, 20000, 1, 65536, 3000 }
	local body = pattern(70000)
	local want = {}
	local wso, rec = open()
	for i = 1, 300 do
		local tag = i .. ":"
		local n = math.max(sizes[(i - 1) % #sizes + 1], #tag)
		want[i] = tag .. body:sub(1, n - #tag)
		eq(ws.send(wso, want[i], ws.BINARY), true)
	end
	tap.sleep(1) -- the echoes queue up meanwhile: batches of many events
	rec.wait(8, 30, 300)
	local bad = 0
	for i = 1, 300 do
		local d = rec.nth(8, i)
		if d ~= want[i] then
			bad = bad + 1
			if bad == 1 then eq(d and #d, #want[i], "message #" .. i .. " (length; first of the bad ones)") end
		end
	end
	eq(bad, 0, "messages that arrived changed or out of order")
	close(wso, rec)
end)

test("500 messages pushed by the server on connect arrive in order", function()
	local wso, rec = open("/push?n=500&size=100")
	rec.wait(8, 20, 500)
	for i = 1, 500 do
		local d = rec.nth(8, i)
		if not (d and d:match("^(%d+)") == tostring(i) and #d == 100) then
			eq(d, tostring(i) .. "....", "message #" .. i)
		end
	end
	close(wso, rec)
end)

test("40 connections in one loop (from 16 on their sockets are polled through one epoll instance): each echoes 50 messages in order, also after 20 closed and 20 others opened", function()
	local conns = {}
	local function open_n(n)
		for _ = 1, n do
			local wso, rec = open()
			conns[#conns + 1] = { wso = wso, rec = rec }
		end
	end
	local function round(tag)
		local failed = 0
		for _, c in ipairs(conns) do
			c.base = c.rec.count(8)
			for i = 1, 50 do
				if ws.send(c.wso, tag .. i) ~= true then failed = failed + 1 end
			end
		end
		eq(failed, 0, tag .. ": sends refused")
		tap.wait(function()
			for _, c in ipairs(conns) do
				if c.rec.count(8) < c.base + 50 then return false end
			end
			return true
		end, 20, tag .. ": every echo")
		local bad = 0
		for _, c in ipairs(conns) do
			for i = 1, 50 do
				if c.rec.nth(8, c.base + i) ~= tag .. i then bad = bad + 1 end
			end
			if c.rec.count(8) ~= c.base + 50 then bad = bad + 1 end
		end
		eq(bad, 0, tag .. ": echoes missing, extra or out of order")
	end
	open_n(40)
	round("first ")
	for i = 1, 20 do close(conns[i].wso, conns[i].rec) end
	for _ = 1, 20 do table.remove(conns, 1) end
	open_n(20)
	round("second ")
	for _, c in ipairs(conns) do close(c.wso, c.rec) end
end)

test("fragmented messages (with a ping in between) are delivered whole", function()
	local wso, rec = open("/fragments")
	rec.wait(8, 5, 2)
	local d, k = rec.nth(8, 1)
	eq(d, "Hello, fragmented world"); eq(k, "text")
	d, k = rec.nth(8, 2)
	eq(d, "\0\1\2\3\255"); eq(k, "binary")
	close(wso, rec)
end)

test("ws.close(wso, 4001, \"bye\") -> event 4 (true, 4001, \"bye\"); server sees 4001 bye", function()
	local id = tap.uid("close")
	local wso, rec = open("/echo?id=" .. id)
	eq(ws.close(wso, 4001, "bye"), true)
	local st = ws.state(wso)
	ok(st == "closing" or st == "closed", "state after close: " .. st)
	rec.wait(4)
	local clean, code, reason, w = rec.last(4)
	eq(clean, true); eq(code, 4001); eq(reason, "bye")
	ok(rawequal(w, wso))
	local seen = tap.closeinfo(id)
	eq(seen.code, 4001); eq(seen.reason, "bye"); eq(seen.clean, true)
	eq(ws.close(wso), true, "close again")
	tap.pump(0.2)
	eq(rec.count(4), 1, "one close event")
end)

test("ws.close(wso) -> 1000", function()
	local id = tap.uid("close")
	local wso, rec = open("/echo?id=" .. id)
	local clean, code = close(wso, rec)
	eq(clean, true); eq(code, 1000)
	eq(tap.closeinfo(id).code, 1000)
end)

test("close reason of 123 bytes is accepted", function()
	local id = tap.uid("close")
	local wso, rec = open("/echo?id=" .. id)
	local reason = string.rep("r", 123)
	local clean, code, r = close(wso, rec, 4002, reason)
	eq(code, 4002); eq(r, reason)
	eq(tap.closeinfo(id).reason, reason)
end)

test("server closes with code and reason -> event 4 (true, 4002, \"why\")", function()
	local wso, rec = open("/closewith?code=4002&reason=why")
	rec.wait(4)
	local clean, code, reason = rec.last(4)
	eq(clean, true); eq(code, 4002); eq(reason, "why")
	eq(ws.state(wso), "closed")
end)

test("closed by the peer: in the close handler the state is closed and a send is refused at once", function()
	local rec, seen = tap.recorder(), {}
	local record = rec.handlers[4]
	rec.handlers[4] = function(clean, code, reason, w)
		seen.state = ws.state(w)
		seen.r, seen.err, seen.name = ws.send(w, "late")
		return record(clean, code, reason, w)
	end
	local wso = tap.create { url = tap.url("/closewith?code=4002&reason=why"), event_handlers = rec.handlers }
	eq(ws.connect(wso), true)
	rec.wait(4)
	eq(seen.state, "closed", "state in the handler")
	eq(seen.r, nil, "send in the handler")
	eq(seen.name, "ESTATE")
	eq(ws.state(wso), "closed")
end)

test("after ws.close the state is never open again and a send is refused at once", function()
	for i = 1, 5 do
		local wso, rec = open("/echo")
		eq(ws.send(wso, "x" .. i), true)
		eq(ws.close(wso), true)
		local st = ws.state(wso)
		ok(st == "closing" or st == "closed", "state right after close: " .. st)
		local r, _, name = ws.send(wso, "after close")
		eq(r, nil, "send after close")
		eq(name, "ESTATE")
		local opened = 0
		tap.wait(function()
			if ws.state(wso) == "open" then opened = opened + 1 end
			return rec.count(4) > 0
		end, 5, "event 4")
		eq(opened, 0, "never open again while closing")
		eq(ws.state(wso), "closed")
	end
end)

test("server closes without a code -> event 4 code 1005", function()
	local wso, rec = open("/closewith")
	rec.wait(4)
	local clean, code = rec.last(4)
	eq(clean, true); eq(code, 1005)
end)

test("server sends a message then drops TCP -> event 8 then event 4 (false, 1006)", function()
	local wso, rec = open("/drop?msg=last+words")
	rec.wait(4)
	eq(rec.count(8), 1)
	eq(rec.last(8), "last words")
	local clean, code = rec.last(4)
	eq(clean, false); eq(code, 1006)
	eq(rec.list[#rec.list].ev, 4, "close is the last event")
	eq(ws.state(wso), "closed")
end)

test("close_timeout: a peer that never answers the close -> event 4 within the timeout", function()
	local wso, rec = open("/noping", { close_timeout = 0.5 })
	local t0 = tap.now()
	ws.close(wso, 1000)
	rec.wait(4, 5)
	local dt = tap.now() - t0
	ok(dt < 3 * tap.factor, "took " .. dt .. " s with close_timeout 0.5")
	local clean = rec.last(4)
	eq(clean, false, "not clean")
end)

test("ws.ping -> event 9 with the payload", function()
	local wso, rec = open()
	eq(ws.ping(wso, "ping-1"), true)
	eq(ws.ping(wso), true)
	rec.wait(9, 5, 2)
	local p, w = rec.nth(9, 1)
	eq(p, "ping-1"); ok(rawequal(w, wso), "wso last")
	eq(rec.nth(9, 2), "")
	close(wso, rec)
end)

test("named pong handler gets (wso, payload)", function()
	local got
	local wso
	local rec = tap.recorder()
	wso = tap.create { url = tap.url(), event_handlers = { open = function() end,
		pong = tap.expect(function(w, p) got = { w, p } end, 1, "pong"), close = rec.handlers[4] } }
	ws.connect(wso)
	tap.wait(function() return ws.state(wso) == "open" end, 5, "open")
	eq(wso:ping("named"), true)
	tap.wait(function() return got end, 5, "pong")
	ok(rawequal(got[1], wso)); eq(got[2], "named")
	ws.close(wso); rec.wait(4)
end)

test("pongs without a pong handler are not an error; ping payload > 125 refused", function()
	local got = {}
	local wso = tap.create { url = tap.url(), event_handlers = { [8] = function(d) got[#got + 1] = d end } }
	ws.connect(wso)
	tap.wait(function() return ws.state(wso) == "open" end, 5, "open")
	eq(ws.ping(wso, "nobody"), true)
	local okc, r = pcall(ws.ping, wso, string.rep("p", 126))
	ok(not okc or r == nil, "a 126-byte ping must be refused (raise or nil, err)")
	ws.send(wso, "after")
	tap.wait(function() return #got == 1 end, 5, "echo")
	tap.close_and_wait(wso)
end)

test("a ping from the server is answered with its payload", function()
	local wso, rec = open("/serverping?payload=srv123")
	rec.wait(8)
	eq(rec.last(8), "pong:srv123")
	close(wso, rec)
end)

test("a ping is answered while a handler runs for seconds (the engine reads meanwhile)", function()
	-- The script's thread reads its connections while it waits in ws.loop or
	-- ws.dispatch; busy in a handler, it leaves them to the engine.
	local busy = 2 * tap.factor
	local rec = tap.recorder()
	local n, record, wso = 0, rec.handlers[8], nil
	wso = tap.create({ url = tap.url("/pingwhile"), event_handlers = { [1] = rec.handlers[1],
		[3] = rec.handlers[3], [4] = rec.handlers[4], [8] = function(...)
			record(...)
			n = n + 1
			if n < 5 then
				ws.send(wso, "echo " .. n)
			elseif n == 5 then
				ws.send(wso, "ping me")
				local t0 = tap.now()
				while tap.now() - t0 < busy do end -- busy: no ws.loop, no ws.dispatch
			end
		end } })
	eq(ws.connect(wso), true)
	rec.wait(3, 10)
	ws.send(wso, "echo 0")
	rec.wait(8, 10 + busy, 6)
	local pong = rec.nth(8, 6)
	local ms = tonumber(tostring(pong):match("^pong after (%d+) ms$"))
	ok(ms, "the server saw the pong: " .. tostring(pong))
	ok(ms and ms < busy * 1000 / 2, "answered while the handler was busy (" .. tostring(ms) .. " ms; busy "
		.. busy * 1000 .. " ms)")
	close(wso, rec)
end)

test("writeable (10) after the send queue drained; buffered() back to 0", function()
	local wso, rec = open()
	eq(ws.buffered(wso), 0)
	eq(ws.send(wso, string.rep("w", 200000)), true)
	local b = ws.buffered(wso)
	eq(type(b), "number")
	ok(b >= 0 and b <= 200000 + 16, "buffered " .. b)
	rec.wait(10, 10)
	local w = rec.last(10)
	ok(rawequal(w, wso), "writeable: (wso)")
	rec.wait(8, 10)
	tap.wait(function() return ws.buffered(wso) == 0 end, 2, "buffered 0")
	eq(wso:buffered(), 0)
	close(wso, rec)
end)

test("state goes created -> connecting -> open -> closing/closed -> closed", function()
	local rec = tap.recorder()
	local states = {}
	local wso
	rec.handlers[3] = function() states.at_open = ws.state(wso) end
	rec.handlers[4] = function() states.at_close = ws.state(wso) end
	wso = tap.create { url = tap.url("/delay?ms=300"), event_handlers = rec.handlers }
	eq(ws.state(wso), "created")
	eq(wso:state(), "created")
	ws.connect(wso)
	eq(ws.state(wso), "connecting")
	tap.wait(function() return states.at_open end, 5, "open")
	eq(states.at_open, "open")
	ws.close(wso)
	tap.wait(function() return states.at_close end, 5, "close")
	eq(states.at_close, "closed")
end)

tap.done()

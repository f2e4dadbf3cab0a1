-- Server API (ws.listen): echo, handler arguments, broadcast, clients, closing, limits,
-- bad arguments, handler errors, client wsos, stop_listening, headers. Independent
-- clients, keepalive, a stalled client, wss and Luup mode: tests/test-server-peers.lua.
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/lib/?.lua;" .. package.path
local tap = require "tap"
local ws = tap.ws
local ok, eq, like = tap.ok, tap.eq, tap.like
-- the server helpers (tests/lib/srvtap.lua); requiring it checks that the variant has servers
local st = require "srvtap"
local stest, srecorder, listen, echo, url, connect, refused =
	st.stest, st.srecorder, st.listen, st.echo, st.url, st.connect, st.refused

local LISTEN = "bad argument #1 to 'listen'"

-- ---------------------------------------------------------------- helpers
local function pattern(n)
	local t = {}
	for i = 0, 255 do t[#t + 1] = string.char(i) end
	local chunk = table.concat(t)
	local reps = math.floor(n / 256)
	return string.rep(chunk, reps) .. chunk:sub(1, n - reps * 256)
end

local function contains(list, x)
	for _, v in ipairs(list) do if rawequal(v, x) then return true end end
	return false
end

-- ---------------------------------------------------------------- echo, handlers
stest("echo: text and binary keep their kind; NULs, all byte values and 64 KiB intact", function()
	local srv, srec = listen({}, echo(srecorder()))
	local port = srv:port()
	eq(type(port), "number", "srv:port()")
	ok(port > 0 and port < 65536, "port in range: " .. tostring(port))
	eq(ws.port(srv), port, "ws.port(srv)")
	local wso, rec = connect(srv, "/echo")
	local big = pattern(65536)
	local bigtext = string.rep("0123456789abcdef", 4096)
	eq(ws.send(wso, "hello server"), true)
	eq(ws.send(wso, "a\0b", "text"), true)
	eq(ws.send(wso, "\0\1\2\255", "binary"), true)
	eq(ws.send(wso, big, "binary"), true)
	eq(ws.send(wso, bigtext), true)
	eq(ws.send(wso, "", "binary"), true)
	rec.wait(8, 10, 6)
	local want = { { "hello server", "text" }, { "a\0b", "text" }, { "\0\1\2\255", "binary" },
		{ big, "binary" }, { bigtext, "text" }, { "", "binary" } }
	for i, w in ipairs(want) do
		local d, k = rec.nth(8, i)
		eq(k, w[2], "client: kind of message " .. i)
		ok(d == w[1], "client: message " .. i .. " intact (" .. #tostring(d) .. " bytes, want " .. #w[1] .. ")")
		local sd, sk, sc = srec.nth(6, i)
		eq(sk, w[2], "server: kind of message " .. i)
		ok(sd == w[1], "server: message " .. i .. " intact")
		ok(rawequal(sc, srec.wsos()[1]), "server: message " .. i .. " from the opened wso")
	end
	eq(rec.count(8), 6, "no extra messages")
	ws.close(wso, 1000)
	rec.wait(4)
	eq(rec.last(4), true, "clean close")
end)

stest("open: path with query; protocol negotiated (server {chat}, client offers {nope, chat})", function()
	local srv, srec = listen { protocols = { "chat" } }
	local wso, rec = connect(srv, "/chat?room=1", { protocols = { "nope", "chat" } })
	srec.wait(0)
	local path, proto, c = srec.last(0)
	eq(path, "/chat?room=1", "server: path")
	eq(proto, "chat", "server: protocol")
	eq(ws.protocol(c), "chat", "server: ws.protocol(client wso)")
	eq(rec.last(3), "chat", "client: open event protocol")
	eq(ws.protocol(wso), "chat", "client: ws.protocol")
	tap.close_and_wait(wso)
end)

stest("named keys: open (wso, path, protocol), message (wso, data, kind), pong (wso, payload), close (wso, clean, code, reason), writeable (wso)", function()
	local got = { open = {}, message = {}, pong = {}, close = {}, writeable = {} }
	local function rec_(name)
		return function(...) got[name][#got[name] + 1] = { n = select("#", ...), ... } end
	end
	local handlers = { open = rec_("open"), pong = rec_("pong"), close = rec_("close"), writeable = rec_("writeable") }
	handlers.message = function(c, data, kind)
		rec_("message")(c, data, kind)
		ws.ping(c, "pp")
		c:send("re:" .. data, kind)
	end
	local srv = listen { event_handlers = handlers }
	local wso, rec = connect(srv, "/named?k=v")
	tap.wait(function() return #got.open == 1 end, 5, "open")
	local o = got.open[1]
	eq(o.n, 3, "open: 3 arguments")
	eq(type(o[1]), "userdata", "open: #1 is the wso")
	eq(o[2], "/named?k=v", "open: #2 path")
	eq(o[3], "", "open: #3 protocol (none)")
	local c = o[1]
	eq(ws.send(wso, "bin\0", "binary"), true)
	rec.wait(8)
	eq(rec.last(8), "re:bin\0")
	tap.wait(function() return #got.pong == 1 end, 5, "pong")
	local m, p = got.message[1], got.pong[1]
	ok(rawequal(m[1], c), "message: #1 is the same wso")
	eq(m[2], "bin\0", "message: #2 data")
	eq(m[3], "binary", "message: #3 kind")
	eq(p.n, 2, "pong: 2 arguments")
	ok(rawequal(p[1], c), "pong: #1 the wso")
	eq(p[2], "pp", "pong: #2 payload")
	tap.wait(function() return #got.writeable >= 1 end, 5, "writeable")
	eq(got.writeable[1].n, 1, "writeable: 1 argument")
	ok(rawequal(got.writeable[1][1], c), "writeable: the wso")
	ws.close(wso, 4000, "nm")
	tap.wait(function() return #got.close == 1 end, 5, "close")
	local cl = got.close[1]
	eq(cl.n, 4, "close: 4 arguments")
	ok(rawequal(cl[1], c), "close: #1 the wso")
	eq(cl[2], true, "close: #2 clean")
	eq(cl[3], 4000, "close: #3 code")
	eq(cl[4], "nm", "close: #4 reason")
	rec.wait(4)
end)

stest("numeric keys: [0] (path, protocol, wso), [6] (data, kind, wso), [7] (payload, wso), [4] (clean, code, reason, wso), [11] (wso)", function()
	local srec = srecorder()
	local writeable = {}
	srec.handlers[11] = function(...) writeable[#writeable + 1] = { n = select("#", ...), ... } end
	srec.on(6, function(data, kind, c)
		ws.ping(c, "np")
		ws.send(c, "re:" .. data, kind)
	end)
	local srv = listen({ protocols = { "p1", "p2" } }, srec)
	local wso, rec = connect(srv, "/numeric", { protocols = { "p2" } })
	srec.wait(0)
	local e = srec.list[1]
	eq(e.ev, 0, "first event is open")
	eq(e.n, 3, "open: 3 arguments")
	eq(e.args[1], "/numeric", "open: #1 path")
	eq(e.args[2], "p2", "open: #2 protocol")
	eq(type(e.args[3]), "userdata", "open: #3 wso")
	local c = e.args[3]
	eq(ws.send(wso, "txt"), true)
	rec.wait(8)
	srec.wait(7)
	local d, k, mc = srec.last(6)
	eq(d, "txt"); eq(k, "text"); ok(rawequal(mc, c), "message: #3 the wso")
	local pay, pc = srec.last(7)
	eq(pay, "np", "pong: #1 payload"); ok(rawequal(pc, c), "pong: #2 the wso")
	tap.wait(function() return #writeable >= 1 end, 5, "writeable")
	eq(writeable[1].n, 1); ok(rawequal(writeable[1][1], c), "writeable: the wso")
	ws.close(wso, 4003, "num")
	srec.wait(4)
	local clean, code, reason, cc = srec.last(4)
	eq(clean, true); eq(code, 4003); eq(reason, "num"); ok(rawequal(cc, c), "close: #4 the wso")
	rec.wait(4)
end)

stest("handlers by global function name (numeric and named keys)", function()
	local log = {}
	_G.vws_srv_open = function(path, proto, c) log[#log + 1] = "open " .. path end
	_G.vws_srv_message = function(data, kind, c) log[#log + 1] = "message " .. data .. " " .. kind; ws.send(c, data) end
	_G.vws_srv_close = function(c, clean, code, reason) log[#log + 1] = "close " .. tostring(code) .. " " .. reason end
	local okr, err = pcall(function()
		local srv = listen { event_handlers = { [0] = "vws_srv_open", [6] = "vws_srv_message", close = "vws_srv_close" } }
		local wso, rec = connect(srv, "/byname")
		eq(ws.send(wso, "hi"), true)
		rec.wait(8)
		eq(rec.last(8), "hi")
		ws.close(wso, 4010, "by name")
		tap.wait(function() return #log == 3 end, 5, "3 handler calls (" .. #log .. ")")
		eq(log[1], "open /byname")
		eq(log[2], "message hi text")
		eq(log[3], "close 4010 by name")
		rec.wait(4)
	end)
	_G.vws_srv_open, _G.vws_srv_message, _G.vws_srv_close = nil, nil, nil
	if not okr then error(err, 0) end
end)

-- ---------------------------------------------------------------- broadcast, clients
stest("broadcast to 3 clients returns 3; every client receives each message once", function()
	local srv, srec = listen()
	local conns = {}
	for i = 1, 3 do
		local wso, rec = connect(srv, "/b" .. i)
		conns[i] = { wso = wso, rec = rec }
	end
	srec.wait(0, 5, 3)
	eq(srv:broadcast("news"), 3, "srv:broadcast")
	eq(ws.broadcast(srv, "\0bin\255", "binary"), 3, "ws.broadcast")
	for i, cn in ipairs(conns) do
		cn.rec.wait(8, 5, 2)
		local d, k = cn.rec.nth(8, 1)
		eq(d, "news", "client " .. i); eq(k, "text")
		d, k = cn.rec.nth(8, 2)
		eq(d, "\0bin\255", "client " .. i); eq(k, "binary")
	end
	tap.pump(0.2)
	for i, cn in ipairs(conns) do eq(cn.rec.count(8), 2, "client " .. i .. " got each message once") end
	for _, cn in ipairs(conns) do tap.close_and_wait(cn.wso) end
end)

stest("srv:clients() lists the open clients: the wsos the open handler got", function()
	local srv, srec = listen()
	eq(#srv:clients(), 0, "no clients yet")
	local conns = {}
	for i = 1, 3 do conns[i] = connect(srv, "/c" .. i) end
	srec.wait(0, 5, 3)
	local opened = srec.wsos()
	local list = srv:clients()
	eq(type(list), "table")
	eq(#list, 3, "#srv:clients()")
	for i, c in ipairs(list) do ok(contains(opened, c), "clients()[" .. i .. "] is an opened wso") end
	for i, c in ipairs(opened) do ok(contains(list, c), "opened wso " .. i .. " is listed") end
	eq(#ws.clients(srv), 3, "#ws.clients(srv)")
	-- the client of the second connection leaves
	local gone
	for _, c in ipairs(opened) do
		local path = nil
		for _, e in ipairs(srec.list) do if e.ev == 0 and rawequal(e.args[3], c) then path = e.args[1] end end
		if path == "/c2" then gone = c end
	end
	ok(gone, "open event for /c2")
	tap.close_and_wait(conns[2])
	srec.wait(4)
	tap.wait(function() return #srv:clients() == 2 end, 5, "2 clients")
	ok(not contains(srv:clients(), gone), "the closed client is not listed")
	eq(srv:broadcast("x"), 2, "broadcast after one left")
	tap.close_and_wait(conns[1])
	tap.close_and_wait(conns[3])
end)

-- ---------------------------------------------------------------- closing
stest("client closes with 4001 \"bye\": server close event (true, 4001, \"bye\")", function()
	local srv, srec = listen()
	local wso, rec = connect(srv, "/")
	srec.wait(0)
	eq(ws.close(wso, 4001, "bye"), true)
	srec.wait(4)
	local clean, code, reason, c = srec.last(4)
	eq(clean, true, "clean"); eq(code, 4001, "code"); eq(reason, "bye", "reason")
	ok(rawequal(c, srec.wsos()[1]), "close: the opened wso")
	rec.wait(4)
	local cclean, ccode = rec.last(4)
	eq(cclean, true, "client: clean"); eq(ccode, 4001, "client: code echoed")
	tap.wait(function() return ws.state(c) == "closed" end, 5, "server-side wso closed")
	eq(srec.count(4), 1, "one close event")
end)

stest("server closes a client: ws.close(cwso, 4002, \"why\") -> client sees (true, 4002, \"why\")", function()
	local srv, srec = listen()
	local wso, rec = connect(srv, "/")
	srec.wait(0)
	local c = srec.wsos()[1]
	eq(ws.close(c, 4002, "why"), true)
	rec.wait(4)
	local clean, code, reason = rec.last(4)
	eq(clean, true, "clean"); eq(code, 4002, "code"); eq(reason, "why", "reason")
	eq(ws.state(wso), "closed")
	srec.wait(4)
	eq(srec.last(4), true, "server: clean")
	eq(ws.state(c), "closed", "server-side wso closed")
	eq(#srv:clients(), 0, "no clients left")
end)

stest("srv:close(): every client gets 1001; port() fails; the port refuses; ws.close(srv, 4005, r) uses that code", function()
	local srv, srec = listen()
	local port = srv:port()
	local conns = {}
	for i = 1, 3 do
		local wso, rec = connect(srv, "/")
		conns[i] = { wso = wso, rec = rec }
	end
	srec.wait(0, 5, 3)
	eq(srv:close(), true, "srv:close()")
	for i, cn in ipairs(conns) do
		cn.rec.wait(4)
		local clean, code = cn.rec.last(4)
		eq(code, 1001, "client " .. i .. " code")
		eq(clean, true, "client " .. i .. " clean")
		eq(cn.rec.count(4), 1, "client " .. i .. " one close event")
	end
	srec.wait(4, 5, 3)
	local p, err = srv:port()
	eq(p, nil, "port() after close")
	eq(type(err), "string", "port() error message")
	p, err = ws.port(srv)
	eq(p, nil, "ws.port(srv) after close")
	refused("ws://127.0.0.1:" .. port .. "/")

	local srv2, srec2 = listen()
	local wso, rec = connect(srv2, "/")
	srec2.wait(0)
	eq(ws.close(srv2, 4005, "maint"), true, "ws.close(srv, code, reason)")
	rec.wait(4)
	local _, code, reason = rec.last(4)
	eq(code, 4005, "code"); eq(reason, "maint", "reason")
	srec2.wait(4)
end)

stest("ws.loop keeps running while a server listens; returns once a handler closes the server", function()
	local srv, srec
	srec = srecorder()
	srec.on(6, function(data, kind, c) if data == "quit" then srv:close() end end)
	srv = listen({}, srec)
	local r1, r2 = ws.loop(300)
	eq(r1, false, "loop with a listening server"); eq(r2, "timeout")
	local rec = tap.recorder()
	rec.handlers[3] = function(proto, attempt, w) ws.send(w, "quit") end
	local wso = tap.create { url = url(srv, "/quit"), event_handlers = rec.handlers }
	eq(ws.connect(wso), true)
	local t0 = tap.now()
	eq(ws.loop(tap.ms(5000)), true, "ws.loop()")
	ok(tap.now() - t0 < 4 * tap.factor, "returned soon")
	eq(rec.count(4), 1, "client close event")
	local _, code = rec.last(4)
	eq(code, 1001, "client close code")
	eq(ws.state(wso), "closed")
	eq(srv:port(), nil, "server closed")
	eq(srec.count(4), 1, "server close event")
end)

-- ---------------------------------------------------------------- limits
stest("max_message_size: a larger message from the client closes it with 1009", function()
	local srv, srec = listen({ max_message_size = 1000 }, echo(srecorder()))
	local wso, rec = connect(srv, "/")
	eq(ws.send(wso, string.rep("a", 1000)), true)
	rec.wait(8)
	eq(#rec.last(8), 1000, "1000 bytes (= max) echoed")
	eq(ws.send(wso, string.rep("b", 1001), "binary"), true)
	rec.wait(4)
	local _, code = rec.last(4)
	eq(code, 1009, "client close code")
	eq(rec.count(8), 1, "the large message is not echoed")
	eq(srec.count(6), 1, "the large message is not delivered to the server")
	srec.wait(4)
end)

stest("max_clients = 1: a second client's connection fails (event 1, HTTP 503); a new one works after the first left", function()
	local srv, srec = listen { max_clients = 1 }
	local wso1, rec1 = connect(srv, "/first")
	srec.wait(0)
	like(refused(url(srv, "/second")), "503", "refused with HTTP 503")
	eq(srec.count(0), 1, "no open event for the refused client")
	eq(#srv:clients(), 1)
	tap.close_and_wait(wso1)
	srec.wait(4)
	local wso3 = connect(srv, "/third")
	srec.wait(0, 5, 2)
	eq(srec.nth(0, 2), "/third")
	tap.close_and_wait(wso3)
end)

stest("a second ws.listen on the same port returns nil, an error message and EBIND", function()
	local srv = listen()
	local s2, err, name = ws.listen { port = srv:port(), host = "127.0.0.1", standalone = true }
	if s2 then pcall(ws.close, s2) end
	eq(s2, nil, "second listen")
	eq(type(err), "string", "error message")
	like(err:lower(), "in use", "error message")
	eq(name, "EBIND", "its error name")
	-- a bad option only the engine can judge raises (VWS_EOPTION), it is not a bind failure
	local okl, lerr = pcall(ws.listen, { port = 0, host = "127.0.0.1", standalone = true, origins = { "http://a/path" } })
	ok(not okl and tostring(lerr):find("bad argument #1 to ", 1, true) and tostring(lerr):find("origins", 1, true),
		"origins with a path raises: " .. tostring(lerr))
	-- the first server still works
	local wso = connect(srv, "/")
	tap.close_and_wait(wso)
end)

stest("bad arguments raise", function()
	local function raises(opts, pattern, what)
		return tap.raises(function()
			local s = ws.listen(opts)
			if s then pcall(ws.close, s) end
		end, pattern, what)
	end
	tap.raises(function() local s = ws.listen() if s then pcall(ws.close, s) end end, LISTEN, "no argument")
	tap.raises(function() local s = ws.listen(8080) if s then pcall(ws.close, s) end end, LISTEN, "a number")
	like(raises({ standalone = true }, LISTEN, "port missing"), "port")
	like(raises({ port = "x", standalone = true }, LISTEN, "port a string"), "port")
	like(raises({ port = {}, standalone = true }, LISTEN, "port a table"), "port")
	like(raises({ port = 0, standalone = true, bogus_key = 1 }, LISTEN, "unknown key"), "bogus_key")
	like(raises({ port = 0, standalone = true, event_handlers = "nope" }, LISTEN, "event_handlers a string"), "event_handlers")
	like(raises({ port = 0, standalone = true, event_handlers = 5 }, LISTEN, "event_handlers a number"), "event_handlers")
	raises({ port = 0, standalone = true, max_clients = "many" }, LISTEN, "max_clients a string")
	raises({ port = 0, standalone = true, ssl_settings = 5 }, LISTEN, "ssl_settings a number")
end)

stest("a server handler error goes to stderr and later events still come (child)", function()
	local out, okr = tap.run_lua([[
		local ws = require "verawebsockets"
		ws.set_log_level(0)
		local f = tonumber(os.getenv("VWS_TEST_TIME_FACTOR") or "") or 1
		local srv
		srv = assert(ws.listen{port = 0, host = "127.0.0.1", standalone = true, event_handlers = {
			[0] = function(path, proto, c) error("boom in server open") end,
			[6] = function(data, kind, c) ws.send(c, "echo " .. data); local x = nil; x.field = 1 end,
			close = function(c, clean, code) print("SERVER CLOSED " .. tostring(code)); srv:close(); error("boom in server close") end,
		}})
		local w = ws.create{url = "ws://127.0.0.1:" .. srv:port() .. "/", standalone = true, event_handlers = {
			[3] = function(p, a, wso) ws.send(wso, "hi") end,
			[8] = function(data, kind, wso) print("CLIENT GOT " .. data); ws.close(wso, 1000) end,
		}}
		ws.connect(w)
		print("loop", ws.loop(5000 * f))
	]])
	ok(okr, "child failed: " .. out)
	like(out, "verawebsockets: [^\n]*error[^\n]*boom in server open", "open handler error on stderr")
	like(out, "stack traceback", "with a traceback")
	like(out, "verawebsockets: [^\n]*error[^\n]*attempt to index", "message handler error on stderr")
	like(out, "verawebsockets: [^\n]*error[^\n]*boom in server close", "close handler error on stderr")
	like(out, "CLIENT GOT echo hi", "later: the echo")
	like(out, "SERVER CLOSED 1000", "later: the server close event")
	like(out, "loop\ttrue", "loop returned")
end)

-- ---------------------------------------------------------------- client wsos, wss
stest("client wsos from the server: state/buffered/protocol/send/ping work; ws.connect fails", function()
	local srv, srec = listen()
	local wso, rec = connect(srv, "/")
	srec.wait(0)
	local c = srec.wsos()[1]
	eq(ws.state(c), "open", "ws.state")
	eq(c:state(), "open", "c:state()")
	eq(type(ws.buffered(c)), "number", "ws.buffered")
	eq(c:protocol(), "", "c:protocol()")
	local r, err = ws.connect(c)
	eq(r, nil, "ws.connect(client wso)")
	eq(type(err), "string", "ws.connect error message")
	r, err = c:connect()
	eq(r, nil, "c:connect()")
	eq(type(err), "string")
	eq(c:send("via method"), true, "c:send")
	eq(ws.send(c, "\255", "binary"), true, "ws.send binary")
	eq(c:ping("pg"), true, "c:ping")
	rec.wait(8, 5, 2)
	eq(rec.nth(8, 1), "via method")
	local d, k = rec.nth(8, 2)
	eq(d, "\255"); eq(k, "binary")
	srec.wait(7)
	eq(srec.last(7), "pg", "pong payload")
	eq(ws.state(wso), "open", "client still open")
	tap.close_and_wait(wso)
end)

stest("ws.stop_listening: the port is free at once, the clients go on, ws.close(server) ends them later", function()
	local srv, rec = listen(nil, echo(srecorder()))
	local u = url(srv, "/kept")
	local wso, c = tap.open(u)
	tap.wait(function() return rec.count(0) == 1 end, 5, "the server's open event")
	eq(ws.stop_listening(srv), true, "stop_listening")
	eq(srv:stop_listening(), true, "again: a no-op")
	local p, perr = ws.port(srv)
	eq(p, nil); like(perr, "not listening")
	like(refused(u), "refused", "a new client: connection refused")
	eq(ws.send(wso, "still here"), true)
	c.wait(8, 5)
	eq(c.last(8), "still here", "the kept client echoes")
	eq(ws.broadcast(srv, "to the kept"), 1, "broadcast reaches the kept client")
	c.wait(8, 5, 2)
	eq(c.last(8), "to the kept")
	-- the port can be taken by another server now
	local other = listen({ port = tonumber(u:match(":(%d+)/")) })
	ok(other:port(), "another ws.listen takes the port")
	eq(ws.close(srv, 4000, "later"), true)
	c.wait(4, 5)
	local _, code = c.last(4)
	eq(code, 4000, "ws.close(server) closes the kept client with its code")
	eq(ws.broadcast(srv, "x"), nil, "no broadcast after close")
end)

stest("ws.headers / ws.peer: the client's request headers (lower-case names) and address", function()
	local got = {}
	local srv = listen({ origins = { "http://vera.local" }, event_handlers = { open = function(c)
		got.h, got.peer = ws.headers(c), c:peer()
		got.m = c:headers()
	end } })
	local wso = connect(srv, "/h", { origin = "http://vera.local", headers = { Authorization = "Bearer t0k", ["X-Mixed-Case"] = "Yes" } })
	tap.wait(function() return got.h ~= nil end, 5, "open handler")
	eq(got.h.host, "127.0.0.1:" .. srv:port(), "host")
	eq(got.h.authorization, "Bearer t0k", "authorization")
	eq(got.h.origin, "http://vera.local", "origin")
	eq(got.h["x-mixed-case"], "Yes", "name lower-cased, value as sent")
	eq(got.h["sec-websocket-key"], nil, "the handshake's own headers are left out")
	eq(got.m.authorization, "Bearer t0k", "method form")
	like(got.peer, "^127%.0%.0%.1:%d+$", "peer")
	-- a client wso: every header of the server's 101
	local h = ws.headers(wso)
	eq(h.upgrade, "websocket", "the client's: the 101's Upgrade")
	like(h["sec-websocket-accept"], "^[%w+/]+=*$", "the 101's Sec-WebSocket-Accept")
	local never = tap.create({ url = "ws://127.0.0.1:" .. srv:port() .. "/never" })
	local nh, err = ws.headers(never)
	eq(nh, nil); like(err, "not opened yet")
	local okr, socket = pcall(require, "socket")
	if not okr then return end -- the raw client below needs LuaSocket (absent under qemu)
	got.h = nil
	local tcp = assert(socket.tcp())
	tcp:settimeout(5 * tap.factor)
	assert(tcp:connect("127.0.0.1", srv:port()))
	assert(tcp:send("GET /raw HTTP/1.1\r\nHost: raw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" ..
		"X-Dup: a\r\nx-dup: b\r\nX-Empty:\r\n\r\n"))
	eq(tcp:receive("*l"), "HTTP/1.1 101 Switching Protocols", "raw handshake")
	tap.wait(function() return got.h ~= nil end, 5, "open handler (raw client)")
	eq(got.h["x-dup"], "a, b", "repeated headers joined with ', '")
	eq(got.h["x-empty"], "", "empty value")
	eq(got.h.host, "raw")
	tcp:close()
end)

tap.done()

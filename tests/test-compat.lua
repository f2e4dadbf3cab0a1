-- lua-websockets compatibility (lua/verawebsockets/websocket*.lua): the sync client, the
-- copas client and the copas server through require "verawebsockets.websocket", checked
-- against lua-websockets' published behaviour (its API.md and spec/*_spec.lua) on our
-- test server, the Node `ws` and Python `websockets` peers, and the API document's
-- examples (tests/compat/*.lua) run as written.
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/lib/?.lua;" .. package.path
local tap = require "tap"
local ws = tap.ws
local test, ok, eq, like = tap.test, tap.ok, tap.eq, tap.like

local testdir = arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or "tests"
local okw, websocket = pcall(require, "verawebsockets.websocket")
if not okw then
	test("require 'verawebsockets.websocket'", function() error(websocket, 0) end)
	tap.done()
end
local has_socket, socket = pcall(require, "socket")
local has_copas, copas = pcall(require, "copas")
-- wait_until(cond, seconds): inside a copas thread, lets copas run until cond() (bounded)
local function wait_until(cond, seconds)
	local now = require("verawebsockets.websocket.core").now -- the waits' clock (not tap.now's)
	require("verawebsockets.websocket.copas").wait(cond, now() + (seconds or 5) * tap.factor)
	return cond()
end
local T = 5 * tap.factor

local unpack = table.unpack or unpack
local function pack(...) return { n = select("#", ...), ... } end

-- same(got, want, what): every value of two packed lists equal
local function same(got, want, what)
	eq(got.n, want.n, (what or "values") .. ": count")
	for i = 1, want.n do eq(got[i], want[i], (what or "values") .. " #" .. i) end
end

local function text(n)
	local t = {}
	for i = 1, n do t[i] = string.char(33 + (i * 7) % 94) end
	return table.concat(t)
end

local function wrong_state_checks(c, what)
	same(pack(c:send("test")), pack(nil, false, 1006, "wrong state"), what .. " send")
	same(pack(c:receive()), pack(nil, nil, false, 1006, "wrong state"), what .. " receive")
	same(pack(c:close()), pack(false, 1006, "wrong state"), what .. " close")
end

-- ---------------------------------------------------------------- copas helpers
-- copas_run(fns, seconds): runs each function in a copas thread and steps copas
-- until all are done (bounded); the first error (a failed check) is raised here.
local function copas_run(fns, seconds, extra_done)
	if type(fns) == "function" then fns = { fns } end
	local left, failure = #fns, nil
	for _, fn in ipairs(fns) do
		local co = coroutine.create(fn)
		copas.addthread(function()
			local res = pack(coroutine.resume(co))
			while true do
				if not res[1] then
					failure = failure or res[2]
					if type(res[2]) ~= "table" then failure = debug.traceback(co, tostring(res[2])) end
					left = left - 1
					return
				end
				if coroutine.status(co) == "dead" then
					left = left - 1
					return
				end
				res = pack(coroutine.resume(co, coroutine.yield(unpack(res, 2, res.n))))
			end
		end)
	end
	local deadline = tap.now() + (seconds or 10) * tap.factor
	while (left > 0 or (extra_done and not extra_done())) and not failure and tap.now() < deadline do
		copas.step(0.05)
	end
	if failure then error(failure, 0) end
	ok(left == 0, "copas threads done in time (" .. left .. " left)")
end

-- steps copas for a while (lets servers finish their work)
local function copas_settle(seconds)
	local deadline = tap.now() + seconds
	while tap.now() < deadline do copas.step(0.02) end
end

-- ---------------------------------------------------------------- the module
test("require 'verawebsockets.websocket': client, server, opcodes", function()
	eq(type(websocket.client), "table")
	eq(type(websocket.server), "table")
	eq(websocket.CONTINUATION, 0); eq(websocket.TEXT, 1); eq(websocket.BINARY, 2)
	eq(websocket.CLOSE, 8); eq(websocket.PING, 9); eq(websocket.PONG, 10)
	eq(type(websocket.client.new), "function")
	eq(websocket.client.new, websocket.client.sync)
	eq(require "verawebsockets.websocket.client", websocket.client)
	eq(require "verawebsockets.websocket.server", websocket.server)
	if has_copas then
		eq(type(websocket.client.copas), "function")
		eq(type(websocket.server.copas), "table")
		eq(type(websocket.server.copas.listen), "function")
	end
end)

test("require 'verawebsockets.websocket.alias' makes require 'websocket' load it", function()
	local out, okr = tap.run_lua([[
		require "verawebsockets.websocket.alias"
		local websocket = require "websocket"
		assert(websocket == require "verawebsockets.websocket")
		assert(require "websocket.client" == websocket.client)
		assert(require "websocket.server" == websocket.server)
		assert(require "websocket.client_sync" == websocket.client.sync)
		print("alias ok", websocket.TEXT)
	]])
	ok(okr, "child failed: " .. out)
	like(out, "alias ok\t1")
end)

-- ---------------------------------------------------------------- sync client
test("sync: not connected -> nil, false, 1006, 'wrong state' (client_spec)", function()
	wrong_state_checks(websocket.client.new(), "new client")
	wrong_state_checks(websocket.client.sync { timeout = 1 }, "with timeout")
end)

test("sync: connect -> true, protocol, headers; echo; close; then 'wrong state'", function()
	local c = websocket.client.sync { timeout = T }
	local r = pack(c:connect(tap.url("/subproto"), "echo-protocol"))
	eq(r.n, 3, "connect returns 3 values")
	eq(r[1], true); eq(r[2], "echo-protocol"); eq(type(r[3]), "table")
	eq(r[3]["sec-websocket-protocol"], "echo-protocol")
	eq(r[3].upgrade, "websocket")
	same(pack(c:connect(tap.url("/subproto"), "echo-protocol")), pack(nil, "wrong state", nil), "connect twice")
	eq(c:send("Hello again"), true)
	same(pack(c:receive()), pack("Hello again", websocket.TEXT), "text echo")
	eq(c:send("\0\1\2\255", websocket.BINARY), true)
	same(pack(c:receive()), pack("\0\1\2\255", websocket.BINARY), "binary echo")
	for _, n in ipairs { 127, 0xffff - 1, 0xffff + 1 } do
		local m = text(n)
		eq(c:send(m), true)
		local echoed, op = c:receive()
		ok(echoed == m, "payload " .. n .. " intact"); eq(op, websocket.TEXT)
	end
	local was_clean, code, reason = c:close()
	eq(was_clean, true); eq(code, 1000); eq(type(reason), "string")
	wrong_state_checks(c, "after close")
	-- a closed client connects again
	r = pack(c:connect(tap.url("/echo")))
	eq(r[1], true); eq(r[2], nil, "no protocol chosen"); eq(type(r[3]), "table")
	same(pack(c:close(4001, "lost interest")), pack(true, 4001, "lost interest"), "close(4001)")
end)

test("sync: connect errors are lua-websockets' (LuaSocket's) strings", function()
	local c = websocket.client.new { timeout = T }
	same(pack(c:connect("wsc://127.0.0.1:" .. tap.env("HTTP_PORT"), "echo-protocol")), pack(nil, "bad protocol"), "wsc://")
	same(pack(c:connect("http://127.0.0.1:" .. tap.env("HTTP_PORT") .. "/")), pack(nil, "bad protocol"), "http://")
	same(pack(c:connect("ws://127.0.0.1:" .. tap.env("CLOSED_PORT"), "echo-protocol")), pack(nil, "connection refused"), "refused")
	same(pack(c:connect("ws://notexisting.invalid:8089", "echo-protocol")),
		pack(nil, "host or service not provided, or not known"), "unknown host")
	local r = pack(c:connect(tap.url("/status404")))
	eq(r[1], nil); like(r[2], "^Websocket Handshake failed: ")
	tap.raises(function() c:connect("not a url") end, "Invalid URL:not a url")
	wrong_state_checks(c, "after failed connects")
end)

test("sync: the server closes -> nil, nil, was_clean, code, reason; then 'wrong state'", function()
	local c = websocket.client.sync { timeout = T }
	eq(c:connect(tap.url("/closewith?code=4002&reason=why")), true)
	same(pack(c:receive()), pack(nil, nil, true, 4002, "why"), "receive")
	wrong_state_checks(c, "after the server's close")
	eq(c:connect(tap.url("/closewith?code=4003")), true)
	same(pack(c:receive()), pack(nil, nil, true, 4003, "closed"), "no reason: 'closed'")
	eq(c:connect(tap.url("/closewith")), true)
	same(pack(c:receive()), pack(nil, nil, true, nil, "closed"), "an empty close frame: code nil, as lua-websockets")
end)

test("sync: a dropped connection -> nil, nil, false, 1006, reason", function()
	local c = websocket.client.sync { timeout = T }
	eq(c:connect(tap.url("/drop?msg=last")), true)
	same(pack(c:receive()), pack("last", 1), "last message")
	local r = pack(c:receive())
	eq(r.n, 5); eq(r[1], nil); eq(r[2], nil); eq(r[3], false); eq(r[4], 1006); eq(type(r[5]), "string")
	wrong_state_checks(c, "after the drop")
end)

test("sync: a receive timeout ends the connection -> nil, nil, false, 1006, 'timeout'", function()
	local timeout = 1 * tap.factor
	local c = websocket.client.sync { timeout = timeout }
	eq(c:connect(tap.url("/noping")), true)
	local t0 = tap.now()
	same(pack(c:receive()), pack(nil, nil, false, 1006, "timeout"), "receive")
	local dt = tap.now() - t0
	ok(dt >= timeout - 0.2 and dt < timeout + 3, "returned after " .. dt .. " s")
	wrong_state_checks(c, "after the timeout")
	-- let the engine finish the close it started
	tap.pump(0.2)
end)

local function peer_suite(peer, port)
	local base = "ws://127.0.0.1:" .. port
	test(peer .. ": sync client echo, 70000 bytes, clean close", function()
		local c = websocket.client.sync { timeout = T }
		local r = pack(c:connect(base .. "/echo"))
		eq(r[1], true); eq(r[2], nil); eq(type(r[3]), "table")
		like(r[3]["sec-websocket-accept"], "^[%w+/]+=*$", "every header of the 101: Sec-WebSocket-Accept")
		if peer == "python" then like(r[3].server, "websockets", "... and the peer's Server header") end
		eq(c:send("hello " .. peer), true)
		same(pack(c:receive()), pack("hello " .. peer, 1), "text")
		eq(c:send("\0\1\2\255", websocket.BINARY), true)
		same(pack(c:receive()), pack("\0\1\2\255", 2), "binary")
		local big = text(70000)
		eq(c:send(big, websocket.BINARY), true)
		local m, op = c:receive()
		ok(m == big, "70000 bytes intact"); eq(op, 2)
		local was_clean, code, reason = c:close()
		eq(was_clean, true); eq(code, 1000); eq(type(reason), "string")
		wrong_state_checks(c, "after close")
	end)
	if not has_copas then return end
	test(peer .. ": copas client echo and clean close", function()
		copas_run(function()
			local c = websocket.client.copas { timeout = T }
			eq((c:connect(base .. "/echo")), true)
			eq(c:send("copas " .. peer), true)
			same(pack(c:receive()), pack("copas " .. peer, 1), "text")
			local big = text(0xffff + 1)
			eq(c:send(big, websocket.BINARY), true)
			local m, op = c:receive()
			ok(m == big, "65537 bytes intact"); eq(op, 2)
			local was_clean, code = c:close()
			eq(was_clean, true); eq(code, 1000)
			wrong_state_checks(c, "after close")
		end)
	end)
end

local py, node = os.getenv("VWS_TEST_PY_PORT"), os.getenv("VWS_TEST_NODE_PORT")
if py and py ~= "" then peer_suite("python", py) else tap.skip("python websockets peer", "not running") end
if node and node ~= "" then peer_suite("node", node) else tap.skip("node ws peer", "not running") end

-- ---------------------------------------------------------------- copas
if not has_copas then
	tap.skip("copas client and server", "lua-copas not installed (build/deps.sh lua-copas)")
	tap.done()
end

test("copas client: the sync client's return values inside copas threads", function()
	copas_run(function()
		local c = websocket.client.copas { timeout = T }
		wrong_state_checks(c, "not connected")
		same(pack(c:connect("wsc://127.0.0.1:1")), pack(nil, "bad protocol"), "wsc://")
		same(pack(c:connect("ws://127.0.0.1:" .. tap.env("CLOSED_PORT"))), pack(nil, "connection refused"), "refused")
		local r = pack(c:connect(tap.url("/subproto"), "echo-protocol"))
		eq(r[1], true); eq(r[2], "echo-protocol"); eq(type(r[3]), "table")
		same(pack(c:connect(tap.url("/subproto"))), pack(nil, "wrong state", nil), "connect twice")
		eq(c:send("hi"), true)
		same(pack(c:receive()), pack("hi", 1), "echo")
		same(pack(c:close(4001, "lost interest")), pack(true, 4001, "lost interest"), "close")
		wrong_state_checks(c, "after close")
		eq(c:connect(tap.url("/closewith?code=4002&reason=why")), true)
		same(pack(c:receive()), pack(nil, nil, true, 4002, "why"), "server close")
		wrong_state_checks(c, "after the server's close")
	end)
end)

test("copas client: a receive timeout -> nil, nil, false, 1006, 'timeout'", function()
	copas_run(function()
		local timeout = 0.5 * tap.factor
		local c = websocket.client.copas { timeout = timeout }
		eq(c:connect(tap.url("/noping")), true)
		local t0 = tap.now()
		same(pack(c:receive()), pack(nil, nil, false, 1006, "timeout"), "receive")
		local dt = tap.now() - t0
		ok(dt >= timeout - 0.2 and dt < timeout + 2, "returned after " .. dt .. " s")
		wrong_state_checks(c, "after the timeout")
	end, 10)
	copas_settle(0.2)
end)

-- a copas ws server on a free port, with two subprotocols and a default
local function echo_server(extra)
	local seen = { default = 0 }
	local cfg = {
		port = 0,
		interface = "127.0.0.1",
		protocols = {
			echo = function(c)
				while true do
					local m, op = c:receive()
					if not m then
						seen.echo_close = pack(m, op)
						return
					end
					c:send(m, op)
				end
			end,
			["echo-uppercase"] = function(c)
				local m = c:receive()
				c:send(m:upper())
				seen.upper_close = pack(c:close())
			end,
		},
		default = function(c)
			seen.default = seen.default + 1
			local m = c:receive()
			c:send(m)
			c:broadcast("to everyone")
			seen.default_close = pack(c:receive())
		end,
	}
	for k, v in pairs(extra or {}) do cfg[k] = v end
	local s = websocket.server.copas.listen(cfg)
	return s, s:port(), seen
end

test("copas server: two subprotocols and a default, copas clients", function()
	local s, port, seen = echo_server()
	local url = "ws://127.0.0.1:" .. port
	copas_run({
		function()
			local c = websocket.client.copas { timeout = T }
			same(pack((c:connect(url, "echo"))), pack(true))
			same(pack(c:connect(url, "echo")), pack(nil, "wrong state", nil), "connect twice")
			for _, n in ipairs { 5, 127, 0xffff - 1, 0xffff + 1 } do
				local m = text(n)
				eq(c:send(m, websocket.BINARY), true)
				local e, op = c:receive()
				ok(e == m, n .. " bytes echoed"); eq(op, websocket.BINARY)
			end
			same(pack(c:close()), pack(true, 1000, ""), "client close")
		end,
		function()
			local c = websocket.client.copas { timeout = T }
			local r = pack(c:connect(url, "echo-uppercase"))
			eq(r[1], true); eq(r[2], "echo-uppercase")
			eq(c:send("shout"), true)
			same(pack(c:receive()), pack("SHOUT", 1), "uppercase")
			same(pack(c:receive()), pack(nil, nil, true, 1000, "closed"), "the handler closed")
		end,
		function()
			local c = websocket.client.copas { timeout = T }
			local r = pack(c:connect(url, "unknown-protocol"))
			eq(r[1], true); eq(r[2], nil, "no protocol: default handler")
			eq(c:send("to default"), true)
			same(pack(c:receive()), pack("to default", 1), "echo from default")
			same(pack(c:receive()), pack("to everyone", 1), "broadcast")
			same(pack(c:close(4000, "bye")), pack(true, 4000, "bye"), "close")
		end,
	}, 15, function() return seen.echo_close and seen.upper_close and seen.default_close end)
	same(seen.echo_close, pack(nil, nil), "echo handler saw the close")
	same(seen.upper_close, pack(true, 1000, ""), "handler close")
	same(seen.default_close, pack(nil, nil, true, 4000, "bye"), "default handler saw 4000")
	s:close()
	copas_settle(0.1)
	same(pack(websocket.client.sync { timeout = T }:connect(url)), pack(nil, "connection refused"), "closed server")
end)

-- runs a peer client (tests/peers/client.*) in the background while copas runs
local function peer_client(cmd, url, msg)
	local outf = os.tmpname()
	os.execute(string.format("%s '%s' '%s' >%s 2>&1 &", cmd, url, msg, outf))
	local out = ""
	local deadline = tap.now() + 15 * tap.factor
	while tap.now() < deadline do
		copas.step(0.05)
		local f = io.open(outf)
		out = f and f:read("*a") or ""
		if f then f:close() end
		if out:find("closed %d+") or out:find("error") or out:find("timeout") then break end
	end
	copas_settle(0.2)
	os.remove(outf)
	return out
end

local function server_peer(peer, cmd)
	test("copas server: " .. peer .. " client gets echo and broadcast from the default handler", function()
		local s, port, seen = echo_server()
		local out = peer_client(cmd, "ws://127.0.0.1:" .. port .. "/", "hello from " .. peer)
		like(out, "text hello from " .. peer .. "\ntext to everyone\nclosed 1000", "peer output")
		eq(seen.default, 1)
		same(seen.default_close, pack(nil, nil, true, 1000, "done"), "handler saw the peer's close")
		s:close()
	end)
end
if os.execute("/usr/bin/python3 -c 'import websockets' 2>/dev/null") == 0 or
	os.execute("/usr/bin/python3 -c 'import websockets' 2>/dev/null") == true then
	server_peer("python", "/usr/bin/python3 " .. testdir .. "/peers/client.py")
else
	tap.skip("copas server: python client", "python3-websockets missing")
end
local f = io.open(testdir .. "/peers/node_modules/ws/package.json")
if f then
	f:close()
	server_peer("node", "node " .. testdir .. "/peers/client.js")
else
	tap.skip("copas server: node client", "node ws not installed")
end

test("copas server: close() closes every client (was_clean), close(true) keeps them", function()
	local s, port = echo_server()
	local url = "ws://127.0.0.1:" .. port
	local closed, connected = 0, 0
	local function victim()
		local c = websocket.client.copas { timeout = T }
		eq((c:connect(url, "echo")), true)
		connected = connected + 1
		same(pack(c:receive()), pack(nil, nil, true, 1000, "closed"), "server closed us")
		closed = closed + 1
	end
	copas_run({ victim, victim, function()
		ok(wait_until(function() return connected == 2 end), "both connected")
		local c = websocket.client.copas { timeout = T }
		eq((c:connect(url, "echo")), true)
		eq(c:send("sync"), true); eq(c:receive(), "sync")
		s:close()
		-- close() returns once the server saw every closing handshake end; the
		-- clients' threads see theirs when copas resumes them
		ok(wait_until(function() return closed == 2 end), "both clients closed (" .. closed .. ")")
		same(pack(c:receive()), pack(nil, nil, true, 1000, "closed"), "third client")
	end }, 15)

	-- close(true): the open client stays, the port is released at once
	local s2, port2 = echo_server()
	local url2 = "ws://127.0.0.1:" .. port2
	copas_run(function()
		local c = websocket.client.copas { timeout = T }
		eq((c:connect(url2, "echo")), true)
		-- an echo first: the server has this client (its open event was handled);
		-- a client whose open event is still queued when close(true) runs counts as late
		eq(c:send("first"), true); eq(c:receive(), "first")
		s2:close(true)
		eq(c:send("still here"), true)
		same(pack(c:receive()), pack("still here", 1), "kept client echoes")
		local late = websocket.client.copas { timeout = T }
		same(pack(late:connect(url2, "echo")), pack(nil, "connection refused"), "the port is released at once")
		eq(c:send("and still"), true)
		same(pack(c:receive()), pack("and still", 1), "kept client echoes after a refused one")
		same(pack(c:close()), pack(true, 1000, ""), "kept client closes")
	end, 15)
end)

test("copas server: no handler for the protocol and no default -> on_error('bad protocol')", function()
	local errs = {}
	local s = websocket.server.copas.listen { port = 0, interface = "127.0.0.1",
		protocols = { echo = function() end }, on_error = function(e) errs[#errs + 1] = e end }
	copas_run(function()
		local c = websocket.client.copas { timeout = T }
		local okc = c:connect("ws://127.0.0.1:" .. s:port(), "other")
		if okc then eq(c:receive(), nil, "connection closed") end
	end, 10, function() return #errs > 0 end)
	eq(errs[1], "bad protocol")
	s:close()
	tap.raises(function() websocket.server.copas.listen { port = 0 } end, "assertion failed")
end)

test("one copas loop: ws server + ws client + a plain copas TCP echo socket; nothing blocks", function()
	ok(has_socket, "LuaSocket")
	-- the plain TCP echo server
	local tcp = assert(socket.bind("127.0.0.1", 0))
	local _, tport = tcp:getsockname()
	copas.addserver(tcp, function(skt)
		while true do
			local line = copas.receive(skt, "*l")
			if not line then return end
			copas.send(skt, line .. "\n")
		end
	end)
	local srv_client -- the ws server's side of the connection, kept by its handler
	local s = websocket.server.copas.listen { port = 0, interface = "127.0.0.1",
		protocols = { hold = function(c) srv_client = c end } }
	local order = {}
	copas_run({
		function() -- the ws client waits in receive until the TCP work is done
			local c = websocket.client.copas { timeout = T }
			eq((c:connect("ws://127.0.0.1:" .. s:port(), "hold")), true)
			order[#order + 1] = "ws waiting"
			local m = c:receive()
			order[#order + 1] = "ws got " .. tostring(m)
			eq(c:close(), true)
		end,
		function() -- meanwhile: TCP round trips through copas, then the server replies
			ok(wait_until(function() return order[1] == "ws waiting" end), "the ws client is waiting")
			local k = socket.tcp()
			eq(copas.connect(k, "127.0.0.1", tport), 1)
			for i = 1, 20 do
				copas.send(k, "line " .. i .. "\n")
				eq(copas.receive(k, "*l"), "line " .. i)
			end
			k:close()
			order[#order + 1] = "tcp done"
			ok(wait_until(function() return srv_client ~= nil end), "the ws handler ran")
			srv_client:send("after tcp")
		end,
	}, 15)
	eq(table.concat(order, ", "), "ws waiting, tcp done, ws got after tcp")
	s:close()
	tcp:close()
	copas_settle(0.1)
end)

-- ---------------------------------------------------------------- the API document's examples
local function free_port()
	local k = assert(socket.bind("127.0.0.1", 0))
	local _, p = k:getsockname()
	k:close()
	return p
end

local function read_file(name)
	local fh = assert(io.open(name))
	local s = fh:read("*a")
	fh:close()
	return s
end

test("API.md examples run as written: copas echo server, sync and copas clients", function()
	local port = free_port()
	local stop = os.tmpname()
	os.remove(stop)
	-- the server example in a child that drives copas until told to stop (bounded)
	local child = string.format([[
		local copas = require "copas"
		local src = assert(io.open(%q)):read("*a"):gsub("port = 8080", "port = %d")
		assert((loadstring or load)(src, "@echo-server-copas.lua"))()
		print("READY"); io.stdout:flush()
		local t0 = os.time()
		while os.time() - t0 < %d do
			copas.step(0.05)
			local f = io.open(%q)
			if f then f:close(); break end
		end
		print("STOPPED")
	]], testdir .. "/compat/echo-server-copas.lua", port, 30 * tap.factor, stop)
	local cf = os.tmpname()
	local fh = assert(io.open(cf, "w"))
	fh:write(child)
	fh:close()
	local p = io.popen((os.getenv("VWS_TEST_LUA") or "lua5.1") .. " " .. cf .. " 2>&1")
	local first = p:read("*l")
	local function finish()
		local sf = io.open(stop, "w")
		if sf then sf:close() end
		local rest = p:read("*a")
		p:close()
		os.remove(stop)
		os.remove(cf)
		return rest
	end
	if first ~= "READY" then
		local rest = finish()
		error("server example did not start: " .. tostring(first) .. "\n" .. rest, 0)
	end
	local okt, err = pcall(function()
		local url = "ws://127.0.0.1:" .. port
		-- the three handlers of the example
		local c = websocket.client.sync { timeout = T }
		eq((c:connect(url, "echo")), true)
		eq(c:send("Hello"), true)
		same(pack(c:receive()), pack("Hello", 1), "echo")
		same(pack(c:close()), pack(true, 1000, ""), "echo close")
		local r = pack(c:connect(url, "echo-uppercase"))
		eq(r[1], true); eq(r[2], "echo-uppercase")
		eq(c:send("Hello"), true)
		same(pack(c:receive()), pack("HELLO", 1), "echo-uppercase")
		c:close()
		eq((c:connect(url)), true)
		same(pack(c:receive()), pack("goodbye strange client", 1), "default")
		same(pack(c:receive()), pack(nil, nil, true, 1000, "closed"), "default closes")
		-- the client examples, their URL's port pointed at the example server
		for _, name in ipairs { "client-sync.lua", "client-copas.lua" } do
			local src = read_file(testdir .. "/compat/" .. name):gsub("localhost:12345", "localhost:" .. port)
			local out, okr = tap.run_lua(src, 30)
			ok(okr, name .. " failed: " .. out)
			eq(out, "msg\thello\t1\nmsg sent\nmsg\thello\t1\nclose\ttrue\t4001\tlost interest\n", name .. " output")
		end
	end)
	local rest = finish()
	if not okt then error(err, 0) end
	like(rest, "STOPPED", "server example child")
end)

tap.done()

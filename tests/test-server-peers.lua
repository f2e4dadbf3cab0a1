-- Server API (ws.listen) with other clients: the wss server, independent clients
-- (Python websockets, Node ws, libwebsockets-test-client), raw LuaSocket clients
-- (keepalive, a stalled client) and Luup mode. The core: tests/test-server.lua.
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/lib/?.lua;" .. package.path
local tap = require "tap"
local ws = tap.ws
local ok, eq, like = tap.ok, tap.eq, tap.like
-- the server helpers (tests/lib/srvtap.lua); requiring it checks that the variant has servers
local st = require "srvtap"
local stest, srecorder, listen, echo, url, connect, refused =
	st.stest, st.srecorder, st.listen, st.echo, st.url, st.connect, st.refused

local testdir = arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or "."

-- ---------------------------------------------------------------- helpers
local readfile = tap.readfile

-- ---------------------------------------------------------------- wss
stest("wss: ws.listen with a server certificate; a client trusting the CA echoes, one without it fails", function()
	local ssl = { ssl_cert_filepath = tap.cert("server.pem"), ssl_private_key_filepath = tap.cert("server.key") }
	local srv, srec = listen({ ssl_settings = ssl }, echo(srecorder()))
	local wso, rec = connect(srv, "/tls?x=1", { ssl_settings = { client_ssl_ca_filepath = tap.cert("ca.pem") } }, "wss")
	srec.wait(0)
	eq(srec.last(0), "/tls?x=1")
	local big = string.rep("\0\1\2\255", 25600)
	eq(ws.send(wso, "over tls"), true)
	eq(ws.send(wso, big, "binary"), true)
	rec.wait(8, 10, 2)
	eq(rec.nth(8, 1), "over tls")
	local d, k = rec.nth(8, 2)
	eq(k, "binary"); ok(d == big, "100 KiB binary echo intact")
	ws.close(wso, 1000)
	rec.wait(4)
	eq(rec.last(4), true, "clean close")
	local reason = refused(url(srv, "/", "wss"))
	like(reason:lower(), "certificate", "without the CA")
end)

-- ---------------------------------------------------------------- independent clients
-- peer(name, cmd): a server that echoes then broadcasts "broadcast: <msg>"; the
-- peer client (cmd URL MESSAGE, in the background) must print exactly the two
-- messages and the server's close code; the server sees its close (true, 1000, "done").
-- peer(name, cmd, compression): an independent client's run against a Lua server;
-- with compression the server accepts the client's permessage-deflate offer (both
-- peers offer it by default) and the message is long enough to be compressed.
local function peer(name, cmd, compression)
	local title = name .. " client: echo, broadcast, close 1000" ..
		(compression and " (permessage-deflate negotiated)" or " (server declines permessage-deflate)")
	stest(title, function()
		local srv, srec
		srec = srecorder()
		srec.on(6, function(data, kind, c)
			ws.send(c, data, kind)
			srv:broadcast("broadcast: " .. data)
		end)
		srv = listen({ compression = compression }, srec)
		local tmp = os.tmpname()
		local msg = compression and string.rep("hello " .. name .. " ", 200) or "hello " .. name
		os.execute(string.format("%s '%s' '%s' > %s 2>&1 &", cmd, url(srv, "/peer?from=" .. name), msg, tmp))
		local okw, err = pcall(tap.wait, function()
			local s = readfile(tmp)
			return (s:find("closed") or s:find("error") or s:find("timeout")) and srec.count(4) > 0
		end, 15, name .. " client output and server close event")
		local out = readfile(tmp)
		os.remove(tmp)
		if not okw then error({ tap_failure = true, msg = (type(err) == "table" and err.msg or tostring(err)) .. "\noutput: " .. out }, 0) end
		local ext, rest = out:match("^ext ([^\n]*)\n(.*)$")
		if compression then
			like(ext, "^permessage%-deflate", name .. " client: negotiated extensions")
			if name == "python" then -- Node's ws.extensions names the extensions only
				like(ext, "server_no_context_takeover", name .. " client: server_no_context_takeover")
			end
		else
			eq(ext, "", name .. " client: no extension")
		end
		eq(rest, "text " .. msg .. "\ntext broadcast: " .. msg .. "\nclosed 1000\n", name .. " client output")
		eq(srec.last(0), "/peer?from=" .. name, "server: path")
		eq(srec.last(6), msg, "server: message")
		local clean, code, reason = srec.last(4)
		eq(clean, true, "server: clean"); eq(code, 1000, "server: code"); eq(reason, "done", "server: reason")
	end)
end

-- raw(srv): a LuaSocket TCP client that completes the opening handshake and then
-- reads nothing unless asked; nil when LuaSocket is missing (under qemu).
local function raw(srv)
	local okr, socket = pcall(require, "socket")
	if not okr then return nil end
	local tcp = assert(socket.tcp())
	tcp:settimeout(5 * tap.factor)
	assert(tcp:connect("127.0.0.1", srv:port()))
	assert(tcp:send("GET /raw HTTP/1.1\r\nHost: raw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"))
	repeat local line = assert(tcp:receive("*l")) until line == ""
	return tcp
end

-- rstest: stest for the tests that need the raw LuaSocket client (skipped without it).
local has_socket = pcall(require, "socket")
local function rstest(name, fn)
	if not has_socket then return tap.skip(name, "LuaSocket missing (the raw client needs it)") end
	stest(name, fn)
end

rstest("keepalive: a client that stops answering pings is dropped (close event clean = false)", function()
	local rec = srecorder()
	local srv = listen({ ping_interval = 0.2, pong_timeout = 0.3 * tap.factor }, rec)
	local tcp = raw(srv)
	tap.wait(function() return rec.count(4) > 0 end, 10, "server close event")
	local clean, code, reason = rec.last(4)
	eq(clean, false, "clean"); eq(code, 1006, "code"); like(reason, "pong timeout")
	tcp:close()
end)

rstest("broadcast skips a client that stopped reading (its queue is full); the others still get it", function()
	local rec = srecorder()
	local srv = listen({ max_send_queue = 256 * 1024 }, rec)
	local tcp = raw(srv)
	local good, grec = connect(srv, "/good")
	tap.wait(function() return rec.count(0) == 2 end, 5, "two open events")
	local gsrv -- the server's wso of the reading client
	for _, e in ipairs(rec.list) do if e.ev == 0 and e.args[1] == "/good" then gsrv = e.args[3] end end
	ok(gsrv, "server-side wso of the reading client")
	local chunk = string.rep("b", 64 * 1024)
	local n, skipped = 0, false
	for _ = 1, 2000 do -- the stalled socket's kernel buffers fill first, then its queue
		-- The reading client's queue is empty before each broadcast, so a count of 1
		-- can only mean the stalled one was skipped.
		tap.wait(function() return ws.buffered(gsrv) == 0 end, 5, "reading client's queue drained")
		n = srv:broadcast(chunk, "binary")
		if n == 1 then skipped = true break end
		eq(n, 2, "broadcast count while both queues have room")
	end
	ok(skipped, "a broadcast skipped the stalled client (last count " .. tostring(n) .. ")")
	ok(ws.buffered(rec.wsos()[1] == gsrv and rec.wsos()[2] or rec.wsos()[1]) > 0, "the stalled client's queue is not empty")
	tap.wait(function()
		ws.dispatch(5)
		return grec.count(8) > 0
	end, 10, "the reading client got broadcasts")
	eq(ws.state(good), "open", "reading client still open")
	tcp:close()
	-- Its close waits behind the broadcasts still queued for it: let it finish here.
	tap.close_and_wait(good, 20)
end)

-- Luup mode: no ws.loop/ws.dispatch. The script waits inside a sync-client call (the
-- VM lock is released there) or in a blocking sleep, as in test-luup.lua; the
-- handlers are tiny globals.
t_srv_luup = { open = 0, msg = 0, close = 0 }
function t_srv_luup_open(path) t_srv_luup.path = path; t_srv_luup.open = t_srv_luup.open + 1 end
function t_srv_luup_msg(data, kind, c) t_srv_luup.msg = t_srv_luup.msg + 1; ws.send(c, "luup:" .. data, kind) end
function t_srv_luup_close(clean, code) t_srv_luup.code = code; t_srv_luup.close = t_srv_luup.close + 1 end

stest("Luup mode (standalone = false): the dispatcher thread answers while the script waits in a sync client", function()
	local srv = listen({ standalone = false,
		event_handlers = { [0] = "t_srv_luup_open", [6] = "t_srv_luup_msg", [4] = "t_srv_luup_close" } })
	local client = ws.client.sync { timeout = 5 * tap.factor }
	eq(client:connect(url(srv, "/luup?x=1")), true, "sync connect")
	eq(client:send("one"), true, "send")
	local msg, op = client:receive() -- only the dispatcher thread can answer meanwhile
	eq(msg, "luup:one", "echo from a Luup-mode handler"); eq(op, ws.TEXT)
	eq(client:send("\0\1", ws.BINARY), true, "send binary")
	msg, op = client:receive()
	eq(msg, "luup:\0\1"); eq(op, ws.BINARY)
	local clean, code = client:close(4004, "bye")
	eq(clean, true); eq(code, 4004)
	tap.wait_nodispatch(function() return t_srv_luup.close == 1 end, 10, "server close handler")
	eq(t_srv_luup.open, 1); eq(t_srv_luup.path, "/luup?x=1"); eq(t_srv_luup.msg, 2); eq(t_srv_luup.code, 4004)
	eq(ws.close(srv), true)
	tap.wait_nodispatch(function() return srv:port() == nil end, 5, "closed")
end)

-- libwebsockets' own test client (Debian libwebsockets-test-server) opens a
-- dumb-increment-protocol and an lws-mirror-protocol connection; the mirror client
-- draws circles ("c #rrggbb x y r;") that a mirror server broadcasts to every client.
if tap.execute("command -v libwebsockets-test-client >/dev/null 2>&1") then
	stest("libwebsockets-test-client: subprotocols negotiated, mirror messages broadcast, every connection closes", function()
		-- The lws client reopens its mirror connection now and then (its "mirror lifetime"),
		-- so there may be several mirror connections: each must be one of the two
		-- protocols, and each must close once the client has exited.
		local seen, opens, mirror, bad, closes = {}, 0, 0, nil, 0
		local srv
		srv = listen({ protocols = { "dumb-increment-protocol", "lws-mirror-protocol" }, event_handlers = {
			open = function(c, path, protocol) seen[protocol] = true; opens = opens + 1 end,
			message = function(c, data)
				if not data:match("^c #%x%x%x%x%x%x %d+ %d+ %d+;$") then bad = bad or data end
				mirror = mirror + 1
				srv:broadcast(data)
			end,
			close = function() closes = closes + 1 end,
		} })
		local tmp = os.tmpname()
		os.execute(string.format("(timeout -s INT %d libwebsockets-test-client 127.0.0.1 --port=%d; echo CLIENT-EXITED) > %s 2>&1 &",
			math.ceil(2 * tap.factor), srv:port(), tmp))
		local okw, err = pcall(tap.wait, function()
			return readfile(tmp):find("CLIENT-EXITED", 1, true) and opens >= 2 and closes == opens
		end, 20, "the lws client exited and each of its connections closed")
		local out = readfile(tmp)
		os.remove(tmp)
		if not okw then
			error({ tap_failure = true, msg = tostring(type(err) == "table" and err.msg or err) ..
				string.format(" (opens %d, closes %d)", opens, closes) .. "\nclient output:\n" .. out }, 0)
		end
		local names = {}
		for p in pairs(seen) do names[#names + 1] = p end
		table.sort(names)
		eq(table.concat(names, ","), "dumb-increment-protocol,lws-mirror-protocol", "subprotocols chosen")
		ok(mirror >= 10, "mirror messages received: " .. mirror)
		eq(bad, nil, "every mirror message is a circle command")
		like(out, "mirror: LWS_CALLBACK_CLIENT_ESTABLISHED", "the lws client saw the mirror connection open")
	end)
else
	tap.skip("libwebsockets-test-client: subprotocols, mirror broadcast", "libwebsockets-test-client not installed")
end

if tap.execute("/usr/bin/python3 -c 'import websockets' >/dev/null 2>&1") then
	peer("python", "/usr/bin/python3 " .. testdir .. "/peers/client.py")
	peer("python", "/usr/bin/python3 " .. testdir .. "/peers/client.py", true)
else
	tap.skip("python client: echo, broadcast, close 1000", "python3-websockets not installed")
end
if tap.execute("command -v node >/dev/null 2>&1 && test -d " .. testdir .. "/peers/node_modules/ws") then
	peer("node", "node " .. testdir .. "/peers/client.js")
	peer("node", "node " .. testdir .. "/peers/client.js", true)
else
	tap.skip("node client: echo, broadcast, close 1000", "node or tests/peers/node_modules/ws missing")
end

tap.done()

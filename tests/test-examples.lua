-- Every ```lua block of README.md and docs/*.md, run as written against local servers.
--
-- Each block is a case below (file, ordinal in that file, its first line): a block
-- without a case, or a case whose block moved, fails, so a new example cannot go
-- untested. A case names:
--   sub     plain-text replacements applied to the block, and only these: addresses
--           of hosts the docs invent (hub.example.com, port 8080) become this suite's
--           loopback servers, file names become the test certificates
--   before  code run before the block (what a fragment assumes: `ws`, an open `wso`)
--   after   code run after it: checks that raise when the example did not do its job
--   expect  patterns the child's output must contain (what the example prints)
--   serve   the block is a server that runs until killed: it runs in the background
--           and this function drives it (connects, checks the answers), then it is killed
-- Every block runs in a fresh interpreter (VWS_TEST_LUA) with the suite's LUA_CPATH, and
-- SSL_CERT_FILE = the test CA so that a wss:// example verifies the local server as a
-- real one (the engine uses the system roots when no CA file is given).
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/lib/?.lua;" .. package.path
local tap = require "tap"
local ws = tap.ws
local test, ok, eq, like = tap.test, tap.ok, tap.eq, tap.like

local root = ((arg and arg[0] and arg[0]:match("^(.*)/[^/]*$")) or ".") .. "/.."

-- ---------------------------------------------------------------- the blocks
local function read(path)
	local f = assert(io.open(path, "rb"))
	local s = f:read("*a")
	f:close()
	return s
end

-- blocks(file) -> { {line = N, code = "..."}, ... } for every ```lua fence
local function blocks(file)
	local out, cur = {}, nil
	local n = 0
	for line in (read(root .. "/" .. file) .. "\n"):gmatch("([^\n]*)\n") do
		n = n + 1
		if cur then
			if line:match("^```%s*$") then
				out[#out + 1] = cur
				cur = nil
			else
				cur.code = cur.code .. line .. "\n"
			end
		elseif line:match("^```lua%s*$") then
			cur = { line = n + 1, code = "" }
		end
	end
	assert(not cur, file .. ": a ```lua block is not closed")
	return out
end

local files = {}
do
	local p = io.popen("cd '" .. root .. "' && ls README.md docs/*.md")
	for f in p:lines() do files[#files + 1] = f end
	p:close()
end

-- ---------------------------------------------------------------- helpers
local ECHO = tap.url("/echo")                  -- ws://127.0.0.1:<port>/echo
local WSS_ECHO = tap.url("/echo", "TLS_PORT")  -- wss://, the test CA's certificate
local CA = tap.cert("ca.pem")

local function shq(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function lq(s) return string.format("%q", s) end

local function free_port()
	local p = io.popen("python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); print(s.getsockname()[1])'")
	local port = tonumber(p:read("*a"))
	p:close()
	return assert(port, "no free port from python3")
end

-- sh(cmd) -> its stdout
local function sh(cmd)
	local p = io.popen(cmd)
	local s = p:read("*a")
	p:close()
	return s
end

-- http_get(port, path) -> status, body (curl; independent of the library)
local function http_get(port, path)
	local out = sh("curl -s --max-time 5 -w '\\n%{http_code}' http://127.0.0.1:" .. port .. path)
	local body, status = out:match("^(.*)\n(%d+)$")
	return tonumber(status), body
end

local function tmpdir()
	local d = sh("mktemp -d"):gsub("%s+$", "")
	assert(d ~= "", "mktemp -d")
	return d
end

-- A standalone prelude: `ws`, and `wso` connected to the echo server (open).
local OPEN_WSO = [[
local ws = require "verawebsockets"
local got, closed = {}, nil
local wso = assert(ws.create{url = ]] .. lq(ECHO) .. [[, standalone = true, event_handlers = {
  message = function(w, data, kind) got[#got + 1] = data end,
  close = function(w, clean, code, reason) closed = {clean = clean, code = code, reason = reason} end,
}})
assert(ws.connect(wso))
for _ = 1, 100 do if ws.state(wso) == "open" then break end ws.dispatch(50) end
assert(ws.state(wso) == "open", "the prelude's connection did not open")
local function pump(cond) for _ = 1, 100 do if cond() then return true end ws.dispatch(50) end return cond() end
]]

-- The sync client prelude: `ws` and an open `client`.
local SYNC_OPEN = [[
local ws = require "verawebsockets"
local client = ws.client.sync{timeout = 2}
assert(client:connect(]] .. lq(ECHO) .. [[))
]]

local HOOK_WAIT = [[
local function pump(cond) for _ = 1, 100 do if cond() then return true end ws.dispatch(50) end return cond() end
]]

-- ---------------------------------------------------------------- the cases
local cases = {}
local function case(file, n, first, c)
	c.file, c.n, c.first = file, n, first
	cases[file .. "#" .. n] = c
end

-- README.md
case("README.md", 1, 'local ws = require "verawebsockets"', {
	sub = { { "ws://127.0.0.1:8080/", ECHO } },
	expect = { "received text: Hello world!", "closed\ttrue\t1000\tdone", "\ntrue" },
})
case("README.md", 2, 'local ws = require("verawebsockets")', {
	sub = { { "ws://127.0.0.1:8080/", ECHO } },
	expect = { "Received message: Hello world!", "Connection closed" },
})
case("README.md", 3, 'local ws = require "verawebsockets"', {
	-- A plugin's Luup-mode connection; outside a Luup host the delivery is the hook's.
	-- The handlers are the plugin's own globals (defined here as a plugin would).
	sub = { { "wss://hub.example.com/events", WSS_ECHO } },
	before = [[
opened, got = 0, {}
function ws_open(protocol, attempt, wso) opened = opened + 1; require("verawebsockets").send(wso, "ping me") end
function ws_message(data) got[#got + 1] = data end
function ws_close() end
]],
	after = [[
for _ = 1, 100 do if #got > 0 then break end ws.dispatch(50) end
assert(opened == 1, "ws_open ran " .. opened .. " times")
assert(got[1] == "ping me", "no echo through ws_message")
print("example ok")
]],
	expect = { "example ok" },
})
case("README.md", 4, 'local websocket = require "verawebsockets.websocket"', {
	sub = { { "ws://127.0.0.1:8080/", ECHO } },
	expect = { "hi\t1" },
})

-- docs/api.md
case("docs/api.md", 1, 'local ws = require "verawebsockets"', {
	after = 'assert(type(ws.create) == "function"); print("example ok")',
	expect = { "example ok" },
})
case("docs/api.md", 2, "local wso = ws.create{", {
	sub = { { "wss://echo.example.com/ws", WSS_ECHO }, { "/etc/cmh/ca.pem", CA }, { "ws://127.0.0.1:8080/", ECHO } },
	before = [[
local ws = require "verawebsockets"
local seen = {}
local function on_open(wso, protocol) seen.open = protocol; ws.send(wso, "over tls") end
local function on_message(wso, data) seen.message = data; ws.close(wso, 1000) end
local function on_close(wso, clean, code) seen.close = code end
]],
	after = [[
assert(ws.connect(wso))
assert(ws.loop(10000))
assert(seen.message == "over tls", "no echo over wss")
assert(seen.close == 1000, "close " .. tostring(seen.close))
assert(ws.state(wso2) == "created")
print("example ok")
]],
	expect = { "example ok" },
	-- the chat subprotocol: the echo route accepts without one; /subproto would choose it
})
case("docs/api.md", 3, "local ok, err = ws.connect(wso)", {
	before = [[
local ws = require "verawebsockets"
local opened
local wso = ws.create{url = ]] .. lq(ECHO) .. [[, standalone = true, event_handlers = {open = function() opened = true end}}
]],
	after = HOOK_WAIT .. 'assert(pump(function() return opened end), "no open"); print("example ok")',
	expect = { "example ok" },
})
case("docs/api.md", 4, 'assert(ws.send(wso, "Hello world!"))', {
	before = OPEN_WSO,
	after = 'assert(pump(function() return #got == 2 end)); assert(got[1] == "Hello world!" and got[2] == "\\0\\1\\2"); print("example ok")',
	expect = { "example ok" },
})
case("docs/api.md", 5, 'ws.close(wso, 1000, "bye")', {
	before = OPEN_WSO,
	after = 'assert(pump(function() return closed end)); assert(closed.code == 1000 and closed.clean, "close " .. tostring(closed.code)); print("example ok")',
	expect = { "example ok" },
})
case("docs/api.md", 6, "ws.ping(wso, tostring(os.time()))", {
	before = OPEN_WSO,
	after = 'ws.dispatch(200); assert(ws.state(wso) == "open"); print("example ok")',
	expect = { "example ok" },
})
case("docs/api.md", 7, 'if ws.state(wso) == "open" then ws.send(wso, "x") end', {
	before = OPEN_WSO,
	after = 'assert(pump(function() return got[1] == "x" end)); print("example ok")',
	expect = { "example ok" },
})
case("docs/api.md", 8, "if ws.buffered(wso) < 1048576 then ws.send(wso, chunk) end", {
	before = OPEN_WSO .. 'local chunk = string.rep("c", 4096)\n',
	after = 'assert(pump(function() return got[1] == chunk end)); print("example ok")',
	expect = { "example ok" },
})
case("docs/api.md", 9, "ws.connect(wso)", {
	before = [[
local ws = require "verawebsockets"
local wso = ws.create{url = ]] .. lq(ECHO) .. [[, standalone = true, event_handlers = {
  open = function(w) ws.send(w, "one") end,
  message = function(w) ws.close(w, 1000) end,
}}
]],
	after = 'assert(ok, "ws.loop: " .. tostring(err)); print("example ok")',
	expect = { "example ok" },
})
case("docs/api.md", 10, "while running do", {
	before = OPEN_WSO .. [[
local running, turns = true, 0
ws.send(wso, "during the loop")
local function do_other_work() turns = turns + 1; if got[1] or turns > 100 then running = false end end
]],
	after = 'assert(got[1] == "during the loop", "ws.dispatch delivered nothing"); print("example ok")',
	expect = { "example ok" },
})
case("docs/api.md", 11, "-- with luasocket: wrap the fd for socket.select", {
	before = 'local ws = require "verawebsockets"\n',
	after = 'assert(type(fd) == "number" and fd >= 0, "fd " .. tostring(fd)); print("example ok")',
	expect = { "example ok" },
})
case("docs/api.md", 12, 'ws.set_delivery("hook")', {
	before = 'local ws = require "verawebsockets"\n',
	after = 'assert(ws.delivery() == "hook", ws.delivery()); print("example ok")',
	expect = { "example ok" },
})
case("docs/api.md", 13, "ws.set_luup_port(3480)", {
	before = 'local ws = require "verawebsockets"\n',
	after = 'print("example ok")',
	expect = { "example ok" },
})
case("docs/api.md", 14, "ws.set_log_level(1 + 2)", {
	before = 'local ws = require "verawebsockets"\n',
	after = 'print("example ok")',
	expect = { "example ok" },
})
case("docs/api.md", 15, "function incoming(data, kind, wso)", {
	-- Luup mode (no standalone): outside a host, events come in waits (the hook delivery).
	before = 'local ws = require "verawebsockets"\nlocal url = ' .. lq(ECHO) .. "\n",
	after = HOOK_WAIT .. [[
assert(ws.connect(wso))
assert(pump(function() return ws.state(wso) == "open" end), "no open")
ws.send(wso, "12345")
pump(function() return false end)  -- 5 s of deliveries; the handler prints
ws.close(wso, 1000, "done")
pump(function() return ws.state(wso) == "closed" end)
]],
	expect = { "got 5 bytes", "closed\t1000\tdone" },
})
case("docs/api.md", 16, 'local ws = require "verawebsockets"', {
	sub = { { "port = 8080", "port = 0" } },
	serve = "ws", -- prints "listening on port N"; echo + broadcast per message
	expect = { "client connected to /room", "client left\t1000" },
})
case("docs/api.md", 17, "local srv  -- declared first", {
	sub = { { "port = 8080", "port = 0" }, { '"/www"', "WWW" } },
	before = 'local ws = require "verawebsockets"\nlocal WWW = os.getenv("EXAMPLE_WWW")\n',
	-- a Luup-mode server: outside a host, the script's own loop delivers its events
	after = 'print("listening on port " .. srv:port())\nwhile true do ws.dispatch(1000) end\n',
	serve = "http",
})
case("docs/api.md", 18, 'local TOKEN = "s3cret"', {
	sub = { { "port = 8080", "port = 0" } },
	before = 'local ws = require "verawebsockets"\n',
	after = 'print("listening on port " .. srv:port())\nws.loop()\n',
	serve = "filter",
})
case("docs/api.md", 19, "local srv = assert(ws.listen{", {
	sub = { { "port = 8080", "port = 0" }, { '"0.0.0.0"', '"127.0.0.1"' },
		{ '"http://192.168.1.5"', '"http://127.0.0.1:8000"' },
		{ '"server.pem"', lq(tap.cert("server.pem")) }, { '"server.key"', lq(tap.cert("server.key")) },
		{ '"home-ca.pem"', lq(CA) } },
	before = 'local ws = require "verawebsockets"\n',
	after = 'print("listening on port " .. srv:port())\nwhile true do ws.dispatch(1000) end\n',
	serve = "mtls",
	expect = { "device .*CN=" },
})
case("docs/api.md", 20, "open = function(wso, path)", {
	-- a field of event_handlers: the server around it is the harness's
	before = [[
local ws = require "verawebsockets"
local TOKEN = "s3cret"
local srv = assert(ws.listen{port = 0, standalone = true, event_handlers = {
]],
	after = [[
}})
local function try(headers)
  local closed
  local c = ws.create{url = "ws://127.0.0.1:" .. srv:port() .. "/", standalone = true, headers = headers,
    event_handlers = {close = function(w, clean, code) closed = code end}}
  assert(ws.connect(c))
  for _ = 1, 40 do if closed then break end ws.dispatch(50) end
  local state = closed or ws.state(c)
  if not closed then ws.close(c, 1000) end
  for _ = 1, 40 do if ws.state(c) == "closed" then break end ws.dispatch(50) end
  return state
end
assert(try({}) == 4401, "no token: not closed with 4401")
assert(try({Authorization = "Bearer s3cret"}) == "open", "the right token: not open")
ws.close(srv)
print("example ok")
]],
	expect = { "example ok" },
})
case("docs/api.md", 21, "local client = ws.client.sync{timeout = 2}", {
	before = 'local ws = require "verawebsockets"\n',
	after = 'assert(client:connect(' .. lq(ECHO) .. ')); client:close(); print("example ok")',
	expect = { "example ok" },
})
case("docs/api.md", 22, 'local ok, err = client:connect("ws://localhost:12345", "echo")', {
	sub = { { "ws://localhost:12345", tap.url("/subproto") } },
	before = 'local ws = require "verawebsockets"\nlocal client = ws.client.sync{timeout = 2}\n',
	after = 'assert(ok, err); assert(client:send("x")); assert(client:receive() == "x"); client:close(); print("example ok")',
	expect = { "example ok" },
})
case("docs/api.md", 23, "local message, opcode, was_clean, code, reason = client:receive()", {
	before = SYNC_OPEN .. 'assert(client:send("hello there"))\n',
	expect = { "msg\thello there\t1" },
})
case("docs/api.md", 24, 'local ok, was_clean, code, reason = client:send("hello", ws.TEXT)', {
	before = SYNC_OPEN,
	after = 'assert(ok, "send"); assert(client:receive() == "hello"); print("example ok")',
	expect = { "example ok" },
})
case("docs/api.md", 25, 'local was_clean, code, reason = client:close(4001, "lost interest")', {
	before = SYNC_OPEN,
	after = 'assert(was_clean == true and code == 4001, tostring(code)); print("example ok")',
	expect = { "example ok" },
})

-- docs/compat.md
case("docs/compat.md", 1, "package.preload.websockets = function()", {
	sub = { { "port = 8001", "port = tonumber(os.getenv('EXAMPLE_PORT'))" }, { '"./index.html"', 'os.getenv("EXAMPLE_WWW") .. "/index.html"' } },
	serve = "lws",
})

-- ---------------------------------------------------------------- running
local function apply(code, subs)
	for _, s in ipairs(subs or {}) do
		local from, to = s[1], s[2]
		local i = code:find(from, 1, true)
		assert(i, "the replacement's text is not in the block any more: " .. from)
		code = code:sub(1, i - 1) .. to .. code:sub(i + #from)
	end
	return code
end

local function program(c, block)
	return (c.before or "") .. apply(block.code, c.sub) .. "\n" .. (c.after or "")
end

local function show(s) return (s:gsub("\n$", ""):gsub("\n", "\n#   ")) end

local function check_output(c, out)
	for _, pat in ipairs(c.expect or {}) do
		if not out:find(pat) then error("the output lacks " .. pat .. "; it was:\n#   " .. show(out), 0) end
	end
	ok(not out:find("stack traceback"), "no Lua error in the output:\n#   " .. show(out))
end

-- Background run of a server example: starts it, returns {port, out(), stop()}.
local function background(code, env)
	local dir = tmpdir()
	local f = assert(io.open(dir .. "/example.lua", "w"))
	f:write('io.stdout:setvbuf("line") ', code) -- its output is a file: lines as printed
	f:close()
	local envs = {}
	for k, v in pairs(env or {}) do envs[#envs + 1] = k .. "=" .. shq(v) end
	local lua = os.getenv("VWS_TEST_LUA") or "lua5.1"
	-- from this directory: VWS_TEST_LUA may hold relative paths (qemu's sysroot)
	os.execute(string.format("(echo $$ > %s/pid; exec env %s timeout %d %s %s/example.lua > %s/out 2>&1) &",
		shq(dir), table.concat(envs, " "), 60 * tap.factor, lua, shq(dir), shq(dir)))
	local h = { dir = dir }
	function h.out()
		local fo = io.open(dir .. "/out")
		if not fo then return "" end
		local s = fo:read("*a")
		fo:close()
		return s
	end
	function h.stop()
		local fp = io.open(dir .. "/pid")
		local pid = fp and fp:read("*n")
		if fp then fp:close() end
		-- the subshell's pid: kill timeout and the interpreter under it
		if pid then os.execute("pkill -P " .. pid .. " 2>/dev/null; kill " .. pid .. " 2>/dev/null") end
		tap.sleep(0.2)
		local s = h.out()
		os.execute("rm -rf " .. shq(dir))
		return s
	end
	function h.wait_port()
		for _ = 1, 100 * tap.factor do
			local p = h.out():match("listening on port (%d+)")
			if p then return tonumber(p) end
			tap.sleep(0.05)
		end
		error("the server example printed no port; its output:\n#   " .. show(h.out()), 0)
	end
	return h
end

-- failed(err, out): the driver's failure, with the example's output
local function failed(err, out)
	if type(err) == "table" then err = err.msg end
	error(tostring(err) .. "\n# the example's output:\n#   " .. show(out), 0)
end

-- sync(url, protocol[, opts]) -> an open sync client (this process's library)
local function sync(url, protocol, opts)
	local c = assert(ws.client.sync(opts or { timeout = 5 }))
	assert(c:connect(url, protocol))
	return c
end

-- www_with(index) -> a new directory holding index.html with that text.
local function www_with(index)
	local www = tmpdir()
	local f = assert(io.open(www .. "/index.html", "w"))
	f:write(index)
	f:close()
	return www
end

-- serve(c, block, env, fn[, dir]): runs the server example in the background (env:
-- extra environment), calls fn(h) to drive it, stops it, removes dir, fails with its
-- output when fn failed, and checks its output.
local function serve(c, block, env, fn, dir)
	local h = background(program(c, block), env)
	local okr, err = pcall(fn, h)
	local out = h.stop()
	if dir then os.execute("rm -rf " .. shq(dir)) end
	if not okr then failed(err, out) end
	check_output(c, out)
end

local drive = {}

function drive.ws(c, block)
	serve(c, block, nil, function(h)
		local port = h.wait_port()
		local a = sync("ws://127.0.0.1:" .. port .. "/room")
		local b = sync("ws://127.0.0.1:" .. port .. "/room")
		assert(a:send("hello"))
		eq(a:receive(), "hello", "the echo to the sender")
		local got = {}
		for i, cl in ipairs({ a, b }) do
			local m, e1, e2, e3, e4 = cl:receive()
			got[i] = m or ("nil: " .. table.concat({ tostring(e1), tostring(e2), tostring(e3), tostring(e4) }, " "))
		end
		eq(got[1], "someone said 5 bytes", "the broadcast reaches the sender")
		eq(got[2], "someone said 5 bytes", "the broadcast reaches the other client")
		a:close(1000)
		b:close(1000)
		tap.sleep(0.3)
	end)
end

function drive.http(c, block)
	local www = www_with("<h1>the plugin's page</h1>\n")
	serve(c, block, { EXAMPLE_WWW = www }, function(h)
		local port = h.wait_port()
		local st, body = http_get(port, "/status.json")
		eq(st, 200, "GET /status.json")
		eq(body, '{"on":true}', "the handler's body")
		st, body = http_get(port, "/")
		eq(st, 200, "GET / (http_root)")
		eq(body, "<h1>the plugin's page</h1>\n", "index.html from http_root")
		local a = sync("ws://127.0.0.1:" .. port .. "/", "chat")
		local b = sync("ws://127.0.0.1:" .. port .. "/", "chat")
		assert(a:send("to everyone"))
		eq(a:receive(), "to everyone", "the broadcast to the sender")
		eq(b:receive(), "to everyone", "the broadcast to the other chat client")
		a:close(1000)
		b:close(1000)
	end, www)
end

function drive.filter(c, block)
	serve(c, block, nil, function(h)
		local port = h.wait_port()
		local out = sh("curl -s -i --max-time 5 -H 'Connection: Upgrade' -H 'Upgrade: websocket' " ..
			"-H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' http://127.0.0.1:" .. port .. "/")
		like(out, "^HTTP/1%.1 401", "no token: 401")
		like(out, '\r\nWWW%-Authenticate: Bearer realm="plugin"\r\n', "its WWW-Authenticate")
		like(out, "\r\n\r\ntoken required\n$", "its body")
		local cl = assert(ws.client.sync{ timeout = 5 })
		ok(not cl:connect("ws://127.0.0.1:" .. port .. "/"), "the sync client without a token is refused")
		local opened, got
		local w = ws.create{ url = "ws://127.0.0.1:" .. port .. "/", standalone = true,
			headers = { Authorization = "Bearer s3cret" }, event_handlers = {
				open = function(x) opened = true; ws.send(x, "with token") end,
				message = function(x, d) got = d; ws.close(x, 1000) end } }
		assert(ws.connect(w))
		for _ = 1, 100 * tap.factor do
			if ws.state(w) == "closed" then break end
			ws.dispatch(50)
		end
		ok(opened, "the token gets in")
		eq(got, "with token", "and is echoed")
	end)
end

function drive.mtls(c, block)
	serve(c, block, nil, function(h)
		local port = h.wait_port()
		local url = "wss://127.0.0.1:" .. port .. "/"
		local good = { client_ssl_ca_filepath = CA, client_ssl_cert_filepath = tap.cert("client.pem"),
			client_ssl_private_key_filepath = tap.cert("client.key") }
		local function try(ssl)
			local opened, closed
			local cl = ws.create{ url = url, standalone = true, ssl_settings = ssl, event_handlers = {
				open = function() opened = true end, close = function() closed = true end,
				error = function() closed = true end } }
			assert(ws.connect(cl))
			for _ = 1, 100 * tap.factor do
				if opened or closed then break end
				ws.dispatch(50)
			end
			if opened then ws.close(cl, 1000) end
			for _ = 1, 100 * tap.factor do
				if ws.state(cl) == "closed" then break end
				ws.dispatch(50)
			end
			return opened
		end
		ok(try(good), "a client with a certificate of the CA connects")
		ok(not try({ client_ssl_ca_filepath = CA }), "a client without a certificate is refused")
		tap.sleep(0.3)
	end)
end

function drive.lws(c, block)
	local www = www_with("<p>lws page</p>\n")
	local port = free_port()
	serve(c, block, { EXAMPLE_WWW = www, EXAMPLE_PORT = port }, function(h)
		local st, body
		for _ = 1, 100 * tap.factor do
			st, body = http_get(port, "/")
			if st == 200 then break end
			tap.sleep(0.05)
		end
		eq(st, 200, "GET / from on_http")
		eq(body, "<p>lws page</p>\n", "serve_http_file's file")
		local a = sync("ws://127.0.0.1:" .. port .. "/", "echo")
		assert(a:send("echo me"))
		eq(a:receive(), "echo me", "the echo protocol")
		a:close(1000)
	end, www)
end

local env = { SSL_CERT_FILE = CA }

for _, file in ipairs(files) do
	for n, block in ipairs(blocks(file)) do
		local key = file .. "#" .. n
		local c = cases[key]
		local name = key .. " (line " .. block.line .. ")"
		if c then c.seen = true end
		test(name, function()
			ok(c, "no case for this example in tests/test-examples.lua: add one (first line: "
				.. (block.code:match("^[^\n]*") or "") .. ")")
			local first = block.code:match("^[^\n]*")
			eq(first:sub(1, #c.first), c.first, "the start of its first line (a block moved: renumber the cases)")
			if c.serve then return drive[c.serve](c, block) end
			local out, okrun, status = tap.run_lua_env(env, program(c, block), 30)
			ok(okrun, "the example exited with " .. tostring(status) .. ":\n#   " .. show(out))
			check_output(c, out)
		end)
	end
end

test("every case has its block", function()
	for key, c in pairs(cases) do ok(c.seen, key .. " has a case but no block") end
end)

tap.done()

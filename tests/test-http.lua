-- A server that also serves HTTP (ws.listen): files of http_root, the `http`
-- request handler, per-subprotocol handlers, and a headless Chromium page
-- served by the server that opens a WebSocket to the same port.
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/lib/?.lua;" .. package.path
local tap = require "tap"
local ws = tap.ws
local test, ok, eq, like = tap.test, tap.ok, tap.eq, tap.like


if not ws or type(ws.listen) ~= "function" then
	test("ws.listen exists", function()
		ok(ws, "require 'verawebsockets' failed: " .. tostring(tap.load_error))
	end)
	tap.done()
end
local has_socket, socket = pcall(require, "socket")

-- ---------------------------------------------------------------- helpers
local dirs

-- stest(name, fn[, needs_socket]): tap.server_test (skipped without LuaSocket unless
-- needs_socket is false); afterwards the test's www() directories are removed.
local function stest(name, fn, needs_socket)
	if needs_socket ~= false and not has_socket then return tap.skip(name, "LuaSocket missing (the raw client needs it)") end
	tap.server_test(name, fn, {
		before = function() dirs = {} end,
		after = function()
			for _, d in ipairs(dirs) do os.execute("rm -rf '" .. d .. "'") end
			dirs = nil
		end,
	})
end

local function writefile(name, data)
	local f = assert(io.open(name, "wb"))
	f:write(data)
	f:close()
end

local readfile = tap.readfile

-- www() -> root: a new directory of test files (and dir/secret.txt beside it,
-- with root/out.txt a symlink to it).
local function www()
	local dir = os.tmpname()
	os.remove(dir)
	assert(tap.execute("mkdir -p " .. dir .. "/www/sub " .. dir .. "/www/nodex"))
	dirs[#dirs + 1] = dir
	local root = dir .. "/www"
	for name, data in pairs({
		["index.html"] = "<p>home</p>", ["app.js"] = "1;", ["s.css"] = "p{}", ["d.json"] = "{}", ["i.png"] = "png",
		["i.jpg"] = "jpg", ["i.svg"] = "<svg/>", ["t.txt"] = "text", ["f.ico"] = "ico", ["blob.bin"] = "bin",
		["sub/index.html"] = "<p>sub</p>", ["nodex/a.txt"] = "a",
	}) do
		writefile(root .. "/" .. name, data)
	end
	writefile(dir .. "/secret.txt", "secret")
	assert(tap.execute("ln -s " .. dir .. "/secret.txt " .. root .. "/out.txt"))
	return root
end

local function listen(opts)
	opts.standalone = true
	return tap.listen(opts)
end

-- http(port, raw) -> status, headers (lower-case names), body: a raw LuaSocket
-- request; events are dispatched meanwhile (the `http` handler runs here).
local function http(port, raw)
	local c = assert(socket.tcp())
	c:settimeout(5 * tap.factor)
	assert(c:connect("127.0.0.1", port))
	c:settimeout(0)
	local sent, parts = 0, {}
	local deadline = tap.now() + 10 * tap.factor
	while true do
		if sent < #raw then
			local n, _, last = c:send(raw, sent + 1)
			sent = n or last or sent
		end
		local d, e, part = c:receive("*a")
		if d and d ~= "" then parts[#parts + 1] = d end
		if part and part ~= "" then parts[#parts + 1] = part end
		if d or e == "closed" then break end
		if tap.now() > deadline then c:close(); error("no complete HTTP answer in time: " .. table.concat(parts), 2) end
		ws.dispatch(10)
	end
	c:close()
	local res = table.concat(parts)
	local head, body = res:match("^(.-)\r\n\r\n(.*)$")
	ok(head, "no HTTP head in " .. tap.show(res))
	local status = tonumber(head:match("^HTTP/1%.1 (%d%d%d)"))
	local h = {}
	for k, v in head:gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do h[k:lower()] = v end
	return status, h, body
end

local function get(path, extra) return "GET " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\n" .. (extra or "") .. "\r\n" end

-- ---------------------------------------------------------------- files
stest("http_root: content types by extension, index.html, HEAD, Last-Modified", function()
	local port = listen({ http_root = www() }):port()
	for _, c in ipairs({
		{ "/", "text/html; charset=utf-8", "<p>home</p>" }, { "/index.html", "text/html; charset=utf-8", "<p>home</p>" },
		{ "/app.js?v=2", "text/javascript; charset=utf-8", "1;" }, { "/s.css", "text/css; charset=utf-8", "p{}" },
		{ "/d.json", "application/json", "{}" }, { "/i.png", "image/png", "png" }, { "/i.jpg", "image/jpeg", "jpg" },
		{ "/i.svg", "image/svg+xml", "<svg/>" }, { "/t.txt", "text/plain; charset=utf-8", "text" },
		{ "/f.ico", "image/x-icon", "ico" }, { "/blob.bin", "application/octet-stream", "bin" },
		{ "/sub/", "text/html; charset=utf-8", "<p>sub</p>" },
	}) do
		local status, h, body = http(port, get(c[1]))
		eq(status, 200, c[1])
		eq(h["content-type"], c[2], c[1] .. " content-type")
		eq(body, c[3], c[1] .. " body")
		eq(h["content-length"], tostring(#c[3]), c[1] .. " content-length")
		like(h["last-modified"], "^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$", c[1] .. " last-modified")
	end
	local status, h, body = http(port, "HEAD /t.txt HTTP/1.1\r\nHost: x\r\n\r\n")
	eq(status, 200, "HEAD")
	eq(h["content-length"], "4", "HEAD content-length")
	eq(body, "", "HEAD has no body")
	status, h = http(port, get("/sub"))
	eq(status, 301, "a directory without its slash")
	eq(h.location, "/sub/")
end)

stest("http_root: If-Modified-Since gets 304, an older date 200", function()
	local port = listen({ http_root = www() }):port()
	local _, h = http(port, get("/t.txt"))
	local status, h2, body = http(port, get("/t.txt", "If-Modified-Since: " .. h["last-modified"] .. "\r\n"))
	eq(status, 304, "not modified")
	eq(body, "", "304 has no body")
	eq(h2["last-modified"], h["last-modified"])
	eq((http(port, get("/t.txt", "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT\r\n"))), 200, "modified since 2000")
end)

stest("http_root: traversal (.., %2e%2e, symlinks out) is refused, missing is 404, other methods 405", function()
	local port = listen({ http_root = www() }):port()
	for _, p in ipairs({ "/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E%2fsecret.txt",
		"/sub/%2e%2e/%2e%2e/secret.txt", "/out.txt" }) do
		local status, _, body = http(port, get(p))
		ok(status == 403 or status == 404, p .. ": status " .. tostring(status))
		ok(not body:find("secret"), p .. " leaked the file")
	end
	eq((http(port, get("/missing.txt"))), 404, "missing")
	eq((http(port, get("/nodex/"))), 404, "a directory without index.html")
	local status, h = http(port, "POST /t.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
	eq(status, 405, "POST")
	eq(h.allow, "GET, HEAD")
	eq((http(port, "DELETE /t.txt HTTP/1.1\r\nHost: x\r\n\r\n")), 405, "DELETE")
end)

stest("http_root: the Origin policy does not apply to plain GETs; handshake_rate does", function()
	local root = www()
	local port = listen({ http_root = root, handshake_rate = { rate = 0.5, burst = 2 } }):port()
	eq((http(port, get("/t.txt", "Origin: http://evil.example\r\n"))), 200, "a foreign Origin")
	eq((http(port, get("/t.txt"))), 200, "second")
	local status, h = http(port, get("/t.txt"))
	eq(status, 429, "over handshake_rate")
	eq(h["retry-after"], "1")
end)

-- The held request and a probe race on the server (two goroutines): a probe may be counted
-- before the held request (200), and when it is still counted as the held request comes, the
-- held request is the one refused (503, closed): that round starts again with a new one.
stest("http_root: max_clients_per_ip counts a plain request until it ends", function()
	local root = www()
	local port = listen({ http_root = root, max_clients_per_ip = 1 }):port()
	local counted
	for round = 1, 5 do
		local held = assert(socket.tcp())
		held:settimeout(5 * tap.factor)
		assert(held:connect("127.0.0.1", port))
		held:send("POST /t.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n") -- its body never comes
		held:settimeout(0)
		local refused
		local deadline = tap.now() + 8 * tap.factor -- the held request counts for the 10 s handshake timeout
		while tap.now() < deadline do
			local got = http(port, get("/t.txt"))
			local early, e = held:receive(1)
			if got == 503 then
				ok(not early and e == "timeout", "the held request is still waiting for its body: " .. tostring(early or e))
				counted = true
				break
			end
			eq(got, 200, "a probe")
			if early or e == "closed" then
				refused = true
				print("# round " .. round .. ": a probe was counted first; the held request was refused")
				break
			end
			tap.pump(0.05)
		end
		held:close()
		if not refused then break end
	end
	ok(counted, "503 while the address has a request open")
	tap.wait(function() return (http(port, get("/t.txt"))) == 200 end, 5, "200 once it is gone")
end)

stest("http_root: a missing directory fails ws.listen; bad http options raise", function()
	local okl, err = pcall(ws.listen, { port = 0, standalone = true, http_root = "/nonexistent/dir" })
	ok(not okl and tostring(err):find("bad argument #1", 1, true) and tostring(err):find("http_root", 1, true), tostring(err))
	okl, err = pcall(ws.listen, { port = 0, standalone = true, http = "handler" })
	ok(not okl and tostring(err):find("http: function expected", 1, true), tostring(err))
	okl, err = pcall(ws.listen, { port = 0, standalone = true, max_http_body = -1 })
	ok(not okl and tostring(err):find("max_http_body", 1, true), tostring(err))
	okl, err = pcall(ws.listen, { port = 0, standalone = true, protocols = { chat = 1 } })
	ok(not okl and tostring(err):find("protocols.chat", 1, true), tostring(err))
end, false)

-- ---------------------------------------------------------------- the handler
stest("http handler: req fields, status, headers and body; nil falls back to http_root", function()
	local reqs = {}
	local port = listen({ http_root = www(), http = tap.expect(function(req)
		reqs[#reqs + 1] = req
		if req.path == "/api" then
			return 201, { ["X-Reply"] = "yes", ["Content-Type"] = "application/json", ["X-N"] = 7 }, '{"ok":true}'
		end
		if req.path == "/empty" then return 204 end
	end, 4) }):port()
	local status, h, body = http(port, "POST /api?a=1&b=%20 HTTP/1.1\r\nHost: h:1\r\nX-Test: one\r\nX-Test: two\r\n" ..
		"Content-Length: 5\r\n\r\nhello")
	eq(status, 201)
	eq(h["x-reply"], "yes")
	eq(h["x-n"], "7")
	eq(h["content-type"], "application/json")
	eq(body, '{"ok":true}')
	local r = reqs[1]
	eq(r.method, "POST")
	eq(r.path, "/api")
	eq(r.query, "a=1&b=%20")
	eq(r.body, "hello")
	eq(r.headers.host, "h:1")
	eq(r.headers["x-test"], "one, two", "a repeated header")
	eq(r.headers["content-length"], "5")
	like(r.peer, "^127%.0%.0%.1:%d+$")
	status, h, body = http(port, get("/t.txt"))
	eq(status, 200, "nil: the file")
	eq(body, "text")
	eq(reqs[2].query, "")
	status, _, body = http(port, get("/empty"))
	eq(status, 204)
	eq(body, "")
	status, h, body = http(port, "HEAD /api HTTP/1.1\r\nHost: x\r\n\r\n")
	eq(status, 201, "HEAD to the handler")
	eq(body, "", "no body for HEAD")
	eq(h["content-length"], "11")
end)

stest("http handler: without http_root nil is 404; over max_http_body 413", function()
	local port = listen({ http = tap.expect(function() end, 1), max_http_body = 8 }):port()
	eq((http(port, get("/x"))), 404)
	eq((http(port, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n123456789")), 413, "9 bytes over 8")
	eq((http(port, "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n123456789\r\n0\r\n\r\n")), 413,
		"chunked")
end)

stest("http handler: an error or a bad result is a 500, logged on stderr", function()
	local out = tap.run_lua([[
		local ws, socket = require "verawebsockets", require "socket"
		local srv = assert(ws.listen{ port = 0, standalone = true, http = function(req)
			if req.path == "/boom" then error("boom in the handler") end
			if req.path == "/bad" then return 200, { ["Bad Name"] = "x" }, "" end
			return "two hundred"
		end })
		for _, p in ipairs({ "/boom", "/bad", "/str" }) do
			local c = socket.tcp()
			c:connect("127.0.0.1", srv:port())
			c:send("GET " .. p .. " HTTP/1.1\r\nHost: x\r\n\r\n")
			c:settimeout(0)
			local got = ""
			for _ = 1, 500 do
				local d, e, part = c:receive("*a")
				got = got .. (d or part or "")
				if d or e == "closed" then break end
				ws.dispatch(10)
			end
			print("STATUS " .. p .. " " .. tostring(got:match("^HTTP/1%.1 (%d+)")))
		end
	]], 30)
	like(out, "STATUS /boom 500", out)
	like(out, "STATUS /bad 500", out)
	like(out, "STATUS /str 500", out)
	like(out, "error in handler for event 12: [^\n]*boom in the handler", "logged with the message")
	like(out, "stack traceback", "with a traceback")
	like(out, "http handler: [^\n]*Bad Name", "a bad header name is logged")
	like(out, "status %(a number%) or nil expected", "a bad status is logged")
end)

-- ---------------------------------------------------------------- subprotocols
stest("protocols = {name = handlers}: each client gets its subprotocol's handlers, event_handlers the rest", function()
	local got = {}
	local function handlers(tag)
		return {
			open = function(wso, path, proto) got[#got + 1] = tag .. ":open:" .. proto end,
			message = function(wso, data) got[#got + 1] = tag .. ":" .. data; ws.send(wso, tag .. ":" .. data) end,
		}
	end
	local srv = listen({ protocols = { chat = handlers("chat"), echo = handlers("echo"), "plain" },
		event_handlers = handlers("default") })
	local replies = {}
	local clients = {}
	for _, p in ipairs({ "chat", "echo", "plain", "" }) do
		local wso, rec = tap.open("ws://127.0.0.1:" .. srv:port() .. "/", { protocols = p ~= "" and { p } or nil })
		clients[#clients + 1] = wso
		eq(ws.send(wso, "hi " .. p), true)
		tap.wait(function() return rec.count(8) == 1 end, 5, "reply for " .. p)
		replies[#replies + 1] = rec.last(8)
	end
	eq(table.concat(replies, "|"), "chat:hi chat|echo:hi echo|default:hi plain|default:hi ")
	eq(got[1], "chat:open:chat")
	eq(got[5], "default:open:plain")
	for _, wso in ipairs(clients) do tap.close_and_wait(wso) end
end)

-- ---------------------------------------------------------------- the libwebsockets binding's API
stest("verawebsockets.lws: a context serves a page with on_http/serve_http_file and WebSockets per protocol", function()
	local lws = require "verawebsockets.lws"
	eq(lws.WRITE_TEXT, 0)
	eq(lws.WRITE_BINARY, 1)
	local root = www()
	local fds, uris, closed = {}, {}, 0
	local context = lws.context({
		port = 0, interf = "127.0.0.1",
		on_http = function(w, uri)
			uris[#uris + 1] = uri
			if uri == "/" then w:serve_http_file(root .. "/index.html", "text/html") end
		end,
		on_add_fd = function(fd) fds[#fds + 1] = "add" .. fd end,
		on_del_fd = function(fd) fds[#fds + 1] = "del" .. fd end,
		protocols = {
			chat = function(w)
				w:on_receive(function(w2, data) w2:write("chat:" .. data, lws.WRITE_TEXT) end)
				w:on_broadcast(lws.WRITE_TEXT)
				w:on_closed(function() closed = closed + 1 end)
			end,
			other = function(w)
				w:on_broadcast(function(w2, data) w2:write("other:" .. data, lws.WRITE_BINARY) end)
				ok(type(w:get_socket_fd()) == "number", "get_socket_fd")
			end,
		},
	})
	local port = context:port()
	local status, h, body = http(port, get("/"))
	eq(status, 200, "on_http served the file")
	eq(h["content-type"], "text/html")
	eq(body, "<p>home</p>")
	eq((http(port, get("/nothing"))), 404, "on_http served nothing")
	eq(table.concat(uris, ","), "/,/nothing")
	like(fds[1] or "", "^add%d+$", "on_add_fd got the event fd")
	local chat, crec = tap.open("ws://127.0.0.1:" .. port .. "/", { protocols = { "chat" } })
	local other, orec = tap.open("ws://127.0.0.1:" .. port .. "/", { protocols = { "other" } })
	eq(ws.send(chat, "hi"), true)
	tap.wait(function() context:service(10); return crec.count(8) == 1 end, 5, "echo")
	eq(crec.last(8), "chat:hi")
	context:broadcast("chat", "to chat")
	context:broadcast("other", "to other")
	tap.wait(function() context:service(10); return crec.count(8) == 2 and orec.count(8) == 1 end, 5, "broadcasts")
	eq(crec.nth(8, 2), "to chat")
	local data, kind = orec.last(8)
	eq(data, "other:to other")
	eq(kind, "binary")
	ok(type(context:canonical_hostname()) == "string" and context:canonical_hostname() ~= "", "canonical_hostname")
	tap.close_and_wait(chat)
	tap.wait(function() context:service(10); return closed == 1 end, 5, "on_closed")
	tap.close_and_wait(other)
	context:destroy()
	like(fds[2] or "", "^del%d+$", "on_del_fd")
end)

-- ---------------------------------------------------------------- a browser
local chromium
do
	local function has(cmd) return tap.execute("command -v " .. cmd .. " >/dev/null 2>&1") end
	if not has("chromium") then -- installs with apt-get when run as root (bounded)
		os.execute("cd " .. (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/.. && timeout 600 build/deps.sh chromium >/dev/null 2>&1")
	end
	chromium = has("chromium") or "chromium not installed and build/deps.sh chromium could not install it"
end
-- Under qemu (the cross tests) the browser's virtual time outruns the emulated
-- server; the server code is the same as on amd64, where this test runs.
do
	local arch = os.getenv("VWS_TEST_ARCH")
	if arch and arch ~= "amd64" and chromium == true then
		chromium = "skipped under emulation (" .. arch .. "): runs on amd64"
	end
end

-- browse(url, dir) -> outcome, dom: tap.browse (events are dispatched meanwhile).
local browse = tap.browse

local PAGE = [[<!doctype html><html><head><meta charset="utf-8"><title>vws</title><script src="/config.js"></script></head>
<body><p id="r">PENDING</p><script>
var r = document.getElementById("r"), got = [], want = "h\u00e9llo \u2713 \u65e5\u672c";
var s = new WebSocket("ws://" + location.host + "/ws", ["chat"]);
s.binaryType = "arraybuffer";
function done(x) { r.textContent = "OUT" + "COME:" + x; s.close(); }
s.onopen = function () { s.send(want); s.send(new Uint8Array([0, 1, 2, 255, 128]).buffer); };
s.onmessage = function (e) {
  got.push(e.data);
  if (got.length < 2) return;
  var b = new Uint8Array(got[1]);
  var bin = b.length === 5 && b[0] === 0 && b[1] === 1 && b[2] === 2 && b[3] === 255 && b[4] === 128;
  done((got[0] === "echo:" + want && bin ? "OK" : "BAD") + " proto=" + s.protocol + " ext=" + (s.extensions || "none") + " cfg=" + CFG);
};
s.onclose = function (e) { if (r.textContent === "PENDING") r.textContent = "OUT" + "COME:CLOSED:" + e.code; };
</script></body></html>
]]

for _, compression in ipairs({ false, true }) do
	local name = "browser: a page served by ws.listen opens a WebSocket to the same port (subprotocol chat, compression " ..
		tostring(compression) .. ")"
	if chromium ~= true then
		tap.skip(name, chromium)
	else
		stest(name, function()
			local root = www()
			writefile(root .. "/page.html", PAGE)
			local texts, bins = {}, {}
			local srv = listen({ http_root = root, compression = compression,
				http = function(req)
					if req.path == "/config.js" then
						return 200, { ["Content-Type"] = "text/javascript" }, 'var CFG = "dyn";'
					end
				end,
				protocols = { chat = {
					message = function(wso, data, kind)
						if kind == "text" then
							texts[#texts + 1] = data
							ws.send(wso, "echo:" .. data)
						else
							bins[#bins + 1] = data
							ws.send(wso, data, "binary")
						end
					end,
				} } })
			local outcome, dom = browse("http://127.0.0.1:" .. srv:port() .. "/page.html", root:match("^(.*)/www$"))
			ok(outcome and outcome:find("^OK proto=chat "), "outcome " .. tostring(outcome) .. ": " .. dom:sub(1, 3000))
			like(outcome, "cfg=dyn", "the handler's script ran")
			if compression then
				like(outcome, "ext=permessage%-deflate", "compression negotiated")
			else
				like(outcome, "ext=none", "no compression")
			end
			eq(texts[1], "h\195\169llo \226\156\147 \230\151\165\230\156\172", "the text as the server got it")
			eq(bins[1], "\0\1\2\255\128", "the binary message as the server got it")
		end)
	end
end

tap.done()

-- tests/luuphost/httpcheck.lua - checks the HTTP side of tests/luuphost/host.lua from
-- outside, over LuaSocket (blocking sockets with timeouts: this is the client):
--
--   lua5.1 tests/luuphost/httpcheck.lua PORT MODE
--
-- MODE: keepalive (the default host), close (host --close), chunked (host --chunked).
-- The host must run tests/luuphost/plugin_fake.lua as devices 11 and 12. Prints TAP
-- lines ("ok N - ..." / "not ok N - ..." with "#   " details); the caller counts them.
-- Exit status 1 when a check failed.

local socket = require "socket"
local port = assert(tonumber(arg[1]), "usage: httpcheck.lua PORT MODE")
local mode = arg[2] or "keepalive"
local keepalive, chunked = mode == "keepalive" or mode == "chunked", mode == "chunked"

local n, failed = 0, 0
local function check(name, fn)
	n = n + 1
	local ok, err = pcall(fn)
	print((ok and "ok " or "not ok ") .. n .. " - host http (" .. mode .. "): " .. name)
	if not ok then
		failed = failed + 1
		for line in (tostring(err) .. "\n"):gmatch("(.-)\n") do print("#   " .. line) end
	end
	io.stdout:flush()
end

local function connect()
	local s = assert(socket.tcp())
	s:settimeout(5)
	assert(s:connect("127.0.0.1", port))
	s:setoption("tcp-nodelay", true)
	return s
end

local function get(path, extra, version)
	return "GET " .. path .. " HTTP/" .. (version or "1.1") .. "\r\nHost: 127.0.0.1:" .. port .. "\r\n" .. (extra or "") .. "\r\n"
end

-- read_response(s) -> code, headers (lower-case names), body; raises on a bad answer.
local function read_response(s)
	local line, err = s:receive("*l")
	assert(line, "no status line: " .. tostring(err))
	local code = tonumber(line:match("^HTTP/1%.1 (%d%d%d) "))
	assert(code, "bad status line: " .. line)
	local h = {}
	for _ = 1, 50 do
		local l = assert(s:receive("*l"))
		if l == "" then break end
		local k, v = l:match("^([^:]+):%s*(.-)%s*$")
		assert(k, "bad header line: " .. l)
		h[k:lower()] = v
	end
	local body
	if h["transfer-encoding"] then
		assert(h["transfer-encoding"]:lower() == "chunked", "transfer-encoding " .. h["transfer-encoding"])
		assert(chunked, "a chunked answer from a host not in chunked mode")
		local parts = {}
		for _ = 1, 100000 do
			local size = tonumber(assert(s:receive("*l")), 16)
			assert(size, "bad chunk size")
			if size == 0 then assert(s:receive("*l") == ""); break end
			parts[#parts + 1] = assert(s:receive(size))
			assert(s:receive("*l") == "", "no CRLF after a chunk")
		end
		body = table.concat(parts)
	else
		assert(not chunked, "Content-Length from a host in chunked mode")
		local len = tonumber(h["content-length"])
		assert(len, "no Content-Length")
		body = len > 0 and assert(s:receive(len)) or ""
	end
	return code, h, body
end

local function eq(got, want, what)
	if got ~= want then error((what or "value") .. ": got " .. tostring(got) .. ", want " .. tostring(want), 2) end
end

local function like(s, pat, what)
	if type(s) ~= "string" or not s:find(pat) then
		error((what or "string") .. ": " .. string.format("%q", tostring(s)):sub(1, 300) .. " does not match " .. pat, 2)
	end
end

-- closed(s): the host closes the connection (within 5 s).
local function closed(s)
	local data, err = s:receive(1)
	eq(data, nil, "data after the response")
	eq(err, "closed", "receive after the response")
end

local function echo_path(dev, q) return "/data_request?id=lr_fake_echo_" .. dev .. (q or "") end

-- An idle connection held open for the whole check: nothing may wait for it.
local idle = connect()

check("GET lr_ runs the handler in its device's context, with decoded parameters", function()
	local s = connect()
	s:send(get(echo_path(11, "&a=1&b=h%C3%A9+x&output_format=xml")))
	local code, h, body = read_response(s)
	eq(code, 200, "status")
	like(body, "^request=fake_echo_11 device=11 current=11 format=xml ", "body")
	like(body, "params=a=1&b=h\195\169 x$", "parameters (id and output_format removed)")
	eq(h["content-type"], "text/plain", "content type")
	s:close()
end)

check("several requests on one connection" .. (keepalive and " (keep-alive)" or " (closed after each)"), function()
	local s = connect()
	for i = 1, 3 do
		local dev = 10 + (i % 2) + 1
		local ok, err = s:send(get(echo_path(dev, "&i=" .. i)))
		if not keepalive and i > 1 then
			-- the host closed after the first answer
			local code = ok and select(2, pcall(read_response, s))
			eq(code ~= 200, true, "an answer on a connection the host should have closed")
			break
		end
		assert(ok, err)
		local code, h, body = read_response(s)
		eq(code, 200, "status of request " .. i)
		like(body, "device=" .. dev .. " current=" .. dev .. " ", "body " .. i)
		like(body, "params=i=" .. i .. "$", "body " .. i)
		eq((h.connection or ""):lower(), keepalive and "keep-alive" or "close", "Connection header")
		if not keepalive then closed(s) end
	end
	s:close()
end)

check("pipelined requests (two in one write) are answered in order", function()
	local s = connect()
	s:send(get(echo_path(11, "&p=1")) .. get(echo_path(12, "&p=2")))
	local code, _, body = read_response(s)
	eq(code, 200)
	like(body, "device=11 .*params=p=1$", "first answer")
	if keepalive then
		code, _, body = read_response(s)
		eq(code, 200)
		like(body, "device=12 .*params=p=2$", "second answer")
	else
		closed(s)
	end
	s:close()
end)

check("a request arriving in pieces; the host serves others meanwhile", function()
	local a = connect()
	local req = get(echo_path(12, "&slow=1"))
	local half = math.floor(#req / 2)
	for i = 1, half do
		assert(a:send(req:sub(i, i)))
		if i % 8 == 0 then socket.sleep(0.01) end
	end
	local b = connect()
	local t0 = socket.gettime()
	b:send(get(echo_path(11, "&fast=1")))
	local code, _, body = read_response(b)
	eq(code, 200, "other connection")
	like(body, "params=fast=1$")
	if socket.gettime() - t0 > 1 then error("the other request took " .. (socket.gettime() - t0) .. " s") end
	b:close()
	for i = half + 1, #req do
		assert(a:send(req:sub(i, i)))
		if i % 8 == 0 then socket.sleep(0.01) end
	end
	code, _, body = read_response(a)
	eq(code, 200, "slow request")
	like(body, "device=12 current=12 .*params=slow=1$")
	a:close()
end)

check("404 for an unknown lr_ name and for other paths", function()
	local s = connect()
	s:send(get("/data_request?id=lr_no_such_handler"))
	local code, _, body = read_response(s)
	eq(code, 404)
	like(body, "lr_no_such_handler")
	if keepalive then
		s:send(get("/index.html"))
		code = read_response(s)
		eq(code, 404, "/index.html")
	end
	s:close()
end)

check("500 with the Lua error when the handler raises; the host goes on", function()
	local s = connect()
	s:send(get("/data_request?id=lr_fake_fail_12"))
	local code, _, body = read_response(s)
	eq(code, 500)
	like(body, "deliberate failure in device 12")
	s:close()
	s = connect()
	s:send(get(echo_path(12, "&after=fail")))
	code = read_response(s)
	eq(code, 200, "next request")
	s:close()
end)

check("a 3 MB answer arrives whole", function()
	local s = connect()
	s:send(get("/data_request?id=lr_fake_big_11&n=3000000"))
	local code, h, body = read_response(s)
	eq(code, 200)
	eq(#body, 3000000, "length")
	eq(body:sub(-16), ("0123456789abcdef"):sub(1, 16), "tail")
	eq(h["content-type"], "application/octet-stream")
	s:close()
end)

check("HTTP/1.0 and Connection: close get Connection: close and a close", function()
	local s = connect()
	s:send(get(echo_path(11), nil, "1.0"))
	local code, h = read_response(s)
	eq(code, 200)
	eq((h.connection or ""):lower(), "close")
	closed(s)
	s:close()
	s = connect()
	s:send(get(echo_path(11), "Connection: close\r\n"))
	code, h = read_response(s)
	eq(code, 200)
	eq((h.connection or ""):lower(), "close")
	closed(s)
	s:close()
end)

check("a request with a body (POST, Content-Length) keeps the connection in step", function()
	local s = connect()
	s:send("POST " .. echo_path(12, "&post=1") .. " HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" ..
		(keepalive and get(echo_path(11, "&after=post")) or ""))
	local code, _, body = read_response(s)
	eq(code, 200)
	like(body, "params=post=1$")
	if keepalive then
		code, _, body = read_response(s)
		eq(code, 200)
		like(body, "params=after=post$")
	end
	s:close()
end)

check("a connection held idle does not block the host and still works later", function()
	idle:send(get(echo_path(12, "&idle=1")))
	local code, _, body = read_response(idle)
	eq(code, 200)
	like(body, "params=idle=1$")
	idle:close()
end)

os.exit(failed == 0 and 0 or 1)

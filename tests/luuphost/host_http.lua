-- tests/luuphost/host_http.lua - the HTTP side of tests/luuphost/host.lua: its HTTP/1.1
-- server on 127.0.0.1 (GET /data_request?id=lr_<name>&... calls the function a plugin
-- registered with luup.register_handler) and, for busy mode, its internal client of
-- the host's own port. Every socket is non-blocking; host.lua's socket.select loop
-- calls these functions when a socket is ready.
--
--   local http = require("host_http").start { opt = opt, stats = stats, handlers = handlers,
--       hlog = hlog, oneline = oneline, now = now, context_switch = context_switch }
--
-- start binds the port (exit status 3 when it cannot) and returns server, conns
-- ([sock] = conn), accept_all(), read_conn(c), write_conn(c), close_conn(c, why) and,
-- for the client p (a table host.lua makes), poller_step(p), poller_write(p),
-- poller_read(p), poller_close(p, why).

local socket = require "socket"

local M = {}

-- what host.lua shares (set by start)
local opt, stats, handlers, hlog, oneline, now, context_switch
local server -- the listening socket (bound by start)

local conns = {} -- [sock] = conn
local conn_n = 0
local MAX_HEADER = 16384
local MAX_BODY = 1048576
local MAX_CONNS = 200

local REASON = { [200] = "OK", [400] = "Bad Request", [404] = "Not Found", [405] = "Method Not Allowed",
	[413] = "Payload Too Large", [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
	[501] = "Not Implemented", [503] = "Service Unavailable" }

local function url_decode(s)
	s = s:gsub("+", " ")
	return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function parse_query(q)
	local p = {}
	for pair in q:gmatch("[^&]+") do
		local k, v = pair:match("^([^=]*)=?(.*)$")
		p[url_decode(k)] = url_decode(v)
	end
	return p
end

-- respond(c, code, body, mime, keep): queues one response on connection c.
local function respond(c, code, body, mime, keep, head)
	stats.status[code] = (stats.status[code] or 0) + 1
	local h = {
		"HTTP/1.1 " .. code .. " " .. (REASON[code] or "Unknown"),
		"Server: luuphost/1 (verawebsockets test host)",
		"Content-Type: " .. (mime or "text/plain"),
		"Connection: " .. (keep and "keep-alive" or "close"),
	}
	local payload
	if opt.chunked then
		h[#h + 1] = "Transfer-Encoding: chunked"
		local parts, i = {}, 1
		while i <= #body do
			local piece = body:sub(i, i + 15999)
			parts[#parts + 1] = string.format("%x\r\n", #piece) .. piece .. "\r\n"
			i = i + 16000
		end
		parts[#parts + 1] = "0\r\n\r\n"
		payload = table.concat(parts)
	else
		h[#h + 1] = "Content-Length: " .. #body
		payload = body
	end
	c.out = c.out .. table.concat(h, "\r\n") .. "\r\n\r\n" .. (head and "" or payload)
	if not keep then c.closing = true end
end

-- dispatch(c, method, target) -> code, body, mime
local function dispatch(c, method, target)
	local path, query = target:match("^([^?]*)%??(.*)$")
	if path ~= "/data_request" and path ~= "/port_3480/data_request" then
		return 404, "Not found: " .. path .. "\n"
	end
	local params = parse_query(query or "")
	local id = params.id or ""
	stats.by_id[id] = (stats.by_id[id] or 0) + 1
	local h = handlers[id]
	if not h then
		return 404, "No handler for id=" .. id .. "\n"
	end
	local format = params.output_format
	params.id, params.output_format = nil, nil -- not passed on (openLuup's http_query)
	local request_name = id:gsub("^lr_", "")
	local t0 = now()
	local ok, resp, mime = context_switch(h.dev, h.fn, request_name, params, format)
	local ms = (now() - t0) * 1000
	if ms > stats.max_handler_ms then stats.max_handler_ms = ms end
	if not ok then
		stats.handler_errors = stats.handler_errors + 1
		hlog(1, "host: ERROR in handler %s (%s, device %d): %s", id, h.fname, h.dev, tostring(resp))
		return 500, "Error in handler " .. id .. ": " .. tostring(resp) .. "\n"
	end
	if resp == nil then resp = "" end
	if type(resp) ~= "string" then resp = tostring(resp) end
	return 200, resp, type(mime) == "string" and mime or "text/plain"
end

-- process(c): handles every complete request in c.inbuf, in order.
local function process(c)
	while not c.closing do
		local hend, hstop = c.inbuf:find("\r?\n\r?\n")
		if not hend then
			if #c.inbuf > MAX_HEADER then
				hlog(3, "http: #%d request head over %d bytes", c.id, MAX_HEADER)
				respond(c, 431, "Request head too large\n", nil, false)
			end
			return
		end
		if hend - 1 > MAX_HEADER then
			respond(c, 431, "Request head too large\n", nil, false)
			return
		end
		local head = c.inbuf:sub(1, hend - 1)
		local reqline = head:match("^([^\r\n]*)")
		local method, target, major, minor = reqline:match("^(%u+) (%S+) HTTP/(%d)%.(%d)$")
		hlog(10, "http: #%d %s", c.id, reqline)
		stats.requests = stats.requests + 1
		c.reqs = c.reqs + 1
		if not method then
			c.inbuf = ""
			respond(c, 400, "Bad request line\n", nil, false)
			return
		end
		local hdr = {}
		for line in head:gmatch("\n([^\r\n]*)") do
			local k, v = line:match("^([^:]+):%s*(.-)%s*$")
			if k then hdr[k:lower()] = v end
		end
		local len = 0
		if hdr["transfer-encoding"] then
			c.inbuf = ""
			respond(c, 501, "Request bodies with Transfer-Encoding are not supported\n", nil, false)
			return
		end
		if hdr["content-length"] then
			len = tonumber(hdr["content-length"])
			if not len or len < 0 or len ~= math.floor(len) then
				c.inbuf = ""
				respond(c, 400, "Bad Content-Length\n", nil, false)
				return
			end
			if len > MAX_BODY then
				c.inbuf = ""
				respond(c, 413, "Body too large\n", nil, false)
				return
			end
		end
		if #c.inbuf < hstop + len then return end -- the body is still coming
		c.inbuf = c.inbuf:sub(hstop + len + 1)
		local conn_hdr = (hdr.connection or ""):lower()
		local keep
		if major .. "." .. minor == "1.0" then
			keep = conn_hdr:find("keep%-alive") ~= nil
		else
			keep = conn_hdr:find("close") == nil
		end
		if opt.close then keep = false end
		if method ~= "GET" and method ~= "HEAD" and method ~= "POST" then
			respond(c, 405, "Method not allowed\n", nil, keep)
		else
			local code, body, mime = dispatch(c, method, target)
			respond(c, code, body, mime, keep, method == "HEAD")
		end
	end
end

local function close_conn(c, why)
	if c.dead then return end
	c.dead = true
	c.sock:close()
	conns[c.sock] = nil
	hlog(20, "http: #%d closed (%s) after %d requests", c.id, why, c.reqs)
end

local function accept_all()
	for _ = 1, 32 do
		local s = server:accept()
		if not s then return end
		s:settimeout(0)
		s:setoption("tcp-nodelay", true)
		conn_n = conn_n + 1
		stats.conns = stats.conns + 1
		local c = { sock = s, id = conn_n, inbuf = "", out = "", reqs = 0, last = now() }
		local n = 0
		for _ in pairs(conns) do n = n + 1 end
		conns[s] = c
		hlog(20, "http: #%d new connection from %s", c.id, tostring((s:getpeername())))
		if n >= MAX_CONNS then
			respond(c, 503, "Too many connections\n", nil, false)
		end
	end
end

local function read_conn(c)
	for _ = 1, 16 do
		local data, err, partial = c.sock:receive(8192)
		data = data or partial
		if data and #data > 0 then
			c.last = now()
			if not c.closing then c.inbuf = c.inbuf .. data end
		end
		if err == "closed" then
			c.eof = true
			break
		elseif err then
			if err ~= "timeout" then c.eof = true end
			break
		end
	end
	process(c)
end

local function write_conn(c)
	if #c.out > 0 then
		local last, err, partial = c.sock:send(c.out)
		local n = last or partial or 0
		if n > 0 then
			c.out = c.out:sub(n + 1)
			c.last = now()
		end
		if err and err ~= "timeout" then
			close_conn(c, "send: " .. err)
			return
		end
	end
	if #c.out == 0 and c.closing then close_conn(c, "response sent, close") end
end

-- ---------------------------------------------------------------- busy mode client
local function poller_close(p, why)
	if p.sock then p.sock:close() end
	p.sock, p.state, p.inbuf = nil, nil, ""
	if why then hlog(20, "poller: connection closed (%s)", why) end
end

local function poller_fail(p, why)
	stats.poll_fail = stats.poll_fail + 1
	hlog(1, "poller: request %d failed: %s", p.n, why)
	poller_close(p)
end

-- poller_step(p): starts a request when due; the select loop calls poller_read and
-- poller_write when its socket is ready.
local function poller_step(p)
	local t = now()
	if p.state == nil and t >= p.next then
		p.n = p.n + 1
		p.next = t + p.interval
		p.sent_at = t
		p.req = "GET /data_request?id=lr_host_status&n=" .. p.n .. " HTTP/1.1\r\nHost: 127.0.0.1:" .. opt.port .. "\r\n\r\n"
		if not p.sock then
			local s = socket.tcp()
			s:settimeout(0)
			local ok, err = s:connect("127.0.0.1", opt.port)
			p.sock = s
			if ok then p.state = "send" elseif err == "timeout" or err == "Operation already in progress" then
				p.state = "connect"
			else
				poller_fail(p, "connect: " .. tostring(err))
				return
			end
		else
			p.state = "send"
		end
		p.inbuf = ""
	elseif p.state and t - p.sent_at > 5 then
		poller_fail(p, "no answer in 5 s (state " .. p.state .. ")")
	end
end

local function poller_write(p)
	if p.state == "connect" then
		if not p.sock:getpeername() then
			poller_fail(p, "connect failed")
			return
		end
		p.state = "send"
	end
	if p.state == "send" then
		local last, err, partial = p.sock:send(p.req)
		local n = last or partial or 0
		p.req = p.req:sub(n + 1)
		if err and err ~= "timeout" then
			poller_fail(p, "send: " .. err)
		elseif #p.req == 0 then
			p.state = "read"
		end
	end
end

local function poller_read(p)
	local data, err, partial = p.sock:receive(8192)
	data = data or partial
	if data then p.inbuf = p.inbuf .. data end
	local hend, hstop = p.inbuf:find("\r\n\r\n", 1, true)
	if hend then
		local head = p.inbuf:sub(1, hend - 1)
		local code = tonumber(head:match("^HTTP/1%.%d (%d%d%d)"))
		local len = tonumber(head:lower():match("\ncontent%-length:%s*(%d+)"))
		local body, complete
		if len then
			complete = #p.inbuf >= hstop + len
			body = p.inbuf:sub(hstop + 1, hstop + len)
		elseif head:lower():find("\ntransfer%-encoding:%s*chunked") then
			complete = p.inbuf:find("\r\n0\r\n\r\n", hstop - 1, true) ~= nil
			body = p.inbuf:sub(hstop + 1):gsub("^%x+\r\n", "")
		end
		if complete then
			local close = head:lower():find("\nconnection:%s*close") ~= nil
			if code == 200 and body:find("^status n=" .. p.n .. " ") then
				stats.poll_ok = stats.poll_ok + 1
			else
				poller_fail(p, "bad answer: " .. tostring(code) .. " " .. oneline(body:sub(1, 80)))
				return
			end
			p.state = nil
			p.inbuf = ""
			if close then poller_close(p) end
			return
		end
	end
	if err == "closed" then
		poller_fail(p, "closed by the host before the answer")
	elseif err and err ~= "timeout" then
		poller_fail(p, "receive: " .. err)
	end
end

function M.start(h)
	opt, stats, handlers, hlog, oneline, now, context_switch =
		h.opt, h.stats, h.handlers, h.hlog, h.oneline, h.now, h.context_switch
	local berr
	server, berr = socket.bind("127.0.0.1", opt.port, 64)
	if not server then
		hlog(1, "host: cannot bind 127.0.0.1:%d: %s", opt.port, tostring(berr))
		io.stderr:write("luuphost: cannot bind 127.0.0.1:", opt.port, ": ", tostring(berr), "\n")
		os.exit(3)
	end
	server:settimeout(0)
	hlog(2, "host: HTTP server on 127.0.0.1:%d (%s%s)", opt.port, opt.close and "close after each response" or "keep-alive",
		opt.chunked and ", chunked" or "")
	return {
		server = server, conns = conns,
		accept_all = accept_all, read_conn = read_conn, write_conn = write_conn, close_conn = close_conn,
		poller_step = poller_step, poller_write = poller_write, poller_read = poller_read, poller_close = poller_close,
	}
end

return M

-- verawebsockets.websocket.core: the connection object shared by the lua-websockets
-- compatible clients (sync, copas) and the copas server's clients.
--
-- A connection is a standalone verawebsockets connection (ws.create{standalone = true})
-- whose events are put into the object's own queue by the handlers below. Every call
-- that has to wait (connect, receive, close) asks the object's wait function, which
-- delivers events meanwhile: the sync one with ws.dispatch, the copas one by yielding
-- to copas (verawebsockets.websocket.copas). Return values and error strings follow
-- lua-websockets' src/websocket/sync.lua.
local ws = require "verawebsockets"

local core = {}

local TEXT, BINARY, PING = 1, 2, 9
core.CONTINUATION, core.TEXT, core.BINARY, core.CLOSE, core.PING, core.PONG = 0, TEXT, BINARY, 8, PING, 10

-- now() -> seconds: LuaSocket's clock when it is installed, else /proc/uptime (10 ms;
-- Linux), else os.time() (whole seconds: a timeout may end up to a second early).
local now
do
	local ok, socket = pcall(require, "socket")
	local function uptime()
		local f = io.open("/proc/uptime", "r")
		local s = f and f:read("*n")
		if f then f:close() end
		return s or os.time()
	end
	if ok and type(socket) == "table" and socket.gettime then
		now = socket.gettime
	elseif io.open("/proc/uptime", "r") then
		now = uptime
	else
		now = os.time
	end
end
core.now = now

-- Extra time a close waits beyond the engine's close timeout (3 s) before it gives up.
local CLOSE_BOUND = 5

-- ---------------------------------------------------------------- waiting
-- wait_sync(cond, deadline) -> cond(): delivers standalone events with ws.dispatch
-- until cond() is true or the deadline (seconds, now() clock; nil: none) passed.
function core.wait_sync(cond, deadline)
	while not cond() do
		local ms = 200
		if deadline then
			local left = deadline - now()
			if left <= 0 then return cond() end
			ms = math.max(1, math.min(ms, math.floor(left * 1000)))
		end
		ws.dispatch(ms)
	end
	return true
end

-- ---------------------------------------------------------------- owners
-- owner[wso] = the compat object of a connection (weak values: the object goes
-- when the script drops it; its wso is then collected and closed with 1001).
local owner = setmetatable({}, { __mode = "v" })
core.owner = owner

local function push(c, item)
	c.q[#c.q + 1] = item
end

-- The handlers of every compat connection (client side). Server-side clients get the
-- same functions through the server's handlers (server_copas.lua).
core.handlers = {
	open = function(wso, protocol)
		local c = owner[wso]
		if c and c.wso == wso then
			c.opened = true
			c.protocol = (protocol ~= "" and protocol) or nil
		end
	end,
	error = function(wso, reason)
		local c = owner[wso]
		if c and c.wso == wso then c.failed = reason or "connection failed" end
	end,
	message = function(wso, data, kind)
		local c = owner[wso]
		if c and c.wso == wso then push(c, { data, kind == "binary" and BINARY or TEXT }) end
	end,
	close = function(wso, clean, code, reason)
		local c = owner[wso]
		-- 1005: the close frame had no code; lua-websockets reports that as a nil code
		if c and c.wso == wso then c.closeinfo = { clean, code ~= 1005 and code or nil, reason or "" } end
	end,
}

-- ---------------------------------------------------------------- errors
-- lua-websockets' error strings are LuaSocket's: map the engine's reasons to them.
function core.connect_error(reason)
	reason = tostring(reason or "")
	local r = reason:gsub("^connect failed: ", "")
	if r:find("connection refused", 1, true) then return "connection refused" end
	if reason:find("^getaddrinfo") then return "host or service not provided, or not known" end
	if reason:find("^timeout") then return "timeout" end
	if reason:find("^HS: ") then return "Websocket Handshake failed: " .. reason:sub(5) end
	return r
end

-- ---------------------------------------------------------------- the object
local Conn = {}
Conn.__index = Conn
core.Conn = Conn

-- new(wait, timeout) -> a closed connection object that waits with `wait`.
function core.new(wait, timeout)
	if timeout ~= nil and type(timeout) ~= "number" then
		error("bad argument #1 (timeout: number expected, got " .. type(timeout) .. ")", 3)
	end
	return setmetatable({ state = "CLOSED", q = {}, qh = 1, wait = wait, timeout = timeout }, Conn)
end

-- adopt(wso, wait, protocol) -> an open object for a connection a server accepted.
function core.adopt(wso, wait, protocol)
	local c = setmetatable({ state = "OPEN", q = {}, qh = 1, wait = wait, wso = wso,
		opened = true, is_server = true, protocol = protocol }, Conn)
	owner[wso] = c
	return c
end

local function deadline_of(c, extra)
	if c.timeout and c.timeout >= 0 then return now() + c.timeout + (extra or 0) end
	return nil
end

-- Lets go of the current engine connection (closing it if it is still up).
local function release(c, code, reason)
	local wso = c.wso
	c.state = "CLOSED"
	if wso then
		local st = ws.state(wso)
		if st ~= "closed" and st ~= "created" then pcall(ws.close, wso, code or 1000, reason or "") end
	end
	if c.on_close then c:on_close() end
end

-- client:connect(url[, protocol]) -> true, protocol, headers | nil, err
function Conn:connect(url, protocol)
	if self.state ~= "CLOSED" then return nil, "wrong state", nil end
	if type(url) ~= "string" then error("bad argument #1 to 'connect' (string expected, got " .. type(url) .. ")", 2) end
	local scheme = url:match("^(%w+)://[^/]+")
	if not scheme then error("Invalid URL:" .. url, 2) end
	scheme = scheme:lower()
	if scheme ~= "ws" and scheme ~= "wss" then return nil, "bad protocol" end
	local protocols
	if type(protocol) == "string" and protocol ~= "" then
		protocols = { protocol }
	elseif type(protocol) == "table" and #protocol > 0 then
		protocols = protocol
	end
	local opts = { url = url, standalone = true, protocols = protocols, event_handlers = core.handlers }
	if self.timeout and self.timeout > 0 then opts.connect_timeout = self.timeout end
	local okc, wso = pcall(ws.create, opts)
	if not okc then
		local msg = tostring(wso):match("^bad argument #%d+ to '[^']*' %((.*)%)$") or tostring(wso)
		return nil, msg
	end
	self.q, self.qh, self.closeinfo, self.opened, self.failed, self.protocol = {}, 1, nil, nil, nil, nil
	self.wso = wso
	owner[wso] = self
	local ok, err = ws.connect(wso)
	if not ok then
		self.wso = nil
		return nil, err
	end
	self.state = "CONNECTING"
	-- the engine's connect_timeout ends the attempt; the deadline is only a backstop
	local done = self.wait(function() return self.opened or self.failed or self.closeinfo end, deadline_of(self, 2))
	if done and self.opened and not self.failed then
		self.state = "OPEN"
		-- the 101's headers, names in lower case (as lua-websockets' handshake parser gives them)
		local headers = ws.headers(wso) or {}
		return true, self.protocol, headers
	end
	local reason = self.failed or (not done and "timeout") or "closed"
	release(self)
	self.wso = nil
	return nil, core.connect_error(reason)
end

-- closed_result(c) -> was_clean, code, reason of the close the engine reported.
local function closed_result(c)
	local ci = c.closeinfo
	c.state = "CLOSED"
	if c.on_close then c:on_close() end
	local reason = ci[3]
	if reason == nil or reason == "" then reason = "closed" end
	return ci[1] and true or false, ci[2], reason
end

-- client:receive() -> message, opcode | nil, nil, was_clean, code, reason
function Conn:receive()
	if self.state ~= "OPEN" then return nil, nil, false, 1006, "wrong state" end
	local q = self.q
	local done = self.wait(function() return q[self.qh] ~= nil or self.closeinfo ~= nil end,
		(not self.is_server) and deadline_of(self) or nil)
	local item = q[self.qh]
	if item then
		q[self.qh] = nil
		self.qh = self.qh + 1
		if q[self.qh] == nil then self.q, self.qh = {}, 1 end
		return item[1], item[2]
	end
	if self.closeinfo then
		return nil, nil, closed_result(self)
	end
	if not done then
		-- lua-websockets: a socket timeout ends the connection
		release(self, 1001, "timeout")
		return nil, nil, false, 1006, "timeout"
	end
	return nil, nil, false, 1006, "closed"
end

-- client:send(message[, opcode]) -> true | nil, was_clean, code, reason
function Conn:send(data, opcode)
	if self.state ~= "OPEN" then return nil, false, 1006, "wrong state" end
	if type(data) == "number" then data = tostring(data) end
	if type(data) ~= "string" then
		error("bad argument #1 to 'send' (string expected, got " .. type(data) .. ")", 2)
	end
	local ok, err
	if opcode == nil or opcode == TEXT then
		ok, err = ws.send(self.wso, data, "text")
	elseif opcode == BINARY then
		ok, err = ws.send(self.wso, data, "binary")
	elseif opcode == PING then
		ok, err = ws.ping(self.wso, data)
	else
		error("bad argument #2 to 'send' (websocket.TEXT, websocket.BINARY or websocket.PING expected)", 2)
	end
	if ok then return true end
	if ws.state(self.wso) ~= "open" then
		-- the peer closed or the connection dropped: as a failed socket send there
		release(self)
		return nil, false, 1006, "closed"
	end
	return nil, false, (err and err:find("max_message_size", 1, true)) and 1009 or 1006, err
end

-- client:close([code[, reason]]) -> was_clean, code, reason
function Conn:close(code, reason)
	if self.state ~= "OPEN" then return false, 1006, "wrong state" end
	if self.closeinfo == nil then
		local ok, err = ws.close(self.wso, code or 1000, reason or "")
		if not ok then
			release(self)
			return false, 1006, err or "closed"
		end
		self.state = "CLOSING"
		self.wait(function() return self.closeinfo ~= nil end, now() + (self.timeout or 0) + CLOSE_BOUND)
	end
	local ci = self.closeinfo
	self.state = "CLOSED"
	if self.on_close then self:on_close() end
	if not ci then return false, 1006, "timeout" end
	-- messages that arrived meanwhile are dropped, as lua-websockets' close does
	self.q, self.qh = {}, 1
	return ci[1] and true or false, ci[2], ci[3] or ""
end

return core

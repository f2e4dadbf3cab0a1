-- require "verawebsockets.lws": the API of lua-websockets' libwebsockets binding
-- (its README: websockets.context{...}, context:service, websocket:write, ...),
-- pure Lua on top of ws.listen (one port: HTTP through on_http, WebSockets per
-- protocol). Scripts that do require "websockets" run after one line:
--   package.preload.websockets = function() return require "verawebsockets.lws" end
local ws = require "verawebsockets"

local M = {
	WRITE_TEXT = 0,   -- LWS_WRITE_TEXT
	WRITE_BINARY = 1, -- LWS_WRITE_BINARY
}

local Context, Websocket = {}, {}
Context.__index, Websocket.__index = Context, Websocket

local function kind_of(write_type)
	if write_type == M.WRITE_BINARY then return "binary" end
	if write_type == nil or write_type == M.WRITE_TEXT then return "text" end
	error("bad write type " .. tostring(write_type) .. " (websockets.WRITE_TEXT or WRITE_BINARY)", 3)
end

local function readfile(name)
	local f = io.open(name, "rb")
	if not f then return nil end
	local data = f:read("*a")
	f:close()
	return data
end

-- ---------------------------------------------------------------- websocket

-- websocket:write(data, write_type) -> #data, or nil, err
function Websocket:write(data, write_type)
	local okk, err = ws.send(self._wso, data, kind_of(write_type))
	if not okk then return nil, err end
	return #data
end

function Websocket:on_receive(cb) self._on_receive = cb end
function Websocket:on_closed(cb) self._on_closed = cb end

-- on_broadcast(function(ws, data) | WRITE_TEXT | WRITE_BINARY)
function Websocket:on_broadcast(cb)
	if type(cb) ~= "function" then kind_of(cb) end
	self._on_broadcast = cb
end

function Websocket:broadcast(data) return self._ctx:broadcast(self.protocol, data) end

-- get_socket_fd(): there is no socket of the connection in this process (the
-- engine owns it): the fd that is readable while events are pending.
function Websocket:get_socket_fd() return ws.event_fd() end

function Websocket:close(reason) return ws.close(self._wso, reason or 1000) end

-- serve_http_file(filename, content_type): within on_http only.
function Websocket:serve_http_file(filename, content_type)
	local answer = self._answer
	if not answer then error("serve_http_file: only within on_http", 2) end
	local data = readfile(filename)
	if not data then
		answer.status, answer.headers, answer.body = 404, { ["Content-Type"] = "text/plain" }, "not found\n"
		return nil, "cannot read " .. filename
	end
	answer.status, answer.headers, answer.body = 200, { ["Content-Type"] = content_type }, data
	return true
end

-- ---------------------------------------------------------------- context

local function handlers(ctx, name, on_connect)
	return {
		open = function(wso)
			local w = setmetatable({ _wso = wso, _ctx = ctx, protocol = name }, Websocket)
			ctx._open[wso] = w
			on_connect(w)
		end,
		message = function(wso, data)
			local w = ctx._open[wso]
			if w and w._on_receive then w._on_receive(w, data) end
		end,
		close = function(wso)
			local w = ctx._open[wso]
			ctx._open[wso] = nil
			if w and w._on_closed then w._on_closed() end
		end,
	}
end

-- context{port, interf, protocols = {name = on_connect}, on_http, on_add_fd,
-- on_del_fd, ssl_cert_path, ssl_private_key_filepath} -> context
function M.context(config)
	assert(type(config) == "table", "websockets.context: a table expected")
	local ctx = setmetatable({ _open = {}, _config = config }, Context)
	local protocols, names = {}, {}
	for name, on_connect in pairs(config.protocols or {}) do
		assert(type(name) == "string" and type(on_connect) == "function",
			"websockets.context: protocols = {name = on_connect_function}")
		protocols[name] = handlers(ctx, name, on_connect)
		names[#names + 1] = name
	end
	table.sort(names)
	-- A client that asks for no subprotocol gets the first protocol (by name),
	-- as libwebsockets gives it protocol 0.
	local default = names[1] and handlers(ctx, names[1], config.protocols[names[1]]) or nil
	local opts = { port = config.port or 7681, host = config.interf, standalone = true,
		protocols = next(protocols) and protocols or nil, event_handlers = default }
	if config.ssl_cert_path or config.ssl_private_key_filepath then
		opts.ssl_settings = { ssl_cert_filepath = config.ssl_cert_path,
			ssl_private_key_filepath = config.ssl_private_key_filepath }
	end
	if config.on_http then
		opts.http = function(req)
			local answer = {}
			local w = setmetatable({ _answer = answer, _ctx = ctx }, Websocket)
			config.on_http(w, req.path)
			w._answer = nil
			if answer.status then return answer.status, answer.headers, answer.body end
		end
	end
	local srv, err = ws.listen(opts)
	if not srv then error("websockets.context: " .. tostring(err), 2) end
	ctx._srv = srv
	ctx._fd = ws.event_fd()
	if config.on_add_fd and ctx._fd then config.on_add_fd(ctx._fd) end
	return ctx
end

-- service(timeout_ms): delivers what is pending, waiting up to timeout_ms for it.
function Context:service(timeout_ms)
	return ws.dispatch(timeout_ms or 0)
end

-- broadcast(protocol, data): each open websocket of protocol gets it through
-- its on_broadcast (a function, or WRITE_TEXT/WRITE_BINARY to forward it);
-- without one nothing is sent, as in libwebsockets (LWS_CALLBACK_BROADCAST).
function Context:broadcast(protocol, data)
	for _, w in pairs(self._open) do
		local b = w._on_broadcast
		if w.protocol == protocol and b then
			if type(b) == "function" then b(w, data) else w:write(data, b) end
		end
	end
end

function Context:canonical_hostname()
	local h = readfile("/proc/sys/kernel/hostname")
	return h and h:gsub("%s+$", "") or "localhost"
end

function Context:destroy()
	if self._srv then
		ws.close(self._srv)
		self._srv = nil
		if self._config.on_del_fd and self._fd then self._config.on_del_fd(self._fd) end
	end
end

-- port(): the bound port (an addition: port = 0 picks a free one).
function Context:port() return self._srv and ws.port(self._srv) end

return M

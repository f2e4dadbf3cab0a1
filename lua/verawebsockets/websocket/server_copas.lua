-- verawebsockets.websocket.server_copas: lua-websockets' websocket.server.copas.
--
--   local server = websocket.server.copas.listen{port = 8080, interface = '*',
--     protocols = {echo = function(ws) ... end}, default = function(ws) ... end}
--
-- A standalone verawebsockets server (ws.listen) does the handshakes and the framing;
-- each accepted client runs its protocol handler in a copas thread of its own, as
-- lua-websockets runs it, with the client methods of the copas client (receive, send,
-- close, broadcast). A copas thread of the server delivers the engine's events while
-- the server listens (see verawebsockets.websocket.copas).
local ws = require "verawebsockets"
local core = require "verawebsockets.websocket.core"
local glue = require "verawebsockets.websocket.copas"

local M = {}

-- Extra time server:close() waits for its clients' closing handshakes.
local CLOSE_BOUND = 8

local function bind_error(err)
	err = tostring(err)
	if err:find("address already in use", 1, true) then return "address already in use" end
	if err:find("permission denied", 1, true) then return "permission denied" end
	return err
end

-- listen(opts) -> server; raises when it cannot listen (as lua-websockets does).
function M.listen(opts)
	local copas = require "copas"
	assert(opts and (opts.protocols or opts.default))
	local on_error = opts.on_error or function(s) print(s) end
	local names = {}
	if opts.protocols then
		for name in pairs(opts.protocols) do names[#names + 1] = name end
		table.sort(names)
	end
	-- clients[index][client] = true; index: the protocol, or true for the default handler
	local clients = { [true] = {} }
	for _, name in ipairs(names) do clients[name] = {} end
	local accepting, srv, stopped = true, nil, false

	local function count()
		local n = 0
		for _, set in pairs(clients) do
			for _ in pairs(set) do n = n + 1 end
		end
		return n
	end
	local function stop_if_done()
		if not accepting and not stopped and count() == 0 then
			stopped = true
			ws.close(srv)
		end
	end
	local function forget(c)
		if c.index ~= nil and clients[c.index] then clients[c.index][c] = nil end
		stop_if_done()
	end

	local handlers = {
		open = function(wso, _, protocol)
			if not accepting then
				ws.close(wso, 1001, "server closed")
				return
			end
			local handler, index
			if protocol ~= "" and opts.protocols and opts.protocols[protocol] then
				handler, index = opts.protocols[protocol], protocol
			elseif opts.default then
				handler, index = opts.default, true
			else
				ws.close(wso, 1002, "bad protocol")
				if on_error then glue.spawn(function() on_error("bad protocol") end) end
				return
			end
			local c = core.adopt(wso, glue.wait, protocol ~= "" and protocol or nil)
			c.index = index
			clients[index][c] = true
			c.on_close = forget
			c.broadcast = function(self, ...)
				for other in pairs(clients[index]) do
					if other ~= self then other:send(...) end
				end
				return self:send(...)
			end
			glue.spawn(function()
				glue.run(function()
					if c.state == "OPEN" then pcall(ws.close, wso, 1011, "handler error") end
				end, handler, c)
			end)
		end,
		message = core.handlers.message,
		close = function(wso, clean, code, reason)
			core.handlers.close(wso, clean, code, reason)
			local c = core.owner[wso]
			if c and c.wso == wso then forget(c) end
		end,
	}

	local host = opts.interface
	if host == nil or host == "*" then host = "0.0.0.0" end
	local err
	srv, err = ws.listen {
		port = opts.port or 80,
		host = host,
		standalone = true,
		protocols = #names > 0 and names or nil,
		event_handlers = handlers,
	}
	if not srv then error(bind_error(err), 2) end

	-- the thread that delivers the server's events while it listens or has clients
	copas.addthread(function()
		glue.wait(function() return stopped end)
	end)

	local self = {}
	-- server:close([keep_clients])
	function self.close(_, keep_clients)
		if not accepting then return end
		-- clients whose handshake the engine already completed are this server's:
		-- deliver their pending open events before refusing later ones
		glue.pump()
		accepting = false
		if keep_clients then
			ws.stop_listening(srv) -- the port is free; the clients go on
			stop_if_done()
			return
		end
		stopped = true
		ws.close(srv, 1000, "")
		glue.wait(function() return count() == 0 end, core.now() + CLOSE_BOUND)
	end
	-- server:port() (an extension): the port it listens on, e.g. after port = 0
	function self.port()
		return ws.port(srv)
	end
	return self
end

return M

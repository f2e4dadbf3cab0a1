-- verawebsockets.websocket.copas: waiting inside copas without blocking the loop.
--
-- A call that waits (connect, receive, close) inside a copas thread yields to copas
-- through copas' own socket protocol: it calls copas.receive on a small "waiter"
-- object that stands for ws.event_fd(). copas puts the waiter into the set it hands
-- to socket.select; LuaSocket's select reads the fd from waiter:getfd() and asks
-- waiter:dirty(), which is true once the waiter's condition holds (or its deadline
-- passed), so select returns at once for it. When the fd is readable (engine events
-- pending) or the waiter is dirty, copas resumes the thread, whose waiter:receive()
-- delivers every pending event (ws.dispatch) and reports "timeout" to copas while
-- the condition is still false, so copas keeps waiting. Nothing polls: an idle
-- connection costs one fd in select.
--
-- Deadlines (the client's timeout) are seen when copas' select returns: with copas
-- 1.x, which has no timers, run the loop with a step timeout (copas.loop(0.1) or
-- copas.step(0.1)) if receive timeouts must fire while nothing else happens.
--
-- Outside a copas thread (the main thread) the waits fall back to ws.dispatch.
local ws = require "verawebsockets"
local core = require "verawebsockets.websocket.core"

local M = {}
local now = core.now

-- Handler threads the server wants started (copas.addthread cannot run inside
-- an event handler, which ws.dispatch calls: handlers never yield).
local spawns = {}
function M.spawn(fn)
	spawns[#spawns + 1] = fn
end

-- pump(): delivers every pending standalone event, then starts the queued threads.
local function pump()
	for _ = 1, 1000 do
		if ws.dispatch(0) == 0 then break end
	end
	if spawns[1] ~= nil then
		local copas = require "copas"
		while spawns[1] ~= nil do
			local fn = table.remove(spawns, 1)
			copas.addthread(fn)
		end
	end
end
M.pump = pump

local function in_coroutine()
	local co, main = coroutine.running()
	return co ~= nil and not main
end

-- wait(cond, deadline) -> cond(): as core.wait_sync, but a copas thread yields to copas.
function M.wait(cond, deadline)
	if not in_coroutine() then
		local r = core.wait_sync(cond, deadline)
		if spawns[1] ~= nil then pump() end
		return r
	end
	pump()
	if cond() then return true end
	local copas = require "copas"
	local fd = assert(ws.event_fd())
	local function ready()
		return cond() or (deadline ~= nil and now() >= deadline)
	end
	local waiter = {
		getfd = function() return fd end,
		dirty = function() return ready() end,
		receive = function()
			pump()
			if ready() then return true end
			return nil, "timeout"
		end,
		-- copas may close "the socket" that resumed a finished thread: not ours to close
		close = function() end,
		settimeout = function() end,
	}
	copas.receive(waiter, "*l")
	return cond()
end

-- run(handler, ...): runs handler(...) in this copas thread; an error is re-raised
-- with its traceback after on_error(msg) ran (no pcall: lua 5.1 cannot yield across it).
function M.run(on_error, handler, ...)
	local unpack = table.unpack or unpack
	local function pack(...) return { n = select("#", ...), ... } end
	local co = coroutine.create(handler)
	local res = pack(coroutine.resume(co, ...))
	while true do
		if not res[1] then
			local msg = debug.traceback(co, tostring(res[2]))
			if on_error then on_error(msg) end
			error(msg, 0)
		end
		if coroutine.status(co) == "dead" then return end
		res = pack(coroutine.resume(co, coroutine.yield(unpack(res, 2, res.n))))
	end
end

return M

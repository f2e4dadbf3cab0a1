-- tests/luuphost/plugin_names.lua - a Luup plugin of the original verawebsockets API,
-- handlers given by GLOBAL NAME (they live in this plugin's environment), Luup mode
-- (standalone left out = false). It connects to the echo server at
-- $VWS_LUUPHOST_ECHO_URL and sends $LUUPHOST_RATE (default 20) messages a second,
-- paced by a luup.call_delay chain (fractional seconds, as openLuup allows): a
-- sequence number, the send time and pseudo-random bytes, text and binary in turn
-- (binary ones with NUL and every byte value). on_message checks every echo comes back
-- in order and byte-exact and keeps the latency (send -> handler). The handlers log
-- with luup.log now and then, so the host log shows which device ran them.
-- host_finish (called by tests/luuphost/host.lua at the end) reports the figures with
-- host_report and closes the connection.

local ws = require "verawebsockets"
local socket = require "socket"
local plib = require "plugin_lib"

g_wso = nil -- a global, as plugins keep it

local p = plib.new(_G, "[names]", {
	send = function(data, kind) return ws.send(g_wso, data, kind == "binary" and "binary" or nil) end,
})

-- the handlers, as globals of this plugin's environment
local h = p.handlers("on_", function() luup.call_delay("send_tick", 0, "") end)
on_open, on_message, on_close, on_error = h.open, h.message, h.close, h.error

-- send_tick: keeps the count sent at RATE * elapsed (a late tick catches up, at most
-- 5 at once), then schedules itself for the next one.
function send_tick()
	if not p.send_due(5) then return end
	local next_at = p.t_first + p.seq / p.RATE
	luup.call_delay("send_tick", math.max(0, next_at - socket.gettime()), "")
end

function host_finish()
	p.finish()
	if g_wso then ws.close(g_wso, 1000, "host finished") end
end

function startup(lul_device)
	if not p.start(lul_device) then return false, "no echo URL", "plugin_names" end
	ws.set_log_level(256) -- the engine's CLIENT lines: they must reach luup.log
	g_wso = ws.create {
		url = p.URL,
		event_handlers = { [1] = "on_error", [3] = "on_open", [4] = "on_close", [8] = "on_message" },
	}
	p.wso = g_wso
	local ok, err = ws.connect(g_wso)
	return p.connected(lul_device, ok, err, "plugin_names")
end

-- tests/luuphost/plugin_funcs.lua - a Luup plugin of the original verawebsockets API,
-- handlers given as FUNCTION VALUES (local closures), Luup mode (standalone left out).
-- It connects to the echo server at $VWS_LUUPHOST_ECHO_URL and sends $LUUPHOST_RATE
-- (default 20) messages a second in bursts, from a one-shot luup.call_timer (interval
-- "1s") that re-arms itself, as many plugins poll: a sequence number, the send time and
-- pseudo-random bytes, text and binary in turn. The message handler checks every echo
-- comes back in order and byte-exact and keeps the latency (send -> handler).
--
-- It also defines DECOY globals with the names plugin_names.lua uses (on_open,
-- on_message, ...): they must never run. A module that looked handler names up in the
-- wrong environment (this plugin's, or a shared one) would call them.

local ws = require "verawebsockets"
local plib = require "plugin_lib"

local wso
local p = plib.new(_G, "[funcs]", {
	send = function(data, kind) return ws.send(wso, data, kind == "binary" and "binary" or "text") end,
	count = { decoy = 0 },
})
local TAG, count = p.TAG, p.count

local function decoy(name)
	return function()
		count.decoy = count.decoy + 1
		luup.log(TAG .. " ERROR: decoy global " .. name .. " of plugin_funcs was called", 1)
	end
end
on_open, on_message, on_close, on_error = decoy("on_open"), decoy("on_message"), decoy("on_close"), decoy("on_error")

-- the handlers, as local function values
local h = p.handlers("", function() burst_tick("") end)

-- burst_tick: a global (call_timer takes a name); sends what is due at RATE since the
-- open (about RATE messages a tick), re-arms the one-shot timer.
function burst_tick(data)
	if not p.send_due(3 * p.RATE) then return end
	luup.call_timer("burst_tick", 1, "1s", "", "")
end

function host_finish()
	p.finish()
	if wso then wso:close(1000, "host finished") end
end

function startup(lul_device)
	if not p.start(lul_device) then return false, "no echo URL", "plugin_funcs" end
	wso = ws.create {
		url = p.URL,
		event_handlers = { [1] = h.error, [3] = h.open, [4] = h.close, [8] = h.message },
	}
	p.wso = wso
	local ok, err = ws.connect(wso)
	return p.connected(lul_device, ok, err, "plugin_funcs")
end

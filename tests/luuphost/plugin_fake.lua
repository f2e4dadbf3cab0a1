-- tests/luuphost/plugin_fake.lua - a plugin without WebSockets, for checking the host
-- itself (tests/luuphost/httpcheck.lua pokes it over HTTP): it registers request
-- handlers and uses call_delay and call_timer, as a Luup plugin does. Load it twice
-- (two devices) to see that each copy runs in its own environment and device context.

local TAG = "[fake]"
ticks, timer_ticks, hits = 0, 0, 0 -- globals: in this plugin's environment only

-- /data_request?id=lr_fake_echo_<dev>&...: the parameters, the device numbers as seen
-- from inside the handler (luup.device of the environment and the host's current device).
function fake_echo(lul_request, lul_parameters, lul_outputformat)
	hits = hits + 1
	local keys = {}
	for k, v in pairs(lul_parameters) do keys[#keys + 1] = k .. "=" .. v end
	table.sort(keys)
	return string.format("request=%s device=%d current=%d format=%s hits=%d params=%s",
		lul_request, luup.device, host_current_device(), tostring(lul_outputformat), hits, table.concat(keys, "&")),
		"text/plain"
end

-- /data_request?id=lr_fake_fail_<dev>: raises.
function fake_fail(lul_request, lul_parameters)
	error("deliberate failure in device " .. luup.device)
end

-- /data_request?id=lr_fake_big_<dev>&n=N: N bytes (checks large responses, partial writes).
function fake_big(lul_request, lul_parameters)
	local n = tonumber(lul_parameters.n) or 100000
	return string.rep("0123456789abcdef", math.ceil(n / 16)):sub(1, n), "application/octet-stream"
end

function fake_tick(data)
	ticks = ticks + 1
	if host_current_device() ~= luup.device then host_report("wrong_device", host_current_device()) end
	if ticks % 5 == 0 then luup.log(TAG .. " call_delay tick " .. ticks .. " data=" .. tostring(data)) end
	host_report("ticks", ticks)
	luup.call_delay("fake_tick", 0.2, data)
end

function fake_timer(data)
	timer_ticks = timer_ticks + 1
	luup.log(TAG .. " call_timer tick " .. timer_ticks)
	host_report("timer_ticks", timer_ticks)
	luup.call_timer("fake_timer", 1, "1s", "", data) -- one-shot: re-armed each time
end

function host_finish()
	host_report("hits", hits)
	host_report("env_is_own", tostring(_G ~= nil and _G.ticks == ticks and rawget(_G, "ticks") ~= nil))
	luup.log(TAG .. " finished: ticks " .. ticks .. ", timer ticks " .. timer_ticks .. ", hits " .. hits)
end

function startup(lul_device)
	luup.register_handler("fake_echo", "fake_echo_" .. lul_device)
	luup.register_handler("fake_fail", "fake_fail_" .. lul_device)
	luup.register_handler("fake_big", "fake_big_" .. lul_device)
	luup.call_delay("fake_tick", 0.2, "d" .. lul_device)
	luup.call_timer("fake_timer", 1, "1s", "", "")
	luup.variable_set("urn:luuphost:serviceId:Fake1", "Started", "1", lul_device)
	luup.log(TAG .. " started as device " .. lul_device .. " (luup.device " .. luup.device .. ")")
	return true, "ok", "plugin_fake"
end

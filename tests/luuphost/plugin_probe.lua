-- tests/luuphost/plugin_probe.lua - the first check of build/test-luuphost.sh: one
-- Luup-mode ws.create (no connect) from a plugin. A module with Luup delivery over HTTP
-- registers its wake handler (lr_vws_<N>) in this plugin's device context; the host's
-- report shows it. Connecting is left to the echo plugins.
local ws = require "verawebsockets"

function startup(lul_device)
	local wso = ws.create { url = "ws://127.0.0.1:9/probe", event_handlers = { [3] = "probe_open" } }
	host_report("created", tostring(wso ~= nil))
	host_report("shim", tostring(ws.shim == true))
	host_report("version", tostring(ws._VERSION))
	return true, "ok", "plugin_probe"
end

-- verawebsockets.websocket.client_copas: lua-websockets' copas client,
-- websocket.client.copas{timeout = seconds}: the sync client's methods, whose waits
-- yield to copas inside a copas thread (see verawebsockets.websocket.copas).
local core = require "verawebsockets.websocket.core"
local glue = require "verawebsockets.websocket.copas"

return function(opts)
	opts = opts or {}
	require "copas"
	return core.new(glue.wait, opts.timeout)
end

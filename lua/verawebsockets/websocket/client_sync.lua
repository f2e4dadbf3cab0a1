-- verawebsockets.websocket.client_sync: lua-websockets' blocking client,
-- websocket.client.sync{timeout = seconds} (also websocket.client.new).
-- While it waits it delivers the state's standalone events (ws.dispatch).
local core = require "verawebsockets.websocket.core"

return function(opts)
	opts = opts or {}
	return core.new(core.wait_sync, opts.timeout)
end

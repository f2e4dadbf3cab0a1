-- verawebsockets.websocket.client: lua-websockets' websocket.client
-- (sync = new, copas; lua-ev's `ev` backend is not provided).
local sync = require "verawebsockets.websocket.client_sync"

return setmetatable({ new = sync, sync = sync }, { __index = function(self, name)
	if name == "copas" then
		local backend = require "verawebsockets.websocket.client_copas"
		rawset(self, name, backend)
		return backend
	end
end })

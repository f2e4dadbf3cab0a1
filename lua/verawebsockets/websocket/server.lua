-- verawebsockets.websocket.server: lua-websockets' websocket.server
-- (copas; lua-ev's `ev` backend is not provided). Backends load on first use.
return setmetatable({}, { __index = function(self, name)
	if name == "copas" then
		local backend = require "verawebsockets.websocket.server_copas"
		rawset(self, name, backend)
		return backend
	end
end })

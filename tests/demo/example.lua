-- The example script of the verawebsockets wiki page ("verawebsockets - MiOS"), runnable.
--
-- Changes from the wiki's text, and nothing else:
--   * syntax restored: the wiki's copy lost every `end`, the closing braces of the tables
--     and of the ws.create call, the event_handlers lines for events 1 and 3, and the
--     lines of main() that set the log level, connect and loop; the call of main() at the
--     end is restored too;
--   * URL: the wiki's wss:// address is replaced by the local demo server (argument 1);
--   * cert: "ws.pem" becomes the client certificate made by the demo server (argument 2 is
--     its directory), with its private key and the demo CA, because the demo server has a
--     throwaway CA (a public server's certificate would be checked against the system CAs).
--     Without argument 2 (a ws:// URL) there are no SSL settings.
-- The script never closes the connection itself: the demo server closes it (1000) after
-- the second echo, so ws.loop() returns and the script ends.
local url, certdir = arg[1], arg[2]

local ws = require("verawebsockets")
if not ws then
	print("ERROR: Failed to load the verawebsockets library")
end

local g_wso
local sslSettings = {
	client_ssl_cert_filepath = "ws.pem"
}
if certdir then
	sslSettings = {
		client_ssl_cert_filepath = certdir .. "/ws.pem",
		client_ssl_private_key_filepath = certdir .. "/ws.key",
		client_ssl_ca_filepath = certdir .. "/ca.pem",
	}
else
	sslSettings = nil
end

local eventHandlers = {
	[1] = "connerror", -- LWS_CALLBACK_CLIENT_CONNECTION_ERROR
	[3] = "open",      -- LWS_CALLBACK_CLIENT_ESTABLISHED
	[4] = "close",     -- LWS_CALLBACK_CLOSED
	[8] = "incoming"   -- LWS_CALLBACK_CLIENT_RECEIVE
}

function main()
	-- Log only errors and warnings.
	ws.set_log_level(3)

	-- This script is meant to be run standalone, so we set "standalone" to "true".
	g_wso = ws.create {
		["url"] = url,
		["ssl_settings"] = sslSettings,
		["event_handlers"] = eventHandlers,
		["standalone"] = true
	}
	if not g_wso then
		print("ERROR: Failed to create connection")
		return 1
	end

	ws.connect(g_wso)

	-- Because we're in standalone mode, call the "loop" function
	-- to prevent the main thread from terminating.
	ws.loop()
	return 0
end

function connerror (reason)
	print("Connection error: "..(reason or nil))
end

function open()
	local message = "Hello world!"
	print("Connection successful, send message: ".. message)
	ws.send(g_wso, message);
end

function close()
	print("Connection closed")
end

function incoming (data)
	data = data or "nil"
	print("Received message: ".. data)
	if data:match("^Hello world!") then
		ws.send(g_wso, "Hello again!");
	end
end

main()

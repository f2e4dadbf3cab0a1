-- A Luup-style plugin for tests/host/host.c: runs in one of the host's lua_States with
-- globals STATE_ID, ECHO_URL and REFUSED_URL set, creates Luup-mode (standalone=false)
-- connections and a server and returns at once; events then arrive on the module's
-- dispatcher thread.
-- Everything the handlers see goes into the global REC, which the host's jobs read later.
ws = require "verawebsockets"

REC = { opened = 0, messages = {}, errors = {}, closed = {}, raised = 0, wrong = {} }
local N = 5 -- messages in the echo chain; the handler of the first one raises

local function payload(k) return "state-" .. STATE_ID .. "-msg-" .. k end

-- Global handler names, as the wiki's Luup plugins register them.
function plugin_open(protocol, attempt, wso)
	if wso ~= CONN then REC.wrong[#REC.wrong + 1] = "open for a foreign wso" end
	REC.opened = REC.opened + 1
	ws.send(wso, payload(1))
end

function plugin_message(data, kind, wso)
	if wso ~= CONN then REC.wrong[#REC.wrong + 1] = "message for a foreign wso" end
	REC.messages[#REC.messages + 1] = data
	local n = #REC.messages
	if n < N then ws.send(wso, payload(n + 1)) end
	if n == 1 then
		REC.raised = REC.raised + 1
		error("deliberate error in the handler (state " .. STATE_ID .. ")")
	end
end

function plugin_close(clean, code, reason, wso)
	REC.closed[#REC.closed + 1] = { clean = clean, code = code, reason = reason, wso = wso }
end

function plugin_refused(reason, attempt, wso)
	REC.errors[#REC.errors + 1] = reason
end

CONN = ws.create {
	url = ECHO_URL,
	standalone = false,
	event_handlers = { [1] = "plugin_refused", [3] = "plugin_open", [4] = "plugin_close", [8] = "plugin_message" },
}
assert(ws.connect(CONN))

REFUSED = ws.create(REFUSED_URL, { [1] = "plugin_refused" }, nil, false)
assert(ws.connect(REFUSED))

-- A WebSocket server in the plugin (Luup mode, 127.0.0.1, a free port) and a Luup-mode
-- client of it: the client says hello when open, the server's handler answers.
function plugin_srv_open(path, protocol, c) REC.srv_path = path end
function plugin_srv_message(data, kind, c) ws.send(c, "srv-" .. STATE_ID .. ":" .. data) end
function plugin_srv_close(clean, code) REC.srv_close = code end
SRV = assert(ws.listen { port = 0,
	event_handlers = { [0] = "plugin_srv_open", [6] = "plugin_srv_message", [4] = "plugin_srv_close" } })
function plugin_sc_open(protocol, attempt, wso) ws.send(wso, "hello-" .. STATE_ID) end
function plugin_sc_message(data) REC.sc_reply = data end
SC = ws.create { url = "ws://127.0.0.1:" .. SRV:port() .. "/plugin/" .. STATE_ID,
	event_handlers = { [3] = "plugin_sc_open", [8] = "plugin_sc_message" } }
assert(ws.connect(SC))

-- A server that accepts TCP but never answers the handshake: a connect that blocked
-- would hang here until connect_timeout.
function plugin_hang_error(reason, attempt, wso) REC.hang_error = reason end
HANG = ws.create { url = HANG_URL, connect_timeout = 1.5, event_handlers = { [1] = "plugin_hang_error" } }
assert(ws.connect(HANG))
-- Read the engine's state before returning: a connect that blocked on the silent
-- server would have failed (state "closed") by now; a non-blocking one is still
-- "connecting", and its event 1 comes later.
HANG_STATE_AT_RETURN = ws.state(HANG)
return true

-- lua-websockets' API document (API.md, "Client Sync and Copas"): "Besides its creation,
-- the Sync and Copas interfaces are identical", so the sync snippets with the copas
-- client, in a copas thread, with the require line changed. The document shows no loop:
-- this script runs copas until its thread is done (copas 1.x's copas.loop() never returns).
local websocket = require'verawebsockets.websocket'
local copas = require'copas'

local thread = copas.addthread(function()
  local client = websocket.client.copas({timeout=2})

  local ok,err = client:connect('ws://localhost:12345','echo')
  if not ok then
     print('could not connect',err)
  end

  local ok,close_was_clean,close_code,close_reason = client:send('hello',websocket.TEXT)

  local message,opcode,close_was_clean,close_code,close_reason = client:receive()
  print('msg',message,opcode)

  local ok = client:send('hello')
  if ok then
     print('msg sent')
  else
     print('connection closed')
  end

  local message,opcode = client:receive()
  if message then
     print('msg',message,opcode)
  else
     print('connection closed')
  end

  local close_was_clean,close_code,close_reason = client:close(4001,'lost interest')
  print('close',close_was_clean,close_code,close_reason)

  client:close()
end)

local started = os.time()
while coroutine.status(thread) ~= 'dead' and os.time() - started < 20 do
  copas.step(0.1)
end

// Independent echo peer for the verawebsockets Lua suite: Node `ws` (npm install in tests/peers).
// Listens on 127.0.0.1 (ephemeral port), prints NODE_PORT=N then READY=1, exits when stdin closes
// or after 10 min. permessage-deflate is enabled. Routes as tests/peers/echo.py:
//   /echo  /fragments  /big?n=N  /ext
'use strict';
const { WebSocketServer } = require('ws');

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: true, maxPayload: 64 << 20 });
wss.on('connection', (ws, req) => {
  const u = new URL(req.url, 'http://x');
  if (u.pathname === '/fragments') {
    ws.send('Hel', { fin: false });
    ws.send('lo, ', { fin: false });
    ws.send('node', { fin: true });
    ws.send(Buffer.from([0, 1]), { binary: true, fin: false });
    ws.send(Buffer.from([2, 255]), { binary: true, fin: true });
  } else if (u.pathname === '/big') {
    const n = parseInt(u.searchParams.get('n') || '70000', 10);
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = i % 251;
    ws.send(b, { binary: true });
  } else if (u.pathname === '/ext') {
    ws.send(ws.extensions);
  }
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
wss.on('listening', () => {
  process.stdout.write('NODE_PORT=' + wss.address().port + '\nREADY=1\n');
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(0), 600 * 1000).unref();

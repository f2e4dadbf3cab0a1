#!/usr/bin/python3
"""Independent echo peer for the verawebsockets Lua suite: Python `websockets` (Debian python3-websockets).

Listens on 127.0.0.1 (ephemeral port), prints PY_PORT=N then READY=1, exits when stdin closes or after 10 min.
permessage-deflate is enabled (the websockets default). Routes:
  /echo          echo, same type
  /fragments     one fragmented text message ("Hel","lo, ","python") and one fragmented binary, then echo
  /big?n=N       one binary message of N bytes (i % 251), then echo
  /ext           one text message: the negotiated extensions (e.g. "permessage-deflate" or ""), then echo
"""
import asyncio, os, sys, urllib.parse
import websockets

async def handler(ws, path=None):
    path = path or ws.path
    u = urllib.parse.urlparse(path)
    q = urllib.parse.parse_qs(u.query)
    try:
        if u.path == "/fragments":
            await ws.send(["Hel", "lo, ", "python"])
            await ws.send([b"\x00\x01", b"", b"\x02\xff"])
        elif u.path == "/big":
            n = int(q.get("n", ["70000"])[0])
            await ws.send(bytes(i % 251 for i in range(n)))
        elif u.path == "/ext":
            await ws.send(",".join(e.name for e in ws.extensions))
        async for msg in ws:
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass

async def main():
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    async def watch_stdin():
        await loop.run_in_executor(None, sys.stdin.read)
        if not stop.done():
            stop.set_result(None)
    loop.call_later(600, lambda: stop.done() or stop.set_result(None))
    async with websockets.serve(handler, "127.0.0.1", 0, max_size=64 << 20, compression="deflate") as srv:
        port = srv.sockets[0].getsockname()[1]
        print("PY_PORT=%d" % port)
        print("READY=1", flush=True)
        asyncio.ensure_future(watch_stdin())
        await stop
    os._exit(0)

asyncio.run(main())

"""The connection's details: the pong waiter, send(text=), recv(decode=), the
close code and reason seen by both ends, and recv_streaming()."""

import asyncio

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosedError

closes = []
closed = None  # an asyncio.Event, made in main() (Python 3.9 binds it to a loop)


async def echo(websocket):
    try:
        async for message in websocket:
            await websocket.send(message)
    except ConnectionClosedError:  # 4001 is not a normal closure
        pass
    closes.append((websocket.close_code, websocket.close_reason))
    closed.set()


async def main():
    global closed
    closed = asyncio.Event()
    async with serve(echo, "127.0.0.1", 0) as server:
        uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async with connect(uri) as websocket:
            pong_waiter = await websocket.ping()
            latency = await pong_waiter
            print(latency >= 0)
            await websocket.send(b'{"json": "as text"}', text=True)
            print(repr(await websocket.recv()))
            await websocket.send("text as bytes")
            print(repr(await websocket.recv(decode=False)))
            await websocket.send("streamed")
            print([fragment async for fragment in websocket.recv_streaming()])
            await websocket.close(4001, "bye")
        print(websocket.close_code, websocket.close_reason)
        await closed.wait()
        print(closes)


asyncio.run(main())

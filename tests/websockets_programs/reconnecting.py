"""websockets' reconnecting client: async for websocket in connect(uri)."""

import asyncio

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

served = 0


async def restarting(websocket):
    global served
    served += 1
    await websocket.send(f"connection {served}")
    if served < 3:
        await websocket.close(1012, "service restart")
    else:
        await websocket.wait_closed()


async def main():
    async with serve(restarting, "127.0.0.1", 0) as server:
        uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async for websocket in connect(uri):
            try:
                message = await websocket.recv()
                print(message)
                if message == "connection 3":
                    await websocket.close()
                    break
                await websocket.recv()
            except ConnectionClosed as exc:
                print("lost:", exc.rcvd.code, exc.rcvd.reason)
                continue


asyncio.run(main())

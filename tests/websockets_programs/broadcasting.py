"""websockets' broadcast how-to: a set of connections and broadcast()."""

import asyncio
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import broadcast, serve

CONNECTIONS = set()
three = None  # an asyncio.Event, made in main() (Python 3.9 binds it to a loop)


async def register(websocket):
    CONNECTIONS.add(websocket)
    if len(CONNECTIONS) == 3:
        three.set()
    try:
        await websocket.wait_closed()
    finally:
        CONNECTIONS.remove(websocket)


async def main():
    global three
    three = asyncio.Event()
    async with serve(register, "127.0.0.1", 0) as server:
        uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        clients = [await connect(uri) for _ in range(3)]
        await three.wait()
        broadcast(CONNECTIONS, "news")
        # websockets raises ExceptionGroup, which Python 3.11 brought.
        broadcast(CONNECTIONS, b"binary news", raise_exceptions=sys.version_info >= (3, 11))
        print(len(server.connections))
        for client in clients:
            print(await client.recv(), await client.recv())
            await client.close()


asyncio.run(main())

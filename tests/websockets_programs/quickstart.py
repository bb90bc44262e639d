"""websockets' quickstart: an asyncio server, an asyncio client and a sync client."""

import asyncio

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.sync.client import connect as sync_connect


async def hello(websocket):
    name = await websocket.recv()
    await websocket.send(f"Hello {name}!")


def sync_client(uri):
    with sync_connect(uri) as websocket:
        websocket.send("sync")
        print(websocket.recv())


async def main():
    async with serve(hello, "127.0.0.1", 0) as server:
        uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async with connect(uri) as websocket:
            await websocket.send("asyncio")
            print(await websocket.recv())
        await asyncio.to_thread(sync_client, uri)


asyncio.run(main())

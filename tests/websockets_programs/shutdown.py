"""websockets' deployment how-to: SIGTERM closes the server gracefully."""

import asyncio
import os
import signal

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


async def handler(websocket):
    await websocket.wait_closed()


async def main():
    async with serve(handler, "127.0.0.1", 0) as server:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, server.close)
        uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async with connect(uri) as websocket:
            os.kill(os.getpid(), signal.SIGTERM)
            try:
                await websocket.recv()
            except ConnectionClosed as exc:
                print(exc.rcvd.code)
        await server.wait_closed()
    print("stopped")


asyncio.run(main())

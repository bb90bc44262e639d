#!/usr/bin/env python
"""The tutorial's server: reads a name, answers "Hello <name>!".

    python examples/hello_server.py [PORT]      # PORT defaults to 8765

Then run examples/hello_client.py in another terminal. Ctrl-C stops it.
"""

import asyncio
import sys

import fastws


async def hello(websocket):
    name = await websocket.recv()
    await websocket.send(f"Hello {name}!")


async def main(port=8765):
    async with fastws.serve(hello, "localhost", port):
        await asyncio.Future()  # run forever


if __name__ == "__main__":
    asyncio.run(main(*map(int, sys.argv[1:2])))

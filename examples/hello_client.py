#!/usr/bin/env python
"""The tutorial's client: sends "world" to examples/hello_server.py and prints
the answer, "Hello world!".

    python examples/hello_client.py [PORT]      # PORT defaults to 8765
"""

import asyncio
import sys

import fastws


async def hello(port=8765):
    async with fastws.connect(f"ws://localhost:{port}") as websocket:
        await websocket.send("world")
        print(await websocket.recv())


if __name__ == "__main__":
    asyncio.run(hello(*map(int, sys.argv[1:2])))

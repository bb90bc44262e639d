"""Echo server for the Autobahn|Testsuite ``fuzzingclient`` (which tests servers).

    python compliance/server.py PORT

Listens on 127.0.0.1:PORT only and echoes every message, text as text and binary
as binary, with the library's defaults except: no keepalive pings (the testsuite
counts every frame it did not ask for), and messages up to 64 MiB (case 9.x sends
16 MiB). permessage-deflate is accepted, as by default, for cases 12 and 13.
``FASTWS_NO_EXTENSIONS=1`` runs it on the pure-Python twin; the implementation in
use is printed on the first line.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import fastws
from fastws.exceptions import ConnectionClosed

MAX_SIZE = 64 * 1024 * 1024


async def echo(websocket) -> None:
    try:
        async for message in websocket:
            await websocket.send(message)
    except ConnectionClosed:
        pass


async def main(port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with fastws.serve(
        echo,
        "127.0.0.1",
        port,
        max_size=MAX_SIZE,
        max_queue=64,
        ping_interval=None,
        close_timeout=5,
    ):
        print(
            f"fastws {fastws.__version__} ({fastws.IMPLEMENTATION})"
            f" echo server on ws://127.0.0.1:{port}",
            flush=True,
        )
        await stop


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python compliance/server.py PORT")
    asyncio.run(main(int(sys.argv[1])))

"""Echo servers of the compression group: :mod:`bench.echo.servers`' own, and
picows's websockets-compatible API (``picows.websockets``), the one picows
offers permessage-deflate in.

    python -m bench.compression.servers STACK LOOP PORT [--profile FILE]

Same protocol as :mod:`bench.echo.servers` (``READY <port>`` on stdout, served
until SIGTERM, SIGINT or the end of standard input). Run with
``FASTWS_BENCH_COMPRESSION=deflate`` in the environment: every server then
accepts permessage-deflate with its stack's default settings.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Awaitable, Callable, Dict

from bench.echo import COMPRESSION, HOST, MAX_SIZE
from bench.echo import servers as echo_servers


async def start_picows_websockets(port: int) -> Any:
    from picows.websockets.asyncio.server import serve

    async def echo(websocket: Any) -> None:
        async for message in websocket:
            await websocket.send(message)

    server = await serve(echo, HOST, port, compression=COMPRESSION, max_size=MAX_SIZE, ping_interval=None)

    async def close() -> None:
        server.close()
        await server.wait_closed()

    return echo_servers._port_of(server.sockets), close


STARTERS: Dict[str, Callable[[int], Awaitable[Any]]] = {
    **echo_servers.STARTERS,
    "picows-websockets": start_picows_websockets,
}
STACKS = tuple(STARTERS) + tuple(echo_servers.BLOCKING)


async def serve(stack: str, port: int) -> None:
    await echo_servers.serve_until_stopped(STARTERS[stack], port, 2)


def main(argv: Any = None) -> int:
    return echo_servers.server_main(
        "python -m bench.compression.servers",
        __doc__.split("\n\n")[0],
        "stack",
        STACKS,
        serve,
        argv,
        echo_servers.BLOCKING,
    )


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    code = main()
    sys.stdout.flush()
    os._exit(code)  # do not wait for the stdin watcher thread

"""The floor of the memory group: a bare event loop protocol that holds connections.

    python -m bench.memory.servers floor LOOP PORT

Listens on 127.0.0.1:PORT (0: a free port), prints ``READY <port>``, and serves
as :mod:`bench.echo.servers` does (until SIGTERM, SIGINT or the end of standard
input). Each connection is an :class:`asyncio.Protocol` that keeps its
transport and answers the first bytes it receives with a fixed ``101``
response, without reading them: what any server on this loop pays for an open
TCP connection before it does anything of its own. The WebSocket stacks are
those of :mod:`bench.echo.servers`.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any, Optional, cast

from ..echo import HOST
from ..echo.servers import serve_until_stopped, server_main

#: Sent once, whatever the request: the opener's ``--floor`` accepts any 101.
RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: floor\r\n\r\n"
)


class Hold(asyncio.Protocol):
    """Accepts a connection and holds it."""

    __slots__ = ("transport",)

    def __init__(self) -> None:
        self.transport: Optional[asyncio.BaseTransport] = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(RESPONSE)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.transport = None


async def start_floor(port: int) -> Any:
    server = await asyncio.get_running_loop().create_server(Hold, HOST, port, backlog=1024)

    async def close() -> None:
        server.close()
        await server.wait_closed()

    return list(server.sockets)[0].getsockname()[1], close


async def serve(stack: str, port: int) -> None:
    await serve_until_stopped(start_floor, port, 2)


def main(argv: Optional[list] = None) -> int:
    return server_main("python -m bench.memory.servers", __doc__.split("\n\n")[0], "stack", ("floor",), serve, argv)


if __name__ == "__main__":
    cast(Any, sys.stdout).reconfigure(line_buffering=True)
    code = main()
    sys.stdout.flush()
    os._exit(code)  # do not wait for the stdin watcher thread

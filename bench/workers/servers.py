"""One echo worker of the scaling benchmark.

    python -m bench.workers.servers STACK PORT [--loop asyncio|uvloop]

Listens on 127.0.0.1:PORT with SO_REUSEPORT, so that several of these processes
share the port and the kernel spreads the connections over them, prints
``READY <port>`` and echoes every message until SIGTERM, SIGINT or the end of
its standard input. STACK: ``fastws`` (``serve()`` with ``async for message in
websocket: await websocket.send(message)``), ``fastws-listener``
(``serve_listener()``, ``on_message`` sends with ``send_nowait``), ``raw-tcp``
(an ``asyncio.Protocol`` writing back what it reads).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any, Optional, Sequence

from bench.echo import HOST, LOOPS, MAX_SIZE, run
from bench.echo.servers import serve_until_stopped

from . import STACKS


async def start(stack: str, port: int) -> Any:
    if stack == "raw-tcp":

        class Echo(asyncio.Protocol):
            def connection_made(self, transport: Any) -> None:
                self.transport = transport

            def data_received(self, data: bytes) -> None:
                self.transport.write(data)

        server: Any = await asyncio.get_running_loop().create_server(Echo, HOST, port, reuse_port=True)
    else:
        import fastws

        if stack == "fastws":

            async def echo(websocket: Any) -> None:
                async for message in websocket:
                    await websocket.send(message)

            server = await fastws.serve(echo, HOST, port, reuse_port=True, ping_interval=None, max_size=MAX_SIZE)
        else:

            class EchoListener(fastws.Listener):
                def on_message(self, connection: Any, message: Any) -> None:
                    connection.send_nowait(message)

            server = await fastws.serve_listener(
                EchoListener, HOST, port, reuse_port=True, ping_interval=None, max_size=MAX_SIZE
            )

    async def close() -> None:
        server.close()
        await server.wait_closed()

    return list(server.sockets)[0].getsockname()[1], close


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.workers.servers", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", choices=[s for s in STACKS if s != "fastws-run"])
    parser.add_argument("port", type=int, help="TCP port on 127.0.0.1 (0: a free one, for one worker)")
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    args = parser.parse_args(argv)
    run(serve_until_stopped(lambda port: start(args.stack, port), args.port, 2), args.loop)
    return 0


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    code = main()
    sys.stdout.flush()
    os._exit(code)  # do not wait for the stdin watcher thread

"""ASGI echo servers, one per backend.

    python -m bench.asgi.servers BACKEND LOOP PORT [--profile FILE]

Listens on 127.0.0.1:PORT (0: a free port), prints ``READY <port>`` on stdout
once connections are accepted, and serves until SIGTERM or SIGINT, or until its
standard input reaches end of file, whichever comes first (as
:mod:`bench.echo.servers`, whose serving loop and command line it uses).
``--profile FILE`` runs the server under cProfile and writes the stats to FILE
on the way out.

The app is the same for every ASGI server (:func:`starlette_app`): a Starlette
``WebSocketRoute`` at ``/`` that accepts, then sends each message back as it came
(bytes as bytes, text as text). uvicorn runs it with ``ws=`` set to each backend,
keepalive pings off, no compression, a 4 MiB message limit, no access log, log
level warning, lifespan off, and ``http`` left to uvicorn's ``auto`` (httptools
when installed, else h11). ``fastws-bare`` serves :func:`bare_echo`, the same
echo as a plain ASGI callable, to tell Starlette's cost from the backend's.
``fastws-serve`` is :mod:`bench.echo.servers`'s fastws echo: no ASGI at all.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from typing import Any, Awaitable, Callable, Dict, Optional, Tuple

from bench.echo import HOST, MAX_SIZE
from bench.echo.servers import STARTERS as ECHO_STARTERS
from bench.echo.servers import serve_until_stopped, server_main

from . import BACKENDS, FASTWS_WS

#: What a starter returns: the bound port, an async closer, and the task that
#: serves (None when the server has none): its end stops the process.
Started = Tuple[int, Callable[[], Awaitable[Any]], Optional["asyncio.Task[Any]"]]

ASGIApp = Callable[..., Awaitable[None]]

#: uvicorn's settings for every backend, here and in :mod:`bench.asgi.inproc`:
#: no lifespan, log level warning, no access log, keepalive pings off, no
#: compression, the 4 MiB message limit.
UVICORN_SETTINGS: Dict[str, Any] = {
    "lifespan": "off",
    "log_level": "warning",
    "access_log": False,
    "ws_ping_interval": None,
    "ws_per_message_deflate": False,
    "ws_max_size": MAX_SIZE,
}


# --- the app ---------------------------------------------------------------------------------


def starlette_app() -> Any:
    """The echo every ASGI server runs: what a Starlette user would write."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is not None:
                await websocket.send_bytes(data)
            else:
                await websocket.send_text(message["text"])

    return Starlette(routes=[WebSocketRoute("/", echo)])


async def bare_echo(scope: Dict[str, Any], receive: Any, send: Any) -> None:
    """The same echo as a bare ASGI app: no framework between server and handler."""
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        data = message.get("bytes")
        if data is not None:
            await send({"type": "websocket.send", "bytes": data})
        else:
            await send({"type": "websocket.send", "text": message["text"]})


# --- starters --------------------------------------------------------------------------------


def _listening_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.listen(128)
    return sock


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


async def _until_connectable(port: int, task: asyncio.Task[Any], timeout: float = 20.0) -> None:
    """For a server that binds its own socket: wait until it accepts connections."""
    deadline = time.monotonic() + timeout
    while True:
        if task.done():
            task.result()  # the error that stopped it
            raise RuntimeError("the server stopped before it accepted connections")
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing accepts connections on port {port} after {timeout:.0f} s") from None
            await asyncio.sleep(0.02)
            continue
        writer.close()
        return


def _uvicorn_starter(ws: str, app: Callable[[], ASGIApp], patch: Optional[Callable[[], Any]] = None):
    async def start_uvicorn(port: int) -> Started:
        import uvicorn

        if patch is not None:
            patch()
        config = uvicorn.Config(
            app(),
            host=HOST,
            port=port,
            ws=ws,
            # The process's loop is already the one asked for: bench.echo.run builds
            # it with the factories of uvicorn's loop="asyncio" and loop="uvloop"
            # (asyncio.SelectorEventLoop, uvloop.new_event_loop).
            loop="none",
            **UVICORN_SETTINGS,
        )
        server = uvicorn.Server(config)
        sock = _listening_socket(port)
        task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)

        async def close() -> None:
            server.should_exit = True
            await task

        return sock.getsockname()[1], close, task

    return start_uvicorn


def _patch_wsproto() -> None:
    import fastws.accelerate

    if not fastws.accelerate.patch_wsproto():
        raise RuntimeError("fastws.accelerate.patch_wsproto() did not patch wsproto")


async def start_hypercorn(port: int) -> Started:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    sock = _listening_socket(port)
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    config.loglevel = "WARNING"
    config.websocket_ping_interval = None
    config.websocket_max_message_size = MAX_SIZE
    shutdown = asyncio.Event()
    task = asyncio.get_running_loop().create_task(
        serve(starlette_app(), config, shutdown_trigger=shutdown.wait, mode="asgi")
    )

    async def close() -> None:
        shutdown.set()
        await task
        sock.close()  # also keeps it referenced: Hypercorn serves the same file descriptor

    # The socket listens already: a connection waits in its backlog until
    # Hypercorn accepts it.
    return sock.getsockname()[1], close, task


async def start_granian(port: int) -> Started:
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server.embed import Server

    port = port or _free_port()  # granian binds its own socket
    server = Server(
        starlette_app(),
        address=HOST,
        port=port,
        interface=Interfaces.ASGINL,  # no lifespan, as for uvicorn
        websockets=True,
        runtime_threads=1,
        log_level=LogLevels.error,
        log_access=False,
    )
    task = asyncio.get_running_loop().create_task(server.serve())
    await _until_connectable(port, task)

    async def close() -> None:
        server.stop()
        await task

    return port, close, task


async def start_fastws_serve(port: int) -> Started:
    bound, close = await ECHO_STARTERS["fastws"](port)
    return bound, close, None


STARTERS: Dict[str, Callable[[int], Awaitable[Started]]] = {
    "fastws": _uvicorn_starter(FASTWS_WS, starlette_app),
    "fastws-bare": _uvicorn_starter(FASTWS_WS, lambda: bare_echo),
    "websockets-sansio": _uvicorn_starter("websockets-sansio", starlette_app),
    "websockets": _uvicorn_starter("websockets", starlette_app),
    "wsproto": _uvicorn_starter("wsproto", starlette_app),
    "wsproto-accel": _uvicorn_starter("wsproto", starlette_app, _patch_wsproto),
    "hypercorn": start_hypercorn,
    "granian": start_granian,
    "fastws-serve": start_fastws_serve,
}
assert set(STARTERS) == set(BACKENDS)


async def serve(backend: str, port: int) -> None:
    await serve_until_stopped(STARTERS[backend], port, 3)


def main(argv: Optional[list] = None) -> int:
    return server_main("python -m bench.asgi.servers", __doc__.split("\n\n")[0], "backend", BACKENDS, serve, argv)


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    code = main()
    sys.stdout.flush()
    os._exit(code)  # do not wait for the stdin watcher thread

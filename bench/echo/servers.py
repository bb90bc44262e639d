"""Echo servers, one per stack, each in the stack's own idiom.

    python -m bench.echo.servers STACK LOOP PORT [--profile FILE]

Listens on 127.0.0.1:PORT (0: a free port chosen by the system), prints
``READY <port>`` on stdout once it accepts connections, and serves until SIGTERM
or SIGINT, or until its standard input reaches end of file (the parent closes it,
or died), whichever comes first. ``--profile FILE`` runs the server under
cProfile and writes the stats to FILE on the way out (``python -m pstats FILE``).

Every server echoes each message as it came (binary as binary, text as text),
without compression (unless ``FASTWS_BENCH_COMPRESSION`` asks for it), with
keepalive pings off and a message size limit of ``MAX_SIZE`` (4 MiB).

``socketify`` runs in its own idiom, ``App().ws(...).listen(...).run()``, which
drives uWebSockets' libuv loop from an asyncio loop of the kind LOOP names; it
has no client in :mod:`bench.echo.clients` (other groups drive it with theirs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
from typing import Any, Awaitable, Callable, Coroutine, Dict, Optional, Sequence, cast

from . import ALL_STACKS, COMPRESSION, HOST, LOOPS, MAX_SIZE, SERVER_STACKS, loop_factory, run

# Each starter listens on (HOST, port) and returns (bound port, async closer).


def _port_of(sockets: Any) -> int:
    return list(sockets)[0].getsockname()[1]


async def start_fastws(port: int):
    import fastws

    async def echo(websocket):
        async for message in websocket:
            await websocket.send(message)

    server = await fastws.serve(
        echo, HOST, port, ping_interval=None, max_size=MAX_SIZE, compression=COMPRESSION
    )

    async def close():
        server.close()
        await server.wait_closed()

    return _port_of(server.sockets), close


async def start_fastws_listener(port: int):
    import fastws

    class EchoListener(fastws.Listener):
        def on_message(self, connection, message):
            connection.send_nowait(message)

    server = await fastws.serve_listener(
        EchoListener, HOST, port, ping_interval=None, max_size=MAX_SIZE, compression=COMPRESSION
    )

    async def close():
        server.close()
        await server.wait_closed()

    return _port_of(server.sockets), close


async def start_websockets(port: int):
    from websockets.asyncio.server import serve

    async def echo(websocket):
        async for message in websocket:
            await websocket.send(message)

    server = await serve(
        echo, HOST, port, compression=COMPRESSION, max_size=MAX_SIZE, ping_interval=None
    )

    async def close():
        server.close()
        await server.wait_closed()

    return _port_of(server.sockets), close


async def start_aiohttp(port: int):
    from aiohttp import WSMsgType, web

    async def echo(request):
        ws = web.WebSocketResponse(
            compress=bool(COMPRESSION), max_msg_size=MAX_SIZE, autoping=True, heartbeat=None
        )
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, port)
    await site.start()
    return runner.addresses[0][1], runner.cleanup


def _picows_starter(use_aiofastnet: Optional[bool]):
    async def start_picows(port: int):
        from picows import WSListener, WSMsgType, ws_create_server

        class EchoListener(WSListener):
            def on_ws_frame(self, transport, frame):
                if frame.msg_type == WSMsgType.CLOSE:
                    transport.send_close(frame.get_close_code(), frame.get_close_message())
                    transport.disconnect()
                else:
                    # The payload is valid until this callback returns; send()
                    # frames (copies) it at once.
                    transport.send(frame.msg_type, frame.get_payload_as_memoryview(), frame.fin)

        server = await ws_create_server(
            lambda request: EchoListener(),
            HOST,
            port,
            max_frame_size=MAX_SIZE,
            enable_auto_ping=False,
            use_aiofastnet=use_aiofastnet,
        )

        async def close():
            server.close()
            await server.wait_closed()

        return _port_of(server.sockets), close

    return start_picows


async def start_raw_tcp(port: int):
    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

    server = await asyncio.get_running_loop().create_server(Echo, HOST, port)

    async def close():
        server.close()
        await server.wait_closed()

    return _port_of(server.sockets), close


STARTERS: Dict[str, Callable[[int], Awaitable[Any]]] = {
    "fastws": start_fastws,
    "fastws-listener": start_fastws_listener,
    "websockets": start_websockets,
    "aiohttp": start_aiohttp,
    "picows": _picows_starter(None),  # picows's default: aiofastnet when installed
    "picows-loop": _picows_starter(False),
    "raw-tcp": start_raw_tcp,
}
assert set(STARTERS) == set(ALL_STACKS)


def run_socketify(port: int, kind: str) -> None:
    """Serve socketify's echo on (HOST, port) until SIGTERM, SIGINT or the end
    of standard input, printing ``READY <port>`` once it listens.

    socketify runs its own loop (``App.run()``), so it cannot be one of the
    coroutine starters above; its asyncio loop is swapped for one of ``kind``
    through its public ``Loop.set_event_loop`` before it runs.

    Raises:
        SystemExit: when it cannot listen on the port.
    """
    from socketify import App, AppListenOptions, CompressOptions  # type: ignore[import-untyped]

    compress = bool(COMPRESSION)

    def echo(ws: Any, message: Any, opcode: Any) -> None:
        ws.send(message, opcode, compress)

    app = App()
    default_loop = app.loop.loop
    loop = loop_factory(kind)()
    app.loop.set_event_loop(loop)
    default_loop.close()
    app.ws(
        "/*",
        {
            "compression": CompressOptions.SHARED_COMPRESSOR if compress else CompressOptions.DISABLED,
            "max_payload_length": MAX_SIZE,
            "max_backpressure": MAX_SIZE,
            "idle_timeout": 0,  # 0: never closes an idle connection (as the others)
            "message": echo,
        },
    )
    bound: list = []
    # The handler runs within listen() when it succeeds; on failure socketify
    # raises inside a C callback (printed, not propagated), so an empty list is
    # the only sign.
    app.listen(AppListenOptions(port=port, host=HOST), lambda config: bound.append(config.port))
    if not bound:
        raise SystemExit(f"socketify could not listen on {HOST}:{port}")

    def stop() -> None:
        if app.loop.started:
            app.close()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)

    def watch_stdin() -> None:
        try:
            while os.read(sys.stdin.fileno(), 4096):
                pass
        except (OSError, ValueError):
            pass
        try:
            loop.call_soon_threadsafe(stop)
        except RuntimeError:  # loop already closed
            pass

    threading.Thread(target=watch_stdin, daemon=True).start()
    print(f"READY {bound[0]}", flush=True)
    # App.run() installs its own SIGINT handler (close, then exit(0)); SIGTERM
    # and the end of stdin go through stop().
    app.run()


#: Stacks whose server runs its own loop: ``runner(port, loop kind)``.
BLOCKING: Dict[str, Callable[[int, str], None]] = {"socketify": run_socketify}
assert set(STARTERS) | set(BLOCKING) == set(SERVER_STACKS)


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Future) -> None:
    """Stop when stdin reaches EOF, so that a server never outlives its parent.
    Reads the file descriptor itself: a daemon thread blocked in the buffered
    ``sys.stdin`` holds its lock, and a server stopped by a signal meanwhile
    dies at exit with "could not acquire lock for <stdin>"."""
    try:
        while os.read(sys.stdin.fileno(), 4096):
            pass
    except (OSError, ValueError):
        pass
    def stop_now() -> None:
        if not stop.done():
            stop.set_result("stdin closed")

    try:
        loop.call_soon_threadsafe(stop_now)
    except RuntimeError:  # loop already closed
        pass


async def serve_until_stopped(start: Callable[[int], Awaitable[tuple]], port: int, close_timeout: float) -> None:
    """Start a server with ``start(port)``, which returns (bound port, async
    closer) or (bound port, async closer, the task that serves or None), print
    ``READY <port>``, and serve until SIGTERM or SIGINT, the end of standard
    input, or the end of that task; then close it (within ``close_timeout``).
    A server that installs its own signal handlers (uvicorn) ends its task on
    a signal instead, which ends this too."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future = loop.create_future()

    def stop_with(reason: str) -> None:
        if not stop.done():
            stop.set_result(reason)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_with, sig.name)
    started = await start(port)
    bound, close = started[0], started[1]
    task = started[2] if len(started) > 2 else None
    if task is not None:
        task.add_done_callback(lambda _: stop_with("server stopped"))
    threading.Thread(target=_watch_stdin, args=(loop, stop), daemon=True).start()
    print(f"READY {bound}", flush=True)
    await stop
    try:
        await asyncio.wait_for(close(), close_timeout)
    except Exception:  # noqa: BLE001 - shutting down anyway
        pass


async def serve(stack: str, port: int) -> None:
    await serve_until_stopped(STARTERS[stack], port, 2)


def server_main(
    prog: str, description: str, what: str, choices: Sequence[str],
    serve: Callable[[str, int], Coroutine[Any, Any, None]],
    argv: Optional[Sequence[str]] = None, blocking: Optional[Dict[str, Callable[[int, str], None]]] = None,
) -> int:
    """The command line of a server module, ``prog WHAT LOOP PORT [--profile
    FILE]``: runs ``serve(WHAT, PORT)`` on LOOP, under cProfile with --profile
    (:mod:`bench.asgi.servers` has the same one). A WHAT in ``blocking`` runs
    its own loop instead: ``blocking[WHAT](PORT, LOOP)``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(what, choices=choices)
    parser.add_argument("loop", choices=LOOPS)
    parser.add_argument("port", type=int, help="TCP port on 127.0.0.1; 0 for a free one")
    parser.add_argument("--profile", metavar="FILE", help="run under cProfile, write the stats here")
    args = parser.parse_args(argv)
    name = getattr(args, what)

    def go() -> None:
        if blocking and name in blocking:
            blocking[name](args.port, args.loop)
        else:
            run(serve(name, args.port), args.loop)

    if not args.profile:
        go()
        return 0

    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        go()
    finally:
        profiler.disable()
        profiler.dump_stats(args.profile)
    return 0


def main(argv=None) -> int:
    return server_main(
        "python -m bench.echo.servers", __doc__.split("\n\n")[0], "stack", SERVER_STACKS, serve, argv, BLOCKING
    )


if __name__ == "__main__":
    cast(Any, sys.stdout).reconfigure(line_buffering=True)
    code = main()
    sys.stdout.flush()
    os._exit(code)  # do not wait for the stdin watcher thread

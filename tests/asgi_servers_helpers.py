"""The server side of ``tests/test_asgi_servers.py``: an echo app served by
Hypercorn (a Starlette app) or Daphne (a Django Channels consumer), in a process
of its own, with or without ``fastws.accelerate``'s patch of the WebSocket
library the server is built on (wsproto for Hypercorn, Autobahn for Daphne).

    python tests/asgi_servers_helpers.py hypercorn|daphne [patch]

The patch is applied after the server and its WebSocket library are imported
and the app is built, just before serving: the late case. The process binds a
free port of 127.0.0.1, prints one JSON line (``{"port": ..., "patch": ...}``)
once it listens, and serves until its standard input ends (the test closes it),
or for :data:`LIFETIME` seconds at most: it stops by itself even if the test
process dies.

The echo endpoint is ``/echo``. It sends back every message as it came (text as
text, bytes as bytes), except three text commands:

- ``status``: a JSON report of this process: the patch result and, for every
  open WebSocket connection of the server (found with :mod:`gc`), the classes
  its WebSocket library really uses for it (which show whether fastws's code
  runs it);
- ``close-me``: the app closes the connection with code 4001 and a reason;
- ``seen``: the disconnections the app saw from clients (code, reason), once
  there is at least one (waited for, bounded).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import socket
import sys
import threading
from typing import Any, Dict, List, Optional

LIFETIME = 60.0  # seconds: the process ends by itself after this
SEEN_WAIT = 5.0  # seconds ``seen`` waits for a disconnection to come

#: (code, reason) of every disconnection a client started, as the app saw it
SEEN: List[List[Any]] = []
PATCH: Dict[str, Any] = {"applied": False}


def _module_of(obj: Any) -> Optional[str]:
    return None if obj is None else f"{type(obj).__module__}.{type(obj).__qualname__}"


def wsproto_connections() -> List[Dict[str, Any]]:
    """What wsproto runs every open server connection on (Hypercorn's)."""
    from wsproto.connection import Connection, ConnectionState

    gc.collect()
    found = []
    for obj in gc.get_objects():
        if isinstance(obj, Connection) and obj.state is ConnectionState.OPEN:
            proto = obj._proto
            decoder = proto._frame_decoder
            found.append(
                {
                    "protocol": _module_of(proto),
                    "decoder": _module_of(decoder),
                    # The patched decoder parses with fastws's FrameParser only
                    # without extensions (see fastws.accelerate._wsproto).
                    "fast_decoder": getattr(decoder, "_parser", None) is not None,
                    "extensions": [ext.name for ext in proto.extensions],
                }
            )
    return found


def autobahn_connections() -> List[Dict[str, Any]]:
    """What Autobahn runs every open server connection on (Daphne's)."""
    from autobahn.websocket.protocol import WebSocketProtocol

    gc.collect()
    found = []
    for obj in gc.get_objects():
        if isinstance(obj, WebSocketProtocol) and obj.state == WebSocketProtocol.STATE_OPEN:
            found.append(
                {
                    "protocol": _module_of(obj),
                    "utf8validator": _module_of(getattr(obj, "utf8validator", None)),
                    # The masker of the last frame received (the "status" frame).
                    "masker": _module_of(getattr(obj, "current_frame_masker", None)),
                }
            )
    return found


_seen_event: Optional[asyncio.Event] = None


def seen_event() -> asyncio.Event:
    """Set once SEEN has an entry (created in the server's event loop)."""
    global _seen_event
    if _seen_event is None:
        _seen_event = asyncio.Event()
    return _seen_event


def record_seen(code: Any, reason: Any) -> None:
    SEEN.append([code, reason])
    seen_event().set()


async def wait_seen() -> List[List[Any]]:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(seen_event().wait(), SEEN_WAIT)
    return SEEN


# --- Hypercorn + Starlette ------------------------------------------------------------


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                record_seen(message.get("code"), message.get("reason"))
                return
            text = message.get("text")
            if text == "status":
                await websocket.send_text(json.dumps(status(wsproto_connections())))
            elif text == "close-me":
                await websocket.close(4001, "server says bye")
                return
            elif text == "seen":
                await websocket.send_text(json.dumps(await wait_seen()))
            elif text is not None:
                await websocket.send_text(text)
            else:
                await websocket.send_bytes(message["bytes"])

    return Starlette(routes=[WebSocketRoute("/echo", echo)])


def serve_hypercorn(patch: bool) -> None:
    import hypercorn.asyncio
    from hypercorn.config import Config

    app = starlette_app()
    if patch:
        apply_patch("wsproto")
    listener = bound_socket()
    config = Config()
    config.bind = [f"fd://{listener.fileno()}"]
    config.accesslog = None
    config.graceful_timeout = 1.0

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        watch_stdin(lambda: loop.call_soon_threadsafe(stop.set))
        serving = loop.create_task(hypercorn.asyncio.serve(app, config, shutdown_trigger=stop.wait))
        await wait_listening(listener)
        announce(listener.getsockname()[1])
        await serving

    asyncio.run(main())


# --- Daphne + Django Channels ------------------------------------------------------------


def channels_app() -> Any:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="fastws tests: not secret",
        ALLOWED_HOSTS=["127.0.0.1"],
        INSTALLED_APPS=["channels"],
        USE_TZ=True,
    )
    django.setup()
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.urls import path

    class Echo(AsyncWebsocketConsumer):
        closing = False

        async def receive(self, text_data: Optional[str] = None, bytes_data: Optional[bytes] = None) -> None:
            if text_data == "status":
                await self.send(text_data=json.dumps(status(autobahn_connections())))
            elif text_data == "close-me":
                self.closing = True
                await self.close(code=4001, reason="server says bye")
            elif text_data == "seen":
                await self.send(text_data=json.dumps(await wait_seen()))
            elif text_data is not None:
                await self.send(text_data=text_data)
            else:
                await self.send(bytes_data=bytes_data)

        async def disconnect(self, code: int) -> None:
            if not self.closing:  # a disconnection the client started
                record_seen(code, None)

    return ProtocolTypeRouter({"websocket": URLRouter([path("echo", Echo.as_asgi())])})


def serve_daphne(patch: bool) -> None:
    from daphne.server import Server  # installs Twisted's asyncio reactor
    from twisted.internet import reactor

    app = channels_app()
    if patch:
        apply_patch("autobahn")
    server = Server(
        app,
        endpoints=["tcp:port=0:interface=127.0.0.1"],
        signal_handlers=False,
        verbosity=0,
        ping_interval=3600,
        application_close_timeout=2,
    )
    watch_stdin(lambda: reactor.callFromThread(server.stop))

    def ready() -> None:
        if server.listening_addresses:
            announce(server.listening_addresses[0][1])
        else:
            reactor.callLater(0.01, ready)

    server.ready_callable = lambda: reactor.callLater(0, ready)
    server.run()


# --- the process ---------------------------------------------------------------------------


def apply_patch(library: str) -> None:
    import fastws.accelerate

    # allow_pure: under FASTWS_NO_EXTENSIONS=1 the patch runs the pure twin
    # (correct, not faster); the tests check the behaviour on both twins.
    result = getattr(fastws.accelerate, f"patch_{library}")(allow_pure=True)
    PATCH.update(
        applied=True,
        active=result.active,
        changed=result.changed,
        targets=list(result.targets),
        reason=result.reason,
    )


def status(connections: List[Dict[str, Any]]) -> Dict[str, Any]:
    import fastws

    return {"patch": PATCH, "implementation": fastws.IMPLEMENTATION, "connections": connections}


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def wait_listening(sock: socket.socket) -> None:
    """Until Hypercorn's asyncio server listens on ``sock`` (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 0:
        if loop.time() > deadline:
            raise RuntimeError("the server did not start listening")
        await asyncio.sleep(0.01)


def announce(port: int) -> None:
    print(json.dumps({"port": port, "patch": PATCH}), flush=True)


def watch_stdin(stop: Any) -> None:
    """Call ``stop`` (from another thread) when standard input ends."""

    def watch() -> None:
        # os.read, not sys.stdin: a daemon thread blocked in a buffered read
        # holds its lock, which aborts the interpreter's shutdown.
        while os.read(0, 4096):
            pass
        stop()

    threading.Thread(target=watch, daemon=True).start()


def main(argv: List[str]) -> None:
    # Whatever happens, the process does not outlive LIFETIME.
    timer = threading.Timer(LIFETIME, os._exit, (3,))
    timer.daemon = True
    timer.start()
    server, patch = argv[0], argv[1:] == ["patch"]
    {"hypercorn": serve_hypercorn, "daphne": serve_daphne}[server](patch)


if __name__ == "__main__":
    main(sys.argv[1:])

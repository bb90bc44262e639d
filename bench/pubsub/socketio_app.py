"""The python-socketio fan-out app, for uvicorn (``--workers N``).

    BENCH_REDIS_URL=redis://127.0.0.1:P/0 uvicorn bench.pubsub.socketio_app:application --workers 2

An ``AsyncServer`` with ``AsyncRedisManager``, as its docs describe for several
processes. A client that connects with ``role=sub`` in its query string enters
the room (then gets a ``hello`` event); a ``pub`` event from any client is
emitted to the room as a ``msg`` event, in every process, through Redis.
"""

from __future__ import annotations

import os
from typing import Any, Dict

import socketio  # type: ignore[import-untyped]

from . import HELLO, TOPIC

manager = socketio.AsyncRedisManager(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager)


@sio.event
async def connect(sid: str, environ: Dict[str, Any], auth: Any = None) -> None:
    if "role=sub" in environ.get("QUERY_STRING", ""):
        await sio.enter_room(sid, TOPIC)
        await sio.emit(HELLO, to=sid)


@sio.on("pub")
async def pub(sid: str, data: str) -> None:
    await sio.emit("msg", data, room=TOPIC)


application = socketio.ASGIApp(sio)

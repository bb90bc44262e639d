"""The fastws fan-out handler, shared by ``python -m fastws run`` and
:mod:`bench.pubsub.servers`.

    python -m fastws run bench.pubsub.handler:handler --workers 2 --pubsub redis://127.0.0.1:P/0

A connection to ``/pub`` is the publisher: each message it sends becomes
``await pubsub.publish(topic, message)``. Any other path is a subscriber:
subscribed on connect, then sent ``hello``; it gets every message published
from then on, by any worker.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import fastws

from . import HELLO, TOPIC


def make_handler(pubsub: Any) -> Callable[[Any], Awaitable[None]]:
    """The handler, publishing and subscribing through ``pubsub`` (a started
    ``fastws.PubSub``; None: the worker's, ``fastws.current_pubsub()``)."""

    async def handler(websocket: Any) -> None:
        topics = pubsub if pubsub is not None else fastws.current_pubsub()
        if websocket.request.path.startswith("/pub"):
            async for message in websocket:
                await topics.publish(TOPIC, message)
        else:
            topics.subscribe(websocket, TOPIC)
            await websocket.send(HELLO)
            await websocket.wait_closed()

    return handler


#: For ``python -m fastws run bench.pubsub.handler:handler --pubsub URL``.
handler = make_handler(None)

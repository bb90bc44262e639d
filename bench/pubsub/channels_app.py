"""The Django Channels fan-out app, for uvicorn (``--workers N``).

    BENCH_REDIS_URL=redis://127.0.0.1:P/0 \\
    BENCH_CHANNEL_LAYER=channels_redis.core.RedisChannelLayer \\
        uvicorn bench.pubsub.channels_app:application --workers 2

``/sub``: a subscriber, added to the group on connect (then sent ``hello``),
sent the text of every group message. ``/pub``: the publisher; each text
message it sends becomes ``group_send`` to the group. Both consumers are
Channels' ``AsyncWebsocketConsumer``, what a Channels user would write.
"""

from __future__ import annotations

import os

import django  # type: ignore[import-untyped]
from django.conf import settings  # type: ignore[import-untyped]

from . import HELLO, TOPIC

if not settings.configured:
    settings.configure(
        DEBUG=False,
        INSTALLED_APPS=["channels"],
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": os.environ.get("BENCH_CHANNEL_LAYER", "channels_redis.core.RedisChannelLayer"),
                "CONFIG": {"hosts": [os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")]},
            }
        },
    )
    django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # type: ignore[import-untyped]
from channels.routing import ProtocolTypeRouter, URLRouter  # type: ignore[import-untyped]
from django.urls import path  # type: ignore[import-untyped]


class Subscriber(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.channel_layer.group_add(TOPIC, self.channel_name)
        await self.accept()
        await self.send(text_data=HELLO)

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(TOPIC, self.channel_name)

    async def room_message(self, event: dict) -> None:
        await self.send(text_data=event["text"])


class Publisher(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None) -> None:
        await self.channel_layer.group_send(TOPIC, {"type": "room.message", "text": text_data})


application = ProtocolTypeRouter(
    {"websocket": URLRouter([path("sub", Subscriber.as_asgi()), path("pub", Publisher.as_asgi())])}
)

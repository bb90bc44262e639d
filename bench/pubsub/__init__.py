"""Fan-out benchmark: one publisher, many subscribers, several server processes.

    python -m bench.pubsub            # every stack, median of 3 runs (a few minutes)
    python -m bench.pubsub --quick    # smoke run: every stack once, briefly

One publisher sends 64 B messages to one topic; 1,000 subscribers, connected
to 2 server worker processes, each receive every message. The stacks are fastws
(``fastws.PubSub`` through Redis and in one process), Django Channels (both
``channels_redis`` layers) and python-socketio's Redis manager, each served as
its users would serve it (:mod:`bench.pubsub.servers`), all driven by the same
load generator, fastws Listener connections (:mod:`bench.pubsub.client`).
:mod:`bench.pubsub.__main__` starts Redis, the servers and the client, takes
the median of the runs and prints the table; see ``bench/pubsub/README.md``.

This module holds what the runner, the servers and the client share.
"""

from __future__ import annotations

from typing import Dict, Tuple

#: Stacks measured by default, in table order.
STACKS: Tuple[str, ...] = (
    "fastws-redis",
    "fastws-local",
    "fastws-redis-uvloop",
    "fastws-local-uvloop",
    "channels-core",
    "channels-pubsub",
    "socketio",
)

LABELS: Dict[str, str] = {
    "fastws-redis": "fastws run --workers 2 --pubsub redis://",
    "fastws-local": "fastws, PubSub() in 1 process",
    "fastws-redis-uvloop": "fastws, 2 serve() processes, uvloop, Redis",
    "fastws-local-uvloop": "fastws, PubSub() in 1 process, uvloop",
    "channels-core": "Channels, RedisChannelLayer",
    "channels-pubsub": "Channels, RedisPubSubChannelLayer",
    "socketio": "python-socketio, AsyncRedisManager",
}

#: Modules a stack needs in its server processes; a missing one skips the stack.
REQUIRES: Dict[str, Tuple[str, ...]] = {
    "fastws-redis": ("fastws.runner", "redis"),
    "fastws-local": ("fastws",),
    "fastws-redis-uvloop": ("fastws", "redis", "uvloop"),
    "fastws-local-uvloop": ("fastws", "uvloop"),
    "channels-core": ("uvicorn", "channels", "channels_redis"),
    "channels-pubsub": ("uvicorn", "channels", "channels_redis"),
    "socketio": ("uvicorn", "socketio"),
}

#: Stacks whose server talks to Redis (the others run without it).
USES_REDIS = ("fastws-redis", "fastws-redis-uvloop", "channels-core", "channels-pubsub", "socketio")
#: The fastws stacks in pairs (through Redis, in one process) on the same event
#: loop: the runner's workers run asyncio's default loop; uvicorn picks uvloop.
PAIRS = (("fastws-redis", "fastws-local"), ("fastws-redis-uvloop", "fastws-local-uvloop"))
#: The peers: the faster of them is what fastws is held against.
PEERS = ("channels-core", "channels-pubsub", "socketio")
#: The fastws stack served by ``python -m fastws run`` (``--workers N --pubsub URL``).
RUNNER = "fastws-redis"
#: Stacks served by uvicorn (``--workers N``); the others are fastws processes.
UVICORN = {
    "channels-core": "bench.pubsub.channels_app:application",
    "channels-pubsub": "bench.pubsub.channels_app:application",
    "socketio": "bench.pubsub.socketio_app:application",
}
#: The Channels layer of each Channels stack (the app reads it from the environment).
CHANNEL_LAYERS = {
    "channels-core": "channels_redis.core.RedisChannelLayer",
    "channels-pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}

#: The stack that speaks Engine.IO / Socket.IO framing; the others carry the
#: payload as the whole WebSocket text message.
SOCKETIO = "socketio"

HOST = "127.0.0.1"
TOPIC = "room"
SIZE = 64  #: characters (ASCII: bytes) per published message
KEY = 12  #: the leading digits of a message: its sequence number
#: The text a server sends to a subscriber once it is subscribed (Socket.IO: an
#: event of that name), so that the client knows every subscription is in place.
HELLO = "hello"


def make_message(seq: int, sent_ns: int) -> str:
    """The 64-character message number ``seq``, sent at ``sent_ns``
    (CLOCK_MONOTONIC, comparable across processes on Linux)."""
    head = f"{seq:0{KEY}d}{sent_ns:020d}"
    return head + "x" * (SIZE - len(head))


#: The issue's reference figures, measured at saturation on this machine
#: (1,000 subscribers over 2 uvicorn processes, one Redis, 64 B, median of 3):
#: deliveries/s and p99 latency in ms.
REFERENCE = {
    "channels-core": (7_900, 165),
    "channels-pubsub": (13_100, 130),
    "socketio": (30_300, 140),
}

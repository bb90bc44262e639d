"""Topics of one process: which connections subscribed to what, and the
fan-out of one message to a topic's subscribers."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Dict, FrozenSet, Mapping, Set, Union

from ..asyncio.broadcasting import deliver
from ..frames import Opcode
from ..protocol import CLOSED

if TYPE_CHECKING:
    from ..asyncio.connection import Connection

__all__ = ["Topics", "Counters", "as_connection"]

Payload = Union[str, bytes, bytearray, memoryview]

#: Seconds between two warnings about subscribers skipped for being slow.
SKIP_WARNING_INTERVAL = 1.0


class Counters:
    """What a :class:`fastws.PubSub` did since it was made.

    Attributes:
        published: Messages this process published.
        received: Messages that reached this process's topics (its own
            included), duplicates left out.
        delivered: Frames written to subscribers.
        skipped: Deliveries skipped because the subscriber could not take the
            message then (over its write limit, in the middle of a fragmented
            message, or failing).
        missed: Messages this process never received: found missing from each
            publisher's numbering (the process fell further behind than the
            stream keeps, or Redis lost them).
        duplicates: Messages received twice (a publish retried after a lost
            reply, or replayed after Redis restarted) and dropped.
        reconnections: Times a connection to Redis was made again.
    """

    __slots__ = ("published", "received", "delivered", "skipped", "missed", "duplicates", "reconnections")

    def __init__(self) -> None:
        self.published = 0
        self.received = 0
        self.delivered = 0
        self.skipped = 0
        self.missed = 0
        self.duplicates = 0
        self.reconnections = 0

    def as_dict(self) -> Dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value}" for name, value in self.as_dict().items())
        return f"Counters({fields})"


def as_connection(subscriber: Any) -> Connection:
    """The fastws connection behind ``subscriber``.

    A :class:`fastws.asyncio.Connection` (a ``serve()`` handler's argument, a
    Listener's connection) is taken as it is. On fastws's uvicorn backend, an
    ASGI scope, or an object holding one in ``.scope`` (Starlette's and
    FastAPI's ``WebSocket``, a Channels consumer), leads to its connection
    through the scope's ``"fastws"`` extension.

    Raises:
        TypeError: If ``subscriber`` is none of these.
    """
    if hasattr(subscriber, "protocol") and hasattr(subscriber, "add_close_callback"):
        return subscriber  # type: ignore[no-any-return,unused-ignore]
    scope = getattr(subscriber, "scope", subscriber)
    if isinstance(scope, Mapping) and scope.get("type") == "websocket":
        extension = scope.get("extensions", {}).get("fastws")
        if extension is not None:
            return extension["connection"]  # type: ignore[no-any-return,unused-ignore]
        raise TypeError(
            "this ASGI WebSocket was not made by fastws: PubSub needs the app to run on"
            " uvicorn --ws fastws.uvicorn:WebSocketProtocol"
        )
    raise TypeError(
        f"cannot subscribe a {type(subscriber).__name__}: expected a fastws connection,"
        " an ASGI WebSocket scope, or an object with one in .scope"
    )


class Topics:
    """The subscriptions of one process, and the fan-out to them."""

    def __init__(self, counters: Counters, logger: logging.Logger) -> None:
        self.counters = counters
        self.logger = logger
        # topic -> its subscribers, in subscription order (a dict as an ordered set)
        self._subscribers: Dict[str, Dict[Connection, None]] = {}
        # connection -> its topics; a connection stays here, maybe with no
        # topic, until it closes, so its close callback is registered once
        self._topics_of: Dict[Connection, Set[str]] = {}
        self._skipped_since_warning = 0
        self._last_warning = 0.0

    def subscribe(self, connection: Connection, topic: str) -> None:
        if connection.protocol.state is CLOSED:
            return  # it would never leave
        topics = self._topics_of.get(connection)
        if topics is None:
            topics = self._topics_of[connection] = set()
            connection.add_close_callback(self.forget)
        topics.add(topic)
        self._subscribers.setdefault(topic, {})[connection] = None

    def unsubscribe(self, connection: Connection, topic: str) -> None:
        topics = self._topics_of.get(connection)
        if topics is None or topic not in topics:
            return
        topics.discard(topic)
        self._leave(connection, topic)

    def forget(self, connection: Connection) -> None:
        """Take ``connection`` out of every topic, and out of this registry (it closed)."""
        for topic in self._topics_of.pop(connection, ()):
            self._leave(connection, topic)

    def leave_all(self, connection: Connection) -> None:
        """Take ``connection`` out of every topic; it stays registered, with
        its close callback, for the topics it may join again."""
        topics = self._topics_of.get(connection)
        if topics:
            for topic in topics:
                self._leave(connection, topic)
            topics.clear()

    def _leave(self, connection: Connection, topic: str) -> None:
        subscribers = self._subscribers[topic]
        del subscribers[connection]
        if not subscribers:
            del self._subscribers[topic]

    def topics_of(self, connection: Connection) -> FrozenSet[str]:
        return frozenset(self._topics_of.get(connection, ()))

    def subscribers(self, topic: str) -> FrozenSet[Connection]:
        return frozenset(self._subscribers.get(topic, ()))

    def topics(self) -> FrozenSet[str]:
        return frozenset(self._subscribers)

    def clear(self) -> None:
        self._subscribers.clear()
        self._topics_of.clear()

    def deliver(self, topic: str, opcode: Opcode, payload: Payload) -> int:
        """Write one message to the open subscribers of ``topic``; return how many took it."""
        subscribers = self._subscribers.get(topic)
        if not subscribers:
            return 0
        # A tuple: nothing in deliver() changes subscriptions, but a callback
        # of a transport might.
        written = deliver(tuple(subscribers), opcode, payload, self._skipped)
        self.counters.delivered += written
        return written

    def _skipped(self, connection: Connection, error: Exception) -> None:
        self.counters.skipped += 1
        self._skipped_since_warning += 1
        now = time.monotonic()
        if now - self._last_warning >= SKIP_WARNING_INTERVAL:
            # One warning a second at most: a slow reader is skipped on every message.
            self.logger.warning(
                "skipped %d deliveries to subscribers that could not take them, the last: %s",
                self._skipped_since_warning,
                error,
            )
            self._skipped_since_warning = 0
            self._last_warning = now

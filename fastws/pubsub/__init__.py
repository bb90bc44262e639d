"""Publish/subscribe: topics of connections, in one process or across many.

::

    pubsub = fastws.PubSub()                           # topics of this process
    pubsub = fastws.PubSub("redis://127.0.0.1:6379/0") # every process on that Redis

    async with pubsub:
        pubsub.subscribe(websocket, "room")
        await pubsub.publish("room", "hello")

A message published to a topic is written to every connection subscribed to
it, the frame built once per process, as :func:`fastws.broadcast` does: a
subscriber that cannot take it then (over its write limit) is skipped, counted
and logged, and never holds up the others. A connection that closes leaves its
topics by itself.

With a Redis URL, every publish goes through one Redis stream that every
process reads (:mod:`fastws.pubsub.streams` says how, and what is guaranteed).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, FrozenSet, Mapping, Optional, Union

from ..asyncio.broadcasting import message_opcode
from ..exceptions import PubSubError
from .topics import Counters, Topics, as_connection

__all__ = ["PubSub", "Counters", "current_pubsub", "set_current"]

Message = Union[str, bytes, bytearray, memoryview]

DEFAULT_STREAM = "fastws:pubsub"

_current: Optional[PubSub] = None


def current_pubsub() -> PubSub:
    """The :class:`PubSub` this process's server was started with.

    That is the one ``python -m fastws run --pubsub URL`` (or
    :func:`fastws.run` with ``pubsub=``) starts in each worker before it serves.

    Raises:
        LookupError: If there is none.
    """
    if _current is None:
        raise LookupError(
            "no PubSub was started for this process: run the server with"
            " python -m fastws run --pubsub URL, or make one with fastws.PubSub()"
        )
    return _current


def set_current(pubsub: Optional[PubSub]) -> None:
    """Make ``pubsub`` what :func:`current_pubsub` returns (None: no PubSub).

    For process runners such as :func:`fastws.run`.
    """
    global _current
    _current = pubsub


class PubSub:
    """Topics of connections, in this process or, through Redis, in all.

    Args:
        url: None for topics of this process only. ``redis://host:port/db``,
            ``rediss://`` (TLS) or ``unix:///path/to/redis.sock`` to reach
            every process that uses the same Redis and ``stream``; needs the
            ``redis`` package (``pip install 'fastws[redis]'``).
        stream: The Redis stream every publish goes through. Every process on
            it reads all of it: give sets of processes that share no topics
            streams of their own.
        retention: About how many entries the stream keeps (``MAXLEN ~``): how
            far behind a process may fall before it misses messages, and what
            the stream costs Redis in memory. Keep it well above the largest
            burst of publishes, which readers would otherwise find trimmed.
        max_buffer: Messages that may wait for Redis (while it is away, or
            slower than the publishers); a publish beyond it raises
            :class:`~fastws.exceptions.PublishBufferFull`. It also bounds the
            replay window.
        max_buffer_bytes: The same bound in bytes of payload and topic.
        replay: Seconds of messages each publisher keeps after Redis took them,
            to publish again if Redis restarts and loses them.
        close_timeout: Seconds :meth:`close` waits for Redis to take the
            messages still waiting.
        redis_options: Keyword arguments for ``redis.asyncio.Redis.from_url``
            (``ssl_ca_certs``, ``password``...).
        logger: Logger, or its name; ``fastws.pubsub`` by default.

    Raises:
        ValueError: If ``url`` is not a Redis URL, or a bound is not positive.
        ImportError: If ``url`` is given and the ``redis`` package is missing.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        *,
        stream: str = DEFAULT_STREAM,
        retention: int = 100_000,
        max_buffer: int = 10_000,
        max_buffer_bytes: int = 64 * 2**20,
        replay: float = 10.0,
        close_timeout: float = 10.0,
        redis_options: Optional[Mapping[str, Any]] = None,
        logger: Union[logging.Logger, str, None] = None,
    ) -> None:
        for name, value in (
            ("retention", retention),
            ("max_buffer", max_buffer),
            ("max_buffer_bytes", max_buffer_bytes),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if replay < 0:
            raise ValueError(f"replay must be >= 0, got {replay}")
        if close_timeout < 0:
            raise ValueError(f"close_timeout must be >= 0, got {close_timeout}")
        if isinstance(logger, logging.Logger):
            self.logger = logger
        else:
            self.logger = logging.getLogger(logger or "fastws.pubsub")
        #: What this PubSub did: see :class:`~fastws.pubsub.topics.Counters`.
        self.counters = Counters()
        self.url = url
        self.close_timeout = close_timeout
        self._topics = Topics(self.counters, self.logger)
        self._started = False
        self._closed = False
        self._redis: Any = None
        if url is not None:
            from .streams import RedisStreams, shown_url

            if not url.lower().startswith(("redis://", "rediss://", "unix://")):
                raise ValueError(f"expected a redis://, rediss:// or unix:// URL, got {shown_url(url)!r}")

            self._redis = RedisStreams(
                url,
                stream=stream,
                retention=retention,
                max_buffer=max_buffer,
                max_buffer_bytes=max_buffer_bytes,
                replay=replay,
                redis_options=redis_options,
                topics=self._topics,
                counters=self.counters,
                logger=self.logger,
            )

    def __repr__(self) -> str:
        where = "this process" if self._redis is None else self._redis._shown_url()
        return f"<PubSub {where}, {len(self._topics.topics())} topics>"

    # --- life -----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to Redis and start reading (nothing to do without Redis).

        Raises:
            PubSubError: If Redis cannot be reached, or if this PubSub was
                started or closed already.
        """
        if self._started or self._closed:
            raise PubSubError("a PubSub starts once")
        if self._redis is not None:
            await self._redis.start()
        self._started = True

    async def close(self) -> None:
        """Stop: wait up to ``close_timeout`` for Redis to take the messages
        still waiting (their publishers' ``publish()`` raises
        :class:`~fastws.exceptions.PubSubError` past it), then disconnect and
        forget every subscription. Connections stay open."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._redis is not None and self._started:
                await self._redis.close(self.close_timeout)
        finally:
            self._topics.clear()

    async def __aenter__(self) -> PubSub:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    # --- subscriptions --------------------------------------------------------------

    def subscribe(self, connection: Any, topic: str) -> None:
        """Subscribe ``connection`` to ``topic``; it gets what is published there from now on.

        Args:
            connection: A fastws connection (a ``serve()`` handler's argument,
                a :class:`~fastws.Listener`'s connection) or, on fastws's
                uvicorn backend, an ASGI WebSocket (Starlette's or FastAPI's
                ``WebSocket``, a Channels consumer, or the scope itself).
            topic: Any string.

        Raises:
            TypeError: If ``connection`` is none of these, or ``topic`` is not a string.
            PubSubError: If this PubSub is closed.
        """
        if self._closed:
            raise PubSubError("subscribe on a closed PubSub")
        self._topics.subscribe(as_connection(connection), _check_topic(topic))

    def unsubscribe(self, connection: Any, topic: str) -> None:
        """Take ``connection`` out of ``topic`` (nothing happens if it was not in it)."""
        self._topics.unsubscribe(as_connection(connection), _check_topic(topic))

    def unsubscribe_all(self, connection: Any) -> None:
        """Take ``connection`` out of every topic (closing does this by itself)."""
        self._topics.leave_all(as_connection(connection))

    def topics(self, connection: Any = None) -> FrozenSet[str]:
        """The topics ``connection`` is subscribed to; with no argument, every
        topic with a subscriber in this process."""
        if connection is None:
            return self._topics.topics()
        return self._topics.topics_of(as_connection(connection))

    def subscribers(self, topic: str) -> FrozenSet[Any]:
        """The connections of this process subscribed to ``topic``."""
        return self._topics.subscribers(topic)

    # --- publishing -----------------------------------------------------------------

    async def publish(self, topic: str, message: Message, *, text: Optional[bool] = None) -> None:
        """Publish ``message`` to every subscriber of ``topic``.

        Without Redis, the message is written to this process's subscribers
        before this returns. With Redis, this returns once Redis has taken it:
        while Redis is away, the message waits in a buffer of ``max_buffer``
        messages and goes out when Redis is back. Cancelling the wait does not
        take the message back.

        Args:
            topic: The topic.
            message: ``str`` for a text message, bytes-like for binary.
            text: True sends bytes-like as text (the caller vouches that it is
                UTF-8), False sends ``str`` as binary; None goes by the type.

        Raises:
            PublishBufferFull: If the buffer for Redis is full.
            PubSubError: If this PubSub is closed, or, with Redis, not started,
                closed before Redis took the message, or if Redis refused it
                for good (the stream's key holds another type...).
            TypeError: If ``message`` is neither ``str`` nor bytes-like.
        """
        future = self._publish(topic, message, text, wait=True)
        if future is not None:
            await future

    def publish_nowait(self, topic: str, message: Message, *, text: Optional[bool] = None) -> None:
        """:meth:`publish` without waiting for Redis, for code that cannot
        await (a :class:`~fastws.Listener`'s callbacks). Messages still go out
        in the order they were published.

        Raises:
            PublishBufferFull: If the buffer for Redis is full.
            PubSubError: If this PubSub is closed, or, with Redis, not started.
            TypeError: If ``message`` is neither ``str`` nor bytes-like.
        """
        self._publish(topic, message, text, wait=False)

    def _publish(self, topic: str, message: Message, text: Optional[bool], *, wait: bool) -> Optional[asyncio.Future]:
        _check_topic(topic)
        opcode = message_opcode(message, text)
        if self._closed:
            raise PubSubError("publish on a closed PubSub")
        if self._redis is None:
            self.counters.published += 1
            self.counters.received += 1
            self._topics.deliver(topic, opcode, message)
            return None
        if not self._started:
            raise PubSubError("publish before start(): use async with PubSub(...) or await start()")
        payload = message.encode() if isinstance(message, str) else bytes(message)
        future = self._redis.publish(topic, opcode, payload, wait=wait)
        self.counters.published += 1
        return future

    @property
    def buffered(self) -> int:
        """Messages published that Redis has not taken yet (0 without Redis)."""
        return 0 if self._redis is None else int(self._redis.buffered)


def _check_topic(topic: Any) -> str:
    if not isinstance(topic, str):
        raise TypeError(f"topic must be a str, not {type(topic).__name__}")
    return topic

"""Topics across processes and hosts, through one Redis stream.

Every publish becomes one entry of the stream (``XADD ... MAXLEN ~ retention``):
the publisher's identity, its sequence number, the topic, the kind of message
and the payload. Every process reads the stream from where it last was
(``XREAD BLOCK``) and hands each entry to its own topics, where the frame is
built once and written to the subscribers. So:

- Order: one writer task per process sends entries in the order they were
  published, retrying a batch as a whole, and every reader reads the stream in
  order: each publisher's messages arrive in the order it published them.
- No duplicates: a reader drops an entry whose sequence number it has passed
  already (a batch sent again after a lost reply, or replayed after a restart).
- Nothing published while Redis is away is lost: the entry waits in the
  publisher's buffer, bounded, and goes out once Redis is back; the readers
  resume from the last entry they saw. Entries Redis had taken but lost by
  restarting without persistence are published again from each publisher's
  replay window (the entries Redis took in the last ``replay`` seconds), which
  the readers' numbering makes harmless.
- Bounded memory: the stream keeps about ``retention`` entries; a reader that
  falls further behind skips to the oldest entry kept and counts what it
  missed from the gaps in each publisher's numbering.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import urllib.parse
from typing import Any, Callable, Deque, Dict, Iterator, List, Mapping, Optional, Tuple, Type

from ..exceptions import PublishBufferFull, PubSubError
from ..frames import Opcode
from ..retry import backoff
from .topics import Counters, Topics

__all__ = ["RedisStreams"]

#: Entries sent to Redis in one pipeline, and read in one XREAD.
BATCH = 512
#: Milliseconds an XREAD waits for entries before asking again.
BLOCK_MS = 5000
#: Publishers whose numbering a reader remembers (least recently heard from forgotten first).
PUBLISHERS_REMEMBERED = 65536

_TEXT, _BINARY = b"t", b"b"

#: Error replies to a command that Redis may take later (unmapped by redis-py).
_PASSING_PREFIXES = ("OOM", "MISCONF", "READONLY", "LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "NOREPLICAS")


class _Entry:
    __slots__ = ("fields", "size", "future")

    def __init__(self, fields: dict, size: int, future: Optional[asyncio.Future]) -> None:
        self.fields = fields
        self.size = size
        self.future = future


def _connection_errors() -> Tuple[Type[BaseException], ...]:
    from redis.exceptions import ConnectionError, TimeoutError

    return (ConnectionError, TimeoutError, OSError, asyncio.TimeoutError)


class RedisStreams:
    """The Redis side of a :class:`fastws.PubSub`: one writer, one reader."""

    def __init__(
        self,
        url: str,
        *,
        stream: str,
        retention: int,
        max_buffer: int,
        max_buffer_bytes: int,
        replay: float,
        redis_options: Optional[Mapping[str, Any]],
        topics: Topics,
        counters: Counters,
        logger: logging.Logger,
    ) -> None:
        try:
            import redis.asyncio  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                "fastws.PubSub with a Redis URL needs the redis package: pip install 'fastws[redis]'"
            ) from exc
        self.url = url
        self.stream = stream
        self.retention = retention
        self.max_buffer = max_buffer
        self.max_buffer_bytes = max_buffer_bytes
        self.replay = replay
        self.redis_options = dict(redis_options or {})
        self.topics = topics
        self.counters = counters
        self.logger = logger
        self.publisher = os.urandom(8).hex().encode()
        self.sequence = 0
        # published, not yet taken by Redis, in order
        self._pending: Deque[_Entry] = collections.deque()
        self._pending_bytes = 0
        # taken by Redis: (when, entry), to publish again if Redis restarts
        self._replay: Deque[Tuple[float, _Entry]] = collections.deque()
        self._replay_bytes = 0
        # made in start(): before Python 3.10 an Event binds to a loop when made
        self._wakeup: asyncio.Event = None  # type: ignore[assignment]  # set: something is pending
        self._emptied: asyncio.Event = None  # type: ignore[assignment]  # set: nothing is pending
        self._last_id: bytes = b"0-0"
        # The run_id of a Redis server changes when it restarts. Each side keeps
        # the one it has dealt with ("known") and the one its connection hook saw
        # last ("seen"); a hook that sees a new one fails the command under way,
        # so that the side deals with the new server before sending anything.
        self._known_run_id: Dict[str, Optional[str]] = {"writer": None, "reader": None}
        self._seen_run_id: Dict[str, Optional[str]] = {"writer": None, "reader": None}
        self._connections_made: Dict[str, int] = {"writer": 0, "reader": 0}
        self._check_writer = False  # the reader saw a restart: the writer looks too
        self._info_allowed = True  # False once Redis refused INFO (an ACL)
        self._closing = False
        self._seen: collections.OrderedDict[bytes, int] = collections.OrderedDict()
        self._tasks: List[asyncio.Task] = []
        self._writer: Any = None
        self._reader: Any = None
        self._errors = _connection_errors()

    def _client(self, side: str, *, socket_timeout: Optional[float]) -> Any:
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        options: dict = {"socket_timeout": socket_timeout, "socket_connect_timeout": 5.0}
        options.update(self.redis_options)
        # Reconnection is ours (with backoff, and knowing what to send again).
        options["retry"] = Retry(NoBackoff(), 0)
        options["decode_responses"] = False
        options["redis_connect_func"] = self._connect_hook(side)
        options.setdefault("client_name", f"fastws-pubsub-{side}-{self.publisher.decode()}")
        return redis.asyncio.Redis.from_url(self.url, **options)

    def _connect_hook(self, side: str) -> Callable[[Any], Any]:
        """What runs on each connection redis-py makes for ``side``, before its
        first command: a connection made again silently (redis-py replaces a
        dead idle connection by itself) must not hide a restarted Redis."""
        from redis.exceptions import ConnectionError, ResponseError

        async def on_connect(connection: Any) -> None:
            await connection.on_connect()
            info: Any = ""
            if self._info_allowed:
                await connection.send_command("INFO", "server")
                try:
                    info = await connection.read_response()
                except ResponseError as exc:  # NOPERM: INFO is in ACL's @dangerous
                    self._info_allowed = False
                    self.logger.warning(
                        "cannot run INFO on Redis at %s (%s): a restart of Redis will not be"
                        " noticed, nor the messages it lost published again; allow the user +info",
                        self._shown_url(), exc,
                    )
            if isinstance(info, (bytes, bytearray)):
                info = bytes(info).decode("utf-8", "replace")
            run_id = _run_id(str(info))
            self._seen_run_id[side] = run_id
            known = self._known_run_id[side]
            if known is not None and run_id != known:
                if side == "reader":
                    self._check_writer = True  # a quiet writer would not notice
                    self._wakeup.set()
                raise ConnectionError(f"Redis at {self._shown_url()} restarted")
            self._connections_made[side] += 1
            if self._connections_made[side] > 1:
                self.counters.reconnections += 1

        return on_connect

    # --- life -----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, find where the stream ends, start the writer and the reader.

        Raises:
            PubSubError: If Redis cannot be reached.
        """
        self._wakeup = asyncio.Event()
        self._emptied = asyncio.Event()
        self._writer = self._client("writer", socket_timeout=10.0)
        self._reader = self._client("reader", socket_timeout=BLOCK_MS / 1000 + 10.0)
        try:
            self._last_id = await self._stream_end(self._writer)
            run_id = self._seen_run_id["writer"]
            self._known_run_id = {"writer": run_id, "reader": run_id}
        except Exception as exc:  # unreachable, refused (NOAUTH, NOPERM...)
            await self._close_clients()
            raise PubSubError(f"cannot reach Redis at {self._shown_url()}: {exc}") from exc
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._write_loop(), name="fastws.PubSub writer"),
            loop.create_task(self._read_loop(), name="fastws.PubSub reader"),
        ]

    async def close(self, timeout: Optional[float]) -> None:
        """Wait up to ``timeout`` seconds for Redis to take what is pending, then
        stop (also when the wait is cancelled)."""
        try:
            if self._pending and self._tasks:
                try:
                    await asyncio.wait_for(self._emptied.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
        finally:
            self._closing = True
            await self._stop_tasks()
            self._fail_pending()
            await self._close_clients()

    def _fail_pending(self) -> None:
        if self._pending:
            self.logger.error(
                "closed with %d messages Redis never took (at %s)", len(self._pending), self._shown_url()
            )
        while self._pending:
            future = self._pending.popleft().future
            if future is not None and not future.done():
                future.set_exception(PubSubError("the PubSub closed before Redis took the message"))
        self._pending_bytes = 0
        self._replay.clear()
        self._replay_bytes = 0

    async def _stop_tasks(self) -> None:
        """Cancel the writer and the reader until they end: a cancellation that
        lands as a command completes can be lost in redis-py's timeouts
        (``asyncio.wait_for`` before Python 3.12), so once is not enough."""
        pending = set(self._tasks)
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.1)
        for task in self._tasks:
            if not task.cancelled() and task.exception() is not None:
                self.logger.error("the PubSub's %s failed", task.get_name(), exc_info=task.exception())
        self._tasks = []

    async def _close_clients(self) -> None:
        for client in (self._writer, self._reader):
            if client is not None:
                try:
                    await client.aclose()
                except Exception:  # pragma: no cover - closing a broken client
                    pass
        self._writer = self._reader = None

    def _shown_url(self) -> str:
        return shown_url(self.url)

    async def _stream_end(self, client: Any) -> bytes:
        last = await client.xrevrange(self.stream, count=1)
        return last[0][0] if last else b"0-0"

    # --- publishing -----------------------------------------------------------------

    def publish(self, topic: str, opcode: Opcode, payload: bytes, *, wait: bool) -> Optional[asyncio.Future]:
        """Queue one entry for the writer; a future that Redis taking it resolves, if ``wait``.

        Raises:
            PublishBufferFull: If the buffer is full.
        """
        size = len(payload) + len(topic)
        if len(self._pending) >= self.max_buffer or self._pending_bytes + size > self.max_buffer_bytes:
            raise PublishBufferFull(
                f"{len(self._pending)} messages ({self._pending_bytes} bytes) are waiting for Redis at"
                f" {self._shown_url()} already (max_buffer={self.max_buffer},"
                f" max_buffer_bytes={self.max_buffer_bytes}): Redis is away or slower than the publishers"
            )
        self.sequence += 1
        fields = {
            b"p": self.publisher,
            b"s": self.sequence,
            b"t": topic.encode(),
            b"k": _TEXT if opcode is Opcode.TEXT else _BINARY,
            b"d": payload,
        }
        future = asyncio.get_running_loop().create_future() if wait else None
        self._pending.append(_Entry(fields, size, future))
        self._pending_bytes += size
        self._wakeup.set()
        self._emptied.clear()
        return future

    async def _write_loop(self) -> None:
        delays: Optional[Iterator[float]] = None
        while not self._closing:
            if self._seen_run_id["writer"] != self._known_run_id["writer"]:
                self._known_run_id["writer"] = self._seen_run_id["writer"]
                self._replay_all()
            if not self._pending and not self._check_writer:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            try:
                if self._check_writer:
                    self._check_writer = False
                    await self._writer.ping()  # a new connection, if need be, sees the new Redis
                if self._pending:
                    batch = list(itertools.islice(self._pending, BATCH))
                    pipe = self._writer.pipeline(transaction=False)
                    for entry in batch:
                        pipe.xadd(self.stream, entry.fields, maxlen=self.retention, approximate=True)
                    results = await pipe.execute(raise_on_error=False)
                    refused = self._settle(batch, results)
                else:
                    refused = None
            except self._errors as exc:
                if delays is None:
                    self.logger.warning(
                        "lost Redis at %s while publishing (%s); %d messages wait",
                        self._shown_url(), exc or type(exc).__name__, len(self._pending),
                    )
                    delays = _backoff()
                await asyncio.sleep(next(delays))
                continue
            except Exception as exc:  # not a reply to an XADD: a PING refused...
                if delays is None:
                    self.logger.error("cannot use Redis at %s: %s", self._shown_url(), exc)
                    delays = _backoff()
                await asyncio.sleep(next(delays))
                continue
            if refused is not None:  # Redis cannot take more now: OOM, MISCONF...
                if delays is None:
                    self.logger.warning(
                        "Redis at %s takes no messages for now (%s); %d messages wait",
                        self._shown_url(), refused, len(self._pending),
                    )
                    delays = _backoff()
                await asyncio.sleep(next(delays))
                continue
            if delays is not None:
                self.logger.info("publishing to Redis at %s again", self._shown_url())
                delays = None

    def _settle(self, batch: List[_Entry], results: List[Any]) -> Optional[Exception]:
        """Take the replies to a batch of XADDs, in order: an entry Redis took
        is done; one it refused for good (WRONGTYPE...) fails its publish();
        at the first refusal that passes (out of memory, read-only...), it and
        the ones after it stay pending, and that refusal is returned."""
        now = asyncio.get_running_loop().time()
        for entry, result in zip(batch, results):
            if isinstance(result, Exception):
                if _passing(result):
                    return result
                self.logger.error("Redis refused a message: %s", result)
                if entry.future is not None and not entry.future.done():
                    entry.future.set_exception(PubSubError(f"Redis refused the message: {result}"))
                self._forget_pending()
                continue
            self._forget_pending()
            if entry.future is not None and not entry.future.done():
                entry.future.set_result(None)
            self._replay.append((now, entry))
            self._replay_bytes += entry.size
        self._trim_replay(now)
        if not self._pending:
            self._emptied.set()
        return None

    def _forget_pending(self) -> None:
        entry = self._pending.popleft()
        self._pending_bytes -= entry.size

    def _trim_replay(self, now: float) -> None:
        replay = self._replay
        while replay and (
            replay[0][0] < now - self.replay
            or len(replay) > self.max_buffer
            or self._replay_bytes > self.max_buffer_bytes
        ):
            self._replay_bytes -= replay.popleft()[1].size

    def _replay_all(self) -> None:
        """A new Redis: what the old one took but nobody may have read yet is
        gone with it (without persistence). Publish it again, first."""
        self._trim_replay(asyncio.get_running_loop().time())
        again = [entry for _, entry in self._replay]
        for entry in reversed(again):
            entry.future = None
            self._pending.appendleft(entry)
            self._pending_bytes += entry.size
        self._replay.clear()
        self._replay_bytes = 0
        if again:
            self._emptied.clear()
        self.logger.warning(
            "Redis at %s restarted: publishing again the %d messages it took in the last %g s",
            self._shown_url(), len(again), self.replay,
        )

    # --- reading --------------------------------------------------------------------

    async def _read_loop(self) -> None:
        delays: Optional[Iterator[float]] = None
        stream = self.stream
        check_end = False
        while not self._closing:
            try:
                seen = self._seen_run_id["reader"]
                if seen is not None and seen != self._known_run_id["reader"]:
                    self._known_run_id["reader"] = seen
                    check_end = True
                if check_end:
                    end = await self._stream_end(self._reader)
                    if _id_key(end) < _id_key(self._last_id):
                        # The stream was made anew (Redis lost it): all of it is new.
                        self._last_id = b"0-0"
                    check_end = False
                reply = await self._reader.xread({stream: self._last_id}, count=BATCH, block=BLOCK_MS)
            except self._errors as exc:
                if delays is None:
                    self.logger.warning(
                        "lost Redis at %s while reading (%s)", self._shown_url(), exc or type(exc).__name__
                    )
                    delays = _backoff()
                await asyncio.sleep(next(delays))
                continue
            except Exception as exc:  # WRONGTYPE, a missing permission...
                if delays is None:
                    self.logger.error("cannot read stream %r from Redis at %s: %s", stream, self._shown_url(), exc)
                    delays = _backoff()
                await asyncio.sleep(next(delays))
                continue
            if delays is not None:
                self.logger.info("reading from Redis at %s again", self._shown_url())
                delays = None
            if not reply:
                continue
            for _, entries in reply.items() if isinstance(reply, dict) else reply:
                for entry_id, fields in entries:
                    self._last_id = entry_id
                    try:
                        self._received(fields)
                    except Exception:
                        self.logger.exception("failed to deliver entry %s", entry_id)

    def _received(self, fields: Mapping[bytes, bytes]) -> None:
        publisher = fields[b"p"]
        sequence = int(fields[b"s"])
        seen = self._seen
        last = seen.get(publisher)
        if last is not None:
            if sequence <= last:
                self.counters.duplicates += 1
                return
            if sequence > last + 1:
                missed = sequence - last - 1
                self.counters.missed += missed
                self.logger.warning(
                    "missed %d messages of publisher %s: this process fell further behind than"
                    " the stream keeps (retention=%d), or Redis lost them",
                    missed, publisher.decode(), self.retention,
                )
            seen.move_to_end(publisher)
        elif len(seen) >= PUBLISHERS_REMEMBERED:
            seen.popitem(last=False)
        seen[publisher] = sequence
        self.counters.received += 1
        opcode = Opcode.TEXT if fields[b"k"] == _TEXT else Opcode.BINARY
        self.topics.deliver(fields[b"t"].decode(), opcode, fields[b"d"])

    @property
    def buffered(self) -> int:
        """Messages published that Redis has not taken yet."""
        return len(self._pending)


def shown_url(url: str) -> str:
    """``url`` without credentials, for logs and errors: no user or password
    before the host, no ``password`` or ``username`` in the query."""
    if "://" not in url:
        # not a URL: what may hold credentials goes (before an @, a query)
        return url.rpartition("@")[2].partition("?")[0]
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = urllib.parse.urlencode(
        [
            (name, value)
            for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
            if name.lower() not in ("password", "username")
        ]
    )
    shown = f"{parts.scheme}://{netloc}{parts.path}"
    return f"{shown}?{query}" if query else shown


def _backoff() -> Iterator[float]:
    return backoff(initial_delay=0.1, min_delay=0.1, max_delay=5.0, factor=2.0)


def _passing(error: Exception) -> bool:
    """Whether Redis may take the command later: out of memory, read-only,
    loading, busy, unable to persist..."""
    from redis import exceptions

    passing = tuple(
        getattr(exceptions, name)
        for name in ("OutOfMemoryError", "ReadOnlyError", "BusyLoadingError")
        if hasattr(exceptions, name)
    )
    if isinstance(error, passing):
        return True
    return str(error).startswith(_PASSING_PREFIXES)


def _run_id(info: str) -> Optional[str]:
    for line in info.splitlines():
        if line.startswith("run_id:"):
            return line[7:].strip()
    return None


def _id_key(entry_id: bytes) -> Tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition(b"-")
    return int(milliseconds), int(sequence or 0)

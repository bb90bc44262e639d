"""A WebSocket connection on asyncio.

:class:`Connection` is an :class:`asyncio.BufferedProtocol`: the event loop reads
into a buffer shared by the loop's connections, and the connection's hot methods
(:mod:`fastws.asyncio.fastpath`: compiled, or their pure-Python twin) parse it
with the codec's parser, hand plain messages over at once and give everything
else to a sans-I/O :class:`fastws.protocol.Protocol`, then write what it wants to
send. No streams, no task per message: ``recv()`` waits on one future, messages
wait in a deque, and a :class:`Listener` gets each message called straight from
the parser loop. The fast path holds the state it reads and writes (the
protocol, the transport, the Listener, the queue of ``recv()``) and calls back
four methods of the connection: ``_received``, ``_listener_failed``,
``_flush`` and ``_closed_exc``.

Limits and flow control:

- ``max_queue``: messages received and not yet read by ``recv()``; past it,
  reading from the socket pauses (``pause_reading``) until the queue drains to a
  quarter of it, so a slow consumer holds at most ``max_queue`` messages of
  ``max_size`` bytes;
- ``write_limit``: ``send()`` returns at once while the transport buffers less
  than this, and waits for it to drain below a quarter otherwise;
- ``ping_interval`` / ``ping_timeout``: keepalive pings; a pong that does not
  come in time fails the connection with 1011;
- ``close_timeout``: how long the closing handshake may take before TCP is
  closed anyway (then aborted after as long again).

A protocol error of the peer comes in order, after the messages received before
it (the protocol runs with ``defer_failure``): reading stops at once, and the
close frame goes out when the application has taken those messages, that is on
its first suspension after the ``recv()`` that returned the last of them (at
once when there are none, and right after the callbacks with a
:class:`Listener`), or after ``close_timeout`` if the application does not read
them. Replies to those messages are sent before the close frame, as a peer that
sent them in good faith expects.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
import uuid
import weakref
from typing import (
    Any,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Optional,
    Union,
    cast,
)

from ..events import Close, Ping, Pong
from ..exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidState,
)
from ..frames import OK_CLOSE_CODES, CloseCode
from ..limits import LoggerLike, QueueLimit, WriteLimit, queue_limits, resolve_logger, write_limits
from ..protocol import CLIENT, CLOSING, CONNECTING, OPEN, SERVER, Protocol, State
from . import fastpath
from .broadcasting import broadcast, broadcast_many
from .fastpath import FastPath
from .listener import Listener

# Listener and broadcast live in their own modules; imported from here too.
__all__ = ["Connection", "Listener", "broadcast", "broadcast_many", "Data"]

logger = logging.getLogger("fastws")
#: The loggers of connections that are given none: children of ``fastws``.
_SIDE_LOGGERS = {SERVER: "fastws.server", CLIENT: "fastws.client"}

Data = Union[str, bytes]

_CLOSED = object()  # resolves a waiting recv() when the connection ends
NO_MESSAGES: tuple = ()  # the empty queue of recv() (see FastPath._messages)
_OK_CODES = OK_CLOSE_CODES


class _TextBytes:
    """Bytes to send in a text frame: ``send(message, text=True)``."""

    __slots__ = ("data",)

    def __init__(self, data: Any) -> None:
        self.data = data


def _retype_one(fragment: Any, text: bool) -> Any:
    if isinstance(fragment, str):
        return fragment if text else fragment.encode("utf-8")
    if text and isinstance(fragment, (bytes, bytearray, memoryview)):
        return _TextBytes(fragment)
    return fragment  # bytes-like for binary as it is; anything else fails in send()


async def _retype_async(fragments: AsyncIterable[Any], text: bool) -> AsyncIterator[Any]:
    async for fragment in fragments:
        yield _retype_one(fragment, text)


def _retype(message: Any, text: bool) -> Any:
    """``message`` (or each of its fragments) as ``send(message, text=text)``
    sends it: ``str`` encoded for binary, bytes-like marked for text."""
    if isinstance(message, (str, bytes, bytearray, memoryview, dict)):
        return _retype_one(message, text)
    if hasattr(message, "__aiter__"):
        return _retype_async(message, text)
    if hasattr(message, "__iter__"):
        return (_retype_one(fragment, text) for fragment in message)
    return message


# One read buffer per event loop, shared by all its connections: the loop reads
# into it and hands it to one connection at a time (get_buffer, recv_into,
# buffer_updated run back to back), and the parser copies out what it keeps.
# A fresh 256 KiB bytes object per read (asyncio.Protocol) costs an mmap, a
# page fault and an munmap on every read of a small message.
_READ_SIZE = 256 * 1024
_read_buffers: weakref.WeakKeyDictionary[Any, memoryview] = weakref.WeakKeyDictionary()


def _read_buffer(loop) -> memoryview:
    buffer = _read_buffers.get(loop)
    if buffer is None:
        buffer = _read_buffers[loop] = memoryview(bytearray(_READ_SIZE))
    return buffer


class Connection(FastPath, asyncio.BufferedProtocol):
    """One WebSocket connection, server or client side.

    Attributes: :attr:`protocol` (the sans-I/O state machine), :attr:`request`,
    :attr:`response`, :attr:`subprotocol`, :attr:`state`, :attr:`close_code`,
    :attr:`close_reason`, :attr:`latency` (seconds, from the last pong),
    :attr:`remote_address`, :attr:`local_address`.
    """

    #: Round-trip time of the last ping answered, in seconds. (A class
    #: default: the instance has its own once a pong came. CPython shares the
    #: keys of instance dicts up to 30 of them; a server's connections have
    #: about that many, and each one past it costs 1.3 KB per connection.)
    latency: float = 0.0

    def __init__(
        self,
        protocol: Protocol,
        *,
        ping_interval: Optional[float] = 20,
        ping_timeout: Optional[float] = 20,
        close_timeout: Optional[float] = 10,
        max_queue: QueueLimit = 16,
        write_limit: WriteLimit = 32768,
        listener: Optional[Listener] = None,
        logger: LoggerLike = None,
    ) -> None:
        queue_high, queue_low = queue_limits(max_queue)
        write_high, write_low = write_limits(write_limit)
        self.loop = asyncio.get_running_loop()
        self._init_fast_path(protocol, listener, queue_high, _read_buffer(self.loop))
        self._queue_low = 0 if queue_low is None else queue_low
        # What a server holds per open connection counts: the identifier and
        # the logger adapter are made when first used (see id and logger), the
        # containers of pings and writers waiting for a drain when first needed.
        self._id: Optional[uuid.UUID] = None
        self._logger: Union[logging.Logger, logging.LoggerAdapter[Any]] = resolve_logger(
            logger, _SIDE_LOGGERS[protocol.side]
        )
        # Messages are handed over asynchronously: a failure waits for them.
        protocol.defer_failure = True
        # Frames that come in the same read as the opening handshake go through
        # the fast path too, once the connection is open (_read_trailing).
        protocol.defer_trailing = True
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        #: The transport's buffer size above which ``send()`` waits.
        self.write_limit = write_high
        #: The size it must drain below for ``send()`` to go on.
        self.write_limit_low = write_low
        # How several chunks are written (set with the transport): None for
        # transport.writelines(), or a function of the chunks.
        self._writelines: Any = None
        self._writing_paused = False
        self._drain_waiters: Optional[list] = None
        self._send_lock: Optional[asyncio.Future] = None  # a fragmented send() in progress
        self._pings: Optional[dict] = None  # payload -> (future, time sent)
        # The futures _opened and _closed are made when first asked for (an
        # idle connection of a server holds neither): until then _open_state
        # (None: opening, True: open, an exception: the handshake failed) and
        # _gone (connection_lost() ran) say what they would.
        self._opened_future: Optional[asyncio.Future] = None
        self._closed_future: Optional[asyncio.Future] = None
        self._open_state: Union[None, bool, BaseException] = None
        self._gone = False
        self._close_timer: Optional[asyncio.TimerHandle] = None
        self._close_stage = 0  # 1: waiting for the peer, 2: transport.close() sent
        self._failure_timer: Optional[asyncio.TimerHandle] = None  # see _schedule_failure
        self._keepalive: Optional[asyncio.TimerHandle] = None

    # --- attributes ---------------------------------------------------------------

    @property
    def id(self) -> uuid.UUID:
        """A unique identifier of the connection, for logs (a random UUID,
        made when first read)."""
        ident = self._id
        if ident is None:
            ident = self._id = uuid.uuid4()
        return ident

    @id.setter
    def id(self, value: uuid.UUID) -> None:
        self._id = value

    @property
    def logger(self) -> logging.LoggerAdapter[Any]:
        """The connection's logger: a :class:`logging.LoggerAdapter` whose
        records carry the connection as ``websocket``; on the ``fastws.server``
        or ``fastws.client`` logger unless the ``logger`` option names another."""
        adapter = self._logger
        if not isinstance(adapter, logging.LoggerAdapter):
            adapter = self._logger = logging.LoggerAdapter(adapter, {"websocket": self})
        return adapter

    @logger.setter
    def logger(self, logger: LoggerLike) -> None:
        if isinstance(logger, logging.LoggerAdapter):
            self._logger = logger
        else:
            self._logger = resolve_logger(logger, _SIDE_LOGGERS[self.protocol.side])

    @property
    def state(self) -> State:
        return self.protocol.state

    @property
    def request(self) -> Any:
        """The opening handshake's :class:`~fastws.http11.Request`, on the
        server side (None until it came)."""
        return getattr(self.protocol, "request", None)

    @property
    def response(self) -> Any:
        """The opening handshake's :class:`~fastws.http11.Response`, on the
        client side (None until it came)."""
        return getattr(self.protocol, "response", None)

    @property
    def subprotocol(self) -> Optional[str]:
        return self.protocol.subprotocol

    @property
    def close_code(self) -> Optional[int]:
        """Code of the close frame received (1006 if the connection ended without
        one); None while the connection is open."""
        return self.protocol.close_code

    @property
    def close_reason(self) -> Optional[str]:
        return self.protocol.close_reason

    @property
    def remote_address(self) -> Any:
        return None if self.transport is None else self.transport.get_extra_info("peername")

    @property
    def local_address(self) -> Any:
        return None if self.transport is None else self.transport.get_extra_info("sockname")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.state.name} {self.remote_address}>"

    # --- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=self.write_limit, low=self.write_limit_low)
        writelines = type(transport).writelines
        if getattr(writelines, "__module__", "").startswith("asyncio."):
            # asyncio's own writelines() joins the chunks (before 3.12: a copy
            # of the payload that chunks_to_send() left uncopied), or never
            # pauses the protocol (3.12 and 3.13: no backpressure). write()
            # each chunk instead: from 3.12 on, write() keeps it uncopied too.
            self._writelines = self._write_each
        else:
            # uvloop: writev. None: call it on the transport (a bound method
            # kept per connection is 64 bytes).
            self._writelines = None
        self._flush()  # a client's handshake request

    # get_buffer(), buffer_updated() and data_received(): see FastPath.

    def _received(self) -> None:
        """The protocol took bytes or frames: handle its events, schedule the
        failure it reports, write what it has to send."""
        protocol = self.protocol
        events = protocol.events_received()
        if events:
            self._handle_events(events)
        # A failure of the peer's stops reading: while the fast parser is on,
        # none is pending.
        if self._gates.fast_parser is None and protocol.pending_failure is not None:
            self._schedule_failure()
        self._flush()

    def eof_received(self) -> None:
        # Returning None closes the transport; connection_lost() does the rest.
        return None

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        protocol = self.protocol
        protocol.receive_eof()
        events = protocol.events_received()
        if events:
            self._handle_events(events)
        for handle in (self._close_timer, self._keepalive, self._failure_timer):
            if handle is not None:
                handle.cancel()
        if not self._opened_done():
            error = self._handshake_error(exc)
            opened = self._opened_future
            if opened is None:
                self._open_state = error
            else:
                opened.set_exception(error)
                opened.exception()  # whoever awaits it gets it; no "never retrieved" log
        self._gone = True
        if self._closed_future is not None:
            self._closed_future.set_result(None)
        self._wake_recv(_CLOSED)
        self._wake_writers()
        pings = self._pings
        if pings:
            closed = self._closed_exc()
            for future, _ in pings.values():
                if not future.done():
                    future.set_exception(closed)
                    future.exception()
            pings.clear()
        if self.listener is not None and self._opened_ok():
            self._call_listener("on_close", self.close_code, self.close_reason or "")

    def pause_writing(self) -> None:
        self._writing_paused = True
        # A peer that pings and does not read must not fill our memory with pongs.
        self.protocol.hold_pongs()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self.protocol.release_pongs()
        self._flush()
        self._wake_writers()

    # --- events ---------------------------------------------------------------------

    def _handle_events(self, events: list) -> None:
        listener = self.listener
        on_message = self._on_message
        if listener is not None and on_message is not None:
            # The callback interface: messages go straight to on_message.
            for event in events:
                kind = type(event)
                if kind is str or kind is bytes:
                    try:
                        on_message(self, event)
                    except Exception as exc:
                        if self._listener_failed("on_message", exc):
                            return
                elif self._handle_event(event, listener):
                    return
            return
        for event in events:
            kind = type(event)
            if kind is str or kind is bytes:
                self._enqueue(event)  # see FastPath
            else:
                self._handle_event(event, listener)

    def _handle_event(self, event, listener: Optional[Listener]) -> bool:
        """Any event but a message. True if a callback failed the connection:
        the events after it are not handled (RFC 6455 section 7.1.7)."""
        kind = type(event)
        if kind is Pong:
            self._pong_received(event.data)
            if listener is not None:
                return self._call_listener("on_pong", event.data)
        elif kind is Close:
            self._wake_recv(_CLOSED)
        elif kind is Ping:
            if listener is not None:
                return self._call_listener("on_ping", event.data)
        else:
            self._handshake_event(event)
        return False

    def _handshake_event(self, event) -> None:
        """The Request (server) or Response (client) of the opening handshake."""

    def _schedule_failure(self) -> None:
        """The peer broke the protocol after the messages now in the queue (if
        any): fail the connection once the application has taken them."""
        if self.listener is not None:
            self._apply_failure()  # its callbacks ran already
        elif not self._messages:
            # The last message (if any) went to a waiting recv(): let its
            # caller run up to its next suspension first.
            self.loop.call_soon(self._apply_failure)
        elif self._failure_timer is None and self.close_timeout is not None:
            # recv() calls this again when it hands over the last message; an
            # application that does not read gets close_timeout to do it.
            self._failure_timer = self.loop.call_later(self.close_timeout, self._apply_failure)

    def _apply_failure(self) -> None:
        if self._failure_timer is not None:
            self._failure_timer.cancel()
            self._failure_timer = None
        protocol = self.protocol
        if protocol.pending_failure is not None and not self._gone:
            protocol.fail_pending()
            self._flush()

    def _call_listener(self, name: str, *args) -> bool:
        """Call a Listener method; True if it raised and that failed the connection."""
        try:
            getattr(self.listener, name)(self, *args)
        except Exception as exc:
            return self._listener_failed(name, exc)
        return False

    def _listener_failed(self, name: str, exc: Exception) -> bool:
        """The callback ``name`` raised ``exc``: log it and fail the connection
        with 1011. True if that failed the connection (it was OPEN): nothing
        received after the failure is processed any more (RFC 6455 section
        7.1.7)."""
        self.logger.error("listener %s failed", name, exc_info=exc)
        if self.protocol.state is OPEN:
            self.protocol.fail(CloseCode.INTERNAL_ERROR, "")
            self._flush()
            return True
        return False

    def _write_each(self, chunks: list) -> None:
        write = self.transport.write
        for chunk in chunks:
            write(chunk)

    def _flush(self) -> None:
        """Write what the protocol has to send; close TCP when it says so; bound
        the closing handshake with close_timeout."""
        if self._gates.fast_send:
            return  # the common case: OPEN, and nothing to write
        protocol = self.protocol
        transport = self.transport
        out = protocol.chunks_to_send()
        if out:
            if len(out) == 1:
                transport.write(out[0])
            elif self._writelines is None:
                transport.writelines(out)
            else:
                self._writelines(out)
        if protocol.state is OPEN:
            return  # the common case: nothing to close
        if protocol.should_close_transport():
            if self._close_stage < 2:
                self._close_stage = 2
                transport.close()
                self._arm_close_timer()
        elif protocol.state is CLOSING and self._close_stage == 0:
            self._close_stage = 1
            self._arm_close_timer()
            if self._reading_paused:
                # Our close frame is out: read on, to find the peer's, even if the
                # application no longer reads (a handler that ended, a shutdown).
                self._reading_paused = False
                self.transport.resume_reading()

    def _arm_close_timer(self) -> None:
        if self.close_timeout is None or self._gone:
            return
        if self._close_timer is not None:
            self._close_timer.cancel()
        self._close_timer = self.loop.call_later(self.close_timeout, self._close_timed_out)

    def _close_timed_out(self) -> None:
        """The peer took too long: close TCP, then abort it if even that hangs
        (a peer that does not read keeps the write buffer full)."""
        self._close_timer = None
        if self._gone:
            return
        if self._close_stage < 2:
            self._close_stage = 2
            self.transport.close()
            self._arm_close_timer()
        else:
            self.transport.abort()

    @property
    def _opened(self) -> asyncio.Future:
        """Done once the opening handshake succeeded, or with its error."""
        future = self._opened_future
        if future is None:
            future = self._opened_future = self.loop.create_future()
            state = self._open_state
            if state is True:
                future.set_result(None)
            elif isinstance(state, BaseException):
                future.set_exception(state)
                future.exception()  # no "never retrieved" log
        return future

    @property
    def _closed(self) -> asyncio.Future:
        """Done once the connection is closed (connection_lost() ran)."""
        future = self._closed_future
        if future is None:
            future = self._closed_future = self.loop.create_future()
            if self._gone:
                future.set_result(None)
        return future

    def _opened_done(self) -> bool:
        future = self._opened_future
        return self._open_state is not None if future is None else future.done()

    def _opened_ok(self) -> bool:
        future = self._opened_future
        if future is None:
            return self._open_state is True
        return future.done() and not future.cancelled() and future.exception() is None

    def _handshake_error(self, exc: Optional[BaseException]) -> BaseException:
        error = self.protocol.error
        if error is not None:
            return error
        if exc is not None:
            return exc
        return ConnectionError("connection closed during the opening handshake")

    def _connection_open(self) -> None:
        """The opening handshake succeeded."""
        if not self._opened_done():
            self._open_state = True
            if self._opened_future is not None:
                self._opened_future.set_result(None)
        self._start_keepalive()
        if self.listener is not None:
            self._call_listener("on_open")

    # --- receiving --------------------------------------------------------------------

    def _wake_recv(self, value) -> None:
        waiter = self._recv_waiter
        if waiter is not None:
            self._recv_waiter = None
            if not waiter.done():
                waiter.set_result(value)

    async def recv(self, decode: Optional[bool] = None) -> Data:
        """The next message: ``str`` for text, ``bytes`` for binary.

        Args:
            decode: None (the default) returns text as ``str`` and binary as
                ``bytes``; True returns both as ``str`` (binary decoded as
                UTF-8); False returns both as ``bytes`` (text encoded back to
                UTF-8).

        Returns:
            The message.

        Raises:
            ConnectionClosedOK: Once the connection closed normally and every
                message received before was read.
            ConnectionClosedError: The same, after an abnormal close.
            ConcurrencyError: If another coroutine is already waiting in recv().

        With ``decode=True``, a binary message that is not UTF-8 fails the
        connection with 1007, and ConnectionClosedError is raised.
        """
        # One coroutine, no helper awaited: recv() is on the hot path.
        messages = self._messages
        if messages:
            message = messages.popleft()  # type: ignore[union-attr]
            if not messages:
                self._messages = NO_MESSAGES  # an idle connection holds no deque
                if self.protocol.pending_failure is not None:
                    self._schedule_failure()
            if self._reading_paused and self.max_queue is not None and len(messages) <= self._queue_low:
                self._reading_paused = False
                if not self._gone:
                    self.transport.resume_reading()
        else:
            if self.protocol.close_rcvd is not None or self._gone:
                raise self._closed_exc()
            if self._recv_waiter is not None:
                raise ConcurrencyError("cannot call recv() while another coroutine is already in recv()")
            if self.listener is not None:
                raise InvalidState("recv() is not available on a connection with a Listener")
            waiter = self._recv_waiter = self.loop.create_future()
            try:
                message = await waiter
            finally:
                if self._recv_waiter is waiter:
                    self._recv_waiter = None
            if message is _CLOSED:
                raise self._closed_exc()
        if decode is None:
            return message
        if isinstance(message, str):
            return message if decode else message.encode("utf-8")
        if not decode:
            return message
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError as exc:
            # As websockets does: binary asked for as text that is not UTF-8
            # fails the connection with 1007.
            if self.protocol.state is OPEN:
                self.protocol.fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")
                self._flush()
            await asyncio.shield(self._closed)
            raise self._closed_exc() from exc

    async def recv_streaming(self, decode: Optional[bool] = None) -> AsyncIterator[Data]:
        """The next message, as an asynchronous iterator of its fragments.

        fastws assembles messages in the protocol (bounded by ``max_size``),
        so the whole message comes as one fragment; the shape is the one of
        ``websockets``' ``recv_streaming()``, for code written against it.

        Args:
            decode: As for :meth:`recv`.

        Raises:
            ConnectionClosed: As :meth:`recv`.
            ConcurrencyError: As :meth:`recv`.
        """
        yield await self.recv(decode)

    def __aiter__(self) -> Connection:
        return self

    def __anext__(self) -> Awaitable[Data]:
        """``async for message in connection`` ends on a normal close and raises
        :class:`ConnectionClosedError` on an abnormal one."""
        return self._next_message()

    async def _next_message(self) -> Data:
        # A handler waiting in ``async for`` holds this one coroutine, not this
        # and recv() (about 270 bytes per idle connection): the wait is recv()'s,
        # inlined; everything else goes through recv().
        if (
            self._messages
            or self._recv_waiter is not None
            or self.listener is not None
            or self.protocol.close_rcvd is not None
            or self._gone
        ):
            try:
                return await self.recv()
            except ConnectionClosedOK:
                raise StopAsyncIteration from None
        waiter = self._recv_waiter = self.loop.create_future()
        try:
            message = await waiter
        finally:
            if self._recv_waiter is waiter:
                self._recv_waiter = None
        if message is _CLOSED:
            if self._closed_normally():
                raise StopAsyncIteration  # without making the ConnectionClosedOK
            raise self._closed_exc()
        return message

    # --- sending ---------------------------------------------------------------------

    # send_nowait(): see FastPath.

    async def send(
        self,
        message: Union[Data, Iterable[Data], AsyncIterable[Data]],
        text: Optional[bool] = None,
    ) -> None:
        """Send a message: ``str`` as text, bytes-like as binary, or an iterable
        (sync or async) of such fragments, sent as one fragmented message.

        Args:
            message: The message, or its fragments.
            text: None (the default) sends ``str`` as text and bytes-like as
                binary; True sends bytes-like as text (the caller vouches that
                it is UTF-8: the peer fails the connection otherwise); False
                sends ``str`` as binary (encoded in UTF-8).

        Returns once the message is handed to the transport, waiting first if
        the transport's buffer is above ``write_limit``.

        Raises:
            ConnectionClosed: Once the connection is closing or closed.
            TypeError: If the message is not ``str``, bytes-like or an
                iterable of them.
        """
        if text is not None:
            message = _retype(message, text)
        if self._send_lock is not None:
            await self._wait_send_lock()
        if isinstance(message, (str, bytes, bytearray, memoryview)):
            self.send_nowait(message)
        elif isinstance(message, _TextBytes):
            self._send_text_bytes(message.data)
        elif isinstance(message, dict):
            raise TypeError("message must be str, bytes-like or an iterable of them, not dict")
        elif hasattr(message, "__aiter__") or hasattr(message, "__iter__"):
            await self._send_fragments(message)
            return
        else:
            raise TypeError(
                "message must be str, bytes-like or an iterable of them,"
                f" not {type(message).__name__}"
            )
        if self._writing_paused:
            await self._drain()

    def _send_text_bytes(self, data: Any) -> None:
        try:
            self.protocol.send_text(bytes(data))
        except InvalidState:
            raise self._closed_exc() from None
        self._flush()

    async def _wait_send_lock(self) -> None:
        while self._send_lock is not None:
            await asyncio.shield(self._send_lock)

    async def _send_fragments(self, fragments) -> None:
        protocol = self.protocol
        lock = self._send_lock = self.loop.create_future()
        kind = None
        try:
            if hasattr(fragments, "__aiter__"):
                async for fragment in fragments:
                    kind = await self._send_fragment(kind, fragment)
            else:
                for fragment in fragments:
                    kind = await self._send_fragment(kind, fragment)
            if kind is not None:
                try:
                    protocol.send_continuation(b"", fin=True)
                except InvalidState:
                    raise self._closed_exc() from None
                self._flush()
        except (TypeError, ValueError) as exc:
            if kind is not None and protocol.state is OPEN:
                # Half a message went out: the peer cannot make sense of the rest.
                protocol.fail(CloseCode.INTERNAL_ERROR, "error in fragmented message")
                self._flush()
            raise exc
        finally:
            self._send_lock = None
            lock.set_result(None)

    async def _send_fragment(self, kind, fragment):
        protocol = self.protocol
        is_text = type(fragment) is str
        if type(fragment) is _TextBytes:
            is_text, fragment = True, bytes(fragment.data)
        elif not is_text and not isinstance(fragment, (bytes, bytearray, memoryview)):
            raise TypeError(f"fragments must be str or bytes-like, not {type(fragment).__name__}")
        try:
            if kind is None:
                kind = str if is_text else bytes
                if is_text:
                    protocol.send_text(fragment, fin=False)
                else:
                    protocol.send_binary(fragment, fin=False)
            elif (kind is str) != is_text:
                raise TypeError("all fragments of a message must be str, or all bytes-like")
            else:
                protocol.send_continuation(fragment, fin=False)
        except InvalidState:
            raise self._closed_exc() from None
        self._flush()
        if self._writing_paused:
            await self._drain()
        return kind

    async def _drain(self) -> None:
        """Wait until the transport's buffer is below the low-water mark."""
        while self._writing_paused and not self._gone:
            waiter = self.loop.create_future()
            if self._drain_waiters is None:
                self._drain_waiters = [waiter]
            else:
                self._drain_waiters.append(waiter)
            await waiter
        if self._gone and self.protocol.state is not OPEN:
            raise self._closed_exc()

    def _wake_writers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, None
        if not waiters:
            return
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    @property
    def write_buffer_size(self) -> int:
        """Bytes written and not yet sent by the transport."""
        return 0 if self.transport is None else self.transport.get_write_buffer_size()

    # --- ping / pong -----------------------------------------------------------------

    async def ping(self, data: Optional[Data] = None) -> asyncio.Future[float]:
        """Send a ping.

        ::

            pong_waiter = await websocket.ping()
            latency = await pong_waiter  # only to wait for the pong

        Args:
            data: The payload: ``str`` (sent in UTF-8) or bytes-like, at most
                125 bytes. None (the default): 4 random bytes.

        Returns:
            A future that resolves to the round-trip time in seconds when the
            matching pong arrives (a pong also answers every ping sent before
            it). :attr:`latency` keeps the last one.

        Raises:
            ConnectionClosed: Once the connection is closing or closed.
            ConcurrencyError: If a ping with the same payload is still waiting
                for its pong.
            TypeError: If ``data`` is neither ``str`` nor bytes-like.
        """
        return self.ping_nowait(data)

    def ping_nowait(self, data: Optional[Data] = None) -> asyncio.Future[float]:
        """:meth:`ping` without awaiting, for :class:`Listener` callbacks (which
        cannot await) and other plain functions; the same arguments, result and
        errors."""
        pings = self._pings
        if pings is None:
            pings = self._pings = {}
        if data is None:
            data = os.urandom(4)
            while data in pings:
                data = os.urandom(4)
        elif isinstance(data, str):
            data = data.encode("utf-8")
        elif isinstance(data, (bytes, bytearray, memoryview)):
            data = bytes(data)
        else:
            raise TypeError(f"ping data must be str or bytes-like, not {type(data).__name__}")
        if data in pings:
            raise ConcurrencyError("a ping with the same data is already waiting for its pong")
        try:
            self.protocol.send_ping(data)
        except InvalidState:
            raise self._closed_exc() from None
        future = self.loop.create_future()
        pings[data] = (future, time.monotonic())
        self._flush()
        return future

    async def pong(self, data: Data = b"") -> None:
        """Send an unsolicited pong (pings are answered automatically)."""
        try:
            self.protocol.send_pong(data)
        except InvalidState:
            raise self._closed_exc() from None
        self._flush()

    def _pong_received(self, data: bytes) -> None:
        """Resolve the ping this pong answers and every ping sent before it."""
        pings = self._pings
        if not pings or data not in pings:
            return  # unsolicited
        now = time.monotonic()
        while pings:
            key, (future, sent) = next(iter(pings.items()))
            del pings[key]
            if not future.done():
                future.set_result(now - sent)
            if key == data:
                self.latency = now - sent
                break

    def _start_keepalive(self) -> None:
        if self.ping_interval is not None:
            self._keepalive = self.loop.call_later(self.ping_interval, self._keepalive_ping)

    def _keepalive_ping(self) -> None:
        self._keepalive = None
        if self.protocol.state is not OPEN:
            return
        future = self.ping_nowait()
        if self.ping_timeout is not None:
            self._keepalive = self.loop.call_later(self.ping_timeout, self._keepalive_timed_out, future)
        future.add_done_callback(self._keepalive_pong)

    def _keepalive_pong(self, future: asyncio.Future) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        if self._keepalive is not None:
            self._keepalive.cancel()
        self._keepalive = None
        if self.protocol.state is OPEN and self.ping_interval is not None:
            # The next ping ping_interval after this one was sent.
            delay = max(0.0, self.ping_interval - future.result())
            self._keepalive = self.loop.call_later(delay, self._keepalive_ping)

    def _keepalive_timed_out(self, future: asyncio.Future) -> None:
        self._keepalive = None
        if future.done() or self.protocol.state is not OPEN:
            return
        self.logger.info("keepalive ping timed out after %.1f s; failing the connection", self.ping_timeout)
        self.protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        self._flush()

    # --- closing ---------------------------------------------------------------------

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake (if it has not started) and wait until the
        TCP connection is closed, at most about twice ``close_timeout``."""
        protocol = self.protocol
        if protocol.state is OPEN:
            protocol.send_close(code, reason)  # or the peer's pending failure
            self._flush()
        elif protocol.state is CONNECTING and self.transport is not None:
            self.transport.close()
        await asyncio.shield(self._closed)

    async def wait_closed(self) -> None:
        """Wait until the TCP connection is closed."""
        await asyncio.shield(self._closed)

    def add_close_callback(self, callback: Callable[[Connection], Any]) -> None:
        """Call ``callback(connection)`` from the event loop once the TCP
        connection is closed (soon, if it is closed already): how code that
        keeps connections in its own structures, such as :class:`fastws.PubSub`,
        lets them go without a task per connection."""
        self._closed.add_done_callback(lambda _: callback(self))

    def _closed_normally(self) -> bool:
        """Whether both close frames went and came with a normal code: the
        closing that :meth:`_closed_exc` makes a :class:`ConnectionClosedOK`."""
        protocol = self.protocol
        rcvd, sent = protocol.close_rcvd, protocol.close_sent
        return (
            rcvd is not None
            and sent is not None
            and rcvd.code in _OK_CODES
            and sent.code in _OK_CODES
        )

    def _closed_exc(self) -> ConnectionClosed:
        protocol = self.protocol
        rcvd, sent = protocol.close_rcvd, protocol.close_sent
        if self._closed_normally():
            cls: type[ConnectionClosed] = ConnectionClosedOK
        else:
            cls = ConnectionClosedError
        rcvd_then_sent = None
        if rcvd is not None and sent is not None:
            rcvd_then_sent = getattr(protocol, "close_rcvd_then_sent", None)
        return cls(rcvd, sent, rcvd_then_sent)


@functools.cache
def connection_class(*, pure: bool) -> type[Connection]:
    """:class:`Connection` running one twin of the fast path (see
    :mod:`fastws.asyncio.fastpath`), for tests and benchmarks that compare the
    twins in one process.

    Connection itself when it runs that twin already; else a class with the
    methods of Connection on that twin's ``FastPath`` (ImportError if the
    compiled one is not built). That class is not a subclass of Connection: it
    has Connection's methods, which therefore never call ``super()`` without
    arguments (it would name Connection).
    """
    twin = fastpath.load(pure=pure)
    if twin is FastPath:
        return Connection
    methods = {k: v for k, v in vars(Connection).items() if k not in ("__dict__", "__weakref__")}
    return cast("type[Connection]", type("Connection", (twin, asyncio.BufferedProtocol), methods))

"""The machinery of :class:`~fastws.sync.connection.Connection`: who reads
the socket, writing, the background thread, timers.

Who reads the socket
--------------------

There is no reader thread handing each message over. The thread that calls
:meth:`~fastws.sync.connection.Connection.recv` reads the socket itself when no message is waiting: it
takes the *reader* lock, reads, feeds the sans-I/O protocol (which parses with
the compiled codec), and returns the first message; messages that came in the
same read wait in a deque for the next calls. An echo loop thus costs one
``recv_into`` and one ``sendall`` per message, with no thread switch.

One background thread per connection covers the time when no thread is in
``recv()``: it sends the keepalive pings, enforces the timeouts of keepalive and
of the closing handshake, and, once nobody has called ``recv()`` for
:data:`~fastws.sync.connection.IDLE_TAKEOVER` seconds, reads the socket itself so that pings are answered
and a close frame is seen while the application only sends. A ``recv()`` that
finds it reading wakes it through a socket pair and takes the socket back. While
a thread is blocked in ``recv()`` the background thread sleeps until its next
timer: it wakes about twice per :data:`~fastws.sync.connection.IDLE_TAKEOVER` at most.

Flow control: past ``max_queue`` messages waiting (the high-water mark), the
socket is not read until ``recv()`` drains the queue to the low-water mark.

Deadlines: a TLS socket is non-blocking (part of a TLS record makes the socket
readable, and a blocking read would then wait for the rest past any deadline);
reads poll first, writes retry the same bytes once the socket drains. Once the
connection is closing, writes never block past ``close_timeout``: they poll
(with ``MSG_DONTWAIT`` on a plain socket) until the closing deadline.
"""

from __future__ import annotations

import collections
import logging
import os
import select
import socket
import ssl
import threading
import time
import uuid
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple, Union

from ..codec import plain_message
from ..events import Close, Pong
from ..exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    ProtocolError,
)
from ..frames import CloseCode
from ..limits import LoggerLike, QueueLimit, queue_limits, resolve_logger
from ..protocol import CLOSING, OPEN, Protocol

__all__ = ["ConnectionCore", "IDLE_TAKEOVER", "Data"]

Data = Union[str, bytes]

#: Seconds without a thread in ``recv()`` after which the background thread
#: reads the socket itself (to answer pings and see a close frame).
IDLE_TAKEOVER = 0.05

_OK_CODES = frozenset({CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY, CloseCode.NO_STATUS_RCVD})
# A TLS read that needs more bytes (or a write) before it returns data.
_WANT_READ = (ssl.SSLWantReadError, ssl.SSLWantWriteError)
# A write that cannot go on until the socket drains (or, for TLS, reads).
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError)
# Writes that return at once when the socket buffer is full (None on
# platforms without it: there a closing write is not bounded).
_DONTWAIT: Optional[int] = getattr(socket, "MSG_DONTWAIT", None)
_INF = float("inf")
_POLLIN = getattr(select, "POLLIN", 1) | getattr(select, "POLLHUP", 0) | getattr(select, "POLLERR", 0)
_POLLOUT = getattr(select, "POLLOUT", 4) | getattr(select, "POLLHUP", 0) | getattr(select, "POLLERR", 0)


class ConnectionCore:
    """What a :class:`~fastws.sync.connection.Connection` is made of: its
    state, reading the socket (in the caller's thread or the background
    thread's), writing it, and the background thread with its timers. The
    public methods are :class:`~fastws.sync.connection.Connection`'s."""

    recv_bufsize = 65536
    _default_logger = "fastws"

    def __init__(
        self,
        sock: socket.socket,
        protocol: Protocol,
        *,
        ping_interval: Optional[float] = 20,
        ping_timeout: Optional[float] = 20,
        close_timeout: Optional[float] = 10,
        max_queue: QueueLimit = 16,
        logger: LoggerLike = None,
    ) -> None:
        self._high, low = queue_limits(max_queue)
        self._low = low or 0
        self.socket = sock
        # A TLS socket is non-blocking: a blocking read would wait for the
        # rest of a record past every deadline once part of it came.
        self._tls = isinstance(sock, ssl.SSLSocket)
        if self._tls:
            sock.setblocking(False)
            self._sendall: Callable[[Any], Any] = self._send_tls
        else:
            self._sendall = sock.sendall
        self.protocol = protocol
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.id: uuid.UUID = uuid.uuid4()
        self.logger: logging.LoggerAdapter[Any] = logging.LoggerAdapter(
            resolve_logger(logger, self._default_logger), {"websocket": self}
        )
        self.latency = 0.0
        # Protocol calls and socket writes, in one order.
        self._lock = threading.Lock()
        # Held by the one thread that reads the socket.
        self._reader = threading.Lock()
        # Threads waiting for a message, for the reader lock or for the end.
        self._cond = threading.Condition(threading.Lock())
        self._waiting = 0
        self._recv_lock = threading.Lock()
        self._in_recv = False
        self._recv_epoch = 0
        self._messages: Deque[Data] = collections.deque()
        self._paused = False
        self._closed = threading.Event()
        self._close_deadline: Optional[float] = None
        self._shut_wr = False
        self._connection_exc: Optional[BaseException] = None
        self._fragmenting = False
        self._pings: Dict[bytes, Tuple[threading.Event, float, bool]] = {}
        self._buffer = bytearray(self.recv_bufsize)
        self._view = memoryview(self._buffer)
        self._poll: Any = None
        # The background thread: its wake-ups and whether it reads.
        self._bg_cond = threading.Condition(threading.Lock())
        self._bg_parked = False
        self._bg_reading = False
        # Bumped (under _bg_cond) by each wake-up, so none is lost between the
        # background thread's checks and its wait().
        self._bg_gen = 0
        self._bg_thread: Optional[threading.Thread] = None
        self._wake_r: Optional[socket.socket] = None
        self._wake_w: Optional[socket.socket] = None
        self._next_ping: Optional[float] = None
        self._keepalive: Optional[Tuple[threading.Event, float]] = None


    # --- reading ------------------------------------------------------------------

    def _message_or_end(self) -> bool:
        return bool(self._messages) or self._closed.is_set()

    def _wait(self, done: Callable[[], bool], deadline: Optional[float]) -> bool:
        """Read the socket, or let whoever reads it do so, until ``done()`` or
        ``deadline``. Returns ``done()``."""
        while not done():
            if self._reader.acquire(False):
                try:
                    while not done():
                        timeout = self._read_timeout(deadline)
                        if timeout is not None and timeout <= 0:
                            if deadline is not None and time.monotonic() >= deadline:
                                # Take what already came (recv(timeout=0) polls).
                                self._read_once(0)
                                return done()
                            self._abort()  # the closing handshake took too long
                        self._read_once(timeout)
                        if self._waiting:
                            self._notify()
                finally:
                    self._reader.release()
                    if self._waiting:
                        self._notify()
                continue
            # Someone else reads: the background thread gives way when woken.
            with self._cond:
                self._waiting += 1
                try:
                    if done() or not self._reader.locked():
                        continue
                    if self._bg_reading and self._in_recv:
                        # recv() takes the socket back; other waiters let the
                        # background thread read and wait for its notify.
                        self._poke()
                    timeout = None if deadline is None else deadline - time.monotonic()
                    if timeout is not None and timeout <= 0:
                        return done()
                    self._cond.wait(timeout)
                finally:
                    self._waiting -= 1
        return True

    def _read_timeout(self, deadline: Optional[float]) -> Optional[float]:
        close_deadline = self._close_deadline
        if close_deadline is not None and close_deadline != _INF and (deadline is None or close_deadline < deadline):
            deadline = close_deadline
        return None if deadline is None else deadline - time.monotonic()

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _read_once(self, timeout: Optional[float]) -> bool:
        """Read once (the reader lock held) and handle what came. False if
        nothing came within ``timeout``."""
        sock = self.socket
        if self._closed.is_set():
            return True
        try:
            if (timeout is not None or self._tls) and not self._readable(timeout):
                return False
            n = sock.recv_into(self._buffer)
        except _WANT_READ:
            return False
        except OSError as exc:
            if self._connection_exc is None:
                self._connection_exc = exc
            n = 0
        if n == 0:
            self._end()
            return True
        protocol = self.protocol
        with self._lock:
            parser = protocol.gates.fast_parser
            if parser is None:
                protocol.receive_data(self._view[:n])
                events = protocol.events_received()
            else:
                events = self._feed_fast(parser, self._view[:n])
            self._flush_locked()
        if events:
            self._handle_events(events)
        return True

    def _feed_fast(self, parser: Any, data: memoryview) -> List[Any]:
        """The protocol's fast path (its driver contract; ``self._lock``
        held): the codec's parser fed here, whole plain messages taken from
        their frames at once, every other frame given to the protocol.
        Returns the messages and events, in order."""
        protocol = self.protocol
        gates = protocol.gates
        events: List[Any] = []
        append = events.append
        try:
            frames = parser.feed(data)
            error = None
        except ProtocolError as exc:
            frames, error = exc.frames, exc
        for index, frame in enumerate(frames):
            if gates.fast_delivery:
                message = plain_message(frame)
                if message is not None:
                    append(message)
                    continue
            reading = protocol.receive_frame(frame)
            events += protocol.events_received()
            if not reading:
                return events  # a close frame, a failure: the rest is discarded
            if gates.fast_parser is not parser:  # pragma: no cover - no callbacks run here
                protocol.receive_frames(frames[index + 1 :], error)
                return events + protocol.events_received()
        if error is not None:
            protocol.receive_frames([], error)
        elif parser.pending() is not None:
            protocol.receive_frames([])
        else:
            return events
        return events + protocol.events_received()

    def _readable(self, timeout: Optional[float]) -> bool:
        """Whether the socket can be read within ``timeout`` (None: no limit)."""
        if timeout is not None and timeout < 0:
            timeout = 0.0
        if self.socket.fileno() < 0:
            return True
        pending = getattr(self.socket, "pending", None)
        if pending is not None and pending():
            return True  # TLS bytes already decrypted
        poll = self._poll
        if poll is None and hasattr(select, "poll"):
            poll = self._poll = select.poll()
            poll.register(self.socket, _POLLIN)
        if poll is not None:
            return bool(poll.poll(None if timeout is None else timeout * 1000.0))
        return bool(select.select([self.socket], [], [], timeout)[0])

    def _handle_events(self, events: List[Any]) -> None:
        append = self._messages.append
        for event in events:
            kind = type(event)
            if kind is str or kind is bytes:
                append(event)
            elif kind is Pong:
                self._pong_received(event.data)
            elif kind is not Close:
                self._handshake_event(event)
        high = self._high
        if high is not None and len(self._messages) >= high:
            self._paused = True

    def _handshake_event(self, event: Any) -> None:
        """The Request (server) or Response (client) of the opening handshake."""

    def _resume_reading(self) -> None:
        self._paused = False
        self._wake_bg()

    def _wake_bg(self) -> None:
        """Wake the background thread to check its state and timers again
        (whether it waits on its condition or reads the socket)."""
        with self._bg_cond:
            self._bg_gen += 1
            self._bg_cond.notify()
        if self._bg_reading and self._wake_w is not None:
            self._poke()

    # --- writing --------------------------------------------------------------------

    def _flush_locked(self) -> None:
        """Write what the protocol has to send (``self._lock`` held); shut down
        the writing side once the protocol says to close the transport, and
        start the closing timer once the connection is closing."""
        protocol = self.protocol
        if protocol.state >= CLOSING and self._close_deadline is None:
            # Before writing: close_timeout also bounds writing the close frame.
            self._close_deadline = (
                _INF if self.close_timeout is None else time.monotonic() + self.close_timeout
            )
            self._wake_bg()
        if protocol.gates.has_data_to_send:
            chunks = protocol.chunks_to_send()
            try:
                if self._close_deadline is not None:
                    deadline = self._close_deadline
                    for chunk in chunks:
                        self._send_until(chunk, None if deadline == _INF else deadline)
                else:
                    sendall = self._sendall
                    for chunk in chunks:
                        sendall(chunk)
            except OSError as exc:  # socket.timeout too
                if self._connection_exc is None:
                    self._connection_exc = exc
                self._abort()
        if not self._shut_wr and protocol.should_close_transport():
            self._shut_wr = True
            try:
                # socket.socket's own method: SSLSocket.shutdown() would drop
                # the TLS layer under a thread still reading.
                socket.socket.shutdown(self.socket, socket.SHUT_WR)
            except OSError:
                pass

    def _send_tls(self, data: Any) -> None:
        self._send_until(data, None)

    def _send_until(self, data: Any, deadline: Optional[float]) -> None:
        """Write all of ``data``, waiting for the socket to take it until
        ``deadline`` (None: no limit), without blocking in the write itself.

        Raises:
            socket.timeout: The deadline passed first.
            OSError: Writing failed.
        """
        sock = self.socket
        flags = 0
        if not self._tls:
            if _DONTWAIT is None:  # pragma: no cover - no MSG_DONTWAIT here
                sock.sendall(data)
                return
            flags = _DONTWAIT
        view = memoryview(data).cast("B")
        total = len(view)
        sent = 0
        poll: Any = None
        while sent < total:
            try:
                sent += sock.send(view[sent:], flags)
                continue
            except _WOULD_BLOCK:
                pass  # for TLS, retried with the same bytes, as OpenSSL wants
            timeout = None if deadline is None else deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                raise socket.timeout("timed out writing to the socket")
            if sock.fileno() < 0:
                raise OSError("the socket is closed")
            if poll is None and hasattr(select, "poll"):
                poll = select.poll()
                poll.register(sock, _POLLOUT)
            if poll is not None:
                poll.poll(None if timeout is None else timeout * 1000.0)
            else:  # pragma: no cover - no poll() on this platform
                select.select([], [sock], [], timeout)

    def _abort(self) -> None:
        """Shut the socket down both ways: a blocked read returns at once."""
        try:
            socket.socket.shutdown(self.socket, socket.SHUT_RDWR)
        except OSError:
            pass

    def _check_open(self) -> None:
        """Raise ConnectionClosed, once the connection is over, if it is not
        OPEN or writing to it failed."""
        if self.protocol.state is not OPEN or self._connection_exc is not None:
            self._raise_closed()

    def _raise_closed(self) -> None:
        """Wait until the connection is over, then raise ConnectionClosed."""
        self._wait(self._closed.is_set, None)
        raise self._closed_exc() from self._connection_exc

    def _send_ping(self, data: Optional[bytes], ack_on_close: bool) -> threading.Event:
        """Send a ping (random payload if ``data`` is None); returns its event."""
        with self._lock:
            if data is not None and data in self._pings:
                raise ConcurrencyError("a ping with the same data is already waiting for its pong")
            while data is None or data in self._pings:
                data = os.urandom(4)
            if self.protocol.state is OPEN:
                event = _PongWaiter(self)
                self._pings[data] = (event, time.monotonic(), ack_on_close)
                self.protocol.send_ping(data)
                self._flush_locked()
                return event
        self._raise_closed()
        raise AssertionError("unreachable")  # pragma: no cover

    def _pong_received(self, data: bytes) -> None:
        """Set the event of the ping this pong answers and of every ping before it."""
        pings = self._pings
        with self._lock:
            if data not in pings:
                return  # unsolicited
            now = time.monotonic()
            while pings:
                key = next(iter(pings))
                event, sent, _ = pings.pop(key)
                event.set()
                if key == data:
                    self.latency = now - sent
                    break
        if self._waiting:
            self._notify()  # a thread in ping().wait() while another reads
        keepalive = self._keepalive
        if keepalive is not None and keepalive[0].is_set():
            self._wake_bg()  # the background thread schedules the next ping

    # --- the end ------------------------------------------------------------------

    def _end(self) -> None:
        """The stream ended (the reader lock held): the connection is closed."""
        protocol = self.protocol
        with self._lock:
            protocol.receive_eof()
            events = protocol.events_received()
        if events:
            self._handle_events(events)
        self._finish()

    def _finish(self) -> None:
        with self._lock:
            try:
                self.socket.close()
            except OSError:  # pragma: no cover
                pass
            pings = list(self._pings.values())
            self._pings.clear()
        self._closed.set()
        for event, _, ack_on_close in pings:
            if ack_on_close:
                event.set()
        self._notify()
        self._wake_bg()
        if self._wake_w is not None:
            self._poke()

    def _closed_exc(self) -> ConnectionClosed:
        protocol = self.protocol
        rcvd, sent = protocol.close_rcvd, protocol.close_sent
        if rcvd is not None and sent is not None and rcvd.code in _OK_CODES and sent.code in _OK_CODES:
            cls: type = ConnectionClosedOK
        else:
            cls = ConnectionClosedError
        rcvd_then_sent = protocol.close_rcvd_then_sent if rcvd is not None and sent is not None else None
        exc: ConnectionClosed = cls(rcvd, sent, rcvd_then_sent)
        return exc

    # --- waking the background thread (fastws.sync.background runs it) -----------

    def _poke(self) -> None:
        assert self._wake_w is not None
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass  # full (a wake-up is pending anyway) or closed


class _PongWaiter(threading.Event):
    """The event :meth:`Connection.ping` returns: its ``wait()`` reads the
    socket while nobody else does, so that the pong is seen at once."""

    def __init__(self, connection: ConnectionCore) -> None:
        super().__init__()
        self._connection = connection

    def wait(self, timeout: Optional[float] = None) -> bool:
        if self.is_set():
            return True
        connection = self._connection
        deadline = None if timeout is None else time.monotonic() + timeout
        connection._wait(self._set_or_closed, deadline)
        if self.is_set() or connection._closed.is_set():
            return self.is_set()
        return super().wait(0)

    def _set_or_closed(self) -> bool:
        return self.is_set() or self._connection._closed.is_set()



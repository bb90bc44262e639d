"""A WebSocket connection on a blocking socket, for threads:
:class:`Connection`, what :func:`~fastws.sync.client.connect` returns and
what a :func:`~fastws.sync.server.serve` handler receives.

There is no reader thread handing each message over: the thread in
:meth:`Connection.recv` reads the socket itself while no message is waiting,
and a background thread per connection covers the time when no thread is in
``recv()`` (keepalive, timeouts, and after :data:`IDLE_TAKEOVER` seconds,
reading so that pings are answered). :mod:`fastws.sync.core` and
:mod:`fastws.sync.background` have the details.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterable, Iterator, Optional, Union

from ..codec import build_frame
from ..exceptions import ConcurrencyError, ConnectionClosedOK, InvalidState
from ..frames import CloseCode
from ..protocol import OPEN, PASS_THROUGH_SIZE, State
from .background import ConnectionThreads
from .core import IDLE_TAKEOVER, Data

__all__ = ["Connection", "IDLE_TAKEOVER", "Data"]


class Connection(ConnectionThreads):
    """One WebSocket connection on a blocking socket, server or client side.

    :func:`~fastws.sync.client.connect` and :func:`~fastws.sync.server.serve`
    make them (:class:`~fastws.sync.client.ClientConnection`,
    :class:`~fastws.sync.server.ServerConnection`). Every method may be called
    from any thread; ``recv()`` from one thread at a time.

    Args:
        sock: The connected socket (TLS-wrapped for ``wss://``).
        protocol: The sans-I/O protocol, still CONNECTING.
        ping_interval: Seconds between keepalive pings. None: no keepalive.
        ping_timeout: Seconds to wait for the pong of a keepalive ping; then
            the connection fails with 1011. None: no limit.
        close_timeout: Seconds the closing handshake may take before the
            socket is closed anyway. None: no limit.
        max_queue: The high-water mark of received messages not yet read, or
            a ``(high, low)`` tuple (low defaults to a quarter of high). None:
            no limit.
        logger: The logger to use, or its name; by default ``fastws.client``
            or ``fastws.server``.

    Attributes:
        id: A unique id, for logs (a ``uuid.UUID``).
        logger: The connection's logger (a ``logging.LoggerAdapter``), with
            ``{"websocket": connection}`` as extra.
        socket (socket.socket): The socket.
        protocol (~fastws.protocol.Protocol): The sans-I/O state machine.
        latency (float): Round-trip time of the last ping answered, in seconds
            (0.0 until then).
    """

    # --- attributes -----------------------------------------------------------------

    @property
    def state(self) -> State:
        """The connection's :class:`~fastws.protocol.State`."""
        return self.protocol.state

    @property
    def request(self) -> Any:
        """The opening handshake's :class:`~fastws.http11.Request`."""
        return getattr(self.protocol, "request", None)

    @property
    def response(self) -> Any:
        """The opening handshake's :class:`~fastws.http11.Response`."""
        return getattr(self.protocol, "response", None)

    @property
    def subprotocol(self) -> Optional[str]:
        """The subprotocol agreed on, or None."""
        return self.protocol.subprotocol

    @property
    def close_code(self) -> Optional[int]:
        """Code of the close frame received (1006 if the connection ended
        without one); None while the connection is open."""
        return self.protocol.close_code

    @property
    def close_reason(self) -> Optional[str]:
        """Reason of the close frame received; None while the connection is open."""
        return self.protocol.close_reason

    @property
    def local_address(self) -> Any:
        """The local address of the socket (``getsockname()``)."""
        try:
            return self.socket.getsockname()
        except OSError:
            return None

    @property
    def remote_address(self) -> Any:
        """The remote address of the socket (``getpeername()``)."""
        try:
            return self.socket.getpeername()
        except OSError:
            return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.state.name} {self.id}>"

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        self.close(CloseCode.NORMAL_CLOSURE if exc_type is None else CloseCode.INTERNAL_ERROR)

    def __iter__(self) -> Iterator[Data]:
        """The messages received, until the connection closes normally; a
        :class:`~fastws.exceptions.ConnectionClosedError` after an abnormal end."""
        try:
            while True:
                yield self.recv()
        except ConnectionClosedOK:
            return

    # --- receiving ------------------------------------------------------------------

    def recv(self, timeout: Optional[float] = None, decode: Optional[bool] = None) -> Data:
        """The next message: ``str`` for text, ``bytes`` for binary.

        Args:
            timeout: Seconds to wait for a message; None waits as long as it
                takes; 0 or less only takes a message already received.
            decode: False returns a text message as UTF-8 ``bytes``; True
                decodes a binary message as UTF-8 into ``str``; None (the
                default) returns each as it came.

        Raises:
            ~fastws.exceptions.ConnectionClosed: The connection is closed
                (:class:`~fastws.exceptions.ConnectionClosedOK` after a normal
                closing handshake) and every message before was read.
            TimeoutError: No message came within ``timeout``.
            ~fastws.exceptions.ConcurrencyError: Another thread is in
                ``recv()`` or ``recv_streaming()``.
        """
        messages = self._messages
        if messages:
            message = messages.popleft()
            if self._paused and len(messages) <= self._low:
                self._resume_reading()
        else:
            message = self._recv_slow(timeout)
        if decode is None:
            return message
        if decode:
            if type(message) is bytes:
                return self._decode(message)
        elif type(message) is str:
            return message.encode("utf-8")
        return message

    def _recv_slow(self, timeout: Optional[float]) -> Data:
        if not self._recv_lock.acquire(False):
            raise ConcurrencyError(
                "cannot call recv() while another thread is already in recv() or recv_streaming()"
            )
        self._in_recv = True
        self._recv_epoch += 1
        try:
            messages = self._messages
            if timeout is None and self._close_deadline is None and self._reader.acquire(False):
                # The common case: nobody else reads; read here until a message comes.
                try:
                    closed = self._closed
                    while not messages and not closed.is_set() and self._close_deadline is None:
                        self._read_once(None)
                finally:
                    self._reader.release()
                    if self._waiting:
                        self._notify()
                if messages:
                    message = messages.popleft()
                    if self._paused and len(messages) <= self._low:
                        self._resume_reading()
                    return message
            deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
            if not self._wait(self._message_or_end, deadline):
                raise TimeoutError(f"timed out after {timeout} s waiting for a message")
            if messages:
                message = messages.popleft()
                if self._paused and len(messages) <= self._low:
                    self._resume_reading()
                return message
            raise self._closed_exc()
        finally:
            self._in_recv = False
            self._recv_lock.release()
            if self._bg_parked:  # read after _in_recv changed: see _background_loop
                self._wake_bg()

    def recv_streaming(self, decode: Optional[bool] = None) -> Iterator[Data]:
        """The next message as an iterator of its pieces.

        fastws assembles a message in the protocol, so the message comes as
        one piece: ``"".join(recv_streaming())`` (or ``b"".join``) is the
        message, as with ``websockets``.

        Args:
            decode: As for :meth:`recv`.

        Raises:
            As :meth:`recv`, when the iterator is first advanced.
        """
        yield self.recv(None, decode)

    def _decode(self, message: bytes) -> str:
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError as exc:
            # As websockets: a binary message asked for as text fails with 1007.
            self._connection_exc = exc
            with self._lock:
                if self.protocol.state is OPEN:
                    self.protocol.fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")
                self._flush_locked()
            self._wait(self._closed.is_set, None)
            raise self._closed_exc() from exc

    def send(self, message: Union[Data, bytearray, memoryview, Iterable[Any]], text: Optional[bool] = None) -> None:
        """Send a message.

        A ``str`` goes as a text frame and a bytes-like object as a binary
        frame; ``text=True`` sends bytes (UTF-8 already) as text, ``text=False``
        sends a ``str`` as binary. An iterable of ``str`` or of bytes-like
        objects is sent as one fragmented message, a frame per item (an empty
        iterable sends nothing).

        Raises:
            ~fastws.exceptions.ConnectionClosed: The connection is closed.
            ~fastws.exceptions.ConcurrencyError: Another thread is sending a
                fragmented message.
            TypeError: ``message`` is of none of these types, a dict, or its
                fragments are of mixed types (the connection is then failed
                with 1011 if fragments went out).
        """
        payload: Any
        if isinstance(message, str):
            if text is False:
                opcode, payload = 2, message.encode("utf-8")
            else:
                opcode, payload = 1, message
        elif isinstance(message, (bytes, bytearray, memoryview)):
            opcode, payload = (1 if text else 2), message
        elif isinstance(message, dict):
            raise TypeError("message must be str, bytes-like or an iterable of them, not dict")
        elif hasattr(message, "__iter__"):
            self._send_fragments(message, text)
            return
        else:
            raise TypeError(
                f"message must be str, bytes-like or an iterable of them, not {type(message).__name__}"
            )
        protocol = self.protocol
        with self._lock:
            if self._fragmenting:
                raise ConcurrencyError("cannot call send() while another thread sends a fragmented message")
            if protocol.gates.fast_send and not (
                type(payload) is bytes and len(payload) >= PASS_THROUGH_SIZE and not protocol.mask_frames
            ):
                try:
                    self._sendall(build_frame(opcode, payload, mask=protocol.mask_frames))
                    return
                except OSError as exc:
                    if self._connection_exc is None:
                        self._connection_exc = exc
                    self._abort()
            elif protocol.state is OPEN:
                if opcode == 1:
                    protocol.send_text(payload)
                else:
                    protocol.send_binary(payload)
                self._flush_locked()
                if self._connection_exc is None:
                    return
        self._raise_closed()

    def _send_fragments(self, fragments: Iterable[Any], text: Optional[bool]) -> None:
        protocol = self.protocol
        with self._lock:
            if self._fragmenting:
                raise ConcurrencyError("cannot call send() while another thread sends a fragmented message")
            self._fragmenting = True
        kind: Any = None
        try:
            for fragment in fragments:
                is_str = isinstance(fragment, str)
                if not is_str and not isinstance(fragment, (bytes, bytearray, memoryview)):
                    raise TypeError(f"fragments must be str or bytes-like, not {type(fragment).__name__}")
                if kind is None:
                    kind = str if is_str else bytes
                elif (kind is str) != is_str:
                    raise TypeError("all fragments of a message must be str, or all bytes-like")
                as_text = (text is not False) if is_str else bool(text)
                if is_str and not as_text:
                    fragment = fragment.encode("utf-8")
                with self._lock:
                    try:
                        if kind is not None and self._fragment_started:
                            protocol.send_continuation(fragment, fin=False)
                        elif as_text:
                            protocol.send_text(fragment, fin=False)
                        else:
                            protocol.send_binary(fragment, fin=False)
                    except InvalidState:
                        pass
                    else:
                        self._fragment_started = True
                        self._flush_locked()
                self._check_open()
            if kind is not None:
                with self._lock:
                    if protocol.state is OPEN:
                        protocol.send_continuation(b"", fin=True)
                        self._flush_locked()
                self._check_open()
        except (TypeError, ValueError):
            with self._lock:
                if self._fragment_started and protocol.state is OPEN:
                    # Half a message went out: the peer cannot use the rest.
                    protocol.fail(CloseCode.INTERNAL_ERROR, "error in fragmented message")
                    self._flush_locked()
            raise
        finally:
            with self._lock:
                self._fragmenting = False
                self._fragment_started = False

    _fragment_started = False

    # --- ping / pong ----------------------------------------------------------------

    def ping(
        self, data: Union[Data, bytearray, memoryview, None] = None, ack_on_close: bool = False
    ) -> threading.Event:
        """Send a ping.

        Args:
            data: The payload (a ``str`` is encoded as UTF-8); None: four
                random bytes.
            ack_on_close: Also set the event when the connection closes
                (then check :attr:`state` to tell a pong from a close).

        Returns:
            A ``threading.Event`` set when the matching pong arrives
            (a pong also answers every ping sent before its own).

        Raises:
            ~fastws.exceptions.ConnectionClosed: The connection is closed.
            ~fastws.exceptions.ConcurrencyError: A ping with the same payload
                waits for its pong.
        """
        if isinstance(data, str):
            data = data.encode("utf-8")
        elif data is not None:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"data must be str or bytes-like, not {type(data).__name__}")
            data = bytes(data)
        return self._send_ping(data, ack_on_close)

    def pong(self, data: Union[Data, bytearray, memoryview] = b"") -> None:
        """Send an unsolicited pong (pings are answered on their own).

        Raises:
            ~fastws.exceptions.ConnectionClosed: The connection is closed.
        """
        if isinstance(data, str):
            data = data.encode("utf-8")
        elif not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be str or bytes-like, not {type(data).__name__}")
        with self._lock:
            if self.protocol.state is OPEN:
                self.protocol.send_pong(bytes(data))
                self._flush_locked()
                return
        self._raise_closed()

    # --- closing --------------------------------------------------------------------

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Do the closing handshake and wait until the socket is closed, at
        most about ``close_timeout``. Calling it again does nothing.

        Args:
            code: The close code.
            reason: The close reason (123 bytes of UTF-8 at most).
        """
        with self._lock:
            protocol = self.protocol
            if protocol.state is OPEN:
                if self._fragmenting:
                    protocol.fail(CloseCode.INTERNAL_ERROR, "close during fragmented message")
                else:
                    protocol.send_close(code, reason)
                self._flush_locked()
        self._wait(self._closed.is_set, None)

    def wait_closed(self, timeout: Optional[float] = None) -> bool:
        """Wait until the connection is closed (reading meanwhile, if nobody
        else does). Returns True if it is closed, False after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        return self._wait(self._closed.is_set, deadline)


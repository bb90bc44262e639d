# cython: annotation_typing=False
"""A connection's hot methods, written once for both twins.

:class:`~fastws.asyncio.connection.Connection` inherits from ``FastPath`` the
methods that the event loop and the application call for every read and every
message: ``get_buffer``, ``buffer_updated`` and ``send_nowait``. This file is
both twins of ``FastPath``: run as it is, it is the pure-Python one
(``fastws.asyncio._fastpath_py``, for PyPy and ``FASTWS_NO_EXTENSIONS=1``;
it needs no Cython); compiled by Cython with the C declarations of
``_fastpath.pxd`` (``setup.py``), it is ``fastws.asyncio._fastpath``, whose
state is in C slots and whose helpers are C functions. ``if cython.compiled:``
branches hold what only C can do: read the shared read buffer's memory
(``FrameParser.feed_from``), a parsed frame's and the parser's C fields
(``plain_message_c``, ``_in_payload``), and build a frame with a C call
(``build_message``), all declared in ``fastws/_speedups.pxd`` (here through the
name ``codec``: in C, the names that ``_speedups.pxd`` declares; every other
name of ``codec`` is the Python module's). :mod:`fastws.asyncio.fastpath`
picks the twin.

Both run the same steps:

- each frame of a read is taken in order, as soon as it is parsed: a whole,
  unfragmented text or binary frame goes from the read buffer through the
  parser straight to the Listener's ``on_message`` (or to the queue of
  ``recv()``); any other frame (control frames, fragments, compressed frames,
  invalid UTF-8) goes to the sans-I/O protocol
  (:meth:`~fastws.protocol.Protocol.receive_frame`), and the events and bytes
  it causes are handled at once. So a reply sent from ``on_message`` goes out
  before anything that a later frame causes (a pong, the echo of a close
  frame), however the peer's frames fall into reads;
- the protocol says when (``protocol.gates``:
  :attr:`~fastws.protocol.Gates.fast_parser`,
  :attr:`~fastws.protocol.Gates.fast_delivery`), and
  :func:`~fastws.codec.plain_message` which frames are plain messages; the
  protocol takes the parser's errors and the frame still arriving at the end
  of a read (:meth:`~fastws.protocol.Protocol.receive_frames`); the handshake,
  and everything after our close frame, go through
  :meth:`~fastws.protocol.Protocol.receive_data`;
- once a callback closes or fails the connection (the protocol then takes
  the parser away: ``fast_parser`` is no longer the one fed), the protocol
  takes the rest of the read, and discards it after a failure (RFC 6455
  section 7.1.7);
- a whole message sent while nothing else is queued is framed and written at
  once (:attr:`~fastws.protocol.Gates.fast_send`); anything else goes
  through :meth:`~fastws.protocol.Protocol.send_text` or
  :meth:`~fastws.protocol.Protocol.send_binary`.

So both give the same messages, the same bytes on the wire and the same errors.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from .. import codec
from ..exceptions import ConnectionClosed, InvalidState, ProtocolError
from ..protocol import PASS_THROUGH_SIZE, Gates, Protocol, State

if TYPE_CHECKING:
    from . import _fastpath_cython as cython
else:
    try:
        import cython
    except ImportError:  # no Cython installed: the pure-Python twin runs all the same
        from . import _fastpath_cython as cython

__all__ = ["FastPath", "IMPLEMENTATION"]

#: ``"cython"`` in the compiled twin, ``"python"`` in this one.
IMPLEMENTATION = "cython" if cython.compiled else "python"

logger = logging.getLogger("fastws")

build_frame = codec.build_frame
plain_message = codec.plain_message

Message = Union[str, bytes]

#: The queue of ``recv()`` while it is empty: one shared empty tuple. A deque
#: (over 600 bytes) is made when a message must wait, so that an idle
#: connection holds none.
NO_MESSAGES: tuple = ()


class FastPath:
    """Base of :class:`~fastws.asyncio.connection.Connection`: reading into the
    shared read buffer, delivering plain messages, and :meth:`send_nowait`.

    It holds the state that these use (set by :meth:`_init_fast_path`; C slots
    in the compiled twin) and calls four methods of the connection, declared
    here and implemented by ``Connection``: :meth:`_received`,
    :meth:`_listener_failed`, :meth:`_flush` and :meth:`_closed_exc`.
    """

    protocol: Protocol
    transport: Any  # an asyncio.Transport once connected
    listener: Any  # a Listener, or None
    max_queue: Optional[int]
    _on_message: Optional[Callable[[Any, Message], None]]  # listener.on_message, bound once
    _messages: Union[deque[Message], tuple]  # received, not yet taken by recv(); NO_MESSAGES if none
    _recv_waiter: Optional[asyncio.Future[Any]]
    _reading_paused: bool
    _gates: Gates  # protocol.gates: the same object for the protocol's life
    _mask_frames: bool  # protocol.mask_frames, which never changes either
    _read_buf: memoryview  # the event loop's read buffer (see get_buffer)
    _read_size: int  # its length, which each read's count must not exceed
    _read_memory: bytearray  # the bytes under it, which the compiled twin's parser reads

    def _init_fast_path(
        self, protocol: Protocol, listener: Any, max_queue: Optional[int], read_buffer: memoryview
    ) -> None:
        self.protocol = protocol
        self.transport = None
        self.listener = listener
        self.max_queue = max_queue
        self._on_message = listener.on_message if listener is not None else None
        self._messages = NO_MESSAGES
        self._recv_waiter = None
        self._reading_paused = False
        self._gates = protocol.gates
        self._mask_frames = protocol.mask_frames
        memory = read_buffer.obj
        if type(memory) is not bytearray or len(memory) != len(read_buffer):
            raise TypeError("the read buffer must be a memoryview of a whole bytearray")
        self._read_buf = read_buffer
        self._read_size = len(read_buffer)
        self._read_memory = memory

    # --- the connection's, called here ---------------------------------------------

    def _received(self) -> None:
        """Handle the events of the protocol, which took bytes or frames, and
        write what it has to send."""
        raise NotImplementedError

    def _listener_failed(self, name: str, exc: Exception) -> bool:
        """The Listener's callback ``name`` raised ``exc``: log it and fail the
        connection."""
        raise NotImplementedError

    def _flush(self) -> None:
        """Write what the protocol has to send (and close TCP when it says so)."""
        raise NotImplementedError

    def _closed_exc(self) -> ConnectionClosed:
        """The exception for sending on a connection that is closing or closed."""
        raise NotImplementedError

    # --- reading ---------------------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_buf

    def buffer_updated(self, nbytes: int) -> None:
        if not 0 <= nbytes <= self._read_size:
            raise ValueError(f"{nbytes} bytes read into a buffer of {self._read_size}")
        if cython.compiled:
            parser = self._gates.fast_parser
            if type(parser) is codec.FrameParser:
                # Our parser reads the buffer's memory: no slice, no buffer request.
                error = None
                try:
                    frames = cython.cast(codec.FrameParser, parser).feed_from(
                        cython.cast(cython.p_uchar, self._read_memory), nbytes
                    )
                except ProtocolError as exc:
                    frames, error = exc.frames, exc
                self._end_of_read(parser, frames, error)
                return
        self._feed_read(self._read_buf[:nbytes])

    def _read_trailing(self) -> None:
        """Bytes that came after the opening handshake in the same read: a read
        of their own, now that the connection is open."""
        data = self.protocol.trailing_data()
        if data:
            self._feed_read(data)

    def _feed_read(self, data: Any) -> None:
        """One read's bytes (a slice of the read buffer, or what trailed the
        opening handshake)."""
        parser = self._gates.fast_parser
        if parser is None:
            if self.protocol.state is State.CONNECTING:
                data = bytes(data)  # the handshake parsers may keep what they get
            self.data_received(data)
            return
        error = None
        try:
            frames = parser.feed(data)
        except ProtocolError as exc:
            frames, error = exc.frames, exc
        self._end_of_read(parser, frames, error)

    def _end_of_read(self, parser: Any, frames: list[Any], error: Optional[ProtocolError]) -> None:
        """What a read's frames (and the parser's error, if any) lead to."""
        if frames and not self._deliver(parser, frames, error):
            return
        if error is not None:
            self._frames_received([], error)
        elif self._frame_arriving(parser):
            self._frames_received([], None)
        elif self._gates.has_data_to_send:
            self._flush()  # bytes that a callback queued through the protocol

    def _frame_arriving(self, parser: Any) -> bool:
        """True while the parser holds part of a frame's payload (what its
        ``pending()`` tells, read from its C field by the compiled twin)."""
        if cython.compiled:
            if type(parser) is codec.FrameParser:
                return cython.cast(codec.FrameParser, parser)._in_payload
        return parser.pending() is not None

    def _deliver(self, parser: Any, frames: list[Any], error: Optional[ProtocolError]) -> bool:
        """Each frame in order: a plain message to on_message or the recv()
        queue, anything else through the protocol. False if the read is over
        (reading stopped, or a callback closed or failed the connection)."""
        gates = self._gates
        on_message = self._on_message
        direct = gates.fast_delivery
        for i, frame in enumerate(frames):
            if not direct:
                message = None
            elif cython.compiled and type(frame) is codec.Frame:
                message = codec.plain_message_c(cython.cast(codec.Frame, frame))
            else:
                message = plain_message(frame)
            if message is None:
                if not self._frame_received(frame):
                    return False  # what follows a close frame or a failure is discarded
                if gates.fast_parser is not parser:
                    # A callback (on_ping, on_pong, on_message of a message the
                    # protocol assembled) closed the connection: the protocol
                    # takes the rest.
                    self._frames_received(frames[i + 1 :], error)
                    return False
                direct = gates.fast_delivery
            elif on_message is None:
                self._queue(message)
            else:
                try:
                    on_message(self, message)
                except Exception as exc:
                    self._listener_failed("on_message", exc)
                if gates.fast_parser is not parser:
                    # The callback closed or failed the connection: the protocol
                    # takes the rest (and discards it after a failure).
                    self._frames_received(frames[i + 1 :], error)
                    return False
        return True

    def data_received(self, data: Any) -> None:
        """Bytes for the protocol's own parsing: the handshake, and every read
        once the fast path no longer reads (after our close frame)."""
        self.protocol.receive_data(data)
        self._received()

    def _frames_received(self, frames: list[Any], error: Optional[ProtocolError]) -> None:
        """The end of a read that the fast path handled: the frames it did not
        take, the parser's error, the frame still arriving."""
        self.protocol.receive_frames(frames, error)
        self._received()

    def _frame_received(self, frame: Any) -> bool:
        """A frame that the fast path does not deliver itself. False if reading
        stopped there."""
        reading = self.protocol.receive_frame(frame)
        self._received()
        return reading

    def _enqueue(self, message: Message) -> None:
        """A message of the protocol's events for recv() (see _queue)."""
        self._queue(message)

    def _queue(self, message: Message) -> None:
        """A message for recv(): to its waiter, or to the queue, pausing reading
        when the queue reaches max_queue. Once our close frame is out and the
        peer's is awaited, reading goes on only to find it (see the
        connection's _flush): what does not fit is dropped, never paused for.
        (Messages before the peer's own close frame are all kept.)"""
        waiter = self._recv_waiter
        messages = self._messages
        if waiter is not None and not messages:
            self._recv_waiter = None
            if not waiter.done():
                waiter.set_result(message)
                return
        if type(messages) is not deque:
            messages = self._messages = deque()
        max_queue = self.max_queue
        if max_queue is None or len(messages) + 1 < max_queue:
            messages.append(message)
            return
        protocol = self.protocol
        if protocol.close_sent is not None and protocol.close_rcvd is None:
            if len(messages) >= max_queue:
                logger.debug("dropped a message received while closing: queue full")
            else:
                messages.append(message)
            return
        messages.append(message)
        if not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    # --- sending ---------------------------------------------------------------------

    def send_nowait(self, message: Union[str, bytes, bytearray, memoryview]) -> None:
        """Send a whole message now, without waiting for the write buffer to
        drain (the callback interface and broadcast use this; check
        :attr:`write_buffer_size` to apply your own backpressure)."""
        kind = type(message)
        if kind is bytes or kind is str:
            opcode = 2 if kind is bytes else 1
            masked = self._mask_frames
            # An unmasked bytes payload from PASS_THROUGH_SIZE on goes out
            # after its header, uncopied (send_binary).
            if self._gates.fast_send and (
                kind is str or masked or len(message) < PASS_THROUGH_SIZE
            ):
                if cython.compiled:
                    frame = codec.build_message(opcode, message, masked)
                else:
                    frame = build_frame(opcode, message, mask=masked)
                self.transport.write(frame)
                return
        self._send_general(message)

    def _send_general(self, message: Union[str, bytes, bytearray, memoryview]) -> None:
        """send_nowait() through the protocol: bytes-like payloads, a large
        payload (written after its header, uncopied), an extension, a closed
        connection, bytes waiting to go out first."""
        protocol = self.protocol
        try:
            if isinstance(message, str):
                protocol.send_text(message)
            elif isinstance(message, (bytes, bytearray, memoryview)):
                protocol.send_binary(message)
            else:
                raise TypeError(
                    f"message must be str or bytes-like, not {type(message).__name__}"
                )
        except InvalidState:
            raise self._closed_exc() from None
        self._flush()

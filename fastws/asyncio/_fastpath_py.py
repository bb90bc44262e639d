"""A connection's hot methods: the pure-Python twin of :mod:`fastws.asyncio._fastpath`.

:class:`~fastws.asyncio.connection.Connection` inherits the three methods the
event loop and the application call for every read and every message,
``get_buffer``, ``buffer_updated`` and ``send_nowait``, from ``FastPath``: the
compiled one when the compiled codec is active, this one otherwise. Both run
the same steps:

- each frame of a read is taken in order, as soon as it is parsed: a whole,
  unfragmented text or binary frame goes from the read buffer through the
  parser straight to the Listener's ``on_message`` (or to the queue of
  ``recv()``); any other frame (control frames, fragments, compressed frames,
  invalid UTF-8) goes to the sans-I/O protocol
  (:meth:`~fastws.protocol.Protocol.receive_frame`), and the events and bytes
  it causes are handled at once. So a reply sent from ``on_message`` goes out
  before anything that a later frame causes (a pong, the echo of a close
  frame), however the peer's frames fall into reads;
- the protocol says when (:attr:`~fastws.protocol.Protocol.fast_parser`,
  :attr:`~fastws.protocol.Protocol.fast_delivery`) and takes the parser's
  errors and the frame still arriving at the end of a read
  (:meth:`~fastws.protocol.Protocol.receive_frames`); the handshake, and
  everything after our close frame, go through
  :meth:`~fastws.protocol.Protocol.receive_data`;
- once a callback fails the connection, nothing more of the read is processed
  (RFC 6455 section 7.1.7);
- a whole message sent while nothing else is queued is framed and written at
  once (:attr:`~fastws.protocol.Protocol.fast_send`); anything else goes
  through :meth:`~fastws.protocol.Protocol.send_text` or
  :meth:`~fastws.protocol.Protocol.send_binary`.

So both give the same messages, the same bytes on the wire and the same errors.
"""

from __future__ import annotations

import asyncio
import logging

from ..codec import build_frame
from ..exceptions import InvalidState, ProtocolError
from ..frames import Opcode
from ..protocol import CONNECTING, OPEN
from ..protocol import PASS_THROUGH_SIZE as _PASS_THROUGH

__all__ = ["FastPath", "IMPLEMENTATION"]

IMPLEMENTATION = "python"

logger = logging.getLogger("fastws")

_OP_TEXT = Opcode.TEXT
_OP_BINARY = Opcode.BINARY


def _plain_message(frame):
    """The message a whole, unextended text or binary frame carries; None for
    any other frame, and for text that is not valid UTF-8 (the protocol then
    says where, and fails the connection)."""
    if not frame.fin or frame.rsv1:
        return None
    op = frame.opcode
    if op is _OP_BINARY:
        return frame.payload
    if op is _OP_TEXT:
        try:
            return frame.payload.decode()
        except UnicodeDecodeError:
            return None
    return None


class FastPath(asyncio.BufferedProtocol):
    """Base of :class:`~fastws.asyncio.connection.Connection`: reading into the
    shared read buffer, and :meth:`send_nowait`."""

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_buf  # type: ignore[attr-defined]

    def buffer_updated(self, nbytes: int) -> None:
        buffer = self._read_buf  # type: ignore[attr-defined]
        if not 0 <= nbytes <= len(buffer):
            raise ValueError(f"{nbytes} bytes read into a buffer of {len(buffer)}")
        self._feed_read(buffer[:nbytes])

    def _feed_read(self, data) -> None:
        """One read's bytes (from the read buffer, or trailing the handshake)."""
        protocol = self.protocol  # type: ignore[attr-defined]
        parser = protocol.gates.fast_parser
        if parser is None:
            if protocol.state is CONNECTING:
                data = bytes(data)  # the handshake parsers may keep what they get
            self.data_received(data)  # type: ignore[attr-defined]
            return
        error = None
        try:
            frames = parser.feed(data)
        except ProtocolError as exc:
            frames, error = exc.frames, exc
        if frames and not self._deliver(protocol, frames, error):
            return
        if error is not None:
            self._frames_received([], error)  # type: ignore[attr-defined]
        elif parser.pending() is not None:
            self._frames_received([], None)  # type: ignore[attr-defined]
        elif protocol.gates.has_data_to_send:
            self._flush()  # type: ignore[attr-defined]  # bytes a callback queued itself

    def _deliver(self, protocol, frames: list, error) -> bool:
        """Each frame in order: a plain message to on_message or the recv()
        queue, anything else through the protocol. False if the read is over
        (reading stopped, or a callback closed the connection)."""
        on_message = self._on_message  # type: ignore[attr-defined]
        direct = protocol.gates.fast_delivery
        for i, frame in enumerate(frames):
            message = _plain_message(frame) if direct else None
            if message is None:
                if not self._frame_received(frame):  # type: ignore[attr-defined]
                    return False  # what follows a close frame or a failure is discarded
                direct = protocol.gates.fast_delivery
            elif on_message is None:
                self._enqueue(message)
            else:
                try:
                    on_message(self, message)
                except Exception:
                    self._listener_failed("on_message")  # type: ignore[attr-defined]
                if protocol.state is not OPEN:
                    # The callback failed or closed the connection: the protocol
                    # takes the rest (and discards it after a failure).
                    self._frames_received(frames[i + 1:], error)  # type: ignore[attr-defined]
                    return False
        return True

    def _enqueue(self, message) -> None:
        """A message for recv(): to its waiter, or to the queue, pausing reading
        when the queue reaches max_queue. Once our close frame is out and the
        peer's is awaited, reading goes on only to find it (see the
        connection's _flush): what does not fit is dropped, never paused for.
        (Messages before the peer's own close frame are all kept.)"""
        waiter = self._recv_waiter  # type: ignore[attr-defined]
        messages = self._messages  # type: ignore[attr-defined]
        if waiter is not None and not messages:
            self._recv_waiter = None
            if not waiter.done():
                waiter.set_result(message)
                return
        max_queue = self.max_queue  # type: ignore[attr-defined]
        if max_queue is None or len(messages) + 1 < max_queue:
            messages.append(message)
            return
        protocol = self.protocol  # type: ignore[attr-defined]
        if protocol.close_sent is not None and protocol.close_rcvd is None:
            if len(messages) >= max_queue:
                logger.debug("dropped a message received while closing: queue full")
            else:
                messages.append(message)
            return
        messages.append(message)
        if not self._reading_paused:  # type: ignore[attr-defined]
            self._reading_paused = True
            self.transport.pause_reading()  # type: ignore[attr-defined]

    def send_nowait(self, message) -> None:
        """Send a whole message now, without waiting for the write buffer to
        drain (the callback interface and broadcast use this; check
        :attr:`write_buffer_size` to apply your own backpressure)."""
        kind = type(message)
        protocol = self.protocol  # type: ignore[attr-defined]
        if kind is bytes:
            if len(message) < _PASS_THROUGH or protocol.mask_frames:
                if protocol.gates.fast_send:
                    self.transport.write(build_frame(2, message, mask=protocol.mask_frames))  # type: ignore[attr-defined]
                    return
        elif kind is str:
            if protocol.gates.fast_send:
                self.transport.write(build_frame(1, message, mask=protocol.mask_frames))  # type: ignore[attr-defined]
                return
        self._send_general(message)

    def _send_general(self, message) -> None:
        """send_nowait() through the protocol: bytes-like payloads, a large
        payload (written after its header, uncopied), an extension, a closed
        connection, bytes waiting to go out first."""
        protocol = self.protocol  # type: ignore[attr-defined]
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
            raise self._closed_exc() from None  # type: ignore[attr-defined]
        out = protocol.chunks_to_send()
        if len(out) == 1:
            self.transport.write(out[0])  # type: ignore[attr-defined]
        else:  # a large payload after its header
            self._writelines(out)  # type: ignore[attr-defined]

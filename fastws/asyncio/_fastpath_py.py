"""A connection's hot methods: the pure-Python twin of :mod:`fastws.asyncio._fastpath`.

:class:`~fastws.asyncio.connection.Connection` inherits the three methods the
event loop and the application call for every read and every message,
``get_buffer``, ``buffer_updated`` and ``send_nowait``, from ``FastPath``: the
compiled one when the compiled codec is active, this one otherwise. Both run
the same steps:

- a read of whole, unfragmented text or binary frames goes from the read buffer
  through the parser straight to the Listener's ``on_message`` (or to the queue
  of ``recv()``), one message at a time, so a reply sent from ``on_message``
  goes out before anything that later frames of the same read cause (a pong, the
  echo of a close frame);
- whatever else comes (control frames, fragments, compressed frames, invalid
  UTF-8, protocol errors, a frame still arriving, the handshake) is handed to the
  sans-I/O protocol where it was met
  (:meth:`fastws.protocol.Protocol.message_parser` says when the shortcut is
  allowed, and :meth:`~fastws.protocol.Protocol.receive_frames` takes the rest);
- a whole message sent while nothing else is queued is framed and written at
  once (:meth:`~fastws.protocol.Protocol.direct_send_ok`); anything else goes
  through :meth:`~fastws.protocol.Protocol.send_text` or
  :meth:`~fastws.protocol.Protocol.send_binary`.

So both give the same messages, the same bytes on the wire and the same errors.
"""

from __future__ import annotations

import asyncio

from ..codec import build_frame
from ..exceptions import InvalidState, ProtocolError
from ..frames import Opcode
from ..protocol import _PASS_THROUGH, CONNECTING, OPEN

__all__ = ["FastPath", "IMPLEMENTATION"]

IMPLEMENTATION = "python"

_OP_TEXT = Opcode.TEXT
_OP_BINARY = Opcode.BINARY


class FastPath(asyncio.BufferedProtocol):
    """Base of :class:`~fastws.asyncio.connection.Connection`: reading into the
    shared read buffer, and :meth:`send_nowait`."""

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_buf  # type: ignore[attr-defined]

    def buffer_updated(self, nbytes: int) -> None:
        data = self._read_buf[:nbytes]  # type: ignore[attr-defined]
        protocol = self.protocol  # type: ignore[attr-defined]
        parser = protocol.message_parser()
        if parser is None:
            if protocol.state is CONNECTING:
                data = data.tobytes()  # the handshake parsers may keep what they get
            self.data_received(data)  # type: ignore[attr-defined]
            return
        try:
            frames = parser.feed(data)
        except ProtocolError as exc:
            self._frames_received(exc.frames, exc)  # type: ignore[attr-defined]
            return
        n = len(frames)
        i = self._deliver(frames, n)
        if i < n:
            self._frames_received(frames[i:], None)  # type: ignore[attr-defined]
        elif parser.pending() is not None:
            self._frames_received([], None)  # type: ignore[attr-defined]
        elif protocol.state is not OPEN or protocol._out:
            # A callback closed the connection, or queued bytes of its own.
            self._flush()  # type: ignore[attr-defined]

    def _deliver(self, frames: list, n: int) -> int:
        """Deliver frames[0], frames[1]... while they are plain messages; the
        index of the first one that is not (n if all were)."""
        on_message = self._on_message  # type: ignore[attr-defined]
        for i in range(n):
            frame = frames[i]
            if not frame.fin or frame.rsv1:
                return i
            op = frame.opcode
            if op is _OP_BINARY:
                message = frame.payload
            elif op is _OP_TEXT:
                try:
                    message = frame.payload.decode()
                except UnicodeDecodeError:
                    return i  # the protocol reports where, and fails the connection
            else:
                return i
            if on_message is not None:
                try:
                    on_message(self, message)
                except Exception:
                    self._listener_failed("on_message")  # type: ignore[attr-defined]
            else:
                self._enqueue(message)
        return n

    def _enqueue(self, message) -> None:
        """A message for recv(): to its waiter, or to the queue (pausing reading
        when the queue reaches max_queue)."""
        waiter = self._recv_waiter  # type: ignore[attr-defined]
        messages = self._messages  # type: ignore[attr-defined]
        if waiter is not None and not messages:
            self._recv_waiter = None
            if not waiter.done():
                waiter.set_result(message)
                return
        messages.append(message)
        max_queue = self.max_queue  # type: ignore[attr-defined]
        if max_queue is not None and len(messages) >= max_queue and not self._reading_paused:  # type: ignore[attr-defined]
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
                if protocol.direct_send_ok():
                    self.transport.write(build_frame(2, message, mask=protocol.mask_frames))  # type: ignore[attr-defined]
                    return
        elif kind is str:
            if protocol.direct_send_ok():
                self.transport.write(build_frame(1, message, mask=protocol.mask_frames))  # type: ignore[attr-defined]
                return
        self._send_general(message)

    def _send_general(self, message) -> None:
        """send_nowait() through the protocol: bytes-like payloads, a large
        payload (written after its header, uncopied), an extension, a closed
        connection, bytes waiting to go out first."""
        protocol = self.protocol  # type: ignore[attr-defined]
        try:
            if type(message) is str:
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

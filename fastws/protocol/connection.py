"""The :class:`Protocol`: one WebSocket connection without I/O, made of a frame
reader, a message assembler, a message writer and the closing handshake."""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Union

from .. import codec as _default_codec
from ..events import Close, Ping, Pong
from ..exceptions import InvalidState, ProtocolError
from ..frames import CloseCode
from .assembler import MessageAssembler
from .closing import ClosingHandshake
from .reader import FrameReader
from .types import DEFAULT_MAX_SIZE, Gates, MaxSize, Side, State, split_max_size
from .writer import MessageWriter

__all__ = ["Protocol"]

CONNECTING = State.CONNECTING
OPEN = State.OPEN
CLOSING = State.CLOSING
CLOSED = State.CLOSED
SERVER = Side.SERVER
CLIENT = Side.CLIENT

_TEXT = 1
_BINARY = 2
_CONT = 0
_CLOSE = 8
_PING = 9
_PONG = 10
_NO_STATUS = CloseCode.NO_STATUS_RCVD


def _close_code(code: int) -> int:
    """``code`` as a CloseCode member when it has one, as an int otherwise."""
    code = int(code)
    member: int = CloseCode._value2member_map_.get(code, code)  # type: ignore[assignment]
    return member


def _truncate_reason(text: str) -> str:
    """``text`` cut to fit a close frame (123 bytes of UTF-8)."""
    data = text.encode("utf-8")
    if len(data) <= 123:
        return text
    return data[:120].decode("utf-8", "ignore") + "..."


class Protocol:
    """A WebSocket connection after the opening handshake, and the common part of
    :class:`~fastws.protocol.ServerProtocol` and
    :class:`~fastws.protocol.ClientProtocol`.

    Use it directly for a connection whose handshake was done elsewhere: it
    starts OPEN.

    Args:
        side: Which end of the connection this is.
        state: CONNECTING (the subclasses) or OPEN.
        max_size: The limit on a received message, across its fragments
            (None: no limit), or ``(message, fragment)`` to limit each
            fragment too.
        codec: A module with the codec's names (``FrameParser``,
            ``Utf8Validator``, ``build_frame``, ``build_header``,
            ``plain_message``, ``parse_close``, ``build_close``); default
            :mod:`fastws.codec`, the active implementation. Tests pass
            :mod:`fastws._codec_py` or :mod:`fastws._speedups`.
        extensions: Negotiated :class:`~fastws.extensions.Extension` objects.
        subprotocol: The subprotocol agreed on, if any.
        defer_failure: Also an attribute, which a driver may set before data
            arrives. A protocol error of the peer stops reading at once and is
            recorded in :attr:`error` and :attr:`pending_failure`, but its close
            frame is sent by :meth:`fail_pending`, which the driver calls once
            the application has taken the messages that came before the
            error. Without it (the default) the close frame is queued at once.

    Raises:
        TypeError: ``side`` is not a :class:`~fastws.protocol.Side`.
        ValueError: ``max_size`` is negative, ``state`` is neither CONNECTING
            nor OPEN, or more than one extension uses RSV1.
    """

    # Slots: a server holds one protocol per open connection. (The subclasses
    # keep a __dict__ for their own attributes, which stays small.)
    __slots__ = (
        "side",
        "_max_size",
        "codec",
        "_build_close",
        "_parse_close",
        "gates",
        "_closing",
        "_reader",
        "_assembler",
        "_writer",
        "mask_frames",
        "subprotocol",
        "extensions",
        "_ext",
        "defer_failure",
        "defer_trailing",
        "_trailing",
        "_events",
    )

    def __init__(
        self,
        side: Side,
        *,
        state: State = State.OPEN,
        max_size: MaxSize = DEFAULT_MAX_SIZE,
        codec: Any = None,
        extensions: Optional[Sequence[Any]] = None,
        subprotocol: Optional[str] = None,
        defer_failure: bool = False,
    ) -> None:
        if not isinstance(side, Side):
            raise TypeError(f"side must be a Side, not {side!r}")
        max_size, max_fragment = split_max_size(max_size)
        self.side = side
        self._max_size = max_size
        if codec is None:
            codec = _default_codec
        self.codec = codec
        self._build_close = codec.build_close
        self._parse_close = codec.parse_close
        #: The driver's go-aheads (see :class:`~fastws.protocol.Gates`).
        self.gates = Gates()
        self._closing = ClosingHandshake(side, State(state))
        frame_limit = max_size
        if max_fragment is not None and (max_size is None or max_fragment < max_size):
            frame_limit = max_fragment
        self._reader = FrameReader(
            codec, self.gates, mask_required=side is SERVER, max_size=frame_limit
        )
        self._assembler = MessageAssembler(codec, self.gates, max_size, max_fragment)
        self._writer = MessageWriter(codec, self.gates, mask=side is CLIENT)
        #: True on the client side, which masks every frame it sends.
        self.mask_frames = side is CLIENT
        #: Subprotocol agreed during the opening handshake, or None.
        self.subprotocol: Optional[str] = subprotocol
        #: Negotiated extensions.
        self.extensions: List[Any] = []
        self._ext: Any = None
        if extensions:
            self._set_extensions(extensions)
        #: See the class docstring: set it for drivers that deliver messages
        #: asynchronously.
        self.defer_failure = defer_failure
        #: Set by a driver that feeds frames itself (see
        #: :attr:`Gates.fast_parser`): bytes that came after the opening
        #: handshake in the same read are kept for :meth:`trailing_data`
        #: instead of going to :meth:`receive_data`, so that the driver
        #: handles them as any later read.
        self.defer_trailing = False
        self._trailing = b""
        self._events: List[Any] = []
        if self._closing.state is OPEN:
            self._start_frames()

    def _set_extensions(self, extensions: Sequence[Any]) -> None:
        self.extensions = list(extensions)
        users = [ext for ext in self.extensions if getattr(ext, "uses_rsv1", False)]
        if len(users) > 1:
            raise ValueError("at most one extension may use RSV1")
        self._ext = users[0] if users else None

    def _start_frames(self) -> None:
        """The connection is open: frames flow both ways."""
        self._closing.open()
        ext = self._ext
        self._reader.start(allow_rsv1=ext is not None)
        self._assembler.start(ext)
        self._writer.open(ext)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.side.name} {self.state.name}>"

    # --- state ----------------------------------------------------------------------

    @property
    def max_size(self) -> Optional[int]:
        """The limit on a received message, set at construction (None: no limit)."""
        return self._max_size

    @property
    def state(self) -> State:
        """The connection's :class:`~fastws.protocol.State`."""
        return self._closing.state

    @property
    def close_rcvd(self) -> Optional[Close]:
        """The close frame received (:class:`~fastws.events.Close`), or None; a
        ``Close(1006)`` once the stream ended without one on an open connection."""
        return self._closing.close_rcvd

    @property
    def close_sent(self) -> Optional[Close]:
        """The close frame sent (:class:`~fastws.events.Close`), or None."""
        return self._closing.close_sent

    @property
    def close_rcvd_then_sent(self) -> Optional[bool]:
        """Once both close frames went through: True if the peer closed first
        (we echoed), False if we did; None until then."""
        return self._closing.close_rcvd_then_sent

    @property
    def error(self) -> Optional[BaseException]:
        """The exception that ended the connection abnormally: a
        :class:`~fastws.exceptions.ProtocolError` for bad frames, an
        :class:`~fastws.exceptions.InvalidHandshake` for a failed opening
        handshake; None otherwise."""
        return self._closing.error

    @property
    def pending_failure(self) -> Optional[ProtocolError]:
        """With ``defer_failure``: the peer's protocol error whose close frame
        waits for :meth:`fail_pending`, or None."""
        return self._closing.pending_failure

    @property
    def close_code(self) -> Optional[int]:
        """Code of the close frame received (1005 if it had none); 1006 if the
        connection ended without one; None while it is not over."""
        closing = self._closing
        if closing.close_rcvd is not None:
            return closing.close_rcvd.code
        if closing.state is CLOSED and closing.opened:
            return CloseCode.ABNORMAL_CLOSURE
        return None

    @property
    def close_reason(self) -> Optional[str]:
        """Reason of the close frame received; ``""`` if none; None while open."""
        closing = self._closing
        if closing.close_rcvd is not None:
            return closing.close_rcvd.reason
        if closing.state is CLOSED and closing.opened:
            return ""
        return None

    def should_close_transport(self) -> bool:
        """True when the TCP connection should be closed, after writing
        :meth:`data_to_send`: a server after the closing handshake or after
        failing the connection, either side after a failed opening handshake or
        after the end of the stream."""
        return self._closing.close_transport

    def close_expected(self) -> bool:
        """True while waiting for the peer to finish closing (state CLOSING):
        the driver should close the connection itself after a timeout."""
        return self._closing.state is CLOSING

    # --- input ----------------------------------------------------------------------

    def receive_data(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Feed bytes received from the network.

        Then send what :meth:`data_to_send` returns, and take
        :meth:`events_received`. Data that arrives after a close frame, after a
        failure or after the end of the stream is discarded.
        """
        reader = self._reader
        if reader.reading:
            try:
                frames = reader.parser.feed(data)
            except ProtocolError as exc:
                self.receive_frames(exc.frames, exc)
                return
            self.receive_frames(frames)
        elif self._closing.state is CONNECTING and not self._closing.eof:
            self._receive_handshake(data)

    def receive_frames(self, frames: List[Any], error: Optional[ProtocolError] = None) -> None:
        """The second half of :meth:`receive_data`, for a driver that feeds
        :attr:`Gates.fast_parser` itself: turn the ``frames`` the parser
        returned (or, with ``error``, raised with) into events, and look at the
        frame still arriving. Frames that come once reading has stopped (a
        callback of the driver failed the connection meanwhile) are discarded,
        as data received after a failure is.

        Args:
            frames: Frames the parser returned, in order.
            error: The parser's error, after those frames, if it raised one.
        """
        reader = self._reader
        if not reader.reading:
            return
        # Frames completed before an error come first: nothing is lost.
        ok = self._process(frames) if frames else True
        if error is not None:
            if ok:
                self._fail(error)
            return
        if reader.reading:
            pending = reader.parser.pending()
            if pending is not None:
                op, fin, rsv1, received = pending
                try:
                    self._assembler.check_pending(op, fin, rsv1, received, reader.parser.pending_payload)
                except ProtocolError as exc:
                    self._fail(exc)

    def receive_frame(self, frame: Any) -> bool:
        """One frame from :attr:`Gates.fast_parser` that the driver does not
        deliver itself, turned into events.

        Returns:
            False once reading has stopped (a close frame, a failure): the
            frames after it are then discarded, as :meth:`receive_data` does.
        """
        if not self._reader.reading:
            return False
        return self._process([frame])

    def _receive_trailing(self, data: bytes) -> None:
        """Bytes that came after the opening handshake, in the same read."""
        if self.defer_trailing:
            self._trailing += data
        else:
            self.receive_data(data)

    def trailing_data(self) -> bytes:
        """With ``defer_trailing``: the bytes that came after the opening
        handshake in the same read (frames already), once; ``b""`` if none."""
        data, self._trailing = self._trailing, b""
        return data

    def receive_eof(self) -> None:
        """The peer closed its side of the TCP connection (or the connection was
        lost). Reports ``Close(1006)`` if no close frame was received on an
        open connection. The state becomes CLOSED. Idempotent."""
        closing = self._closing
        if closing.eof:
            return
        self._reader.stop()
        if closing.state is CONNECTING:
            closing.eof = True
            self._handshake_eof()
            self._reader.stop()
            closing.end_of_stream(report=False)
        else:
            report = closing.end_of_stream()
            if report is not None:
                self._events.append(report)
        self._assembler.stop()
        self._writer.end()

    def _receive_handshake(self, data: Union[bytes, bytearray, memoryview]) -> None:
        raise InvalidState("no opening handshake on this side")

    def _handshake_eof(self) -> None:
        """The stream ended during the opening handshake (the subclasses)."""

    def _process(self, frames: List[Any]) -> bool:
        """Turn frames into events. False once reading has stopped."""
        append = self._events.append
        gates = self.gates
        plain = self._assembler.plain_message
        direct = gates.fast_delivery
        for frame in frames:
            if direct:
                message = plain(frame)
                if message is not None:
                    append(message)
                    continue
            if not self._frame(frame):
                return False
            direct = gates.fast_delivery
        return True

    def _frame(self, frame: Any) -> bool:
        """A frame that is not a whole plain message. False once reading has
        stopped."""
        op = frame.opcode
        if op >= _CLOSE:
            if op == _PING:
                payload = frame.payload
                self._events.append(Ping(payload))
                self._writer.pong(payload)  # reading: the peer has not closed
                return True
            if op == _PONG:
                self._events.append(Pong(frame.payload))
                return True
            return self._receive_close(frame.payload)
        try:
            message = self._assembler.assemble(frame)
        except ProtocolError as exc:
            return self._fail(exc)
        if message is not None:
            self._events.append(message)
        return True

    def _receive_close(self, payload: bytes) -> bool:
        try:
            code, reason = self._parse_close(payload)
        except ProtocolError as exc:
            return self._fail(exc)
        closing = self._closing
        close = Close(code, reason)
        self._events.append(close)  # reading stops at the first close frame: the only one
        # RFC 6455 section 1.4: after a close frame, discard whatever follows.
        self._stop_reading()
        if closing.receive_close(close):
            # Section 5.5.1: answer, echoing the code and the reason, as the
            # websockets library does (no code: empty payload).
            self._writer.control(_CLOSE, b"" if code == _NO_STATUS else self._build_close(code, reason))
            closing.echo_close(Close(code, reason))
            self._writer.close()
        closing.done()
        return False

    def _stop_reading(self) -> None:
        self._reader.stop()
        self._assembler.stop()

    def _fail(self, exc: ProtocolError) -> bool:
        """Fail the connection (section 7.1.7) because of ``exc``. Returns False."""
        closing = self._closing
        closing.record_error(exc)
        if self.defer_failure and closing.state is OPEN:
            # Stop reading now; the close frame waits for fail_pending().
            self._stop_reading()
            if closing.pending_failure is None:
                closing.pending_failure = exc
            return False
        self._send_failure_close(exc.close_code, _truncate_reason(str(exc)))
        return False

    def fail_pending(self) -> None:
        """Send the close frame of the :attr:`pending_failure` (with
        ``defer_failure``), if any: the connection is then failed as it would
        have been at once without ``defer_failure``."""
        closing = self._closing
        exc = closing.pending_failure
        if exc is None:
            return
        closing.pending_failure = None
        if closing.state is OPEN:
            self._send_failure_close(exc.close_code, _truncate_reason(str(exc)))

    def _send_failure_close(self, code: int, reason: str) -> None:
        self._stop_reading()
        closing = self._closing
        if closing.close_sent is None and closing.state is OPEN:
            self._writer.control(_CLOSE, self._build_close(code, reason))
            closing.echo_close(Close(_close_code(code), reason))
            self._writer.close()
        closing.done()

    # --- output ---------------------------------------------------------------------

    def events_received(self) -> List[Any]:
        """Events since the last call, in order: ``str`` (text message),
        ``bytes`` (binary message), :class:`~fastws.events.Ping`,
        :class:`~fastws.events.Pong`, :class:`~fastws.events.Close`, and the
        handshake's :class:`~fastws.http11.Request` or
        :class:`~fastws.http11.Response`."""
        events = self._events
        if not events:
            return []
        self._events = []
        return events

    def data_to_send(self) -> bytes:
        """Bytes to write to the network, since the last call (``b""`` if none)."""
        return self._writer.data_to_send()

    def chunks_to_send(self) -> List[bytes]:
        """:meth:`data_to_send` as a list of chunks, not joined (``[]`` if none),
        for ``transport.writelines()``: a large ``bytes`` payload sent by a
        server is one chunk of its own, after its frame header, so it reaches
        the socket without being copied (writev or sendmsg, where the
        transport has them)."""
        return self._writer.chunks_to_send()

    # --- sending --------------------------------------------------------------------

    def can_send_frame(self) -> bool:
        """True if a new data message may be sent now: the connection is OPEN
        and no fragmented message is being sent (for broadcasting prebuilt
        frames)."""
        return self._closing.state is OPEN and self._writer.fragmented is None

    def _check_new_message(self) -> None:
        state = self._closing.state
        if state is not OPEN:
            raise InvalidState(f"cannot send a message: connection is {state.name}")
        if self._writer.fragmented is not None:
            raise InvalidState(
                "a fragmented message is being sent: finish it with send_continuation()"
            )

    def send_text(self, data: Union[str, bytes], fin: bool = True) -> None:
        """Send a text message, or its first frame if ``fin`` is False.

        Args:
            data: A ``str``, or ``bytes`` already encoded as UTF-8 (not checked).
            fin: False to start a fragmented message, which
                :meth:`send_continuation` goes on with.

        Raises:
            InvalidState: The connection is not OPEN, or a fragmented message
                is being sent.
            TypeError: ``data`` is neither ``str`` nor bytes-like.
        """
        if self._closing.state is not OPEN or self._writer.fragmented is not None:
            self._check_new_message()
        self._writer.send(_TEXT, data, fin)

    def send_binary(self, data: Union[bytes, bytearray, memoryview], fin: bool = True) -> None:
        """Send a binary message, or its first frame if ``fin`` is False.

        Raises:
            InvalidState: The connection is not OPEN, or a fragmented message
                is being sent.
            TypeError: ``data`` is not bytes-like.
        """
        if self._closing.state is not OPEN or self._writer.fragmented is not None:
            self._check_new_message()
        self._writer.send(_BINARY, data, fin)

    def send_continuation(self, data: Union[str, bytes], fin: bool) -> None:
        """Send the next frame of the message started by ``send_text(...,
        fin=False)`` or ``send_binary(..., fin=False)``; ``fin=True`` ends it.

        Raises:
            InvalidState: No fragmented message is being sent, or the
                connection is not OPEN.
        """
        if self._writer.fragmented is None:
            raise InvalidState("no fragmented message is being sent")
        state = self._closing.state
        if state is not OPEN:
            raise InvalidState(f"cannot send a message: connection is {state.name}")
        self._writer.send(_CONT, data, fin)

    def _check_control(self, what: str) -> None:
        state = self._closing.state
        if state is not OPEN and state is not CLOSING:
            raise InvalidState(f"cannot send a {what}: connection is {state.name}")

    def send_ping(self, data: Union[str, bytes] = b"") -> None:
        """Send a ping (125 bytes of payload at most).

        Raises:
            InvalidState: The connection is neither OPEN nor CLOSING.
            ValueError: ``data`` is longer than 125 bytes.
        """
        self._check_control("ping")
        self._writer.control(_PING, data)

    def send_pong(self, data: Union[str, bytes] = b"") -> None:
        """Send an unsolicited pong (pings are answered automatically).

        Raises:
            InvalidState: The connection is neither OPEN nor CLOSING.
            ValueError: ``data`` is longer than 125 bytes.
        """
        self._check_control("pong")
        self._writer.control(_PONG, data)

    def hold_pongs(self) -> None:
        """Stop answering pings as they come, until :meth:`release_pongs`.

        The driver calls it while the peer does not read what is written to
        it, so that a peer that pings without reading cannot make us buffer a
        pong per ping. Meanwhile only the most recent ping gets its pong (RFC
        6455 section 5.5.3 allows that), when the pongs are released.
        """
        self._writer.hold_pongs()

    def release_pongs(self) -> None:
        """Answer pings as they come again, and send the pong held by
        :meth:`hold_pongs`, if any (while the connection is open)."""
        self._writer.release_pongs(self._closing.state is OPEN)

    def send_close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake: send a close frame. The state becomes
        CLOSING; nothing but pings and pongs may be sent after it. With a
        :attr:`pending_failure`, the failure's close frame is sent instead.

        Args:
            code: The close code; 1005 with no reason sends a close frame
                without a code.
            reason: The reason, 123 bytes of UTF-8 at most.

        Raises:
            InvalidState: The connection is not OPEN.
            ValueError: ``code`` may not be sent, or ``reason`` is too long.
        """
        closing = self._closing
        if closing.pending_failure is not None:
            self.fail_pending()
            return
        if closing.state is not OPEN:
            raise InvalidState(f"cannot send a close frame: connection is {closing.state.name}")
        payload = self._build_close(code, reason)  # ValueError for unsendable codes
        self._writer.control(_CLOSE, payload)
        closing.send_close(Close(_close_code(code), reason))
        self._writer.close()
        self._reader.closing()

    def fail(self, code: int = CloseCode.INTERNAL_ERROR, reason: str = "") -> None:
        """Fail the connection from this side (RFC 6455 section 7.1.7): send a
        close frame with ``code`` unless one was sent, and stop reading. A
        server then closes TCP; a client waits for the server to. With a
        :attr:`pending_failure`, the failure's close frame is sent instead.

        Raises:
            InvalidState: The opening handshake is not over.
            ValueError: ``code`` may not be sent.
        """
        closing = self._closing
        if closing.state is CONNECTING:
            raise InvalidState("cannot fail a connection during the opening handshake")
        if closing.pending_failure is not None:
            self.fail_pending()
            return
        if closing.state is CLOSED:
            return
        reason = _truncate_reason(reason)
        self._build_close(code, reason)  # ValueError for an unsendable code, before any change
        self._send_failure_close(code, reason)

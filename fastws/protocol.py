"""The WebSocket protocol without I/O: bytes in, events and bytes out.

A :class:`Protocol` never touches a socket, a clock or an event loop. Whoever
drives it (the asyncio layer, a thread, trio...) does this, in a loop::

    protocol.receive_data(data)          # or receive_eof() when the stream ends
    for event in protocol.events_received():
        ...                               # str, bytes, Ping, Pong, Close, Request/Response
    transport.write(protocol.data_to_send())
    if protocol.should_close_transport():
        transport.close()

and calls ``send_text()``, ``send_binary()``, ``send_ping()``, ``send_close()``...
to send, each followed by writing :meth:`~Protocol.data_to_send`.

States (:class:`State`): a client or server starts CONNECTING, is OPEN once the
opening handshake succeeds, CLOSING once it has sent a close frame, and CLOSED
when it is done: after the end of the stream, after a server completes or fails
the closing handshake (it then closes TCP, RFC 6455 section 7.1.1), or after a
failed opening handshake. A client that has sent and received a close frame stays
CLOSING until the server closes TCP; the I/O layer bounds that wait with a timeout
(:meth:`Protocol.close_expected` tells when to start it).

Bad input from the peer never raises: the protocol sends a close frame with the
right code (1002, 1007, 1009...), records the exception in :attr:`Protocol.error`,
and stops reading. Raising is kept for mistakes of the caller
(:class:`~fastws.exceptions.InvalidState`, ``ValueError``). Errors are found as
early as the bytes show them: invalid UTF-8 in a text frame fails the connection
as soon as the piece that contains it arrives, before the frame is complete, and
a data frame that breaks the fragmentation rules fails it from its header.

A driver that hands messages to an application asynchronously can set
``defer_failure``: the close frame of a failure then waits for
:meth:`Protocol.fail_pending`, which the driver calls once the application has
taken the messages received before the bad frame, so that its replies to them
go out before the close frame (the error is an event in the stream like the
others, after the messages that preceded it).

The handshake objects: a server's first event is the client's
:class:`~fastws.http11.Request` (also kept in ``protocol.request``), a client's
first event is the server's :class:`~fastws.http11.Response` (``protocol.response``).
"""

from __future__ import annotations

import enum
import struct
from typing import Any, Callable, List, Optional, Sequence, Union

from . import codec as _default_codec
from .events import Close, Ping, Pong
from .exceptions import (
    InvalidHandshake,
    InvalidMessage,
    InvalidState,
    InvalidUTF8,
    PayloadTooBig,
    ProtocolError,
)
from .frames import CloseCode, Opcode
from .handshake import (
    WebSocketURI,
    build_request,
    build_response,
    check_origin,
    error_response,
    generate_key,
    negotiate_client_extensions,
    negotiate_server_extensions,
    offered_subprotocols,
    parse_uri,
    reject,
    select_subprotocol,
    validate_request,
    validate_response,
)
from .http11 import HeadersLike, Request, RequestParser, Response, ResponseParser
from .version import __version__

__all__ = [
    "State",
    "Side",
    "Protocol",
    "ServerProtocol",
    "ClientProtocol",
    "DEFAULT_MAX_SIZE",
    "PASS_THROUGH_SIZE",
    "Gates",
]

#: Default limit on the size of a received message: 1 MiB.
DEFAULT_MAX_SIZE = 1 << 20
_PRODUCT = f"fastws/{__version__}"

_OP_TEXT = Opcode.TEXT
_OP_BINARY = Opcode.BINARY
_CONT = 0
_TEXT = 1
_BINARY = 2
_CLOSE = 8
_PING = 9
_PONG = 10


class State(enum.IntEnum):
    """Connection state (RFC 6455 sections 4 and 7)."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


class Side(enum.Enum):
    """Which end of the connection a protocol is: it decides masking (RFC 6455
    section 5.3) and who closes TCP first (section 7.1.1)."""

    SERVER = "server"
    CLIENT = "client"


CONNECTING = State.CONNECTING
OPEN = State.OPEN
CLOSING = State.CLOSING
CLOSED = State.CLOSED
SERVER = Side.SERVER
CLIENT = Side.CLIENT


#: Payloads from this size on, when they are ``bytes`` and go out unmasked and
#: unextended, are queued after their header instead of copied into one frame
#: (:meth:`Protocol.chunks_to_send`); a driver sends such a payload through the
#: protocol rather than with ``build_frame``, to keep it uncopied.
PASS_THROUGH_SIZE = 1 << 16
_PASS_THROUGH = PASS_THROUGH_SIZE
_HEADER_16 = struct.Struct("!BBH").pack
_HEADER_64 = struct.Struct("!BBQ").pack


def _header(opcode: int, fin: bool, length: int) -> bytes:
    """The header of an unmasked frame without reserved bits."""
    b0 = opcode | 0x80 if fin else opcode
    if length < 126:
        return bytes((b0, length))
    if length < 1 << 16:
        return _HEADER_16(b0, 126, length)
    return _HEADER_64(b0, 127, length)


def _close_code(code: int) -> int:
    """``code`` as a CloseCode member when it has one, as an int otherwise."""
    code = int(code)
    return CloseCode._value2member_map_.get(code, code)  # type: ignore[return-value]


def _truncate_reason(text: str) -> str:
    """``text`` cut to fit a close frame (123 bytes of UTF-8)."""
    data = text.encode("utf-8")
    if len(data) <= 123:
        return text
    return data[:120].decode("utf-8", "ignore") + "..."


class Gates:
    """What a driver may do on its own, without calling the protocol: one
    attribute read per question. The protocol keeps them current.

    Attributes:
        fast_parser: The :class:`~fastws.codec.FrameParser`, for a driver that
            feeds it itself, while the connection is OPEN and reading; else None
            (the driver then calls :meth:`Protocol.receive_data`).
        fast_delivery: True if the next whole (FIN), non-RSV1 text or binary
            frame is a message the driver may deliver itself
            (:func:`~fastws.codec.plain_message`).
        fast_send: True if a whole text or binary message may be written now as
            ``build_frame(opcode, payload, mask=protocol.mask_frames)`` without
            the protocol: OPEN, no fragmented message being sent, no extension,
            nothing waiting in :meth:`Protocol.data_to_send`.
        has_data_to_send: True while :meth:`Protocol.data_to_send` has bytes.
    """

    __slots__ = ("fast_parser", "fast_delivery", "fast_send", "has_data_to_send")

    def __init__(self) -> None:
        self.fast_parser: Any = None
        self.fast_delivery = False
        self.fast_send = False
        self.has_data_to_send = False

    def __repr__(self) -> str:
        return (
            f"Gates(fast_parser={self.fast_parser!r}, fast_delivery={self.fast_delivery},"
            f" fast_send={self.fast_send}, has_data_to_send={self.has_data_to_send})"
        )


class Protocol:
    """A WebSocket connection after the opening handshake, or the common part of
    :class:`ServerProtocol` and :class:`ClientProtocol`.

    Use it directly for a connection whose handshake was done elsewhere: it starts
    OPEN. ``max_size`` bounds a received message, across its fragments (None: no
    limit). ``codec`` is a module with the codec's names (default
    :mod:`fastws.codec`, the active implementation); tests pass
    :mod:`fastws._codec_py` or :mod:`fastws._speedups`. ``extensions`` are
    negotiated :class:`~fastws.extensions.Extension` objects.

    ``defer_failure`` (also an attribute, which a driver may set before data
    arrives): a protocol error of the peer stops reading at once and is recorded
    in :attr:`error` and :attr:`pending_failure`, but its close frame is sent by
    :meth:`fail_pending`, which the driver calls once the application has taken
    the messages that came before the error. Without it (the default) the close
    frame is queued at once.
    """

    def __init__(
        self,
        side: Side,
        *,
        state: State = State.OPEN,
        max_size: Optional[int] = DEFAULT_MAX_SIZE,
        codec: Any = None,
        extensions: Optional[Sequence[Any]] = None,
        subprotocol: Optional[str] = None,
        defer_failure: bool = False,
    ) -> None:
        if not isinstance(side, Side):
            raise TypeError(f"side must be a Side, not {side!r}")
        if max_size is not None and max_size < 0:
            raise ValueError(f"max_size must be >= 0 or None, got {max_size}")
        self.side = side
        self.state = State(state)
        self.max_size = max_size
        if codec is None:
            codec = _default_codec
        self.codec = codec
        self._build_frame = codec.build_frame
        self._parse_close = codec.parse_close
        self._build_close = codec.build_close
        self._mask = True if side is CLIENT else None
        #: Subprotocol agreed during the opening handshake, or None.
        self.subprotocol: Optional[str] = subprotocol
        #: Negotiated extensions.
        self.extensions: List[Any] = []
        self._ext: Any = None  # the extension that uses RSV1, if any
        self._set_extensions(extensions or ())
        #: Close frame received (:class:`~fastws.events.Close`), or None.
        self.close_rcvd: Optional[Close] = None
        #: Close frame sent (:class:`~fastws.events.Close`), or None.
        self.close_sent: Optional[Close] = None
        #: Once both are known: True if the peer closed first (we echoed), False
        #: if we did; None until both close frames went through.
        self.close_rcvd_then_sent: Optional[bool] = None
        #: True on the client side, which masks every frame it sends.
        self.mask_frames = side is CLIENT
        #: The exception that ended the connection abnormally: a ProtocolError
        #: for bad frames, an InvalidHandshake for a failed opening handshake.
        self.error: Optional[BaseException] = None
        #: See the class docstring: set it for drivers that deliver messages
        #: asynchronously.
        self.defer_failure = defer_failure
        #: Set by a driver that feeds frames itself (see :attr:`fast_parser`):
        #: bytes that came after the opening handshake in the same read are kept
        #: for :meth:`trailing_data` instead of going to :meth:`receive_data`,
        #: so that the driver handles them as any later read.
        self.defer_trailing = False
        self._trailing = b""
        #: With ``defer_failure``: the peer's protocol error whose close frame
        #: waits for :meth:`fail_pending`, or None.
        self.pending_failure: Optional[ProtocolError] = None
        #: The driver's go-aheads (see :class:`Gates`).
        self.gates = Gates()
        self._events: list = []
        self._out: list = []
        self._reading = False  # True while frames are parsed
        self._parser: Any = None  # the FrameParser, once frames flow
        self._feed: Optional[Callable] = None
        self._peek: Optional[Callable] = None  # parser.pending
        self._peek_payload: Optional[Callable] = None  # parser.pending_payload
        # Payload bytes of the parser's incomplete frame already validated as
        # UTF-8 (fail fast on a text frame that arrives in pieces).
        self._checked = 0
        self._fast = True  # unfragmented plain frames skip _frame()
        self._eof = False  # receive_eof() was called
        self._close_transport = False
        # Message being received in fragments: opcode (None: none), parts, size so
        # far, whether the extension decodes it.
        self._frag_op: Optional[int] = None
        self._frag_buf = bytearray()  # their payloads, one after the other
        self._frag_size = 0
        self._frag_ext = False
        self._utf8: Any = None  # Utf8Validator, created on the first fragmented text
        # See hold_pongs(): whether pongs wait, and the one waiting.
        self._holding_pongs = False
        self._held_pong: Optional[bytes] = None
        # Opcode of the message being sent in fragments, None if none.
        self._send_frag: Optional[int] = None
        if self.state is OPEN:
            self._start_frames()
        elif self.state is not CONNECTING:
            raise ValueError(f"a protocol starts CONNECTING or OPEN, not {self.state.name}")
        self._update_gates()

    def _update_gates(self) -> None:
        """Recompute :attr:`fast_parser`, :attr:`fast_delivery` and
        :attr:`fast_send` from what they depend on. Called wherever that changes
        (the state, reading, the fragmented messages in progress either way, a
        frame partly validated, the extension), so that a driver pays one
        attribute read per question, not a method call."""
        reading = self._reading
        is_open = self.state is OPEN
        gates = self.gates
        gates.fast_parser = self._parser if reading and is_open else None
        gates.fast_delivery = reading and self._frag_op is None and not self._checked and self._fast
        gates.fast_send = (
            is_open and self._send_frag is None and self._ext is None and not self._out
        )
        gates.has_data_to_send = bool(self._out)

    def _queue(self, *chunks: bytes) -> None:
        """Queue bytes for :meth:`data_to_send`."""
        self._out += chunks
        gates = self.gates
        gates.has_data_to_send = True
        gates.fast_send = False

    def _set_extensions(self, extensions: Sequence[Any]) -> None:
        self.extensions = list(extensions)
        users = [ext for ext in self.extensions if getattr(ext, "uses_rsv1", False)]
        if len(users) > 1:
            raise ValueError("at most one extension may use RSV1")
        self._ext = users[0] if users else None
        # The gates are updated by the callers: __init__ at its end, the opening
        # handshake by _start_frames().

    def _start_frames(self) -> None:
        # A frame cannot exceed its message, so the parser refuses an oversize
        # frame from its header alone. Its limit applies to control frames too:
        # below 125 bytes, it is raised to 125 and data frames are all checked
        # here instead (the slow path).
        max_size = self.max_size
        self._fast = max_size is None or max_size >= 125
        parser = self.codec.FrameParser(
            mask_required=self.side is SERVER,
            max_size=max_size if self._fast else 125,
            allow_rsv1=self._ext is not None,
        )
        self._parser = parser
        self._feed = parser.feed
        self._peek = parser.pending
        self._peek_payload = parser.pending_payload
        self._reading = True
        self._update_gates()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.side.name} {self.state.name}>"

    # --- input --------------------------------------------------------------------

    def receive_data(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Feed bytes received from the network. Then call :meth:`data_to_send`
        and send what it returns, and :meth:`events_received`. Data that arrives
        after a close frame, after a failure or after the end of the stream is
        discarded."""
        if self._reading:
            try:
                frames = self._feed(data)  # type: ignore[misc]
            except ProtocolError as exc:
                self.receive_frames(exc.frames, exc)
                return
            self.receive_frames(frames)
        elif self.state is CONNECTING and not self._eof:
            self._receive_handshake(data)

    def receive_frames(self, frames: list, error: Optional[ProtocolError] = None) -> None:
        """The second half of :meth:`receive_data`: turn ``frames``, which the
        parser returned (or, with ``error``, raised with), into events. For
        drivers that feed the parser themselves (see :attr:`fast_parser`).
        Frames that come once reading has stopped (a callback of the driver
        failed the connection meanwhile) are discarded, as data received
        after a failure is."""
        if not self._reading:
            return
        # Frames completed before an error come first: nothing is lost.
        ok = self._process_any(frames) if frames else True
        if error is not None:
            if ok:
                self._fail(error)
            return
        if self._reading:
            pending = self._peek()  # type: ignore[misc]
            if pending is not None:
                self._check_pending(*pending)

    def receive_frame(self, frame: Any) -> bool:
        """One frame from :attr:`fast_parser`, turned into events.
        False once reading has stopped (a close frame, a failure): the frames
        after it are then discarded, as :meth:`receive_data` does."""
        if not self._reading:
            return False
        return self._process_any([frame])

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
        lost). Reports ``Close(1006)`` if no close frame was received on an open
        connection. The state becomes CLOSED. Idempotent."""
        if self._eof:
            return
        self._eof = True
        self._reading = False
        self._close_transport = True
        self.pending_failure = None
        if self.state is CONNECTING:
            self._handshake_eof()
            self.state = CLOSED
            self._update_gates()
            return
        if self.close_rcvd is None and self._opened():
            self._report_close(Close(CloseCode.ABNORMAL_CLOSURE, ""))
        self._drop_fragments()
        self.state = CLOSED
        self._update_gates()

    def _opened(self) -> bool:
        return self._feed is not None

    def _receive_handshake(self, data) -> None:  # pragma: no cover - overridden
        raise InvalidState("no opening handshake on this side")

    def _handshake_eof(self) -> None:  # pragma: no cover - overridden
        pass

    def _process(self, frames: list) -> bool:
        """Turn frames into events. False once reading has stopped."""
        append = self._events.append
        # Both codecs return Opcode members: identity tests are much cheaper than
        # IntEnum equality, and locals are the cheapest names.
        text = _OP_TEXT
        binary = _OP_BINARY
        frag = self._frag_op
        fast = self._fast
        no_ext = self._ext is None
        for frame in frames:
            if frag is None and fast and frame.fin and (no_ext or not frame.rsv1):
                op = frame.opcode
                if op is text:
                    try:
                        append(frame.payload.decode())
                    except UnicodeDecodeError as exc:
                        return self._fail(
                            InvalidUTF8(f"invalid UTF-8 in text message at byte {exc.start}")
                        )
                    continue
                if op is binary:
                    append(frame.payload)
                    continue
            if not self._frame(frame):
                return False
            frag = self._frag_op
        return True

    def _process_any(self, frames: list) -> bool:
        """:meth:`_process`, or :meth:`_process_checked` when the first frame is
        the one partly validated as it arrived."""
        if self._checked:
            return self._process_checked(frames)
        return self._process(frames)

    def _process_checked(self, frames: list) -> bool:
        """:meth:`_process` when the first frame is the one whose payload was
        partly validated as it arrived (:meth:`_check_pending`)."""
        skip, self._checked = self._checked, 0
        self._update_gates()
        if not self._frame(frames[0], skip):
            return False
        return self._process(frames[1:]) if len(frames) > 1 else True

    def _check_pending(self, op, fin: bool, rsv1: bool, received: int) -> None:
        """Look at the data frame that the parser is receiving, before it ends:
        a frame that breaks the fragmentation rules fails the connection from
        its header, and invalid UTF-8 in text fails it as soon as it arrives
        (RFC 6455 section 8.1; the Autobahn testsuite calls it failing fast)."""
        frag = self._frag_op
        if op == _TEXT:
            if frag is not None:
                self._fail(self._order_error(op))
                return
            if rsv1:  # compressed: validated once inflated
                return
            validator = self._utf8
            if self._checked == 0:
                if validator is None:
                    validator = self._utf8 = self.codec.Utf8Validator()
                else:
                    validator.reset()
        elif op == _CONT:
            if frag is None:
                self._fail(self._order_error(op))
                return
            if frag != _TEXT or self._frag_ext:
                return
            validator = self._utf8
        elif op == _BINARY:
            if frag is not None:
                self._fail(self._order_error(op))
            return
        else:
            return
        checked = self._checked
        if received <= checked:
            return
        data = self._peek_payload(checked)  # type: ignore[misc]
        if not validator.feed(data):
            self._fail(
                InvalidUTF8(
                    "invalid UTF-8 in text message, in a frame still arriving, by byte"
                    f" {self._frag_size + checked + len(data)}"
                )
            )
            return
        self._checked = checked + len(data)
        self._update_gates()

    def _order_error(self, op: int) -> ProtocolError:
        """A data frame that the fragmentation state does not allow."""
        if op == _CONT:
            return ProtocolError("continuation frame without a message to continue")
        return ProtocolError(
            f"{Opcode(op).name} frame in the middle of a fragmented message"
            " (expected a continuation frame)"
        )

    def _frame(self, frame, skip: int = 0) -> bool:
        """Everything but an unfragmented, unextended data frame. ``skip``: bytes
        of its payload already validated as UTF-8 while it arrived."""
        op = frame.opcode
        if op >= _CLOSE:
            if op == _PING:
                payload = frame.payload
                self._events.append(Ping(payload))
                # Answer while the peer has not closed (reading means it has not).
                pong = self._build_frame(_PONG, payload, mask=self._mask)
                if self._holding_pongs:
                    self._held_pong = pong  # the most recent ping only
                else:
                    self._queue(pong)
                return True
            if op == _PONG:
                self._events.append(Pong(frame.payload))
                return True
            return self._receive_close(frame.payload)

        first = op != _CONT
        if first:
            if self._frag_op is not None:
                return self._fail(self._order_error(op))
            self._frag_op = op
            self._frag_ext = frame.rsv1
            self._frag_size = 0
            self._update_gates()
        elif self._frag_op is None:
            return self._fail(self._order_error(op))

        fin = frame.fin
        payload = frame.payload
        max_size = self.max_size
        if self._frag_ext:
            remaining = None if max_size is None else max_size - self._frag_size
            try:
                payload = self._ext.decode(payload, first=first, fin=fin, max_size=remaining)
            except ProtocolError as exc:
                return self._fail(exc)
        size = self._frag_size + len(payload)
        if max_size is not None and size > max_size:
            return self._fail(
                PayloadTooBig(
                    f"message of {'' if fin else 'at least '}{size} bytes"
                    f" exceeds max_size of {max_size} bytes"
                )
            )
        text = self._frag_op == _TEXT

        if fin and first:  # a whole message in one frame, through the extension
            self._frag_op = None
            self._update_gates()
            if text:
                try:
                    self._events.append(bytes(payload).decode())
                except UnicodeDecodeError as exc:
                    return self._fail(
                        InvalidUTF8(f"invalid UTF-8 in text message at byte {exc.start}")
                    )
            else:
                self._events.append(bytes(payload))
            return True

        if text:
            validator = self._utf8
            if skip:  # the validator has seen the first bytes already
                payload_rest = memoryview(payload)[skip:]
            else:
                payload_rest = payload
                if first:
                    if validator is None:
                        validator = self._utf8 = self.codec.Utf8Validator()
                    else:
                        validator.reset()
            if not validator.feed(payload_rest):
                return self._fail(
                    InvalidUTF8(f"invalid UTF-8 in text message, in the frame ending at byte {size}")
                )
            if fin and not validator.complete:
                return self._fail(
                    InvalidUTF8("text message ends in the middle of a UTF-8 sequence")
                )
        # One buffer, not a list of parts: memory follows the message's size,
        # not its number of fragments (a flood of 1-byte or empty fragments).
        if payload:
            self._frag_buf += payload
        if not fin:
            self._frag_size = size
            return True
        data = bytes(self._frag_buf)
        self._drop_fragments()
        self._events.append(data.decode() if text else data)
        return True

    def _drop_fragments(self) -> None:
        self._frag_op = None
        self._frag_buf = bytearray()
        self._frag_size = 0
        self._frag_ext = False
        self._update_gates()

    def _receive_close(self, payload: bytes) -> bool:
        try:
            code, reason = self._parse_close(payload)
        except ProtocolError as exc:
            return self._fail(exc)
        close = Close(code, reason)
        self._report_close(close)
        # RFC 6455 section 1.4: after a close frame, discard whatever follows.
        self._reading = False
        self._drop_fragments()
        if self.close_sent is None:
            # Section 5.5.1: answer, echoing the code (no code: empty payload).
            echo = b"" if code == CloseCode.NO_STATUS_RCVD else self._build_close(code)
            self._queue(self._build_frame(_CLOSE, echo, mask=self._mask))
            self.close_sent = Close(code, "")
            self.close_rcvd_then_sent = True
            self._send_frag = None
        else:
            self.close_rcvd_then_sent = False
        self._closing_done()
        return False

    def _report_close(self, close: Close) -> None:
        if self.close_rcvd is None:
            self.close_rcvd = close
            self._events.append(close)

    def _closing_done(self) -> None:
        """The closing handshake is over (or failed): the server closes TCP now;
        the client waits for the server to (section 7.1.1)."""
        if self.side is SERVER or self._eof:
            self._close_transport = True
            self.state = CLOSED
        else:
            self.state = CLOSING
        self._update_gates()

    def _fail(self, exc: ProtocolError) -> bool:
        """Fail the connection (section 7.1.7) because of ``exc``. Returns False."""
        if self.error is None:
            self.error = exc
        self._checked = 0
        if self.defer_failure and self.state is OPEN:
            # Stop reading now; the close frame waits for fail_pending().
            self._reading = False
            self._drop_fragments()
            if self.pending_failure is None:
                self.pending_failure = exc
            return False
        self._send_failure_close(exc.close_code, _truncate_reason(str(exc)))
        return False

    def fail_pending(self) -> None:
        """Send the close frame of the :attr:`pending_failure` (with
        ``defer_failure``), if any: the connection is then failed as it would
        have been at once without ``defer_failure``."""
        exc = self.pending_failure
        if exc is None:
            return
        self.pending_failure = None
        if self.state is OPEN:
            self._send_failure_close(exc.close_code, _truncate_reason(str(exc)))

    def _send_failure_close(self, code: int, reason: str) -> None:
        self._reading = False
        self._drop_fragments()
        if self.close_sent is None and self.state is OPEN:
            self._queue(
                self._build_frame(_CLOSE, self._build_close(code, reason), mask=self._mask)
            )
            self.close_sent = Close(_close_code(code), reason)
            self._send_frag = None
        self._closing_done()

    # --- output -------------------------------------------------------------------

    def events_received(self) -> list:
        """Events since the last call, in order: ``str`` (text message), ``bytes``
        (binary message), :class:`~fastws.events.Ping`, :class:`~fastws.events.Pong`,
        :class:`~fastws.events.Close`, and the handshake Request/Response."""
        events = self._events
        if not events:
            return []
        self._events = []
        return events

    def data_to_send(self) -> bytes:
        """Bytes to write to the network, since the last call (``b""`` if none)."""
        out = self._out
        if not out:
            return b""
        self._out = []
        self._update_gates()
        return out[0] if len(out) == 1 else b"".join(out)

    def chunks_to_send(self) -> List[bytes]:
        """:meth:`data_to_send` as a list of chunks, not joined (``[]`` if none),
        for ``transport.writelines()``: a large ``bytes`` payload sent by a server
        is one chunk of its own, after its frame header, so it reaches the socket
        without being copied (writev or sendmsg, where the transport has them)."""
        out = self._out
        if not out:
            return out
        self._out = []
        self._update_gates()
        return out

    def should_close_transport(self) -> bool:
        """True when the TCP connection should be closed, after writing
        :meth:`data_to_send`: a server after the closing handshake or after
        failing the connection, either side after a failed opening handshake or
        after the end of the stream."""
        return self._close_transport

    def close_expected(self) -> bool:
        """True while waiting for the peer to finish closing (state CLOSING): the
        I/O layer should close the connection itself after a timeout."""
        return self.state is CLOSING

    @property
    def close_code(self) -> Optional[int]:
        """Code of the close frame received (1005 if it had none); 1006 if the
        connection ended without one; None while it is not over."""
        if self.close_rcvd is not None:
            return self.close_rcvd.code
        if self.state is CLOSED and self._opened():
            return CloseCode.ABNORMAL_CLOSURE
        return None

    @property
    def close_reason(self) -> Optional[str]:
        """Reason of the close frame received; ``""`` if none; None while open."""
        if self.close_rcvd is not None:
            return self.close_rcvd.reason
        if self.state is CLOSED and self._opened():
            return ""
        return None

    # --- sending ------------------------------------------------------------------

    def can_send_frame(self) -> bool:
        """True if a new data message may be sent now: the connection is OPEN and
        no fragmented message is being sent. (For broadcasting prebuilt frames.)"""
        return self.state is OPEN and self._send_frag is None

    def _check_new_message(self) -> None:
        if self.state is not OPEN:
            raise InvalidState(f"cannot send a message: connection is {self.state.name}")
        if self._send_frag is not None:
            raise InvalidState(
                "a fragmented message is being sent: finish it with send_continuation()"
            )

    def send_text(self, data: Union[str, bytes], fin: bool = True) -> None:
        """Send a text message, or its first frame if ``fin`` is False. ``data``
        is a ``str``, or ``bytes`` already encoded as UTF-8 (not checked)."""
        if self.state is not OPEN or self._send_frag is not None:
            self._check_new_message()
        if self._ext is None:
            if len(data) >= _PASS_THROUGH and self._mask is None and type(data) is bytes:
                self._queue(_header(_TEXT, fin, len(data)), data)
            else:
                self._queue(self._build_frame(_TEXT, data, fin=fin, mask=self._mask))
        else:
            self._send_extended(_TEXT, data, fin)
        if not fin:  # once the frame is built: a payload refused starts nothing
            self._send_frag = _TEXT
            self._update_gates()

    def send_binary(self, data: Union[bytes, bytearray, memoryview], fin: bool = True) -> None:
        """Send a binary message, or its first frame if ``fin`` is False."""
        if self.state is not OPEN or self._send_frag is not None:
            self._check_new_message()
        if self._ext is None:
            if len(data) >= _PASS_THROUGH and self._mask is None and type(data) is bytes:
                self._queue(_header(_BINARY, fin, len(data)), data)
            else:
                self._queue(self._build_frame(_BINARY, data, fin=fin, mask=self._mask))
        else:
            self._send_extended(_BINARY, data, fin)
        if not fin:  # once the frame is built: a payload refused starts nothing
            self._send_frag = _BINARY
            self._update_gates()

    def send_continuation(self, data: Union[str, bytes], fin: bool) -> None:
        """Send the next frame of the message started by ``send_text(...,
        fin=False)`` or ``send_binary(..., fin=False)``; ``fin=True`` ends it."""
        if self._send_frag is None:
            raise InvalidState("no fragmented message is being sent")
        if self.state is not OPEN:
            raise InvalidState(f"cannot send a message: connection is {self.state.name}")
        if self._ext is None:
            if len(data) >= _PASS_THROUGH and self._mask is None and type(data) is bytes:
                self._queue(_header(_CONT, fin, len(data)), data)
            else:
                self._queue(self._build_frame(_CONT, data, fin=fin, mask=self._mask))
        else:
            self._send_extended(_CONT, data, fin)
        if fin:  # once the frame is built: a payload refused ends nothing
            self._send_frag = None
            self._update_gates()

    def _send_extended(self, opcode: int, data, fin: bool) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        first = opcode != _CONT
        payload, rsv1 = self._ext.encode(bytes(data), first=first, fin=fin)
        self._queue(
            self._build_frame(opcode, payload, fin=fin, rsv1=bool(rsv1) and first, mask=self._mask)
        )

    def _check_control(self, what: str) -> None:
        if self.state is not OPEN and self.state is not CLOSING:
            raise InvalidState(f"cannot send a {what}: connection is {self.state.name}")

    def send_ping(self, data: Union[str, bytes] = b"") -> None:
        """Send a ping (125 bytes of payload at most). Allowed while OPEN or CLOSING."""
        self._check_control("ping")
        self._queue(self._build_frame(_PING, data, mask=self._mask))

    def send_pong(self, data: Union[str, bytes] = b"") -> None:
        """Send an unsolicited pong (pings are answered automatically)."""
        self._check_control("pong")
        self._queue(self._build_frame(_PONG, data, mask=self._mask))

    def hold_pongs(self) -> None:
        """Stop answering pings as they come, until :meth:`release_pongs`: the
        driver calls it while the peer does not read what is written to it, so
        that a peer that pings without reading cannot make us buffer a pong per
        ping. Meanwhile only the most recent ping gets its pong (RFC 6455
        section 5.5.3 allows that), when the pongs are released."""
        self._holding_pongs = True

    def release_pongs(self) -> None:
        """Answer pings as they come again, and send the pong held by
        :meth:`hold_pongs`, if any (while the connection is open)."""
        self._holding_pongs = False
        pong, self._held_pong = self._held_pong, None
        if pong is not None and self.state is OPEN:
            self._queue(pong)

    def send_close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake: send a close frame (``code`` 1005 with no
        reason sends one without a code). The state becomes CLOSING; nothing but
        pings and pongs may be sent after it. With a :attr:`pending_failure`, the
        failure's close frame is sent instead."""
        if self.pending_failure is not None:
            self.fail_pending()
            return
        if self.state is not OPEN:
            raise InvalidState(f"cannot send a close frame: connection is {self.state.name}")
        payload = self._build_close(code, reason)  # ValueError for unsendable codes
        self._queue(self._build_frame(_CLOSE, payload, mask=self._mask))
        self.close_sent = Close(_close_code(code), reason)
        self._send_frag = None
        self.state = CLOSING
        self._update_gates()

    def fail(self, code: int = CloseCode.INTERNAL_ERROR, reason: str = "") -> None:
        """Fail the connection from this side (RFC 6455 section 7.1.7): send a
        close frame with ``code`` unless one was sent, and stop reading. A server
        then closes TCP; a client waits for the server to. With a
        :attr:`pending_failure`, the failure's close frame is sent instead."""
        if self.state is CONNECTING:
            raise InvalidState("cannot fail a connection during the opening handshake")
        if self.pending_failure is not None:
            self.fail_pending()
            return
        if self.state is CLOSED:
            return
        reason = _truncate_reason(reason)
        self._build_close(code, reason)  # ValueError for an unsendable code, before any change
        self._send_failure_close(code, reason)


class ServerProtocol(Protocol):
    """Server side: answers the opening handshake, then a :class:`Protocol`.

    Handshake hooks:

    - ``subprotocols``: supported subprotocols in order of preference; the first
      that the client offered is selected (none if no match);
    - ``select_subprotocol(request, offered) -> str | None`` replaces that choice
      (raise :class:`~fastws.exceptions.NegotiationError` to refuse with 400);
    - ``origins``: allowed ``Origin`` values (``None`` in the list allows requests
      without one); others get 403;
    - ``process_request(request) -> Response | None``: runs first, on every
      request; a Response is sent instead of the handshake (404 for an unknown
      path, 401, a health check...); None continues with the handshake;
    - ``extensions``: :class:`~fastws.extensions.ServerExtensionFactory` objects;
    - ``extra_headers``: added to the 101 response.

    With ``auto_accept`` (the default), :meth:`receive_data` answers as soon as
    the request is complete. With ``auto_accept=False``, the Request event is
    emitted and the protocol waits: call ``send_response(protocol.accept())`` or
    ``send_response(protocol.reject(status, text))`` (for async checks). Bytes
    received meanwhile are kept for after the handshake.

    A bad request gets an HTTP error (400, 403, 405, 426, 431...) with a short
    text body; :attr:`error` then holds the InvalidHandshake, and the state is
    CLOSED with :meth:`should_close_transport` True.
    """

    def __init__(
        self,
        *,
        subprotocols: Optional[Sequence[str]] = None,
        select_subprotocol: Optional[Callable[[Request, Sequence[str]], Optional[str]]] = None,
        origins: Optional[Sequence[Optional[str]]] = None,
        process_request: Optional[Callable[[Request], Optional[Response]]] = None,
        extensions: Optional[Sequence[Any]] = None,
        extra_headers: Optional[HeadersLike] = None,
        server_header: Optional[str] = _PRODUCT,
        auto_accept: bool = True,
        max_size: Optional[int] = DEFAULT_MAX_SIZE,
        codec: Any = None,
        defer_failure: bool = False,
        **http_limits: int,
    ) -> None:
        super().__init__(
            SERVER, state=CONNECTING, max_size=max_size, codec=codec, defer_failure=defer_failure
        )
        self.subprotocols = list(subprotocols) if subprotocols is not None else None
        self.select_subprotocol = select_subprotocol
        self.origins = list(origins) if origins is not None else None
        self.process_request = process_request
        self.extension_factories = list(extensions or ())
        self.extra_headers = extra_headers
        self.server_header = server_header
        self.auto_accept = auto_accept
        #: The client's handshake request, once received.
        self.request: Optional[Request] = None
        #: The response sent, once sent.
        self.response: Optional[Response] = None
        self._http = RequestParser(**http_limits)
        self._pending = bytearray()
        self._accepted: Optional[tuple] = None

    def _receive_handshake(self, data) -> None:
        if self.request is not None:  # waiting for send_response()
            self._pending += data
            return
        try:
            request = self._http.feed(data)
        except InvalidMessage as exc:
            self.error = exc
            self.send_response(error_response(exc, server_header=self.server_header))
            return
        if request is None:
            return
        self.request = request
        self._pending += self._http.trailing
        self._events.append(request)
        if not self.auto_accept:
            return
        response = None
        if self.process_request is not None:
            try:
                response = self.process_request(request)
            except Exception as exc:  # a bug in the hook: answer 500, keep it
                self.error = exc
                response = self.reject(500, "Failed to open a WebSocket connection: internal error.\n")
        if response is None:
            response = self.accept()
        self.send_response(response)

    def accept(self, request: Optional[Request] = None) -> Response:
        """Validate the request and negotiate: returns the 101 response, or the
        HTTP error response (and records :attr:`error`) if the request is bad.
        Send it with :meth:`send_response`."""
        if request is None:
            request = self.request
        if request is None:
            raise InvalidState("no request received yet")
        try:
            key = validate_request(request)
            check_origin(request, self.origins)
            offered = offered_subprotocols(request)
            if self.select_subprotocol is not None:
                subprotocol = self.select_subprotocol(request, offered)
                if subprotocol is not None and subprotocol not in offered:
                    raise ValueError(
                        f"select_subprotocol returned {subprotocol!r}, which the client"
                        " did not offer"
                    )
            else:
                subprotocol = select_subprotocol(offered, self.subprotocols)
            ext_header, extensions = negotiate_server_extensions(
                request, self.extension_factories
            )
        except InvalidHandshake as exc:
            self.error = exc
            return error_response(exc, server_header=self.server_header)
        except Exception as exc:  # a bug in a hook or factory: 500, keep it
            self.error = exc
            return self.reject(500, "Failed to open a WebSocket connection: internal error.\n")
        self._accepted = (subprotocol, extensions)
        return build_response(
            key,
            subprotocol=subprotocol,
            extensions=ext_header,
            extra_headers=self.extra_headers,
            server_header=self.server_header,
        )

    def reject(self, status: int, text: str) -> Response:
        """An HTTP error response with a plain-text body, to :meth:`send_response`."""
        return reject(status, text, server_header=self.server_header)

    def send_response(self, response: Response) -> None:
        """Send the handshake response. 101 opens the connection (and processes
        any frames that came with the request); anything else refuses it and
        closes: the state becomes CLOSED."""
        if self.state is not CONNECTING or self.response is not None:
            raise InvalidState(f"cannot send a handshake response: connection is {self.state.name}")
        self.response = response
        if response.status_code == 101:
            subprotocol, extensions = self._accepted or (None, [])
            self.subprotocol = subprotocol
            self._set_extensions(extensions)
            self._queue(response.serialize())
            self.state = OPEN
            self._start_frames()
            pending, self._pending = self._pending, bytearray()
            if pending:
                self._receive_trailing(bytes(pending))
            return
        headers = response.headers
        if "Content-Length" not in headers and "Transfer-Encoding" not in headers:
            response.headers = headers = headers.copy()
            headers["Content-Length"] = str(len(response.body))
        if "Connection" not in headers:
            response.headers = headers = headers.copy()
            headers["Connection"] = "close"
        self._queue(response.serialize())
        self._pending = bytearray()
        self._close_transport = True
        self.state = CLOSED
        self._update_gates()

    def _handshake_eof(self) -> None:
        if self.error is None and self.response is None:
            self.error = InvalidMessage("connection closed during the opening handshake")


class ClientProtocol(Protocol):
    """Client side: sends the opening handshake request, checks the response,
    then a :class:`Protocol`.

    ``uri`` is a ``ws://`` or ``wss://`` URI (or a parsed
    :class:`~fastws.handshake.WebSocketURI`). The request is built at once, with
    a fresh key, and is the first thing :meth:`data_to_send` returns; it is kept in
    :attr:`request`. ``subprotocols`` and ``extensions``
    (:class:`~fastws.extensions.ClientExtensionFactory` objects) are offered;
    ``extra_headers`` are added to the request.

    A refusal (any status but 101) or a bad response ends the connection: the
    state becomes CLOSED and :attr:`error` holds the InvalidHandshake
    (:class:`~fastws.exceptions.InvalidStatus` with the response for a refusal).
    """

    def __init__(
        self,
        uri: Union[str, WebSocketURI],
        *,
        origin: Optional[str] = None,
        subprotocols: Optional[Sequence[str]] = None,
        extensions: Optional[Sequence[Any]] = None,
        extra_headers: Optional[HeadersLike] = None,
        user_agent: Optional[str] = _PRODUCT,
        max_size: Optional[int] = DEFAULT_MAX_SIZE,
        codec: Any = None,
        defer_failure: bool = False,
        **http_limits: int,
    ) -> None:
        super().__init__(
            CLIENT, state=CONNECTING, max_size=max_size, codec=codec, defer_failure=defer_failure
        )
        self.uri = parse_uri(uri) if isinstance(uri, str) else uri
        self.key = generate_key()
        self.available_subprotocols = list(subprotocols) if subprotocols else None
        self.extension_factories = list(extensions or ())
        offers = [(f.name, f.offer()) for f in self.extension_factories]
        #: The handshake request sent.
        self.request: Request = build_request(
            self.uri,
            self.key,
            origin=origin,
            subprotocols=self.available_subprotocols,
            extensions=offers or None,
            extra_headers=extra_headers,
            user_agent=user_agent,
        )
        #: The server's response, once received.
        self.response: Optional[Response] = None
        self._http = ResponseParser(**http_limits)
        self._queue(self.request.serialize())

    def _receive_handshake(self, data) -> None:
        try:
            response = self._http.feed(data)
        except InvalidMessage as exc:
            self._handshake_failed(exc)
            return
        if response is not None:
            self._receive_response(response)

    def _receive_response(self, response: Response) -> None:
        self.response = response
        self._events.append(response)
        try:
            subprotocol = validate_response(response, self.key, self.available_subprotocols)
            extensions = negotiate_client_extensions(response.headers, self.extension_factories)
        except InvalidHandshake as exc:
            self._handshake_failed(exc)
            return
        self.subprotocol = subprotocol
        self._set_extensions(extensions)
        self.state = OPEN
        self._start_frames()
        trailing = self._http.trailing
        if trailing:
            self._receive_trailing(trailing)

    def _handshake_failed(self, exc: InvalidHandshake) -> None:
        self.error = exc
        self._close_transport = True
        self.state = CLOSED
        self._update_gates()

    def _handshake_eof(self) -> None:
        try:
            response = self._http.feed_eof()
        except InvalidMessage as exc:
            self._handshake_failed(exc)
            return
        if response is not None and self.response is None:
            self._receive_response(response)

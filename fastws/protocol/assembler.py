"""The message assembler: data frames in, messages out.

It decides which frames are whole plain messages (through the codec's
:func:`~fastws.codec.plain_message`, the one place that rule is written), joins
fragments, checks the fragmentation rules, ``max_size`` and strict UTF-8, and
runs the extension's decoder (permessage-deflate). Invalid UTF-8 fails as soon
as the bytes that show it arrive, even in a frame still arriving (RFC 6455
section 8.1), and a data frame that breaks the fragmentation rules fails from
its header. Errors are raised as :class:`~fastws.exceptions.ProtocolError`
subclasses; the protocol turns them into a close frame.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

from ..exceptions import InvalidUTF8, PayloadTooBig, ProtocolError
from ..frames import Opcode
from .types import Gates

__all__ = ["MessageAssembler"]

Message = Union[str, bytes]

_CONT = 0
_TEXT = 1
_BINARY = 2


def order_error(opcode: int) -> ProtocolError:
    """The error for a data frame that the fragmentation state does not allow."""
    if opcode == _CONT:
        return ProtocolError("continuation frame without a message to continue")
    return ProtocolError(
        f"{Opcode(opcode).name} frame in the middle of a fragmented message"
        " (expected a continuation frame)"
    )


def decode_text(payload: Union[bytes, bytearray]) -> str:
    """A whole text message's payload as ``str`` (strict UTF-8)."""
    try:
        return bytes(payload).decode()
    except UnicodeDecodeError as exc:
        raise InvalidUTF8(f"invalid UTF-8 in text message at byte {exc.start}") from None


class MessageAssembler:
    """Turns a connection's data frames into messages, and owns
    :attr:`Gates.fast_delivery`.

    Args:
        codec: The codec module (its ``plain_message`` and ``Utf8Validator``).
        gates: The protocol's :class:`~fastws.protocol.Gates`.
        max_size: The limit on a message, across its fragments and after the
            extension's decoding (None: no limit).
        max_fragment: The limit on each fragment, as received (None: no
            limit); the frame parser enforces it, from 125 bytes on.
    """

    __slots__ = (
        "_codec",
        "_gates",
        "max_size",
        "_max_fragment",
        "_fragment_limit",
        "plain_message",
        "_limit_in_parser",
        "_reading",
        "_ext",
        "_op",
        "_buf",
        "_size",
        "_decoded",
        "_utf8",
        "_checked",
    )

    def __init__(
        self, codec: Any, gates: Gates, max_size: Optional[int], max_fragment: Optional[int] = None
    ) -> None:
        self._codec = codec
        self._gates = gates
        self.max_size = max_size
        # The limit on each fragment bounds its inflated size too (the parser
        # bounds what arrives).
        self._fragment_limit = max_fragment
        # A limit on each fragment below 125 bytes is checked here: the frame
        # parser's limit never goes below 125, for control frames.
        self._max_fragment = max_fragment if max_fragment is not None and max_fragment < 125 else None
        #: The codec's ``plain_message``: the message a whole plain frame
        #: carries, or None.
        self.plain_message: Callable[[Any], Optional[Message]] = codec.plain_message
        # The frame parser alone enforces max_size from 125 bytes on (see FrameReader).
        self._limit_in_parser = (max_size is None or max_size >= 125) and self._max_fragment is None
        self._reading = False  # between start() and stop()
        self._ext: Any = None  # the extension that decodes RSV1 frames
        # The message in progress: its opcode (None: none), its payloads so far in
        # one buffer (made with the first payload of a fragmented message),
        # their size, and whether the extension decodes it.
        self._op: Optional[int] = None
        self._buf: Optional[bytearray] = None
        self._size = 0
        self._decoded = False
        self._utf8: Any = None  # Utf8Validator, made on the first fragmented text
        # Payload bytes of the frame still arriving already validated as UTF-8.
        self._checked = 0

    def _update(self) -> None:
        self._gates.fast_delivery = (
            self._reading and self._op is None and not self._checked and self._limit_in_parser
        )

    def start(self, ext: Any) -> None:
        """Frames flow: the opening handshake succeeded, with ``ext`` (the
        negotiated extension that uses RSV1, None if none)."""
        self._ext = ext
        self._reading = True
        self._update()

    def stop(self) -> None:
        """Reading stopped: forget the message in progress."""
        self._reading = False
        self.drop()

    def check_pending(self, op: int, fin: bool, rsv1: bool, received: int, peek: Callable[[int], bytes]) -> None:
        """Look at the data frame that is still arriving (``op``, ``fin``,
        ``rsv1`` and the ``received`` payload bytes, read with ``peek(start)``).

        Raises:
            ProtocolError: The frame breaks the fragmentation rules.
            InvalidUTF8: Its text is not valid UTF-8 so far.
        """
        frag = self._op
        if op == _TEXT:
            if frag is not None:
                raise order_error(op)
            if rsv1:  # compressed: validated once inflated
                return
            validator = self._utf8
            if self._checked == 0:
                if validator is None:
                    validator = self._utf8 = self._codec.Utf8Validator()
                else:
                    validator.reset()
        elif op == _CONT:
            if frag is None:
                raise order_error(op)
            if frag != _TEXT or self._decoded:
                return
            validator = self._utf8
        elif op == _BINARY:
            if frag is not None:
                raise order_error(op)
            return
        else:
            return
        checked = self._checked
        if received <= checked:
            return
        data = peek(checked)
        if not validator.feed(data):
            raise InvalidUTF8(
                "invalid UTF-8 in text message, in a frame still arriving, by byte"
                f" {self._size + checked + len(data)}"
            )
        self._checked = checked + len(data)
        self._update()

    def assemble(self, frame: Any) -> Optional[Message]:
        """A data frame that :attr:`plain_message` did not take (or that came
        while :attr:`Gates.fast_delivery` was False): returns the message it
        ends, or None if the message goes on.

        Raises:
            ProtocolError: The frame breaks the fragmentation rules, or the
                extension cannot decode it.
            PayloadTooBig: The message exceeds ``max_size``.
            InvalidUTF8: A text message is not valid UTF-8.
        """
        skip = self._checked  # bytes of this frame validated while it arrived
        if skip:
            self._checked = 0
            self._update()
        op = frame.opcode
        first = op != _CONT
        if first:
            if self._op is not None:
                raise order_error(op)
            self._op = op
            self._decoded = frame.rsv1
            self._size = 0
            self._update()
        elif self._op is None:
            raise order_error(op)

        fin = frame.fin
        payload = frame.payload
        if self._max_fragment is not None and len(payload) > self._max_fragment:
            raise PayloadTooBig(
                f"frame of {len(payload)} bytes exceeds max_size of {self._max_fragment} bytes"
            )
        max_size = self.max_size
        if self._decoded:
            remaining = None if max_size is None else max_size - self._size
            fragment = self._fragment_limit
            if fragment is not None and remaining is not None and fragment >= remaining:
                fragment = None  # the message's limit binds first
            try:
                payload = self._ext.decode(
                    payload, first=first, fin=fin, max_size=remaining if fragment is None else fragment
                )
            except PayloadTooBig:
                # The extension stops decoding one byte past the limit: said
                # with the user's max_size, as for a message sent as it is.
                if fragment is not None:
                    raise PayloadTooBig(
                        f"frame of at least {fragment + 1} bytes exceeds max_size of {fragment} bytes"
                    ) from None
                if max_size is None:  # (an extension's own limit: its message)
                    raise
                raise PayloadTooBig(
                    f"message of at least {max_size + 1} bytes"
                    f" exceeds max_size of {max_size} bytes"
                ) from None
        size = self._size + len(payload)
        if max_size is not None and size > max_size:
            raise PayloadTooBig(
                f"message of {'' if fin else 'at least '}{size} bytes"
                f" exceeds max_size of {max_size} bytes"
            )
        text = self._op == _TEXT

        if fin and first:  # a whole message in one frame, through the extension
            self._op = None
            self._update()
            return decode_text(payload) if text else bytes(payload)

        if text:
            validator = self._utf8
            if skip:  # the validator has seen the first bytes already
                rest: Any = memoryview(payload)[skip:]
            else:
                rest = payload
                if first:
                    if validator is None:
                        validator = self._utf8 = self._codec.Utf8Validator()
                    else:
                        validator.reset()
            if not validator.feed(rest):
                raise InvalidUTF8(
                    f"invalid UTF-8 in text message, in the frame ending at byte {size}"
                )
            if fin and not validator.complete:
                raise InvalidUTF8("text message ends in the middle of a UTF-8 sequence")
        # One buffer, not a list of parts: memory follows the message's size,
        # not its number of fragments (a flood of 1-byte or empty fragments).
        if payload:
            buf = self._buf
            if buf is None:
                self._buf = bytearray(payload)
            else:
                buf += payload
        if not fin:
            self._size = size
            return None
        data = b"" if self._buf is None else bytes(self._buf)
        self.drop()
        return data.decode() if text else data

    def drop(self) -> None:
        """Forget the message in progress (reading stopped, or it was taken)."""
        self._op = None
        self._buf = None
        self._size = 0
        self._decoded = False
        self._checked = 0
        self._update()

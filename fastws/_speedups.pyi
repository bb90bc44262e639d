# Stub for the compiled codec. fastws._codec_py has the same names and behaviour,
# and its docstrings, which this stub repeats (tests/test_codec_api.py checks).
from typing import Literal

from typing_extensions import Buffer, TypeAlias

from .frames import CloseCode, Opcode

# Any object with the buffer protocol (PEP 688): bytes, bytearray, memoryview
# of any shape, array.array...
_BytesLike: TypeAlias = Buffer

__all__ = [
    "Frame",
    "FrameParser",
    "Utf8Validator",
    "apply_mask",
    "apply_mask_inplace",
    "build_close",
    "build_frame",
    "build_header",
    "parse_close",
    "plain_message",
    "scan_utf8",
    "validate_utf8",
]

def apply_mask(data: _BytesLike, mask: _BytesLike) -> bytes:
    """Mask or unmask a payload: ``data`` XOR-ed with the 4-byte ``mask``.

    RFC 6455 section 5.3: byte ``i`` is XOR-ed with ``mask[i % 4]``, so the
    same call masks and unmasks.

    Args:
        data: The payload, any bytes-like object (one that is not
            contiguous, such as ``view[::2]``, is read in C order, as
            ``bytes(data)`` reads it).
        mask: The masking key, 4 bytes.

    Returns:
        A new ``bytes`` object as long as ``data``.

    Raises:
        TypeError: If ``data`` or ``mask`` is not a bytes-like object.
        ValueError: If ``mask`` is not 4 bytes long.
    """

def apply_mask_inplace(
    buffer: bytearray | memoryview, mask: _BytesLike, phase: int = 0
) -> int:
    """Mask or unmask a writable buffer in place, from key byte ``phase`` on.

    A payload that arrives in pieces is unmasked piece by piece: each call
    returns the phase that the next piece starts at.

    Args:
        buffer: A writable bytes-like object (a ``bytearray``, or a
            ``memoryview`` of one); one that is not contiguous (a strided
            ``memoryview``) must be one-dimensional.
        mask: The masking key, 4 bytes.
        phase: The key byte that the first byte of ``buffer`` is XOR-ed with,
            0 to 3: the number of payload bytes before it, modulo 4.

    Returns:
        ``(phase + n) % 4``, ``n`` being the number of bytes in ``buffer``.

    Raises:
        TypeError: If ``buffer`` is read-only, not a bytes-like object, or
            neither contiguous nor one-dimensional, if ``mask`` is not a
            bytes-like object, or if ``phase`` is not an integer.
        ValueError: If ``mask`` is not 4 bytes long or ``phase`` is not 0 to 3.
    """

def validate_utf8(data: _BytesLike) -> bool:
    """Tell whether ``data`` is valid UTF-8, strictly (RFC 3629).

    Overlong forms, surrogates (U+D800 to U+DFFF), code points above U+10FFFF
    and a sequence cut short by the end of ``data`` are all invalid.

    Args:
        data: Any bytes-like object.

    Returns:
        True if ``data`` is valid UTF-8, False otherwise.

    Raises:
        TypeError: If ``data`` is not a bytes-like object.
    """

class Utf8Validator:
    """Incremental strict UTF-8 validator, for a text that arrives in pieces.

    :meth:`feed` returns False as soon as the bytes fed so far cannot be the
    beginning of valid UTF-8, even in the middle of a multi-byte sequence;
    :attr:`complete` tells whether they end on a code point boundary, that is
    whether the text may end there. Once invalid, a validator stays invalid
    until :meth:`reset`.
    """
    def __init__(self) -> None: ...
    def feed(self, data: _BytesLike) -> bool:
        """Validate the next bytes of the text.

        Args:
            data: The next bytes, any bytes-like object (not looked
                at once the text is invalid).

        Returns:
            True while everything fed since the last :meth:`reset` can be the
            beginning of valid UTF-8; False once it cannot, and from then on.

        Raises:
            TypeError: If ``data`` is not a bytes-like object.
        """
    @property
    def valid(self) -> bool:
        """False once an invalid byte has been fed, until :meth:`reset`."""
    @property
    def complete(self) -> bool:
        """True when the bytes fed so far are valid UTF-8 and end on a code
        point boundary."""
    def reset(self) -> None:
        """Forget everything fed so far, to validate a new text."""

class Frame:
    """One WebSocket frame, its payload unmasked; read-only.

    :class:`FrameParser` makes them from the bytes received.

    Args:
        opcode: The opcode, an :class:`~fastws.frames.Opcode` or its value.
        payload: The payload, any bytes-like object (kept as ``bytes``).
        fin: The FIN bit: False on all but the last frame of a fragmented
            message.
        rsv1: The RSV1 bit (set by permessage-deflate on the first frame of
            a compressed message).
        rsv2: The RSV2 bit.
        rsv3: The RSV3 bit.

    Attributes:
        opcode: The :class:`~fastws.frames.Opcode` member.
        payload: The payload, ``bytes``.
        fin: The FIN bit, a bool.
        rsv1: The RSV1 bit, a bool.
        rsv2: The RSV2 bit, a bool.
        rsv3: The RSV3 bit, a bool.

    Raises:
        ValueError: If ``opcode`` is not an opcode of RFC 6455.
        TypeError: If ``payload`` is not a bytes-like object.
    """
    @property
    def opcode(self) -> Opcode: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def fin(self) -> bool: ...
    @property
    def rsv1(self) -> bool: ...
    @property
    def rsv2(self) -> bool: ...
    @property
    def rsv3(self) -> bool: ...
    def __init__(
        self,
        opcode: int,
        payload: _BytesLike = b"",
        fin: bool = True,
        rsv1: bool = False,
        rsv2: bool = False,
        rsv3: bool = False,
    ) -> None: ...

class FrameParser:
    """Incremental frame parser: :meth:`feed` it bytes, get back whole frames.

    It enforces the rules of RFC 6455 section 5 that a frame shows on its own
    (reserved bits and opcodes, control frame limits, minimal lengths, the
    masking direction), and ``max_size`` from the header alone, before any of
    the payload is buffered. After a :class:`~fastws.exceptions.ProtocolError`
    the parser is failed: every later :meth:`feed` raises the same error. It
    never keeps a reference to the bytes it is fed.

    Args:
        mask_required: True on the server (client frames must be masked),
            False on the client (server frames must not be).
        max_size: The largest payload of one frame, in bytes; None for no
            limit.
        allow_rsv1: Accept RSV1 on the first frame of a data message, for
            permessage-deflate.

    Raises:
        TypeError: If ``max_size`` is neither an int nor None.
        ValueError: If ``max_size`` is negative.
    """
    def __init__(
        self,
        *,
        mask_required: bool,
        max_size: int | None = None,
        allow_rsv1: bool = False,
    ) -> None: ...
    @property
    def buffered(self) -> int:
        """Bytes received and kept for a frame that is not complete yet."""
    def feed(self, data: _BytesLike) -> list[Frame]:
        """Parse the next bytes of the stream.

        Args:
            data: The bytes received, any bytes-like object.

        Returns:
            The frames that these bytes complete, in order (often none, or
            several).

        Raises:
            ProtocolError: If the stream breaks RFC 6455
                (:class:`~fastws.exceptions.PayloadTooBig` for a frame over
                ``max_size``), its ``frames`` attribute holding the frames
                that ``data`` completed before the error; then again, with
                no frames, on every later call.
            TypeError: If ``data`` is not a bytes-like object.
        """
    def pending(self) -> tuple[Opcode, bool, bool, int] | None:
        """The frame whose payload is arriving, while it is incomplete.

        Lets a caller act on a frame before it ends: fail fast on invalid
        UTF-8 in a text frame that arrives in pieces.

        Returns:
            ``(opcode, fin, rsv1, received)`` once the frame's header is
            complete, ``received`` being the number of its payload bytes
            received so far (fewer than its length); None between frames,
            inside a header and after an error.
        """
    def pending_payload(self, start: int = 0) -> bytes:
        """The payload of the :meth:`pending` frame received so far, unmasked.

        Args:
            start: The first payload byte wanted: what a caller has already
                looked at, to get only what arrived since.

        Returns:
            A copy of the payload bytes received from ``start`` on; ``b""``
            when no frame is pending or ``start`` is past what was received.

        Raises:
            TypeError: If ``start`` is not an integer.
            ValueError: If ``start`` is negative.
        """

def plain_message(frame: Frame) -> bytes | str | None:
    """The message that a frame carries, when it is a whole plain message.

    A frame is one when its FIN bit is set and no reserved bit is (no
    extension has to process it), and it is text or binary. This is the one
    place where fastws decides it: the protocol and the connections' fast
    paths deliver what it returns as the message, and leave every other
    frame to the protocol.

    Args:
        frame: A :class:`Frame` of either codec (its attributes are read).

    Returns:
        The payload of a binary frame (``bytes``), the text of a text frame
        (``str``); None for any other frame, and for a text frame that is not
        valid UTF-8 (the caller then fails the connection, saying where).
    """

def build_frame(
    opcode: int,
    payload: _BytesLike | str,
    *,
    fin: bool = True,
    rsv1: bool = False,
    mask: bool | _BytesLike | None = None,
) -> bytes:
    """Serialize one frame, header and payload.

    Args:
        opcode: The opcode, an :class:`~fastws.frames.Opcode` or its value.
        payload: Any bytes-like object, or a ``str`` (sent as
            UTF-8).
        fin: The FIN bit: False on all but the last frame of a fragmented
            message.
        rsv1: The RSV1 bit: permessage-deflate sets it on the first frame of
            a compressed message.
        mask: None or False for an unmasked frame (from a server); a 4-byte
            key to mask with it; True to mask with a fresh unpredictable key
            (a client's frames, RFC 6455 section 5.3).

    Returns:
        The frame, in one new ``bytes`` object.

    Raises:
        ValueError: If ``opcode`` is not one of RFC 6455, RSV1 is set on a
            frame that is not text or binary, a control frame is fragmented
            or longer than 125 bytes, or ``mask`` is not 4 bytes long.
        TypeError: If ``opcode`` is not an integer, or ``payload`` or
            ``mask`` is not a bytes-like object.
        UnicodeEncodeError: If ``payload`` is a ``str`` that UTF-8 cannot
            encode (a lone surrogate).
    """

def build_header(
    opcode: int, length: int, *, fin: bool = True, rsv1: bool = False
) -> bytes:
    """Serialize the header of an unmasked frame, to send its payload after it
    uncopied.

    ``build_header(opcode, len(payload), ...) + payload`` is
    ``build_frame(opcode, payload, ...)``, and the same mistakes raise the
    same errors.

    Args:
        opcode: The opcode, an :class:`~fastws.frames.Opcode` or its value.
        length: The length of the payload, in bytes.
        fin: The FIN bit: False on all but the last frame of a fragmented
            message.
        rsv1: The RSV1 bit: permessage-deflate sets it on the first frame of
            a compressed message.

    Returns:
        The header: 2, 4 or 10 bytes.

    Raises:
        ValueError: If ``opcode`` is not one of RFC 6455, RSV1 is set on a
            frame that is not text or binary, a control frame is fragmented
            or longer than 125 bytes, or ``length`` is not 0 to 2**63 - 1.
        TypeError: If ``opcode`` or ``length`` is not an integer.
    """

def parse_close(payload: _BytesLike) -> tuple[CloseCode | int, str]:
    """Parse a close frame's payload (RFC 6455 section 5.5.1).

    Args:
        payload: The close frame's payload, any bytes-like object.

    Returns:
        ``(code, reason)``: the code as a :class:`~fastws.frames.CloseCode`
        member when it has a name, as an int otherwise (3000 to 4999), and
        the reason as a ``str``; ``(CloseCode.NO_STATUS_RCVD, "")`` for an
        empty payload (a close frame without a status code).

    Raises:
        ProtocolError: If the payload is 1 byte or more than 125 bytes long,
            or its code may not be sent in a close frame.
        InvalidUTF8: If the reason is not valid UTF-8.
        TypeError: If ``payload`` is not a bytes-like object.
    """

def build_close(code: int, reason: str = "") -> bytes:
    """Serialize a close frame's payload.

    Args:
        code: The close code. 1005 (``NO_STATUS_RCVD``) with no reason gives
            the empty payload: a close frame without a status code.
        reason: The reason, at most 123 bytes once encoded to UTF-8.

    Returns:
        The code on 2 bytes (big-endian), then the reason in UTF-8.

    Raises:
        ValueError: If ``code`` may not be sent in a close frame, or
            ``reason`` is too long.
        TypeError: If ``code`` is not an integer.
        UnicodeEncodeError: If ``reason`` cannot be encoded to UTF-8 (a lone
            surrogate).
    """

# Incremental validation with the failure index (for fastws.accelerate)
def scan_utf8(data: _BytesLike, pending: _BytesLike = b"") -> tuple[int, bytes]:
    """Validate ``data`` as the continuation of a strict UTF-8 text (RFC 3629),
    and say where it fails.

    Args:
        data: The next bytes of the text, any bytes-like object.
        pending: The incomplete sequence that the text so far ends with, 0 to
            3 bytes: ``b""`` at the start of a text, else what the previous
            call returned.

    Returns:
        ``(-1, pending)`` while the text is valid, ``pending`` being the
        incomplete sequence it now ends with (``b""`` on a code point
        boundary); else ``(index, b"")``, ``index`` being the position in
        ``data`` of the first byte that no valid UTF-8 text can have there
        (the byte at which a DFA validator such as Hoehrmann's rejects).

    Raises:
        ValueError: If ``pending`` is not the beginning of a UTF-8 sequence,
            cut short.
        TypeError: If ``data`` or ``pending`` is not a bytes-like object.
    """

# Compiled twin only: the byte kernels in use, and a switch for tests.
def simd_level() -> Literal["avx2", "generic"]:
    """The byte kernels in use: ``"avx2"`` or ``"generic"`` (portable C)."""

def _set_simd_level(level: Literal["avx2", "generic"]) -> None: ...

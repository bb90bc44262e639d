"""RFC 6455 framing rules shared by both codec implementations.

The compiled core and the pure-Python twin decide *that* something is wrong on
their own fast paths, then both ask this module *what* is wrong, so they raise
the same exception types with the same messages and close codes. Nothing here
runs per frame on the compiled path, only when a frame is invalid.
"""

from __future__ import annotations

from typing import Any

from .exceptions import InvalidUTF8, PayloadTooBig, ProtocolError
from .frames import CloseCode, Opcode

#: Opcode member for each 4-bit opcode value, None where the opcode is reserved.
OPCODES = tuple(Opcode(i) if i in Opcode._value2member_map_ else None for i in range(16))

#: Close code value -> CloseCode member, for the codes that have a name.
CLOSE_CODES = CloseCode._value2member_map_

#: Opcodes build_frame accepts.
VALID_OPCODES = frozenset({0, 1, 2, 8, 9, 10})


def header_error(b0: int, b1: int, mask_required: bool, allow_rsv1: bool):
    """The error that the first two header bytes reveal, or None.

    Checked in this order: reserved bits, reserved opcode, the control frame
    rules (FIN set, at most 125 bytes, no RSV1), RSV1 on a continuation, then
    the masking direction (RFC 6455 section 5.1).
    """
    opcode = b0 & 0x0F
    if b0 & 0x40 and not allow_rsv1:
        return ProtocolError("reserved bit RSV1 set without an extension that allows it")
    if b0 & 0x20:
        return ProtocolError("reserved bit RSV2 set")
    if b0 & 0x10:
        return ProtocolError("reserved bit RSV3 set")
    op = OPCODES[opcode]
    if op is None:
        return ProtocolError(f"reserved opcode {opcode}")
    if opcode >= 8:
        if not b0 & 0x80:
            return ProtocolError(f"fragmented control frame ({op.name} with FIN clear)")
        if (b1 & 0x7F) > 125:
            return ProtocolError(f"control frame ({op.name}) longer than 125 bytes")
        if b0 & 0x40:
            return ProtocolError(f"RSV1 set on a control frame ({op.name})")
    elif b0 & 0x40 and opcode == 0:
        return ProtocolError("RSV1 set on a continuation frame")
    if b1 & 0x80:
        if not mask_required:
            return ProtocolError("masked frame from the server")
    elif mask_required:
        return ProtocolError("unmasked frame from the client")
    return None


def length_error(length: int, width: int):
    """The error in an extended payload length of ``width`` bits (16 or 64), or None.

    RFC 6455 section 5.2: the most significant bit of a 64-bit length must be 0,
    and the minimal number of bytes must be used to encode the length.
    """
    if width == 16:
        if length < 126:
            return ProtocolError(f"length {length} sent in the 16-bit form (not minimal)")
    else:
        if length >> 63:
            return ProtocolError("64-bit length with the most significant bit set")
        if length < 0x10000:
            return ProtocolError(f"length {length} sent in the 64-bit form (not minimal)")
    return None


def too_big(length: int, max_size: int) -> PayloadTooBig:
    return PayloadTooBig(f"frame of {length} bytes exceeds max_size of {max_size} bytes")


def check_max_size(max_size):
    """Validate a FrameParser's max_size: None or an int >= 0."""
    if max_size is None:
        return None
    if isinstance(max_size, bool) or not isinstance(max_size, int):
        raise TypeError(f"max_size must be an int or None, not {type(max_size).__name__}")
    if max_size < 0:
        raise ValueError(f"max_size must be >= 0 or None, got {max_size}")
    return max_size


def repeat_error(error: ProtocolError) -> ProtocolError:
    """The error a failed parser raises again on every later feed: the same type,
    message and close code, and no frames (they were delivered the first time)."""
    again = type(error)(str(error), error.close_code)
    again.__cause__ = error
    return again


def check_build(op: int, n: int, fin: bool, rsv1: bool) -> None:
    """Reject frames that build_frame must not produce."""
    if op not in VALID_OPCODES:
        raise ValueError(f"invalid opcode {op}")
    if rsv1 and op not in (1, 2):
        raise ValueError("RSV1 may only be set on the first frame of a data message")
    if op >= 8:
        if n > 125:
            raise ValueError(f"control frame of {n} bytes (125 at most)")
        if not fin:
            raise ValueError("control frames cannot be fragmented")


def check_header(op: int, length: int, fin: bool, rsv1: bool) -> None:
    """Reject a header that build_header must not produce: the frames that
    build_frame refuses (with the same errors), and payload lengths that no
    frame can have (RFC 6455 section 5.2: 0 to 2**63 - 1)."""
    check_build(op, length, fin, rsv1)
    if not 0 <= length < 1 << 63:
        raise ValueError(f"length must be 0 to 2**63 - 1, got {length}")


def close_code_allowed(code: int) -> bool:
    """Codes that may appear in a close frame (RFC 6455 section 7.4)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def close_payload_error(n: int, code: int):
    """The error in a close payload of ``n`` bytes starting with ``code``, or None.

    ``code`` is ignored when ``n`` < 2. The reason's UTF-8 is checked separately.
    """
    if n == 1:
        return ProtocolError("close payload of 1 byte (a code takes 2)")
    if n > 125:
        return ProtocolError(f"close payload of {n} bytes (125 at most)")
    if not close_code_allowed(code):
        return ProtocolError(f"invalid close code {code}")
    return None


def invalid_close_reason() -> InvalidUTF8:
    return InvalidUTF8("invalid UTF-8 in close reason")


def check_close(code: int, reason_bytes: int) -> None:
    """Reject a close frame that build_close must not produce."""
    if not close_code_allowed(code):
        raise ValueError(f"close code {code} cannot be sent")
    if reason_bytes > 123:
        raise ValueError(f"close reason of {reason_bytes} bytes (123 at most)")


def frame_repr(frame) -> str:
    """repr() of a Frame of either implementation."""
    payload = frame.payload
    if len(payload) <= 64:
        shown = repr(payload)
    else:
        shown = f"{payload[:60]!r}...({len(payload)} bytes)"
    rsv = "".join(f", rsv{i}=True" for i in (1, 2, 3) if getattr(frame, f"rsv{i}"))
    return f"Frame({frame.opcode.name}, {shown}, fin={frame.fin}{rsv})"


def close_code(code: int):
    """A CloseCode member for a named code, the int itself otherwise."""
    return CLOSE_CODES.get(code, code)


# --- buffers that are not one contiguous run of bytes -------------------------------
# Both twins read a contiguous buffer in place. The rare others (a strided
# memoryview such as ``view[::2]``, a Fortran-ordered array) go through here, so
# that both twins treat them alike.


def as_bytes(obj, what: str) -> bytes:
    """The bytes of any bytes-like object (``bytes(obj)`` without its other
    meanings: an int is a TypeError, not that many zeros)."""
    try:
        return memoryview(obj).tobytes()
    except TypeError:
        raise TypeError(f"{what} must be a bytes-like object, not {type(obj).__name__}") from None


def contiguous_copy(view: memoryview) -> bytes:
    """The bytes of a buffer that is not C-contiguous, in C order: what
    ``bytes(view)`` and ``view.tobytes()`` give, whatever its shape and format."""
    return view.tobytes()


def write_back(view: memoryview, data: bytes) -> None:
    """Write ``data`` (``view.nbytes`` bytes, C order) into the writable,
    non-contiguous buffer ``view``, byte for byte: apply_mask_inplace's last
    step for such a buffer.

    Raises:
        TypeError: If ``view`` has more than one dimension, or a format
            that memoryview cannot cast bytes to (not a native one): its
            bytes cannot be addressed from Python, so neither twin writes
            into it.
    """
    if not data:
        return
    if view.ndim != 1:
        raise TypeError(
            "buffer must be contiguous or one-dimensional to be masked in place,"
            f" not {view.ndim}-dimensional and strided"
        )
    fmt: Any = view.format  # (any str: memoryview says which ones it casts to)
    try:
        items = memoryview(data).cast(fmt)
    except (TypeError, ValueError):
        raise TypeError(
            f"buffer of format {view.format!r} must be contiguous to be masked in place"
        ) from None
    view[:] = items  # slice assignment copies the raw items, not their values

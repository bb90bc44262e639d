"""Pure-Python twin of the compiled codec (:mod:`fastws._speedups`).

Same names, same results, same exceptions with the same messages and close codes:
the test suite runs every codec test against both, and property tests compare them
on random and mutated input. This module is used on interpreters where the
extension is not built (PyPy, source builds with ``FASTWS_NO_EXTENSIONS=1``) and
whenever ``FASTWS_NO_EXTENSIONS=1`` is set at import time.

Speed still matters here: masking uses big-integer XOR (one pass in C), UTF-8
validation uses CPython's own strict decoder, and the parser slices a single
``bytearray`` buffer instead of copying byte by byte.
"""

from __future__ import annotations

import codecs
import operator
import os

from . import _rules
from .exceptions import ProtocolError
from .frames import CloseCode, Opcode

__all__ = [
    "apply_mask",
    "apply_mask_inplace",
    "validate_utf8",
    "Utf8Validator",
    "Frame",
    "FrameParser",
    "build_frame",
    "parse_close",
    "build_close",
    "scan_utf8",
]

_OPCODES = _rules.OPCODES


# --- masking --------------------------------------------------------------------


def _as_bytes_view(data, what: str) -> memoryview:
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(
            f"{what} must be a bytes-like object, not {type(data).__name__}"
        ) from None
    if not view.c_contiguous:
        raise TypeError(f"{what} must be a contiguous bytes-like object")
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    return view


def _check_mask(mask) -> bytes:
    view = _as_bytes_view(mask, "mask")
    if view.nbytes != 4:
        raise ValueError(f"mask must be 4 bytes, got {view.nbytes}")
    return view.tobytes()


# _XOR_TABLES[k] maps each byte b to b ^ k, built on first use.
_XOR_TABLES: list = [None] * 256


def _xor_table(k: int) -> bytes:
    table = _XOR_TABLES[k]
    if table is None:
        table = _XOR_TABLES[k] = bytes(b ^ k for b in range(256))
    return table


def _mask_in(buf: bytearray, mask: bytes) -> None:
    """XOR ``buf`` in place with ``mask`` repeated: each of the four byte lanes
    (every 4th byte) goes through ``bytes.translate`` with one table, so the
    per-byte work runs in C (about 0.6 GB/s, twice a big-integer XOR)."""
    for lane in range(4):
        k = mask[lane]
        if k:
            buf[lane::4] = buf[lane::4].translate(_xor_table(k))


def _xor(data, mask: bytes) -> bytes:
    buf = bytearray(data)
    _mask_in(buf, mask)
    return bytes(buf)


def apply_mask(data, mask) -> bytes:
    """Return ``data`` XOR-ed with the 4-byte ``mask`` (RFC 6455 section 5.3)."""
    key = _check_mask(mask)
    view = _as_bytes_view(data, "data")
    n = view.nbytes
    if n == 0:
        return b""
    return _xor(view, key)


def apply_mask_inplace(buffer, mask, phase: int = 0) -> int:
    """XOR a writable buffer in place with ``mask``, starting at key byte ``phase``.

    Returns the phase for the next piece, ``(phase + len(buffer)) % 4``, so a
    payload that arrives in pieces can be unmasked piece by piece.
    """
    key = _check_mask(mask)
    phase = operator.index(phase)
    if not 0 <= phase <= 3:
        raise ValueError(f"phase must be 0 to 3, got {phase}")
    view = _as_bytes_view(buffer, "buffer")
    if view.readonly:
        raise TypeError("buffer must be writable")
    n = view.nbytes
    if n:
        if type(buffer) is bytearray:
            view.release()  # a bytearray with an export refuses slice assignment
            _mask_in(buffer, key[phase:] + key[:phase])
        else:
            view[:] = _xor(view, key[phase:] + key[:phase])
    return (phase + n) & 3


# --- UTF-8 ----------------------------------------------------------------------


def validate_utf8(data) -> bool:
    """True if ``data`` is strict UTF-8 (RFC 3629): no overlongs, surrogates,
    code points above U+10FFFF or truncated sequence at the end."""
    try:
        str(_as_bytes_view(data, "data"), "utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _valid_prefix(pending: bytes) -> bool:
    """True if ``pending`` (1 to 3 bytes, an incomplete sequence) can still
    become a valid UTF-8 sequence. CPython's incremental decoder lets some
    impossible prefixes wait (a surrogate's ``ED A0``), this does not."""
    return _utf8_bad_at(pending, 0) == len(pending) and pending[0] >= 0x80


def _utf8_bad_at(buf: bytes, start: int) -> int:
    """Index of the first impossible byte of the sequence that starts at
    ``buf[start]``, or ``len(buf)`` if that sequence is valid or merely cut."""
    lead = buf[start]
    if lead < 0x80:
        return len(buf)
    if lead < 0xC2 or lead > 0xF4:
        return start
    need = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    for k in range(1, need):
        j = start + k
        if j >= len(buf):
            return len(buf)
        low, high = 0x80, 0xBF
        if k == 1:
            if lead == 0xE0:
                low = 0xA0
            elif lead == 0xED:
                high = 0x9F
            elif lead == 0xF0:
                low = 0x90
            elif lead == 0xF4:
                high = 0x8F
        if not low <= buf[j] <= high:
            return j
    return len(buf)


class Utf8Validator:
    """Incremental strict UTF-8 validator for messages that arrive in fragments.

    :meth:`feed` returns False as soon as the bytes seen so far cannot begin valid
    UTF-8, even in the middle of a multi-byte sequence; :attr:`complete` tells
    whether they end on a code point boundary, that is whether a message may end
    here. Once invalid, it stays invalid until :meth:`reset`.
    """

    __slots__ = ("_decoder", "_valid", "_complete")

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._valid = True
        self._complete = True

    def feed(self, data) -> bool:
        if not self._valid:
            return False
        view = _as_bytes_view(data, "data")
        try:
            self._decoder.decode(view, False)
        except UnicodeDecodeError:
            self._valid = False
            return False
        pending = self._decoder.getstate()[0]
        if pending and not _valid_prefix(pending):
            self._valid = False
            return False
        self._complete = not pending
        return True

    @property
    def valid(self) -> bool:
        """False once an invalid byte has been fed."""
        return self._valid

    @property
    def complete(self) -> bool:
        """True when the input so far is valid and ends on a code point boundary."""
        return self._valid and self._complete

    def reset(self) -> None:
        """Forget everything fed so far, to validate a new message."""
        self._decoder.reset()
        self._valid = True
        self._complete = True


# --- frames ---------------------------------------------------------------------


class Frame:
    """One WebSocket frame with its payload already unmasked."""

    __slots__ = ("opcode", "payload", "fin", "rsv1", "rsv2", "rsv3")

    def __init__(
        self,
        opcode,
        payload=b"",
        fin: bool = True,
        rsv1: bool = False,
        rsv2: bool = False,
        rsv3: bool = False,
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "opcode", Opcode(opcode))
        setattr_(self, "payload", payload if type(payload) is bytes else bytes(payload))
        setattr_(self, "fin", bool(fin))
        setattr_(self, "rsv1", bool(rsv1))
        setattr_(self, "rsv2", bool(rsv2))
        setattr_(self, "rsv3", bool(rsv3))

    def __setattr__(self, name, value):
        raise AttributeError(f"Frame attribute {name!r} is read-only")

    def __eq__(self, other):
        if not isinstance(other, Frame):
            return NotImplemented
        return (
            self.opcode == other.opcode
            and self.fin == other.fin
            and self.rsv1 == other.rsv1
            and self.rsv2 == other.rsv2
            and self.rsv3 == other.rsv3
            and self.payload == other.payload
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return _rules.frame_repr(self)

    def __reduce__(self):
        return (Frame, (self.opcode, self.payload, self.fin, self.rsv1, self.rsv2, self.rsv3))


class FrameParser:
    """Incremental frame parser: :meth:`feed` bytes, get back completed frames.

    ``mask_required`` is True on the server (client frames must be masked) and
    False on the client (server frames must not be). ``max_size`` bounds the
    payload of one frame and is checked from the header alone, before any of the
    payload is buffered. ``allow_rsv1`` accepts RSV1 on the first frame of a data
    message, for permessage-deflate. After a :class:`ProtocolError` the parser is
    failed: every later call raises the same error.
    """

    __slots__ = ("_mask_required", "_max_size", "_allow_rsv1", "_buf", "_error")

    def __init__(
        self,
        *,
        mask_required: bool,
        max_size: int | None = None,
        allow_rsv1: bool = False,
    ) -> None:
        self._max_size = _rules.check_max_size(max_size)
        self._mask_required = bool(mask_required)
        self._allow_rsv1 = bool(allow_rsv1)
        self._buf = bytearray()
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received and kept for a frame that is not complete yet."""
        return len(self._buf)

    def _pending_header(self):
        """``(b0, header length, mask key or None)`` of the incomplete frame at
        the start of the buffer once its header is complete, else None."""
        buf = self._buf
        end = len(buf)
        if self._error is not None or end < 2:
            return None
        length = buf[1] & 0x7F
        hlen = 2 + (2 if length == 126 else 8 if length == 127 else 0)
        if buf[1] & 0x80:
            if end < hlen + 4:
                return None
            return buf[0], hlen + 4, bytes(buf[hlen : hlen + 4])
        if end < hlen:
            return None
        return buf[0], hlen, None

    def pending(self):
        """The frame whose payload is arriving, while it is incomplete:
        ``(opcode, fin, rsv1, received)`` with ``received`` the payload bytes
        received so far (fewer than its length), or None between frames, inside
        a header or after an error. Lets a caller act on a frame before it ends
        (fail fast on invalid UTF-8 in a text frame that arrives in pieces)."""
        header = self._pending_header()
        if header is None:
            return None
        b0, hlen, _ = header
        return (_OPCODES[b0 & 0x0F], b0 & 0x80 != 0, b0 & 0x40 != 0, len(self._buf) - hlen)

    def pending_payload(self, start: int = 0) -> bytes:
        """The payload of the :meth:`pending` frame received so far, unmasked,
        from byte ``start`` on (``b""`` past what was received): a copy, so that
        a caller can look at what arrived since its last look."""
        start = operator.index(start)
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        header = self._pending_header()
        if header is None:
            return b""
        _, hlen, key = header
        data = self._buf[hlen + start :]
        if key is not None and data:
            phase = start & 3
            _mask_in(data, key[phase:] + key[:phase])
        return bytes(data)

    def feed(self, data) -> list:
        if self._error is not None:
            raise _rules.repeat_error(self._error)
        buf = self._buf
        if type(data) is not bytes:
            data = _as_bytes_view(data, "data")
        buf += data
        frames: list = []
        pos = 0
        end = len(buf)
        mask_required = self._mask_required
        max_size = self._max_size
        try:
            while end - pos >= 2:
                b0 = buf[pos]
                b1 = buf[pos + 1]
                error = _rules.header_error(b0, b1, mask_required, self._allow_rsv1)
                if error is not None:
                    raise error
                length = b1 & 0x7F
                start = pos + 2
                if length == 126:
                    if end - start < 2:
                        break
                    length = (buf[start] << 8) | buf[start + 1]
                    start += 2
                    if length < 126:
                        raise _rules.length_error(length, 16)
                elif length == 127:
                    if end - start < 8:
                        break
                    length = int.from_bytes(buf[start : start + 8], "big")
                    start += 8
                    if length >> 63 or length < 0x10000:
                        raise _rules.length_error(length, 64)
                if max_size is not None and length > max_size:
                    raise _rules.too_big(length, max_size)
                if b1 & 0x80:
                    stop = start + 4 + length
                    if stop > end:
                        break
                    payload = buf[start + 4 : stop]
                    _mask_in(payload, buf[start : start + 4])
                    payload = bytes(payload)
                else:
                    stop = start + length
                    if stop > end:
                        break
                    payload = bytes(buf[start:stop])
                frame = Frame.__new__(Frame)
                setattr_ = object.__setattr__
                setattr_(frame, "opcode", _OPCODES[b0 & 0x0F])
                setattr_(frame, "payload", payload)
                setattr_(frame, "fin", b0 & 0x80 != 0)
                setattr_(frame, "rsv1", b0 & 0x40 != 0)
                setattr_(frame, "rsv2", False)
                setattr_(frame, "rsv3", False)
                frames.append(frame)
                pos = stop
        except ProtocolError as exc:
            buf.clear()
            exc.frames = frames
            self._error = exc
            raise
        if pos:
            del buf[:pos]
        return frames


# --- building -------------------------------------------------------------------

_key_pool = b""
_key_pos = 0


def _reset_key_pool() -> None:
    """Forget the pool in a forked child, so parent and child never share keys."""
    global _key_pool, _key_pos
    _key_pool = b""
    _key_pos = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_key_pool)


def _fresh_key() -> bytes:
    """An unpredictable 4-byte key (RFC 6455 section 5.3), from a pool of
    ``os.urandom`` bytes refilled 4 KiB at a time rather than a call per frame."""
    global _key_pool, _key_pos
    if _key_pos >= len(_key_pool):
        _key_pool = os.urandom(4096)
        _key_pos = 0
    key = _key_pool[_key_pos : _key_pos + 4]
    _key_pos += 4
    return key


def build_frame(opcode, payload, *, fin: bool = True, rsv1: bool = False, mask=None) -> bytes:
    """Serialize one frame. ``payload`` is bytes-like, or ``str`` (sent as UTF-8).

    ``mask=None`` (or False) builds an unmasked frame, a 4-byte key masks with that
    key, and ``mask=True`` masks with a fresh unpredictable key.
    """
    op = operator.index(opcode)
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    view = _as_bytes_view(payload, "payload")
    n = view.nbytes
    _rules.check_build(op, n, fin, rsv1)
    b0 = op | (0x80 if fin else 0) | (0x40 if rsv1 else 0)
    if mask is None or mask is False:
        key = None
        mask_bit = 0
    else:
        key = _fresh_key() if mask is True else _check_mask(mask)
        mask_bit = 0x80
    if n < 126:
        header = bytes((b0, mask_bit | n))
    elif n < 0x10000:
        header = bytes((b0, mask_bit | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((b0, mask_bit | 127)) + n.to_bytes(8, "big")
    if key is None:
        return header + view
    return header + key + _xor(view, key)


# --- close frames ---------------------------------------------------------------


def parse_close(payload) -> tuple:
    """Parse a close frame's payload into ``(code, reason)``.

    An empty payload means no status code: ``(1005, "")``. Known codes come back
    as :class:`CloseCode` members, others (3000-4999) as ints.
    """
    view = _as_bytes_view(payload, "payload")
    n = view.nbytes
    if n == 0:
        return CloseCode.NO_STATUS_RCVD, ""
    code = (view[0] << 8) | view[1] if n >= 2 else 0
    error = _rules.close_payload_error(n, code)
    if error is not None:
        raise error
    try:
        reason = str(view[2:], "utf-8")
    except UnicodeDecodeError:
        raise _rules.invalid_close_reason() from None
    return _rules.close_code(code), reason


def build_close(code: int, reason: str = "") -> bytes:
    """Serialize a close frame's payload. ``code`` 1005 with no reason gives the
    empty payload (a close frame without a status code)."""
    code = operator.index(code)
    if code == 1005 and not reason:
        return b""
    data = reason.encode("utf-8")
    _rules.check_close(code, len(data))
    return code.to_bytes(2, "big") + data


# --- UTF-8 scanning with the failure index (issue #7: fastws.accelerate) ----------
# Added for the wsaccel/Autobahn-compatible validator, whose validate() reports the
# index of the first invalid byte. Kept at the end of the file on purpose.


def scan_utf8(data, pending=b"") -> tuple:
    """Validate ``data`` as the continuation of strict UTF-8 text (RFC 3629).

    ``pending`` is the incomplete sequence the text so far ends with (0 to 3
    bytes: ``b""`` at the start of a text, else what the previous call returned).
    Returns ``(-1, pending')`` when the text is still valid, ``pending'`` being
    the incomplete sequence it now ends with (``b""`` on a code point boundary),
    or ``(index, b"")`` with ``index`` the position in ``data`` of the first byte
    that no valid UTF-8 text can have there (the byte at which a DFA validator
    such as Hoehrmann's rejects). ValueError if ``pending`` is not the beginning
    of a valid sequence.
    """
    head = _as_bytes_view(pending, "pending").tobytes()
    m = len(head)
    if m and (
        m > 3
        or not _valid_prefix(head)
        or _utf8_bad_at(head, 0) < m
        or m >= (2 if head[0] < 0xE0 else 3 if head[0] < 0xF0 else 4)
    ):
        raise ValueError(f"pending must be an incomplete UTF-8 sequence, got {head!r}")
    buf = head + _as_bytes_view(data, "data").tobytes()
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(buf, False)
    except UnicodeDecodeError as exc:
        bad = _utf8_bad_at(buf, exc.start)
        if bad >= len(buf):  # CPython's decoder and the rules disagree: a bug here
            raise SystemError("fastws: scan_utf8 found no invalid byte in invalid UTF-8") from None
        return bad - m, b""
    rest = decoder.getstate()[0]
    if rest:
        bad = _utf8_bad_at(buf, len(buf) - len(rest))
        if bad < len(buf):
            return bad - m, b""
    return -1, rest

"""Pure-Python twin of the compiled codec (:mod:`fastws._speedups`).

Same names, same results, same exceptions with the same messages and close codes:
the test suite runs every codec test against both, and property tests compare them
on random and mutated input. This module is used on interpreters where the
extension is not built (PyPy, source builds with ``FASTWS_NO_EXTENSIONS=1``) and
whenever ``FASTWS_NO_EXTENSIONS=1`` is set at import time.

Speed still matters here: masking XORs each of the four byte lanes with one
``bytes.translate`` (the per-byte work in C), UTF-8 validation uses CPython's own
strict decoder, and the parser slices a single ``bytearray`` buffer instead of
copying byte by byte.

The docstrings of the public names here are the codec's documentation: the
compiled twin and the stub (``_speedups.pyi``) repeat them word for word, and
tests/test_codec_api.py fails when they drift apart.
"""

from __future__ import annotations

import codecs
import operator
import os
import struct

from . import _rules
from .exceptions import ProtocolError
from .frames import CloseCode, Opcode

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

_OPCODES = _rules.OPCODES
_OP_TEXT = Opcode.TEXT
_OP_BINARY = Opcode.BINARY


# --- masking --------------------------------------------------------------------


def _as_bytes_view(data, what: str) -> memoryview:
    """``data`` as a one-dimensional view of unsigned bytes: a view of its own
    memory when it is C-contiguous, else of a copy in C order (the bytes that
    ``bytes(data)`` gives); TypeError naming the type if it is not bytes-like."""
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(
            f"{what} must be a bytes-like object, not {type(data).__name__}"
        ) from None
    if view.format == "B" and view.ndim == 1 and view.c_contiguous:
        return view
    return _cast_bytes(view)


def _cast_bytes(view: memoryview) -> memoryview:
    """_as_bytes_view's slow path: a buffer of another format or shape, seen
    as bytes where it is C-contiguous (any format casts to bytes), copied
    where it is not."""
    if view.c_contiguous:
        return view.cast("B")
    return memoryview(_rules.contiguous_copy(view))


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


def _mask_in(buf: bytearray, mask: bytes | bytearray) -> None:
    """XOR ``buf`` in place with ``mask`` repeated: each of the four byte lanes
    (every 4th byte) goes through ``bytes.translate`` with one table, so the
    per-byte work runs in C (about 0.6 GB/s, twice a big-integer XOR)."""
    for lane in range(4):
        k = mask[lane]
        if k:
            buf[lane::4] = buf[lane::4].translate(_xor_table(k))


def _xor(data, mask: bytes | bytearray) -> bytes:
    buf = bytearray(data)
    _mask_in(buf, mask)
    return bytes(buf)


def apply_mask(data, mask) -> bytes:
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
    key = _check_mask(mask)
    view = _as_bytes_view(data, "data")
    n = view.nbytes
    if n == 0:
        return b""
    return _xor(view, key)


def apply_mask_inplace(buffer, mask, phase: int = 0) -> int:
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
    key = _check_mask(mask)
    phase = operator.index(phase)
    if not 0 <= phase <= 3:
        raise ValueError(f"phase must be 0 to 3, got {phase}")
    try:
        view = memoryview(buffer)
    except TypeError:
        raise TypeError(
            f"buffer must be a bytes-like object, not {type(buffer).__name__}"
        ) from None
    if view.readonly:
        raise TypeError("buffer must be writable")
    n = view.nbytes
    if n:
        key = key[phase:] + key[:phase]
        if type(buffer) is bytearray:
            view.release()  # a bytearray with an export refuses slice assignment
            _mask_in(buffer, key)
        elif view.c_contiguous:
            data = _cast_bytes(view)
            data[:] = _xor(data, key)
        else:
            _rules.write_back(view, _xor(_rules.contiguous_copy(view), key))
    return (phase + n) & 3


# --- UTF-8 ----------------------------------------------------------------------


def validate_utf8(data) -> bool:
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
    try:
        str(_as_bytes_view(data, "data"), "utf-8")
    except UnicodeDecodeError:
        return False
    return True


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


def _continue_utf8(decoder, data, n: int) -> int:
    """Validate ``data`` (``n`` bytes) as the continuation of a UTF-8 text, with
    ``decoder``, a strict incremental UTF-8 decoder that holds the incomplete
    sequence the text so far ends with: what Utf8Validator.feed and scan_utf8
    share.

    Returns -1 while the text can still be valid (``decoder.getstate()[0]``
    is then the sequence it is now cut in, ``b""`` on a code point boundary),
    else the index in ``data`` of the first byte that no valid text can have
    there (the decoder is then in no useful state)."""
    try:
        decoder.decode(data, False)
    except UnicodeDecodeError as exc:
        buf = exc.object  # what the decoder held, then data
        bad = _utf8_bad_at(buf, exc.start)
        if bad >= len(buf):  # CPython's decoder and the rules disagree: a bug here
            raise SystemError("fastws: found no invalid byte in invalid UTF-8") from None
        return bad - (len(buf) - n)
    rest = decoder.getstate()[0]
    if rest:
        # CPython's decoder lets some impossible beginnings wait (a
        # surrogate's ED A0): the cut sequence is checked here.
        bad = _utf8_bad_at(rest, 0)
        if bad < len(rest):
            return n - len(rest) + bad
    return -1


class Utf8Validator:
    """Incremental strict UTF-8 validator, for a text that arrives in pieces.

    :meth:`feed` returns False as soon as the bytes fed so far cannot be the
    beginning of valid UTF-8, even in the middle of a multi-byte sequence;
    :attr:`complete` tells whether they end on a code point boundary, that is
    whether the text may end there. Once invalid, a validator stays invalid
    until :meth:`reset`.
    """

    __slots__ = ("_complete", "_decoder", "_valid")

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._valid = True
        self._complete = True

    def feed(self, data) -> bool:
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
        if not self._valid:
            return False
        view = _as_bytes_view(data, "data")
        if _continue_utf8(self._decoder, view, view.nbytes) >= 0:
            self._valid = False
            return False
        self._complete = not self._decoder.getstate()[0]
        return True

    @property
    def valid(self) -> bool:
        """False once an invalid byte has been fed, until :meth:`reset`."""
        return self._valid

    @property
    def complete(self) -> bool:
        """True when the bytes fed so far are valid UTF-8 and end on a code
        point boundary."""
        return self._valid and self._complete

    def reset(self) -> None:
        """Forget everything fed so far, to validate a new text."""
        self._decoder.reset()
        self._valid = True
        self._complete = True


# --- frames ---------------------------------------------------------------------


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

    __slots__ = ("fin", "opcode", "payload", "rsv1", "rsv2", "rsv3")

    opcode: Opcode
    payload: bytes
    fin: bool
    rsv1: bool
    rsv2: bool
    rsv3: bool

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
        setattr_(self, "payload", payload if type(payload) is bytes else _rules.as_bytes(payload, "payload"))
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

    __slots__ = ("_allow_rsv1", "_buf", "_error", "_mask_required", "_max_size")

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
        """The frame whose payload is arriving, while it is incomplete.

        Lets a caller act on a frame before it ends: fail fast on invalid
        UTF-8 in a text frame that arrives in pieces.

        Returns:
            ``(opcode, fin, rsv1, received)`` once the frame's header is
            complete, ``received`` being the number of its payload bytes
            received so far (fewer than its length); None between frames,
            inside a header and after an error.
        """
        header = self._pending_header()
        if header is None:
            return None
        b0, hlen, _ = header
        return (_OPCODES[b0 & 0x0F], b0 & 0x80 != 0, b0 & 0x40 != 0, len(self._buf) - hlen)

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
                    masked = buf[start + 4 : stop]
                    _mask_in(masked, buf[start : start + 4])
                    payload = bytes(masked)
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


# --- messages -------------------------------------------------------------------


def plain_message(frame) -> bytes | str | None:
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
    if not frame.fin or frame.rsv1 or frame.rsv2 or frame.rsv3:
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


_HEADER_16 = struct.Struct("!BBH").pack
_HEADER_64 = struct.Struct("!BBQ").pack


def _header(b0: int, mask_bit: int, n: int) -> bytes:
    """The header of a frame whose first byte is ``b0`` and payload ``n``
    bytes long (``n`` checked), masked if ``mask_bit`` is 0x80 (the key, 4
    bytes, goes after it)."""
    if n < 126:
        return bytes((b0, mask_bit | n))
    if n < 0x10000:
        return _HEADER_16(b0, mask_bit | 126, n)
    return _HEADER_64(b0, mask_bit | 127, n)


def build_frame(opcode, payload, *, fin: bool = True, rsv1: bool = False, mask=None) -> bytes:
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
    op = operator.index(opcode)
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    view = _as_bytes_view(payload, "payload")
    n = view.nbytes
    _rules.check_build(op, n, fin, rsv1)
    b0 = op | (0x80 if fin else 0) | (0x40 if rsv1 else 0)
    if mask is None or mask is False:
        return _header(b0, 0, n) + view
    key = _fresh_key() if mask is True else _check_mask(mask)
    return _header(b0, 0x80, n) + key + _xor(view, key)


def build_header(opcode, length, *, fin: bool = True, rsv1: bool = False) -> bytes:
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
    op = operator.index(opcode)
    n = operator.index(length)
    _rules.check_header(op, n, fin, rsv1)
    return _header(op | (0x80 if fin else 0) | (0x40 if rsv1 else 0), 0, n)


# --- close frames ---------------------------------------------------------------


def parse_close(payload) -> tuple:
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
    code = operator.index(code)
    if code == 1005 and not reason:
        return b""
    data = reason.encode("utf-8")
    _rules.check_close(code, len(data))
    return code.to_bytes(2, "big") + data


# --- UTF-8 scanning with the failure index ----------------------------------------
# For the wsaccel/Autobahn-compatible validator of fastws.accelerate, whose
# validate() reports the index of the first invalid byte.


def scan_utf8(data, pending=b"") -> tuple:
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
    head = _as_bytes_view(pending, "pending").tobytes()
    m = len(head)
    if m and (
        m > 3
        or head[0] < 0x80
        or _utf8_bad_at(head, 0) < m
        or m >= (2 if head[0] < 0xE0 else 3 if head[0] < 0xF0 else 4)
    ):
        raise ValueError(f"pending must be an incomplete UTF-8 sequence, got {head!r}")
    decoder = codecs.getincrementaldecoder("utf-8")()
    decoder.setstate((head, 0))
    view = _as_bytes_view(data, "data")
    bad = _continue_utf8(decoder, view, view.nbytes)
    if bad >= 0:
        return bad, b""
    return -1, decoder.getstate()[0]

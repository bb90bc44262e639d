# cython: language_level=3, binding=False
"""Compiled WebSocket codec: masking, UTF-8 validation, frame parsing and building.

The pure-Python twin, fastws._codec_py, has the same names and gives the same
results and the same errors; fastws.codec picks one of the two at import time.
The byte kernels live in _simd.h (portable and AVX2 versions, chosen at run
time); this module moves bytes between Python objects and those kernels with as
few allocations and copies as it can: one allocation per parsed frame (its
payload, unmasked while it is copied out of the input) and one per built frame
(header and payload together).
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy

import operator
import os

from fastws import _rules
from fastws.exceptions import ProtocolError
from fastws.frames import CloseCode, Opcode


cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX
    int _PyBytes_Resize(PyObject **bytes, Py_ssize_t newsize) except -1
    const char *PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t *size) except NULL
    object PyUnicode_DecodeUTF8(const char *s, Py_ssize_t size, const char *errors)


cdef extern from "_simd.h":
    int FASTWS_SIMD_GENERIC
    int FASTWS_SIMD_AVX2
    int fastws_simd
    void fastws_mask(const uint8_t *src, uint8_t *dst, size_t n, const uint8_t *key) nogil
    int fastws_utf8_valid(const uint8_t *s, size_t n) nogil
    int fastws_utf8_seqlen(uint8_t lead) nogil
    int fastws_utf8_cont_ok(uint8_t lead, int pos, uint8_t b) nogil
    int fastws_cpu_simd() nogil
    int fastws_set_simd(int level) nogil


cdef tuple _OPCODES = _rules.OPCODES
# Bit i set when opcode i is defined (RFC 6455 section 5.2).
cdef int _DEFINED_OPCODES = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 8) | (1 << 9) | (1 << 10)
# Above this size, masking and validation release the GIL.
cdef Py_ssize_t _NOGIL_SIZE = 1 << 16


# --- SIMD level ------------------------------------------------------------------

_LEVELS = {"generic": FASTWS_SIMD_GENERIC, "avx2": FASTWS_SIMD_AVX2}


def simd_level():
    """The byte kernels in use: ``"avx2"`` or ``"generic"`` (portable C)."""
    return "avx2" if fastws_simd == FASTWS_SIMD_AVX2 else "generic"


def _set_simd_level(level):
    """Switch kernels, for tests of the portable path. ValueError if the CPU
    cannot run ``level``."""
    if level not in _LEVELS or fastws_set_simd(_LEVELS[level]) != 0:
        raise ValueError(f"SIMD level {level!r} is not available on this CPU")


# FASTWS_SIMD=generic forces the portable kernels from the start.
if os.environ.get("FASTWS_SIMD", "").strip().lower() == "generic":
    fastws_set_simd(FASTWS_SIMD_GENERIC)
else:
    fastws_set_simd(fastws_cpu_simd())


# --- buffers ---------------------------------------------------------------------


cdef int _acquire(object obj, Py_buffer *view, str what) except -1:
    """Get a contiguous buffer, with the same errors as the pure twin."""
    try:
        PyObject_GetBuffer(obj, view, PyBUF_SIMPLE)
    except TypeError:
        raise TypeError(f"{what} must be a bytes-like object, not {type(obj).__name__}") from None
    except BufferError:
        raise TypeError(f"{what} must be a contiguous bytes-like object") from None
    return 0


cdef int _load_key(object mask, uint8_t *key) except -1:
    cdef Py_buffer view
    cdef Py_ssize_t n
    if type(mask) is bytes and PyBytes_GET_SIZE(mask) == 4:
        memcpy(key, PyBytes_AS_STRING(mask), 4)
        return 0
    _acquire(mask, &view, "mask")
    n = view.len
    if n == 4:
        memcpy(key, view.buf, 4)
    PyBuffer_Release(&view)
    if n != 4:
        raise ValueError(f"mask must be 4 bytes, got {n}")
    return 0


cdef inline void _mask_from(const uint8_t *src, uint8_t *dst, Py_ssize_t n,
                            const uint8_t *key, Py_ssize_t phase) noexcept:
    """Mask n bytes, starting at byte ``phase`` of the key."""
    cdef uint8_t rotated[4]
    cdef int i
    if phase == 0:
        fastws_mask(src, dst, n, key)
    else:
        for i in range(4):
            rotated[i] = key[(phase + i) & 3]
        fastws_mask(src, dst, n, rotated)


cdef inline void _mask_maybe_nogil(const uint8_t *src, uint8_t *dst, Py_ssize_t n,
                                   const uint8_t *key) noexcept:
    if n >= _NOGIL_SIZE:
        with nogil:
            fastws_mask(src, dst, n, key)
    else:
        fastws_mask(src, dst, n, key)


# --- masking ---------------------------------------------------------------------


def apply_mask(data, mask):
    """Return ``data`` XOR-ed with the 4-byte ``mask`` (RFC 6455 section 5.3)."""
    cdef uint8_t key[4]
    cdef Py_buffer view
    cdef Py_ssize_t n
    cdef bytes out
    _load_key(mask, key)
    if type(data) is bytes:
        n = PyBytes_GET_SIZE(data)
        out = PyBytes_FromStringAndSize(NULL, n)
        _mask_maybe_nogil(<const uint8_t *>PyBytes_AS_STRING(data),
                          <uint8_t *>PyBytes_AS_STRING(out), n, key)
        return out
    _acquire(data, &view, "data")
    try:
        out = PyBytes_FromStringAndSize(NULL, view.len)
        _mask_maybe_nogil(<const uint8_t *>view.buf, <uint8_t *>PyBytes_AS_STRING(out),
                          view.len, key)
    finally:
        PyBuffer_Release(&view)
    return out


def apply_mask_inplace(buffer, mask, phase=0):
    """XOR a writable buffer in place with ``mask``, starting at key byte ``phase``.

    Returns the phase for the next piece, ``(phase + len(buffer)) % 4``, so a
    payload that arrives in pieces can be unmasked piece by piece.
    """
    cdef uint8_t key[4]
    cdef uint8_t rotated[4]
    cdef Py_buffer view
    cdef Py_ssize_t n
    cdef int i
    _load_key(mask, key)
    phase = operator.index(phase)
    if not 0 <= phase <= 3:  # compared as Python ints: a huge one is a ValueError too
        raise ValueError(f"phase must be 0 to 3, got {phase}")
    if phase:
        for i in range(4):
            rotated[i] = key[(phase + i) & 3]
        memcpy(key, rotated, 4)
    if type(buffer) is bytearray:
        n = PyByteArray_GET_SIZE(buffer)
        _mask_maybe_nogil(<const uint8_t *>PyByteArray_AS_STRING(buffer),
                          <uint8_t *>PyByteArray_AS_STRING(buffer), n, key)
        return (phase + n) & 3
    _acquire(buffer, &view, "buffer")
    try:
        if view.readonly:
            raise TypeError("buffer must be writable")
        n = view.len
        _mask_maybe_nogil(<const uint8_t *>view.buf, <uint8_t *>view.buf, n, key)
    finally:
        PyBuffer_Release(&view)
    return (phase + n) & 3


# --- UTF-8 -----------------------------------------------------------------------


cdef inline bint _utf8_valid(const uint8_t *p, Py_ssize_t n) noexcept:
    cdef bint ok
    if n >= _NOGIL_SIZE:
        with nogil:
            ok = fastws_utf8_valid(p, n)
        return ok
    return fastws_utf8_valid(p, n)


def validate_utf8(data):
    """True if ``data`` is strict UTF-8 (RFC 3629): no overlongs, surrogates,
    code points above U+10FFFF or truncated sequence at the end."""
    cdef Py_buffer view
    cdef bint ok
    if type(data) is bytes:
        return _utf8_valid(<const uint8_t *>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
    _acquire(data, &view, "data")
    ok = _utf8_valid(<const uint8_t *>view.buf, view.len)
    PyBuffer_Release(&view)
    return ok


@cython.final
cdef class Utf8Validator:
    """Incremental strict UTF-8 validator for messages that arrive in fragments.

    :meth:`feed` returns False as soon as the bytes seen so far cannot begin valid
    UTF-8, even in the middle of a multi-byte sequence; :attr:`complete` tells
    whether they end on a code point boundary, that is whether a message may end
    here. Once invalid, it stays invalid until :meth:`reset`.
    """

    cdef bint _valid
    cdef uint8_t _lead   # lead byte of the sequence left open by the last chunk
    cdef int _have       # bytes of it seen so far, 0 at a code point boundary
    cdef int _need       # its full length

    def __cinit__(self):
        self._valid = True

    def feed(self, data):
        cdef Py_buffer view
        if not self._valid:
            return False
        if type(data) is bytes:
            self._valid = self._feed(<const uint8_t *>PyBytes_AS_STRING(data),
                                     PyBytes_GET_SIZE(data))
        else:
            _acquire(data, &view, "data")
            self._valid = self._feed(<const uint8_t *>view.buf, view.len)
            PyBuffer_Release(&view)
        return self._valid

    cdef bint _feed(self, const uint8_t *p, Py_ssize_t n) noexcept:
        cdef Py_ssize_t i = 0, tail = n, k
        cdef int seqlen
        cdef uint8_t b
        # 1. Finish the sequence the previous chunk left open, byte by byte.
        while self._have and i < n:
            if not fastws_utf8_cont_ok(self._lead, self._have, p[i]):
                return False
            self._have += 1
            i += 1
            if self._have == self._need:
                self._have = 0
        if i == n:
            return True
        # 2. Find a sequence cut by the end of this chunk (it starts at most 3
        #    bytes before the end).
        k = 1
        while k <= 3 and k <= n - i:
            b = p[n - k]
            if b < 0x80:
                break
            if b >= 0xC0:
                seqlen = fastws_utf8_seqlen(b)
                if seqlen == 0:
                    return False
                if seqlen > k:
                    tail = n - k
                break
            k += 1
        # 3. Everything before it is whole sequences: validate in bulk.
        if tail > i and not _utf8_valid(p + i, tail - i):
            return False
        # 4. The cut sequence must be a valid beginning.
        if tail < n:
            self._lead = p[tail]
            self._need = fastws_utf8_seqlen(self._lead)
            self._have = 1
            for k in range(tail + 1, n):
                if not fastws_utf8_cont_ok(self._lead, self._have, p[k]):
                    return False
                self._have += 1
        return True

    @property
    def valid(self):
        """False once an invalid byte has been fed."""
        return self._valid

    @property
    def complete(self):
        """True when the input so far is valid and ends on a code point boundary."""
        return self._valid and self._have == 0

    def reset(self):
        """Forget everything fed so far, to validate a new message."""
        self._valid = True
        self._have = 0
        self._need = 0


# --- frames ----------------------------------------------------------------------


@cython.final
@cython.freelist(64)
cdef class Frame:
    """One WebSocket frame with its payload already unmasked."""

    # Fields: opcode, payload, fin, rsv1, rsv2, rsv3 (declared in _speedups.pxd).

    def __init__(self, opcode, payload=b"", fin=True, rsv1=False, rsv2=False, rsv3=False):
        self.opcode = Opcode(opcode)
        self.payload = payload if type(payload) is bytes else bytes(payload)
        self.fin = fin
        self.rsv1 = rsv1
        self.rsv2 = rsv2
        self.rsv3 = rsv3

    def __eq__(self, other):
        if not isinstance(other, Frame):
            return NotImplemented
        cdef Frame o = <Frame>other
        return (
            self.opcode == o.opcode
            and self.fin == o.fin
            and self.rsv1 == o.rsv1
            and self.rsv2 == o.rsv2
            and self.rsv3 == o.rsv3
            and self.payload == o.payload
        )

    __hash__ = None

    def __repr__(self):
        return _rules.frame_repr(self)

    def __reduce__(self):
        return (Frame, (self.opcode, self.payload, self.fin, self.rsv1, self.rsv2, self.rsv3))


cdef inline Frame _new_frame(uint8_t b0, bytes payload):
    cdef Frame frame = Frame.__new__(Frame)
    frame.opcode = _OPCODES[b0 & 0x0F]
    frame.payload = payload
    frame.fin = (b0 & 0x80) != 0
    frame.rsv1 = (b0 & 0x40) != 0
    return frame


cdef inline uint64_t _load_be64(const uint8_t *p) noexcept:
    cdef uint64_t v = 0
    cdef int i
    for i in range(8):
        v = (v << 8) | p[i]
    return v


@cython.final
cdef class FrameParser:
    """Incremental frame parser: :meth:`feed` bytes, get back completed frames.

    ``mask_required`` is True on the server (client frames must be masked) and
    False on the client (server frames must not be). ``max_size`` bounds the
    payload of one frame and is checked from the header alone, before any of the
    payload is buffered. ``allow_rsv1`` accepts RSV1 on the first frame of a data
    message, for permessage-deflate. After a :class:`ProtocolError` the parser is
    failed: every later call raises the same error.

    The parser never keeps a reference to the caller's buffer: a header cut by
    the end of the input is copied (14 bytes at most), and a payload cut by it
    goes straight into the frame's own bytes object, unmasked on the way.
    """

    # Fields and C methods: declared in _speedups.pxd.

    def __cinit__(self):
        self._payload = NULL

    def __dealloc__(self):
        Py_XDECREF(self._payload)
        self._payload = NULL

    def __init__(self, *, mask_required, max_size=None, allow_rsv1=False):
        _rules.check_max_size(max_size)
        self._mask_required = mask_required
        self._allow_rsv1 = allow_rsv1
        self._max_size = max_size
        # Lengths never exceed 2**63 - 1, so any larger max_size means no limit.
        if max_size is None or max_size >= 1 << 63:
            self._limit = <uint64_t>(-1)
        else:
            self._limit = <uint64_t>max_size
        self._error = None

    @property
    def buffered(self):
        """Bytes received and kept for a frame that is not complete yet."""
        if self._in_payload:
            return self._hlen + self._filled
        return self._hdr_len

    def pending(self):
        """The frame whose payload is arriving, while it is incomplete:
        ``(opcode, fin, rsv1, received)`` with ``received`` the payload bytes
        received so far (fewer than its length), or None between frames, inside
        a header or after an error. Lets a caller act on a frame before it ends
        (fail fast on invalid UTF-8 in a text frame that arrives in pieces)."""
        if not self._in_payload:
            return None
        return (_OPCODES[self._b0 & 0x0F], (self._b0 & 0x80) != 0, (self._b0 & 0x40) != 0,
                self._filled)

    def pending_payload(self, start=0):
        """The payload of the :meth:`pending` frame received so far, unmasked,
        from byte ``start`` on (``b""`` past what was received): a copy, so that
        a caller can look at what arrived since its last look."""
        start = operator.index(start)
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        if not self._in_payload or start >= self._filled:
            return b""
        cdef Py_ssize_t at = start
        return PyBytes_FromStringAndSize(PyBytes_AS_STRING(<object>self._payload) + at,
                                         self._filled - at)

    cdef inline bint _header_ok(self, uint8_t b0, uint8_t b1) noexcept:
        cdef int opcode = b0 & 0x0F
        if b0 & 0x70:
            if (b0 & 0x30) or not self._allow_rsv1 or (opcode != 1 and opcode != 2):
                return False
        if not (_DEFINED_OPCODES >> opcode) & 1:
            return False
        if opcode >= 8 and (not (b0 & 0x80) or (b1 & 0x7F) > 125):
            return False
        return ((b1 & 0x80) != 0) == self._mask_required

    cdef Py_ssize_t _parse_header(self, const uint8_t *h, Py_ssize_t avail) except -1:
        """Parse the header at ``h``: its length once complete, 0 while cut short.
        Raises as soon as the bytes available show an error."""
        cdef uint8_t b0, b1
        cdef uint64_t length
        cdef Py_ssize_t hlen = 2
        if avail < 2:
            return 0
        b0 = h[0]
        b1 = h[1]
        if not self._header_ok(b0, b1):
            self._raise_header_error(b0, b1)
        length = b1 & 0x7F
        if length == 126:
            if avail < 4:
                return 0
            length = (<uint64_t>h[2] << 8) | h[3]
            hlen = 4
            if length < 126:
                raise _rules.length_error(length, 16)
        elif length == 127:
            if avail < 10:
                return 0
            length = _load_be64(h + 2)
            hlen = 10
            if (length >> 63) or length < 0x10000:
                raise _rules.length_error(length, 64)
        if length > self._limit:
            raise _rules.too_big(length, self._max_size)
        if b1 & 0x80:
            if avail < hlen + 4:
                return 0
            memcpy(self._key, h + hlen, 4)
            hlen += 4
        if length > <uint64_t>PY_SSIZE_T_MAX:
            raise MemoryError(f"frame of {length} bytes cannot be held in memory")
        self._b0 = b0
        self._masked = (b1 & 0x80) != 0
        self._length = <Py_ssize_t>length
        self._hlen = hlen
        return hlen

    cdef int _raise_header_error(self, uint8_t b0, uint8_t b1) except -1:
        error = _rules.header_error(b0, b1, self._mask_required, self._allow_rsv1)
        if error is None:  # the fast check and the rules disagree: a bug here
            raise SystemError(f"fastws: header {b0:#04x} {b1:#04x} rejected without a reason")
        raise error

    cdef bytes _copy_payload(self, const uint8_t *src, Py_ssize_t n):
        cdef bytes payload = PyBytes_FromStringAndSize(NULL, n)
        if self._masked:
            _mask_maybe_nogil(src, <uint8_t *>PyBytes_AS_STRING(payload), n, self._key)
        else:
            memcpy(PyBytes_AS_STRING(payload), src, n)
        return payload

    cdef int _begin_partial(self, const uint8_t *src, Py_ssize_t n) except -1:
        """Start a payload that has only ``n`` of its bytes here. Memory grows
        with what arrives, not with what the header announces."""
        cdef Py_ssize_t capacity = self._length
        if capacity > 65536:
            capacity = max(65536, 4 * n)
            if capacity > self._length:
                capacity = self._length
        payload = PyBytes_FromStringAndSize(NULL, capacity)
        self._payload = <PyObject *>payload
        Py_INCREF(payload)
        self._capacity = capacity
        self._filled = 0
        self._in_payload = True
        self._append_partial(src, n)
        return 0

    cdef int _append_partial(self, const uint8_t *src, Py_ssize_t n) except -1:
        cdef Py_ssize_t capacity
        cdef uint8_t *dst
        if self._filled + n > self._capacity:
            capacity = max(2 * self._capacity, self._filled + n)
            if capacity > self._length:
                capacity = self._length
            _PyBytes_Resize(&self._payload, capacity)
            self._capacity = capacity
        dst = <uint8_t *>PyBytes_AS_STRING(<object>self._payload) + self._filled
        if self._masked:
            _mask_from(src, dst, n, self._key, self._filled & 3)
        else:
            memcpy(dst, src, n)
        self._filled += n
        return 0

    cdef bytes _take_partial(self):
        cdef bytes payload = <bytes>self._payload
        Py_XDECREF(self._payload)
        self._payload = NULL
        self._in_payload = False
        return payload

    cdef void _reset(self) noexcept:
        Py_XDECREF(self._payload)
        self._payload = NULL
        self._in_payload = False
        self._hdr_len = 0

    cdef int _run(self, const uint8_t *p, Py_ssize_t n, list frames) except -1:
        cdef Py_ssize_t pos = 0, hlen, take
        while True:
            if self._in_payload:
                take = self._length - self._filled
                if take > n - pos:
                    take = n - pos
                self._append_partial(p + pos, take)
                pos += take
                if self._filled < self._length:
                    return 0
                frames.append(_new_frame(self._b0, self._take_partial()))
            if pos == n:
                return 0
            if self._hdr_len == 0:
                hlen = self._parse_header(p + pos, n - pos)
                if hlen == 0:
                    memcpy(self._hdr, p + pos, n - pos)
                    self._hdr_len = n - pos
                    return 0
                pos += hlen
            else:
                # The rest of a header cut short last time, one byte at a time
                # (14 at most), so that errors show at the same byte as in one piece.
                while True:
                    self._hdr[self._hdr_len] = p[pos]
                    self._hdr_len += 1
                    pos += 1
                    if self._parse_header(self._hdr, self._hdr_len):
                        break
                    if pos == n:
                        return 0
                self._hdr_len = 0
            if n - pos >= self._length:
                frames.append(_new_frame(self._b0, self._copy_payload(p + pos, self._length)))
                pos += self._length
            else:
                self._begin_partial(p + pos, n - pos)
                return 0

    def feed(self, data):
        """Feed bytes; return the frames they complete, in order."""
        cdef Py_buffer view
        if self._error is not None:  # before the argument is looked at, as in the pure twin
            raise _rules.repeat_error(self._error)
        if type(data) is bytes:
            return self.feed_from(<const uint8_t *>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
        _acquire(data, &view, "data")
        try:
            return self.feed_from(<const uint8_t *>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    cdef list feed_from(self, const uint8_t *p, Py_ssize_t n):
        """:meth:`feed` from memory (for compiled callers that hold a buffer)."""
        cdef list frames = []
        if self._error is not None:
            raise _rules.repeat_error(self._error)
        try:
            self._run(p, n, frames)
        except BaseException as exc:
            self._fail(exc, frames)
            raise
        return frames

    cdef int _fail(self, exc, list frames) except -1:
        """Drop the frame in progress; a protocol error fails the parser for good."""
        self._reset()
        if isinstance(exc, ProtocolError):
            exc.frames = frames
            self._error = exc
        return 0


# --- building --------------------------------------------------------------------


cdef uint8_t _key_pool[4096]
cdef Py_ssize_t _key_pos = 4096


def _reset_key_pool():
    """Forget the pool in a forked child, so parent and child never share keys."""
    global _key_pos
    _key_pos = 4096


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_key_pool)


cdef int _fresh_key(uint8_t *key) except -1:
    """An unpredictable 4-byte key (RFC 6455 section 5.3), from a pool of
    os.urandom bytes refilled 4 KiB at a time rather than a call per frame."""
    global _key_pos
    cdef bytes fresh
    if _key_pos >= 4096:
        fresh = os.urandom(4096)
        memcpy(_key_pool, PyBytes_AS_STRING(fresh), 4096)
        _key_pos = 0
    memcpy(key, _key_pool + _key_pos, 4)
    _key_pos += 4
    return 0


cdef bytes _write_frame(uint8_t b0, const uint8_t *src, Py_ssize_t n, const uint8_t *key):
    """A frame with first byte ``b0`` and ``src[:n]`` as its payload, masked
    with ``key`` unless it is NULL: header and payload in one new bytes object."""
    cdef Py_ssize_t hlen = (2 if n < 126 else 4 if n < 65536 else 10) + (4 if key != NULL else 0)
    cdef bytes frame = PyBytes_FromStringAndSize(NULL, hlen + n)
    cdef uint8_t *out = <uint8_t *>PyBytes_AS_STRING(frame)
    cdef int i
    out[0] = b0
    if n < 126:
        out[1] = <uint8_t>n
        hlen = 2
    elif n < 65536:
        out[1] = 126
        out[2] = <uint8_t>(n >> 8)
        out[3] = <uint8_t>n
        hlen = 4
    else:
        out[1] = 127
        for i in range(8):
            out[2 + i] = <uint8_t>((<uint64_t>n) >> (56 - 8 * i))
        hlen = 10
    if key != NULL:
        out[1] |= 0x80
        memcpy(out + hlen, key, 4)
        _mask_maybe_nogil(src, out + hlen + 4, n, key)
    else:
        memcpy(out + hlen, src, n)
    return frame


cdef const uint8_t *_utf8_of(object text, Py_ssize_t *n) except NULL:
    """``text``'s UTF-8 bytes (CPython's cached copy) and their count; an
    unencodable ``str`` (a lone surrogate) raises the pure twin's error."""
    cdef const uint8_t *src
    try:
        src = <const uint8_t *>PyUnicode_AsUTF8AndSize(text, n)
    except UnicodeEncodeError:
        text.encode("utf-8")  # raises the same error as the pure twin
        raise
    return src


cdef bytes build_message(int opcode, object payload, bint masked):
    """``build_frame(opcode, payload, mask=masked)`` for a whole text (1) or
    binary (2) message whose payload is exactly ``str`` or ``bytes``, from C:
    the compiled fast path sends with it."""
    cdef const uint8_t *src
    cdef Py_ssize_t n
    cdef uint8_t key[4]
    if type(payload) is bytes:
        src = <const uint8_t *>PyBytes_AS_STRING(payload)
        n = PyBytes_GET_SIZE(payload)
    else:
        src = _utf8_of(payload, &n)
    if masked:
        _fresh_key(key)
    return _write_frame(<uint8_t>(0x80 | opcode), src, n, <const uint8_t *>key if masked else NULL)


def build_frame(opcode, payload, *, bint fin=True, bint rsv1=False, mask=None):
    """Serialize one frame. ``payload`` is bytes-like, or ``str`` (sent as UTF-8).

    ``mask=None`` (or False) builds an unmasked frame, a 4-byte key masks with that
    key, and ``mask=True`` masks with a fresh unpredictable key. Header and
    payload are written into one new bytes object.
    """
    cdef object opcode_int = opcode if type(opcode) is int else operator.index(opcode)
    cdef Py_ssize_t op = -1  # any opcode too large for C is invalid: check_build says so
    cdef const uint8_t *src
    cdef Py_ssize_t n
    cdef Py_buffer view
    cdef bint release = False
    cdef bint masked
    cdef uint8_t key[4]
    cdef bytes frame
    try:
        op = opcode_int
    except OverflowError:
        pass
    if type(payload) is bytes:
        src = <const uint8_t *>PyBytes_AS_STRING(payload)
        n = PyBytes_GET_SIZE(payload)
    elif isinstance(payload, str):
        src = _utf8_of(payload, &n)
    else:
        _acquire(payload, &view, "payload")
        release = True
        src = <const uint8_t *>view.buf
        n = view.len
    try:
        if (op < 0 or op > 10 or not (_DEFINED_OPCODES >> op) & 1
                or (op >= 8 and (n > 125 or not fin)) or (rsv1 and op != 1 and op != 2)):
            _rules.check_build(opcode_int, n, fin, rsv1)
        if mask is None or mask is False:
            masked = False
        else:
            masked = True
            if mask is True:
                _fresh_key(key)
            else:
                _load_key(mask, key)
        frame = _write_frame(<uint8_t>op | (0x80 if fin else 0) | (0x40 if rsv1 else 0),
                             src, n, <const uint8_t *>key if masked else NULL)
    finally:
        if release:
            PyBuffer_Release(&view)
    return frame


# --- close frames ----------------------------------------------------------------


def parse_close(payload):
    """Parse a close frame's payload into ``(code, reason)``.

    An empty payload means no status code: ``(1005, "")``. Known codes come back
    as :class:`CloseCode` members, others (3000-4999) as ints.
    """
    cdef Py_buffer view
    cdef const uint8_t *p
    cdef Py_ssize_t n
    cdef int code = 0
    _acquire(payload, &view, "payload")
    try:
        p = <const uint8_t *>view.buf
        n = view.len
        if n == 0:
            return CloseCode.NO_STATUS_RCVD, ""
        if n >= 2:
            code = (p[0] << 8) | p[1]
        error = _rules.close_payload_error(n, code)
        if error is not None:
            raise error
        try:
            reason = PyUnicode_DecodeUTF8(<const char *>p + 2, n - 2, "strict")
        except UnicodeDecodeError:
            raise _rules.invalid_close_reason() from None
    finally:
        PyBuffer_Release(&view)
    return _rules.close_code(code), reason


def build_close(code, reason=""):
    """Serialize a close frame's payload. ``code`` 1005 with no reason gives the
    empty payload (a close frame without a status code)."""
    code = operator.index(code)  # a Python int: one too large for C is refused below
    if code == 1005 and not reason:
        return b""
    data = reason.encode("utf-8")
    _rules.check_close(code, len(data))
    cdef int c = code
    return bytes(((c >> 8) & 0xFF, c & 0xFF)) + data


# --- UTF-8 scanning with the failure index (issue #7: fastws.accelerate) ----------
# Added for the wsaccel/Autobahn-compatible validator, whose validate() reports the
# index of the first invalid byte. Kept at the end of the file on purpose.


cdef Py_ssize_t _utf8_bad_at(const uint8_t *p, Py_ssize_t start, Py_ssize_t end) noexcept:
    """Index of the first byte in p[start:end] that cannot continue valid UTF-8
    (``start`` is on a code point boundary), or ``end`` if there is none (a
    sequence cut by ``end`` is not an error here)."""
    cdef Py_ssize_t j = start
    cdef int seqlen, k
    cdef uint8_t b
    while j < end:
        b = p[j]
        if b < 0x80:
            j += 1
            continue
        seqlen = fastws_utf8_seqlen(b)
        if seqlen == 0:
            return j
        for k in range(1, seqlen):
            if j + k >= end:
                return end
            if not fastws_utf8_cont_ok(b, k, p[j + k]):
                return j + k
        j += seqlen
    return end


def scan_utf8(data, pending=b""):
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
    cdef Py_buffer view
    cdef Py_buffer pview
    cdef const uint8_t *p
    cdef const uint8_t *pp
    cdef Py_ssize_t n, m, i = 0, tail, k, bad
    cdef uint8_t lead = 0
    cdef int have = 0, need = 0, seqlen
    cdef uint8_t b
    cdef bint ok = True
    _acquire(pending, &pview, "pending")
    try:
        pp = <const uint8_t *>pview.buf
        m = pview.len
        if m:
            lead = pp[0]
            need = fastws_utf8_seqlen(lead)
            if m > 3 or need <= m:
                ok = False
            else:
                for k in range(1, m):
                    if not fastws_utf8_cont_ok(lead, <int>k, pp[k]):
                        ok = False
                        break
            have = <int>m
        if not ok:
            raise ValueError(f"pending must be an incomplete UTF-8 sequence, got {bytes(pending)!r}")
        pend = PyBytes_FromStringAndSize(<const char *>pp, m)
    finally:
        PyBuffer_Release(&pview)
    _acquire(data, &view, "data")
    try:
        p = <const uint8_t *>view.buf
        n = view.len
        # 1. Finish the sequence left open by the previous call.
        while have and i < n:
            if not fastws_utf8_cont_ok(lead, have, p[i]):
                return i, b""
            have += 1
            i += 1
            if have == need:
                have = 0
        if have:
            return -1, pend + PyBytes_FromStringAndSize(<const char *>p, n)
        # 2. A sequence cut by the end starts at most 3 bytes before it.
        tail = n
        k = 1
        while k <= 3 and k <= n - i:
            b = p[n - k]
            if b < 0x80:
                break
            if b >= 0xC0:
                seqlen = fastws_utf8_seqlen(b)
                if seqlen == 0 or seqlen > k:
                    tail = n - k
                break
            k += 1
        # 3. Whole sequences before it, in bulk; the index only on failure.
        if tail > i and not _utf8_valid(p + i, tail - i):
            # (scanned up to n: a byte that never leads, cut off as the tail,
            # can be where a sequence of the bulk part fails)
            bad = _utf8_bad_at(p, i, n)
            if bad >= n:  # the bulk and the scalar check disagree: a bug here
                raise SystemError("fastws: scan_utf8 found no invalid byte in invalid UTF-8")
            return bad, b""
        # 4. The cut sequence must be a valid beginning.
        bad = _utf8_bad_at(p, tail, n)
        if bad < n:
            return bad, b""
        return -1, PyBytes_FromStringAndSize(<const char *>p + tail, n - tail)
    finally:
        PyBuffer_Release(&view)

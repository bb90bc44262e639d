# cython: language_level=3, binding=False, embedsignature.format=clinic
"""Compiled WebSocket codec: masking, UTF-8 validation, frame parsing and building.

The pure-Python twin, fastws._codec_py, has the same names and gives the same
results and the same errors; fastws.codec picks one of the two at import time.
The public docstrings are that twin's, word for word (tests/test_codec_api.py
checks); the signatures are embedded in the format that CPython's
``__text_signature__`` reads, so that ``inspect.signature`` works and ``__doc__``
is the docstring alone.
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
from cpython.long cimport PyLong_Check
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy

import operator
import os

from fastws import _rules
from fastws.exceptions import ProtocolError
from fastws.frames import CloseCode, Opcode

__all__ = [  # the pure twin's, in the same order
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


cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX
    int _PyBytes_Resize(PyObject **bytes, Py_ssize_t newsize) except -1
    const char *PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t *size) except NULL
    object PyNumber_Index(object o)
    long PyLong_AsLongAndOverflow(object o, int *overflow) except? -1
    # (PyUnicode_DecodeUTF8: declared in _speedups.pxd)


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
# Declared in _speedups.pxd, for plain_message_c: compiled once into every
# module that cimports it, that function reads them through the pxd.
_OP_TEXT = Opcode.TEXT
_OP_BINARY = Opcode.BINARY
# Bit i set when opcode i is defined (RFC 6455 section 5.2).
cdef int _DEFINED_OPCODES = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 8) | (1 << 9) | (1 << 10)
# apply_mask_inplace's default phase, and the phases it returns (an item of a
# tuple costs less than making the int, even a cached one).
cdef object _PHASE_0 = 0
cdef tuple _PHASES = (0, 1, 2, 3)
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
    """Get ``obj``'s bytes as one contiguous buffer, with the same errors as
    the pure twin: its own memory when it is C-contiguous (whatever its shape
    and format), else a copy in C order (what ``bytes(obj)`` gives), which the
    view holds until it is released."""
    try:
        PyObject_GetBuffer(obj, view, PyBUF_SIMPLE)
    except TypeError:
        raise TypeError(f"{what} must be a bytes-like object, not {type(obj).__name__}") from None
    except BufferError:  # not C-contiguous: a strided memoryview, a Fortran-ordered array
        PyObject_GetBuffer(_rules.contiguous_copy(memoryview(obj)), view, PyBUF_SIMPLE)
    return 0


cdef inline int _load_key(object mask, uint8_t *key) except -1:
    """Copy the 4-byte masking key into ``key``: inline for ``bytes``, the
    usual type, through the buffer protocol for the others."""
    if type(mask) is bytes and PyBytes_GET_SIZE(mask) == 4:
        memcpy(key, PyBytes_AS_STRING(mask), 4)
        return 0
    return _load_key_buffer(mask, key)


cdef int _load_key_buffer(object mask, uint8_t *key) except -1:
    cdef Py_buffer view
    cdef Py_ssize_t n
    _acquire(mask, &view, "mask")
    n = view.len
    if n == 4:
        memcpy(key, view.buf, 4)
    PyBuffer_Release(&view)
    if n != 4:
        raise ValueError(f"mask must be 4 bytes, got {n}")
    return 0


cdef inline long _phase_of(object phase) except -1:
    """``phase`` as a C long, 0 to 3, with the pure twin's errors: TypeError
    from ``operator.index`` for what is not an integer, ValueError for any
    integer out of range, however large. An int costs no Python call."""
    cdef long p
    cdef int overflow
    if phase is _PHASE_0:  # the default (CPython shares the int 0): nothing to convert
        return 0
    if type(phase) is not int:
        phase = PyNumber_Index(phase)
    p = PyLong_AsLongAndOverflow(phase, &overflow)
    if overflow or p < 0 or p > 3:
        raise ValueError(f"phase must be 0 to 3, got {phase}")
    return p


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
    cdef uint8_t key[4]
    cdef uint8_t rotated[4]
    cdef Py_buffer view
    cdef Py_ssize_t n
    cdef long p
    cdef int i
    # Argument order of the checks as in the pure twin: mask, phase, buffer.
    _load_key(mask, key)
    p = _phase_of(phase)
    if p:
        for i in range(4):
            rotated[i] = key[(p + i) & 3]
        memcpy(key, rotated, 4)
    # A small bytearray is masked in place with the GIL held. A large one goes
    # through the buffer protocol below: the export it holds while the GIL is
    # released keeps another thread from resizing the bytearray under the mask.
    if type(buffer) is bytearray and PyByteArray_GET_SIZE(buffer) < _NOGIL_SIZE:
        n = PyByteArray_GET_SIZE(buffer)
        _mask_maybe_nogil(<const uint8_t *>PyByteArray_AS_STRING(buffer),
                          <uint8_t *>PyByteArray_AS_STRING(buffer), n, key)
        return _PHASES[(p + n) & 3]
    try:
        PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE)
    except TypeError:
        raise TypeError(f"buffer must be a bytes-like object, not {type(buffer).__name__}") from None
    except BufferError:  # not C-contiguous: masked in a copy, written back
        strided = memoryview(buffer)
        if strided.readonly:
            raise TypeError("buffer must be writable") from None
        n = strided.nbytes
        _rules.write_back(strided, apply_mask(_rules.contiguous_copy(strided),
                                              PyBytes_FromStringAndSize(<const char *>key, 4)))
        return _PHASES[(p + n) & 3]
    if view.readonly:
        PyBuffer_Release(&view)
        raise TypeError("buffer must be writable")
    n = view.len
    _mask_maybe_nogil(<const uint8_t *>view.buf, <uint8_t *>view.buf, n, key)
    PyBuffer_Release(&view)
    return _PHASES[(p + n) & 3]


# --- UTF-8 -----------------------------------------------------------------------


cdef inline bint _utf8_valid(const uint8_t *p, Py_ssize_t n) noexcept:
    cdef bint ok
    if n >= _NOGIL_SIZE:
        with nogil:
            ok = fastws_utf8_valid(p, n)
        return ok
    return fastws_utf8_valid(p, n)


def validate_utf8(data):
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
    cdef Py_buffer view
    cdef bint ok
    if type(data) is bytes:
        return _utf8_valid(<const uint8_t *>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
    _acquire(data, &view, "data")
    ok = _utf8_valid(<const uint8_t *>view.buf, view.len)
    PyBuffer_Release(&view)
    return ok


cdef struct _Utf8Cut:
    # The sequence that cuts a text short at its end so far.
    uint8_t lead  # its lead byte
    int have      # bytes of it seen, 0 on a code point boundary
    int need      # its full length


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


cdef Py_ssize_t _utf8_continue(_Utf8Cut *cut, const uint8_t *p, Py_ssize_t n) except -2:
    """Validate p[:n] as the continuation of a UTF-8 text that ends in ``*cut``:
    what Utf8Validator.feed and scan_utf8 share. Returns -1 while the text can
    still be valid, ``*cut`` then being the sequence it ends in now, else the
    index in p of the first byte that no valid text can have there (``*cut``
    is then of no use)."""
    cdef Py_ssize_t i = 0, tail = n, k, bad
    cdef int seqlen
    cdef uint8_t b
    # 1. Finish the sequence left open, byte by byte.
    while cut.have and i < n:
        if not fastws_utf8_cont_ok(cut.lead, cut.have, p[i]):
            return i
        cut.have += 1
        i += 1
        if cut.have == cut.need:
            cut.have = 0
    if i == n:
        return -1
    # 2. A sequence cut by the end of p starts at most 3 bytes before it (a
    #    byte that never leads there is taken as one: step 4 finds it).
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
            raise SystemError("fastws: found no invalid byte in invalid UTF-8")
        return bad
    # 4. The cut sequence must be a valid beginning.
    if tail < n:
        bad = _utf8_bad_at(p, tail, n)
        if bad < n:
            return bad
        cut.lead = p[tail]
        cut.need = fastws_utf8_seqlen(cut.lead)
        cut.have = <int>(n - tail)
    return -1


@cython.final
cdef class Utf8Validator:
    """Incremental strict UTF-8 validator, for a text that arrives in pieces.

    :meth:`feed` returns False as soon as the bytes fed so far cannot be the
    beginning of valid UTF-8, even in the middle of a multi-byte sequence;
    :attr:`complete` tells whether they end on a code point boundary, that is
    whether the text may end there. Once invalid, a validator stays invalid
    until :meth:`reset`.
    """

    cdef bint _valid
    cdef _Utf8Cut _cut

    def __cinit__(self):
        self._valid = True

    def feed(self, data):
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
        cdef Py_buffer view
        if not self._valid:
            return False
        if type(data) is bytes:
            self._valid = _utf8_continue(&self._cut, <const uint8_t *>PyBytes_AS_STRING(data),
                                         PyBytes_GET_SIZE(data)) < 0
        else:
            _acquire(data, &view, "data")
            try:
                self._valid = _utf8_continue(&self._cut, <const uint8_t *>view.buf, view.len) < 0
            finally:
                PyBuffer_Release(&view)
        return self._valid

    @property
    def valid(self):
        """False once an invalid byte has been fed, until :meth:`reset`."""
        return self._valid

    @property
    def complete(self):
        """True when the bytes fed so far are valid UTF-8 and end on a code
        point boundary."""
        return self._valid and self._cut.have == 0

    def reset(self):
        """Forget everything fed so far, to validate a new text."""
        self._valid = True
        self._cut.have = 0
        self._cut.need = 0


# --- frames ----------------------------------------------------------------------


@cython.final
@cython.freelist(64)
cdef class Frame:
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

    # Fields: opcode, payload, fin, rsv1, rsv2, rsv3 (declared in _speedups.pxd).

    def __init__(self, opcode, payload=b"", fin=True, rsv1=False, rsv2=False, rsv3=False):
        self.opcode = Opcode(opcode)
        self.payload = payload if type(payload) is bytes else _rules.as_bytes(payload, "payload")
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

    # Fields and C methods: declared in _speedups.pxd. The parser keeps no
    # reference to the caller's buffer: a header cut by the end of the input is
    # copied (14 bytes at most), and a payload cut by it goes straight into the
    # frame's own bytes object, unmasked on the way.

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
        """The frame whose payload is arriving, while it is incomplete.

        Lets a caller act on a frame before it ends: fail fast on invalid
        UTF-8 in a text frame that arrives in pieces.

        Returns:
            ``(opcode, fin, rsv1, received)`` once the frame's header is
            complete, ``received`` being the number of its payload bytes
            received so far (fewer than its length); None between frames,
            inside a header and after an error.
        """
        if not self._in_payload:
            return None
        return (_OPCODES[self._b0 & 0x0F], (self._b0 & 0x80) != 0, (self._b0 & 0x40) != 0,
                self._filled)

    def pending_payload(self, start=0):
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


# --- messages ------------------------------------------------------------------


def plain_message(frame):
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
    if type(frame) is Frame:
        return plain_message_c(<Frame>frame)
    # A frame of the pure twin (a protocol running it): the same steps on its attributes.
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


# --- building --------------------------------------------------------------------


cdef inline Py_ssize_t _opcode_value(object opcode_int) except? -2:
    """The value of an int (or int subclass) opcode; -1, an invalid opcode,
    for one too large for a C long (the rules then say what is wrong)."""
    cdef int overflow
    cdef long op = PyLong_AsLongAndOverflow(opcode_int, &overflow)
    return -1 if overflow else op


cdef inline object _exact_int(object value):
    """What ``operator.index`` gives for an int or int subclass (an Opcode),
    for the error messages of the rules, which format it."""
    return value if type(value) is int else PyNumber_Index(value)


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


cdef inline Py_ssize_t _header_size(uint64_t n) noexcept:
    """The size of an unmasked frame's header for a payload of ``n`` bytes."""
    return 2 if n < 126 else 4 if n < 65536 else 10


cdef inline Py_ssize_t _write_header(uint8_t *out, uint8_t b0, uint64_t n) noexcept:
    """Write the header of an unmasked frame with first byte ``b0`` and a
    payload of ``n`` bytes (< 2**63) at ``out``: build_frame's, build_message's
    and build_header's one header writer. Returns its size, _header_size(n)."""
    cdef int i
    out[0] = b0
    if n < 126:
        out[1] = <uint8_t>n
        return 2
    if n < 65536:
        out[1] = 126
        out[2] = <uint8_t>(n >> 8)
        out[3] = <uint8_t>n
        return 4
    out[1] = 127
    for i in range(8):
        out[2 + i] = <uint8_t>(n >> (56 - 8 * i))
    return 10


cdef bytes _write_frame(uint8_t b0, const uint8_t *src, Py_ssize_t n, const uint8_t *key):
    """A frame with first byte ``b0`` and ``src[:n]`` as its payload, masked
    with ``key`` unless it is NULL: header and payload in one new bytes object."""
    cdef Py_ssize_t hlen = _header_size(<uint64_t>n) + (4 if key != NULL else 0)
    cdef bytes frame = PyBytes_FromStringAndSize(NULL, hlen + n)
    cdef uint8_t *out = <uint8_t *>PyBytes_AS_STRING(frame)
    hlen = _write_header(out, b0, <uint64_t>n)
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
    # An int or an int subclass (Opcode) is read as it is: no Python call.
    cdef object opcode_int = opcode if PyLong_Check(opcode) else PyNumber_Index(opcode)
    cdef Py_ssize_t op = _opcode_value(opcode_int)
    cdef const uint8_t *src
    cdef Py_ssize_t n
    cdef Py_buffer view
    cdef bint release = False
    cdef bint masked
    cdef uint8_t key[4]
    cdef bytes frame
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
            _rules.check_build(_exact_int(opcode_int), n, fin, rsv1)
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


def build_header(opcode, length, *, bint fin=True, bint rsv1=False):
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
    cdef object opcode_int = opcode if PyLong_Check(opcode) else PyNumber_Index(opcode)
    cdef object length_int = length if type(length) is int else PyNumber_Index(length)
    cdef Py_ssize_t op = _opcode_value(opcode_int)
    cdef long long n = -1    # too large for C: invalid, and check_header says so
    cdef uint8_t out[10]
    try:
        n = length_int
    except OverflowError:
        pass
    if (op < 0 or op > 10 or not (_DEFINED_OPCODES >> op) & 1 or n < 0
            or (op >= 8 and (n > 125 or not fin)) or (rsv1 and op != 1 and op != 2)):
        opcode_int = _exact_int(opcode_int)
        _rules.check_header(opcode_int, length_int, fin, rsv1)
        # the fast check and the rules disagree: a bug here
        raise SystemError(f"fastws: header ({opcode_int}, {length_int}) rejected without a reason")
    return PyBytes_FromStringAndSize(
        <const char *>out,
        _write_header(out, <uint8_t>op | (0x80 if fin else 0) | (0x40 if rsv1 else 0), <uint64_t>n))


# --- close frames ----------------------------------------------------------------


def parse_close(payload):
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
    code = operator.index(code)  # a Python int: one too large for C is refused below
    if code == 1005 and not reason:
        return b""
    data = reason.encode("utf-8")
    _rules.check_close(code, len(data))
    cdef int c = code
    return bytes(((c >> 8) & 0xFF, c & 0xFF)) + data


# --- UTF-8 scanning with the failure index ----------------------------------------
# For the wsaccel/Autobahn-compatible validator of fastws.accelerate, whose
# validate() reports the index of the first invalid byte.


def scan_utf8(data, pending=b""):
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
    cdef Py_buffer view
    cdef Py_buffer pview
    cdef const uint8_t *pp
    cdef const uint8_t *p
    cdef Py_ssize_t n, m, k, bad
    cdef _Utf8Cut cut
    cdef bint ok = True
    cut.have = 0
    _acquire(pending, &pview, "pending")
    try:
        pp = <const uint8_t *>pview.buf
        m = pview.len
        if m:
            cut.lead = pp[0]
            cut.need = fastws_utf8_seqlen(cut.lead)
            if m > 3 or cut.need <= m:  # (an invalid lead byte has need 0)
                ok = False
            else:
                for k in range(1, m):
                    if not fastws_utf8_cont_ok(cut.lead, <int>k, pp[k]):
                        ok = False
                        break
            cut.have = <int>m
        if not ok:
            raise ValueError(f"pending must be an incomplete UTF-8 sequence, got {bytes(pending)!r}")
        pend = PyBytes_FromStringAndSize(<const char *>pp, m)
    finally:
        PyBuffer_Release(&pview)
    _acquire(data, &view, "data")
    try:
        p = <const uint8_t *>view.buf
        n = view.len
        bad = _utf8_continue(&cut, p, n)
        if bad >= 0:
            return bad, b""
        if cut.have <= n:
            return -1, PyBytes_FromStringAndSize(<const char *>p + n - cut.have, cut.have)
        # still the sequence that pending began
        return -1, pend + PyBytes_FromStringAndSize(<const char *>p, n)
    finally:
        PyBuffer_Release(&view)

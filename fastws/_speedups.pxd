# Declarations of fastws._speedups shared with other compiled modules:
# fastws.asyncio._fastpath reads a Frame's fields directly, feeds a FrameParser
# from its read buffer's memory, builds message frames and decides which frames
# are plain messages (plain_message_c) without a Python call:
#
#     from fastws._speedups cimport Frame, FrameParser, build_message, plain_message_c

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint64_t


cdef extern from "Python.h":
    object PyUnicode_DecodeUTF8(const char *s, Py_ssize_t size, const char *errors)


@cython.final
cdef class Frame:
    cdef readonly object opcode
    cdef readonly bytes payload
    cdef readonly bint fin
    cdef readonly bint rsv1
    cdef readonly bint rsv2
    cdef readonly bint rsv3


@cython.final
cdef class FrameParser:
    cdef bint _mask_required
    cdef bint _allow_rsv1
    cdef object _max_size
    cdef uint64_t _limit
    cdef object _error
    # a header cut by the end of the input
    cdef uint8_t _hdr[14]
    cdef Py_ssize_t _hdr_len
    # the frame whose header was parsed last
    cdef uint8_t _b0
    cdef bint _masked
    cdef uint8_t _key[4]
    cdef Py_ssize_t _length
    cdef Py_ssize_t _hlen
    # its payload, while it arrives in pieces (a bytes object we own alone)
    cdef bint _in_payload
    cdef PyObject *_payload
    cdef Py_ssize_t _filled
    cdef Py_ssize_t _capacity

    cdef list feed_from(self, const uint8_t *p, Py_ssize_t n)
    cdef inline bint _header_ok(self, uint8_t b0, uint8_t b1) noexcept
    cdef Py_ssize_t _parse_header(self, const uint8_t *h, Py_ssize_t avail) except -1
    cdef int _raise_header_error(self, uint8_t b0, uint8_t b1) except -1
    cdef bytes _copy_payload(self, const uint8_t *src, Py_ssize_t n)
    cdef int _begin_partial(self, const uint8_t *src, Py_ssize_t n) except -1
    cdef int _append_partial(self, const uint8_t *src, Py_ssize_t n) except -1
    cdef bytes _take_partial(self)
    cdef void _reset(self) noexcept
    cdef int _run(self, const uint8_t *p, Py_ssize_t n, list frames) except -1
    cdef int _fail(self, exc, list frames) except -1


cdef bytes build_message(int opcode, object payload, bint masked)


# Opcode.TEXT and Opcode.BINARY (set by _speedups at import), for plain_message_c.
cdef object _OP_TEXT
cdef object _OP_BINARY


cdef inline object plain_message_c(Frame f):
    """plain_message(f) for one of our Frames, from its C fields: the payload
    of a whole binary frame without reserved bits, the text of such a text
    frame, None for any other frame and for text that is not valid UTF-8.
    Inline: compiled into each module that cimports it, with no call at all."""
    cdef bytes payload
    if not f.fin or f.rsv1 or f.rsv2 or f.rsv3:
        return None
    if f.opcode is _OP_BINARY:
        return f.payload
    if f.opcode is _OP_TEXT:
        payload = f.payload
        try:
            return PyUnicode_DecodeUTF8(PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload), NULL)
        except UnicodeDecodeError:
            return None
    return None

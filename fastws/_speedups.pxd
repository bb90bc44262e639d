# Declarations of fastws._speedups shared with other compiled modules:
# fastws.asyncio._fastpath reads a Frame's fields directly, feeds a FrameParser
# from its read buffer's memory and builds message frames without a Python call.

cimport cython
from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint64_t


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

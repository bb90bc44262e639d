# Declarations of fastws._speedups shared with other compiled modules
# (fastws.asyncio._fastpath reads a Frame's fields directly).

cimport cython


@cython.final
cdef class Frame:
    cdef readonly object opcode
    cdef readonly bytes payload
    cdef readonly bint fin
    cdef readonly bint rsv1
    cdef readonly bint rsv2
    cdef readonly bint rsv3

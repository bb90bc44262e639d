# The C declarations of fastws.asyncio._fastpath, which is
# fastws/asyncio/_fastpath_py.py compiled by Cython (setup.py): the source says
# what runs, this file the C types of its state, methods and locals. Methods
# without a declaration here stay Python methods (def).

cimport cython

# `codec` in the source is `from .. import codec`; here the names that
# _speedups.pxd declares (Frame, FrameParser, build_message, plain_message_c)
# are the C ones, and the others stay the Python module's.
from fastws cimport _speedups as codec

cdef Py_ssize_t PASS_THROUGH_SIZE


cdef class FastPath:
    # Read and written by Connection too (Python attributes).
    cdef public object protocol
    cdef public object transport
    cdef public object listener
    cdef public object max_queue
    cdef public object _on_message
    cdef public object _messages
    cdef public object _recv_waiter
    cdef public bint _reading_paused
    cdef public object write_limit  # read per connection by broadcast(): a slot, not the instance dict
    # The fast path's own.
    cdef readonly object _gates  # read by Connection too
    cdef bint _mask_frames
    cdef object _read_buf
    cdef object _read_size
    cdef bytearray _read_memory

    cdef object _feed_read(self, object data)
    cdef object _end_of_read(self, object parser, list frames, object error)
    cdef inline bint _frame_arriving(self, object parser) except -1

    @cython.locals(i=Py_ssize_t, direct=bint)
    cdef bint _deliver(self, object parser, list frames, object error) except -1

    cdef object _frames_received(self, list frames, object error)
    cdef bint _frame_received(self, object frame) except -1

    cdef object _queue(self, object message)

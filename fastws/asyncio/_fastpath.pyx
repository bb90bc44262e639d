# cython: language_level=3
"""A connection's hot methods, compiled: the twin of :mod:`fastws.asyncio._fastpath_py`.

Both run the same steps (see that module); this one runs them without a Python
frame of its own for a read of plain messages, or for a message sent: it feeds
our codec's parser from the read buffer's memory, reads a parsed frame's
fields straight from its C struct, and frames a reply with a C call
(``_speedups.pxd``). What is not the common case goes through the same Python
methods in both.
"""

import logging

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport uint8_t

from fastws._speedups cimport Frame, FrameParser, build_message

from fastws.exceptions import ProtocolError
from fastws.frames import Opcode
from fastws.protocol import CONNECTING, OPEN
from fastws.protocol import PASS_THROUGH_SIZE as _PASS_THROUGH

from fastws.asyncio._fastpath_py import FastPath as _General
from fastws.asyncio._fastpath_py import _plain_message as _plain_message_generic

IMPLEMENTATION = "cython"

cdef object _logger = logging.getLogger("fastws")

cdef object _OP_TEXT = Opcode.TEXT
cdef object _OP_BINARY = Opcode.BINARY
cdef object _OPEN = OPEN
cdef object _CONNECTING = CONNECTING
cdef object _ProtocolError = ProtocolError
cdef Py_ssize_t _pass_through = _PASS_THROUGH
cdef object _general_send = _General._send_general
cdef object _plain_message_py = _plain_message_generic


cdef inline object _plain_message(object frame):
    """The message a whole, unextended text or binary frame carries; None for
    any other frame, and for text that is not valid UTF-8 (the protocol then
    says where, and fails the connection). Our codec's frames are read from
    their C struct; others (a protocol running the pure codec) as objects."""
    cdef Frame f
    cdef bytes payload
    if type(frame) is not Frame:
        return _plain_message_py(frame)
    f = <Frame>frame
    if not f.fin or f.rsv1:
        return None
    payload = f.payload
    if f.opcode is _OP_BINARY:
        return payload
    if f.opcode is _OP_TEXT:
        try:
            return PyUnicode_DecodeUTF8(PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload), NULL)
        except UnicodeDecodeError:
            return None
    return None


cdef inline Py_ssize_t _checked_count(object nbytes, Py_ssize_t size) except -1:
    """The event loop's read count, which must fit the buffer it read into
    (a count too large for C gets the same ValueError as in the pure twin)."""
    cdef Py_ssize_t n = -1
    try:
        n = nbytes
    except OverflowError:
        pass
    if n < 0 or n > size:
        raise ValueError(f"{nbytes} bytes read into a buffer of {size}")
    return n


cdef class FastPath:
    """Base of :class:`~fastws.asyncio.connection.Connection`: reading into the
    shared read buffer, and :meth:`send_nowait`. The attributes below are the
    connection's own, kept in C slots for the fast path."""

    cdef public object protocol
    cdef public object transport
    cdef public object listener
    cdef public object max_queue
    cdef public object _on_message
    cdef public object _read_buf
    cdef public object _messages
    cdef public object _recv_waiter
    cdef public bint _reading_paused

    def get_buffer(self, Py_ssize_t sizehint):
        return self._read_buf

    def buffer_updated(self, nbytes):
        cdef object protocol = self.protocol
        cdef object parser = protocol.gates.fast_parser
        cdef object frames, error = None
        cdef Py_buffer view
        cdef Py_ssize_t n
        if type(parser) is not FrameParser:
            n = _checked_count(nbytes, len(self._read_buf))
            self._read(self._read_buf[:n])
            return
        # Our parser reads the buffer's memory: no slice, no second buffer request.
        PyObject_GetBuffer(self._read_buf, &view, PyBUF_SIMPLE)
        try:
            n = _checked_count(nbytes, view.len)
            frames = (<FrameParser>parser).feed_from(<const uint8_t *>view.buf, n)
        except _ProtocolError as exc:
            frames, error = exc.frames, exc
        finally:
            PyBuffer_Release(&view)
        self._parsed(protocol, parser, frames, error)

    def _feed_read(self, data):
        """One read's bytes (from the read buffer, or trailing the handshake)."""
        self._read(data)

    cdef int _read(self, object data) except -1:
        cdef object protocol = self.protocol
        cdef object parser = protocol.gates.fast_parser
        cdef object frames, error = None
        if parser is None:
            if protocol.state is _CONNECTING:
                data = bytes(data)  # the handshake parsers may keep what they get
            self.data_received(data)
            return 0
        try:
            frames = parser.feed(data)
        except _ProtocolError as exc:
            frames, error = exc.frames, exc
        return self._parsed(protocol, parser, frames, error)

    cdef int _parsed(self, object protocol, object parser, object frames, object error) except -1:
        """What a read's frames (and the parser's error, if any) lead to."""
        cdef bint pending
        if frames and not self._deliver(protocol, <list>frames, error):
            return 0
        if error is not None:
            self._frames_received([], error)
            return 0
        if type(parser) is FrameParser:
            pending = (<FrameParser>parser)._in_payload  # what pending() tells
        else:
            pending = parser.pending() is not None
        if pending:
            self._frames_received([], None)
        elif protocol.gates.has_data_to_send:
            self._flush()  # bytes a callback queued itself
        return 0

    cdef bint _deliver(self, object protocol, list frames, object error) except -1:
        """Each frame in order: a plain message to on_message or the recv()
        queue, anything else through the protocol. False if the read is over
        (reading stopped, or a callback closed the connection)."""
        cdef object on_message = self._on_message
        cdef bint direct = protocol.gates.fast_delivery
        cdef Py_ssize_t i, n = len(frames)
        cdef object frame, message
        for i in range(n):
            frame = frames[i]
            message = _plain_message(frame) if direct else None
            if message is None:
                if not self._frame_received(frame):
                    return False  # what follows a close frame or a failure is discarded
                direct = protocol.gates.fast_delivery
            elif on_message is None:
                self._enqueue_c(message)
            else:
                try:
                    on_message(self, message)
                except Exception:
                    self._listener_failed("on_message")
                if protocol.state is not _OPEN:
                    # The callback failed or closed the connection: the protocol
                    # takes the rest (and discards it after a failure).
                    self._frames_received(frames[i + 1:], error)
                    return False
        return True

    def _enqueue(self, message):
        """A message for recv() (see the pure twin's docstring)."""
        self._enqueue_c(message)

    cdef int _enqueue_c(self, object message) except -1:
        cdef object waiter = self._recv_waiter
        cdef object messages = self._messages
        cdef object max_queue = self.max_queue
        cdef object protocol
        if waiter is not None and not messages:
            self._recv_waiter = None
            if not waiter.done():
                waiter.set_result(message)
                return 0
        if max_queue is None or len(messages) + 1 < max_queue:
            messages.append(message)
            return 0
        protocol = self.protocol
        if protocol.close_sent is not None and protocol.close_rcvd is None:
            if len(messages) >= max_queue:
                _logger.debug("dropped a message received while closing: queue full")
            else:
                messages.append(message)
            return 0
        messages.append(message)
        if not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        return 0

    def send_nowait(self, message):
        """Send a whole message now, without waiting for the write buffer to
        drain (the callback interface and broadcast use this; check
        :attr:`write_buffer_size` to apply your own backpressure)."""
        cdef object kind = type(message)
        cdef object protocol = self.protocol
        cdef bint masked
        if kind is bytes:
            masked = protocol.mask_frames
            if PyBytes_GET_SIZE(message) < _pass_through or masked:
                if protocol.gates.fast_send:
                    self.transport.write(build_message(2, message, masked))
                    return
        elif kind is str:
            if protocol.gates.fast_send:
                self.transport.write(build_message(1, message, protocol.mask_frames))
                return
        _general_send(self, message)

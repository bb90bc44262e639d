"""The WebSocket protocol without I/O: bytes in, events and bytes out.

A :class:`Protocol` never touches a socket, a clock or an event loop. Its
states (:class:`State`): a client or server starts CONNECTING, is OPEN once the
opening handshake succeeds, CLOSING once it has sent a close frame, and CLOSED
when it is done: after the end of the stream, after a server completes or fails
the closing handshake (it then closes TCP, RFC 6455 section 7.1.1), or after a
failed opening handshake. A client that has sent and received a close frame
stays CLOSING until the server closes TCP; the driver bounds that wait with a
timeout (:meth:`Protocol.close_expected` tells when to start it).

Bad input from the peer never raises: the protocol sends a close frame with
the right code (1002, 1007, 1009...), records the exception in
:attr:`Protocol.error`, and stops reading. Raising is kept for mistakes of the
caller (:class:`~fastws.exceptions.InvalidState`, ``ValueError``,
``TypeError``). Errors are found as early as the bytes show them: invalid UTF-8
in a text frame fails the connection as soon as the piece that contains it
arrives, before the frame is complete, and a data frame that breaks the
fragmentation rules fails it from its header.

The handshake objects: a server's first event is the client's
:class:`~fastws.http11.Request` (also kept in ``protocol.request``), a client's
first event is the server's :class:`~fastws.http11.Response`
(``protocol.response``).

Inside, a protocol is four parts, each owning its state: the frame reader
(the codec's parser, and whether frames are read), the message assembler
(plain messages, fragments, UTF-8, ``max_size``, the extension's decoding),
the message writer (one send path for every data frame, the output queue, pongs
held) and the closing handshake (the state machine of :class:`State` and the
close frames). Each part keeps its own gate in :class:`Gates`.

The driver contract
-------------------

A driver moves bytes between some I/O and a protocol (:mod:`fastws.asyncio` is
one). It uses only what this section names, never an underscore attribute.

**The general loop**, enough for any driver::

    protocol.receive_data(data)          # or receive_eof() when the stream ends
    for event in protocol.events_received():
        ...                               # str, bytes, Ping, Pong, Close, Request/Response
    transport.write(protocol.data_to_send())
    if protocol.should_close_transport():
        transport.close()

and ``send_text()``, ``send_binary()``, ``send_continuation()``,
``send_ping()``, ``send_pong()``, ``send_close()``, ``fail()``, each followed by
writing :meth:`~Protocol.data_to_send` (or :meth:`~Protocol.chunks_to_send`, to
keep a large payload uncopied).

**Failures.** A protocol error of the peer is reported as
:attr:`Protocol.error`, with its close frame queued at once. A driver that hands
messages to an application asynchronously sets ``defer_failure``: reading then
stops at once, :attr:`Protocol.pending_failure` holds the error, and its close
frame waits for :meth:`Protocol.fail_pending`, which the driver calls once the
application has taken the messages received before the bad frame (so that
replies to them go out first). Reading has stopped by then: while
:attr:`Gates.fast_parser` is not None, no failure is pending. A failed opening handshake makes the state
CLOSED with :attr:`Protocol.error` set and the HTTP response, if any, in
:meth:`~Protocol.data_to_send`.

**The handshake's outcome.** The state leaves CONNECTING: OPEN (``request``,
``response``, ``subprotocol`` and ``extensions`` are then set) or CLOSED.
Bytes that came after the handshake in the same read go on as frames, or,
with ``defer_trailing`` set, wait in :meth:`~Protocol.trailing_data` for the
driver to handle as a read of its own.

**The fast path** (:class:`Gates`, ``protocol.gates``, the same object for the
protocol's whole life). A driver may feed :attr:`Gates.fast_parser` itself
while it is not None, and then, for each frame the parser returns, in order:

- while :attr:`Gates.fast_delivery` is True, deliver the message that
  :func:`~fastws.codec.plain_message` finds in the frame itself;
- give any other frame to :meth:`Protocol.receive_frame`, take
  :meth:`~Protocol.events_received` and :meth:`~Protocol.data_to_send`, and read
  the gates again (it returns False once reading stopped: the read is over);
- stop when :attr:`Gates.fast_parser` is no longer the parser it fed (an
  application callback closed or failed the connection) and hand the frames
  left to :meth:`Protocol.receive_frames`;
- at the end of the read, call :meth:`Protocol.receive_frames` with the
  parser's error, if ``feed`` raised one, or with ``[]`` if a frame is still
  arriving (the parser's ``pending()`` is not None): it checks that frame's
  header and UTF-8 so far.

While :attr:`Gates.fast_send` is True the driver may write a whole message as
``build_frame(opcode, payload, mask=protocol.mask_frames)`` itself (a ``bytes``
payload of :data:`PASS_THROUGH_SIZE` or more from a server goes through
``send_binary`` to stay uncopied); :attr:`Gates.has_data_to_send` tells whether
to call :meth:`~Protocol.data_to_send`. :meth:`Protocol.hold_pongs` and
:meth:`~Protocol.release_pongs` follow the transport's flow control.
"""

from __future__ import annotations

from .client import ClientProtocol
from .connection import Protocol
from .server import ServerProtocol
from .types import DEFAULT_MAX_SIZE, PASS_THROUGH_SIZE, Gates, Side, State

__all__ = [
    "State",
    "Side",
    "Gates",
    "Protocol",
    "ServerProtocol",
    "ClientProtocol",
    "DEFAULT_MAX_SIZE",
    "PASS_THROUGH_SIZE",
    "CONNECTING",
    "OPEN",
    "CLOSING",
    "CLOSED",
    "SERVER",
    "CLIENT",
]

#: Shortcuts for the states and sides.
CONNECTING = State.CONNECTING
OPEN = State.OPEN
CLOSING = State.CLOSING
CLOSED = State.CLOSED
SERVER = Side.SERVER
CLIENT = Side.CLIENT

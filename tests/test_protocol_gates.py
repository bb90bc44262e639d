"""The fast-path gates of the sans-I/O protocol stay true to what they summarize.

:class:`~fastws.protocol.Protocol` keeps three attributes for drivers that feed
the parser themselves (:attr:`~fastws.protocol.Protocol.fast_parser`,
:attr:`~fastws.protocol.Protocol.fast_delivery`,
:attr:`~fastws.protocol.Protocol.fast_send`), updated wherever what they depend
on changes, so that the fast path reads an attribute instead of calling a
method. A stale gate would let a driver deliver a message in the middle of a
fragmented one, or write a frame in the middle of a fragmented send. These
tests run random sequences of what changes a protocol's state (on both
sides, through the opening handshake or refused in it, received bytes cut
anywhere included), and check all three after every step against their
definitions, written out here.
"""

from __future__ import annotations

import zlib

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fastws.asyncio._fastpath_py import _plain_message  # what the driver delivers itself
from fastws.deflate import ServerPerMessageDeflateFactory
from fastws.exceptions import InvalidState, ProtocolError
from fastws.protocol import CLOSED, OPEN, ClientProtocol, Protocol, ServerProtocol, Side

from asyncio_helpers import HANDSHAKE
from protocol_helpers import BINARY, CLOSE, CONT, PING, PONG, TEXT, close_payload, make_frame


def expected_gates(p: Protocol) -> tuple:
    """The gates' definitions (what the methods they replaced returned)."""
    parser = p._parser if p._reading and p.state is OPEN else None
    delivery = p._frag_op is None and not p._checked and p._fast and p._reading
    send = p.state is OPEN and p._send_frag is None and p._ext is None and not p._out
    return parser, bool(delivery), bool(send)


def gates(p: Protocol) -> tuple:
    return p.gates.fast_parser, p.gates.fast_delivery, p.gates.fast_send


def _deflated(payload: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return (compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


# What a peer may send, valid or not: (opcode, payload, options) of one frame,
# masked when a client sends it (a server receives it), unmasked otherwise.
FRAMES = [
    (TEXT, "hello", {}),
    (BINARY, b"\x00" * 40, {}),
    (TEXT, "frag-", {"fin": False}),
    (BINARY, b"frag-", {"fin": False}),
    (CONT, "more", {"fin": False}),
    (CONT, "end", {}),
    (TEXT, "é" * 60, {}),  # validated while it arrives, when cut
    (TEXT, b"\xce", {}),  # a sequence cut by the end of the message
    (TEXT, b"ok\xff", {}),  # invalid UTF-8
    (PING, b"p", {}),
    (PONG, b"q", {}),
    (CLOSE, close_payload(1000, "bye"), {}),
    (BINARY, b"x" * 200, {}),  # above some max_size below
    (TEXT, _deflated(b"compressed " * 5), {"rsv1": True}),
    (BINARY, b"", {"rsv2": True}),  # a reserved bit: the parser fails
]

received = st.tuples(
    st.lists(st.integers(0, len(FRAMES) - 1), min_size=1, max_size=4),
    st.lists(st.integers(0, 400), max_size=4),  # where the bytes are cut into reads
    st.booleans(),  # through the driver's steps, or through receive_data
)


def frames_for(p: Protocol, indexes: list) -> bytes:
    masked = p.side is Side.SERVER
    return b"".join(
        make_frame(op, payload, masked=masked, **options)
        for op, payload, options in (FRAMES[i] for i in indexes)
    )

actions = st.one_of(
    st.tuples(st.just("receive"), received),
    st.tuples(st.just("send_text"), st.booleans()),
    st.tuples(st.just("send_binary"), st.booleans()),
    st.tuples(st.just("send_continuation"), st.booleans()),
    st.tuples(st.just("send_close"), st.sampled_from([1000, 1001])),
    st.tuples(st.just("fail"), st.sampled_from([1002, 1011])),
    st.tuples(st.just("fail_pending"), st.none()),
    st.tuples(st.just("eof"), st.none()),
    st.tuples(st.just("drain"), st.none()),
    st.tuples(st.just("hold_pongs"), st.booleans()),
)


def receive_as_driver(p: Protocol, data: bytes) -> None:
    """What the fast path of fastws.asyncio does with a read: feed the parser,
    each frame that is not a plain message to receive_frame(), the end to
    receive_frames() (see Protocol.fast_parser)."""
    parser = p.gates.fast_parser
    if parser is None:
        p.receive_data(data)
        return
    error = None
    try:
        frames = parser.feed(data)
    except ProtocolError as exc:
        frames, error = exc.frames, exc
    for frame in frames:
        assert gates(p) == expected_gates(p)
        if p.gates.fast_delivery and _plain_message(frame) is not None:
            continue  # the driver delivers it itself: the protocol never sees it
        if not p.receive_frame(frame):
            return
    if error is not None:
        p.receive_frames([], error)
    elif parser.pending() is not None:
        p.receive_frames([], None)


def apply(p: Protocol, action: tuple) -> None:
    name, arg = action
    try:
        if name == "receive":
            indexes, cuts, as_driver = arg
            data = frames_for(p, indexes)
            bounds = [0, *sorted(min(cut, len(data)) for cut in cuts), len(data)]
            for start, end in zip(bounds, bounds[1:]):
                if as_driver:
                    receive_as_driver(p, data[start:end])
                else:
                    p.receive_data(data[start:end])
                assert gates(p) == expected_gates(p), action
        elif name == "send_text":
            p.send_text("t", fin=arg)
        elif name == "send_binary":
            p.send_binary(b"b", fin=arg)
        elif name == "send_continuation":
            p.send_continuation(b"c", fin=arg)
        elif name == "send_close":
            p.send_close(arg)
        elif name == "fail":
            p.fail(arg)
        elif name == "fail_pending":
            p.fail_pending()
        elif name == "eof":
            p.receive_eof()
        elif name == "drain":
            p.data_to_send()
            p.events_received()
        elif arg:
            p.hold_pongs()
        else:
            p.release_pongs()
    except InvalidState:
        pass  # not allowed in this state: nothing changed, which is checked too


CLOSED_GATES = (None, False, False)

KINDS = [
    "open",  # Protocol, OPEN from the start
    "server",  # ServerProtocol through the opening handshake
    "server_deflate",  # the same, permessage-deflate negotiated
    "server_refused",  # a bad request: 400, CLOSED
    "server_eof",  # the stream ends in the middle of the request
    "client",  # ClientProtocol through the opening handshake
    "client_refused",  # a 403 response
    "client_eof",  # the stream ends in the middle of the response
]


def new_protocol(kind: str, codec, max_size, defer_failure: bool) -> Protocol:
    """A protocol in the state ``kind`` names, its gates checked on the way."""
    options = dict(codec=codec, max_size=max_size, defer_failure=defer_failure)
    if kind == "open":
        return Protocol(Side.SERVER, **options)
    if kind.startswith("server"):
        factories = [ServerPerMessageDeflateFactory()] if kind == "server_deflate" else []
        p = ServerProtocol(extensions=factories, **options)
        request = HANDSHAKE
        if kind == "server_deflate":
            request = request.replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
        elif kind == "server_refused":
            request = request.replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8")
    else:
        p = ClientProtocol("ws://a/", **options)
        server = ServerProtocol(origins=["https://nowhere"] if kind == "client_refused" else None)
        server.receive_data(p.data_to_send())
        request = server.data_to_send()  # what the client receives: the response
    assert gates(p) == CLOSED_GATES == expected_gates(p)  # CONNECTING
    if kind.endswith("_eof"):
        p.receive_data(request[: len(request) // 2])
        assert gates(p) == CLOSED_GATES == expected_gates(p)
        p.receive_eof()
    else:
        p.receive_data(request)
    assert gates(p) == expected_gates(p)
    if kind.endswith(("_refused", "_eof")):
        assert p.state is CLOSED and gates(p) == CLOSED_GATES
    else:
        assert p.state is OPEN
        assert p.gates.fast_send is (kind != "server_deflate")
    p.data_to_send()
    return p


@settings(max_examples=300, deadline=None)
# Always tried, whatever the search finds: the inputs that change a gate in the
# middle of a read (a text frame validated while it arrives, cut at byte 30 of
# 122; a compressed message, whole in one frame, through the extension).
@example(kind="open", max_size=None, defer_failure=False, steps=[("receive", ([6], [30], True))])
@example(kind="open", max_size=None, defer_failure=False, steps=[("receive", ([6, 0], [30], False))])
@example(kind="server_deflate", max_size=None, defer_failure=False, steps=[("receive", ([13, 0], [], True))])
@example(kind="server_deflate", max_size=None, defer_failure=False, steps=[("receive", ([13, 0], [], False))])
@given(
    kind=st.sampled_from(KINDS),
    max_size=st.sampled_from([None, 1 << 20, 125, 100, 10]),
    defer_failure=st.booleans(),
    steps=st.lists(actions, max_size=12),
)
def test_gates_follow_every_change(codec, kind, max_size, defer_failure, steps):
    p = new_protocol(kind, codec, max_size, defer_failure)
    assert gates(p) == expected_gates(p)
    for action in steps:
        apply(p, action)
        assert gates(p) == expected_gates(p), action


@pytest.mark.parametrize("max_size,delivery", [(None, True), (125, True), (124, False)])
def test_gates_of_a_new_open_protocol(codec, max_size, delivery):
    p = Protocol(Side.SERVER, codec=codec, max_size=max_size)
    assert isinstance(p.gates.fast_parser, codec.FrameParser)
    assert p.gates.fast_delivery is delivery
    assert p.gates.fast_send is True


def test_gates_while_sending_fragments(codec):
    p = Protocol(Side.CLIENT, codec=codec)
    p.send_binary(b"a", fin=False)
    assert p.gates.fast_send is False
    p.send_continuation(b"b", fin=False)
    assert p.gates.fast_send is False
    p.send_continuation(b"c", fin=True)
    assert p.gates.fast_send is True
    p.send_close(1000)
    assert p.gates.fast_send is False and p.gates.fast_parser is None
    assert p.gates.fast_delivery is True  # still reading, to find the peer's close frame

"""The driver contract of the sans-I/O protocol, tested as a driver uses it.

A driver that follows the contract (:mod:`fastws.protocol`'s docstring) feeds
:attr:`Gates.fast_parser` itself, delivers the plain messages that
:attr:`Gates.fast_delivery` lets it deliver, and writes whole messages with
``build_frame`` while :attr:`Gates.fast_send` is True. Such a driver must see
exactly what a driver that only calls ``receive_data``/``send_*`` sees: the
same events in the same order, the same frames on the wire, the same state,
close codes and error. A stale gate shows as a difference (a message
delivered in the middle of a fragmented one, a frame written in the middle of
a fragmented send or ahead of queued bytes).

These tests run random sequences of what changes a protocol's state (on both
sides, through the opening handshake or refused in it, received bytes cut
anywhere) on two protocols side by side, one driven each way, and compare
them after every step. The reference protocol's own loop takes no shortcut
either (:class:`NoShortcut`), so a stale gate cannot fool both. Other tests check that the gates open where the
contract says the fast path is taken.
"""

from __future__ import annotations

import zlib
from typing import Any, List

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fastws.deflate import ServerPerMessageDeflateFactory
from fastws.exceptions import InvalidState, ProtocolError
from fastws.protocol import CLOSED, OPEN, ClientProtocol, Gates, Protocol, ServerProtocol, Side

from asyncio_helpers import HANDSHAKE
from protocol_helpers import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    close_payload,
    make_frame,
    sent_frames,
)


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
)

actions = st.one_of(
    st.tuples(st.just("receive"), received),
    st.tuples(st.just("send_text"), st.booleans()),
    st.tuples(st.just("send_binary"), st.booleans()),
    st.tuples(st.just("send_continuation"), st.booleans()),
    st.tuples(st.just("send_ping"), st.none()),
    st.tuples(st.just("send_close"), st.sampled_from([1000, 1001])),
    st.tuples(st.just("fail"), st.sampled_from([1002, 1011])),
    st.tuples(st.just("fail_pending"), st.none()),
    st.tuples(st.just("eof"), st.none()),
    st.tuples(st.just("flush"), st.booleans()),
    st.tuples(st.just("hold_pongs"), st.booleans()),
)


class NoShortcut(Gates):
    """Gates whose ``fast_delivery`` is always False, whatever the assembler
    says: the protocol's own loop then takes every frame the long way
    (:class:`~fastws.protocol.assembler.MessageAssembler.assemble`), which
    makes the reference driver independent of the gate under test."""

    __slots__ = ()

    @property  # type: ignore[override]
    def fast_delivery(self) -> bool:
        return False

    @fast_delivery.setter
    def fast_delivery(self, value: bool) -> None:
        pass


class Driver:
    """Drives one protocol and records what an application and the network
    would see: ``seen`` (messages and events, in order) and ``wire`` (bytes
    written). ``fast``: through the gates, as the contract allows; otherwise
    through ``receive_data`` and the ``send_*`` methods only."""

    def __init__(self, protocol: Protocol, fast: bool) -> None:
        self.p = protocol
        self.fast = fast
        if not fast:
            protocol.gates.__class__ = NoShortcut
        self.gates = protocol.gates
        self.seen: List[Any] = []
        self.wire = bytearray()
        self.direct_reads = 0  # reads the fast path took
        self.direct_messages = 0  # messages it delivered itself
        self.direct_sends = 0  # messages it wrote itself

    def receive(self, data: bytes) -> None:
        p, gates = self.p, self.gates
        parser = gates.fast_parser
        if not self.fast or parser is None:
            p.receive_data(data)
            self.seen += p.events_received()
            return
        self.direct_reads += 1
        error = None
        try:
            frames = parser.feed(data)
        except ProtocolError as exc:
            frames, error = exc.frames, exc
        plain = p.codec.plain_message
        for frame in frames:
            message = plain(frame) if gates.fast_delivery else None
            if message is not None:
                self.seen.append(message)
                self.direct_messages += 1
                continue
            reading = p.receive_frame(frame)
            self.seen += p.events_received()
            if not reading:
                return
        if error is not None or parser.pending() is not None:
            p.receive_frames([], error)
            self.seen += p.events_received()

    def send(self, kind: str, data: Any, fin: bool) -> None:
        p = self.p
        if self.fast and fin and kind != "send_continuation" and self.gates.fast_send:
            opcode = TEXT if kind == "send_text" else BINARY
            self.wire += p.codec.build_frame(opcode, data, mask=p.mask_frames)
            self.direct_sends += 1
            return
        getattr(p, kind)(data, fin=fin)

    def flush(self, chunks: bool = False) -> None:
        has_data = self.gates.has_data_to_send
        if chunks:
            data = b"".join(self.p.chunks_to_send())
        else:
            data = self.p.data_to_send()
        assert has_data is bool(data)
        assert self.gates.has_data_to_send is False
        self.wire += data

    def apply(self, action: tuple) -> None:
        name, arg = action
        p = self.p
        try:
            if name == "receive":
                indexes, cuts = arg
                masked = p.side is Side.SERVER
                data = b"".join(
                    make_frame(op, payload, masked=masked, **options)
                    for op, payload, options in (FRAMES[i] for i in indexes)
                )
                bounds = [0, *sorted(min(cut, len(data)) for cut in cuts), len(data)]
                for start, end in zip(bounds, bounds[1:]):
                    self.receive(data[start:end])
            elif name in ("send_text", "send_binary", "send_continuation"):
                self.send(name, {"send_text": "t"}.get(name, b"b"), arg)
            elif name == "send_ping":
                p.send_ping(b"x")
            elif name == "send_close":
                p.send_close(arg)
            elif name == "fail":
                p.fail(arg)
            elif name == "fail_pending":
                p.fail_pending()
            elif name == "eof":
                p.receive_eof()
                self.seen += p.events_received()
            elif name == "flush":
                self.flush(arg)
            elif arg:
                p.hold_pongs()
            else:
                p.release_pongs()
        except InvalidState as exc:
            self.seen.append(("refused", str(exc)))
        gates = self.gates
        if p.state is not OPEN:  # the fast path is for OPEN connections only
            assert gates.fast_parser is None and gates.fast_send is False

    def frames_sent(self) -> list:
        """The frames on the wire, unmasked (a client's keys are random)."""
        return sent_frames(bytes(self.wire), by_client=self.p.mask_frames, allow_rsv1=True)

    def observed(self) -> tuple:
        """What the application has seen so far, and the protocol's state.
        (What is queued is not on the wire yet: the frames sent are compared
        once both are flushed.)"""
        p = self.p
        error = None if p.error is None else (type(p.error), str(p.error))
        return (
            self.seen,
            p.state,
            p.close_code,
            p.close_reason,
            p.close_sent,
            error,
            p.pending_failure is not None,
            p.should_close_transport(),
        )


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

def new_protocol(kind: str, codec: Any, max_size: Any, defer_failure: bool) -> Protocol:
    """A protocol in the state ``kind`` names, its handshake bytes drained."""
    options = dict(codec=codec, max_size=max_size, defer_failure=defer_failure)
    if kind == "open":
        return Protocol(Side.SERVER, **options)
    if kind.startswith("server"):
        factories = [ServerPerMessageDeflateFactory()] if kind == "server_deflate" else []
        p: Protocol = ServerProtocol(extensions=factories, **options)
        data = HANDSHAKE
        if kind == "server_deflate":
            data = data.replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
        elif kind == "server_refused":
            data = data.replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8")
    else:
        p = ClientProtocol("ws://a/", **options)
        server = ServerProtocol(origins=["https://nowhere"] if kind == "client_refused" else None)
        server.receive_data(p.data_to_send())
        data = server.data_to_send()
    if kind.endswith("_eof"):
        p.receive_data(data[: len(data) // 2])
        p.receive_eof()
    else:
        p.receive_data(data)
    p.data_to_send()
    p.events_received()
    return p


@settings(max_examples=300, deadline=None)
# Always tried, whatever the search finds: the inputs that change a gate in the
# middle of a read (a text frame validated while it arrives, cut at byte 30 of
# 122; a compressed message, whole in one frame, through the extension), and a
# message sent while a pong or a ping waits to go out, a whole message in the
# middle of a fragmented one, fragments sent between whole messages, and the
# gates once the peer's close frame is answered and flushed.
@example(kind="open", max_size=None, defer_failure=False, steps=[("receive", ([6, 0], [30]))])
@example(kind="server_deflate", max_size=None, defer_failure=False, steps=[("receive", ([13, 0], []))])
@example(kind="open", max_size=None, defer_failure=False, steps=[("receive", ([9], [])), ("send_text", True)])
@example(kind="open", max_size=None, defer_failure=False, steps=[("receive", ([2, 0], []))])
@example(kind="open", max_size=None, defer_failure=False, steps=[("send_ping", None), ("send_text", True)])
@example(kind="client", max_size=None, defer_failure=False, steps=[("receive", ([11], [])), ("flush", False)])
@example(
    kind="client",
    max_size=None,
    defer_failure=False,
    steps=[("send_text", False), ("send_text", True), ("send_continuation", True), ("send_binary", True)],
)
@given(
    kind=st.sampled_from(KINDS),
    max_size=st.sampled_from([None, 1 << 20, 125, 100, 10]),
    defer_failure=st.booleans(),
    steps=st.lists(actions, max_size=12),
)
def test_a_driver_through_the_gates_sees_what_the_general_loop_sees(
    codec, kind, max_size, defer_failure, steps
):
    fast = Driver(new_protocol(kind, codec, max_size, defer_failure), fast=True)
    general = Driver(new_protocol(kind, codec, max_size, defer_failure), fast=False)
    for action in steps:
        fast.apply(action)
        general.apply(action)
        assert fast.observed() == general.observed(), action
    fast.flush()
    general.flush()
    assert fast.observed() == general.observed()
    assert fast.frames_sent() == general.frames_sent()


def test_the_fast_path_is_taken_in_the_common_case(codec):
    """An open connection with nothing in progress: the driver reads, delivers
    and sends every plain message itself, and the result is the same."""
    fast = Driver(new_protocol("server", codec, 1 << 20, False), fast=True)
    general = Driver(new_protocol("server", codec, 1 << 20, False), fast=False)
    steps = [("receive", ([0, 1, 6], [3, 87])), ("send_text", True), ("send_binary", True)]
    for action in steps:
        fast.apply(action)
        general.apply(action)
    fast.flush()
    general.flush()
    assert fast.observed() == general.observed()
    assert fast.frames_sent() == general.frames_sent() == [(1, b"t", True, False), (2, b"b", True, False)]
    assert fast.seen == ["hello", b"\x00" * 40, "é" * 60]
    assert fast.direct_reads == 3 and fast.direct_sends == 2
    # "é" * 60 was cut at byte 30 of its 126: validated as it arrived, then
    # handed over to the protocol.
    assert fast.direct_messages == 2


def test_the_fast_path_resumes_after_a_compressed_message(codec):
    """With permessage-deflate, a compressed message goes through the protocol
    and the uncompressed one after it is delivered by the driver again."""
    fast = Driver(new_protocol("server_deflate", codec, 1 << 20, False), fast=True)
    general = Driver(new_protocol("server_deflate", codec, 1 << 20, False), fast=False)
    for driver in (fast, general):
        driver.apply(("receive", ([13, 0], [])))
    assert fast.observed() == general.observed()
    assert fast.seen == ["compressed " * 5, "hello"] and fast.direct_messages == 1


@pytest.mark.parametrize("max_size,delivery", [(None, True), (125, True), (124, False)])
def test_gates_of_a_new_open_protocol(codec, max_size, delivery):
    p = Protocol(Side.SERVER, codec=codec, max_size=max_size)
    assert isinstance(p.gates.fast_parser, codec.FrameParser)
    assert p.gates.fast_delivery is delivery
    assert p.gates.fast_send is True and p.gates.has_data_to_send is False


@pytest.mark.parametrize("kind", ["server", "client"])
def test_gates_are_closed_until_the_handshake_is_over(codec, kind):
    p = ServerProtocol(codec=codec) if kind == "server" else ClientProtocol("ws://a/", codec=codec)
    gates = p.gates
    assert (gates.fast_parser, gates.fast_delivery, gates.fast_send) == (None, False, False)
    assert gates.has_data_to_send is (kind == "client")  # the request waits


def test_gates_while_sending_fragments_and_closing(codec):
    p = Protocol(Side.CLIENT, codec=codec)
    parser = p.gates.fast_parser
    p.send_binary(b"a", fin=False)
    p.data_to_send()
    assert p.gates.fast_send is False
    p.send_continuation(b"b", fin=True)
    assert p.gates.fast_send is False and p.gates.has_data_to_send is True
    p.data_to_send()
    assert p.gates.fast_send is True
    p.send_close(1000)
    # Still reading, to find the peer's close frame, but through receive_data.
    assert p.gates.fast_send is False and p.gates.fast_parser is None
    assert p.state is not OPEN and parser is not None
    p.receive_data(make_frame(CLOSE, close_payload(1000), masked=False))
    assert p.close_code == 1000 and p.gates.fast_delivery is False


def test_state_is_read_only(codec):
    p = Protocol(Side.SERVER, codec=codec)
    with pytest.raises(AttributeError):
        p.state = CLOSED  # type: ignore[misc]
    assert p.state is OPEN

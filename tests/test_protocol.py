"""The connection rules of the sans-I/O protocol (RFC 6455 sections 5 to 7), table
driven, run against both codec implementations (the ``codec`` fixture of
conftest.py) and from both sides, with the input fed whole and byte by byte."""

from __future__ import annotations

import types

import pytest

from fastws import _codec_py
from fastws.events import Close, Ping, Pong
from fastws.exceptions import InvalidState, InvalidUTF8, PayloadTooBig, ProtocolError
from fastws.frames import CloseCode
from fastws.protocol import (
    CLOSED,
    CLOSING,
    OPEN,
    ClientProtocol,
    Protocol,
    ServerProtocol,
    Side,
    State,
)

from protocol_helpers import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    byte_by_byte,
    close_payload,
    make_frame,
    sent_close,
    sent_frames,
)

SIDES = [Side.SERVER, Side.CLIENT]


def F(opcode, payload=b"", **kwargs):
    """A frame spec; built for a side by :func:`build` (masked toward a server)."""
    return (opcode, payload, kwargs)


def build(specs, side: Side) -> bytes:
    masked = side is Side.SERVER  # frames a server receives come from a client
    out = b""
    for opcode, payload, kwargs in specs:
        kwargs = dict(kwargs)
        kwargs.setdefault("masked", masked)
        out += make_frame(opcode, payload, **kwargs)
    return out


def feed(proto, data: bytes, how: str) -> None:
    if how == "whole":
        proto.receive_data(data)
    else:
        for chunk in byte_by_byte(data):
            proto.receive_data(chunk)


def closing_state(side: Side) -> State:
    """State after the closing handshake completed or failed: the server closes
    TCP (CLOSED), the client waits for it (CLOSING)."""
    return CLOSED if side is Side.SERVER else CLOSING


UTF8_EMOJI = "😀".encode()  # f0 9f 98 80

# (id, frames, events, frames sent back [(opcode, payload)], error: (type, code) or None)
VALID = [
    ("text", [F(TEXT, "héllo")], ["héllo"], []),
    ("empty-text", [F(TEXT, b"")], [""], []),
    ("binary", [F(BINARY, b"\x00\xff")], [b"\x00\xff"], []),
    ("empty-binary", [F(BINARY, b"")], [b""], []),
    ("three-messages", [F(TEXT, "a"), F(BINARY, b"b"), F(TEXT, "c")], ["a", b"b", "c"], []),
    (
        "text-fragments-split-inside-a-character",
        [F(TEXT, b"h\xc3", fin=False), F(CONT, b"\xa9l", fin=False), F(CONT, b"lo")],
        ["héllo"],
        [],
    ),
    (
        "four-byte-character-one-byte-per-fragment",
        [F(TEXT, UTF8_EMOJI[:1], fin=False)]
        + [F(CONT, UTF8_EMOJI[i : i + 1], fin=False) for i in (1, 2)]
        + [F(CONT, UTF8_EMOJI[3:])],
        ["😀"],
        [],
    ),
    (
        "binary-fragments-with-an-empty-one",
        [F(BINARY, b"ab", fin=False), F(CONT, b"", fin=False), F(CONT, b"cd")],
        [b"abcd"],
        [],
    ),
    ("empty-fragmented-text", [F(TEXT, b"", fin=False), F(CONT, b"")], [""], []),
    ("ping", [F(PING, b"hi")], [Ping(b"hi")], [(PONG, b"hi")]),
    ("empty-ping", [F(PING)], [Ping(b"")], [(PONG, b"")]),
    ("ping-125-bytes", [F(PING, b"x" * 125)], [Ping(b"x" * 125)], [(PONG, b"x" * 125)]),
    ("unsolicited-pong", [F(PONG, b"p")], [Pong(b"p")], []),
    (
        "control-frames-between-fragments",
        [F(TEXT, "a", fin=False), F(PING, b"1"), F(CONT, "b", fin=False), F(PONG, b"2"), F(CONT, "c")],
        [Ping(b"1"), Pong(b"2"), "abc"],
        [(PONG, b"1")],
    ),
    (
        "ping-between-binary-fragments-then-text",
        [F(BINARY, b"x", fin=False), F(PING, b"p"), F(CONT, b"y"), F(TEXT, "z")],
        [Ping(b"p"), b"xy", "z"],
        [(PONG, b"p")],
    ),
]

# (id, frames, events, close frames echoed, close event)
CLOSES = [
    # The reason is echoed with the code, as the websockets library does.
    ("close-with-code-and-reason", [F(CLOSE, close_payload(1000, "bye"))], Close(1000, "bye"), b"\x03\xe8bye"),
    ("close-without-payload", [F(CLOSE)], Close(1005, ""), b""),
    ("close-going-away", [F(CLOSE, close_payload(1001))], Close(1001, ""), b"\x03\xe9"),
    ("close-private-code", [F(CLOSE, close_payload(4321, "x"))], Close(4321, "x"), close_payload(4321, "x")),
    (
        "close-utf8-reason",
        [F(CLOSE, close_payload(1000, "é" * 61))],
        Close(1000, "é" * 61),
        close_payload(1000, "é" * 61),
    ),
]

# (id, frames, events before the error, frames sent before the close, exception type, close code)
ERRORS = [
    ("continuation-without-message", [F(CONT, b"x")], [], [], ProtocolError, 1002),
    (
        "continuation-after-complete-message",
        [F(TEXT, "a", fin=False), F(CONT, "b"), F(CONT, "c")],
        ["ab"],
        [],
        ProtocolError,
        1002,
    ),
    ("text-inside-fragmented-text", [F(TEXT, "a", fin=False), F(TEXT, "b")], [], [], ProtocolError, 1002),
    (
        "binary-inside-fragmented-text",
        [F(TEXT, "a", fin=False), F(BINARY, b"b")],
        [],
        [],
        ProtocolError,
        1002,
    ),
    (
        "binary-inside-fragmented-binary-after-a-ping",
        [F(BINARY, b"a", fin=False), F(PING, b"p"), F(BINARY, b"b", fin=False)],
        [Ping(b"p")],
        [(PONG, b"p")],
        ProtocolError,
        1002,
    ),
    ("invalid-utf8", [F(TEXT, b"ab\xff")], [], [], InvalidUTF8, 1007),
    ("overlong-utf8", [F(TEXT, b"\xc0\xaf")], [], [], InvalidUTF8, 1007),
    ("surrogate", [F(TEXT, b"\xed\xa0\x80")], [], [], InvalidUTF8, 1007),
    ("truncated-utf8", [F(TEXT, b"a\xc3")], [], [], InvalidUTF8, 1007),
    # Fails at the first bad fragment: the message never ends in this input.
    ("invalid-utf8-first-fragment", [F(TEXT, b"a\xff", fin=False)], [], [], InvalidUTF8, 1007),
    (
        "invalid-utf8-middle-fragment",
        [F(TEXT, "ok", fin=False), F(CONT, b"\xfe", fin=False)],
        [],
        [],
        InvalidUTF8,
        1007,
    ),
    (
        "surrogate-split-across-fragments",
        [F(TEXT, b"\xed", fin=False), F(CONT, b"\xa0", fin=False)],
        [],
        [],
        InvalidUTF8,
        1007,
    ),
    (
        "fragmented-text-ends-inside-a-character",
        [F(TEXT, b"a\xc3", fin=False), F(CONT, b"")],
        [],
        [],
        InvalidUTF8,
        1007,
    ),
    ("close-one-byte", [F(CLOSE, b"\x03")], [], [], ProtocolError, 1002),
    ("close-code-1005", [F(CLOSE, close_payload(1005))], [], [], ProtocolError, 1002),
    ("close-code-1006", [F(CLOSE, close_payload(1006))], [], [], ProtocolError, 1002),
    ("close-code-999", [F(CLOSE, close_payload(999))], [], [], ProtocolError, 1002),
    ("close-code-1004", [F(CLOSE, close_payload(1004))], [], [], ProtocolError, 1002),
    ("close-code-5000", [F(CLOSE, close_payload(5000))], [], [], ProtocolError, 1002),
    ("close-reason-invalid-utf8", [F(CLOSE, close_payload(1000, b"\xff"))], [], [], InvalidUTF8, 1007),
    ("rsv1-without-extension", [F(TEXT, "a", rsv1=True)], [], [], ProtocolError, 1002),
    ("rsv2", [F(BINARY, b"a", rsv2=True)], [], [], ProtocolError, 1002),
    ("rsv3", [F(BINARY, b"a", rsv3=True)], [], [], ProtocolError, 1002),
    ("reserved-data-opcode", [F(3, b"a")], [], [], ProtocolError, 1002),
    ("reserved-control-opcode", [F(11, b"a")], [], [], ProtocolError, 1002),
    ("fragmented-ping", [F(PING, b"a", fin=False)], [], [], ProtocolError, 1002),
    ("ping-126-bytes", [F(PING, b"a" * 126)], [], [], ProtocolError, 1002),
    (
        "good-frames-before-the-error-are-delivered",
        [F(TEXT, "one"), F(PING, b"p"), F(BINARY, b"two"), F(3, b"bad"), F(TEXT, "never")],
        ["one", Ping(b"p"), b"two"],
        [(PONG, b"p")],
        ProtocolError,
        1002,
    ),
    (
        "frames-after-our-own-check-fails-are-dropped",
        [F(TEXT, "one"), F(CONT, b"x"), F(TEXT, "never"), F(PING, b"never")],
        ["one"],
        [],
        ProtocolError,
        1002,
    ),
]


@pytest.fixture(params=["whole", "bytewise"])
def how(request):
    return request.param


@pytest.fixture(params=SIDES, ids=["server", "client"])
def side(request):
    return request.param


def proto_for(side, codec, **kwargs) -> Protocol:
    return Protocol(side, codec=codec, **kwargs)


def frames_out(proto) -> list:
    frames = sent_frames(proto.data_to_send(), by_client=proto.side is Side.CLIENT)
    return [(op, payload) for op, payload, _, _ in frames]


@pytest.mark.parametrize("frames, events, sent", [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_receive_valid(codec, side, how, frames, events, sent):
    proto = proto_for(side, codec)
    feed(proto, build(frames, side), how)
    assert proto.events_received() == events
    assert frames_out(proto) == sent
    assert proto.state is OPEN
    assert proto.error is None
    assert not proto.should_close_transport()


@pytest.mark.parametrize("frames, event, echo", [c[1:] for c in CLOSES], ids=[c[0] for c in CLOSES])
def test_receive_close_is_echoed(codec, side, how, frames, event, echo):
    proto = proto_for(side, codec)
    # Anything after the close frame is discarded (RFC 6455 section 1.4).
    after = build([F(TEXT, "ignored"), F(PING, b"ignored"), F(3)], side)
    feed(proto, build(frames, side) + after, how)
    assert proto.events_received() == [event]
    assert frames_out(proto) == [(CLOSE, echo)]
    assert proto.close_rcvd == event
    assert proto.close_sent == event
    assert proto.close_code == event.code and proto.close_reason == event.reason
    assert proto.state is closing_state(side)
    assert proto.should_close_transport() is (side is Side.SERVER)
    assert proto.close_expected() is (side is Side.CLIENT)
    assert proto.error is None
    # The end of the stream completes it without another event.
    proto.receive_eof()
    assert proto.events_received() == []
    assert proto.state is CLOSED and proto.should_close_transport()
    assert proto.close_code == event.code


@pytest.mark.parametrize(
    "frames, events, sent, exc_type, code", [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS]
)
def test_receive_error_fails_the_connection(codec, side, how, frames, events, sent, exc_type, code):
    proto = proto_for(side, codec)
    feed(proto, build(frames, side), how)  # never raises
    assert proto.events_received() == events
    out = sent_frames(proto.data_to_send(), by_client=side is Side.CLIENT)
    assert [(op, p) for op, p, _, _ in out[:-1]] == sent
    close_op, close_data, _, _ = out[-1]
    assert close_op == CLOSE
    sent_code, reason = _codec_py.parse_close(close_data)
    assert sent_code == code
    assert reason == str(proto.error)[:123]
    assert type(proto.error) is exc_type
    assert proto.error.close_code == code
    assert proto.close_sent == Close(code, reason)
    assert proto.close_rcvd is None
    assert proto.state is closing_state(side)
    assert proto.should_close_transport() is (side is Side.SERVER)
    # Nothing more is processed, not even a proper close from the peer.
    proto.receive_data(build([F(TEXT, "late"), F(CLOSE, close_payload(1000))], side))
    assert proto.events_received() == []
    assert proto.data_to_send() == b""
    # The peer closes TCP: reported as 1006, since no close frame was received.
    proto.receive_eof()
    assert proto.events_received() == [Close(1006, "")]
    assert proto.state is CLOSED and proto.close_code == 1006


def test_close_in_the_middle_of_a_fragmented_message(codec, side, how):
    """A close frame may arrive between fragments (it is a control frame): the
    partial message is dropped and the close is echoed."""
    proto = proto_for(side, codec)
    feed(proto, build([F(TEXT, "part", fin=False), F(CLOSE, close_payload(1001, "away"))], side), how)
    assert proto.events_received() == [Close(1001, "away")]
    assert frames_out(proto) == [(CLOSE, close_payload(1001, "away"))]


@pytest.mark.parametrize(
    "side, masked, message",
    [
        (Side.SERVER, False, "unmasked frame from the client"),
        (Side.CLIENT, True, "masked frame from the server"),
    ],
    ids=["server-gets-unmasked", "client-gets-masked"],
)
def test_mask_direction(codec, side, masked, message):
    proto = proto_for(side, codec)
    proto.receive_data(make_frame(TEXT, "x", masked=masked))
    assert proto.events_received() == []
    assert type(proto.error) is ProtocolError and message in str(proto.error)
    assert sent_close(proto.data_to_send(), by_client=side is Side.CLIENT)[0] == 1002


# --- max_size ------------------------------------------------------------------------

# (id, max_size, frames, events, error code or None)
SIZES = [
    ("frame-at-the-limit", 10, [F(BINARY, b"x" * 10)], [b"x" * 10], None),
    ("text-frame-at-the-limit", 10, [F(TEXT, "é" * 5)], ["é" * 5], None),
    ("frame-over-the-limit", 10, [F(BINARY, b"x" * 11)], [], 1009),
    ("fragments-at-the-limit", 10, [F(TEXT, "x" * 4, fin=False), F(CONT, "y" * 6)], ["xxxxyyyyyy"], None),
    (
        "fragments-over-the-limit",
        10,
        [F(BINARY, b"x" * 6, fin=False), F(CONT, b"y" * 5)],
        [],
        1009,
    ),
    (
        "fragments-over-the-limit-before-the-end",
        10,
        [F(TEXT, "x" * 6, fin=False), F(CONT, "y" * 5, fin=False)],
        [],
        1009,
    ),
    (
        "control-frames-do-not-count",
        4,
        [F(TEXT, "ab", fin=False), F(PING, b"123456"), F(CONT, "cd")],
        [Ping(b"123456"), "abcd"],
        None,
    ),
    ("limit-per-message-not-per-connection", 4, [F(TEXT, "abcd")] * 5, ["abcd"] * 5, None),
    ("zero-allows-empty-messages", 0, [F(TEXT, b""), F(BINARY, b"")], ["", b""], None),
    ("zero-refuses-one-byte", 0, [F(TEXT, b"a")], [], 1009),
    ("no-limit", None, [F(BINARY, b"z" * 200_000)], [b"z" * 200_000], None),
]


@pytest.mark.parametrize(
    "max_size, frames, events, code", [c[1:] for c in SIZES], ids=[c[0] for c in SIZES]
)
def test_max_size(codec, side, max_size, frames, events, code):
    proto = proto_for(side, codec, max_size=max_size)
    proto.receive_data(build(frames, side))
    assert proto.events_received() == events
    if code is None:
        assert proto.error is None and proto.state is OPEN
    else:
        assert type(proto.error) is PayloadTooBig
        assert sent_close(proto.data_to_send(), by_client=side is Side.CLIENT)[0] == code


def test_oversize_frame_fails_from_its_header(codec, side):
    """A frame longer than max_size is refused before any payload arrives."""
    proto = proto_for(side, codec, max_size=1000)
    header = build([F(BINARY, b"x" * 1001)], side)[:8]  # 2 + 2 length + 4 mask
    proto.receive_data(header)
    assert type(proto.error) is PayloadTooBig
    assert sent_close(proto.data_to_send(), by_client=side is Side.CLIENT)[0] == 1009


# --- end of stream ---------------------------------------------------------------


@pytest.mark.parametrize(
    "frames, before",
    [([], []), ([F(TEXT, "partial", fin=False)], []), ([F(TEXT, "whole")], ["whole"])],
    ids=["idle", "inside-a-fragmented-message", "after-a-message"],
)
def test_eof_without_close_is_1006(codec, side, frames, before):
    proto = proto_for(side, codec)
    # ... and with half a frame buffered (a ping: a data frame inside a fragmented
    # message would fail the connection from its header).
    proto.receive_data(build(frames, side) + build([F(PING, b"half")], side)[:3])
    assert proto.events_received() == before
    proto.receive_eof()
    assert proto.events_received() == [Close(CloseCode.ABNORMAL_CLOSURE, "")]
    assert proto.state is CLOSED
    assert proto.close_code == 1006 and proto.close_reason == ""
    assert proto.should_close_transport()
    proto.receive_eof()  # idempotent
    proto.receive_data(build([F(TEXT, "after eof")], side))  # ignored
    assert proto.events_received() == []
    assert proto.data_to_send() == b""


def test_close_code_is_none_while_open(codec, side):
    proto = proto_for(side, codec)
    assert proto.close_code is None and proto.close_reason is None


# --- closing from this side ----------------------------------------------------------


def test_close_initiated_here(codec, side):
    proto = proto_for(side, codec)
    proto.send_close(1001, "going")
    assert frames_out(proto) == [(CLOSE, close_payload(1001, "going"))]
    assert proto.state is CLOSING and proto.close_expected()
    assert not proto.should_close_transport()
    # Messages still arrive until the peer's close (it may not have seen ours).
    # Pings are still answered.
    proto.receive_data(build([F(TEXT, "late"), F(PING, b"p")], side))
    assert proto.events_received() == ["late", Ping(b"p")]
    assert frames_out(proto) == [(PONG, b"p")]
    proto.receive_data(build([F(CLOSE, close_payload(1001))], side))
    assert proto.events_received() == [Close(1001, "")]
    assert proto.data_to_send() == b""  # no second close
    assert proto.state is closing_state(side)
    assert proto.should_close_transport() is (side is Side.SERVER)
    proto.receive_eof()
    assert proto.state is CLOSED and proto.events_received() == []


def test_send_close_without_code(codec, side):
    proto = proto_for(side, codec)
    proto.send_close(1005)
    assert frames_out(proto) == [(CLOSE, b"")]
    assert proto.close_sent == Close(1005, "")


def test_protocol_error_while_closing(codec, side):
    """After our close, a broken frame fails the connection without a second close."""
    proto = proto_for(side, codec)
    proto.send_close()
    proto.data_to_send()
    proto.receive_data(build([F(CONT, b"x")], side))
    assert type(proto.error) is ProtocolError
    assert proto.data_to_send() == b""
    assert proto.state is closing_state(side)
    assert proto.should_close_transport() is (side is Side.SERVER)


@pytest.mark.parametrize("reason", ["", "short", "é" * 200], ids=["no-reason", "short", "too-long"])
def test_fail(codec, side, reason):
    proto = proto_for(side, codec)
    proto.fail(1011, reason)
    code, sent_reason = sent_close(proto.data_to_send(), by_client=side is Side.CLIENT)
    assert code == 1011
    assert len(sent_reason.encode()) <= 123 and reason.startswith(sent_reason.rstrip("."))
    assert proto.state is closing_state(side)
    assert proto.error is None
    proto.receive_data(build([F(TEXT, "ignored")], side))
    assert proto.events_received() == []
    proto.fail(1011)  # already failed: nothing more is sent
    assert proto.data_to_send() == b""


# --- sending ---------------------------------------------------------------------

# (id, calls, frames on the wire (opcode, payload, fin))
SENDS = [
    ("text", [("send_text", "héllo")], [(TEXT, "héllo".encode(), True)]),
    ("text-as-bytes", [("send_text", b"abc")], [(TEXT, b"abc", True)]),
    ("binary", [("send_binary", b"\x00\x01")], [(BINARY, b"\x00\x01", True)]),
    ("binary-bytearray", [("send_binary", bytearray(b"ba"))], [(BINARY, b"ba", True)]),
    ("binary-memoryview", [("send_binary", memoryview(b"mv"))], [(BINARY, b"mv", True)]),
    ("empty-text", [("send_text", "")], [(TEXT, b"", True)]),
    ("large-binary", [("send_binary", b"L" * 70000)], [(BINARY, b"L" * 70000, True)]),
    (
        "text-fragments",
        [("send_text", "a", False), ("send_continuation", "b", False), ("send_continuation", b"c", True)],
        [(TEXT, b"a", False), (CONT, b"b", False), (CONT, b"c", True)],
    ),
    (
        "binary-fragments-with-ping-between",
        [("send_binary", b"a", False), ("send_ping", b"p"), ("send_continuation", b"b", True)],
        [(BINARY, b"a", False), (PING, b"p", True), (CONT, b"b", True)],
    ),
    ("ping", [("send_ping", b"x")], [(PING, b"x", True)]),
    ("ping-empty", [("send_ping",)], [(PING, b"", True)]),
    ("ping-text", [("send_ping", "é")], [(PING, "é".encode(), True)]),
    ("pong", [("send_pong", b"y")], [(PONG, b"y", True)]),
    ("close", [("send_close",)], [(CLOSE, b"\x03\xe8", True)]),
    ("close-with-reason", [("send_close", 4000, "r")], [(CLOSE, b"\x0f\xa0r", True)]),
    (
        "close-interrupts-a-fragmented-message",
        [("send_text", "a", False), ("send_close", 1001)],
        [(TEXT, b"a", False), (CLOSE, b"\x03\xe9", True)],
    ),
    (
        "ping-and-pong-after-close",
        [("send_close",), ("send_ping", b"1"), ("send_pong", b"2")],
        [(CLOSE, b"\x03\xe8", True), (PING, b"1", True), (PONG, b"2", True)],
    ),
]


@pytest.mark.parametrize("calls, wire", [c[1:] for c in SENDS], ids=[c[0] for c in SENDS])
def test_send(codec, side, calls, wire):
    proto = proto_for(side, codec)
    for name, *args in calls:
        getattr(proto, name)(*args)
    data = proto.data_to_send()
    # sent_frames parses with mask_required=True for a client: every client
    # frame must be masked, and no server frame may be.
    frames = sent_frames(data, by_client=side is Side.CLIENT)
    assert [(op, payload, fin) for op, payload, fin, _ in frames] == wire
    assert proto.data_to_send() == b""


def test_client_masks_with_fresh_keys(codec):
    proto = proto_for(Side.CLIENT, codec)
    proto.send_binary(b"\x00" * 8)
    proto.send_binary(b"\x00" * 8)
    data = proto.data_to_send()
    first, second = data[:14], data[14:]
    assert first[1] & 0x80 and second[1] & 0x80
    assert first[2:6] != second[2:6]  # the keys (the payload is zeros: masked = key)
    assert first[6:] == first[2:6] * 2


def test_server_does_not_mask(codec):
    proto = proto_for(Side.SERVER, codec)
    proto.send_text("Hello")
    assert proto.data_to_send() == b"\x81\x05Hello"  # RFC 6455 section 5.7


# (id, calls before, call with a payload that cannot be sent, then what may follow)
REFUSED_PAYLOADS = [
    # a refused first frame starts no fragmented message: a new message may follow
    ("first-text-fragment", [], ("send_text", 12, False), ("send_binary", b"new"), [(BINARY, b"new", True)]),
    ("first-binary-fragment", [], ("send_binary", None, False), ("send_text", "new"), [(TEXT, b"new", True)]),
    # a refused last frame ends nothing: the message goes on
    (
        "last-continuation",
        [("send_binary", b"a", False)],
        ("send_continuation", object(), True),
        ("send_continuation", b"b", True),
        [(BINARY, b"a", False), (CONT, b"b", True)],
    ),
]


@pytest.mark.parametrize(
    "before, refused, after, wire", [c[1:] for c in REFUSED_PAYLOADS], ids=[c[0] for c in REFUSED_PAYLOADS]
)
def test_refused_payload_changes_nothing(codec, side, before, refused, after, wire):
    proto = proto_for(side, codec)
    for name, *args in before:
        getattr(proto, name)(*args)
    name, *args = refused
    with pytest.raises(TypeError):
        getattr(proto, name)(*args)
    name, *args = after
    getattr(proto, name)(*args)
    frames = sent_frames(proto.data_to_send(), by_client=side is Side.CLIENT)
    assert [(op, payload, fin) for op, payload, fin, _ in frames] == wire
    assert proto.gates.fast_send is True


# (id, calls before, call that must raise)
INVALID_STATE = [
    ("text-after-close", [("send_close",)], ("send_text", "x")),
    ("binary-after-close", [("send_close",)], ("send_binary", b"x")),
    ("close-twice", [("send_close",)], ("send_close",)),
    ("continuation-without-message", [], ("send_continuation", b"x", True)),
    (
        "continuation-after-last-fragment",
        [("send_text", "a", False), ("send_continuation", "b", True)],
        ("send_continuation", "c", True),
    ),
    ("text-during-fragmented-message", [("send_text", "a", False)], ("send_text", "b")),
    ("binary-during-fragmented-message", [("send_binary", b"a", False)], ("send_binary", b"b")),
    ("continuation-after-close", [("send_text", "a", False), ("send_close",)], ("send_continuation", "b", True)),
    ("ping-after-eof", [("receive_eof",)], ("send_ping", b"")),
    ("pong-after-eof", [("receive_eof",)], ("send_pong", b"")),
    ("text-after-eof", [("receive_eof",)], ("send_text", "x")),
]


@pytest.mark.parametrize("before, call", [c[1:] for c in INVALID_STATE], ids=[c[0] for c in INVALID_STATE])
def test_invalid_state(codec, side, before, call):
    proto = proto_for(side, codec)
    for name, *args in before:
        getattr(proto, name)(*args)
    proto.data_to_send()
    name, *args = call
    with pytest.raises(InvalidState):
        getattr(proto, name)(*args)
    assert proto.data_to_send() == b""


def test_send_after_receiving_close(codec, side):
    proto = proto_for(side, codec)
    proto.receive_data(build([F(CLOSE, close_payload(1000))], side))
    with pytest.raises(InvalidState, match="connection is"):
        proto.send_text("too late")
    with pytest.raises(InvalidState):
        proto.send_close()


def test_messages_cannot_be_sent_while_connecting(codec):
    proto = ServerProtocol(codec=codec)
    with pytest.raises(InvalidState, match="CONNECTING"):
        proto.send_text("x")
    with pytest.raises(InvalidState):
        proto.send_ping()
    with pytest.raises(InvalidState):
        proto.fail(1011)


@pytest.mark.parametrize(
    "call",
    [
        ("send_ping", b"x" * 126),
        ("send_pong", b"x" * 126),
        ("send_close", 1005, "reason without a code"),
        ("send_close", 1006),
        ("send_close", 999),
        ("send_close", 1000, "x" * 124),
        ("fail", 1006),
    ],
    ids=["ping-too-long", "pong-too-long", "1005-with-reason", "1006", "999", "reason-too-long", "fail-1006"],
)
def test_invalid_arguments(codec, side, call):
    proto = proto_for(side, codec)
    name, *args = call
    with pytest.raises(ValueError):
        getattr(proto, name)(*args)
    assert proto.state is OPEN
    assert proto.data_to_send() == b""


# --- fast path and plumbing ------------------------------------------------------


def spy_codec(codec):
    """``codec`` with a FrameParser that records the frames it returns."""
    seen = []

    class SpyParser:
        def __init__(self, **kwargs):
            self._parser = codec.FrameParser(**kwargs)
            self.pending = self._parser.pending
            self.pending_payload = self._parser.pending_payload

        def feed(self, data):
            frames = self._parser.feed(data)
            seen.extend(frames)
            return frames

    spy = types.SimpleNamespace(**{name: getattr(codec, name) for name in dir(codec) if not name.startswith("__")})
    spy.FrameParser = SpyParser
    return spy, seen


def test_unfragmented_binary_is_not_copied(codec, side):
    spy, seen = spy_codec(codec)
    proto = proto_for(side, spy)
    proto.receive_data(build([F(BINARY, b"payload" * 100)], side))
    (message,) = proto.events_received()
    assert message is seen[0].payload


def test_parser_gets_the_message_limit_and_mask_rule(codec, side):
    created = {}

    class Recorder:
        def __init__(self, **kwargs):
            created.update(kwargs)
            parser = codec.FrameParser(**kwargs)
            self.feed, self.pending, self.pending_payload = parser.feed, parser.pending, parser.pending_payload

    spy = types.SimpleNamespace(**{name: getattr(codec, name) for name in dir(codec) if not name.startswith("__")})
    spy.FrameParser = Recorder
    proto_for(side, spy, max_size=1234)
    assert created == {"mask_required": side is Side.SERVER, "max_size": 1234, "allow_rsv1": False}
    created.clear()
    proto_for(side, spy, max_size=10)  # control frames may carry 125 bytes
    assert created["max_size"] == 125


def test_default_codec_is_the_active_one():
    import fastws.codec

    proto = Protocol(Side.SERVER)
    assert proto.codec is fastws.codec


def test_data_to_send_joins_pending_writes(codec):
    proto = proto_for(Side.SERVER, codec)
    assert proto.data_to_send() == b""
    proto.send_text("a")
    proto.send_binary(b"b")
    assert proto.data_to_send() == b"\x81\x01a\x82\x01b"
    assert proto.data_to_send() == b""


# Payloads at and above 64 KiB that a server sends as bytes are queued after
# their header, not copied into one frame (chunks_to_send, for writelines).
PASS_THROUGH = 1 << 16


@pytest.mark.parametrize("size", [0, 125, 126, PASS_THROUGH - 1, PASS_THROUGH, PASS_THROUGH + 1, 1 << 20])
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview, str])
@pytest.mark.parametrize(
    "calls",
    [
        [("send_binary", True)],
        [("send_text", True)],
        [("send_binary", False), ("send_continuation", False), ("send_continuation", True)],
        [("send_text", False), ("send_continuation", True)],
    ],
    ids=["binary", "text", "binary-fragments", "text-fragments"],
)
def test_chunks_to_send(codec, side, size, kind, calls):
    """Same bytes on the wire as build_frame; a large bytes payload of a server
    is passed by reference; anything mutable, masked or small is copied."""
    payload = kind(b"x" * size) if kind is not str else "x" * size
    expected = b""
    proto = proto_for(side, codec)
    for name, fin in calls:
        getattr(proto, name)(payload, fin)
        opcode = {"send_binary": BINARY, "send_text": TEXT, "send_continuation": CONT}[name]
        chunks = proto.chunks_to_send()
        assert proto.chunks_to_send() == []
        frames = sent_frames(b"".join(chunks), by_client=side is Side.CLIENT)
        assert [(op, bytes(p), f) for op, p, f, _ in frames] == [(opcode, b"x" * size, fin)]
        passed = side is Side.SERVER and kind is bytes and size >= PASS_THROUGH
        if passed:
            assert len(chunks) == 2 and chunks[1] is payload
            assert b"".join(chunks) == codec.build_frame(opcode, payload, fin=fin)
        else:
            assert len(chunks) == 1
        expected += b"".join(chunks)
    # data_to_send() gives the same bytes, joined.
    proto = proto_for(side, codec)
    for name, fin in calls:
        getattr(proto, name)(payload, fin)
    data = proto.data_to_send()
    if side is Side.SERVER:
        assert data == expected
    else:  # fresh masking keys: compare what the frames carry
        assert sent_frames(data, by_client=True) == sent_frames(expected, by_client=True)


def test_events_received_resets(codec, side):
    proto = proto_for(side, codec)
    proto.receive_data(build([F(TEXT, "1")], side))
    assert proto.events_received() == ["1"]
    assert proto.events_received() == []
    proto.receive_data(build([F(TEXT, "2")], side))
    assert proto.events_received() == ["2"]


def test_memoryview_and_bytearray_input(codec, side):
    proto = proto_for(side, codec)
    data = build([F(TEXT, "mv"), F(BINARY, b"ba")], side)
    proto.receive_data(memoryview(data)[:5])
    proto.receive_data(bytearray(data[5:]))
    assert proto.events_received() == ["mv", b"ba"]


def test_constructor_checks():
    with pytest.raises(TypeError):
        Protocol("server")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Protocol(Side.SERVER, max_size=-1)
    with pytest.raises(ValueError):
        Protocol(Side.SERVER, state=State.CLOSED)


def test_events_compare_and_print():
    assert Ping(b"a") == Ping(b"a") and Ping(b"a") != Pong(b"a")
    assert Close(1000, "x") == Close(CloseCode.NORMAL_CLOSURE, "x")
    assert repr(Close(CloseCode.GOING_AWAY, "bye")) == "Close(1001 GOING_AWAY, 'bye')"
    assert repr(Close(4000, "")) == "Close(4000, '')"
    assert repr(Pong(b"p")) == "Pong(b'p')"
    assert repr(Protocol(Side.CLIENT)) == "<Protocol CLIENT OPEN>"


def test_close_order_and_send_readiness(codec, side):
    proto = proto_for(side, codec)
    assert proto.can_send_frame() and proto.mask_frames is (side is Side.CLIENT)
    proto.send_text("a", fin=False)
    assert not proto.can_send_frame()
    proto.send_continuation("b", fin=True)
    assert proto.can_send_frame()
    assert proto.close_rcvd_then_sent is None
    proto.receive_data(build([F(CLOSE, close_payload(1000))], side))
    assert proto.close_rcvd_then_sent is True and not proto.can_send_frame()
    other = proto_for(side, codec)
    other.send_close()
    other.receive_data(build([F(CLOSE, close_payload(1000))], side))
    assert other.close_rcvd_then_sent is False


# --- failing fast: before the bad frame is complete ---------------------------------------
# Invalid UTF-8 fails the connection as soon as the piece of the frame that holds it arrives
# (Autobahn 6.4.3, 6.4.4: one text frame sent in chops), and a data frame that breaks the
# fragmentation rules fails it from its header.

KOSME = "κόσμε".encode()  # the testsuite's text; then F4 90 80 80, a code point > U+10FFFF

# (id, frames, bytes withheld from the end of the input, events, exception type, close code)
FAIL_FAST = [
    ("invalid-utf8-in-an-unfinished-text-frame",
     [F(TEXT, KOSME + b"\xf4\x90\x80\x80edited")], 7, [], InvalidUTF8, 1007),
    ("invalid-utf8-in-an-unfinished-first-fragment",
     [F(TEXT, KOSME + b"\xf4\x90\x80\x80edited", fin=False)], 7, [], InvalidUTF8, 1007),
    ("invalid-utf8-in-an-unfinished-continuation",
     [F(TEXT, KOSME, fin=False), F(CONT, b"ok\xff" + b"x" * 20, fin=False)], 20, [], InvalidUTF8, 1007),
    ("surrogate-in-an-unfinished-frame", [F(TEXT, b"a\xed\xa0\x80" + b"b" * 50)], 51, [], InvalidUTF8, 1007),
    ("invalid-utf8-after-a-split-character",
     [F(TEXT, b"\xc3", fin=False), F(CONT, b"\xa9\xc3\x28" + b"z" * 30)], 30, [], InvalidUTF8, 1007),
    ("invalid-utf8-after-a-ping-and-a-message",
     [F(TEXT, "one"), F(PING, b"p"), F(TEXT, b"ab\xc0\xaf" + b"c" * 200)], 200,
     ["one", Ping(b"p")], InvalidUTF8, 1007),
    ("continuation-header-without-a-message", [F(CONT, b"x" * 300)], 300, [], ProtocolError, 1002),
    ("text-header-inside-a-fragmented-message",
     [F(TEXT, "a", fin=False), F(TEXT, b"b" * 300)], 300, [], ProtocolError, 1002),
    ("binary-header-inside-a-fragmented-message",
     [F(BINARY, b"a", fin=False), F(BINARY, b"b" * 10)], 10, [], ProtocolError, 1002),
]


@pytest.mark.parametrize(
    "frames, withheld, events, exc_type, code", [c[1:] for c in FAIL_FAST], ids=[c[0] for c in FAIL_FAST]
)
def test_fail_fast_before_the_frame_ends(codec, side, how, frames, withheld, events, exc_type, code):
    proto = proto_for(side, codec)
    wire = build(frames, side)
    feed(proto, wire[:-withheld], how)  # the last frame never completes
    assert proto.events_received() == events
    assert type(proto.error) is exc_type and proto.error.close_code == code
    assert sent_close(proto.data_to_send(), by_client=side is Side.CLIENT)[0] == code
    assert proto.state is closing_state(side)
    proto.receive_data(wire[-withheld:])  # the rest of it is ignored
    assert proto.events_received() == [] and proto.data_to_send() == b""


# Valid text that arrives in pieces of every size gives the same messages: the bytes
# checked before a frame ends are not checked twice, nor skipped.
PIECES = [
    ("one-text-frame", [F(TEXT, KOSME * 20)], [KOSME.decode() * 20]),
    ("fragments", [F(TEXT, KOSME * 7, fin=False), F(CONT, b"", fin=False), F(CONT, KOSME * 9)],
     [KOSME.decode() * 16]),
    ("characters-split-by-frames-and-pieces",
     [F(TEXT, "😀é".encode()[:3], fin=False), F(CONT, "😀é".encode()[3:] + KOSME * 5)],
     ["😀é" + KOSME.decode() * 5]),
    ("text-binary-text", [F(TEXT, KOSME * 3), F(BINARY, b"\xff" * 40), F(TEXT, KOSME, fin=False),
                          F(PING, b"\xff"), F(CONT, KOSME)],
     [KOSME.decode() * 3, b"\xff" * 40, Ping(b"\xff"), KOSME.decode() * 2]),
]


@pytest.mark.parametrize("frames, events", [c[1:] for c in PIECES], ids=[c[0] for c in PIECES])
@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 16, 64])
def test_valid_text_in_pieces_of_any_size(codec, side, frames, events, size):
    proto = proto_for(side, codec)
    wire = build(frames, side)
    got = []
    for i in range(0, len(wire), size):
        proto.receive_data(wire[i : i + size])
        got += proto.events_received()
    assert got == events
    assert proto.error is None and proto.state is OPEN


# --- defer_failure: the close frame waits for the driver ----------------------------------
# Autobahn 3.2, 4.1.3, 5.15...: good messages, then a bad frame, in one read. An echo server
# must echo the messages before its close frame; a driver that hands messages over
# asynchronously (the asyncio layer) sets defer_failure and calls fail_pending() once its
# application has taken them.

# (id, frames, events before the error, close code)
DEFERRED = [
    ("rsv2-after-a-message", [F(TEXT, "Hello, world!"), F(TEXT, "x", rsv2=True), F(PING)],
     ["Hello, world!"], 1002),
    ("reserved-opcode-after-a-message", [F(TEXT, "Hello, world!"), F(5), F(PING)],
     ["Hello, world!"], 1002),
    ("continuation-after-a-fragmented-message",
     [F(TEXT, "fragment1", fin=False), F(CONT, "fragment2"), F(CONT, "fragment3", fin=False),
      F(TEXT, "fragment4")], ["fragment1fragment2"], 1002),
    ("invalid-utf8-after-messages", [F(TEXT, "ok"), F(BINARY, b"b"), F(TEXT, b"\xff")], ["ok", b"b"], 1007),
    ("invalid-close-after-a-message", [F(BINARY, b"m"), F(CLOSE, close_payload(999))], [b"m"], 1002),
    ("error-alone", [F(TEXT, "x", rsv3=True)], [], 1002),
]


@pytest.mark.parametrize("frames, events, code", [c[1:] for c in DEFERRED], ids=[c[0] for c in DEFERRED])
def test_deferred_failure(codec, side, how, frames, events, code):
    proto = proto_for(side, codec, defer_failure=True)
    feed(proto, build(frames, side), how)
    assert proto.events_received() == events
    # Reading stopped at the bad frame (no pong for the ping after it), nothing is sent yet.
    assert proto.data_to_send() == b""
    assert proto.pending_failure is proto.error and proto.error.close_code == code
    assert proto.state is OPEN and not proto.should_close_transport()
    proto.receive_data(build([F(TEXT, "late"), F(PING, b"late")], side))
    assert proto.events_received() == [] and proto.data_to_send() == b""
    # The application replies to what it got...
    proto.send_text("echo")
    # ... then the driver fails the connection, as it would have been at once.
    proto.fail_pending()
    frames_sent = sent_frames(proto.data_to_send(), by_client=side is Side.CLIENT)
    assert [f[:2] for f in frames_sent[:-1]] == [(TEXT, b"echo")]
    code_sent, reason = _codec_py.parse_close(frames_sent[-1][1])
    assert code_sent == code and reason == str(proto.error)[:123]
    assert proto.pending_failure is None
    assert proto.state is closing_state(side)
    assert proto.should_close_transport() is (side is Side.SERVER)
    proto.fail_pending()  # once only
    assert proto.data_to_send() == b""


@pytest.mark.parametrize("call", ["send_close", "fail"])
def test_closing_with_a_pending_failure_sends_the_failure(codec, side, call):
    proto = proto_for(side, codec, defer_failure=True)
    proto.receive_data(build([F(TEXT, "a"), F(CONT, b"x")], side))
    assert proto.events_received() == ["a"] and proto.pending_failure is not None
    getattr(proto, call)(1000 if call == "send_close" else 1011)
    assert sent_close(proto.data_to_send(), by_client=side is Side.CLIENT)[0] == 1002
    assert proto.pending_failure is None and proto.close_sent.code == 1002


def test_end_of_stream_drops_a_pending_failure(codec, side):
    proto = proto_for(side, codec, defer_failure=True)
    proto.receive_data(build([F(TEXT, "a"), F(3)], side))
    proto.receive_eof()
    assert proto.events_received() == ["a", Close(1006, "")]
    assert proto.pending_failure is None and proto.state is CLOSED
    proto.fail_pending()
    assert proto.data_to_send() == b""
    assert type(proto.error) is ProtocolError


def test_defer_failure_is_off_by_default_and_settable(codec, side):
    proto = proto_for(side, codec)
    assert proto.defer_failure is False
    proto.defer_failure = True
    proto.receive_data(build([F(3)], side))
    assert proto.pending_failure is not None and proto.data_to_send() == b""
    assert ServerProtocol(codec=codec, defer_failure=True).defer_failure is True
    assert ClientProtocol("ws://localhost/", codec=codec, defer_failure=True).defer_failure is True


def test_max_size_is_read_only(codec):
    """The limit is given to the frame parser and the assembler when frames
    start: a later assignment could not reach them, so there is none."""
    proto = Protocol(Side.SERVER, codec=codec, max_size=10)
    with pytest.raises(AttributeError):
        proto.max_size = 20  # type: ignore[misc]
    assert proto.max_size == 10


def test_continuation_after_the_end_of_the_stream(codec):
    """A fragmented send cut by the end of the stream is refused for the
    connection's state, as after a close frame."""
    proto = Protocol(Side.SERVER, codec=codec)
    proto.send_text("a", fin=False)
    proto.receive_eof()
    with pytest.raises(InvalidState, match="connection is CLOSED"):
        proto.send_continuation("b", fin=True)

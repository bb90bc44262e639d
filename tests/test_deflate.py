"""permessage-deflate (RFC 7692): the negotiation tables of both sides, round
trips through a ServerProtocol/ClientProtocol pair for every combination of
parameters (both codec implementations), checked on the wire with independent
inflaters of exactly the negotiated window, the decompression bomb, RSV1 rules,
and interoperability in memory with the ``websockets`` library, both ways."""

from __future__ import annotations

import functools
import gc
import itertools
import random
import time
import tracemalloc
import zlib

import pytest

from fastws.deflate import (
    DEFAULT_MIN_SIZE,
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from fastws.events import Close, Ping, Pong
from fastws.exceptions import (
    InvalidParameterValue,
    InvalidStatus,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
)
from fastws.handshake import accept_key, negotiate_server_extensions, parse_extension_list
from fastws.http11 import Headers, Request, Response
from fastws.protocol import CLOSED, OPEN, ClientProtocol, ServerProtocol

from protocol_helpers import BINARY, CONT, PING, TEXT, make_frame, pump, sent_frames

TAIL = b"\x00\x00\xff\xff"


# --- helpers ------------------------------------------------------------------------------


def connect(codec=None, *, client=None, server=None, client_kwargs=None, server_kwargs=None):
    """A fastws client and server after the handshake. ``client`` and ``server``
    are the factories (lists), ``None`` for the defaults."""
    c = ClientProtocol(
        "ws://example.com/chat",
        codec=codec,
        extensions=[ClientPerMessageDeflateFactory()] if client is None else client,
        **(client_kwargs or {}),
    )
    s = ServerProtocol(
        codec=codec,
        extensions=[ServerPerMessageDeflateFactory()] if server is None else server,
        **(server_kwargs or {}),
    )
    pump(c, s)
    assert c.state is OPEN and s.state is OPEN, (c.error, s.error)
    assert isinstance(s.events_received()[0], Request)
    assert isinstance(c.events_received()[0], Response)
    return c, s


def fake_server_response(client: ClientProtocol, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(client.key).encode() + b"\r\n" + extra + b"\r\n"
    )


def request_with_extensions(value: str) -> Request:
    return Request("/", Headers([("Sec-WebSocket-Extensions", value)]))


def params_of(header: str) -> list:
    """The parameters of the single extension in a header value."""
    ((_, params),) = parse_extension_list(header)
    return params


def wire_messages(frames) -> list:
    """Group the (opcode, payload, fin, rsv1) frames one side sent into data
    messages: [(opcode, compressed, [payloads])]. Checks that control frames
    never carry RSV1 (continuation frames with RSV1 do not even parse)."""
    messages = []
    current = None
    for opcode, payload, _fin, rsv1 in frames:  # a new data opcode starts a message
        if opcode >= 8:
            assert not rsv1, "RSV1 on a control frame"
            continue
        if opcode != CONT:
            current = (opcode, rsv1, [])
            messages.append(current)
        current[2].append(payload)
    return messages


def strict_inflate(messages, bits: int, no_context_takeover: bool) -> list:
    """Inflate the compressed messages with a zlib inflater of exactly the
    negotiated window (8 included: zlib inflates raw deflate with 8 bits), reset
    per message if no context takeover was negotiated: fails with zlib.error
    ("invalid distance too far back") if the sender used a larger window or
    referred to an earlier message. Uncompressed messages are returned as is."""
    out = []
    inflater = None
    for _, compressed, payloads in messages:
        if not compressed:
            out.append(b"".join(payloads))
            continue
        if inflater is None or no_context_takeover:
            inflater = zlib.decompressobj(wbits=-bits)
        # Frame by frame, so that no distance can reach into the current call's
        # output instead of the window.
        data = b"".join(inflater.decompress(p) for p in payloads) + inflater.decompress(TAIL)
        out.append(data)
    return out


def feed(sender, receiver, *, by_client: bool):
    """Move what ``sender`` wrote to ``receiver``; returns the frames sent."""
    data = sender.data_to_send()
    frames = sent_frames(data, by_client=by_client, allow_rsv1=True)
    receiver.receive_data(data)
    return frames


@functools.cache
def compressible(n: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    words = [b"alpha", b"beta", b"gamma", b"delta", b'"user":', b'"text":', b"{", b"}", b" "]
    out = bytearray()
    while len(out) < n:
        out += rng.choice(words)
    return bytes(out[:n])


def incompressible(n: int, seed: int = 2) -> bytes:
    return random.Random(seed).randbytes(n)


# --- factory arguments ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "factory, kwargs",
    [
        (ServerPerMessageDeflateFactory, {"server_max_window_bits": 7}),
        (ServerPerMessageDeflateFactory, {"server_max_window_bits": 16}),
        (ServerPerMessageDeflateFactory, {"client_max_window_bits": True}),
        (ServerPerMessageDeflateFactory, {"client_max_window_bits": "12"}),
        (ServerPerMessageDeflateFactory, {"client_max_window_bits": None, "require_client_max_window_bits": True}),
        (ServerPerMessageDeflateFactory, {"level": 10}),
        (ServerPerMessageDeflateFactory, {"mem_level": 0}),
        (ServerPerMessageDeflateFactory, {"min_size": -1}),
        (ClientPerMessageDeflateFactory, {"server_max_window_bits": True}),
        (ClientPerMessageDeflateFactory, {"client_max_window_bits": 7}),
        (ClientPerMessageDeflateFactory, {"client_max_window_bits": False}),
        (ClientPerMessageDeflateFactory, {"mem_level": 10}),
        (PerMessageDeflate, {"local_max_window_bits": 16}),
        (PerMessageDeflate, {"remote_max_window_bits": None}),
    ],
)
def test_factory_arguments_are_checked(factory, kwargs):
    with pytest.raises(ValueError):
        factory(**kwargs)


def test_defaults():
    server = ServerPerMessageDeflateFactory()
    assert (server.server_max_window_bits, server.client_max_window_bits) == (12, 12)
    # The level is the backend's default (6 for the standard library's zlib;
    # tests/test_deflate_backends.py checks each backend's).
    assert (server.level, server.mem_level, server.min_size) == (server.backend.level, 5, DEFAULT_MIN_SIZE)
    assert not server.server_no_context_takeover and not server.client_no_context_takeover
    client = ClientPerMessageDeflateFactory()
    assert client.offer() == [("client_max_window_bits", None)]
    assert (client.level, client.mem_level, client.min_size) == (client.backend.level, 5, DEFAULT_MIN_SIZE)
    assert "server_max_window_bits=12" in repr(server) and "client_max_window_bits=True" in repr(client)


def test_client_offer_is_the_header():
    client = ClientProtocol(
        "ws://a/",
        extensions=[
            ClientPerMessageDeflateFactory(
                server_no_context_takeover=True,
                client_no_context_takeover=True,
                server_max_window_bits=10,
                client_max_window_bits=11,
            ),
            ClientPerMessageDeflateFactory(),
            ClientPerMessageDeflateFactory(client_max_window_bits=None),
        ],
    )
    assert client.request.headers["Sec-WebSocket-Extensions"] == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
        " server_max_window_bits=10; client_max_window_bits=11,"
        " permessage-deflate; client_max_window_bits, permessage-deflate"
    )


# --- the server's negotiation table ---------------------------------------------------------

DEFAULT = {}
UNLIMITED = {"server_max_window_bits": None, "client_max_window_bits": None}
REQUIRE = {"require_client_max_window_bits": True}
NO_TAKEOVER = {"server_no_context_takeover": True, "client_no_context_takeover": True}
PD = "permessage-deflate"

# (server factory kwargs, offer header, answer header or None if declined)
SERVER_TABLE = [
    # What browsers and websockets offer.
    (DEFAULT, f"{PD}; client_max_window_bits", f"{PD}; server_max_window_bits=12; client_max_window_bits=12"),
    (UNLIMITED, f"{PD}; client_max_window_bits", PD),
    # No parameters: the server limits its own window; it cannot limit the client's.
    (DEFAULT, PD, f"{PD}; server_max_window_bits=12"),
    (UNLIMITED, PD, PD),
    (REQUIRE, PD, None),
    (REQUIRE, f"{PD}; client_max_window_bits", f"{PD}; server_max_window_bits=12; client_max_window_bits=12"),
    # server_no_context_takeover: answered when asked for, or configured.
    (DEFAULT, f"{PD}; server_no_context_takeover", f"{PD}; server_no_context_takeover; server_max_window_bits=12"),
    (UNLIMITED, f"{PD}; server_no_context_takeover", f"{PD}; server_no_context_takeover"),
    ({**UNLIMITED, "server_no_context_takeover": True}, PD, f"{PD}; server_no_context_takeover"),
    # client_no_context_takeover: the client's hint is echoed; or the server asks.
    (UNLIMITED, f"{PD}; client_no_context_takeover", f"{PD}; client_no_context_takeover"),
    ({**UNLIMITED, "client_no_context_takeover": True}, PD, f"{PD}; client_no_context_takeover"),
    (
        NO_TAKEOVER,
        PD,
        f"{PD}; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12",
    ),
    # server_max_window_bits: never more than the client asks for.
    (DEFAULT, f"{PD}; server_max_window_bits=10", f"{PD}; server_max_window_bits=10"),
    (DEFAULT, f"{PD}; server_max_window_bits=15", f"{PD}; server_max_window_bits=12"),
    (UNLIMITED, f"{PD}; server_max_window_bits=15", f"{PD}; server_max_window_bits=15"),
    (DEFAULT, f"{PD}; server_max_window_bits=8", f"{PD}; server_max_window_bits=8"),
    ({"server_max_window_bits": 8}, PD, f"{PD}; server_max_window_bits=8"),
    # client_max_window_bits: answered only if offered, never more than offered.
    (DEFAULT, f"{PD}; client_max_window_bits=10", f"{PD}; server_max_window_bits=12; client_max_window_bits=10"),
    (DEFAULT, f"{PD}; client_max_window_bits=15", f"{PD}; server_max_window_bits=12; client_max_window_bits=12"),
    (UNLIMITED, f"{PD}; client_max_window_bits=10", f"{PD}; client_max_window_bits=10"),
    (DEFAULT, f"{PD}; client_max_window_bits=8", f"{PD}; server_max_window_bits=12; client_max_window_bits=8"),
    ({**UNLIMITED, "client_max_window_bits": 8}, f"{PD}; client_max_window_bits", f"{PD}; client_max_window_bits=8"),
    (DEFAULT, f'{PD}; client_max_window_bits="10"', f"{PD}; server_max_window_bits=12; client_max_window_bits=10"),
    # Everything at once.
    (
        DEFAULT,
        (
            f"{PD}; client_no_context_takeover; server_no_context_takeover; client_max_window_bits=9;"
            " server_max_window_bits=11"
        ),
        (
            f"{PD}; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11;"
            " client_max_window_bits=9"
        ),
    ),
    # Invalid offers are declined.
    (DEFAULT, f"{PD}; server_no_context_takeover; server_no_context_takeover", None),
    (DEFAULT, f"{PD}; client_max_window_bits; client_max_window_bits=10", None),
    (DEFAULT, f"{PD}; server_max_window_bits=10; server_max_window_bits=10", None),
    (DEFAULT, f"{PD}; x-unknown", None),
    (DEFAULT, f"{PD}; Server_No_Context_Takeover", None),
    (DEFAULT, f"{PD}; server_no_context_takeover=1", None),
    (DEFAULT, f"{PD}; client_no_context_takeover=true", None),
    (DEFAULT, f"{PD}; server_max_window_bits", None),
    (DEFAULT, f"{PD}; server_max_window_bits=7", None),
    (DEFAULT, f"{PD}; server_max_window_bits=16", None),
    (DEFAULT, f"{PD}; server_max_window_bits=010", None),
    (DEFAULT, f"{PD}; client_max_window_bits=x", None),
    (DEFAULT, f"{PD}; client_max_window_bits=1.5", None),
    # Several offers, in order: the first acceptable one wins.
    (
        DEFAULT,
        f"{PD}; x-unknown, {PD}; client_max_window_bits=9",
        f"{PD}; server_max_window_bits=12; client_max_window_bits=9",
    ),
    (DEFAULT, f"{PD}; server_max_window_bits=9, {PD}", f"{PD}; server_max_window_bits=9"),
    (REQUIRE, f"{PD}, {PD}; client_max_window_bits=11", f"{PD}; server_max_window_bits=12; client_max_window_bits=11"),
    (DEFAULT, f"x-other, {PD}", f"{PD}; server_max_window_bits=12"),
    (DEFAULT, f"{PD}; bad, {PD}; worse", None),
    (DEFAULT, "x-other", None),
]


@pytest.mark.parametrize("config, offer, answer", SERVER_TABLE)
def test_server_negotiation(config, offer, answer):
    header, extensions = negotiate_server_extensions(
        request_with_extensions(offer), [ServerPerMessageDeflateFactory(**config)]
    )
    assert header == answer
    if answer is None:
        assert extensions == []
        return
    (ext,) = extensions
    assert isinstance(ext, PerMessageDeflate)
    # The extension does what the answer says.
    answered = dict(params_of(answer))
    assert ext.local_no_context_takeover == ("server_no_context_takeover" in answered)
    assert ext.remote_no_context_takeover == ("client_no_context_takeover" in answered)
    assert ext.local_max_window_bits == int(answered.get("server_max_window_bits") or 15)
    assert ext.remote_max_window_bits == int(answered.get("client_max_window_bits") or 15)


def test_server_declines_a_second_deflate():
    factory = ServerPerMessageDeflateFactory()
    _, first = factory.negotiate([], [])
    with pytest.raises(NegotiationError, match="twice"):
        factory.negotiate([], [first])


def test_server_protocol_answers_the_offer(codec):
    client, server = connect(codec)
    assert server.response.headers["Sec-WebSocket-Extensions"] == (
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
    )
    (ext,) = server.extensions
    assert ext.uses_rsv1 and [e.uses_rsv1 for e in client.extensions] == [True]


def test_server_without_the_factory_declines(codec):
    client, server = connect(codec, server=[])
    assert "Sec-WebSocket-Extensions" not in server.response.headers
    assert client.extensions == [] and server.extensions == []
    client.send_text("x" * 1000)
    wire = client.data_to_send()
    assert len(wire) > 1000  # not compressed
    server.receive_data(wire)
    assert server.events_received() == ["x" * 1000]


def test_client_without_the_factory_gets_no_compression(codec):
    client, server = connect(codec, client=[])
    assert "Sec-WebSocket-Extensions" not in client.request.headers
    assert server.extensions == []


# --- the client's check of the answer ---------------------------------------------------------

OK = "ok"

# (client factory kwargs, answer header, error message or
#  (remote_nct, local_nct, remote_bits, local_bits))
CLIENT_TABLE = [
    ({}, PD, (False, False, 15, 15)),
    ({}, f"{PD}; server_max_window_bits=12; client_max_window_bits=12", (False, False, 12, 12)),
    ({}, f"{PD}; client_max_window_bits=8", (False, False, 15, 8)),
    ({}, f"{PD}; server_max_window_bits=8", (False, False, 8, 15)),
    ({}, f"{PD}; server_no_context_takeover", (True, False, 15, 15)),
    # The server may ask for client_no_context_takeover even if not offered.
    ({}, f"{PD}; client_no_context_takeover", (False, True, 15, 15)),
    # client_no_context_takeover offered: applied even if the server ignores it.
    ({"client_no_context_takeover": True}, PD, (False, True, 15, 15)),
    # server_no_context_takeover offered: the answer must have it.
    ({"server_no_context_takeover": True}, f"{PD}; server_no_context_takeover", (True, False, 15, 15)),
    ({"server_no_context_takeover": True}, PD, "lacks server_no_context_takeover"),
    # server_max_window_bits offered: the answer must have it, no larger.
    ({"server_max_window_bits": 10}, f"{PD}; server_max_window_bits=10", (False, False, 10, 15)),
    ({"server_max_window_bits": 10}, f"{PD}; server_max_window_bits=9", (False, False, 9, 15)),
    ({"server_max_window_bits": 10}, f"{PD}; server_max_window_bits=11", "more than the 10 offered"),
    ({"server_max_window_bits": 10}, PD, "lacks server_max_window_bits"),
    # client_max_window_bits with a value: this side's limit, lowered by the answer.
    ({"client_max_window_bits": 10}, PD, (False, False, 15, 10)),
    ({"client_max_window_bits": 10}, f"{PD}; client_max_window_bits=9", (False, False, 15, 9)),
    ({"client_max_window_bits": 10}, f"{PD}; client_max_window_bits=11", "more than the 10 offered"),
    # client_max_window_bits not offered: the answer must not have it.
    ({"client_max_window_bits": None}, PD, (False, False, 15, 15)),
    ({"client_max_window_bits": None}, f"{PD}; client_max_window_bits=10", "was not offered"),
    # Invalid answers.
    ({}, f"{PD}; client_max_window_bits", "client_max_window_bits must be from 8 to 15, got no value"),
    ({}, f"{PD}; server_max_window_bits=16", "server_max_window_bits must be from 8 to 15"),
    ({}, f"{PD}; server_no_context_takeover=yes", "takes no value"),
    ({}, f"{PD}; server_no_context_takeover; server_no_context_takeover", "duplicate parameter"),
    ({}, f"{PD}; client_max_window_bits=9; client_max_window_bits=9", "duplicate parameter"),
    ({}, f"{PD}; foo=bar", "unknown parameter 'foo'"),
    ({}, f"{PD}, {PD}", "accepted twice"),
    ({}, "x-other", "'x-other', which was not offered"),
]


@pytest.mark.parametrize("config, answer, expected", CLIENT_TABLE)
def test_client_negotiation(config, answer, expected):
    client = ClientProtocol("ws://a/", extensions=[ClientPerMessageDeflateFactory(**config)])
    client.receive_data(fake_server_response(client, b"Sec-WebSocket-Extensions: " + answer.encode() + b"\r\n"))
    if isinstance(expected, str):
        assert client.state is CLOSED
        assert isinstance(client.error, NegotiationError), client.error
        assert expected in str(client.error)
        return
    assert client.state is OPEN, client.error
    (ext,) = client.extensions
    got = (
        ext.remote_no_context_takeover,
        ext.local_no_context_takeover,
        ext.remote_max_window_bits,
        ext.local_max_window_bits,
    )
    assert got == expected


def test_several_client_offers_the_matching_one_takes_the_answer(codec):
    strict = ClientPerMessageDeflateFactory(server_no_context_takeover=True, server_max_window_bits=10)
    loose = ClientPerMessageDeflateFactory(min_size=0)
    # A server that can take the first offer does; the first factory accepts.
    client, server = connect(codec, client=[strict, loose])
    assert server.response.headers["Sec-WebSocket-Extensions"] == (
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=10;"
        " client_max_window_bits=12"
    )
    (ext,) = client.extensions
    assert ext.remote_max_window_bits == 10 and ext.remote_no_context_takeover
    # A server that declines the first offer (no client_max_window_bits in it)
    # answers the second: the first factory refuses that answer (it lacks
    # server_no_context_takeover), the second takes it.
    first = ClientPerMessageDeflateFactory(server_no_context_takeover=True, client_max_window_bits=None)
    client, server = connect(
        codec,
        client=[first, loose],
        server=[ServerPerMessageDeflateFactory(require_client_max_window_bits=True)],
    )
    assert server.response.headers["Sec-WebSocket-Extensions"] == (
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
    )
    (ext,) = client.extensions
    assert ext.min_size == 0 and not ext.remote_no_context_takeover
    check_round_trip(client, server)
    # An answer that no offer matches fails with the last factory's reason.
    client = ClientProtocol("ws://a/", codec=codec, extensions=[strict, loose])
    client.receive_data(
        fake_server_response(client, b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=16\r\n")
    )
    assert type(client.error) is InvalidParameterValue and "got '16'" in str(client.error)


# --- round trips: every combination of parameters ----------------------------------------------

SERVER_CONFIGS = {
    "default": {},
    "unlimited": {"server_max_window_bits": None, "client_max_window_bits": None},
    "tight": {
        "server_no_context_takeover": True,
        "client_no_context_takeover": True,
        "server_max_window_bits": 8,
        "client_max_window_bits": 9,
    },
}
OFFERS = list(
    itertools.product(
        [False, True],  # server_no_context_takeover
        [False, True],  # client_no_context_takeover
        [None, 8, 10, 15],  # server_max_window_bits
        [None, True, 8, 12],  # client_max_window_bits
    )
)


def script(proto):
    """What each side sends in a round trip; returns the messages expected."""
    big = compressible(200_000)
    noise = incompressible(3000)
    text = "héllo wörld: " + compressible(200, seed=3).decode()  # fits a 250-byte reach
    proto.send_text(text)
    proto.send_text(text)  # the second one compresses to almost nothing with context takeover
    proto.send_binary(noise)
    proto.send_text("")
    proto.send_binary(b"")
    proto.send_ping(b"between messages")
    # A fragmented text message, a UTF-8 character cut across frames, a ping
    # in the middle.
    proto.send_text(b"caf" + b"\xc3", fin=False)
    proto.send_ping(b"inside a message")
    proto.send_continuation(b"\xa9 " + text.encode(), fin=False)
    proto.send_continuation(b"", fin=False)
    proto.send_continuation(b"end", fin=True)
    proto.send_binary(big)
    # A message in 1-byte fragments.
    proto.send_binary(b"x", fin=False)
    for byte in b"yz" * 20:
        proto.send_continuation(bytes([byte]), fin=False)
    proto.send_continuation(b"!", fin=True)
    proto.send_text(text)
    return [
        text,
        text,
        noise,
        "",
        b"",
        "café " + text + "end",
        big,
        b"x" + b"yz" * 20 + b"!",
        text,
    ]


def expected_events(messages, pings=(b"between messages", b"inside a message")):
    # Pings arrive where they were sent: the first after the 5 first messages,
    # the second before the fragmented message completes.
    return messages[:5] + [Ping(pings[0]), Ping(pings[1])] + messages[5:]


def check_round_trip(client, server):
    """Both sides send the script; checks the events, and the wire with strict
    inflaters of the negotiated windows."""
    (cext,) = client.extensions
    (sext,) = server.extensions
    # Both sides agree.
    assert cext.local_max_window_bits == sext.remote_max_window_bits
    assert cext.remote_max_window_bits == sext.local_max_window_bits
    assert cext.local_no_context_takeover == sext.remote_no_context_takeover
    assert cext.remote_no_context_takeover == sext.local_no_context_takeover

    for sender, receiver, ext, by_client in (
        (client, server, cext, True),
        (server, client, sext, False),
    ):
        expected = script(sender)
        frames = feed(sender, receiver, by_client=by_client)
        assert receiver.events_received() == expected_events(expected)
        assert receiver.error is None
        pump(client, server)  # the pongs
        assert sender.events_received() == [Pong(b"between messages"), Pong(b"inside a message")]
        messages = wire_messages(frames)
        # Compressed (RSV1), but for the empty messages, which are under min_size...
        assert [m[1] for m in messages] == [
            True, True, True, ext.min_size == 0, ext.min_size == 0, True, True, True, True
        ]
        # ... and really smaller for compressible data.
        assert sum(map(len, messages[6][2])) < 200_000 // 4
        if not ext.local_no_context_takeover:
            assert len(messages[1][2][0]) < len(messages[0][2][0]) // 4
        else:
            assert messages[1][2] == messages[0][2]
        # The frames inflate with exactly the negotiated window, reset per
        # message without context takeover.
        inflated = strict_inflate(messages, ext.local_max_window_bits, ext.local_no_context_takeover)
        assert inflated == [m.encode() if isinstance(m, str) else m for m in expected]
    # Both can still close cleanly.
    client.send_close(1000, "bye")
    pump(client, server)
    assert server.close_rcvd == Close(1000, "bye") and server.state is CLOSED


@pytest.mark.parametrize("offer", OFFERS, ids=lambda o: "snct={}-cnct={}-smwb={}-cmwb={}".format(*o))
def test_round_trip_every_parameter_combination(codec, offer):
    snct, cnct, smwb, cmwb = offer
    client_factory = ClientPerMessageDeflateFactory(
        server_no_context_takeover=snct,
        client_no_context_takeover=cnct,
        server_max_window_bits=smwb,
        client_max_window_bits=cmwb,
    )
    for name, config in SERVER_CONFIGS.items():
        client, server = connect(
            codec, client=[client_factory], server=[ServerPerMessageDeflateFactory(**config)]
        )
        (cext,) = client.extensions
        (sext,) = server.extensions
        # What was asked for is honoured.
        if snct or config.get("server_no_context_takeover"):
            assert sext.local_no_context_takeover
        if cnct or config.get("client_no_context_takeover"):
            assert cext.local_no_context_takeover
        server_limit = min(smwb or 15, config.get("server_max_window_bits", 12) or 15)
        assert sext.local_max_window_bits == server_limit, name
        client_limit = 15 if cmwb is None else (15 if cmwb is True else cmwb)
        if cmwb is not None:
            client_limit = min(client_limit, config.get("client_max_window_bits", 12) or 15)
        assert cext.local_max_window_bits == client_limit, name
        check_round_trip(client, server)


@pytest.mark.parametrize("min_size", [0, DEFAULT_MIN_SIZE])
def test_round_trip_byte_by_byte(codec, min_size):
    client, server = connect(
        codec,
        client=[ClientPerMessageDeflateFactory(min_size=min_size)],
        server=[ServerPerMessageDeflateFactory(min_size=min_size)],
    )
    expected = script(client)
    data = client.data_to_send()
    for i in range(len(data)):
        server.receive_data(data[i : i + 1])
    assert server.events_received() == expected_events(expected)


def test_round_trip_with_levels_and_mem_levels(codec):
    for level, mem_level in [(0, 1), (1, 9), (9, 1), (-1, 8)]:
        client, server = connect(
            codec,
            client=[ClientPerMessageDeflateFactory(level=level, mem_level=mem_level, min_size=0)],
            server=[ServerPerMessageDeflateFactory(level=level, mem_level=mem_level, min_size=0)],
        )
        expected = script(client)
        server.receive_data(client.data_to_send())
        assert server.events_received() == expected_events(expected)


# --- per message ------------------------------------------------------------------------------


def test_rsv1_only_on_the_first_frame(codec):
    client, server = connect(codec, client=[ClientPerMessageDeflateFactory(min_size=0)])
    client.send_text("a" * 100, fin=False)
    client.send_continuation("b" * 100, fin=False)
    client.send_continuation("c" * 100, fin=True)
    frames = sent_frames(client.data_to_send(), by_client=True, allow_rsv1=True)
    assert [(op, fin, rsv1) for op, _, fin, rsv1 in frames] == [
        (TEXT, False, True),
        (CONT, False, False),
        (CONT, True, False),
    ]
    # Non-final frames keep the sync-flush marker; the last one loses it.
    assert frames[0][1].endswith(TAIL) and frames[1][1].endswith(TAIL)
    assert not frames[2][1].endswith(TAIL)


def test_empty_message_compresses_to_one_byte(codec):
    client, server = connect(codec, client=[ClientPerMessageDeflateFactory(min_size=0)])
    client.send_binary(b"")
    client.send_binary(b"")  # zlib emits nothing for it after a flush: still 0x00
    data = client.data_to_send()
    frames = sent_frames(data, by_client=True, allow_rsv1=True)
    assert [(payload, rsv1) for _, payload, _, rsv1 in frames] == [(b"\x00", True), (b"\x00", True)]
    server.receive_data(data)
    assert server.events_received() == [b"", b""]


def test_control_frames_are_never_compressed(codec):
    client, server = connect(codec, client=[ClientPerMessageDeflateFactory(min_size=0)])
    client.send_ping(b"p" * 100)
    client.send_pong(b"q" * 100)
    client.send_close(1000, "r" * 100)
    frames = sent_frames(client.data_to_send(), by_client=True, allow_rsv1=True)
    assert [(op, payload[:3], rsv1) for op, payload, _, rsv1 in frames] == [
        (PING, b"ppp", False),
        (10, b"qqq", False),
        (8, b"\x03\xe8r", False),
    ]
    assert all(len(payload) in (100, 102) for _, payload, _, _ in frames)


def test_min_size_threshold(codec):
    client, server = connect(codec, client=[ClientPerMessageDeflateFactory(min_size=50)])
    client.send_text("s" * 49)  # under: plain
    client.send_text("s" * 50)  # at: compressed
    client.send_binary(b"s" * 10, fin=False)  # fragmented: always compressed
    client.send_continuation(b"t", fin=True)
    client.send_text("s" * 49)
    data = client.data_to_send()
    frames = sent_frames(data, by_client=True, allow_rsv1=True)
    assert [(op, rsv1) for op, _, _, rsv1 in frames] == [
        (TEXT, False), (TEXT, True), (BINARY, True), (CONT, False), (TEXT, False)
    ]
    assert frames[0][1] == b"s" * 49
    server.receive_data(data)
    assert server.events_received() == ["s" * 49, "s" * 50, b"s" * 10 + b"t", "s" * 49]


def test_uncompressed_messages_from_the_peer_are_accepted(codec):
    # A peer may send any message uncompressed (RSV1 clear), fragmented too,
    # between compressed ones; context takeover is unaffected.
    client, server = connect(codec)
    compressor = zlib.compressobj(wbits=-12)

    def compressed(data: bytes) -> bytes:
        return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]

    server.receive_data(
        make_frame(TEXT, compressed(b"hello hello hello"), rsv1=True)
        + make_frame(TEXT, b"plain")
        + make_frame(BINARY, b"pl", fin=False)
        + make_frame(CONT, b"ain")
        + make_frame(TEXT, compressed(b"hello hello hello"), rsv1=True)
    )
    assert server.events_received() == ["hello hello hello", "plain", b"plain", "hello hello hello"]


@pytest.mark.parametrize("side", ["client", "server"])
def test_context_takeover(codec, side):
    for reset in (False, True):
        if side == "client":
            factories = dict(client=[ClientPerMessageDeflateFactory(client_no_context_takeover=reset)])
        else:
            factories = dict(server=[ServerPerMessageDeflateFactory(server_no_context_takeover=reset)])
        client, server = connect(codec, **factories)
        sender, receiver = (client, server) if side == "client" else (server, client)
        message = compressible(3000, seed=5)
        sizes = []
        for _ in range(3):
            sender.send_binary(message)
            frames = feed(sender, receiver, by_client=side == "client")
            sizes.append(len(frames[0][1]))
        assert receiver.events_received() == [message] * 3
        (sext,) = sender.extensions
        (rext,) = receiver.extensions
        if reset:
            assert sizes[0] == sizes[1] == sizes[2]
            # Nothing kept between messages, on either end.
            assert sext._encoder is None and rext._decoder is None
        else:
            assert sizes[1] < sizes[0] // 10 and sizes[2] < sizes[0] // 10
            assert sext._encoder is not None and rext._decoder is not None


def test_peer_message_ending_with_a_final_block(codec):
    # A peer may end a message with a final block (BFINAL set, RFC 7692 7.2.3):
    # the next message then starts a new stream.
    client, server = connect(codec)
    messages = [b"first " * 10, b"second " * 10, b"third " * 10]
    data = b""
    for message in messages:
        compressor = zlib.compressobj(wbits=-12)
        data += make_frame(BINARY, compressor.compress(message) + compressor.flush(), rsv1=True)
    server.receive_data(data)
    assert server.events_received() == messages
    assert server.error is None


def test_data_after_a_final_block_is_an_error(codec):
    client, server = connect(codec)
    compressor = zlib.compressobj(wbits=-12)
    payload = compressor.compress(b"first") + compressor.flush() + b"garbage"
    server.receive_data(make_frame(BINARY, payload, rsv1=True))
    assert type(server.error) is ProtocolError and server.error.close_code == 1007
    assert "after the end of the compressed stream" in str(server.error)


@pytest.mark.parametrize("payload", [b"\xff\xff\xff\xff", b"\x07garbage", b"\x02\x00\x00\x00"])
def test_undecodable_data_fails_with_1007(codec, payload):
    client, server = connect(codec)
    server.receive_data(make_frame(TEXT, payload, rsv1=True))
    assert type(server.error) is ProtocolError and server.error.close_code == 1007
    client.receive_data(server.data_to_send())
    (close,) = client.events_received()
    assert close.code == 1007 and "invalid compressed data" in close.reason


def test_invalid_utf8_after_inflating_fails_with_1007(codec):
    client, server = connect(codec)
    compressor = zlib.compressobj(wbits=-12)
    payload = (compressor.compress(b"caf\xc3(") + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
    server.receive_data(make_frame(TEXT, payload, rsv1=True))
    assert server.error.close_code == 1007 and "UTF-8" in str(server.error)


# --- RSV1 rules ----------------------------------------------------------------------------------


def test_rsv1_without_the_extension_is_1002(codec):
    client, server = connect(codec, server=[])
    compressor = zlib.compressobj(wbits=-15)
    payload = (compressor.compress(b"hello") + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
    server.receive_data(make_frame(TEXT, payload, rsv1=True))
    assert type(server.error) is ProtocolError and server.error.close_code == 1002
    assert "RSV1" in str(server.error)
    client.receive_data(server.data_to_send())
    assert client.events_received()[0].code == 1002


def test_rsv1_on_a_continuation_frame_is_1002(codec):
    client, server = connect(codec)
    compressor = zlib.compressobj(wbits=-12)
    first = compressor.compress(b"hello") + compressor.flush(zlib.Z_SYNC_FLUSH)
    server.receive_data(
        make_frame(TEXT, first, rsv1=True, fin=False) + make_frame(CONT, b"\x03\x00", rsv1=True)
    )
    assert type(server.error) is ProtocolError and server.error.close_code == 1002
    assert "RSV1 set on a continuation frame" in str(server.error)


def test_rsv1_on_a_continuation_of_a_plain_message_is_1002(codec):
    client, server = connect(codec)
    server.receive_data(make_frame(TEXT, b"plain", fin=False) + make_frame(CONT, b"\x03\x00", rsv1=True))
    assert server.error.close_code == 1002


@pytest.mark.parametrize("opcode", [PING, 10, 8])
def test_rsv1_on_a_control_frame_is_1002(codec, opcode):
    client, server = connect(codec)
    server.receive_data(make_frame(opcode, b"\x03\xe8", rsv1=True))
    assert server.error.close_code == 1002


# --- max_size counts inflated bytes; the bomb ------------------------------------------------------


def compress_raw(data: bytes, bits: int = 12) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -bits, 9)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


@pytest.mark.parametrize("max_size", [100, 1000, 70_000])
def test_max_size_is_the_inflated_size(codec, max_size):
    for size, ok in [(max_size, True), (max_size + 1, False)]:
        client, server = connect(codec, server_kwargs={"max_size": max_size})
        payload = compress_raw(b"z" * size)
        assert len(payload) < max_size  # the frame itself is well under the limit
        server.receive_data(make_frame(BINARY, payload, rsv1=True))
        if ok:
            assert server.events_received() == [b"z" * size] and server.error is None
        else:
            assert type(server.error) is PayloadTooBig and server.error.close_code == 1009
            client.receive_data(server.data_to_send())
            assert client.events_received()[0].code == 1009


@pytest.mark.parametrize("max_size", [100, 1000, 70_000])
def test_max_size_across_fragments(codec, max_size):
    for size, ok in [(max_size, True), (max_size + 1, False)]:
        client, server = connect(codec, server_kwargs={"max_size": max_size})
        compressor = zlib.compressobj(9, zlib.DEFLATED, -12, 9)
        thirds = [size // 3, size // 3, size - 2 * (size // 3)]
        chunks = [compressor.compress(b"q" * n) + compressor.flush(zlib.Z_SYNC_FLUSH) for n in thirds]
        chunks[-1] = chunks[-1][:-4]
        data = make_frame(BINARY, chunks[0], fin=False, rsv1=True)
        data += make_frame(CONT, chunks[1], fin=False) + make_frame(CONT, chunks[2])
        server.receive_data(data)
        if ok:
            assert server.events_received() == [b"q" * size] and server.error is None
        else:
            assert type(server.error) is PayloadTooBig


@pytest.mark.parametrize("fragments", [1, 3])
def test_max_size_message_names_the_limit_not_the_compression(codec, fragments):
    """The error says what the user configured, max_size, as for a message
    that came uncompressed; compression (on by default) is not named."""
    max_size = 1000
    client, server = connect(codec, server_kwargs={"max_size": max_size})
    client.send_binary(b"x" * 400, fin=fragments == 1)
    for i in range(1, fragments):
        client.send_continuation(b"x" * 400, fin=i == fragments - 1)
    if fragments == 1:
        client.send_binary(b"x" * 5000)
    server.receive_data(client.data_to_send())
    error = server.error
    assert type(error) is PayloadTooBig and error.close_code == 1009
    assert str(error) == f"message of at least {max_size + 1} bytes exceeds max_size of {max_size} bytes"
    client.receive_data(server.data_to_send())
    close = client.events_received()[-1]
    assert (close.code, close.reason) == (1009, str(error))


def test_max_size_none_means_no_limit(codec):
    client, server = connect(codec, server_kwargs={"max_size": None})
    server.receive_data(make_frame(BINARY, compress_raw(bytes(5 << 20)), rsv1=True))
    assert server.events_received() == [bytes(5 << 20)]


def test_max_size_zero(codec):
    client, server = connect(codec, server_kwargs={"max_size": 0})
    server.receive_data(make_frame(BINARY, b"\x00", rsv1=True))  # the empty message
    assert server.events_received() == [b""]
    server.receive_data(make_frame(BINARY, compress_raw(b"a"), rsv1=True))
    assert type(server.error) is PayloadTooBig


@pytest.fixture(scope="module")
def gib_bomb():
    """A raw deflate stream, about 1 MB, that inflates to 1 GiB of zeros: one
    16 MiB chunk, then 63 copies of the byte-aligned (sync-flushed) next one,
    which only refers back to zeros."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    chunk = bytes(1 << 24)
    head = compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH)
    repeat = compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH)
    bomb = head + repeat * 63
    assert len(bomb) < 1_048_000  # under the default max_size as a frame
    return bomb[:-4]


def traced(fn):
    """(result, peak bytes allocated during fn, seconds)."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        start = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return result, peak, elapsed


def test_bomb_1_kib_frame(codec):
    # The densest deflate: a 1 KiB frame that inflates to 1 MiB.
    payload = compress_raw(bytes(1 << 20), bits=15)
    assert len(payload) <= 1100
    client, server = connect(codec, server_kwargs={"max_size": 64 << 10})
    frame = codec.build_frame(BINARY, payload, rsv1=True, mask=True)
    _, peak, _ = traced(lambda: server.receive_data(frame))
    assert type(server.error) is PayloadTooBig and server.error.close_code == 1009
    assert peak < 3 * (64 << 10) + (64 << 10), peak  # about max_size, not 1 MiB
    client.receive_data(server.data_to_send())
    assert client.events_received()[0].code == 1009


def test_bomb_1_gib_fails_fast_with_bounded_memory(codec, gib_bomb):
    client, server = connect(codec)  # default max_size: 1 MiB
    frame = codec.build_frame(BINARY, gib_bomb, rsv1=True, mask=True)
    _, peak, elapsed = traced(lambda: server.receive_data(frame))
    assert type(server.error) is PayloadTooBig and server.error.close_code == 1009
    # Inflating the whole GiB would take seconds and a GiB: it stops at max_size.
    # The peak (about 4 MB): the frame's payload (1 MB), the input zlib did not
    # consume (unconsumed_tail, a copy: up to 1 MB), and the inflated max_size
    # twice while CPython joins its output blocks into one bytes object.
    assert peak < 5 * (1 << 20), peak
    assert elapsed < 2.0, elapsed
    (ext,) = server.extensions
    assert ext._decoder is None  # the decompressor and its pending input are gone
    client.receive_data(server.data_to_send())
    (close,) = client.events_received()
    assert close.code == 1009 and "max_size" in close.reason


def test_bomb_in_continuation_frames(codec):
    # Each 1 KiB continuation inflates to 1 MiB; the message fails as soon as
    # its total passes max_size, never holding much more.
    client, server = connect(codec, server_kwargs={"max_size": 3 << 20})
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    chunk = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    frames = [make_frame(BINARY, chunk, fin=False, rsv1=True)]
    for _ in range(10):
        chunk = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH)
        frames.append(make_frame(CONT, chunk, fin=False))
    _, peak, _ = traced(lambda: server.receive_data(b"".join(frames)))
    assert type(server.error) is PayloadTooBig
    assert "3145728" in str(server.error) or "max_size" in str(server.error)
    assert peak < 10 * (1 << 20), peak


# --- memory ---------------------------------------------------------------------------------------


def test_memory_per_connection_defaults():
    """The documented ~50 KiB per connection with the defaults and the
    standard library's zlib (the table in docs/deflate.md), and nothing before
    the first compressed message. (The optional backends' memory:
    tests/test_deflate_backends.py.)"""
    offer = ClientPerMessageDeflateFactory().offer()
    client_factory = ClientPerMessageDeflateFactory(min_size=0)
    answer, _ = ServerPerMessageDeflateFactory().negotiate(offer, [])
    peer = client_factory.accept(answer, [])
    message = compressible(1024)
    incoming, _ = peer.encode(message, first=True, fin=True)
    factory = ServerPerMessageDeflateFactory(min_size=0, backend="zlib")

    def open_connections(n, use):
        exts = []
        for _ in range(n):
            _, ext = factory.negotiate(offer, [])
            if use:
                ext.encode(message, first=True, fin=True)
                assert ext.decode(incoming, first=True, fin=True, max_size=None) == message
            exts.append(ext)
        gc.collect()
        return exts

    def per_connection(use):
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            exts = open_connections(100, use)
            used = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        del exts
        return used / 100

    idle = per_connection(False)
    active = per_connection(True)
    assert idle < 2048, idle
    assert 20 << 10 < active < 64 << 10, active


# --- interop with websockets (sans-I/O, in memory) -----------------------------------------------

try:  # websockets >= 12 (its sans-I/O protocols)
    from websockets.client import ClientProtocol as WSClient
    from websockets.extensions import permessage_deflate as ws_pmd
    from websockets.frames import Opcode as WSOpcode
    from websockets.http11 import Request as WSRequest
    from websockets.http11 import Response as WSResponse
    from websockets.protocol import State as WSState
    from websockets.server import ServerProtocol as WSServer
    from websockets.uri import parse_uri as ws_parse_uri
except ImportError as exc:  # pragma: no cover - websockets is a test dependency
    WEBSOCKETS_MISSING = f"websockets >= 12 is not importable ({exc})"
else:
    WEBSOCKETS_MISSING = ""

needs_websockets = pytest.mark.skipif(bool(WEBSOCKETS_MISSING), reason=WEBSOCKETS_MISSING)


def _websockets_declines_8_bits() -> bool:
    """websockets 16 declines (client) or refuses (server) 8-bit windows, which
    zlib cannot compress with (madler/zlib#171); older releases (the last for
    Python 3.9 is 15) accept them and then fail in zlib."""
    import websockets

    return int(websockets.__version__.split(".")[0]) >= 16


class Link:
    """Moves bytes between a fastws protocol and a websockets protocol."""

    def __init__(self, fast, ws):
        self.fast = fast
        self.ws = ws
        self.to_ws: list = []  # frames fastws sent, for the wire checks
        self.to_fast = b""

    def pump(self):
        while True:
            moved = False
            data = self.fast.data_to_send()
            if data:
                self.to_ws.append(data)
                self.ws.receive_data(data)
                moved = True
            chunks = self.ws.data_to_send()
            data = b"".join(chunks)
            if data:
                self.to_fast += data
                self.fast.receive_data(data)
                moved = True
            if b"" in chunks:
                self.fast.receive_eof()
            if not moved:
                return


def ws_messages(proto) -> list:
    """Messages a websockets protocol received (its sans-I/O events are frames)."""
    out = []
    parts = None
    for event in proto.events_received():
        if isinstance(event, (WSRequest, WSResponse)):
            continue
        if event.opcode in (WSOpcode.TEXT, WSOpcode.BINARY):
            parts = [event.opcode, bytes(event.data)]
        elif event.opcode is WSOpcode.CONT:
            parts[1] += bytes(event.data)
        else:
            out.append((event.opcode.name, bytes(event.data)))
            continue
        if event.fin:
            opcode, data = parts
            out.append(data.decode() if opcode is WSOpcode.TEXT else data)
    return out


def ws_script(ws):
    big = compressible(100_000, seed=9)
    text = "bonjour ça va " * 30
    ws.send_text(text.encode())
    ws.send_text(text.encode())
    ws.send_binary(incompressible(2000, seed=4))
    ws.send_text(b"")
    ws.send_text(b"caf\xc3", fin=False)
    ws.send_ping(b"mid")
    ws.send_continuation(b"\xa9 " + text.encode(), fin=True)
    ws.send_binary(big)
    return [text, text, incompressible(2000, seed=4), "", "café " + text, big]


def fast_script(proto):
    big = compressible(100_000, seed=10)
    text = "hallo wie geht's " * 30
    proto.send_text(text)
    proto.send_text(text)
    proto.send_binary(incompressible(2000, seed=5))
    proto.send_text("")
    proto.send_text(b"caf\xc3", fin=False)
    proto.send_ping(b"mid")
    proto.send_continuation(b"\xa9 " + text.encode(), fin=True)
    proto.send_binary(big)
    return [text, text, incompressible(2000, seed=5), "", "café " + text, big]


def interop_messages(fast, ws, link, *, fast_is_server: bool):
    # websockets -> fastws
    expected = ws_script(ws)
    link.pump()
    events = fast.events_received()
    assert fast.error is None, fast.error
    assert [e for e in events if not isinstance(e, Ping)] == expected
    assert Ping(b"mid") in events
    # fastws -> websockets
    link.to_ws.clear()
    expected = fast_script(fast)
    link.pump()
    got = ws_messages(ws)
    assert [m for m in got if not isinstance(m, tuple)] == expected
    assert ("PING", b"mid") in got
    # The frames fastws sent inflate with exactly the window it agreed to.
    frames = sent_frames(b"".join(link.to_ws), by_client=not fast_is_server, allow_rsv1=True)
    messages = [m for m in wire_messages(frames)]
    (ext,) = fast.extensions
    assert any(compressed for _, compressed, _ in messages)
    inflated = strict_inflate(messages, ext.local_max_window_bits, ext.local_no_context_takeover)
    assert inflated == [m.encode() if isinstance(m, str) else m for m in expected]


WS_CLIENT_CONFIGS = {
    "default": {"compress_settings": {"memLevel": 5}},
    "no-takeover": {"server_no_context_takeover": True, "client_no_context_takeover": True},
    "server-8": {"server_max_window_bits": 8},
    "server-10-client-9": {"server_max_window_bits": 10, "client_max_window_bits": 9},
    "no-client-bits": {"client_max_window_bits": None},
}
FAST_SERVER_CONFIGS = {
    "default": {},
    "unlimited": {"server_max_window_bits": None, "client_max_window_bits": None},
    "tight": {
        "server_no_context_takeover": True,
        "client_no_context_takeover": True,
        "server_max_window_bits": 8,
        "client_max_window_bits": 9,
    },
}


@needs_websockets
@pytest.mark.parametrize("server_config", FAST_SERVER_CONFIGS, ids=str)
@pytest.mark.parametrize("client_config", WS_CLIENT_CONFIGS, ids=str)
def test_websockets_client_fastws_server(codec, client_config, server_config):
    ws = WSClient(
        ws_parse_uri("ws://localhost/chat"),
        extensions=[ws_pmd.ClientPerMessageDeflateFactory(**WS_CLIENT_CONFIGS[client_config])],
    )
    ws.send_request(ws.connect())
    fast = ServerProtocol(
        codec=codec,
        extensions=[ServerPerMessageDeflateFactory(min_size=0, **FAST_SERVER_CONFIGS[server_config])],
    )
    link = Link(fast, ws)
    link.pump()
    assert ws.handshake_exc is None and ws.state is WSState.OPEN, ws.handshake_exc
    assert isinstance(fast.events_received()[0], Request)
    assert isinstance(ws.events_received()[0], WSResponse)
    (wext,) = ws.extensions
    (fext,) = fast.extensions
    assert wext.local_max_window_bits == fext.remote_max_window_bits
    assert wext.remote_max_window_bits == fext.local_max_window_bits
    assert wext.local_no_context_takeover == fext.remote_no_context_takeover
    assert wext.remote_no_context_takeover == fext.local_no_context_takeover
    interop_messages(fast, ws, link, fast_is_server=True)
    ws.send_close(1000, "done")
    link.pump()
    assert fast.close_rcvd == Close(1000, "done") and fast.state is CLOSED


@needs_websockets
def test_websockets_client_refuses_client_window_8(codec):
    # websockets cannot compress with 8 bits (madler/zlib#171) and fails the
    # handshake when a server limits it to 8; fastws clients accept 8.
    ws = WSClient(ws_parse_uri("ws://localhost/"), extensions=[ws_pmd.ClientPerMessageDeflateFactory()])
    ws.send_request(ws.connect())
    fast = ServerProtocol(codec=codec, extensions=[ServerPerMessageDeflateFactory(client_max_window_bits=8)])
    if not _websockets_declines_8_bits():
        with pytest.raises(ValueError, match="Invalid initialization option"):  # zlib, in the peer
            Link(fast, ws).pump()
        return
    Link(fast, ws).pump()
    assert ws.handshake_exc is not None and "8" in str(ws.handshake_exc)


WS_SERVER_CONFIGS = {
    "plain": {},
    "serve-default": {
        "server_max_window_bits": 12,
        "client_max_window_bits": 12,
        "compress_settings": {"memLevel": 5},
    },
    "no-takeover": {"server_no_context_takeover": True, "client_no_context_takeover": True},
    "client-8": {"client_max_window_bits": 8},
    "server-9-client-10": {"server_max_window_bits": 9, "client_max_window_bits": 10},
}
FAST_CLIENT_CONFIGS = {
    "default": {},
    "windows-10": {"server_max_window_bits": 10, "client_max_window_bits": 10},
    "no-takeover": {"server_no_context_takeover": True, "client_no_context_takeover": True},
    "no-client-bits": {"client_max_window_bits": None},
    "client-8": {"client_max_window_bits": 8},
}


@needs_websockets
@pytest.mark.parametrize("client_config", FAST_CLIENT_CONFIGS, ids=str)
@pytest.mark.parametrize("server_config", WS_SERVER_CONFIGS, ids=str)
def test_fastws_client_websockets_server(codec, server_config, client_config):
    fast = ClientProtocol(
        "ws://localhost/chat",
        codec=codec,
        extensions=[ClientPerMessageDeflateFactory(min_size=0, **FAST_CLIENT_CONFIGS[client_config])],
    )
    ws = WSServer(extensions=[ws_pmd.ServerPerMessageDeflateFactory(**WS_SERVER_CONFIGS[server_config])])
    link = Link(fast, ws)
    link.pump()
    (request,) = ws.events_received()
    ws.send_response(ws.accept(request))
    link.pump()
    assert fast.state is OPEN, fast.error
    assert ws.state is WSState.OPEN
    assert isinstance(fast.events_received()[0], Response)
    (wext,) = ws.extensions
    (fext,) = fast.extensions
    assert wext.local_max_window_bits == fext.remote_max_window_bits
    assert wext.remote_max_window_bits == fext.local_max_window_bits
    assert wext.local_no_context_takeover == fext.remote_no_context_takeover
    assert wext.remote_no_context_takeover == fext.local_no_context_takeover
    interop_messages(fast, ws, link, fast_is_server=False)
    fast.send_close(1000, "done")
    link.pump()
    assert fast.close_rcvd == Close(1000, "") or fast.close_rcvd.code == 1000


@needs_websockets
def test_fastws_client_asking_for_server_window_8_from_websockets(codec):
    # websockets cannot compress with 8 bits: it declines the offer, and the
    # connection goes on uncompressed. With a second offer, it takes that one.
    for factories, compressed in [
        ([ClientPerMessageDeflateFactory(server_max_window_bits=8)], False),
        (
            [
                ClientPerMessageDeflateFactory(server_max_window_bits=8),
                ClientPerMessageDeflateFactory(server_max_window_bits=9),
            ],
            True,
        ),
    ]:
        fast = ClientProtocol("ws://localhost/", codec=codec, extensions=factories)
        ws = WSServer(extensions=[ws_pmd.ServerPerMessageDeflateFactory()])
        link = Link(fast, ws)
        link.pump()
        (request,) = ws.events_received()
        ws.send_response(ws.accept(request))
        link.pump()
        if not _websockets_declines_8_bits():
            # It takes the first offer, 8 bits, and zlib fails it: HTTP 500.
            assert fast.state is CLOSED
            assert isinstance(fast.error, InvalidStatus) and fast.error.response.status_code == 500
            continue
        assert fast.state is OPEN, fast.error
        assert isinstance(fast.events_received()[0], Response)
        assert bool(fast.extensions) is compressed
        if compressed:
            assert fast.extensions[0].remote_max_window_bits == 9
        ws.send_text(b"hello " * 20)
        link.pump()
        assert fast.events_received() == ["hello " * 20]

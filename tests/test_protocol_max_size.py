"""``max_size`` as websockets takes it: a limit on a message, or a pair
``(message, fragment)`` whose second limit applies to each frame as received."""

from __future__ import annotations

import pytest

import fastws
from fastws.events import Ping
from fastws.exceptions import PayloadTooBig
from fastws.protocol import SERVER, Protocol
from fastws.protocol.types import split_max_size

from asyncio_helpers import run, server
from protocol_helpers import make_frame, sent_close

BINARY, CONT, PING = 2, 0, 9

SPLITS = [
    (None, (None, None)),
    (0, (0, None)),
    (1 << 20, (1 << 20, None)),
    ((1000, 100), (1000, 100)),
    ((None, 100), (None, 100)),
    ((1000, None), (1000, None)),
    ((None, None), (None, None)),
    (-1, ValueError("max_size must be >= 0 or None, got -1")),
    ((10, -1), ValueError("max_size fragment limit must be >= 0 or None, got -1")),
    ((1, 2, 3), ValueError("max_size must be an int, None or a (message, fragment) pair")),
    ("big", TypeError("max_size must be an int or None, got str")),
    ((10, 1.5), TypeError("max_size fragment limit must be an int or None, got float")),
    (True, TypeError("max_size must be an int or None, got bool")),
]


@pytest.mark.parametrize("value, expected", SPLITS)
def test_split_max_size(value, expected):
    if isinstance(expected, Exception):
        with pytest.raises(type(expected), match=str(expected).replace("(", r"\(").replace(")", r"\)")):
            split_max_size(value)
    else:
        assert split_max_size(value) == expected


# (id, max_size, frames of a message as (opcode, size, fin), events or the error's message)
CASES = [
    ("fragments-within-both", (100, 10), [(BINARY, 10, False), (CONT, 10, False), (CONT, 5, True)], 25),
    ("fragment-too-big", (100, 10), [(BINARY, 11, True)], "frame of 11 bytes exceeds max_size of 10 bytes"),
    (
        "later-fragment-too-big",
        (100, 10),
        [(BINARY, 10, False), (CONT, 11, True)],
        "frame of 11 bytes exceeds max_size of 10 bytes",
    ),
    (
        "message-too-big",
        (25, 10),
        [(BINARY, 10, False), (CONT, 10, False), (CONT, 10, True)],
        "message of 30 bytes exceeds max_size of 25 bytes",
    ),
    ("no-message-limit", (None, 200), [(BINARY, 200, False), (CONT, 200, True)], 400),
    ("big-fragment-limit", (1000, 200), [(BINARY, 201, True)], "frame of 201 bytes exceeds max_size of 200 bytes"),
    (
        "fragment-limit-above-message",
        (150, 1000),
        [(BINARY, 151, True)],
        "frame of 151 bytes exceeds max_size of 150 bytes",
    ),
    (
        "int-as-before",
        150,
        [(BINARY, 100, False), (CONT, 100, True)],
        "message of 200 bytes exceeds max_size of 150 bytes",
    ),
]


@pytest.mark.parametrize("max_size, frames, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_fragment_limit(codec, max_size, frames, expected):
    proto = Protocol(SERVER, codec=codec, max_size=max_size)
    proto.receive_data(b"".join(make_frame(op, b"x" * size, fin=fin) for op, size, fin in frames))
    events = proto.events_received()
    if isinstance(expected, int):
        assert events == [b"x" * expected] and proto.error is None
    else:
        assert isinstance(proto.error, PayloadTooBig) and str(proto.error) == expected
        assert sent_close(proto.data_to_send(), by_client=False)[0] == 1009


def test_control_frames_are_not_held_to_a_small_fragment_limit(codec):
    """Pings may carry 125 bytes whatever the fragment limit."""
    proto = Protocol(SERVER, codec=codec, max_size=(1000, 10))
    proto.receive_data(make_frame(PING, b"p" * 125) + make_frame(BINARY, b"x" * 10))
    assert proto.events_received() == [Ping(b"p" * 125), b"x" * 10]


@run
async def test_connect_and_serve_take_the_pair():
    async def echo(websocket):
        async for message in websocket:
            await websocket.send(message)

    async with server(echo, max_size=(None, 1000), compression=None) as (_, uri):
        async with fastws.connect(uri, max_size=(1 << 20, 100), compression=None) as websocket:
            await websocket.send([b"a" * 1000, b"b" * 1000])  # two fragments within the server's limit
            with pytest.raises(fastws.ConnectionClosedError) as caught:
                await websocket.recv()  # its echo is one frame of 2000 bytes: over 100
            assert caught.value.sent.code == 1009


def test_bad_pair_refused_at_the_call():
    with pytest.raises(ValueError, match="max_size fragment limit must be >= 0"):
        fastws.connect("ws://localhost/", max_size=(10, -1))


@pytest.mark.parametrize(
    "max_size, reason",
    [
        # A 200 000-byte message of zeros deflates to a few hundred bytes: under
        # the fragment limit as it arrives, far over it once inflated.
        ((None, 1000), "frame of at least 1001 bytes exceeds max_size of 1000 bytes"),
        ((5000, 1000), "frame of at least 1001 bytes exceeds max_size of 1000 bytes"),
        ((500, 1000), "message of at least 501 bytes exceeds max_size of 500 bytes"),
    ],
)
@run
async def test_fragment_limit_bounds_the_inflated_size(max_size, reason):
    """As websockets does: a compressed frame is held to the fragment limit
    once inflated, not only as it arrives."""

    async def echo(websocket):
        async for message in websocket:
            await websocket.send(message)

    async with server(echo, max_size=max_size) as (_, uri):
        async with fastws.connect(uri) as websocket:
            assert websocket.protocol.extensions  # permessage-deflate negotiated
            await websocket.send(bytes(200_000))
            with pytest.raises(fastws.ConnectionClosedError) as caught:
                await websocket.recv()
    assert (caught.value.code, caught.value.reason) == (1009, reason)

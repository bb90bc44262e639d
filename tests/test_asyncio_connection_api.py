"""The connection's websockets-shaped API: recv(decode=), send(text=),
recv_streaming(), ping() returning the pong waiter, id and logger, the
(high, low) limits, the close reason echoed, and broadcast(text=,
raise_exceptions=)."""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid

import pytest
import websockets

import fastws
from fastws.exceptions import BroadcastError, ConcurrencyError
from fastws.limits import queue_limits, write_limits

from asyncio_helpers import listener_server, run, server


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


# (what is sent, decode, what recv() returns)
DECODE = [
    ("text", None, "text"),
    ("text", True, "text"),
    ("text", False, b"text"),
    ("é", False, "é".encode()),
    (b"bin", None, b"bin"),
    (b"bin", False, b"bin"),
    (b"bin", True, "bin"),
    ("", False, b""),
    (b"", True, ""),
]


@pytest.mark.parametrize("sent, decode, received", DECODE)
@run
async def test_recv_decode(sent, decode, received):
    async with server(echo) as (_, uri), fastws.connect(uri) as websocket:
        await websocket.send(sent)
        result = await websocket.recv(decode=decode)
        assert result == received and type(result) is type(received)


@run
async def test_recv_decode_true_of_binary_that_is_not_utf8():
    """As websockets: the connection fails with 1007."""
    async with server(echo) as (_, uri), fastws.connect(uri) as websocket:
        await websocket.send(b"ok\xff")
        with pytest.raises(fastws.ConnectionClosedError) as caught:
            await websocket.recv(decode=True)
        assert caught.value.sent.code == 1007
        assert caught.value.sent.reason == "invalid start byte at position 2"
        assert isinstance(caught.value.__cause__, UnicodeDecodeError)


# (message, text, what the echo server receives and sends back)
SEND_TEXT = [
    ("str", None, "str"),
    ("str", True, "str"),
    ("str", False, b"str"),
    (b"bytes", None, b"bytes"),
    (b"bytes", False, b"bytes"),
    (b"bytes", True, "bytes"),
    (bytearray("é", "utf-8"), True, "é"),
    (memoryview(b"view"), True, "view"),
    (["frag", "ments"], False, b"fragments"),
    ([b"frag", b"ments"], True, "fragments"),
    ([b"a", bytearray(b"b"), memoryview(b"c")], True, "abc"),
]


@pytest.mark.parametrize("message, text, received", SEND_TEXT)
@run
async def test_send_text(message, text, received):
    async with server(echo) as (_, uri), fastws.connect(uri) as websocket:
        await websocket.send(message, text=text)
        assert await websocket.recv() == received


@run
async def test_send_text_of_an_async_iterable():
    async def fragments():
        for fragment in (b"as", b"ync"):
            yield fragment

    async with server(echo) as (_, uri), fastws.connect(uri) as websocket:
        await websocket.send(fragments(), text=True)
        assert await websocket.recv() == "async"


@run
async def test_send_text_true_of_bytes_that_are_not_utf8_fails_the_connection():
    """The caller vouches for the UTF-8; the peer checks it (1007)."""
    async with server(echo) as (_, uri), fastws.connect(uri) as websocket:
        await websocket.send(b"\xff", text=True)
        with pytest.raises(fastws.ConnectionClosedError) as caught:
            await websocket.recv()
        assert caught.value.code == 1007


@run
async def test_send_text_keeps_refusing_what_is_not_a_message():
    async with server(echo) as (_, uri), fastws.connect(uri) as websocket:
        for text in (None, True, False):
            with pytest.raises(TypeError, match="not int"):
                await websocket.send(42, text=text)  # type: ignore[arg-type]


@run
async def test_recv_streaming_gives_the_message():
    async with server(echo) as (_, uri), fastws.connect(uri) as websocket:
        await websocket.send(["frag", "ment"])
        assert [f async for f in websocket.recv_streaming()] == ["fragment"]
        await websocket.send("text")
        assert [f async for f in websocket.recv_streaming(decode=False)] == [b"text"]


@run
async def test_id_and_logger():
    seen = {}

    async def handler(websocket):
        seen["server"] = websocket
        await websocket.recv()

    async with server(handler) as (_, uri), fastws.connect(uri) as websocket:
        await websocket.send("x")
        assert isinstance(websocket.id, uuid.UUID)
        assert websocket.logger.logger.name == "fastws.client"
        assert websocket.logger.extra == {"websocket": websocket}
    assert seen["server"].logger.logger.name == "fastws.server"
    assert seen["server"].id != websocket.id


@run
async def test_close_reason_is_echoed_to_a_websockets_client():
    """The issue's case: websockets' client closes with (4001, "bye") and
    reads the reason back from a fastws server."""
    async with server(echo) as (_, uri):
        async with websockets.connect(uri) as websocket:
            await websocket.close(4001, "bye")
        assert websocket.close_code == 4001
        assert websocket.close_reason == "bye"


@run
async def test_close_reason_is_echoed_to_a_fastws_client():
    async with server(echo) as (_, uri):
        async with fastws.connect(uri) as websocket:
            await websocket.close(4001, "bye")
        assert websocket.protocol.close_rcvd == fastws.Close(4001, "bye")


# --- limits ---------------------------------------------------------------------------------

LIMITS = [
    # (function, value, result or exception, message)
    (queue_limits, None, (None, None), None),
    (queue_limits, 16, (16, 4), None),
    (queue_limits, 1, (1, 0), None),
    (queue_limits, (10, 2), (10, 2), None),
    (queue_limits, (10, None), (10, 2), None),
    (queue_limits, (10, 10), (10, 10), None),
    (queue_limits, 0, ValueError, "max_queue must be >= 1 or None, got 0"),
    (queue_limits, (10, 11), ValueError, "low-water mark must be between 0 and 10, got 11"),
    (queue_limits, (10, -1), ValueError, "low-water mark must be between 0 and 10, got -1"),
    (queue_limits, (1, 2, 3), ValueError, r"max_queue must be an int or a \(high, low\) tuple"),
    (queue_limits, "16", TypeError, "max_queue high must be an int, got str"),
    (queue_limits, (16, 1.5), TypeError, "max_queue low must be an int, got float"),
    (write_limits, 32768, (32768, 8192), None),
    (write_limits, 0, (0, 0), None),
    (write_limits, (65536, 1024), (65536, 1024), None),
    (write_limits, -1, ValueError, "write_limit must be >= 0, got -1"),
    (write_limits, (100, 200), ValueError, "low-water mark must be between 0 and 100, got 200"),
    (write_limits, True, TypeError, "write_limit high must be an int, got bool"),
    (write_limits, None, TypeError, "write_limit high must be an int, got NoneType"),
    (write_limits, (None, 1), TypeError, "write_limit high must be an int, got NoneType"),
]


@pytest.mark.parametrize("function, value, expected, message", LIMITS)
def test_limits(function, value, expected, message):
    if isinstance(expected, tuple):
        assert function(value) == expected
    else:
        with pytest.raises(expected, match=message):
            function(value)


@run
async def test_write_limit_tuple_sets_the_transport_marks():
    async with server(echo, write_limit=(65536, 1000)) as (_, uri):
        async with fastws.connect(uri, write_limit=(4096, 100)) as websocket:
            assert websocket.transport.get_write_buffer_limits() == (100, 4096)
            assert (websocket.write_limit, websocket.write_limit_low) == (4096, 100)


@run
async def test_max_queue_low_water_mark_resumes_reading():
    """Reading stops at high and starts again once recv() drains to low."""
    release = asyncio.Event()

    async def burst(websocket):
        for i in range(10):
            await websocket.send(str(i))
        await release.wait()

    async with server(burst) as (_, uri):
        async with fastws.connect(uri, max_queue=(4, 2)) as websocket:
            while not websocket._reading_paused:  # noqa: ASYNC110 - no event tells it
                await asyncio.sleep(0.01)
            assert len(websocket._messages) >= 4
            received, states = [], []
            while websocket._reading_paused:
                left = len(websocket._messages) - 1
                received.append(await websocket.recv())  # no suspension: nothing read meanwhile
                states.append((left, websocket._reading_paused))
            # Paused while more than 2 were left; reading again at 2.
            assert states[-1] == (2, False)
            assert all(paused and left > 2 for left, paused in states[:-1])
            while len(received) < 10:
                received.append(await websocket.recv())
            assert received == [str(i) for i in range(10)]
            release.set()


# --- broadcast ------------------------------------------------------------------------------


async def collect(connections, count):
    received = []
    for websocket in connections:
        received.append([await websocket.recv() for _ in range(count)])
    return received


@run
async def test_broadcast_text_flag():
    clients = []
    server_side = []
    opened = asyncio.Event()

    async def handler(websocket):
        server_side.append(websocket)
        if len(server_side) == 2:
            opened.set()
        await websocket.wait_closed()

    async with server(handler) as (_, uri):
        clients = [await fastws.connect(uri) for _ in range(2)]
        await opened.wait()
        fastws.broadcast(server_side, "as binary", text=False)
        fastws.broadcast(server_side, b"as text", text=True)
        fastws.broadcast(server_side, "plain")
        assert await collect(clients, 3) == [[b"as binary", "as text", "plain"]] * 2
        for client in clients:
            await client.close()


@run
async def test_broadcast_raise_exceptions_collects_every_skipped_connection(caplog):
    server_side = []
    opened = asyncio.Event()

    async def handler(websocket):
        server_side.append(websocket)
        if len(server_side) == 3:
            opened.set()
        await websocket.wait_closed()

    async with server(handler) as (_, uri):
        clients = [await fastws.connect(uri) for _ in range(3)]
        await opened.wait()
        busy, slow, fine = server_side

        async def endless():
            yield "first fragment"
            await asyncio.Event().wait()

        sending = asyncio.ensure_future(busy.send(endless()))
        await asyncio.sleep(0)
        slow.write_limit = -1  # as if its buffer were above the limit
        with pytest.raises(Exception) as caught:
            fastws.broadcast(server_side, "hello", raise_exceptions=True)
        group = caught.value
        if sys.version_info >= (3, 11):
            assert type(group) is ExceptionGroup  # noqa: F821
        else:
            assert type(group) is BroadcastError
        assert group.message == "skipped broadcast"
        kinds = sorted(type(e).__name__ for e in group.exceptions)
        assert kinds == ["ConcurrencyError", "RuntimeError"]
        assert any(isinstance(e, ConcurrencyError) and "fragmented" in str(e) for e in group.exceptions)
        assert any("not reading fast enough" in str(e) for e in group.exceptions)
        assert await clients[2].recv() == "hello"  # the others still got it
        # Without raise_exceptions: logged on each connection's logger, not raised.
        with caplog.at_level(logging.WARNING, logger="fastws.server"):
            fastws.broadcast(server_side, "again")
        skipped = [r.getMessage() for r in caplog.records if r.name == "fastws.server"]
        assert len(skipped) == 2 and all(m.startswith("skipped broadcast: ") for m in skipped)
        assert await clients[2].recv() == "again"
        sending.cancel()
        slow.write_limit = 32768
        for client in clients:
            await client.close()


@run
async def test_broadcast_skips_closed_connections_silently():
    server_side = []
    opened = asyncio.Event()

    async def handler(websocket):
        server_side.append(websocket)
        opened.set()
        await websocket.wait_closed()

    async with server(handler) as (_, uri):
        client = await fastws.connect(uri)
        await opened.wait()
        await client.close()
        await server_side[0].wait_closed()
        fastws.broadcast(server_side, "nobody", raise_exceptions=True)  # nothing raised


@run
async def test_ping_nowait_from_a_listener():
    """A Listener callback cannot await ping(): ping_nowait() sends the ping at
    once and gives the same pong waiter."""
    waiters = []

    class Pinger(fastws.Listener):
        def on_message(self, connection, message):
            waiters.append(connection.ping_nowait(b"from on_message"))
            connection.send_nowait(message)

    async with listener_server(Pinger) as (_, uri), fastws.connect(uri) as websocket:
        await websocket.send("go")
        assert await websocket.recv() == "go"
        (waiter,) = waiters
        assert await asyncio.wait_for(waiter, 5) >= 0

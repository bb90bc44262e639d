"""Hostile peers against uvicorn with fastws's WebSocket backend: the attacks
of ``test_hostile_peers.py`` (which runs them against ``fastws.serve()``),
now against a Starlette echo app served by uvicorn.

What must hold, as there: every attack ends in a clear close code or HTTP
status, in bounded time and bounded memory, and never with a traceback in
any logger (a misbehaving peer is not a server bug). Each frame-level attack
also runs against ``fastws.serve()`` in the same test, which must give the
same close code and reason: the backend is fastws, whatever server runs it.

What the HTTP layer sees first (a garbage request line, a header flood, a
request that never ends) is uvicorn's own h11 (or httptools) parser, not the
WebSocket backend; those tests say what uvicorn gives.

``FASTWS_TEST_UVICORN_WS=websockets-sansio`` runs the file against uvicorn's
own backend instead (for comparison; not every limit holds there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import zlib
from typing import Any, Dict, List, Optional, Tuple

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from test_hostile_peers import (
    CLOSE_OP,
    PING_OP,
    PONG_OP,
    KiB,
    MiB,
    expect_close,
    frame,
    ping_flood,
    raw_socket,
    send_garbage,
    traced,
    until,
)

from asyncio_helpers import HANDSHAKE, raw_client, read_frame, run
from asyncio_helpers import server as fastws_server
from uvicorn_helpers import BACKENDS, uvicorn_logs, uvicorn_server  # noqa: F401 (the logs fixture)

BACKEND = os.environ.get("FASTWS_TEST_UVICORN_WS", "fastws")


# --- the victim: a Starlette echo app --------------------------------------------------


class Victim:
    """What the app saw: ``disconnects`` holds (code, reason) of each
    ``websocket.disconnect``; ``sent`` and ``max_buffer`` are for the flood."""

    def __init__(self) -> None:
        self.disconnects: List[Tuple[int, str]] = []
        self.sent = 0
        self.max_buffer = 0
        self.ended: Optional[asyncio.Future] = None
        self.server: Any = None


def echo_app(victim: Victim) -> Starlette:
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                victim.disconnects.append((message["code"], message.get("reason", "")))
                return
            try:
                if message.get("text") is not None:
                    await websocket.send_text(message["text"])
                else:
                    await websocket.send_bytes(message["bytes"])
            except WebSocketDisconnect:
                pass  # the peer is gone: the next receive() says how

    async def flood(websocket: WebSocket) -> None:
        """Sends 64 KiB messages until 100 MiB or the client goes away."""
        await websocket.accept()
        message = bytes(64 * KiB)
        try:
            for _ in range(100 * MiB // len(message)):
                await websocket.send_bytes(message)
                victim.sent += 1
                for connection in victim.server.state.connections:
                    victim.max_buffer = max(victim.max_buffer, connection.transport.get_write_buffer_size())
        except (WebSocketDisconnect, OSError) as exc:  # OSError: uvicorn's ClientDisconnected
            assert victim.ended is not None
            victim.ended.set_result(exc)

    async def count_until_disconnect(websocket: WebSocket) -> None:
        """Counts the messages received (in ``sent``), then records the disconnect."""
        try:
            while True:
                await websocket.receive_bytes()
                victim.sent += 1
        except WebSocketDisconnect as exc:
            victim.disconnects.append((exc.code, exc.reason))

    async def slow_accept(websocket: WebSocket) -> None:
        """Accepts after a second (an app checking credentials), then counts."""
        await asyncio.sleep(1.0)
        await websocket.accept()
        await count_until_disconnect(websocket)

    async def lazy(websocket: WebSocket) -> None:
        """Accepts, takes a second before its first receive(), then counts."""
        await websocket.accept()
        await asyncio.sleep(1.0)
        await count_until_disconnect(websocket)

    return Starlette(
        routes=[
            WebSocketRoute("/", echo),
            WebSocketRoute("/flood", flood),
            WebSocketRoute("/slow", slow_accept),
            WebSocketRoute("/lazy", lazy),
        ]
    )


def serve(victim: Victim, **config: Any) -> Any:
    """The echo app on uvicorn, logging left as it is (see ``logs``)."""
    config.setdefault("log_config", None)
    return uvicorn_server(echo_app(victim), ws=BACKENDS[BACKEND], **config)


def assert_no_traceback(caplog: pytest.LogCaptureFixture, allowed: Tuple[str, ...] = ()) -> None:
    """No traceback on any logger, nothing above INFO but the ``allowed``
    messages (uvicorn's HTTP layer warns of an invalid request)."""
    bad = [
        (r.name, r.levelname, r.getMessage())
        for r in caplog.records
        if r.exc_info or (r.levelno >= logging.WARNING and r.getMessage() not in allowed)
    ]
    assert bad == []


# --- frame-level attacks: the same close code as fastws.serve() --------------------------

ZERO_MASK = b"\0\0\0\0"


def unmasked(opcode: int, payload: bytes) -> bytes:
    return bytes([0x80 | opcode, len(payload)]) + payload


def with_bits(first_byte: int, payload: bytes = b"x") -> bytes:
    """A masked frame with its first byte as given (FIN, RSV bits, opcode)."""
    return bytes([first_byte, 0x80 | len(payload)]) + ZERO_MASK + payload


def deflate_bomb(size: int) -> bytes:
    """A compressed binary message (RSV1) that inflates to ``size`` zero bytes."""
    compressor = zlib.compressobj(wbits=-12)
    data = compressor.compress(bytes(size)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    payload = data[:-4]
    assert 125 < len(payload) < 1 << 16, len(payload)
    return bytes([0xC2, 0x80 | 126]) + len(payload).to_bytes(2, "big") + ZERO_MASK + payload


DEFLATE_HANDSHAKE = HANDSHAKE.replace(
    b"\r\n\r\n", b"\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
)

#: (attack sent after the handshake, max_size, expected close code); the
#: reason must be the one fastws.serve() gives.
FRAME_ATTACKS = [
    # lengths: announced sizes past max_size fail at the header, before any payload
    pytest.param(frame(2, length=MiB + 1) + b"payload starts here", MiB, 1009, id="length-over-max-size"),
    pytest.param(frame(2, length=(1 << 63) - 1) + b"payload", MiB, 1009, id="length-2**63-1"),
    pytest.param(frame(2, length=65535) + b"payload", 1000, 1009, id="16-bit-length-over-max-size"),
    pytest.param(frame(2, length=1 << 63) + b"payload", MiB, 1002, id="length-msb-set"),
    pytest.param(frame(2, length=(1 << 64) - 1), None, 1002, id="length-2**64-1-no-limit"),
    # a length shorter than the payload: the rest reads as a frame with RSV bits ('l' = 0x6C)
    pytest.param(frame(1, b"hello", length=2)[:8] + b"llo", MiB, 1002, id="lying-length-short"),
    # a message over max_size: in fragments, compressed
    pytest.param(
        frame(1, b"a", fin=False) + frame(0, b"b", fin=False) * 4096 + frame(0, b"x", fin=False) * 1000,
        4096,
        1009,
        id="fragments-over-max-size",
    ),
    pytest.param(frame(2, b"x" * 5000), 4096, 1009, id="frame-over-max-size"),
    # UTF-8
    pytest.param(frame(1, b"ok \xff"), MiB, 1007, id="invalid-utf8"),
    pytest.param(
        frame(1, b"ok \xc3", fin=False) + frame(0, b"(", fin=False), MiB, 1007, id="invalid-utf8-across-fragments"
    ),
    pytest.param(frame(1, b"ok \xf0\x90", fin=False) + frame(0, b"\x8d"), MiB, 1007, id="utf8-ends-mid-sequence"),
    pytest.param(frame(1, b"\xed\xa0\x80"), MiB, 1007, id="utf8-surrogate"),
    pytest.param(frame(CLOSE_OP, b"\x03\xe8\xff"), MiB, 1007, id="close-reason-invalid-utf8"),
    # control frames
    pytest.param(frame(PING_OP, b"a", fin=False), MiB, 1002, id="fragmented-ping"),
    pytest.param(frame(CLOSE_OP, b"\x03\xe8", fin=False), MiB, 1002, id="fragmented-close"),
    pytest.param(frame(PONG_OP, b"a", fin=False), MiB, 1002, id="fragmented-pong"),
    pytest.param(frame(PING_OP, b"p" * 126), MiB, 1002, id="ping-of-126-bytes"),
    pytest.param(frame(CLOSE_OP, b"\x03"), MiB, 1002, id="close-of-1-byte"),
    pytest.param(frame(CLOSE_OP, (1005).to_bytes(2, "big")), MiB, 1002, id="close-code-1005"),
    pytest.param(frame(CLOSE_OP, (999).to_bytes(2, "big")), MiB, 1002, id="close-code-999"),
    pytest.param(frame(CLOSE_OP, (2999).to_bytes(2, "big")), MiB, 1002, id="close-code-2999"),
    pytest.param(frame(CLOSE_OP, (5000).to_bytes(2, "big")), MiB, 1002, id="close-code-5000"),
    # masking, reserved bits and opcodes, fragmentation order
    pytest.param(unmasked(1, b"hi"), MiB, 1002, id="unmasked-text"),
    pytest.param(unmasked(PING_OP, b"hi"), MiB, 1002, id="unmasked-ping"),
    pytest.param(with_bits(0xC1), MiB, 1002, id="rsv1-not-negotiated"),
    pytest.param(with_bits(0xA1), MiB, 1002, id="rsv2"),
    pytest.param(with_bits(0x91), MiB, 1002, id="rsv3"),
    pytest.param(with_bits(0x83), MiB, 1002, id="opcode-3"),
    pytest.param(with_bits(0x87), MiB, 1002, id="opcode-7"),
    pytest.param(with_bits(0x8B), MiB, 1002, id="opcode-11"),
    pytest.param(with_bits(0x8F), MiB, 1002, id="opcode-15"),
    pytest.param(frame(0, b"x"), MiB, 1002, id="continuation-first"),
    pytest.param(frame(1, b"a", fin=False) + frame(1, b"b"), MiB, 1002, id="text-inside-a-fragmented-message"),
    pytest.param(
        frame(2, b"a", fin=False) + frame(2, b"b", fin=False), MiB, 1002, id="binary-inside-a-fragmented-message"
    ),
]


async def run_attack(uri: str, handshake: bytes, attack: bytes) -> Tuple[int, str, Dict[str, int]]:
    """Send ``attack`` after the handshake: (code, reason) of the server's close
    frame (after which it must close TCP), and the memory the attack took
    (the attack's bytes are built before tracing starts)."""
    reader, writer = await raw_client(uri, handshake)
    with traced() as memory:
        started = time.monotonic()
        writer.write(attack)
        code, reason = await expect_close(reader)
        elapsed = time.monotonic() - started
    writer.close()
    assert elapsed < 2, elapsed
    return code, reason, memory


@pytest.mark.parametrize("attack, max_size, code", FRAME_ATTACKS)
@run
async def test_frame_attack(logs: Any, attack: bytes, max_size: Optional[int], code: int) -> None:
    victim = Victim()
    async with fastws_server(echo_fastws, max_size=max_size, compression=None, close_timeout=1) as (_, uri):
        reference = await run_attack(uri, HANDSHAKE, attack)
    assert reference[0] == code, reference  # the table is right about fastws.serve()
    async with serve(victim, ws_max_size=max_size if max_size is not None else 1 << 62) as srv:
        got_code, got_reason, memory = await run_attack(srv.uri + "/", HANDSHAKE, attack)
        await until(lambda: not srv.state.connections)
        await until(lambda: bool(victim.disconnects))
    assert (got_code, got_reason) == reference[:2]
    # Nothing near an announced or a message size was allocated; a flood of
    # tiny frames costs per read what it costs fastws.serve().
    assert memory["peak"] < max(512 * KiB, 2 * reference[2]["peak"]), (memory, reference[2])
    # The app heard of it, with the code sent to the peer.
    assert [c for c, _ in victim.disconnects] == [code]
    assert_no_traceback(logs)
    if BACKEND == "fastws":
        # One line at INFO on uvicorn's logger names the failure.
        lines = [r.getMessage() for r in logs.records if r.name == "uvicorn.error"]
        failed = [line for line in lines if " failed with " in line]
        assert len(failed) == 1 and f"failed with {code}: " in failed[0], failed


async def echo_fastws(websocket: Any) -> None:
    async for message in websocket:
        await websocket.send(message)


@run
async def test_deflate_bomb_fails_with_1009_before_inflating_it(logs: Any) -> None:
    """A compressed message of 2 KiB that inflates to 16 MiB, with max_size 1
    MiB: 1009 once the inflated size passes max_size, without inflating the rest."""
    bomb = deflate_bomb(16 * MiB)
    async with fastws_server(echo_fastws, max_size=MiB, close_timeout=1) as (_, uri):
        reference = await run_attack(uri, DEFLATE_HANDSHAKE, bomb)
    assert reference[0] == 1009, reference
    victim = Victim()
    async with serve(victim, ws_max_size=MiB) as srv:
        got_code, got_reason, memory = await run_attack(srv.uri + "/", DEFLATE_HANDSHAKE, bomb)
        await until(lambda: not srv.state.connections)
    assert (got_code, got_reason) == reference[:2]
    assert memory["peak"] < 4 * MiB, memory  # max_size and zlib's buffers, not 16 MiB
    assert_no_traceback(logs)


@run
async def test_deflate_is_negotiated_for_the_bomb(logs: Any) -> None:
    """The bomb test is only a test if the server took the offer: it does."""
    async with serve(Victim()) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(DEFLATE_HANDSHAKE)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        writer.close()
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"permessage-deflate" in head.lower()
    assert_no_traceback(logs)


@run
async def test_truncated_frame_then_eof(logs: Any) -> None:
    """A frame that announces 100 bytes, 10 sent, then the client half-closes:
    the server closes TCP without a close frame (nothing to say to a peer
    that is gone), and the app hears of an abnormal end: 1006 (uvicorn's
    own backends say 1005, as for any end without a close frame)."""
    victim = Victim()
    async with serve(victim) as srv:
        reader, writer = await raw_client(srv.uri + "/")
        writer.write(frame(2, length=100) + b"0123456789")
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        await until(lambda: not srv.state.connections)
        await until(lambda: bool(victim.disconnects))
    assert victim.disconnects == [(1006, "")]
    assert_no_traceback(logs)


# --- the HTTP layer: uvicorn's parser, then the backend's handshake checks ---------------

INVALID = "Invalid HTTP request received."


GARBAGE = {
    "header-flood": b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 100_000,
    "header-bytes": b"GET / HTTP/1.1\r\n" + (b"X-A: " + b"b" * 8000 + b"\r\n") * 100,
    "endless-line": b"GET /" + b"a" * 1_000_000,
    "binary": bytes(range(256)) * 4000,
    "tls-client-hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(500),
}


@pytest.mark.parametrize(
    "http, attack",
    [("h11", name) for name in GARBAGE] + [("httptools", "binary"), ("httptools", "tls-client-hello")],
)
@run
async def test_garbage_instead_of_a_handshake(logs: Any, http: str, attack: str) -> None:
    """uvicorn's HTTP parser answers 400 (fastws.serve() says 431 or 414 for
    the first three). h11 gives up once the head passes its 16 KiB
    ``h11_max_incomplete_event_size``. httptools has no such limit: a header
    flood or an endless request line is read on without an answer, and
    uvicorn keeps every header line it parses (about 10 MiB for the 800 KB
    header flood), so those two are not run on httptools here."""
    async with serve(Victim(), http=http) as srv:
        response, memory = await send_garbage(srv.port, GARBAGE[attack])
        if response:  # a reset can overtake it
            assert response.startswith(b"HTTP/1.1 400 "), response[:100]
        assert memory["peak"] < 512 * KiB, memory  # the attack is never buffered whole
        await until(lambda: not srv.state.connections)
    assert_no_traceback(logs, allowed=(INVALID,))


def upgrade(request_line: bytes = b"GET / HTTP/1.1", drop: bytes = b"", add: bytes = b"") -> bytes:
    """The handshake with its request line replaced, a header dropped, or one added."""
    lines = [request_line] + [
        line for line in HANDSHAKE.split(b"\r\n")[1:-2] if not (drop and line.lower().startswith(drop.lower()))
    ]
    return b"\r\n".join(lines) + b"\r\n" + add + b"\r\n"


@pytest.mark.parametrize(
    "request_bytes",
    [
        upgrade(b"POST / HTTP/1.1", add=b"Content-Length: 0\r\n"),
        upgrade(drop=b"Sec-WebSocket-Key:"),
        upgrade(drop=b"Sec-WebSocket-Version:"),
        upgrade(drop=b"Sec-WebSocket-Key:", add=b"Sec-WebSocket-Key: c2hvcnQ=\r\n"),
        upgrade(drop=b"Sec-WebSocket-Version:", add=b"Sec-WebSocket-Version: 8\r\n"),
        upgrade(drop=b"Sec-WebSocket-Key:", add=b"Sec-WebSocket-Key: a\r\nSec-WebSocket-Key: b\r\n"),
        upgrade(add=b"X-A: b\r\n" * 200),  # complete, so uvicorn's parser hands it over
    ],
    ids=["post", "no-key", "no-version", "short-key", "version-8", "two-keys", "200-headers"],
)
@run
async def test_invalid_upgrade_request_gets_the_status_fastws_gives(logs: Any, request_bytes: bytes) -> None:
    """Requests uvicorn hands to the backend as upgrades (Upgrade: websocket,
    Connection: Upgrade) but that are not valid WebSocket handshakes: the
    backend answers as fastws.serve() does, and never runs the app."""

    async def status_of(port: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request_bytes)
        response = await asyncio.wait_for(reader.read(), 5)  # the response, then EOF
        writer.close()
        return response.split(b"\r\n", 1)[0]

    async with fastws_server(echo_fastws) as (srv, uri):
        expected = await status_of(srv.sockets[0].getsockname()[1])
    assert expected.startswith(b"HTTP/1.1 4"), expected
    victim = Victim()
    async with serve(victim) as srv:
        got = await status_of(srv.port)
        await until(lambda: not srv.state.connections)
    assert got.split(b" ")[1] == expected.split(b" ")[1], (got, expected)
    assert victim.disconnects == []
    assert_no_traceback(logs)


@pytest.mark.parametrize("http", ["h11", "httptools"])
@run
async def test_slowloris_through_uvicorns_http_layer(logs: Any, http: str) -> None:
    """20 clients drip a handshake one byte every 20 ms and never finish it.

    uvicorn's HTTP layer has no timeout for a request head that is still
    arriving (``timeout_keep_alive`` only runs between requests), and the
    WebSocket backend only sees the request once it is whole: nothing cuts
    these clients, unlike fastws.serve() (``open_timeout``). They cost little
    (memory below) and shutting down ends them all at once."""
    request = HANDSHAKE[:-2]  # never the final CRLF
    loop = asyncio.get_running_loop()
    async with serve(Victim(), http=http) as srv:
        pairs = [await asyncio.open_connection("127.0.0.1", srv.port) for _ in range(20)]
        await until(lambda: len(srv.state.connections) == 20)

        async def drip(writer: asyncio.StreamWriter) -> None:
            for byte in request:
                writer.write(bytes([byte]))
                await asyncio.sleep(0.02)

        with traced() as memory:
            started = loop.time()
            drippers = [asyncio.ensure_future(drip(w)) for _, w in pairs]
            await asyncio.sleep(1.0)  # past any handshake timeout (fastws.serve's test uses 0.3 s)
            assert all(not r.at_eof() for r, _ in pairs)  # no one was cut
            assert len(srv.state.connections) == 20
        assert memory["peak"] < 1 * MiB, memory
        for task in drippers:
            task.cancel()
        await asyncio.gather(*drippers, return_exceptions=True)
        elapsed = loop.time() - started
        assert elapsed < 3
    # Shutdown closed them: each reads EOF (or a reset), nothing else.
    for reader, writer in pairs:
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    assert_no_traceback(logs)


@run
async def test_silent_client_is_cut_by_keepalive(logs: Any) -> None:
    """A client that completes the handshake, then never answers a ping: failed
    with 1011 once ws_ping_timeout passes after the first ping; the app gets
    the same code (uvicorn's own backend gives it 1005)."""
    victim = Victim()
    async with serve(victim, ws_ping_interval=0.2, ws_ping_timeout=0.2) as srv:
        reader, writer = await raw_client(srv.uri + "/")
        started = time.monotonic()
        opcode, _, payload = await asyncio.wait_for(read_frame(reader), 5)
        assert opcode == PING_OP
        code, _ = await expect_close(reader)
        assert code == 1011
        assert 0.3 < time.monotonic() - started < 2
        writer.close()
        await until(lambda: not srv.state.connections)
        await until(lambda: bool(victim.disconnects))
    assert victim.disconnects == [(1011, "keepalive ping timeout")]
    assert_no_traceback(logs)


# --- floods ---------------------------------------------------------------------------------


@run
async def test_flood_to_an_app_that_does_not_receive_stops_at_ws_max_queue(logs: Any) -> None:
    """20 MB of 100 KB messages to an app that does not call receive() for a
    second: the server stops reading once ws_max_queue messages wait, so it
    holds about ws_max_queue messages; then every message arrives."""
    loop = asyncio.get_running_loop()
    size, count, max_queue = 100_000, 200, 16
    attack = frame(2, bytes(size)) * count
    victim = Victim()
    async with serve(victim, ws_max_queue=max_queue) as srv:
        sock = await raw_socket(srv.uri, HANDSHAKE.replace(b"GET / ", b"GET /lazy "))
        with traced() as memory:
            sender = asyncio.ensure_future(loop.sock_sendall(sock, attack))
            await asyncio.sleep(0.7)  # the app is still asleep
            assert not sender.done()  # the server stopped reading; the kernel buffers are full
        assert memory["peak"] < max_queue * size + 1 * MiB, memory
        await asyncio.wait_for(sender, 10)  # the app reads: the rest goes through
        await until(lambda: victim.sent == count)
        sock.close()
        await until(lambda: bool(victim.disconnects))
    assert_no_traceback(logs)


@run
async def test_frames_before_the_app_accepts_are_not_buffered_without_bound(logs: Any) -> None:
    """A client sends its request, then 20 MB of frames without waiting for
    the 101 (RFC 6455 4.1 says it must wait) while the app takes a second to
    accept. The server must stop reading (or fail the connection) rather
    than hold all of it: uvicorn's websockets-sansio backend stops reading
    and delivers every message once the app accepts."""
    loop = asyncio.get_running_loop()
    attack = frame(2, bytes(1000)) * 20_000
    victim = Victim()
    async with serve(victim) as srv:
        sock = socket.socket()
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", srv.port))
        await loop.sock_sendall(sock, HANDSHAKE.replace(b"GET / ", b"GET /slow "))
        await asyncio.sleep(0.05)  # the request alone first: uvicorn's HTTP layer drops what follows it
        with traced() as memory:
            sender = asyncio.ensure_future(loop.sock_sendall(sock, attack))
            await asyncio.sleep(0.7)  # the app has not accepted yet
        assert memory["peak"] < 4 * MiB, memory
        sender.cancel()
        sock.close()
        await until(lambda: bool(victim.disconnects))
    assert_no_traceback(logs)



@pytest.mark.parametrize("count", [20_000, pytest.param(100_000, marks=pytest.mark.slow)])
@run
async def test_ping_flood_from_a_reading_client(logs: Any, count: int) -> None:
    """Pongs come in order (coalesced while the write buffer is full, as
    fastws.serve() does), the last ping is always answered, memory does not
    grow with the number of pings, and the connection still works."""
    async with serve(Victim()) as srv:
        pongs, elapsed, memory = await ping_flood(srv.uri + "/", count)
        assert 1 <= pongs <= count
        assert elapsed < 15, elapsed
        assert memory["peak"] < 16 * MiB, memory["peak"]
        assert memory["current"] < 256 * KiB, memory["current"]
        await until(lambda: not srv.state.connections)
    assert_no_traceback(logs)


@run
async def test_ping_flood_from_a_client_that_never_reads_pongs(logs: Any) -> None:
    """13 MB of pings from a client that reads nothing: the pongs do not pile
    up in the server (while its write buffer is full it keeps one pong, for
    the most recent ping, as fastws.serve() does)."""
    loop = asyncio.get_running_loop()
    attack = frame(PING_OP, b"p" * 125) * 100_000
    async with serve(Victim()) as srv:
        sock = await raw_socket(srv.uri + "/")
        (connection,) = srv.state.connections
        sender = asyncio.ensure_future(loop.sock_sendall(sock, attack))
        await asyncio.wait([sender], timeout=2)
        buffered = connection.transport.get_write_buffer_size()
        # A write limit (64 KiB) plus the pongs for one read (256 KiB of pings) at most.
        assert buffered <= 64 * KiB + 300 * KiB, buffered
        sender.cancel()
        sock.close()
        await until(lambda: not srv.state.connections)
    assert_no_traceback(logs)


@pytest.mark.parametrize("payload, count", [(b"x", 16 * KiB - 1), (b"", 100_000)], ids=["1-byte", "empty"])
@run
async def test_fragment_flood_memory_is_bounded_by_max_size(logs: Any, payload: bytes, count: int) -> None:
    """Tiny fragments up to max_size, or empty ones without end: what the
    unfinished message holds grows with its size, not its fragment count."""
    max_size = 16 * KiB
    loop = asyncio.get_running_loop()
    attack = frame(1, b"a", fin=False) + frame(0, payload, fin=False) * count
    async with serve(Victim(), ws_max_size=max_size) as srv:
        sock = await raw_socket(srv.uri + "/")
        with traced() as memory:
            await loop.sock_sendall(sock, attack)
            await loop.sock_sendall(sock, frame(PING_OP, b"sync"))
            buffer = bytearray(64)
            n = await asyncio.wait_for(loop.sock_recv_into(sock, buffer), 10)
            assert bytes(buffer[:n]) == b"\x8a\x04sync"  # every fragment was read
        assert memory["current"] < 4 * max_size + 64 * KiB, memory["current"]
        assert memory["peak"] < 16 * MiB, memory["peak"]
        sock.close()
        await until(lambda: not srv.state.connections)
    assert_no_traceback(logs)


@run
async def test_app_send_waits_while_a_client_never_reads(logs: Any) -> None:
    """The app sends 100 MiB to a client that never reads: its send() waits
    (uvicorn's transport never holds more than the backend's write limit plus
    a frame), memory stays small, and once the client goes away the app's
    send() fails at once instead of writing on."""
    victim = Victim()
    victim.ended = asyncio.get_running_loop().create_future()
    size = 64 * KiB
    async with serve(victim) as srv:
        victim.server = srv
        reader, writer = await raw_client(srv.uri, HANDSHAKE.replace(b"GET / ", b"GET /flood "))
        writer.transport.pause_reading()
        with traced() as memory:
            sent = -1
            while sent != victim.sent:  # until the app is stuck in send()
                sent = victim.sent
                await asyncio.sleep(0.1)
            (connection,) = srv.state.connections
            buffered = connection.transport.get_write_buffer_size()
        assert victim.sent * size < 20 * MiB, victim.sent  # kernel buffers took some; the rest waits
        frame_size = size + 10
        assert victim.max_buffer <= 64 * KiB + frame_size, victim.max_buffer
        assert buffered <= 64 * KiB + frame_size, buffered
        assert memory["peak"] < 64 * KiB + 2 * frame_size + 256 * KiB, memory["peak"]
        started = time.monotonic()
        writer.transport.abort()
        await asyncio.wait_for(victim.ended, 5)
        assert time.monotonic() - started < 2
    assert_no_traceback(logs)


@pytest.mark.slow
@run
async def test_shutdown_with_a_client_that_never_reads(logs: Any) -> None:
    """uvicorn's shutdown waits for every connection to close (with no
    ``timeout_graceful_shutdown``, its default, for as long as it takes). The
    app is stuck sending to a client that never reads, so the server's close
    frame (1012) sits behind a full buffer: the backend aborts the connection
    after its close timeout (10 s), and the shutdown ends. (uvicorn's own
    backend waits until the client goes.)"""
    victim = Victim()
    victim.ended = asyncio.get_running_loop().create_future()
    async with serve(victim, timeout_graceful_shutdown=None) as srv:
        victim.server = srv
        reader, writer = await raw_client(srv.uri, HANDSHAKE.replace(b"GET / ", b"GET /flood "))
        writer.transport.pause_reading()
        sent = -1
        while sent != victim.sent:  # until the app is stuck in send()
            sent = victim.sent
            await asyncio.sleep(0.1)
        started = time.monotonic()
        srv.server.should_exit = True
        await until(lambda: not srv.state.connections and not srv.state.tasks, timeout=15)
        elapsed = time.monotonic() - started
        writer.transport.abort()
    assert 9 < elapsed < 12, elapsed
    assert isinstance(victim.ended.result(), (WebSocketDisconnect, OSError))
    assert_no_traceback(logs)

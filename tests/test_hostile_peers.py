"""Hostile peers: every attack gets a clear close code, HTTP status or exception,
one log line at INFO on the ``fastws`` logger (never a traceback: a misbehaving
peer is not a server bug), a bounded time and bounded memory.

The attacker is a raw TCP (or TLS) client against a real ``fastws.serve()``
server, or a raw server against ``fastws.connect()``. Memory is measured with
tracemalloc (peak of what was allocated during the attack); attack payloads are
built before tracing starts and sent with ``loop.sock_sendall`` (no copy), so
the peak is the victim's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
import tracemalloc

import pytest

import fastws
from fastws import CloseCode, ConnectionClosedError, ConnectionClosedOK
from fastws.handshake import accept_key

from asyncio_helpers import HANDSHAKE, port_of, raw_client, read_frame, run
from asyncio_helpers import server as _server

KiB, MiB = 1024, 1024 * 1024
CLOSE_OP, PING_OP, PONG_OP = 8, 9, 10


# --- helpers ----------------------------------------------------------------------------


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, length=None) -> bytes:
    """A masked client frame with a zero mask key (payload sent as is); ``length``
    overrides the announced payload length (for lying headers)."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        head = bytes([b0, 0x80 | n])
    elif n < 1 << 16:
        head = bytes([b0, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


def server(handler, **options):
    """The shared helper with a short close_timeout: a test that fails with an
    attacker's socket still open ends in a second, not in ten."""
    options.setdefault("close_timeout", 1)
    return _server(handler, **options)


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


async def until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def expect_close(reader, timeout: float = 5.0):
    """Skip data frames up to the server's close frame: ``(code, reason)``; then
    the server must close TCP."""
    while True:
        opcode, _, payload = await asyncio.wait_for(read_frame(reader), timeout)
        if opcode == CLOSE_OP:
            break
    assert await asyncio.wait_for(reader.read(), timeout) == b""
    return fastws.parse_close(payload)


@contextlib.contextmanager
def traced():
    """``peak``: bytes allocated at the worst moment of the block; ``current``:
    still allocated at its end."""
    result = {}
    tracemalloc.start()
    try:
        yield result
    finally:
        result["current"], result["peak"] = tracemalloc.get_traced_memory()
        tracemalloc.stop()


@pytest.fixture
def log(caplog):
    caplog.set_level(logging.INFO)
    return caplog


def fastws_lines(caplog, level=logging.INFO):
    return [r.getMessage() for r in caplog.records if r.name.startswith("fastws") and r.levelno == level]


def assert_no_traceback(caplog):
    """Peer misbehaviour: nothing above INFO, on any logger, and no traceback."""
    bad = [
        (r.name, r.levelname, r.getMessage())
        for r in caplog.records
        if r.exc_info or r.levelno >= logging.WARNING
    ]
    assert bad == []


def assert_failure_logged(caplog, code: int, text: str):
    lines = fastws_lines(caplog)
    assert any(
        line.startswith("failed connection from ('127.0.0.1', ") and f" with {code}: " in line and text in line
        for line in lines
    ), lines
    assert_no_traceback(caplog)


async def accept(reader) -> bytes:
    """For a raw server: read the client's request, return a valid 101 response."""
    head = await reader.readuntil(b"\r\n\r\n")
    (key,) = [
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    ]
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key.decode()).encode() + b"\r\n\r\n"
    )


async def raw_socket(uri: str, handshake: bytes = HANDSHAKE) -> socket.socket:
    """A non-blocking socket that completed the handshake (for loop.sock_*)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port_of(uri)))
    await loop.sock_sendall(sock, handshake)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await loop.sock_recv(sock, 1)  # byte by byte: read nothing past the head
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def send_garbage(port: int, attack: bytes) -> tuple:
    """Send ``attack`` to the server on ``port`` instead of a handshake and read
    until it closes, in under 3 s: (the response, the memory the exchange took
    as :func:`traced` gives it)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    with traced() as memory:
        started = time.monotonic()
        sender = asyncio.ensure_future(loop.sock_sendall(sock, attack))
        response = b""
        with contextlib.suppress(ConnectionResetError):
            # The server closes with unread attack bytes: the kernel may send
            # a reset, which can overtake the response.
            while True:
                chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), 5)
                if not chunk:
                    break
                response += chunk
        assert time.monotonic() - started < 3
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await sender
    sock.close()
    return response, memory


async def ping_flood(uri: str, count: int) -> tuple:
    """Open a connection to ``uri``, send ``count`` pings numbered ``b"%06d"``
    while reading the pongs until the last one's (each intact and in order,
    none twice, nothing past them), then check that a message still echoes and
    close: (how many pongs, the seconds the flood took, the memory it took as
    :func:`traced` gives it; the pings are built before tracing starts)."""
    loop = asyncio.get_running_loop()
    attack = b"".join(frame(PING_OP, b"%06d" % i) for i in range(count))
    pong_size = 8  # 0x8A, length 6, six digits
    sock = await raw_socket(uri)
    buffer = bytearray(256 * KiB)
    with traced() as memory:
        started = time.monotonic()
        sender = asyncio.ensure_future(loop.sock_sendall(sock, attack))
        received, pongs, last = b"", 0, -1
        while last < count - 1:
            n = await asyncio.wait_for(loop.sock_recv_into(sock, buffer), 5)
            assert n, "server closed during the ping flood"
            received += bytes(buffer[:n])
            whole = len(received) - len(received) % pong_size
            for i in range(0, whole, pong_size):
                pong = received[i : i + pong_size]
                assert pong[:2] == bytes([0x80 | PONG_OP, 6]), pong  # pongs, intact
                seq = int(pong[2:])
                assert seq > last, (seq, last)  # in order, none twice
                last = seq
                pongs += 1
            received = received[whole:]
        await sender
        elapsed = time.monotonic() - started
    assert received == b""
    # Still open and in order.
    await loop.sock_sendall(sock, frame(1, b"after"))
    n = await asyncio.wait_for(loop.sock_recv_into(sock, buffer), 5)
    assert bytes(buffer[:n]) == b"\x81\x05after"
    sock.close()
    return pongs, elapsed, memory


# --- length headers announcing huge frames --------------------------------------------


@pytest.mark.parametrize(
    "length, max_size, code",
    [
        (MiB + 1, MiB, 1009),
        (1 << 32, MiB, 1009),
        ((1 << 63) - 1, MiB, 1009),
        ((1 << 63) - 1, None, None),  # no limit: waits for the payload, allocates nothing
        (65535, 1000, 1009),  # the 16-bit length form
        (1 << 63, MiB, 1002),  # most significant bit set: invalid (RFC 6455 5.2)
        ((1 << 64) - 1, None, 1002),
    ],
)
@run
async def test_huge_length_header(log, length, max_size, code):
    async with server(echo, max_size=max_size, compression=None) as (srv, uri):
        reader, writer = await raw_client(uri)
        head = frame(2, length=length)  # header and mask key, no payload
        with traced() as memory:
            started = time.monotonic()
            writer.write(head + b"payload starts here")
            if code is None:
                await asyncio.sleep(0.2)
                (connection,) = srv.all_connections
                assert connection.state is fastws.State.OPEN  # waiting for 2**63 bytes
            else:
                got, reason = await expect_close(reader)
                assert got == code, reason
                assert time.monotonic() - started < 2
        # Nothing near the announced size (>= 1 MiB) was allocated; the peak is
        # mostly the test's own 256 KiB socket reads.
        assert memory["peak"] < 512 * KiB
        writer.transport.abort()
        await until(lambda: not srv.all_connections)
    if code == 1009:
        assert_failure_logged(log, 1009, "exceeds max_size")
    elif code == 1002:
        assert_failure_logged(log, 1002, "")
    else:
        assert_no_traceback(log)


@run
async def test_hostile_server_announces_a_huge_frame(log):
    """The client side: a server whose first frame claims 2**63-1 bytes."""

    async def liar(reader, writer):
        writer.write(
            await accept(reader)
            + bytes([0x82, 127]) + ((1 << 63) - 1).to_bytes(8, "big")
        )
        await reader.read(100)  # the client's close frame; then close TCP as a server does
        writer.close()

    srv = await asyncio.start_server(liar, "127.0.0.1", 0)
    async with srv:
        port = srv.sockets[0].getsockname()[1]
        websocket = await fastws.connect(f"ws://127.0.0.1:{port}/", ping_interval=None, close_timeout=1)
        with traced() as memory:
            with pytest.raises(ConnectionClosedError):
                await websocket.recv()
        assert websocket.protocol.close_sent.code == CloseCode.MESSAGE_TOO_BIG
        # Half of max_size (1 MiB): nothing sized by the header was allocated.
        # (The rest is the event loop and the raw server's own reads.)
        assert memory["peak"] < 512 * KiB
        await asyncio.wait_for(websocket.wait_closed(), 5)
    assert_no_traceback(log)


# --- a handshake that never finishes, garbage instead of a handshake ------------------


@run
async def test_slowloris_many_dripping_clients_are_all_cut_at_open_timeout(log):
    """50 clients drip one byte of a request every 20 ms: the timer runs from
    the TCP accept, not from the last byte, so all are cut at open_timeout."""
    request = HANDSHAKE[:-2]  # never the final CRLF

    async def drip(reader, writer):
        for byte in request:
            writer.write(bytes([byte]))
            try:
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.sleep(0.02)
            if reader.at_eof() or writer.transport.is_closing():
                break
        try:
            return await reader.read()
        except ConnectionResetError:  # the server aborts: no response, a reset
            return b""

    async with server(echo, open_timeout=0.3) as (srv, uri):
        started = time.monotonic()
        pairs = [await asyncio.open_connection("127.0.0.1", port_of(uri)) for _ in range(50)]
        await until(lambda: len(srv.all_connections) == 50)
        answers = await asyncio.gather(*(drip(r, w) for r, w in pairs))
        elapsed = time.monotonic() - started
        assert answers == [b""] * 50  # hung up on, no response
        # 0.3 s, not the ~4 s the full request takes to drip.
        assert elapsed < 2.5, elapsed
        await until(lambda: not srv.all_connections)
        for _, writer in pairs:
            writer.close()
    timeouts = [line for line in fastws_lines(log) if line.startswith("opening handshake from ('127.0.0.1', ")]
    assert len(timeouts) == 50 and all(line.endswith(" timed out") for line in timeouts)
    assert_no_traceback(log)


@pytest.mark.parametrize(
    "attack, status, text",
    [
        # endless header lines: 431 once the head passes its limit
        (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 100_000, 431, "more than 128 headers"),
        # few but long header lines: 431 once the head passes 64 KiB
        (b"GET / HTTP/1.1\r\n" + (b"X-A: " + b"b" * 8000 + b"\r\n") * 100, 431, "headers exceed 65536 bytes"),
        # one endless line, no CRLF ever
        (b"GET /" + b"a" * 1_000_000, 414, ""),
        (bytes(range(256)) * 4000, 400, ""),  # binary garbage
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(500), 400, ""),  # a TLS ClientHello
        (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", 405, ""),
        (b"GET / HTTP/1.0\r\nHost: x\r\n\r\n", 400, ""),
    ],
    ids=["header-flood", "header-bytes", "endless-line", "binary", "tls-client-hello", "post", "http10"],
)
@run
async def test_garbage_instead_of_a_handshake(log, attack, status, text):
    async with server(echo) as (srv, uri):
        response, memory = await send_garbage(port_of(uri), attack)
        if response:
            assert response.startswith(b"HTTP/1.1 %d " % status), response[:100]
        assert memory["peak"] < 512 * KiB  # the server never buffers the whole attack
        await until(lambda: not srv.all_connections)
    refused = [line for line in fastws_lines(log) if line.startswith("refused opening handshake from ('127.0.0.1', ")]
    assert len(refused) == 1 and text in refused[0], refused
    assert_no_traceback(log)


@pytest.mark.parametrize(
    "answer, error, match",
    [
        (b"\x00\xffgarbage\r\n\r\n", fastws.InvalidMessage, "invalid status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", fastws.InvalidStatus, "200"),
        (
            b"HTTP/1.1 101 Switching Protocols\r\n" + b"X-A: b\r\n" * 100_000,
            fastws.InvalidMessage,
            "more than 128 headers",
        ),
        ((b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Accept: d3Jvbmcgd3Jvbmcgd3Jvbmc=\r\n\r\n"), fastws.InvalidHandshake, "Accept"),
    ],
    ids=["garbage", "http-200", "header-flood", "wrong-accept"],
)
@run
async def test_hostile_server_answers_garbage(log, answer, error, match):
    async def liar(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
            await reader.read()
        writer.close()

    srv = await asyncio.start_server(liar, "127.0.0.1", 0)
    async with srv:
        port = srv.sockets[0].getsockname()[1]
        started = time.monotonic()
        with traced() as memory:
            with pytest.raises(error, match=match):
                await fastws.connect(f"ws://127.0.0.1:{port}/", open_timeout=5)
        assert time.monotonic() - started < 3
        assert memory["peak"] < 1 * MiB
    assert_no_traceback(log)


# --- TLS versus plain text --------------------------------------------------------------


@pytest.fixture(scope="module")
def tls():
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


@run
async def test_plain_text_upgrade_to_a_tls_server(log, tls):
    server_ctx, client_ctx = tls
    async with fastws.serve(echo, "127.0.0.1", 0, ssl=server_ctx, ping_interval=None) as srv:
        port = srv.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        writer.write(HANDSHAKE)
        answer = await asyncio.wait_for(reader.read(), 5)
        assert time.monotonic() - started < 3
        assert not answer.startswith(b"HTTP")  # at most a TLS alert, then EOF
        writer.close()
        assert not srv.all_connections  # the TLS layer refused it before any WebSocket
        # The server still serves real TLS clients.
        async with fastws.connect(f"wss://localhost:{port}/", ssl=client_ctx) as websocket:
            await websocket.send("still fine")
            assert await websocket.recv() == "still fine"
    assert_no_traceback(log)


@run
async def test_tls_client_hello_to_a_plain_server(log, tls):
    _, client_ctx = tls
    async with server(echo) as (srv, uri):
        port = port_of(uri)
        started = time.monotonic()
        # The server reads the ClientHello as a bad request line and answers 400
        # in plain text, which the client's TLS layer cannot parse.
        with pytest.raises(ssl.SSLError):
            await fastws.connect(f"wss://localhost:{port}/", ssl=client_ctx, open_timeout=5)
        assert time.monotonic() - started < 3
        await until(lambda: not srv.all_connections)
    refused = [line for line in fastws_lines(log) if line.startswith("refused opening handshake from ('127.0.0.1', ")]
    assert len(refused) == 1, fastws_lines(log)
    assert_no_traceback(log)


# --- floods ---------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [20_000, pytest.param(100_000, marks=pytest.mark.slow)])
@run
async def test_ping_flood_from_a_reading_client(log, count):
    """A flood of pings: answered in order, the last one always, the connection
    still works, and the server's memory does not grow with the number of
    pings. While the flood keeps the server's write buffer over write_limit,
    pongs are coalesced into one for the most recent ping (RFC 6455 section
    5.5.3), so a client that reads more slowly than it pings gets fewer pongs."""
    async with server(echo, compression=None) as (srv, uri):
        pongs, elapsed, memory = await ping_flood(uri, count)
        assert 1 <= pongs <= count
        assert elapsed < 15, elapsed
        # Per read of the 256 KiB buffer (23 000 pings) the server makes its
        # frames, events and pongs, then frees them: the peak depends on the
        # read size (5 to 8 MiB), not on the number of pings, and nothing is
        # retained (100 000 kept Ping events would be 10 MiB).
        assert memory["peak"] < 16 * MiB, memory["peak"]
        assert memory["current"] < 64 * KiB, memory["current"]
        await until(lambda: not srv.all_connections)
    assert_no_traceback(log)


@run
async def test_ping_flood_from_a_client_that_never_reads_pongs(log):
    """The attacker pings and never reads: the pongs must not pile up in the
    server's memory. While its write buffer is over write_limit, the server
    holds one pong, for the most recent ping (RFC 6455 section 5.5.3)."""
    loop = asyncio.get_running_loop()
    attack = frame(PING_OP, b"p" * 125) * 100_000  # 13 MB of pings, 12.7 MB of pongs
    write_limit = 32 * KiB
    async with server(echo, compression=None, write_limit=write_limit, close_timeout=0.5) as (srv, uri):
        sock = await raw_socket(uri)
        (connection,) = srv.all_connections
        sender = asyncio.ensure_future(loop.sock_sendall(sock, attack))
        done, _ = await asyncio.wait([sender], timeout=3)  # blocks once the server stops reading
        # write_limit plus the pongs for one read (256 KiB of pings) at most.
        assert connection.write_buffer_size <= write_limit + 300 * KiB, connection.write_buffer_size
        sender.cancel()
        sock.close()
        await until(lambda: not srv.all_connections)
    assert_no_traceback(log)


@run
async def test_flood_of_tiny_fragments_fails_with_1009_at_max_size(log):
    """1-byte continuation frames: the connection fails with 1009 at the
    fragment that takes the message past max_size, not before, not later."""
    max_size = 4 * KiB
    async with server(echo, compression=None, max_size=max_size) as (srv, uri):
        # Exactly max_size: accepted and echoed.
        reader, writer = await raw_client(uri)
        writer.write(frame(1, b"a", fin=False) + frame(0, b"b", fin=False) * (max_size - 2) + frame(0, b"c"))
        assert await asyncio.wait_for(read_frame(reader), 5) == (1, True, b"a" + b"b" * (max_size - 2) + b"c")
        # One byte more, with 10 000 fragments after it that must not be read.
        started = time.monotonic()
        writer.write(frame(1, b"a", fin=False) + frame(0, b"b", fin=False) * max_size)
        writer.write(frame(0, b"x", fin=False) * 10_000)
        code, reason = await expect_close(reader)
        assert code == 1009
        assert reason == f"message of at least {max_size + 1} bytes exceeds max_size of {max_size} bytes"
        assert time.monotonic() - started < 5
        writer.close()
        await until(lambda: not srv.all_connections)
    assert_failure_logged(log, 1009, f"message of at least {max_size + 1} bytes")


@pytest.mark.parametrize("payload, count", [(b"x", 16 * KiB - 1), (b"", 100_000)], ids=["1-byte", "empty"])
@run
async def test_fragment_flood_memory_is_bounded_by_max_size(log, payload, count):
    """Memory held for a fragmented message grows with its size, not with its
    number of fragments: 1-byte fragments up to max_size, or empty fragments
    without end, leave no more than a few times max_size allocated."""
    max_size = 16 * KiB
    loop = asyncio.get_running_loop()
    attack = frame(1, b"a", fin=False) + frame(0, payload, fin=False) * count
    async with server(echo, compression=None, max_size=max_size) as (srv, uri):
        sock = await raw_socket(uri)
        (connection,) = srv.all_connections
        with traced() as memory:
            await loop.sock_sendall(sock, attack)
            await loop.sock_sendall(sock, frame(PING_OP, b"sync"))
            buffer = bytearray(64)
            n = await asyncio.wait_for(loop.sock_recv_into(sock, buffer), 30)
            assert bytes(buffer[:n]) == b"\x8a\x04sync"  # every fragment was read
        assert connection.state is fastws.State.OPEN
        # What the unfinished message holds: its size, not its fragment count.
        assert memory["current"] < 4 * max_size + 64 * KiB, memory["current"]
        # Parsing one read (the shared 256 KiB buffer) of tiny frames makes a
        # frame object each for a moment: bounded by the read, not the message.
        assert memory["peak"] < 16 * MiB, memory["peak"]
        sock.close()
        await until(lambda: not srv.all_connections)
    assert_no_traceback(log)


@run
async def test_hostile_server_floods_a_client_that_does_not_read(log):
    """A server sends 20 000 messages at once to a client application that does
    not call recv(): the client stops reading at max_queue, its memory stays
    bounded, and every message arrives in order once it reads."""
    count, size = 20_000, 100

    async def flooder(reader, writer):
        writer.write(await accept(reader))
        writer.write(flood)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
            await reader.read(100)  # the client's close frame; then close TCP as a server does
        writer.close()

    flood = b"".join(bytes([0x82, size]) + i.to_bytes(4, "big") * (size // 4) for i in range(count))
    srv = await asyncio.start_server(flooder, "127.0.0.1", 0)
    async with srv:
        port = srv.sockets[0].getsockname()[1]
        websocket = await fastws.connect(f"ws://127.0.0.1:{port}/", ping_interval=None, max_queue=16)
        with traced() as memory:
            await until(lambda: websocket._reading_paused)
            await asyncio.sleep(0.2)  # it stays paused: nothing more is read
            queued = len(websocket._messages)
        # max_queue, plus what one read of the shared 256 KiB buffer holds.
        assert 16 <= queued <= 16 + (256 * KiB) // (size + 2) + 1
        assert memory["peak"] < 2 * MiB, memory["peak"]
        for i in range(count):
            assert await asyncio.wait_for(websocket.recv(), 5) == i.to_bytes(4, "big") * (size // 4)
        await websocket.close()
    assert_no_traceback(log)


# --- a client that never reads while the server writes ------------------------------


@run
async def test_server_memory_is_bounded_while_a_client_never_reads(log):
    """The handler tries to send 100 MiB to a client that never reads: its
    send() waits, the transport never holds more than write_limit plus one
    frame, the server's memory stays small, and when the client goes away the
    handler gets ConnectionClosed quickly."""
    write_limit, size = 64 * KiB, 64 * KiB
    total = 100 * MiB // size
    state = {"sent": 0, "max_buffer": 0}
    ended = asyncio.get_running_loop().create_future()

    async def flood(websocket):
        message = bytes(size)
        try:
            for _ in range(total):
                await websocket.send(message)
                state["sent"] += 1
                state["max_buffer"] = max(state["max_buffer"], websocket.transport.get_write_buffer_size())
        except fastws.ConnectionClosed as exc:
            ended.set_result(exc)
            raise

    async with server(flood, write_limit=write_limit, close_timeout=0.5, compression=None) as (srv, uri):
        reader, writer = await raw_client(uri)
        writer.transport.pause_reading()
        with traced() as memory:
            sent = -1
            while sent != state["sent"]:  # until the handler is stuck in send()
                sent = state["sent"]
                await asyncio.sleep(0.1)
            (connection,) = srv.all_connections
            buffered = connection.transport.get_write_buffer_size()
        assert state["sent"] * size < 20 * MiB  # kernel buffers took some; the rest waits
        frame_size = size + 10
        assert state["max_buffer"] <= write_limit + frame_size, state
        assert buffered <= write_limit + frame_size
        assert memory["peak"] < write_limit + 2 * frame_size + 256 * KiB, memory["peak"]
        started = time.monotonic()
        writer.transport.abort()
        assert isinstance(await asyncio.wait_for(ended, 5), ConnectionClosedError)
        assert time.monotonic() - started < 2
    assert_no_traceback(log)


@run
async def test_frames_before_the_101_are_not_buffered_while_process_request_runs(log):
    """A client that floods frames right after its request, while an async
    process_request hook is still deciding: the socket is not read meanwhile
    (RFC 6455 section 4.1: nothing comes before the 101), so the server holds
    at most one read of them; the connection goes on once the hook answers."""
    decide = asyncio.get_running_loop().create_future()

    async def process_request(connection, request):
        await decide
        return None

    async def idle(websocket):
        await websocket.wait_closed()

    async with server(idle, process_request=process_request, compression=None) as (srv, uri):
        sock = await raw_socket_no_handshake(uri)
        loop = asyncio.get_running_loop()
        flood = frame(2, bytes(64 * KiB)) * 320  # 20 MiB of binary frames
        with traced() as memory:
            await loop.sock_sendall(sock, HANDSHAKE)
            sending = loop.create_task(loop.sock_sendall(sock, flood))
            await asyncio.sleep(0.5)  # the hook waits; the kernel's buffers fill
            assert not sending.done()  # the server stopped reading
        assert memory["peak"] < 2 * MiB, memory["peak"]
        decide.set_result(None)
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sending
        sock.close()
    assert_no_traceback(log)


async def raw_socket_no_handshake(uri: str) -> socket.socket:
    sock = socket.socket()
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port_of(uri)))
    return sock


# --- UTF-8 and fragmentation ------------------------------------------------------------

TEXT = "aé€𐍈z".encode()  # 1-, 2-, 3- and 4-byte sequences: 11 bytes


@pytest.mark.parametrize("piece", [1, 2, 3, 5])
@run
async def test_invalid_utf8_at_every_position_of_a_fragmented_message(log, piece):
    """0xFF (never valid) at each byte of a text message sent in fragments of
    ``piece`` bytes: the server answers 1007 as soon as the fragment that
    holds it arrives, without waiting for the rest of the message."""
    positions = range(len(TEXT))
    async with server(echo, compression=None) as (srv, uri):
        # Control: the valid message, split inside its multibyte sequences, is echoed.
        reader, writer = await raw_client(uri)
        chunks = [TEXT[i : i + piece] for i in range(0, len(TEXT), piece)]
        writer.write(
            frame(1, chunks[0], fin=len(chunks) == 1)
            + b"".join(frame(0, c, fin=i == len(chunks) - 1) for i, c in enumerate(chunks[1:], 1))
        )
        assert await asyncio.wait_for(read_frame(reader), 5) == (1, True, TEXT)
        writer.close()
        for position in positions:
            bad = TEXT[:position] + b"\xff" + TEXT[position + 1 :]
            chunks = [bad[i : i + piece] for i in range(0, len(bad), piece)]
            upto = position // piece  # the fragment with the bad byte; nothing after it
            frames = [frame(1 if i == 0 else 0, c, fin=False) for i, c in enumerate(chunks[: upto + 1])]
            reader, writer = await raw_client(uri)
            writer.write(b"".join(frames))
            code, reason = await expect_close(reader)
            assert code == 1007, (position, reason)
            writer.close()
        # A message that ends inside a sequence: 1007 at its last fragment.
        reader, writer = await raw_client(uri)
        writer.write(frame(1, b"ok \xf0\x90", fin=False) + frame(0, b"\x8d", fin=True))
        code, reason = await expect_close(reader)
        assert code == 1007 and "middle of a UTF-8 sequence" in reason
        writer.close()
        await until(lambda: not srv.all_connections)
    failures = [line for line in fastws_lines(log) if line.startswith("failed connection from")]
    assert len(failures) == len(positions) + 1
    assert all(" with 1007: invalid UTF-8" in line or " with 1007: text message ends" in line for line in failures)
    assert_no_traceback(log)


@run
async def test_close_in_the_middle_of_a_fragmented_message(log):
    """RFC 6455 5.4-5.5: a control frame, close included, may come between
    fragments. The server echoes the close, the unfinished message is dropped
    (never delivered), the handler sees a clean close, and frames after the
    close are ignored."""
    received = []
    closed = asyncio.get_running_loop().create_future()

    async def record(websocket):
        try:
            async for message in websocket:
                received.append(message)
        finally:
            closed.set_result((websocket.close_code, websocket.close_reason))

    async with server(record, compression=None) as (srv, uri):
        reader, writer = await raw_client(uri)
        writer.write(
            frame(1, b"whole")
            + frame(1, b"hel", fin=False)
            + frame(0, b"lo", fin=False)
            + frame(CLOSE_OP, (1001).to_bytes(2, "big") + b"bye")
            + frame(0, b" world", fin=True)  # after the close: discarded
        )
        code, reason = await expect_close(reader)
        assert code == 1001  # echoed
        assert await asyncio.wait_for(closed, 5) == (1001, "bye")
        writer.close()
    assert received == ["whole"]
    assert [line for line in fastws_lines(log) if "failed connection" in line] == []
    assert_no_traceback(log)


@run
async def test_hostile_server_closes_in_the_middle_of_a_fragmented_message(log):
    """The client side of the same: the partial message is not delivered and
    the close is clean."""

    async def half(reader, writer):
        writer.write(
            await accept(reader)
            + fastws.build_frame(fastws.Opcode.TEXT, "first")
            + fastws.build_frame(fastws.Opcode.TEXT, "par", fin=False)
            + fastws.build_frame(fastws.Opcode.CLOSE, fastws.build_close(1000, "done"))
        )
        await reader.read(100)  # the client's close echo; then the server closes TCP
        writer.close()

    srv = await asyncio.start_server(half, "127.0.0.1", 0)
    async with srv:
        port = srv.sockets[0].getsockname()[1]
        websocket = await fastws.connect(f"ws://127.0.0.1:{port}/", ping_interval=None, close_timeout=1)
        assert await websocket.recv() == "first"
        with pytest.raises(ConnectionClosedOK) as info:
            await websocket.recv()
        assert info.value.code == 1000
        await asyncio.wait_for(websocket.wait_closed(), 5)
    assert_no_traceback(log)

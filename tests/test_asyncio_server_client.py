"""serve() and connect(): the tutorial, handlers, handshake hooks, errors, shutdown."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl

import pytest

import fastws
from fastws import (
    CloseCode,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidStatus,
    InvalidURI,
    _codec_py,
)
from fastws.handshake import accept_key

from asyncio_helpers import HANDSHAKE, listener_server, port_of, raw_client, read_frame, run, server


async def hello(websocket):
    name = await websocket.recv()
    await websocket.send(f"Hello {name}!")


@run
async def test_tutorial_hello():
    async with server(hello) as (_, uri):
        async with fastws.connect(uri) as websocket:
            await websocket.send("world")
            assert await websocket.recv() == "Hello world!"
            # The handler returned: the server closes with 1000.
            with pytest.raises(ConnectionClosedOK) as info:
                await websocket.recv()
            assert info.value.code == CloseCode.NORMAL_CLOSURE
        assert websocket.close_code == 1000


@run
async def test_await_serve_and_connect():
    srv = await fastws.serve(hello, "127.0.0.1", 0, ping_interval=None)
    try:
        assert srv.is_serving()
        port = srv.sockets[0].getsockname()[1]
        websocket = await fastws.connect(f"ws://127.0.0.1:{port}/")
        await websocket.send("await")
        assert await websocket.recv() == "Hello await!"
        await websocket.close()
        assert websocket.state is fastws.State.CLOSED
    finally:
        srv.close()
        await srv.wait_closed()
    assert not srv.is_serving()


@run
async def test_old_style_handler_gets_the_path():
    async def handler(websocket, path):
        await websocket.send(path)

    async with server(handler) as (_, uri):
        async with fastws.connect(uri + "chat?room=1") as websocket:
            assert await websocket.recv() == "/chat?room=1"
            assert websocket.request.path == "/chat?room=1"
            assert websocket.response.status_code == 101


@run
async def test_binary_text_and_async_for():
    async def echo(websocket):
        async for message in websocket:
            await websocket.send(message)

    async with server(echo) as (_, uri):
        async with fastws.connect(uri) as websocket:
            for message in ["text", b"\x00\xffbinary", "", b"", "é" * 1000, bytes(200_000)]:
                await websocket.send(message)
                assert await websocket.recv() == message
        # async for in the handler ended cleanly on the client's close.
        assert websocket.close_code == 1000


@run
async def test_fragmented_send_sync_and_async_iterables():
    async def echo(websocket):
        async for message in websocket:
            await websocket.send(message)

    async def agen():
        for part in ("a", "b", "c"):
            yield part

    async with server(echo) as (_, uri):
        async with fastws.connect(uri) as websocket:
            await websocket.send([b"ab", b"cd", bytearray(b"ef")])
            assert await websocket.recv() == b"abcdef"
            await websocket.send(agen())
            assert await websocket.recv() == "abc"
            with pytest.raises(TypeError, match="all fragments"):
                await websocket.send(["a", b"b"])
            # Half a message went out: the connection is failed with 1011.
            with pytest.raises(ConnectionClosedError):
                await websocket.recv()
        assert websocket.protocol.close_sent.code == 1011


@run
async def test_send_rejects_other_types():
    async with server(hello) as (_, uri):
        async with fastws.connect(uri) as websocket:
            with pytest.raises(TypeError):
                await websocket.send(42)
            with pytest.raises(TypeError):
                await websocket.send({"a": 1})


@run
async def test_handler_exception_closes_with_1011_and_is_logged(caplog):
    async def broken(websocket):
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="fastws"):
        async with server(broken) as (_, uri):
            async with fastws.connect(uri) as websocket:
                with pytest.raises(ConnectionClosedError) as info:
                    await websocket.recv()
                assert info.value.code == CloseCode.INTERNAL_ERROR
    records = [r for r in caplog.records if r.name.startswith("fastws")]
    assert any("connection handler failed" in r.getMessage() for r in records)
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in records)


@run
async def test_close_from_the_client_and_from_the_server():
    closed = asyncio.get_running_loop().create_future()

    async def handler(websocket):
        try:
            await websocket.recv()
        except ConnectionClosedOK as exc:
            closed.set_result(exc.code)

    async with server(handler) as (_, uri):
        websocket = await fastws.connect(uri)
        await websocket.close(CloseCode.GOING_AWAY, "bye")
        assert await closed == CloseCode.GOING_AWAY
        assert websocket.protocol.close_rcvd.code == CloseCode.GOING_AWAY  # echoed

    async def closer(websocket):
        await websocket.close(4000, "custom")

    async with server(closer) as (_, uri):
        async with fastws.connect(uri) as websocket:
            with pytest.raises(ConnectionClosedError) as info:
                await websocket.recv()
            assert info.value.code == 4000
            assert info.value.reason == "custom"
            with pytest.raises(ConnectionClosedError):
                await websocket.send("too late")
        await websocket.wait_closed()
        assert websocket.close_code == 4000


@run
async def test_recv_in_two_coroutines_is_a_concurrency_error():
    async def silent(websocket):
        await websocket.wait_closed()

    async with server(silent) as (_, uri):
        async with fastws.connect(uri) as websocket:
            first = asyncio.ensure_future(websocket.recv())
            await asyncio.sleep(0)
            with pytest.raises(fastws.ConcurrencyError):
                await websocket.recv()
            first.cancel()


@run
async def test_ping_resolves_with_the_latency():
    async def silent(websocket):
        await websocket.wait_closed()

    async with server(silent) as (_, uri):
        async with fastws.connect(uri) as websocket:
            # websockets' shape: awaiting ping() sends it and gives the waiter.
            pong_waiter = await websocket.ping()
            assert isinstance(pong_waiter, asyncio.Future) and not pong_waiter.done()
            latency = await pong_waiter
            assert latency >= 0
            assert websocket.latency == latency
            assert await (await websocket.ping(b"custom")) >= 0
            assert await (await websocket.ping("text is sent in UTF-8")) >= 0
            with pytest.raises(TypeError, match="ping data must be str or bytes-like, not int"):
                await websocket.ping(42)  # type: ignore[arg-type]


@run
async def test_max_size_fails_with_1009():
    async def echo(websocket):
        async for message in websocket:
            await websocket.send(message)

    async with server(echo, max_size=1000) as (_, uri):
        async with fastws.connect(uri) as websocket:
            await websocket.send(b"x" * 1000)
            assert await websocket.recv() == b"x" * 1000
            await websocket.send(b"x" * 1001)
            with pytest.raises(ConnectionClosedError) as info:
                await websocket.recv()
            assert info.value.code == CloseCode.MESSAGE_TOO_BIG


@run
async def test_process_request_refuses_with_its_response():
    def only_chat(connection, request):
        if request.path != "/chat":
            return connection.respond(404, "Not found\n")
        return None

    async with server(hello, process_request=only_chat) as (_, uri):
        with pytest.raises(InvalidStatus) as info:
            await fastws.connect(uri + "nope")
        assert info.value.status_code == 404
        assert info.value.body == b"Not found\n"
        async with fastws.connect(uri + "chat") as websocket:
            await websocket.send("chat")
            assert await websocket.recv() == "Hello chat!"


@run
async def test_async_process_request():
    async def check_token(connection, request):
        await asyncio.sleep(0)
        if request.headers.get("Authorization") != "Bearer ok":
            return connection.respond(401, "Unauthorized\n")
        return None

    async with server(hello, process_request=check_token) as (_, uri):
        with pytest.raises(InvalidStatus) as info:
            await fastws.connect(uri)
        assert info.value.status_code == 401
        async with fastws.connect(uri, extra_headers={"Authorization": "Bearer ok"}) as websocket:
            await websocket.send("token")
            assert await websocket.recv() == "Hello token!"


@run
async def test_subprotocols_and_origins():
    async def which(websocket):
        await websocket.send(websocket.subprotocol or "none")

    async with server(which, subprotocols=["chat.v2", "chat.v1"], origins=["https://ok.example"]) as (_, uri):
        async with fastws.connect(uri, subprotocols=["chat.v1"], origin="https://ok.example") as websocket:
            assert websocket.subprotocol == "chat.v1"
            assert await websocket.recv() == "chat.v1"
        with pytest.raises(InvalidStatus) as info:
            await fastws.connect(uri, origin="https://evil.example")
        assert info.value.status_code == 403


@run
async def test_client_errors():
    with pytest.raises(InvalidURI):
        fastws.connect("http://example.com/")
    with pytest.raises(InvalidURI):
        await fastws.connect("ws:///nohost")
    # A port nobody listens on: the OS error comes through as it is.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(ConnectionRefusedError):
        await fastws.connect(f"ws://127.0.0.1:{port}/")


@run
async def test_open_timeout_on_the_client():
    # A TCP server that accepts and never answers the handshake.
    async def mute(reader, writer):
        await reader.read()

    srv = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        with pytest.raises(TimeoutError):
            await fastws.connect(f"ws://127.0.0.1:{port}/", open_timeout=0.2)
    finally:
        srv.close()
        await srv.wait_closed()


@run
async def test_server_handshake_timeout_frees_the_slot():
    async with server(hello, open_timeout=0.2) as (srv, uri):
        reader, writer = await raw_client(uri, handshake=b"")
        writer.write(b"GET / HTTP/1.1\r\n")  # and never the rest
        assert await reader.read() == b""  # the server hung up
        writer.close()
        await asyncio.sleep(0)
        assert not srv.all_connections


@run
async def test_bad_handshakes_get_http_errors():
    async with server(hello) as (_, uri):
        reader, writer = await raw_client(uri, handshake=b"")
        writer.write(HANDSHAKE.replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8"))
        response = await reader.read()
        assert response.startswith(b"HTTP/1.1 426")
        assert b"Sec-WebSocket-Version: 13" in response
        writer.close()

        reader, writer = await raw_client(uri, handshake=b"")
        writer.write(b"garbage\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 400")
        writer.close()


@run
async def test_frames_in_the_same_read_as_the_request_are_kept():
    async def echo(websocket):
        await websocket.send(await websocket.recv())

    async with server(echo) as (_, uri):
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(uri))
        writer.write(HANDSHAKE + fastws.build_frame(fastws.Opcode.TEXT, "early", mask=True))
        await reader.readuntil(b"\r\n\r\n")
        assert await read_frame(reader) == (1, True, b"early")
        writer.close()


@run
async def test_server_shutdown_closes_connections_with_1001():
    finished = []

    async def handler(websocket):
        try:
            await websocket.recv()
        finally:
            finished.append(websocket.close_code)

    srv = await fastws.serve(handler, "127.0.0.1", 0, ping_interval=None)
    port = srv.sockets[0].getsockname()[1]
    clients = [await fastws.connect(f"ws://127.0.0.1:{port}/") for _ in range(3)]
    srv.close()
    await srv.wait_closed()
    for client in clients:
        with pytest.raises(ConnectionClosedOK) as info:
            await client.recv()
        assert info.value.code == CloseCode.GOING_AWAY
    assert finished == [CloseCode.GOING_AWAY] * 3
    assert not srv.is_serving()


@run
async def test_keepalive_timeout_fails_with_1011():
    async def silent(websocket):
        await websocket.wait_closed()

    async with server(silent, ping_interval=0.05, ping_timeout=0.1) as (_, uri):
        # A raw client that completes the handshake and never answers pings.
        reader, writer = await raw_client(uri)
        opcodes = []
        while True:
            opcode, _, payload = await read_frame(reader)
            opcodes.append(opcode)
            if opcode == 8:
                break
        assert opcodes[0] == 9  # a ping first
        assert fastws.parse_close(payload)[0] == CloseCode.INTERNAL_ERROR
        writer.close()


@run
async def test_keepalive_pings_are_answered_by_the_client():
    async def wait(websocket):
        await asyncio.sleep(0.3)
        await websocket.send(f"{websocket.latency:.6f}")

    async with server(wait, ping_interval=0.05, ping_timeout=1) as (_, uri):
        async with fastws.connect(uri) as websocket:
            assert float(await websocket.recv()) > 0  # the server measured pongs


@run
async def test_unix_socket(tmp_path):
    path = str(tmp_path / "ws.sock")
    async with fastws.unix_serve(hello, path, ping_interval=None):
        async with fastws.unix_connect(path) as websocket:
            await websocket.send("unix")
            assert await websocket.recv() == "Hello unix!"


@run
async def test_reuse_port_is_passed_to_asyncio():
    if not hasattr(socket, "SO_REUSEPORT"):
        pytest.skip("no SO_REUSEPORT on this platform")
    async with fastws.serve(hello, "127.0.0.1", 0, reuse_port=True, ping_interval=None) as srv:
        sock = srv.sockets[0]
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)


@run
async def test_wss_with_a_local_certificate():
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with fastws.serve(hello, "127.0.0.1", 0, ssl=server_ctx, ping_interval=None) as srv:
        port = srv.sockets[0].getsockname()[1]
        async with fastws.connect(f"wss://localhost:{port}/", ssl=client_ctx) as websocket:
            await websocket.send("tls")
            assert await websocket.recv() == "Hello tls!"
        # The default context does not trust our local CA.
        with pytest.raises(ssl.SSLCertVerificationError):
            await fastws.connect(f"wss://localhost:{port}/")


def test_unknown_compression_is_refused():
    with pytest.raises(ValueError, match="unsupported compression 'gzip'"):
        fastws.connect("ws://localhost/", compression="gzip")
    with pytest.raises(ValueError, match="unsupported compression 'gzip'"):
        fastws.serve(hello, "127.0.0.1", 0, compression="gzip")


@run
async def test_permessage_deflate_is_negotiated_by_default():
    async def echo(websocket):
        async for message in websocket:
            await websocket.send(message)

    text = '{"user": "ada", "text": "hello hello hello hello hello"}' * 50
    async with server(echo) as (_, uri):
        async with fastws.connect(uri) as websocket:
            assert "permessage-deflate" in websocket.response.headers["Sec-WebSocket-Extensions"]
            assert [type(e).__name__ for e in websocket.protocol.extensions] == ["PerMessageDeflate"]
            await websocket.send(text)
            assert await websocket.recv() == text
            await websocket.send(text.encode())
            assert await websocket.recv() == text.encode()
        async with fastws.connect(uri, compression=None) as websocket:
            assert "Sec-WebSocket-Extensions" not in websocket.response.headers
            await websocket.send(text)
            assert await websocket.recv() == text
    async with server(echo, compression=None) as (_, uri):
        async with fastws.connect(uri) as websocket:
            assert websocket.protocol.extensions == []
            await websocket.send(text)
            assert await websocket.recv() == text


@run
async def test_compressed_bomb_fails_with_1009():
    import zlib

    async def echo(websocket):
        async for message in websocket:
            await websocket.send(message)

    async with server(echo, max_size=64 * 1024) as (_, uri):
        reader, writer = await raw_client(
            uri,
            HANDSHAKE.replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"),
        )
        deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
        bomb = deflater.compress(bytes(16 * 1024 * 1024)) + deflater.flush(zlib.Z_SYNC_FLUSH)
        bomb = bomb[:-4]  # RFC 7692: the sender strips 00 00 ff ff
        assert len(bomb) < 32 * 1024  # small frame, well under max_size
        writer.write(fastws.build_frame(fastws.Opcode.BINARY, bomb, rsv1=True, mask=True))
        opcode, _, payload = await read_frame(reader)
        assert opcode == 8
        assert fastws.parse_close(payload)[0] == CloseCode.MESSAGE_TOO_BIG
        writer.close()


@run
async def test_a_pending_async_process_request_ends_with_its_connection():
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow_hook(connection, request):
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with server(hello, process_request=slow_hook, open_timeout=0.2) as (srv, uri):
        # The server's open_timeout ends the connection while the hook still runs.
        with pytest.raises(fastws.InvalidMessage, match="connection closed before the response"):
            await fastws.connect(uri, open_timeout=5)
        await started.wait()
    await cancelled.wait()
    pending = [t for t in asyncio.all_tasks() if "_await_response" in repr(t)]
    assert pending == []


# --- a protocol error after good messages (Autobahn 3.2, 4.1.3, 5.15...) --------------------
# The peer sends a message and a bad frame in one write: an echo application must get to
# echo the message before the connection fails, and nothing after the bad frame is read
# (the ping that follows it is not answered).

TEXT_OP, CLOSE_OP = 1, 8


def _bad_after_hello(masked: bool) -> bytes:
    mask = True if masked else None
    hello = fastws.build_frame(fastws.Opcode.TEXT, "Hello, world!", mask=mask)
    rsv2 = bytes([0xA1, 0x80]) + b"\x00" * 4 if masked else bytes([0xA1, 0x00])
    return hello + rsv2 + fastws.build_frame(fastws.Opcode.PING, b"", mask=mask)


async def _echo(websocket):
    async for message in websocket:
        await websocket.send(message)


class _EchoListener(fastws.Listener):
    def on_message(self, connection, message):
        connection.send_nowait(message)


@pytest.mark.parametrize("kind", ["handler", "listener"])
@run
async def test_server_echoes_the_messages_before_a_protocol_error(kind):
    serving = server(_echo) if kind == "handler" else listener_server(_EchoListener)
    async with serving as (_, uri):
        reader, writer = await raw_client(uri)
        writer.write(_bad_after_hello(masked=True))
        assert await read_frame(reader) == (TEXT_OP, True, b"Hello, world!")
        op, _, payload = await read_frame(reader)
        assert op == CLOSE_OP and payload[:2] == (1002).to_bytes(2, "big")
        assert await reader.read() == b""  # the server closed TCP, answered no ping
        writer.close()


@run
async def test_client_echoes_the_messages_before_a_protocol_error():
    received = asyncio.get_running_loop().create_future()

    async def raw_server(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        (key,) = [
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        ]
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key.decode()).encode() + b"\r\n\r\n"
            + _bad_after_hello(masked=False)
        )
        parser = _codec_py.FrameParser(mask_required=True)
        frames = []
        while len(frames) < 2:
            data = await reader.read(65536)
            if not data:
                break
            frames += parser.feed(data)
        received.set_result([(int(f.opcode), f.payload) for f in frames])
        writer.close()

    srv = await asyncio.start_server(raw_server, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    async with srv:
        websocket = await fastws.connect(f"ws://127.0.0.1:{port}/", ping_interval=None)
        with pytest.raises(ConnectionClosedError):
            await _echo(websocket)
        frames = await received
        assert frames[0] == (TEXT_OP, b"Hello, world!")
        assert frames[1][0] == CLOSE_OP and frames[1][1][:2] == (1002).to_bytes(2, "big")
        assert len(frames) == 2  # no pong
        await websocket.wait_closed()


@run
async def test_a_handler_that_does_not_read_gets_close_timeout_to_do_it():
    reading = asyncio.Event()

    async def sleepy(websocket):
        await reading.wait()
        await _echo(websocket)

    async with server(sleepy, close_timeout=0.2) as (_, uri):
        reader, writer = await raw_client(uri)
        loop = asyncio.get_running_loop()
        started = loop.time()
        writer.write(_bad_after_hello(masked=True))
        op, _, payload = await read_frame(reader)  # the message was never taken
        assert op == CLOSE_OP and payload[:2] == (1002).to_bytes(2, "big")
        assert 0.15 <= loop.time() - started < 5
        writer.close()
        reading.set()

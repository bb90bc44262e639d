"""fastws.uvicorn around the edges of a connection's life: a client that leaves
while the application has not answered its handshake, a ``receive()`` already
waiting when the application accepts from another task, messages received
before a shutdown, and a shutdown that meets a client which does not read.

Each runs on fastws's backend and, where uvicorn's default backend
(websockets-sansio, from uvicorn 0.55 on) behaves as it should, on that one too.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import socket
import time
import tracemalloc
from typing import Any, Awaitable, Callable, Dict, List

import pytest
from websockets.asyncio.client import connect

from asyncio_helpers import run
from uvicorn_helpers import BACKENDS, uvicorn_server

Message = Dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

UVICORN = tuple(int(part) for part in importlib.metadata.version("uvicorn").split(".")[:2])
FASTWS = pytest.param(BACKENDS["fastws"], id="fastws")
BOTH = [FASTWS, pytest.param(BACKENDS["websockets-sansio"], id="websockets-sansio")] if UVICORN >= (0, 55) else [FASTWS]

REQUEST = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def eventually(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("ws", BOTH)
@pytest.mark.parametrize("answer", ["none", "denial-started"])
@run
async def test_client_leaving_during_the_handshake_is_a_disconnect(ws: str, answer: str) -> None:
    """The application waits in receive() without answering (a Channels
    consumer whose connect() does not accept), or in the middle of a denial
    response: the client leaving gives it websocket.disconnect 1006, and the
    connection and its task are gone."""
    events: List[Message] = []

    async def app(scope: Any, receive: Receive, send: Send) -> None:
        events.append(await receive())
        if answer == "denial-started":
            await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
        events.append(await receive())

    async with uvicorn_server(app, ws=ws) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(REQUEST)
        await eventually(lambda: len(events) == 1)
        writer.close()
        await eventually(lambda: len(events) == 2)
        await eventually(lambda: not srv.state.connections and not srv.state.tasks)
    assert events == [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1006}]


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_receive_waiting_across_accept_gets_the_messages(ws: str) -> None:
    """A receive() started before the application accepts (a reader task, or
    Channels' dispatch loop with the accept sent from another handler) gets
    the client's messages once the connection is accepted."""
    got: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

    async def app(scope: Any, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "websocket.connect"
        pending = asyncio.ensure_future(receive())
        await asyncio.sleep(0.05)  # the reader waits first
        await send({"type": "websocket.accept"})
        got.set_result(await pending)
        await send({"type": "websocket.close"})

    async with uvicorn_server(app, ws=ws) as srv:
        async with connect(srv.uri + "/") as websocket:
            await websocket.send("hello")
            message = await asyncio.wait_for(got, 3)
    assert message == {"type": "websocket.receive", "text": "hello"}


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_messages_received_before_a_shutdown_come_before_its_disconnect(ws: str) -> None:
    events: List[Message] = []
    received = asyncio.Event()
    shut = asyncio.Event()

    async def app(scope: Any, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await received.wait()
        await shut.wait()
        while True:
            events.append(await receive())
            if events[-1]["type"] == "websocket.disconnect":
                return

    async with uvicorn_server(app, ws=ws, ws_max_queue=32) as srv:
        async with connect(srv.uri + "/") as websocket:
            for i in range(3):
                await websocket.send(f"m{i}")
            await asyncio.sleep(0.2)  # the server has them (not read by the app)
            received.set()
            (protocol,) = srv.state.connections
            protocol.shutdown()
            shut.set()
            await eventually(lambda: bool(events) and events[-1]["type"] == "websocket.disconnect")
    assert [e.get("text") for e in events[:-1]] == ["m0", "m1", "m2"]
    assert events[-1]["code"] == 1012


@run
async def test_shutdown_aborts_a_client_that_does_not_read_after_close_timeout() -> None:
    """The application returned without closing while a client that does not
    read kept the write buffer full: TCP is closing, and the shutdown that
    comes next still ends the connection, by abort after close_timeout."""
    flooded = asyncio.Event()
    go = asyncio.Event()

    async def app(scope: Any, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await go.wait()
        chunk = bytes(256 * 1024)
        try:
            for _ in range(64):
                await asyncio.wait_for(send({"type": "websocket.send", "bytes": chunk}), 0.3)
        except asyncio.TimeoutError:
            flooded.set()  # send() waits: the client does not read

    async with uvicorn_server(app, ws=BACKENDS["fastws"], ws_per_message_deflate=False) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port, limit=1024)
        writer.write(REQUEST)
        await reader.readuntil(b"\r\n\r\n")
        writer.transport.pause_reading()
        (protocol,) = srv.state.connections
        protocol.close_timeout = 0.3
        go.set()
        await asyncio.wait_for(flooded.wait(), 5)
        await eventually(lambda: protocol.transport.is_closing())  # the app returned: TCP closing
        started = time.monotonic()
        protocol.shutdown()
        await eventually(lambda: not srv.state.connections, timeout=3)
        assert time.monotonic() - started < 2
        writer.close()


@run
async def test_frames_during_a_denial_response_are_not_buffered_without_bound() -> None:
    """The application streams a denial response slowly while the client,
    which never got a 101, floods frames: the server stops reading past
    EARLY_DATA_LIMIT instead of holding them, and the denial still goes out."""
    from fastws.uvicorn import EARLY_DATA_LIMIT

    release = asyncio.Event()

    async def app(scope: Any, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 403, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"no", "more_body": True})
        await release.wait()
        await send({"type": "websocket.http.response.body", "body": b" entry"})

    flood = (b"\x82\xfe\x03\xe8\x00\x00\x00\x00" + bytes(1000)) * 20_000  # masked 1000-byte frames: 20 MB
    loop = asyncio.get_running_loop()
    async with uvicorn_server(app, ws=BACKENDS["fastws"]) as srv:
        sock = socket.socket()
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", srv.port))
        await loop.sock_sendall(sock, REQUEST)
        await asyncio.sleep(0.1)  # the request alone first: uvicorn's HTTP layer drops what follows it
        tracemalloc.start()
        try:
            sender = asyncio.ensure_future(loop.sock_sendall(sock, flood))  # no copy: the server's memory
            await asyncio.sleep(0.5)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert not sender.done()  # the server stopped reading
        assert peak < EARLY_DATA_LIMIT + 2 * 1024 * 1024, peak
        release.set()
        response = b""
        while not response.endswith(b"no entry"):
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), 3)
            assert chunk, response
            response += chunk
        sender.cancel()
        sock.close()
    assert response.startswith(b"HTTP/1.1 403 "), response

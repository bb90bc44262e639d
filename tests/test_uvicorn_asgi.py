"""The ASGI WebSocket specification (2.4) and uvicorn's WebSocket behaviours,
for ``fastws.uvicorn:WebSocketProtocol`` beside uvicorn's default backend.

Each test serves a raw ASGI application (``async def app(scope, receive,
send)``, no framework) with a real uvicorn and talks to it with a real client:
the websockets library's, or a raw TCP socket where the test needs the bytes
(a request head of its own, frames the client does not answer, a client that
does not read). Every behaviour runs on fastws and on ``websockets-sansio``
(uvicorn's default backend, the reference): where the outcome must be the
same, both get the same assertions. A test that runs on fastws alone says in a
comment why the reference is left out (it is wrong there).

References: https://asgi.readthedocs.io/en/latest/specs/www.html#websocket,
the ``websocket.http.response`` extension, and uvicorn's backends
(``uvicorn/protocols/websockets/``) and their tests.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
import socket
import ssl
import struct
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

import pytest
from uvicorn.protocols.utils import ClientDisconnected
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from asyncio_helpers import read_frame, run
from uvicorn_helpers import BACKENDS, UvicornServer, uvicorn_logs, uvicorn_server  # noqa: F401 (the logs fixture)

Scope = Dict[str, Any]
Message = Dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

FASTWS = pytest.param(BACKENDS["fastws"], id="fastws")
SANSIO = pytest.param(BACKENDS["websockets-sansio"], id="websockets-sansio")
UVICORN = tuple(int(part) for part in importlib.metadata.version("uvicorn").split(".")[:2])
#: fastws and the reference, with the same expectations. The reference is uvicorn's default
#: backend as of 0.55, the version these expectations were checked against. Older ones are
#: not a reference: 0.39 (what Python 3.9 gets) drops empty messages, lowercases the values of
#: the app's accept headers, sends two date headers and two content-types on a denial, says
#: spec_version 2.3, has no send backpressure nor keepalive attributes (ping_timer...), and
#: logs the client as a tuple. fastws runs alone there, with the same expectations.
BOTH = [FASTWS, SANSIO] if UVICORN >= (0, 55) else [FASTWS]

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA
MIB = 1024 * 1024


# --- helpers -------------------------------------------------------------------------


def serve(app: Any, ws: str, **config: Any) -> Any:
    """``uvicorn_server`` with uvicorn's logging left to the standard library
    (no ``dictConfig``), so that the ``logs`` fixture sees its records."""
    config.setdefault("log_config", None)
    return uvicorn_server(app, ws=ws, **config)


def messages(caplog: pytest.LogCaptureFixture, level: int) -> List[str]:
    return [r.getMessage() for r in caplog.records if r.name == "uvicorn.error" and r.levelno == level]


def assert_app_exception_logged(caplog: pytest.LogCaptureFixture, exc_type: type) -> None:
    """One ERROR logged: uvicorn's "Exception in ASGI application", with the app's exception."""
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage().startswith("Exception in ASGI application")
    assert record.exc_info is not None and isinstance(record.exc_info[1], exc_type)


def client_frame(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    """A client frame: masked, with the all-zero key (so the payload goes as it is)."""
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    return head + b"\x00\x00\x00\x00" + payload


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()


def parse_close(payload: bytes) -> Tuple[int, str]:
    if not payload:
        return 1005, ""
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode()


def handshake_request(path: str = "/", headers: Tuple[Tuple[str, str], ...] = ()) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def open_raw(
    port: int, rcvbuf: Optional[int] = None, sndbuf: Optional[int] = None
) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to the server; ``rcvbuf``/``sndbuf`` shrink its socket buffers."""
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if sndbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    # A small stream buffer: the reader stops reading the socket past twice this.
    return await asyncio.open_connection(sock=sock, limit=65536)


async def raw_upgrade(
    port: int, path: str = "/", headers: Tuple[Tuple[str, str], ...] = (), **buffers: Optional[int]
) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A raw client that sent an upgrade request: (reader, writer, response head)."""
    reader, writer = await open_raw(port, **buffers)
    writer.write(handshake_request(path, headers))
    head = await reader.readuntil(b"\r\n\r\n")
    return reader, writer, head


class HTTPResponse:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines]

    def get_all(self, name: str) -> List[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


async def http_response(port: int, path: str = "/") -> HTTPResponse:
    """Send an upgrade request and read the whole answer (the server closes after a non-101)."""
    reader, writer = await open_raw(port)
    writer.write(handshake_request(path))
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return HTTPResponse(raw)


async def eventually(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def only_connection(srv: UvicornServer) -> Any:
    """The backend's protocol object of the one open WebSocket connection."""
    (protocol,) = srv.state.connections
    return protocol


async def drain_client(websocket: ClientConnection) -> None:
    """Read until the server closes; returns on ConnectionClosed."""
    try:
        while True:
            await websocket.recv()
    except ConnectionClosed:
        pass


async def first_message_then_closed(app: Any, ws: str) -> Tuple[Any, Optional[int]]:
    """Serve ``app``, connect, read its first message, then read until the
    connection closes and wait until the server holds nothing of it: (the
    message, the close code the client saw)."""
    async with serve(app, ws) as srv:
        async with connect(srv.uri + "/") as websocket:
            message = await websocket.recv()
            with pytest.raises(ConnectionClosed):
                await websocket.recv()
        await eventually(lambda: not srv.state.connections and not srv.state.tasks)
    return message, websocket.close_code


def echo_app(log: Optional[List[Message]] = None, **accept: Any) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """Accepts (with ``accept``'s keys), echoes every message, logs what it receives."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept", **accept})
        while True:
            message = await receive()
            if log is not None:
                log.append(message)
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")})

    return app


# --- scope ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_scope(ws: str) -> None:
    """Every key of the WebSocket scope, with root_path and lifespan state."""
    scopes: List[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            assert (await receive())["type"] == "lifespan.startup"
            scope["state"]["db"] = "connected"
            scope["state"]["items"] = [1]
            await send({"type": "lifespan.startup.complete"})
            assert (await receive())["type"] == "lifespan.shutdown"
            await send({"type": "lifespan.shutdown.complete"})
            return
        scopes.append(scope)
        scope["state"]["added"] = "by this connection"  # the next one gets its own copy
        assert await receive() == {"type": "websocket.connect"}
        subprotocol = "superchat" if scope["subprotocols"] else None
        await send({"type": "websocket.accept", "subprotocol": subprotocol})
        await send({"type": "websocket.close"})

    async with serve(app, ws, lifespan="on", root_path="/api") as srv:
        headers = (
            ("X-Dup", "one"),
            ("X-Dup", "two"),
            ("X-Case", "MiXeD Value"),
            ("Sec-WebSocket-Protocol", "chat, superchat"),
        )
        reader, writer, head = await raw_upgrade(srv.port, "/caf%C3%A9/a%2Fb%20c?x=1&y=%2F", headers)
        client = writer.get_extra_info("sockname")
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"\r\nsec-websocket-protocol: superchat\r\n" in head.lower()
        assert (await read_frame(reader))[0] == OP_CLOSE
        writer.close()
        async with connect(srv.uri + "/second") as websocket:
            await drain_client(websocket)

    scope, second = scopes
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/café/a/b c"  # percent-decoded, UTF-8 decoded, root_path in front
    assert scope["raw_path"] == b"/api/caf%C3%A9/a%2Fb%20c"
    assert scope["query_string"] == b"x=1&y=%2F"
    assert all(isinstance(name, bytes) and isinstance(value, bytes) for name, value in scope["headers"])
    headers_lower = [(name.lower(), value) for name, value in scope["headers"]]
    assert (b"host", b"127.0.0.1") in headers_lower
    assert [value for name, value in headers_lower if name == b"x-dup"] == [b"one", b"two"]  # order kept
    assert (b"x-case", b"MiXeD Value") in headers_lower  # values as sent
    assert scope["subprotocols"] == ["chat", "superchat"]
    assert tuple(scope["client"]) == (client[0], client[1])
    assert tuple(scope["server"]) == ("127.0.0.1", srv.port)
    assert scope["extensions"]["websocket.http.response"] == {}
    # A copy of the lifespan state for each connection: the first one's addition is its own.
    assert scope["state"] == {"db": "connected", "items": [1], "added": "by this connection"}
    assert second["state"] == {"db": "connected", "items": [1], "added": "by this connection"}
    assert scope["state"] is not second["state"]
    assert second["path"] == "/api/second" and second["raw_path"] == b"/api/second"
    assert second["query_string"] == b"" and second["subprotocols"] == []


# websockets-sansio excluded: it passes header names in the client's case (b"X-Dup"); the ASGI
# spec says they should be lowercased, as uvicorn's HTTP protocols (and fastws) do.
@pytest.mark.parametrize("ws", [FASTWS])
@run
async def test_scope_header_names_are_lowercase(ws: str) -> None:
    scopes: List[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)
        await receive()
        await send({"type": "websocket.close"})

    async with serve(app, ws) as srv:
        response = await http_response(srv.port)
        assert response.status == 403
        reader, writer = await open_raw(srv.port)
        writer.write(handshake_request("/", (("X-Dup", "one"), ("x-DUP", "two"), ("X-Case", "MiXeD"))))
        await asyncio.wait_for(reader.read(), 5)
        writer.close()
    headers = scopes[1]["headers"]
    assert [name for name, _ in headers] == [name.lower() for name, _ in headers]
    assert [pair for pair in headers if pair[0].startswith(b"x-")] == [
        (b"x-dup", b"one"),
        (b"x-dup", b"two"),
        (b"x-case", b"MiXeD"),
    ]


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_scope_scheme_wss_over_tls(ws: str, tmp_path: Any) -> None:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    log: List[Message] = []
    schemes: List[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        schemes.append(scope["scheme"])
        await echo_app(log)(scope, receive, send)

    async with serve(app, ws, ssl_certfile=str(cert_file), ssl_keyfile=str(key_file)) as srv:
        async with connect(f"wss://127.0.0.1:{srv.port}/", ssl=context) as websocket:
            await websocket.send("over TLS")
            assert await websocket.recv() == "over TLS"
            await websocket.send(b"x" * 300_000)
            assert await websocket.recv() == b"x" * 300_000
    assert schemes == ["wss"]


# --- handshake -----------------------------------------------------------------------


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_accept_with_subprotocol_and_headers(ws: str) -> None:
    app = echo_app(
        subprotocol="superchat",
        headers=[(b"x-token", b"AbC dEf"), (b"x-multi", b"1"), (b"x-multi", b"2")],
    )
    async with serve(app, ws) as srv:
        async with connect(srv.uri + "/", subprotocols=["chat", "superchat"]) as websocket:  # type: ignore[list-item]
            assert websocket.subprotocol == "superchat"
            assert websocket.response is not None
            headers = websocket.response.headers
            assert headers.get_all("x-token") == ["AbC dEf"]
            assert headers.get_all("x-multi") == ["1", "2"]
            # uvicorn's default headers: server and date, once each.
            assert headers.get_all("server") == ["uvicorn"]
            assert len(headers.get_all("date")) == 1
            assert headers.get_all("sec-websocket-protocol") == ["superchat"]


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_accept_without_subprotocol_sends_none(ws: str) -> None:
    async with serve(echo_app(), ws) as srv:
        _, writer, head = await raw_upgrade(srv.port, headers=(("Sec-WebSocket-Protocol", "chat"),))
        writer.close()
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"sec-websocket-protocol" not in head.lower()


# websockets-sansio excluded: it puts a subprotocol the client did not offer in the 101, which
# RFC 6455 4.2.2 forbids (the client then fails the handshake itself).
@pytest.mark.parametrize("ws", [FASTWS])
@run
async def test_accept_with_a_subprotocol_not_offered_is_an_error(ws: str) -> None:
    errors: List[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        try:
            await send({"type": "websocket.accept", "subprotocol": "unoffered"})
        except RuntimeError as exc:
            errors.append(exc)
            raise

    async with serve(app, ws) as srv:
        reader, writer = await open_raw(srv.port)
        writer.write(handshake_request("/", (("Sec-WebSocket-Protocol", "chat"),)))
        response = HTTPResponse(await asyncio.wait_for(reader.read(), 5))
        writer.close()
    assert len(errors) == 1 and "unoffered" in str(errors[0])
    assert response.status == 500


@pytest.mark.parametrize("ws", BOTH)
@pytest.mark.parametrize(
    "accept",
    [{"headers": [(b"x-a", b"v\r\nInjected: 1")]}, {"subprotocol": "chat\r\nInjected: 1"}],
    ids=["header-value", "subprotocol"],
)
@run
async def test_accept_with_crlf_in_headers_is_refused(ws: str, accept: Message) -> None:
    """No response splitting: a CR LF from the app never reaches the wire; the app's
    send() raises, so the client gets a 500."""
    await _accept_refused(ws, accept)


# websockets-sansio excluded: it writes a header name with CR LF to the wire as it is (response
# splitting: "x-a\r\ninjected: 1" becomes a header of its own); websockets checks values only.
@pytest.mark.parametrize("ws", [FASTWS])
@run
async def test_accept_with_crlf_in_a_header_name_is_refused(ws: str) -> None:
    await _accept_refused(ws, {"headers": [(b"x-a\r\nInjected", b"1")]})


async def _accept_refused(ws: str, accept: Message) -> None:
    errors: List[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        try:
            await send({"type": "websocket.accept", **accept})
        except Exception as exc:  # noqa: BLE001 - which error is the backend's choice
            errors.append(exc)
            raise

    async with serve(app, ws) as srv:
        reader, writer = await open_raw(srv.port)
        writer.write(handshake_request("/", (("Sec-WebSocket-Protocol", "chat"),)))
        raw = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    assert b"njected" not in raw
    assert HTTPResponse(raw).status == 500
    assert len(errors) == 1


@pytest.mark.parametrize("ws", BOTH)
@pytest.mark.parametrize(
    "config, present, absent",
    [
        ({"server_header": False}, ["date"], ["server"]),
        ({"date_header": False}, ["server"], ["date"]),
        ({"headers": [("X-Config", "from config")]}, ["server", "date", "x-config"], []),
    ],
    ids=["no-server-header", "no-date-header", "headers-setting"],
)
@run
async def test_default_headers_follow_config(
    ws: str, config: Dict[str, Any], present: List[str], absent: List[str]
) -> None:
    async with serve(echo_app(), ws, **config) as srv:
        async with connect(srv.uri + "/") as websocket:
            assert websocket.response is not None
            headers = websocket.response.headers
    for name in present:
        assert len(headers.get_all(name)) == 1, name
    for name in absent:
        assert name not in headers
    if "headers" in config:
        assert headers["x-config"] == "from config"


# --- messages ------------------------------------------------------------------------


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_receive_text_and_bytes_including_empty_and_large(ws: str) -> None:
    got: List[Message] = []
    sent: List[Any] = ["héllo", b"\x00\x01\xff", "", b"", "x" * MIB, b"\x02" * MIB]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        for _ in sent:
            got.append(await receive())
        await send({"type": "websocket.close"})

    async with serve(app, ws) as srv:
        async with connect(srv.uri + "/", max_size=None) as websocket:
            for message in sent:
                await websocket.send(message)
            await drain_client(websocket)
    assert all(message["type"] == "websocket.receive" for message in got)
    # Exactly one of "text" and "bytes" is not None.
    for message in got:
        assert (message.get("text") is None) != (message.get("bytes") is None), message
    assert [message["text"] if message.get("text") is not None else message["bytes"] for message in got] == sent


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_receive_fragmented_message_with_ping_between(ws: str) -> None:
    got: List[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        got.append(await receive())
        await send({"type": "websocket.close"})

    async with serve(app, ws) as srv:
        reader, writer, _ = await raw_upgrade(srv.port)
        writer.write(client_frame(OP_TEXT, b"fra", fin=False))
        writer.write(client_frame(OP_PING, b"between"))
        writer.write(client_frame(0x0, "gmén".encode(), fin=False))
        writer.write(client_frame(0x0, b"ts", fin=True))
        assert await read_frame(reader) == (OP_PONG, True, b"between")
        assert (await read_frame(reader))[0] == OP_CLOSE
        writer.close()
    assert got == [{"type": "websocket.receive", "text": "fragménts"}]


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_send_text_and_bytes(ws: str) -> None:
    outgoing: List[Message] = [
        {"type": "websocket.send", "text": "héllo"},
        {"type": "websocket.send", "bytes": b"\x00\xff"},
        {"type": "websocket.send", "text": ""},
        {"type": "websocket.send", "bytes": b""},
        {"type": "websocket.send", "text": "y" * MIB},
        {"type": "websocket.send", "bytes": b"z", "text": None},  # both keys, one None
    ]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        for message in outgoing:
            await send(message)
        await send({"type": "websocket.close"})

    async with serve(app, ws) as srv:
        async with connect(srv.uri + "/", max_size=None) as websocket:
            received = [await websocket.recv() for _ in outgoing]
            await drain_client(websocket)
    assert received == ["héllo", b"\x00\xff", "", b"", "y" * MIB, b"z"]


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_invalid_utf8_from_client_closes_1007(ws: str) -> None:
    got: List[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        got.append(await receive())

    async with serve(app, ws) as srv:
        reader, writer, _ = await raw_upgrade(srv.port)
        writer.write(client_frame(OP_TEXT, b"ok \xff\xfe"))
        opcode, _, payload = await read_frame(reader)
        writer.close()
        await eventually(lambda: bool(got))
    assert opcode == OP_CLOSE and parse_close(payload)[0] == 1007
    assert got[0]["type"] == "websocket.disconnect" and got[0]["code"] == 1007


# --- closing -----------------------------------------------------------------------------


@pytest.mark.parametrize("ws", BOTH)
@pytest.mark.parametrize(
    "close, expected",
    [
        ({}, (1000, "")),
        ({"code": 4001, "reason": "bye now"}, (4001, "bye now")),
        ({"code": 1001, "reason": None}, (1001, "")),
    ],
    ids=["default", "code-and-reason", "reason-none"],
)
@run
async def test_app_closes_with_code_and_reason(ws: str, close: Message, expected: Tuple[int, str]) -> None:
    after: List[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", **close})
        after.append(await receive())

    async with serve(app, ws) as srv:
        async with connect(srv.uri + "/") as websocket:
            with pytest.raises(ConnectionClosed) as caught:
                await websocket.recv()
        await eventually(lambda: bool(after))
    assert caught.value.rcvd is not None
    assert (caught.value.rcvd.code, caught.value.rcvd.reason) == expected
    assert after == [{"type": "websocket.disconnect", "code": expected[0], "reason": expected[1]}]


@pytest.mark.parametrize("ws", BOTH)
@pytest.mark.parametrize(
    "payload, expected",
    [
        (close_payload(4002, "see you"), {"code": 4002, "reason": "see you"}),
        (close_payload(1000), {"code": 1000, "reason": ""}),
        (b"", {"code": 1005, "reason": ""}),
    ],
    ids=["code-and-reason", "normal", "no-status"],
)
@run
async def test_client_close_gives_disconnect_with_code_and_reason(ws: str, payload: bytes, expected: Message) -> None:
    log: List[Message] = []
    async with serve(echo_app(log), ws) as srv:
        reader, writer, _ = await raw_upgrade(srv.port)
        writer.write(client_frame(OP_TEXT, b"before"))
        assert await read_frame(reader) == (OP_TEXT, True, b"before")
        writer.write(client_frame(OP_CLOSE, payload))
        opcode, _, echoed = await read_frame(reader)
        assert opcode == OP_CLOSE and parse_close(echoed)[0] == expected["code"]
        assert await reader.read() == b""  # then the server closes TCP
        writer.close()
        await eventually(lambda: len(log) == 2)
    assert log[0] == {"type": "websocket.receive", "text": "before"}
    assert {key: log[1].get(key, "") for key in ("type", "code", "reason")} == {
        "type": "websocket.disconnect",
        **expected,
    }


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_close_before_accept_is_403(ws: str, logs: pytest.LogCaptureFixture) -> None:
    after: List[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.close"})
        after.append(await receive())

    async with serve(app, ws) as srv:
        with pytest.raises(InvalidStatus) as caught:
            async with connect(srv.uri + "/deny?q=1"):
                pass  # pragma: no cover
        await eventually(lambda: bool(after))
    assert caught.value.response.status_code == 403
    assert after == [{"type": "websocket.disconnect", "code": 1006}]
    assert any(m.endswith(' - "WebSocket /deny?q=1" 403') for m in messages(logs, logging.INFO))


@pytest.mark.parametrize("ws", BOTH)
@pytest.mark.parametrize("returns_at_once", [False, True], ids=["then-receives", "then-returns"])
@run
async def test_denial_response(ws: str, returns_at_once: bool, logs: pytest.LogCaptureFixture) -> None:
    after: List[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert "websocket.http.response" in scope["extensions"]
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"application/json"), (b"x-deny", b"Yes, Really")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b'{"detail":', "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b'"no"}'})
        if not returns_at_once:
            after.append(await receive())

    async with serve(app, ws) as srv:
        response = await http_response(srv.port, "/private")
        if not returns_at_once:
            await eventually(lambda: bool(after))
    assert response.status == 401
    assert response.body == b'{"detail":"no"}'
    assert response.get_all("content-type") == ["application/json"]
    assert response.get_all("x-deny") == ["Yes, Really"]
    assert response.get_all("content-length") in ([], [str(len(response.body))])
    if not returns_at_once:
        assert after == [{"type": "websocket.disconnect", "code": 1006}]
    assert any(m.endswith(' - "WebSocket /private" 401') for m in messages(logs, logging.INFO))
    assert not messages(logs, logging.ERROR)


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_denial_response_with_invalid_status_is_500(ws: str) -> None:
    errors: List[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        try:
            await send({"type": "websocket.http.response.start", "status": 700, "headers": []})
        except RuntimeError as exc:
            errors.append(exc)
            raise

    async with serve(app, ws) as srv:
        response = await http_response(srv.port)
    assert response.status == 500
    assert len(errors) == 1


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_app_returns_before_accept_is_500(ws: str, logs: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()

    async with serve(app, ws) as srv:
        response = await http_response(srv.port)
    assert response.status == 500
    # uvicorn's message, the same in its websockets-sansio and wsproto backends.
    assert messages(logs, logging.ERROR) == ["ASGI callable returned without completing handshake."]


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_app_raises_before_accept_is_500(ws: str, logs: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        raise ValueError("broken app")

    async with serve(app, ws) as srv:
        response = await http_response(srv.port)
    assert response.status == 500
    assert_app_exception_logged(logs, ValueError)


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_app_raises_after_accept(ws: str, logs: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "last words"})
        raise ValueError("broken app")

    message, close_code = await first_message_then_closed(app, ws)
    assert message == "last words"
    # uvicorn's backends close TCP without a close frame: the client sees 1006.
    assert close_code == 1006
    assert_app_exception_logged(logs, ValueError)


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_app_returns_without_close(ws: str, logs: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "bytes": b"bye"})

    message, close_code = await first_message_then_closed(app, ws)
    assert message == b"bye"
    assert close_code == 1006  # as uvicorn's own tests expect (no close frame)
    assert not messages(logs, logging.ERROR)


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_second_accept_is_an_error(ws: str) -> None:
    errors: List[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        try:
            await send({"type": "websocket.accept"})
        except RuntimeError as exc:
            errors.append(exc)
        await send({"type": "websocket.send", "text": "still open"})
        await send({"type": "websocket.close", "code": 4000})

    async with serve(app, ws) as srv:
        async with connect(srv.uri + "/") as websocket:
            assert await websocket.recv() == "still open"
            with pytest.raises(ConnectionClosed) as caught:
                await websocket.recv()
    assert len(errors) == 1 and "websocket.accept" in str(errors[0])
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 4000


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_return_value_other_than_none_is_logged(ws: str, logs: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> Any:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close"})
        return 123

    async with serve(app, ws) as srv:
        async with connect(srv.uri + "/") as websocket:
            await drain_client(websocket)
        await eventually(lambda: not srv.state.tasks)
    assert messages(logs, logging.ERROR) == ["ASGI callable should return None, but returned '123'."]


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_send_after_own_close_is_runtime_error(ws: str) -> None:
    errors: List[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close"})
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except Exception as exc:  # noqa: BLE001 - the type is what is tested
            errors.append(exc)

    async with serve(app, ws) as srv:
        async with connect(srv.uri + "/") as websocket:
            with pytest.raises(ConnectionClosed):
                await websocket.recv()
        await eventually(lambda: bool(errors))
    assert type(errors[0]) is RuntimeError


STR_AS_BYTES = {"type": "websocket.send", "bytes": "a str"}
BYTES_AS_TEXT = {"type": "websocket.send", "text": b"bytes"}


# websockets-sansio excluded for bytes given as text: it raises AttributeError (bytes.encode).
@pytest.mark.parametrize(
    "ws, message",
    [pytest.param(p.values[0], STR_AS_BYTES, id=f"{p.id}-str-as-bytes") for p in BOTH]
    + [pytest.param(BACKENDS["fastws"], BYTES_AS_TEXT, id="fastws-bytes-as-text")],
)
@run
async def test_send_with_the_wrong_type_is_a_type_error(ws: str, message: Message) -> None:
    """Nothing goes out for a payload of the wrong type: no text frame for a str
    given as ``bytes``."""
    errors: List[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        try:
            await send(message)
        except Exception as exc:  # noqa: BLE001 - the type is what is tested
            errors.append(exc)
        await send({"type": "websocket.send", "text": "after"})
        await send({"type": "websocket.close"})

    async with serve(app, ws) as srv:
        async with connect(srv.uri + "/") as websocket:
            assert await websocket.recv() == "after"
    assert [type(e) for e in errors] == [TypeError]


# websockets-sansio excluded: it marks the app closed before the close frame is
# refused, so its next receive() reports a close that never went out.
@pytest.mark.parametrize("ws", [FASTWS])
@pytest.mark.parametrize("close", [{"code": 999}, {"code": 1000, "reason": "x" * 124}], ids=["code-999", "long-reason"])
@run
async def test_invalid_close_is_an_error_and_leaves_the_connection_open(ws: str, close: Message) -> None:
    errors: List[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        try:
            await send({"type": "websocket.close", **close})
        except ValueError as exc:
            errors.append(exc)
        message = await receive()  # still open: the client's message comes
        await send({"type": "websocket.send", "text": message["text"]})
        await send({"type": "websocket.close", "code": 4000})

    async with serve(app, ws) as srv:
        async with connect(srv.uri + "/") as websocket:
            await websocket.send("still open")
            assert await websocket.recv() == "still open"
            with pytest.raises(ConnectionClosed) as caught:
                await websocket.recv()
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 4000
    assert len(errors) == 1


@pytest.mark.parametrize("ws", BOTH)
@pytest.mark.parametrize("how", ["close-frame", "tcp-reset"])
@run
async def test_send_after_peer_is_gone_raises_client_disconnected(
    ws: str, how: str, logs: pytest.LogCaptureFixture
) -> None:
    outcome = await _send_after_peer_is_gone(ws, how)
    disconnect, error = outcome
    assert disconnect["type"] == "websocket.disconnect"
    if how == "close-frame":
        assert disconnect["code"] == 1001
    assert isinstance(error, ClientDisconnected) and isinstance(error, OSError)
    assert not messages(logs, logging.ERROR)  # the app let it out: uvicorn does not log it


# websockets-sansio excluded: it reports 1005 (no status code) for a TCP connection lost without
# a close frame; RFC 6455 7.1.5 makes that 1006 (abnormal closure).
@pytest.mark.parametrize("ws", [FASTWS])
@run
async def test_connection_lost_without_close_frame_is_1006(ws: str) -> None:
    disconnect, _ = await _send_after_peer_is_gone(ws, "tcp-reset")
    assert disconnect["type"] == "websocket.disconnect"
    assert (disconnect["code"], disconnect.get("reason", "")) == (1006, "")


async def _send_after_peer_is_gone(ws: str, how: str) -> List[Any]:
    """The app's receive() after the client left, and what its send() raises then."""
    outcome: List[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        outcome.append(await receive())
        try:
            await send({"type": "websocket.send", "text": "anyone there?"})
        except OSError as exc:
            outcome.append(exc)
            raise  # uvicorn must swallow it without logging an error

    async with serve(app, ws) as srv:
        reader, writer, _ = await raw_upgrade(srv.port)
        if how == "close-frame":
            writer.write(client_frame(OP_CLOSE, close_payload(1001)))
            await reader.read()
            writer.close()
        else:
            writer.transport.abort()
        await eventually(lambda: len(outcome) == 2)
    return outcome


# websockets-sansio excluded: its receive() waits forever after the disconnect was delivered
# (nothing is put on its queue again); the ASGI spec gives the app no way to know that.
@pytest.mark.parametrize("ws", [FASTWS])
@run
async def test_receive_after_disconnect_returns_disconnect_again(ws: str) -> None:
    got: List[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        got.append(await receive())
        got.append(await asyncio.wait_for(receive(), 2))
        got.append(await asyncio.wait_for(receive(), 2))

    async with serve(app, ws) as srv:
        async with connect(srv.uri + "/") as websocket:
            await websocket.close(4005, "done")
        await eventually(lambda: len(got) == 3)
    assert got == [{"type": "websocket.disconnect", "code": 4005, "reason": "done"}] * 3


# --- logging ---------------------------------------------------------------------------


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_access_log_line_for_accepted(ws: str, logs: pytest.LogCaptureFixture) -> None:
    async with serve(echo_app(), ws, root_path="/api") as srv:
        async with connect(srv.uri + '/a%20b%22c?x=1&y="') as websocket:
            client = websocket.local_address
    records = [r for r in logs.records if "[accepted]" in r.getMessage()]
    assert len(records) == 1
    assert records[0].levelno == logging.INFO and records[0].name == "uvicorn.error"
    # uvicorn logs the path (root_path included) percent-encoded and the query string; from
    # 0.55 on a '"' in the query is %22 too, so that the quoted field cannot be broken out of.
    quote = "%22" if UVICORN >= (0, 55) else '"'
    expected = f'{client[0]}:{client[1]} - "WebSocket /api/a%20b%22c?x=1&y={quote}" [accepted]'
    assert records[0].getMessage() == expected


# --- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_ws_max_size(ws: str) -> None:
    log: List[Message] = []
    async with serve(echo_app(log), ws, ws_max_size=1000) as srv:
        async with connect(srv.uri + "/", compression=None) as websocket:
            await websocket.send(b"a" * 1000)
            assert await websocket.recv() == b"a" * 1000
            await websocket.send(b"b" * 1001)
            with pytest.raises(ConnectionClosed) as caught:
                await websocket.recv()
        await eventually(lambda: len(log) == 2)
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 1009
    assert log[1]["type"] == "websocket.disconnect" and log[1]["code"] == 1009


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_ws_max_size_applies_after_decompression(ws: str) -> None:
    log: List[Message] = []
    async with serve(echo_app(log), ws, ws_max_size=10_000) as srv:
        async with connect(srv.uri + "/", compression="deflate") as websocket:
            assert [extension.name for extension in websocket.protocol.extensions] == ["permessage-deflate"]
            await websocket.send(b"\x00" * 10_000)
            assert await websocket.recv() == b"\x00" * 10_000
            await websocket.send(b"\x00" * 100_000)  # about 100 bytes on the wire
            with pytest.raises(ConnectionClosed) as caught:
                await websocket.recv()
        await eventually(lambda: len(log) == 2)
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 1009
    assert log[1]["type"] == "websocket.disconnect" and log[1]["code"] == 1009


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_reading_pauses_while_the_app_does_not_receive(ws: str) -> None:
    """``ws_max_queue``: a bounded number of messages waits for ``receive()``; past
    it the server stops reading, so the client's writes back up."""
    count = 512
    frame = client_frame(OP_BINARY, b"\x00" * 65536)
    go = asyncio.Event()
    received = 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal received
        await receive()
        await send({"type": "websocket.accept"})
        await go.wait()
        for _ in range(count):
            message = await receive()
            assert message["type"] == "websocket.receive" and len(message["bytes"]) == 65536
            received += 1
        await send({"type": "websocket.close"})

    async with serve(app, ws, ws_max_queue=4) as srv:
        reader, writer, _ = await raw_upgrade(srv.port, sndbuf=65536)
        for _ in range(count):
            writer.write(frame)
        await asyncio.sleep(0.3)
        backlog = writer.transport.get_write_buffer_size()
        assert received == 0
        # 32 MiB written; the server read at most a few MiB (queue and socket buffers).
        assert backlog > 16 * MIB, backlog
        go.set()
        await writer.drain()
        assert (await read_frame(reader))[0] == OP_CLOSE
        writer.close()
    assert received == count


# websockets-sansio excluded: it has no ws_max_queue (it stops reading after every message).
@pytest.mark.parametrize("ws", [FASTWS])
@pytest.mark.parametrize("max_queue", [4, 64])
@run
async def test_ws_max_queue_bounds_the_messages_read_ahead(ws: str, max_queue: int) -> None:
    """The server takes ``ws_max_queue`` messages off the socket (and what its
    last read held) before it pauses; counted from what the client could not send."""
    count, size = 512, 65536
    frame = client_frame(OP_BINARY, b"\x00" * size)
    go = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await go.wait()
        for _ in range(count):
            await receive()
        await send({"type": "websocket.close"})

    async with serve(app, ws, ws_max_queue=max_queue) as srv:
        reader, writer, _ = await raw_upgrade(srv.port, sndbuf=size)
        # Small kernel buffers on both ends, so that what left the client is what the server read.
        server_socket = only_connection(srv).transport.get_extra_info("socket")
        server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        for _ in range(count):
            writer.write(frame)
        await asyncio.sleep(0.3)
        taken = count - writer.transport.get_write_buffer_size() / len(frame)
        go.set()
        await writer.drain()
        assert (await read_frame(reader))[0] == OP_CLOSE
        writer.close()
    # Socket buffers (about 2 x 128 KiB) and the rest of the read that filled the queue: a few more.
    assert max_queue <= taken <= max_queue + 12, taken


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_close_while_reading_is_paused_still_reads_the_peer_close(ws: str) -> None:
    """The app closes with messages it never took and reading paused: the server
    reads on (discarding them) to find the client's close frame, and closes TCP
    then, not after close_timeout (10 s)."""
    count, size = 64, 65536
    backlog_seen = asyncio.Event()
    after: List[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await backlog_seen.wait()
        await send({"type": "websocket.close", "code": 4000})
        # What was queued before the close may still come (websockets-sansio), then the disconnect.
        for _ in range(count + 1):
            message = await receive()
            if message["type"] == "websocket.disconnect":
                after.append(message)
                return

    async with serve(app, ws, ws_max_queue=1) as srv:
        reader, writer, _ = await raw_upgrade(srv.port, sndbuf=size)
        for _ in range(count):
            writer.write(client_frame(OP_BINARY, b"\x00" * size))
        await asyncio.sleep(0.2)
        assert writer.transport.get_write_buffer_size() > 2 * MIB  # the server stopped reading
        backlog_seen.set()
        opcode, _, payload = await read_frame(reader)
        assert opcode == OP_CLOSE and parse_close(payload)[0] == 4000
        writer.write(client_frame(OP_CLOSE, payload))
        start = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert time.monotonic() - start < 3
        writer.close()
        await eventually(lambda: bool(after))
    assert after == [{"type": "websocket.disconnect", "code": 4000, "reason": ""}]


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_send_waits_while_the_client_does_not_read(ws: str) -> None:
    """Backpressure: the app's ``send()`` does not buffer without bound."""
    count, size = 64, 256 * 1024
    sent = 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal sent
        await receive()
        await send({"type": "websocket.accept"})
        for _ in range(count):
            await send({"type": "websocket.send", "bytes": b"\x01" * size})
            sent += 1
        await send({"type": "websocket.close"})

    async with serve(app, ws) as srv:
        reader, writer, _ = await raw_upgrade(srv.port, rcvbuf=65536)
        await asyncio.sleep(0.3)
        stalled_at = sent
        # 16 MiB to send; the client's buffers take 256 KiB, the server's socket a few MiB at
        # most (net.ipv4.tcp_wmem): the rest must wait.
        assert stalled_at < count // 2, stalled_at
        for _ in range(count):
            assert await read_frame(reader) == (OP_BINARY, True, b"\x01" * size)
        assert (await read_frame(reader))[0] == OP_CLOSE
        writer.close()
    assert sent == count


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_keepalive_ping_unanswered_closes_1011(ws: str) -> None:
    async with serve(echo_app(), ws, ws_ping_interval=0.1, ws_ping_timeout=0.2) as srv:
        reader, writer, _ = await raw_upgrade(srv.port)
        start = time.monotonic()
        opcode, _, _ = await read_frame(reader)
        pinged = time.monotonic()
        assert opcode == OP_PING
        opcode, _, payload = await read_frame(reader)  # not answered: the server gives up
        failed = time.monotonic()
        assert await reader.read() == b""
        writer.close()
    assert 0.05 <= pinged - start < 1.0
    assert 0.15 <= failed - pinged < 1.0
    assert opcode == OP_CLOSE and parse_close(payload)[0] == 1011


# websockets-sansio excluded: its app gets code 1005 though the server sent 1011.
@pytest.mark.parametrize("ws", [FASTWS])
@run
async def test_keepalive_ping_timeout_disconnects_the_app_with_1011(ws: str) -> None:
    log: List[Message] = []
    async with serve(echo_app(log), ws, ws_ping_interval=0.1, ws_ping_timeout=0.2) as srv:
        reader, writer, _ = await raw_upgrade(srv.port)
        assert await reader.read()  # a ping, unanswered, then the close frame and EOF
        writer.close()
        await eventually(lambda: bool(log))
    assert log == [{"type": "websocket.disconnect", "code": 1011, "reason": "keepalive ping timeout"}]
    assert type(log[0]["code"]) is int  # a plain int, as every other disconnect code


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_keepalive_ping_answered_keeps_the_connection(ws: str) -> None:
    async with serve(echo_app(), ws, ws_ping_interval=0.05, ws_ping_timeout=0.2) as srv:
        async with connect(srv.uri + "/", ping_interval=None) as websocket:  # answers pings
            protocol = only_connection(srv)
            assert protocol.ping_timer is not None
            await eventually(lambda: protocol.ping_sent_at > 0)
            await asyncio.sleep(0.5)
            await websocket.send("still here")
            assert await websocket.recv() == "still here"
            assert not protocol.transport.is_closing()


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_keepalive_off(ws: str) -> None:
    async with serve(echo_app(), ws, ws_ping_interval=None) as srv:
        async with connect(srv.uri + "/", ping_interval=None) as websocket:
            await websocket.send("x")
            await websocket.recv()
            protocol = only_connection(srv)
            assert protocol.ping_timer is None
            assert protocol.ping_sent_at == 0.0


@pytest.mark.parametrize("ws", BOTH)
@pytest.mark.parametrize("deflate", [True, False], ids=["deflate-on", "deflate-off"])
@run
async def test_per_message_deflate_setting(ws: str, deflate: bool) -> None:
    async with serve(echo_app(), ws, ws_per_message_deflate=deflate) as srv:
        offer = (("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),)
        _, writer, head = await raw_upgrade(srv.port, headers=offer)
        writer.close()
        async with connect(srv.uri + "/", compression="deflate") as websocket:
            text = "compressible " * 20_000
            await websocket.send(text)
            assert await websocket.recv() == text
            names = [extension.name for extension in websocket.protocol.extensions]
    assert (b"permessage-deflate" in head.lower()) is deflate
    assert names == (["permessage-deflate"] if deflate else [])


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_server_state_connections_and_tasks(ws: str) -> None:
    async with serve(echo_app(), ws) as srv:
        assert not srv.state.connections and not srv.state.tasks
        async with connect(srv.uri + "/") as websocket:
            await websocket.send("x")
            await websocket.recv()
            protocol = only_connection(srv)
            (task,) = srv.state.tasks
            assert not task.done()
        await eventually(lambda: not srv.state.connections and not srv.state.tasks)
        assert task.done()
    assert protocol not in srv.state.connections


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_graceful_shutdown_closes_open_connections_1012(ws: str) -> None:
    log: List[Message] = []
    async with serve(echo_app(log), ws) as srv:
        async with connect(srv.uri + "/") as websocket:
            await websocket.send("x")
            await websocket.recv()
            srv.server.should_exit = True
            with pytest.raises(ConnectionClosed) as caught:
                await websocket.recv()
        await eventually(lambda: len(log) == 2)
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 1012
    assert log[1] == {"type": "websocket.disconnect", "code": 1012}


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_graceful_shutdown_during_the_handshake_is_500(ws: str) -> None:
    got: List[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        got.append(await receive())
        got.append(await receive())  # still deciding: the server stops meanwhile

    async with serve(app, ws) as srv:
        reader, writer = await open_raw(srv.port)
        writer.write(handshake_request())
        await eventually(lambda: bool(got))
        srv.server.should_exit = True
        response = HTTPResponse(await asyncio.wait_for(reader.read(), 5))
        writer.close()
        await eventually(lambda: len(got) == 2)
    assert response.status == 500
    assert got == [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1006}]


# --- what uvicorn's tooling reads on the protocol object ----------------------------------


@pytest.mark.parametrize("ws", BOTH)
@run
async def test_protocol_attributes(ws: str) -> None:
    proceed = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await proceed.wait()
        await send({"type": "websocket.close"})
        await receive()

    async with serve(app, ws) as srv:
        reader, writer, _ = await raw_upgrade(srv.port)
        await eventually(lambda: len(srv.state.connections) == 1)
        protocol = only_connection(srv)
        assert isinstance(protocol, asyncio.BaseProtocol)
        assert protocol.transport is not None and not protocol.transport.is_closing()
        assert isinstance(protocol.close_timeout, (int, float)) and protocol.close_timeout > 0
        assert protocol.close_timer is None
        assert protocol.ping_timer is None  # keepalive is off in these tests
        assert protocol.ping_sent_at == 0.0
        methods = ("shutdown", "pause_writing", "resume_writing", "connection_made", "connection_lost", "data_received")
        for method in methods:
            assert callable(getattr(protocol, method))
        proceed.set()
        assert (await read_frame(reader))[0] == OP_CLOSE
        # Our close frame waits for the client's: the close timer runs meanwhile.
        await eventually(lambda: protocol.close_timer is not None)
        assert not protocol.transport.is_closing()
        writer.write(client_frame(OP_CLOSE, close_payload(1000)))
        assert await reader.read() == b""
        writer.close()
        await eventually(lambda: not srv.state.connections)
    assert protocol.close_timer is None


# --- environment ---------------------------------------------------------------------------


def test_runs_on_the_event_loop_asked_for() -> None:
    """The suite runs on uvloop under FASTWS_TEST_UVLOOP=1 (see asyncio_helpers.run)."""

    @run
    async def loop_name() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert loop_name().startswith("uvloop") is (os.environ.get("FASTWS_TEST_UVLOOP") == "1")

"""Real ASGI frameworks and real clients through uvicorn with fastws's WebSocket
backend (``fastws.uvicorn:WebSocketProtocol``).

Apps: Starlette (routes, ``WebSocketEndpoint``, subprotocols, extra headers,
close codes both ways, JSON), FastAPI (path and query parameters, a
dependency that refuses the handshake, exceptions before and after accept) and
Django Channels (async and sync consumers, a group through the in-memory
channel layer). Clients: websockets, aiohttp, fastws and headless Chromium,
with permessage-deflate on and off.

Where the ASGI spec leaves the outcome to the server (how an app error or an
abrupt disconnect shows), the test runs on uvicorn's own ``websockets-sansio``
backend too and asserts that fastws gives what it gives.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from typing import Any, ClassVar, Dict, List, Optional, Set

import aiohttp
import django
import pytest
from channels.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from django.conf import settings
from django.urls import path as django_path
from fastapi import Depends, FastAPI, Query, WebSocketException, status
from starlette.applications import Starlette
from starlette.endpoints import WebSocketEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from test_browser import BROWSER, PAGE, run_chromium
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as websockets_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import fastws

from asyncio_helpers import run
from uvicorn_helpers import BACKENDS, uvicorn_logs, uvicorn_server  # noqa: F401 (the logs fixture)

KiB, MiB = 1024, 1024 * 1024
TEXT = "héllo wörld ✓ 🎉"  # 1- to 4-byte UTF-8 sequences

#: The behaviour tests run on fastws's backend and on uvicorn's own reference one.
BOTH = pytest.mark.parametrize("backend", ["fastws", "websockets-sansio"])

# Django: minimal settings, no project on disk; the in-memory channel layer for groups.
if not settings.configured:
    settings.configure(
        SECRET_KEY="fastws-tests",
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        INSTALLED_APPS=["channels"],
        CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
        DATABASES={},
        USE_TZ=True,
    )
django.setup()


# --- helpers -----------------------------------------------------------------------------


def serve(app: Any, backend: str = "fastws", **config: Any) -> Any:
    """``uvicorn_server`` on one of ``BACKENDS``, leaving logging as it is (no
    ``dictConfig``, which would drop the handler the ``logs`` fixture adds)."""
    config.setdefault("log_config", None)
    return uvicorn_server(app, ws=BACKENDS[backend], **config)


def tracebacks(caplog: pytest.LogCaptureFixture) -> List[tuple]:
    """(logger, level, message, exception type) of every record with a traceback."""
    return [
        (r.name, r.levelname, r.getMessage().strip(), r.exc_info[0])
        for r in caplog.records
        if r.exc_info and r.exc_info[0] is not None
    ]


def raised(caplog: pytest.LogCaptureFixture) -> List[str]:
    """The exceptions of the logged tracebacks, as text."""
    return [str(r.exc_info[1]) for r in caplog.records if r.exc_info and r.exc_info[1] is not None]


def assert_quiet(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing above INFO and no traceback, on any logger."""
    bad = [(r.name, r.levelname, r.getMessage()) for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]
    assert bad == []


#: What uvicorn logs for an exception that escapes an app: one ERROR on
#: ``uvicorn.error`` with the app's traceback.
APP_ERROR = [("uvicorn.error", "ERROR", "Exception in ASGI application", RuntimeError)]


def header_bytes(value: str) -> bytes:
    """A header value as the bytes on the wire: websockets 17 reads them as
    ISO-8859-1, older versions as ASCII with surrogate escapes."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("ascii", "surrogateescape")


async def closed_by_server(websocket: ClientConnection) -> tuple:
    """Read until the connection ends: (close code, reason) as the client saw them."""
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(websocket.recv(), 5)
    return websocket.close_code, websocket.close_reason


# --- Starlette ---------------------------------------------------------------------------


def starlette_app(record: Dict[str, Any]) -> Starlette:
    """Starlette routes for the tests below; what the app saw goes into ``record``."""
    record["disconnect"] = asyncio.Queue()
    record["after_close"] = asyncio.Queue()

    async def room(websocket: WebSocket) -> None:
        # The first of the server's subprotocols that the client offered.
        offered = websocket.scope["subprotocols"]
        chosen = next((p for p in ("chat.v1", "chat.v2") if p in offered), None)
        await websocket.accept(subprotocol=chosen, headers=[(b"x-room", websocket.path_params["name"].encode())])
        await websocket.send_json(
            {
                "room": websocket.path_params["name"],
                "user": websocket.query_params["user"],
                "token": websocket.headers["x-token"],
                "offered": offered,
                "path": websocket.scope["path"],
                "raw_path": websocket.scope["raw_path"].decode(),
                "query_string": websocket.scope["query_string"].decode(),
                "scheme": websocket.url.scheme,
            }
        )
        await websocket.close()

    async def close_me(websocket: WebSocket) -> None:
        await websocket.accept()
        code = int(await websocket.receive_text())
        await websocket.close(code, "bye now")
        # After its close, the app gets the disconnect when the client's echo arrives.
        record["after_close"].put_nowait(await websocket.receive())

    async def wait_disconnect(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect as exc:
            record["disconnect"].put_nowait((exc.code, exc.reason))

    async def json_echo(websocket: WebSocket) -> None:
        await websocket.accept()
        mode = websocket.query_params.get("mode", "text")
        try:
            while True:
                data = await websocket.receive_json(mode=mode)
                await websocket.send_json({"got": data}, mode=mode)
        except WebSocketDisconnect as exc:
            record["disconnect"].put_nowait((exc.code, exc.reason))

    async def upper(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():  # ends on the client's close
            await websocket.send_text(text.upper())
        record["iter_text_done"] = True

    return Starlette(
        routes=[
            WebSocketRoute("/rooms/{name}", room),
            WebSocketRoute("/close-me", close_me),
            WebSocketRoute("/wait-disconnect", wait_disconnect),
            WebSocketRoute("/json", json_echo),
            Mount("/api", routes=[WebSocketRoute("/upper", upper)]),
        ]
    )


@run
async def test_starlette_path_params_query_headers_subprotocol(logs: Any) -> None:
    """Not compared with websockets-sansio: before uvicorn 0.40 or so (0.39 is
    what Python 3.9 gets) it put the raw Sec-WebSocket-Protocol header values
    in ``scope["subprotocols"]``, unsplit."""
    record: Dict[str, Any] = {}
    async with serve(starlette_app(record)) as srv:
        async with websockets_connect(
            srv.uri + "/rooms/caf%C3%A9?user=al%20ice&x=1",
            subprotocols=["chat.v2", "chat.v1", "other"],  # the server prefers chat.v1
            additional_headers={"X-Token": "t0k3n"},
        ) as websocket:
            assert websocket.subprotocol == "chat.v1"
            assert header_bytes(websocket.response.headers["X-Room"]) == "café".encode()
            seen = json.loads(await websocket.recv())
            assert await closed_by_server(websocket) == (1000, "")
    assert seen == {
        "room": "café",
        "user": "al ice",
        "token": "t0k3n",
        "offered": ["chat.v2", "chat.v1", "other"],
        "path": "/rooms/café",
        "raw_path": "/rooms/caf%C3%A9",
        "query_string": "user=al%20ice&x=1",
        "scheme": "ws",
    }
    assert_quiet(logs)


@BOTH
@run
async def test_starlette_no_subprotocol_when_none_matches(logs: Any, backend: str) -> None:
    record: Dict[str, Any] = {}
    async with serve(starlette_app(record), backend) as srv:
        async with websockets_connect(
            srv.uri + "/rooms/r?user=u", subprotocols=["mqtt"], additional_headers={"X-Token": "t"}
        ) as websocket:
            assert websocket.subprotocol is None
            assert "Sec-WebSocket-Protocol" not in websocket.response.headers
            assert json.loads(await websocket.recv())["offered"] == ["mqtt"]
    assert_quiet(logs)


@BOTH
@run
async def test_starlette_close_code_and_reason_reach_the_client(logs: Any, backend: str) -> None:
    record: Dict[str, Any] = {}
    async with serve(starlette_app(record), backend) as srv:
        for code in [1000, 1001, 1008, 3000, 4999]:
            async with websockets_connect(srv.uri + "/close-me") as websocket:
                await websocket.send(str(code))
                assert await closed_by_server(websocket) == (code, "bye now")
            # The client echoed the code: the app's last receive() is the disconnect.
            after = await asyncio.wait_for(record["after_close"].get(), 5)
            assert (after["type"], after["code"]) == ("websocket.disconnect", code)
    assert_quiet(logs)


@BOTH
@run
async def test_starlette_sees_the_clients_close_code_and_reason(logs: Any, backend: str) -> None:
    record: Dict[str, Any] = {}
    async with serve(starlette_app(record), backend) as srv:
        for code, reason in [(1000, ""), (1001, "going away"), (4002, "client bye é"), (3999, "r" * 123)]:
            async with websockets_connect(srv.uri + "/wait-disconnect") as websocket:
                await websocket.send("hello")
                await websocket.close(code, reason)
                assert websocket.close_code == code  # the server echoed it
            assert await asyncio.wait_for(record["disconnect"].get(), 5) == (code, reason)
    assert_quiet(logs)


@BOTH
@run
async def test_starlette_close_frame_without_a_code_is_1005(logs: Any, backend: str) -> None:
    """RFC 6455 7.1.5: a close frame with no payload reads as 1005 (no status)."""
    record: Dict[str, Any] = {}
    async with serve(starlette_app(record), backend) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(
            b"GET /wait-disconnect HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101 ")
        writer.write(b"\x88\x80\0\0\0\0")  # close, masked, empty
        assert await asyncio.wait_for(reader.read(), 5) == b"\x88\x00"  # echoed empty, then EOF
        writer.close()
        assert await asyncio.wait_for(record["disconnect"].get(), 5) == (1005, "")
    assert_quiet(logs)


@BOTH
@run
async def test_starlette_abrupt_disconnect_code(logs: Any, backend: str) -> None:
    """The client's TCP connection goes away with no close frame. The ASGI spec
    leaves the code open ("per the WebSocket spec"): fastws gives 1006, what
    RFC 6455 7.1.5 calls a connection closed without a close frame (uvicorn's
    legacy ``websockets`` backend too); uvicorn's ``websockets-sansio`` and
    ``wsproto`` backends give 1005."""
    record: Dict[str, Any] = {}
    async with serve(starlette_app(record), backend) as srv:
        websocket = await websockets_connect(srv.uri + "/wait-disconnect")
        await websocket.send("hello")
        websocket.transport.abort()
        expected = {"fastws": 1006, "websockets-sansio": 1005}[backend]
        assert await asyncio.wait_for(record["disconnect"].get(), 5) == (expected, "")
    assert_quiet(logs)


@BOTH
@pytest.mark.parametrize("mode", ["text", "binary"])
@run
async def test_starlette_send_json_receive_json(logs: Any, backend: str, mode: str) -> None:
    record: Dict[str, Any] = {}
    document = {"a": [1, 2.5, None, True], "é": "✓ 🎉", "nested": {"n": 10**20}}
    async with serve(starlette_app(record), backend) as srv:
        async with websockets_connect(srv.uri + f"/json?mode={mode}") as websocket:
            encoded = json.dumps(document)
            await websocket.send(encoded if mode == "text" else encoded.encode())
            answer = await websocket.recv()
            assert isinstance(answer, str if mode == "text" else bytes)
            assert json.loads(answer) == {"got": document}
        assert await asyncio.wait_for(record["disconnect"].get(), 5) == (1000, "")
    assert_quiet(logs)


@BOTH
@run
async def test_starlette_iter_text_under_a_mount(logs: Any, backend: str) -> None:
    record: Dict[str, Any] = {}
    async with serve(starlette_app(record), backend) as srv:
        async with websockets_connect(srv.uri + "/api/upper") as websocket:
            for word in ["a", TEXT, "x" * 100 * KiB]:
                await websocket.send(word)
                assert await websocket.recv() == word.upper()
        for _ in range(100):
            if record.get("iter_text_done"):
                break
            await asyncio.sleep(0.01)
    assert record.get("iter_text_done")
    assert_quiet(logs)


class TextEndpoint(WebSocketEndpoint):
    encoding = "text"
    closes: ClassVar[List[int]] = []

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        await websocket.send_text(f"text:{data}")

    async def on_disconnect(self, websocket: WebSocket, close_code: int) -> None:
        self.closes.append(close_code)


class BytesEndpoint(WebSocketEndpoint):
    encoding = "bytes"

    async def on_connect(self, websocket: WebSocket) -> None:
        offered = websocket.scope["subprotocols"]
        await websocket.accept(subprotocol=offered[0] if offered else None)

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        await websocket.send_bytes(data[::-1])


class JsonEndpoint(WebSocketEndpoint):
    encoding = "json"

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        await websocket.send_json({"sum": sum(data["numbers"])})


ENDPOINTS = Starlette(
    routes=[
        WebSocketRoute("/text", TextEndpoint),
        WebSocketRoute("/bytes", BytesEndpoint),
        WebSocketRoute("/json", JsonEndpoint),
    ]
)


@BOTH
@run
async def test_starlette_websocket_endpoint_classes(logs: Any, backend: str) -> None:
    TextEndpoint.closes.clear()
    async with serve(ENDPOINTS, backend) as srv:
        async with websockets_connect(srv.uri + "/text") as websocket:
            await websocket.send(TEXT)
            assert await websocket.recv() == f"text:{TEXT}"
            await websocket.close(4010)
        async with websockets_connect(srv.uri + "/bytes", subprotocols=["bin"]) as websocket:
            assert websocket.subprotocol == "bin"
            await websocket.send(b"\x00\x01\xff")
            assert await websocket.recv() == b"\xff\x01\x00"
        async with websockets_connect(srv.uri + "/json") as websocket:
            await websocket.send(json.dumps({"numbers": [1, 2, 3]}))
            assert json.loads(await websocket.recv()) == {"sum": 6}
            await websocket.send(json.dumps({"numbers": [10]}).encode())  # JSON in a binary message too
            assert json.loads(await websocket.recv()) == {"sum": 10}
        for _ in range(100):
            if TextEndpoint.closes:
                break
            await asyncio.sleep(0.01)
    assert TextEndpoint.closes == [4010]
    assert_quiet(logs)


WRONG_DATA = [
    ("/text", b"bytes", "Expected text websocket messages, but got bytes"),
    ("/bytes", "text", "Expected bytes websocket messages, but got text"),
    ("/json", "{not json", "Malformed JSON data received."),
]


@BOTH
@run
async def test_starlette_endpoint_refuses_the_wrong_data_with_1003(logs: Any, backend: str) -> None:
    """Starlette closes with 1003 and then raises: the client sees the 1003,
    uvicorn logs the app's exception (one traceback per connection)."""
    async with serve(ENDPOINTS, backend) as srv:
        for count, (route, message, _) in enumerate(WRONG_DATA, 1):
            async with websockets_connect(srv.uri + route) as websocket:
                await websocket.send(message)
                assert await closed_by_server(websocket) == (1003, "")
            for _ in range(100):
                if len(tracebacks(logs)) == count:
                    break
                await asyncio.sleep(0.01)
    assert tracebacks(logs) == APP_ERROR * len(WRONG_DATA)
    assert raised(logs) == [error for _, _, error in WRONG_DATA]


# --- FastAPI -----------------------------------------------------------------------------


def fastapi_app(record: Dict[str, Any]) -> FastAPI:
    app = FastAPI()
    rooms: Dict[str, Set[Any]] = {}
    record["left"] = []

    async def require_token(token: Optional[str] = Query(None)) -> str:
        if token != "secret":
            raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason="bad token")
        return token

    @app.websocket("/ws/{room}")
    async def chat(
        websocket: WebSocket,
        room: str,
        name: str = Query(...),
        token: str = Depends(require_token),
        repeat: int = Query(1),
    ) -> None:
        await websocket.accept()
        members = rooms.setdefault(room, set())
        members.add(websocket)
        try:
            while True:
                text = await websocket.receive_text()
                for member in list(members):
                    await member.send_text(f"{name}@{room}: {text * repeat}")
        except WebSocketDisconnect as exc:
            members.discard(websocket)
            record["left"].append((name, exc.code))
            for member in list(members):
                await member.send_text(f"{name} left with {exc.code}")

    @app.websocket("/raise-before-accept")
    async def raise_before(websocket: WebSocket) -> None:
        raise RuntimeError("boom before accept")

    @app.websocket("/raise-after-accept")
    async def raise_after(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("accepted")
        await websocket.receive_text()
        raise RuntimeError("boom after accept")

    @app.websocket("/return-without-accept")
    async def no_accept(websocket: WebSocket) -> None:
        return None

    return app


@BOTH
@run
async def test_fastapi_room_with_depends_and_query(logs: Any, backend: str) -> None:
    record: Dict[str, Any] = {}
    async with serve(fastapi_app(record), backend) as srv:
        alice = await websockets_connect(srv.uri + "/ws/lobby?token=secret&name=alice")
        bob = await websockets_connect(srv.uri + "/ws/lobby?token=secret&name=bob&repeat=2")
        await alice.send("hi")
        assert await asyncio.wait_for(alice.recv(), 5) == "alice@lobby: hi"
        assert await asyncio.wait_for(bob.recv(), 5) == "alice@lobby: hi"
        await bob.send("yo")
        assert await asyncio.wait_for(alice.recv(), 5) == "bob@lobby: yoyo"
        assert await asyncio.wait_for(bob.recv(), 5) == "bob@lobby: yoyo"
        await bob.close(1001)
        assert await asyncio.wait_for(alice.recv(), 5) == "bob left with 1001"
        await alice.close()
        for _ in range(100):
            if len(record["left"]) == 2:
                break
            await asyncio.sleep(0.01)
    assert record["left"] == [("bob", 1001), ("alice", 1000)]
    assert_quiet(logs)


@BOTH
@run
async def test_fastapi_refusal_before_accept_is_http_403(logs: Any, backend: str) -> None:
    """A dependency raising WebSocketException, or a query parameter that does
    not validate, closes before accept: uvicorn refuses the handshake with 403."""
    record: Dict[str, Any] = {}
    async with serve(fastapi_app(record), backend) as srv:
        for query in [
            "?name=mallory",  # no token
            "?name=mallory&token=wrong",
            "?token=secret",  # a required query parameter missing
            "?token=secret&name=x&repeat=notanint",  # one that does not validate
        ]:
            with pytest.raises(InvalidStatus) as info:
                await websockets_connect(srv.uri + "/ws/lobby" + query)
            assert info.value.response.status_code == 403, query
        # The server goes on serving.
        async with websockets_connect(srv.uri + "/ws/lobby?token=secret&name=ok") as websocket:
            await websocket.send("still fine")
            assert await websocket.recv() == "ok@lobby: still fine"
    assert tracebacks(logs) == []


@BOTH
@run
async def test_fastapi_exception_before_accept_is_http_500(logs: Any, backend: str) -> None:
    record: Dict[str, Any] = {}
    async with serve(fastapi_app(record), backend) as srv:
        with pytest.raises(InvalidStatus) as info:
            await websockets_connect(srv.uri + "/raise-before-accept")
        assert info.value.response.status_code == 500
        assert info.value.response.body == b"Internal Server Error"
    assert tracebacks(logs) == APP_ERROR
    assert raised(logs) == ["boom before accept"]


@BOTH
@run
async def test_fastapi_exception_after_accept_drops_the_connection(logs: Any, backend: str) -> None:
    """uvicorn's own backend closes TCP without a close frame when the app
    raises after accept: the client sees 1006 (no close frame received)."""
    record: Dict[str, Any] = {}
    async with serve(fastapi_app(record), backend) as srv:
        async with websockets_connect(srv.uri + "/raise-after-accept") as websocket:
            assert await websocket.recv() == "accepted"
            await websocket.send("now fail")
            assert await closed_by_server(websocket) == (1006, "")
            assert websocket.protocol.close_rcvd is None
    assert tracebacks(logs) == APP_ERROR
    assert raised(logs) == ["boom after accept"]


@BOTH
@run
async def test_fastapi_return_without_accept_is_http_500(logs: Any, backend: str) -> None:
    record: Dict[str, Any] = {}
    async with serve(fastapi_app(record), backend) as srv:
        with pytest.raises(InvalidStatus) as info:
            await websockets_connect(srv.uri + "/return-without-accept")
        assert info.value.response.status_code == 500
    errors = [(r.name, r.levelname, r.getMessage()) for r in logs.records if r.levelno >= logging.WARNING]
    # uvicorn's backends word it two ways: "sending" (websockets), "completing" (sansio, wsproto).
    assert errors in (
        [("uvicorn.error", "ERROR", "ASGI callable returned without sending handshake.")],
        [("uvicorn.error", "ERROR", "ASGI callable returned without completing handshake.")],
    )
    assert tracebacks(logs) == []


# --- Django Channels ---------------------------------------------------------------------

CHANNELS_LOG: List[tuple] = []


class AsyncEchoConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        if self.scope["query_string"] == b"reject":
            await self.close()  # before accept: uvicorn answers 403
            return
        await self.accept()

    async def receive(self, text_data: Optional[str] = None, bytes_data: Optional[bytes] = None) -> None:
        if text_data is not None and text_data.startswith("close "):
            await self.close(code=int(text_data.split()[1]))
        elif text_data is not None:
            await self.send(text_data=text_data)
        else:
            await self.send(bytes_data=bytes_data)

    async def disconnect(self, code: int) -> None:
        CHANNELS_LOG.append(("async", code))


class SyncEchoConsumer(WebsocketConsumer):  # type: ignore[misc]
    def connect(self) -> None:
        self.accept()

    def receive(self, text_data: Optional[str] = None, bytes_data: Optional[bytes] = None) -> None:
        if text_data is not None:
            self.send(text_data=f"sync:{text_data}")
        else:
            self.send(bytes_data=b"sync:" + bytes_data)

    def disconnect(self, code: int) -> None:
        CHANNELS_LOG.append(("sync", code))


class ChatConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        self.group = "chat-" + self.scope["url_route"]["kwargs"]["room"]
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def receive(self, text_data: Optional[str] = None, bytes_data: Optional[bytes] = None) -> None:
        await self.channel_layer.group_send(self.group, {"type": "chat.message", "text": text_data})

    async def chat_message(self, event: Dict[str, Any]) -> None:
        await self.send(text_data=f"{self.group}: {event['text']}")

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.group, self.channel_name)
        CHANNELS_LOG.append(("chat", code))


CHANNELS_APP = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [
                django_path("ws/async/", AsyncEchoConsumer.as_asgi()),
                django_path("ws/sync/", SyncEchoConsumer.as_asgi()),
                django_path("ws/chat/<str:room>/", ChatConsumer.as_asgi()),
            ]
        )
    }
)


async def channels_log(count: int) -> List[tuple]:
    for _ in range(200):
        if len(CHANNELS_LOG) >= count:
            break
        await asyncio.sleep(0.01)
    return sorted(CHANNELS_LOG)


@BOTH
@run
async def test_channels_async_consumer(logs: Any, backend: str) -> None:
    CHANNELS_LOG.clear()
    async with serve(CHANNELS_APP, backend) as srv:
        async with websockets_connect(srv.uri + "/ws/async/") as websocket:
            await websocket.send(TEXT)
            assert await websocket.recv() == TEXT
            await websocket.send(bytes(range(256)))
            assert await websocket.recv() == bytes(range(256))
            await websocket.send("close 4321")
            assert await closed_by_server(websocket) == (4321, "")
        async with websockets_connect(srv.uri + "/ws/async/") as websocket:
            await websocket.send("x")
            assert await websocket.recv() == "x"
            await websocket.close(4000)
        with pytest.raises(InvalidStatus) as info:
            await websockets_connect(srv.uri + "/ws/async/?reject")
        assert info.value.response.status_code == 403
        # The refused one too: its disconnect() runs with the code uvicorn gives.
        assert await channels_log(3) == [("async", 1006), ("async", 4000), ("async", 4321)]
    assert_quiet(logs)


@BOTH
@run
async def test_channels_sync_consumer(logs: Any, backend: str) -> None:
    CHANNELS_LOG.clear()
    async with serve(CHANNELS_APP, backend) as srv:
        async with websockets_connect(srv.uri + "/ws/sync/") as websocket:
            await websocket.send(TEXT)
            assert await websocket.recv() == f"sync:{TEXT}"
            await websocket.send(b"\x00\xff")
            assert await websocket.recv() == b"sync:\x00\xff"
            await websocket.close(1001)
        assert await channels_log(1) == [("sync", 1001)]
    assert_quiet(logs)


@BOTH
@run
async def test_channels_group_broadcast_between_two_clients(logs: Any, backend: str) -> None:
    CHANNELS_LOG.clear()
    async with serve(CHANNELS_APP, backend) as srv:
        async with websockets_connect(srv.uri + "/ws/chat/lobby/") as one, websockets_connect(
            srv.uri + "/ws/chat/lobby/"
        ) as two, websockets_connect(srv.uri + "/ws/chat/elsewhere/") as other:
            await one.send("from one")
            assert await asyncio.wait_for(one.recv(), 5) == "chat-lobby: from one"
            assert await asyncio.wait_for(two.recv(), 5) == "chat-lobby: from one"
            await two.send("from two é")
            assert await asyncio.wait_for(one.recv(), 5) == "chat-lobby: from two é"
            assert await asyncio.wait_for(two.recv(), 5) == "chat-lobby: from two é"
            await other.send("alone")
            assert await asyncio.wait_for(other.recv(), 5) == "chat-elsewhere: alone"
            with pytest.raises(asyncio.TimeoutError):  # nothing crossed rooms
                await asyncio.wait_for(one.recv(), 0.1)
        assert await channels_log(3) == [("chat", 1000)] * 3
    assert_quiet(logs)


# --- clients: websockets, aiohttp, fastws, Chromium --------------------------------------


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await websocket.send_text(message["text"])
        else:
            await websocket.send_bytes(message["bytes"])


ECHO = Starlette(routes=[WebSocketRoute("/echo", echo)])
MESSAGES: List[Any] = [
    TEXT,
    "",
    bytes(range(256)) * 4,
    b"",
    "0123456789abcdeé" * (MiB // 17) + "x" * (MiB % 17),  # 1 MiB of UTF-8
    os.urandom(MiB),  # incompressible
    bytes(MiB),  # very compressible
]


def compression_ids(value: bool) -> str:
    return "deflate" if value else "no-deflate"


@pytest.mark.parametrize("deflate", [True, False], ids=compression_ids)
@run
async def test_websockets_client(logs: Any, deflate: bool) -> None:
    async with serve(ECHO, ws_per_message_deflate=deflate) as srv:
        async with websockets_connect(srv.uri + "/echo", max_size=2 * MiB) as websocket:
            extensions = websocket.response.headers.get("Sec-WebSocket-Extensions", "")
            assert extensions.startswith("permessage-deflate") if deflate else extensions == ""
            for message in MESSAGES:
                await websocket.send(message)
                assert await asyncio.wait_for(websocket.recv(), 5) == message
            latency = await asyncio.wait_for(await websocket.ping(b"probe"), 5)
            assert latency >= 0
            await websocket.send("after the ping")
            assert await websocket.recv() == "after the ping"
        assert websocket.close_code == 1000
    assert_quiet(logs)


@pytest.mark.parametrize("deflate", [True, False], ids=compression_ids)
@run
async def test_aiohttp_client(logs: Any, deflate: bool) -> None:
    async with serve(ECHO, ws_per_message_deflate=deflate) as srv:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(
                srv.http + "/echo", compress=15 if deflate else 0, autoping=False, max_msg_size=2 * MiB
            ) as websocket:
                assert bool(websocket.compress) is deflate
                for message in MESSAGES:
                    if isinstance(message, str):
                        await websocket.send_str(message)
                    else:
                        await websocket.send_bytes(message)
                    answer = await asyncio.wait_for(websocket.receive(), 5)
                    kind = aiohttp.WSMsgType.TEXT if isinstance(message, str) else aiohttp.WSMsgType.BINARY
                    assert answer.type is kind
                    assert answer.data == message
                await websocket.ping(b"probe")
                pong = await asyncio.wait_for(websocket.receive(), 5)
                assert (pong.type, pong.data) == (aiohttp.WSMsgType.PONG, b"probe")
                await websocket.close(code=4000, message=b"done")
            assert websocket.close_code == 4000
    assert_quiet(logs)


@pytest.mark.parametrize("deflate", [True, False], ids=compression_ids)
@run
async def test_fastws_client(logs: Any, deflate: bool) -> None:
    async with serve(ECHO, ws_per_message_deflate=deflate) as srv:
        async with fastws.connect(
            srv.uri + "/echo", compression="deflate", ping_interval=None, max_size=2 * MiB, close_timeout=2
        ) as websocket:
            extensions = websocket.response.headers.get("Sec-WebSocket-Extensions", "")
            assert extensions.startswith("permessage-deflate") if deflate else extensions == ""
            for message in MESSAGES:
                await websocket.send(message)
                assert await asyncio.wait_for(websocket.recv(), 5) == message
            latency = await asyncio.wait_for(await websocket.ping(b"probe"), 5)
            assert latency >= 0
            await websocket.send("after the ping")
            assert await websocket.recv() == "after the ping"
        assert websocket.close_code == 1000
    assert_quiet(logs)


class BrowserPeer:
    """What the Starlette app saw of Chromium."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.report: asyncio.Future = loop.create_future()
        self.echoed: List[tuple] = []
        self.closes: List[tuple] = []
        self.handshakes: List[Dict[str, Any]] = []


def browser_app(peer: BrowserPeer, page: str) -> Starlette:
    """test_browser's page (and its /report, /wait protocol), served by Starlette."""

    async def page_route(request: Request) -> Response:
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    async def report(request: Request) -> Response:
        if not peer.report.done():
            peer.report.set_result(request.query_params.get("result", ""))
        return Response(status_code=204)

    async def wait(request: Request) -> Response:
        await asyncio.wait_for(asyncio.shield(peer.report), 15)  # holds the page's load event
        return Response(status_code=204)

    async def ws(websocket: WebSocket) -> None:
        peer.handshakes.append(dict(websocket.headers) | {"subprotocols": websocket.scope["subprotocols"]})
        chosen = "chat.v1" if "chat.v1" in websocket.scope["subprotocols"] else None
        await websocket.accept(subprotocol=chosen)
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    peer.closes.append((message["code"], message.get("reason", "")))
                    return
                data = message["text"] if message.get("text") is not None else message["bytes"]
                peer.echoed.append((type(data).__name__, len(data)))
                if isinstance(data, str):
                    await websocket.send_text(data)
                else:
                    await websocket.send_bytes(data)
        except WebSocketDisconnect:  # pragma: no cover - the loop above returns first
            raise

    async def close_me(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close(4001, "server says bye")

    return Starlette(
        routes=[
            Route("/page", page_route),
            Route("/report", report),
            Route("/wait", wait),
            WebSocketRoute("/ws", ws),
            WebSocketRoute("/close-me", close_me),
        ]
    )


@pytest.mark.parametrize("deflate", [True, False], ids=compression_ids)
@run
async def test_chromium_client(logs: Any, deflate: bool) -> None:
    assert BROWSER is not None, "no Chromium on PATH: apt-get install -y chromium"
    old = "const BIG = 102400;"
    assert old in PAGE
    page = PAGE.replace(old, f"const BIG = {MiB};")  # the big message: 1 MiB of UTF-16 code units
    peer = BrowserPeer()
    async with serve(browser_app(peer, page), ws_per_message_deflate=deflate) as srv:
        query = "?deflate=1" if deflate else ""
        with tempfile.TemporaryDirectory() as profile:
            code, dom, err = await run_chromium(f"{srv.http}/page{query}", profile)
        report = peer.report.result() if peer.report.done() else None
    expected = "RESULT:OK protocol,text,binary,big,client-close,server-close"
    assert code == 0, f"chromium exited with {code}:\n{err[-3000:]}"
    assert report == expected, f"page reported {report!r}; DOM:\n{dom[-3000:]}"
    (handshake,) = peer.handshakes
    assert "Chrome" in handshake["user-agent"]
    assert handshake["origin"] == srv.http
    assert "permessage-deflate" in handshake["sec-websocket-extensions"]
    assert handshake["subprotocols"] == ["chat.v2", "chat.v1"]
    assert peer.echoed == [("str", len(TEXT)), ("bytes", 1024), ("str", MiB)]
    assert peer.closes == [(1000, "done")]
    assert_quiet(logs)

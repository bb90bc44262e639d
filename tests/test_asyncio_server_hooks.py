"""serve()'s handshake hooks: process_request and process_response, sync and
async, what they see, what they may return, their failures; respond() with an
HTTPStatus; the 503 of a server closing during a hook. Real connections over
loopback, with fastws's client, websockets' client and raw HTTP."""

from __future__ import annotations

import asyncio
import http
import logging

import pytest
import websockets.asyncio.client

import fastws
from fastws import InvalidStatus
from fastws.http11 import Headers, Response

from asyncio_helpers import HANDSHAKE, port_of, run, server


async def hello(websocket):
    await websocket.send(f"hello {websocket.request.path}")


async def refusal(uri: str, **options) -> Response:
    with pytest.raises(InvalidStatus) as info:
        async with fastws.connect(uri, **options):
            pass  # pragma: no cover - the handshake fails
    return info.value.response


async def http_exchange(uri: str, request: bytes) -> bytes:
    """Send ``request`` over TCP, read the whole answer (the server closes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(uri))
    writer.write(request)
    answer = await reader.read()
    writer.close()
    return answer


def sync_and_async(hook):
    """The hook as a function and as a coroutine function."""

    async def async_hook(*args):
        await asyncio.sleep(0)
        return hook(*args)

    return pytest.mark.parametrize("hook", [hook, async_hook], ids=["sync", "async"])


# --- process_request --------------------------------------------------------------


def route(connection, request):
    if request.path == "/health":
        return connection.respond(http.HTTPStatus.OK, "OK\n")
    if request.path != "/chat":
        return connection.respond(http.HTTPStatus.NOT_FOUND, "Not found\n")
    return None


@sync_and_async(route)
@run
async def test_process_request_routes(hook):
    async with server(hello, process_request=hook) as (_, uri):
        async with fastws.connect(uri + "chat") as websocket:
            assert await websocket.recv() == "hello /chat"
        response = await refusal(uri + "other")
        assert (response.status_code, response.reason_phrase, response.body) == (404, "Not Found", b"Not found\n")
        # A health check is a plain GET.
        answer = await http_exchange(uri, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"\r\nContent-Length: 3\r\n" in head + b"\r\n"
        assert body == b"OK\n"


# status given to respond(), status line
STATUSES = [
    (http.HTTPStatus.OK, "200 OK"),
    (http.HTTPStatus.FORBIDDEN, "403 Forbidden"),
    (http.HTTPStatus.TOO_MANY_REQUESTS, "429 Too Many Requests"),
    (http.HTTPStatus.SERVICE_UNAVAILABLE, "503 Service Unavailable"),
    (404, "404 Not Found"),
    (599, "599 "),  # no standard phrase
]


@pytest.mark.parametrize("status, line", STATUSES)
@run
async def test_respond_status_line(status, line):
    async with server(hello, process_request=lambda c, r: c.respond(status, "text\n")) as (_, uri):
        answer = await http_exchange(uri, HANDSHAKE)
        assert answer.startswith(f"HTTP/1.1 {line}\r\n".encode())
        assert answer.endswith(b"\r\n\r\ntext\n")


@run
async def test_process_request_sees_the_connection_and_request():
    seen = []

    def hook(connection, request):
        seen.append((type(connection), connection.state, request.path, request.headers["X-Token"]))

    async with server(hello, process_request=hook) as (_, uri):
        async with fastws.connect(uri + "a?b=c", additional_headers={"X-Token": "t"}) as websocket:
            assert await websocket.recv() == "hello /a?b=c"
    assert seen == [(fastws.ServerConnection, fastws.State.CONNECTING, "/a?b=c", "t")]


@run
async def test_a_response_built_by_hand_gets_the_server_header():
    def hook(connection, request):
        return Response(418, headers=Headers([("X-Kind", "teapot")]), body=b"short and stout")

    async with server(hello, process_request=hook) as (_, uri):
        response = await refusal(uri)
    assert (response.status_code, response.reason_phrase) == (418, http.HTTPStatus(418).phrase)
    assert response.headers["X-Kind"] == "teapot"
    assert response.headers["Server"].startswith("fastws/")
    assert response.headers["Content-Length"] == "15"
    assert response.body == b"short and stout"
    async with server(hello, process_request=hook, server_header="custom") as (_, uri):
        assert (await refusal(uri)).headers["Server"] == "custom"
    async with server(hello, process_request=hook, server_header=None) as (_, uri):
        assert "Server" not in (await refusal(uri)).headers


# --- process_response -------------------------------------------------------------


def add_header(connection, request, response):
    response.headers["X-Hooked"] = f"{response.status_code} {request.path}"


@sync_and_async(add_header)
@run
async def test_process_response_changes_the_101_in_place(hook):
    async with server(hello, process_response=hook) as (_, uri):
        async with fastws.connect(uri + "x") as websocket:
            assert websocket.response.headers["X-Hooked"] == "101 /x"
            assert await websocket.recv() == "hello /x"
        # websockets' client sees it too.
        async with websockets.asyncio.client.connect(uri + "y") as websocket:
            assert websocket.response.headers["X-Hooked"] == "101 /y"
            assert await websocket.recv() == "hello /y"


def deny_path(connection, request, response):
    if request.path == "/private":
        return connection.respond(http.HTTPStatus.FORBIDDEN, "Private\n")
    return None


@sync_and_async(deny_path)
@run
async def test_process_response_replaces_the_response(hook):
    async with server(hello, process_response=hook) as (_, uri):
        response = await refusal(uri + "private")
        assert (response.status_code, response.body) == (403, b"Private\n")
        async with fastws.connect(uri + "public") as websocket:
            assert await websocket.recv() == "hello /public"


@run
async def test_process_response_sees_every_response():
    """The 101, the response of process_request, and the refusal of a bad request."""
    seen = []

    def process_request(connection, request):
        if request.path == "/gone":
            return connection.respond(http.HTTPStatus.GONE, "Gone\n")
        return None

    def process_response(connection, request, response):
        seen.append((request.path, response.status_code, response.headers["Server"][:7]))

    options = dict(
        process_request=process_request, process_response=process_response, origins=["https://ok"]
    )
    async with server(hello, **options) as (_, uri):
        async with fastws.connect(uri + "open", origin="https://ok") as websocket:
            await websocket.recv()
        assert (await refusal(uri + "gone", origin="https://ok")).status_code == 410
        assert (await refusal(uri + "evil", origin="https://evil")).status_code == 403
        assert (await http_exchange(uri, HANDSHAKE.replace(b"13", b"8"))).startswith(b"HTTP/1.1 426")
    assert seen == [
        ("/open", 101, "fastws/"),
        ("/gone", 410, "fastws/"),
        ("/evil", 403, "fastws/"),
        ("/", 426, "fastws/"),
    ]


@run
async def test_process_response_after_an_async_process_request():
    order = []

    async def process_request(connection, request):
        await asyncio.sleep(0)
        order.append("request")

    async def process_response(connection, request, response):
        await asyncio.sleep(0)
        order.append("response")
        response.headers["X-Order"] = ",".join(order)

    options = dict(process_request=process_request, process_response=process_response)
    async with server(hello, **options) as (_, uri):
        async with fastws.connect(uri) as websocket:
            assert websocket.response.headers["X-Order"] == "request,response"
            assert await websocket.recv() == "hello /"


@run
async def test_frames_sent_during_async_hooks_are_kept():
    async def slow(*args):
        await asyncio.sleep(0.01)

    async def echo(websocket):
        await websocket.send(await websocket.recv())

    async with server(echo, process_request=slow, process_response=slow) as (_, uri):
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(uri))
        writer.write(HANDSHAKE + fastws.build_frame(fastws.Opcode.TEXT, "early", mask=True))
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        assert await reader.readexactly(7) == b"\x81\x05early"
        writer.close()


# --- failures -----------------------------------------------------------------------


def raising(*args):
    raise RuntimeError("hook bug")


async def async_raising(*args):
    await asyncio.sleep(0)
    raise RuntimeError("hook bug")


def wrong_type(*args):
    return "not a response"


async def async_wrong_type(*args):
    return 404


# hook name, hook, the logged message, whether it has a traceback
FAILURES = [
    ("process_request", raising, "process_request failed", True),
    ("process_request", async_raising, "process_request failed", True),
    ("process_response", raising, "process_response failed", True),
    ("process_response", async_raising, "process_response failed", True),
    ("process_request", wrong_type, "process_request returned 'not a response'; expected a Response or None", False),
    ("process_request", async_wrong_type, "process_request returned 404; expected a Response or None", False),
    ("process_response", wrong_type, "process_response returned 'not a response'; expected a Response or None", False),
    ("process_response", async_wrong_type, "process_response returned 404; expected a Response or None", False),
]


@pytest.mark.parametrize("name, hook, message, traceback", FAILURES)
@run
async def test_hook_failure_is_500_and_logged(caplog, name, hook, message, traceback):
    caplog.set_level(logging.ERROR, logger="fastws")
    async with server(hello, **{name: hook}) as (_, uri):
        response = await refusal(uri)
    assert response.status_code == 500
    assert response.body == b"Failed to open a WebSocket connection: internal error.\n"
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.name == "fastws.server"
    assert record.getMessage() == message
    if traceback:
        assert record.exc_info[0] is RuntimeError
    else:
        assert not record.exc_info


# --- a server closing during a hook ------------------------------------------------------


@run
async def test_close_during_an_async_process_request_answers_503():
    entered = asyncio.Event()
    release = asyncio.Event()

    async def process_request(connection, request):
        entered.set()
        await release.wait()

    async with server(hello, process_request=process_request) as (srv, uri):
        attempt = asyncio.ensure_future(refusal(uri))
        await entered.wait()
        srv.close()
        await asyncio.sleep(0)
        assert not srv.is_serving()
        release.set()
        response = await attempt
        await srv.wait_closed()
    assert (response.status_code, response.body) == (503, b"Server is shutting down.\n")


@run
async def test_close_drops_a_connection_whose_request_is_incomplete():
    received = asyncio.Event()

    class Signalling(fastws.ServerConnection):
        def buffer_updated(self, nbytes):
            super().buffer_updated(nbytes)
            received.set()

    # No open timeout: only close() can end it.
    async with server(hello, create_connection=Signalling, open_timeout=None) as (srv, uri):
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(uri))
        writer.write(b"GET / HTTP/1.1\r\n")
        await received.wait()
        srv.close()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        await srv.wait_closed()
        writer.close()


# --- the request object -------------------------------------------------------------------


@run
async def test_handler_routes_on_request_path():
    async def router(websocket):
        if websocket.request.path == "/a":
            await websocket.send("A")
        else:
            await websocket.close(1008, "no route")

    async with server(router) as (_, uri):
        async with fastws.connect(uri + "a") as websocket:
            assert await websocket.recv() == "A"
        async with fastws.connect(uri + "b") as websocket:
            with pytest.raises(fastws.ConnectionClosedError) as info:
                await websocket.recv()
            assert info.value.code == 1008


@run
async def test_open_timeout_bounds_an_async_hook(caplog):
    caplog.set_level(logging.INFO, logger="fastws")
    cancelled = asyncio.Event()

    async def forever(connection, request):
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    async with server(hello, process_request=forever, open_timeout=0.2) as (srv, uri):
        with pytest.raises(fastws.InvalidMessage, match="connection closed before the response was complete"):
            await fastws.connect(uri, open_timeout=5)
        await asyncio.wait_for(cancelled.wait(), 5)  # the hook's task was cancelled
        assert srv.all_connections == set()
    assert any(
        r.getMessage().startswith("opening handshake from ('127.0.0.1', ") and r.getMessage().endswith(" timed out")
        for r in caplog.records
    )


# --- the open timeout: one timer shared by the connections of a server -----------


async def _silent_client(uri: str) -> tuple:
    """A client that connects and sends nothing: (connect time, time the server hung up)."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(uri))
    opened = loop.time()
    assert await reader.read() == b""
    closed = loop.time()
    writer.close()
    return opened, closed


@run
async def test_open_timeout_cuts_each_connection_at_its_own_deadline():
    """Clients accepted at different times are cut in turn, none before its
    open_timeout, while a connection that finished its handshake stays."""
    timeout = 0.3
    async with server(hello, open_timeout=timeout) as (srv, uri):
        async with fastws.connect(uri) as websocket:
            first = asyncio.ensure_future(_silent_client(uri))
            await asyncio.sleep(timeout / 2)  # the second is accepted later
            second = asyncio.ensure_future(_silent_client(uri))
            (opened1, closed1), (opened2, closed2) = await asyncio.wait_for(asyncio.gather(first, second), 5)
            assert closed1 - opened1 >= timeout - 0.02 and closed2 - opened2 >= timeout - 0.02
            assert closed1 < closed2
            assert await websocket.recv() == "hello /"  # past the open timeout, still open
        assert srv._open_timer.deadlines == {}


@run
async def test_open_timeout_changed_by_a_connection_gets_its_own_timer():
    class Patient(fastws.ServerConnection):
        def connection_made(self, transport):
            self.open_timeout = 0.1
            super().connection_made(transport)

    async with server(hello, open_timeout=30, create_connection=Patient) as (srv, uri):
        opened, closed = await asyncio.wait_for(_silent_client(uri), 5)
        assert 0.08 <= closed - opened < 5
        assert srv._open_timer.deadlines == {}


@run
async def test_the_shared_open_timer_goes_with_the_server():
    accepted = asyncio.Event()

    class Signalling(fastws.ServerConnection):
        def connection_made(self, transport):
            super().connection_made(transport)
            accepted.set()

    async with server(hello, open_timeout=30, create_connection=Signalling) as (srv, uri):
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(uri))
        await asyncio.wait_for(accepted.wait(), 5)
        assert len(srv._open_timer.deadlines) == 1 and srv._open_timer.armed
    assert not srv._open_timer.armed and srv._open_timer.deadlines == {}
    assert await reader.read() == b""
    writer.close()


@run
async def test_open_timeout_outlives_a_close_that_leaves_connections_open():
    accepted = asyncio.Event()

    class Signalling(fastws.ServerConnection):
        def connection_made(self, transport):
            super().connection_made(transport)
            accepted.set()

    async with server(hello, open_timeout=0.2, create_connection=Signalling) as (srv, uri):
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(uri))
        await asyncio.wait_for(accepted.wait(), 5)
        srv.close(close_connections=False)
        await srv.wait_closed()
        # Closed, and the client that never sent its request is cut all the same.
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


# --- the client's address in log lines ----------------------------------------------


@run
async def test_refusal_log_names_the_client_over_tls(caplog):
    """The address is asked of the transport when a line is logged; asyncio's
    TLS transport forgets it before connection_lost(), so it is kept for TLS."""
    import ssl

    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    caplog.set_level(logging.INFO, logger="fastws")
    async with fastws.serve(hello, "127.0.0.1", 0, ssl=server_context) as srv:
        port = srv.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context, server_hostname="127.0.0.1"
        )
        local = writer.get_extra_info("sockname")
        # The parser refuses it: the line is logged from connection_lost().
        writer.write(b"GET / HTTP/1.1\nHost: a\n\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 400 ")
        writer.close()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused opening handshake")]
    assert lines == [f"refused opening handshake from {local}: line ends with LF instead of CRLF"], lines

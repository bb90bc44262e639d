"""serve()'s websockets-compatible options: origins with regular expressions,
create_connection, logger, max_queue and write_limit as (high, low), unknown
keyword arguments refused at the call; the rest of the Server API (get_loop,
start_serving, serve_forever, connections, close with a code)."""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import tempfile

import pytest
import websockets.asyncio.client

import fastws
from fastws import ConnectionClosedOK, InvalidStatus
from fastws.asyncio.server import Server, ServerConnection, serve, serve_listener, unix_serve
from fastws.handshake import check_origin
from fastws.http11 import Headers, Request

from asyncio_helpers import port_of, run, server


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


async def hold(websocket):
    await websocket.wait_closed()


# --- origins --------------------------------------------------------------------------

ORIGINS = [
    "https://example.com",
    re.compile(r"https://[a-z0-9-]+\.example\.com"),
    re.compile(r"http://localhost(:\d+)?"),
]

# allowed origins, the Origin sent (None: none), accepted?
ORIGIN_CASES = [
    (ORIGINS, "https://example.com", True),
    (ORIGINS, "https://chat.example.com", True),
    (ORIGINS, "https://a-b.example.com", True),
    (ORIGINS, "http://localhost", True),
    (ORIGINS, "http://localhost:8080", True),
    # fullmatch: neither a prefix nor a suffix is enough
    (ORIGINS, "https://chat.example.com.evil.net", False),
    (ORIGINS, "https://evil.net/https://chat.example.com", False),
    (ORIGINS, "http://localhost:8080/x", False),
    (ORIGINS, "https://example.com:443", False),
    (ORIGINS, "https://a.b.example.com", False),
    (ORIGINS, "http://example.com", False),
    (ORIGINS, None, False),
    (ORIGINS + [None], None, True),
    ([None], None, True),
    ([None], "https://example.com", False),
    ([re.compile(".*")], "https://anything", True),
    ([re.compile(".*")], None, False),  # a pattern never matches a missing Origin
    ((o for o in ["https://example.com"]), "https://example.com", True),  # any iterable
    ([], "https://example.com", False),
    ([], None, False),
    (None, None, True),
    (None, "https://evil.net", True),
]


@pytest.mark.parametrize("origins, origin, accepted", ORIGIN_CASES)
@run
async def test_origins(origins, origin, accepted):
    async with server(echo, origins=origins) as (_, uri):
        if accepted:
            async with fastws.connect(uri, origin=origin) as websocket:
                await websocket.send("hi")
                assert await websocket.recv() == "hi"
        else:
            with pytest.raises(InvalidStatus) as info:
                await fastws.connect(uri, origin=origin)
            assert info.value.status_code == 403


@run
async def test_origins_with_websockets_client():
    async with server(echo, origins=[re.compile(r"https://.*\.example\.com")]) as (_, uri):
        async with websockets.asyncio.client.connect(uri, origin="https://x.example.com") as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
        with pytest.raises(websockets.exceptions.InvalidStatus) as info:
            await websockets.asyncio.client.connect(uri, origin="https://example.com")
        assert info.value.response.status_code == 403


def test_check_origin_protocol_level():
    """The sans-I/O check: what the server answers 403 and 400 with."""

    def request(*origins):
        return Request("/", Headers([("Host", "h")] + [("Origin", o) for o in origins]))

    assert check_origin(request("https://a.example.com"), ORIGINS) == "https://a.example.com"
    assert check_origin(request(), None) is None
    with pytest.raises(fastws.InvalidOrigin) as info:
        check_origin(request("https://evil.net"), ORIGINS)
    assert info.value.http_status == 403
    assert str(info.value) == "invalid Origin header: 'https://evil.net' (not allowed)"
    with pytest.raises(fastws.InvalidOrigin, match="missing Origin header"):
        check_origin(request(), ORIGINS)
    with pytest.raises(fastws.InvalidHeader, match="more than one value") as info:
        check_origin(request("https://example.com", "https://example.com"), ORIGINS)
    assert info.value.http_status == 400


# origins, words of the TypeError
BAD_ORIGINS = [
    ("https://example.com", "origins must be a list of origins, not the str 'https://example.com'"),
    (b"https://example.com", "not the bytes"),
    ([b"https://example.com"], "not b'https://example.com'"),
    ([re.compile(rb"https://.*")], "not re.compile(b'https://.*')"),
    ([42], "origins must hold strings, compiled str regular expressions or None, not 42"),
]


@pytest.mark.parametrize("origins, message", BAD_ORIGINS)
def test_bad_origins_refused_at_the_call(origins, message):
    with pytest.raises(TypeError) as info:
        serve(echo, "127.0.0.1", 0, origins=origins)
    assert message in str(info.value)


# --- create_connection ----------------------------------------------------------------


class Tagged(ServerConnection):
    """Written for websockets: its own __init__ with websockets' arguments."""

    def __init__(self, protocol, server, *, ping_interval, ping_timeout, close_timeout, max_queue, write_limit):
        super().__init__(
            protocol,
            server,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_queue=max_queue,
            write_limit=write_limit,
        )
        self.tag = "tagged"
        self.got = (type(protocol).__name__, type(server).__name__, max_queue, write_limit)


@run
async def test_create_connection_subclass():
    seen = []

    async def handler(websocket):
        seen.append(websocket)
        await websocket.send(websocket.tag)

    async with server(handler, create_connection=Tagged, max_queue=(8, 2), write_limit=4096) as (srv, uri):
        async with fastws.connect(uri) as websocket:
            assert await websocket.recv() == "tagged"
    (connection,) = seen
    assert type(connection) is Tagged
    assert connection.got == ("ServerProtocol", "Server", (8, 2), 4096)
    assert connection.server is srv
    assert connection.open_timeout == 10  # set by serve() after create_connection


@run
async def test_create_connection_function():
    made = []

    def factory(protocol, server, **options):
        made.append(sorted(options))
        return ServerConnection(protocol, server, **options)

    async with server(echo, create_connection=factory) as (_, uri):
        async with fastws.connect(uri) as websocket:
            await websocket.send("x")
            assert await websocket.recv() == "x"
    assert made == [["close_timeout", "max_queue", "ping_interval", "ping_timeout", "write_limit"]]


@pytest.mark.parametrize("value", [42, "ServerConnection"])
def test_create_connection_not_callable(value):
    with pytest.raises(TypeError, match="create_connection must be a ServerConnection subclass or a function"):
        serve(echo, "127.0.0.1", 0, create_connection=value)


# --- logger ---------------------------------------------------------------------------


async def broken(websocket):
    raise RuntimeError("boom")


# logger given, the name its records carry
LOGGERS = [
    (None, "fastws.server"),
    ("my.app.ws", "my.app.ws"),
    (logging.getLogger("my.app.object"), "my.app.object"),
]


@pytest.mark.parametrize("logger, name", LOGGERS, ids=["default", "name", "object"])
@run
async def test_logger(caplog, logger, name):
    caplog.set_level(logging.INFO)
    async with server(broken, logger=logger) as (srv, uri):
        port = port_of(uri)
        async with fastws.connect(uri) as websocket:
            with pytest.raises(fastws.ConnectionClosedError):
                await websocket.recv()
    assert srv.logger.name == name
    lines = [(r.name, r.getMessage()) for r in caplog.records if r.name.startswith(("fastws", "my."))]
    assert (name, f"server listening on 127.0.0.1:{port}") in lines
    assert (name, "connection handler failed") in lines
    assert (name, "server closing") in lines
    assert lines[-1] == (name, "server closed")
    assert all(record_name == name for record_name, _ in lines)


@run
async def test_logger_adapter_carries_the_connection(caplog):
    caplog.set_level(logging.ERROR)
    async with server(broken, logger="my.app.adapter") as (_, uri):
        async with fastws.connect(uri) as websocket:
            with pytest.raises(fastws.ConnectionClosedError):
                await websocket.recv()
    (record,) = [r for r in caplog.records if r.getMessage() == "connection handler failed"]
    assert isinstance(record.websocket, ServerConnection)
    assert record.websocket.logger.logger.name == "my.app.adapter"


# --- max_queue and write_limit ------------------------------------------------------------


# options, (max_queue, write_limit, write_limit_low) of the server's connection
LIMITS = [
    ({}, (16, 32768, 8192)),
    ({"max_queue": (8, 2), "write_limit": (65536, 1024)}, (8, 65536, 1024)),
    ({"max_queue": (8, None), "write_limit": (65536, None)}, (8, 65536, 16384)),
    ({"max_queue": None, "write_limit": 0}, (None, 0, 0)),
    ({"max_queue": 1, "write_limit": (10, 10)}, (1, 10, 10)),
]


@pytest.mark.parametrize("options, expected", LIMITS)
@run
async def test_limits(options, expected):
    seen = []

    async def handler(websocket):
        seen.append((websocket.max_queue, websocket.write_limit, websocket.write_limit_low))
        high, low = websocket.write_limit, websocket.write_limit_low
        assert websocket.transport.get_write_buffer_limits() == (low, high)
        await echo(websocket)

    async with server(handler, **options) as (_, uri):
        async with fastws.connect(uri) as websocket:
            await websocket.send("x" * 100)
            assert await websocket.recv() == "x" * 100
    assert seen == [expected]


# options, exception, message
BAD_OPTIONS = [
    ({"max_queue": 0}, ValueError, "max_queue must be >= 1 or None, got 0"),
    ({"max_queue": (4, 5)}, ValueError, "low-water mark must be between 0 and 4, got 5"),
    ({"max_queue": (4, 1, 0)}, ValueError, "max_queue must be an int or a (high, low) tuple"),
    ({"max_queue": "16"}, TypeError, "max_queue high must be an int, got str"),
    ({"write_limit": -1}, ValueError, "write_limit must be >= 0, got -1"),
    ({"write_limit": (100, 200)}, ValueError, "low-water mark must be between 0 and 100, got 200"),
    ({"write_limit": (100,)}, ValueError, "write_limit must be an int or a (high, low) tuple"),
    ({"write_limit": None}, TypeError, "NoneType"),
    ({"write_limit": 1.5}, TypeError, "write_limit high must be an int, got float"),
    ({"max_size": -1}, ValueError, "max_size must be >= 0 or None, got -1"),
    ({"subprotocols": "chat"}, TypeError, "subprotocols must be a list of str, not 'chat'"),
    ({"subprotocols": {"chat"}}, TypeError, "subprotocols must be a list of str, not {'chat'}"),
    ({"subprotocols": ["chat", "a b"]}, ValueError, "invalid subprotocol 'a b': not a token"),
    ({"subprotocols": [b"chat"]}, ValueError, "invalid subprotocol b'chat': not a token"),
]


@pytest.mark.parametrize("options, error, message", BAD_OPTIONS)
def test_bad_options_refused_at_the_call(options, error, message):
    with pytest.raises(error) as info:
        serve(echo, "127.0.0.1", 0, **options)
    assert message in str(info.value)


# --- keyword arguments ----------------------------------------------------------------------


TCP = (echo, "127.0.0.1", 0)
UNEXPECTED = "got an unexpected keyword argument"

# function, its arguments, the message of the TypeError
UNKNOWN = [
    (serve, TCP, {"process_responses": None}, f"serve() {UNEXPECTED} 'process_responses'"),
    (serve, TCP, {"additional_headers": {}}, f"serve() {UNEXPECTED} 'additional_headers'"),
    (serve, TCP, {"a": 1, "b": 2}, "serve() got unexpected keyword arguments 'a', 'b'"),
    (serve, (echo,), {"unix": True, "path": "x", "reuse_port": True}, f"serve() {UNEXPECTED} 'reuse_port'"),
    (unix_serve, (echo, "x"), {"reuse_port": True}, f"unix_serve() {UNEXPECTED} 'reuse_port'"),
    (unix_serve, (echo, "x"), {"pingg_interval": 1}, f"unix_serve() {UNEXPECTED} 'pingg_interval'"),
    (serve_listener, (fastws.Listener, "127.0.0.1", 0), {"handler_": 1}, f"serve_listener() {UNEXPECTED} 'handler_'"),
]


@pytest.mark.parametrize("function, args, kwargs, message", UNKNOWN)
def test_unknown_keyword_arguments_refused_at_the_call(function, args, kwargs, message):
    with pytest.raises(TypeError) as info:
        function(*args, **kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize("function, args, kwargs, message", UNKNOWN[:1])
@run
async def test_unknown_keyword_arguments_refused_in_a_running_loop(function, args, kwargs, message):
    with pytest.raises(TypeError) as info:
        function(*args, **kwargs)
    assert str(info.value) == message


@run
async def test_create_server_keyword_arguments_pass_through():
    srv = await serve(
        echo,
        "127.0.0.1",
        0,
        backlog=10,
        reuse_address=True,
        start_serving=False,
        ping_interval=None,
    )
    try:
        assert not srv.is_serving()
        await srv.start_serving()
        assert srv.is_serving()
        async with fastws.connect(f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}/") as websocket:
            await websocket.send("x")
            assert await websocket.recv() == "x"
    finally:
        srv.close()
        await srv.wait_closed()


@run
async def test_unix_serve_takes_create_unix_server_arguments():
    with tempfile.TemporaryDirectory() as directory:
        path = f"{directory}/ws.sock"
        async with unix_serve(echo, path, backlog=5, ping_interval=None):
            async with fastws.unix_connect(path) as websocket:
                await websocket.send("unix")
                assert await websocket.recv() == "unix"


# --- the Server API -------------------------------------------------------------------------


@run
async def test_get_loop_and_not_started_errors():
    unstarted = serve(echo, "127.0.0.1", 0)
    server_object = unstarted._server
    assert isinstance(server_object, Server)
    for call in (server_object.get_loop, server_object.close):
        with pytest.raises(RuntimeError, match=r"the server is not started: await serve\(...\) first"):
            call()
    async with unstarted as srv:
        assert srv is server_object
        assert srv.get_loop() is asyncio.get_running_loop()


@run
async def test_serve_forever_returns_after_close():
    async with server(echo) as (srv, _):
        task = asyncio.ensure_future(srv.serve_forever())
        await asyncio.sleep(0)
        assert not task.done()
        srv.close()
        await asyncio.wait_for(task, 5)  # returns, no CancelledError
        assert task.result() is None
        assert not srv.is_serving()


@run
async def test_serve_forever_cancelled_closes_the_server():
    async with server(hold) as (srv, uri):
        async with fastws.connect(uri) as websocket:
            task = asyncio.ensure_future(srv.serve_forever())
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not srv.is_serving()
            with pytest.raises(ConnectionClosedOK) as info:
                await websocket.recv()
            assert info.value.code == 1001


@run
async def test_serve_forever_starts_serving():
    srv = await serve(echo, "127.0.0.1", 0, start_serving=False, ping_interval=None)
    task = asyncio.ensure_future(srv.serve_forever())
    for _ in range(100):  # the task starts serving on its first steps
        if srv.is_serving():
            break
        await asyncio.sleep(0)
    assert srv.is_serving()
    async with fastws.connect(f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}/") as websocket:
        await websocket.send("x")
        assert await websocket.recv() == "x"
    srv.close()
    await asyncio.wait_for(task, 5)


@run
async def test_wait_closed_waits_for_close():
    async with server(echo) as (srv, _):
        waiter = asyncio.ensure_future(srv.wait_closed())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        srv.close()
        await asyncio.wait_for(waiter, 5)


@run
async def test_connections_are_the_open_ones():
    entered = asyncio.Event()
    release = asyncio.Event()

    async def process_request(connection, request):
        entered.set()
        await release.wait()

    async with server(hold, process_request=process_request) as (srv, uri):
        assert srv.connections == set() and srv.all_connections == set()
        pending = asyncio.ensure_future(fastws.connect(uri))
        await entered.wait()
        # In the handshake: held, not open.
        (handshaking,) = srv.all_connections
        assert handshaking.state is fastws.State.CONNECTING
        assert srv.connections == set()
        release.set()
        websocket = await pending
        assert srv.connections == {handshaking} == srv.all_connections
        await websocket.close()
        await handshaking.wait_closed()
        assert srv.connections == set()


# close()'s arguments, the close code and reason the client gets
CLOSES = [
    ((), {}, 1001, "server shutting down"),
    ((), {"code": 1012, "reason": "restarting"}, 1012, "restarting"),
    ((True, 1012), {}, 1012, "server shutting down"),
    ((), {"reason": ""}, 1001, ""),
]


@pytest.mark.parametrize("args, kwargs, code, reason", CLOSES)
@run
async def test_close_code_and_reason(args, kwargs, code, reason):
    async with server(hold) as (srv, uri):
        async with fastws.connect(uri) as websocket:
            srv.close(*args, **kwargs)
            await srv.wait_closed()
            with pytest.raises(fastws.ConnectionClosed) as info:
                await websocket.recv()
            assert (info.value.code, info.value.reason) == (code, reason)


@run
async def test_close_without_closing_connections():
    async with server(echo, close_timeout=5) as (srv, uri):
        async with fastws.connect(uri) as websocket:
            srv.close(close_connections=False)
            await asyncio.sleep(0)
            assert not srv.is_serving()
            await websocket.send("still open")
            assert await websocket.recv() == "still open"
        await srv.wait_closed()


@run
async def test_handlers_cancelled_at_shutdown_close_their_connections():
    """close(close_connections=False) gives the handlers close_timeout, then
    cancels them: their connections go away with 1001 instead of staying open
    with nobody to read them."""

    async def sleeper(websocket):
        await asyncio.sleep(3600)

    async with server(sleeper, close_timeout=0.2) as (srv, uri):
        async with fastws.connect(uri) as websocket:
            srv.close(close_connections=False)
            await srv.wait_closed()
            with pytest.raises(fastws.ConnectionClosed) as info:
                await websocket.recv()
            assert (info.value.code, info.value.reason) == (1001, "server shutting down")
        assert not srv.all_connections or all(c.state.name == "CLOSED" for c in srv.all_connections)


# --- TLS ----------------------------------------------------------------------------------


def tls_server_context():
    trustme = pytest.importorskip("trustme")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    return context


@run
async def test_open_timeout_bounds_the_tls_handshake():
    """A client that opens TCP and never sends its TLS hello is cut at
    open_timeout (asyncio's own ssl_handshake_timeout is 60 s)."""
    async with serve(echo, "127.0.0.1", 0, ssl=tls_server_context(), open_timeout=0.2) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.sockets[0].getsockname()[1])
        started = asyncio.get_running_loop().time()
        try:
            assert await asyncio.wait_for(reader.read(), 5) == b""
        except ConnectionResetError:
            pass  # aborted
        assert asyncio.get_running_loop().time() - started < 2
        writer.close()


@run
async def test_ssl_handshake_timeout_given_is_kept():
    async with serve(
        echo, "127.0.0.1", 0, ssl=tls_server_context(), open_timeout=0.1, ssl_handshake_timeout=30
    ) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.sockets[0].getsockname()[1])
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(reader.read(), 0.5)
        writer.close()


# --- names ----------------------------------------------------------------------------------


def test_websockets_server_names_exist():
    """What ``from websockets.asyncio.server import ...`` finds, fastws's
    module has, and Server has websockets' documented methods."""
    import websockets.asyncio.server as websockets_server

    import fastws.asyncio.connection
    import fastws.asyncio.server as fastws_server

    assert [n for n in websockets_server.__all__ if not hasattr(fastws_server, n)] == []
    assert fastws_server.broadcast is fastws.asyncio.connection.broadcast
    documented = [
        "close", "wait_closed", "get_loop", "is_serving", "start_serving", "serve_forever",
        "sockets", "connections", "__aenter__", "__aexit__",
    ]
    assert [n for n in documented if not hasattr(Server, n)] == []
    assert callable(ServerConnection.respond)


@run
async def test_connect_accepted_socket_serves_a_socket_accepted_elsewhere():
    """What the runner's parent-accept mode relies on: a socket accepted by
    someone else is served like one the server accepted, and closed with it."""
    import socket

    async def echo(websocket):
        async for message in websocket:
            await websocket.send(message)

    elsewhere = socket.create_server(("127.0.0.1", 0))
    elsewhere.setblocking(False)
    port = elsewhere.getsockname()[1]
    starter = fastws.serve(echo, "127.0.0.1", 0, ping_interval=None, start_serving=False)
    server = await starter
    with pytest.raises(RuntimeError, match="not accepting connections"):
        await server.connect_accepted_socket(socket.socket())
    await server.start_serving()
    loop = asyncio.get_running_loop()
    client_task = asyncio.ensure_future(fastws.connect(f"ws://127.0.0.1:{port}/"))
    accepted, _ = await loop.sock_accept(elsewhere)
    connection = await server.connect_accepted_socket(accepted)
    client = await client_task
    await client.send("through another accept()")
    assert await client.recv() == "through another accept()"
    assert connection in server.connections
    server.close()
    await server.wait_closed()
    with pytest.raises(fastws.ConnectionClosedOK):
        await client.recv()
    assert client.close_code == 1001
    elsewhere.close()

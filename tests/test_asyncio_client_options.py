"""connect() options: host/port, create_connection, logger, limits, proxy=,
unknown keyword arguments."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import socket

import pytest

import fastws
from fastws.asyncio.client import ClientConnection, connect, connect_listener, unix_connect
from fastws.exceptions import InvalidProxy

from asyncio_helpers import run, server


async def report(websocket):
    request = websocket.request
    await websocket.send(json.dumps({"path": request.path, "host": request.headers.get("Host")}))
    await websocket.wait_closed()


def port_of(uri):
    return int(uri.rsplit(":", 1)[1].strip("/"))


@pytest.mark.parametrize(
    "uri, override, host_header",
    [
        ("ws://example.invalid:1234/path?q=1", {"host": "127.0.0.1", "port": None}, "example.invalid:1234"),
        ("ws://example.invalid/path?q=1", {"host": "127.0.0.1", "port": None}, "example.invalid"),
        ("ws://127.0.0.1:1/path?q=1", {"port": None}, "127.0.0.1:1"),
        ("ws://localhost/path?q=1", {"host": "127.0.0.1", "port": None}, "localhost"),
    ],
)
@run
async def test_host_and_port_override(uri, override, host_header):
    async with server(report) as (_, base):
        override = {name: port_of(base) if value is None else value for name, value in override.items()}
        async with connect(uri, **override) as websocket:
            assert json.loads(await websocket.recv()) == {"path": "/path?q=1", "host": host_header}
            assert websocket.remote_address[1] == port_of(base)


@run
async def test_create_connection_subclass_used():
    made = []

    class MyConnection(ClientConnection):
        def __init__(self, protocol, **options):
            super().__init__(protocol, **options)
            made.append(options)

    async with server(report) as (_, uri):
        async with connect(uri, create_connection=MyConnection, close_timeout=3) as websocket:
            assert type(websocket) is MyConnection
            assert json.loads(await websocket.recv())["path"] == "/"
        # A subclass is used by await and async for too.
        websocket = await connect(uri, create_connection=MyConnection)
        assert isinstance(websocket, MyConnection)
        await websocket.close()
        async for websocket in connect(uri, create_connection=MyConnection):
            assert isinstance(websocket, MyConnection)
            break
    assert len(made) == 3
    assert made[0]["close_timeout"] == 3
    assert "listener" not in made[0]  # a plain websockets-style subclass gets no listener


@run
async def test_default_connection_class():
    async with server(report) as (_, uri):
        async with connect(uri) as websocket:
            assert type(websocket) is ClientConnection


@pytest.mark.parametrize("logger", ["my.client", logging.getLogger("other.client")])
@run
async def test_logger_argument(logger):
    expected = logging.getLogger(logger) if isinstance(logger, str) else logger
    async with server(report) as (_, uri):
        client = connect(uri, logger=logger)
        assert client.logger is expected
        async with client as websocket:
            await websocket.recv()
            # The connection's logger is an adapter of the same logger.
            assert websocket.logger.logger is expected
        async with connect(uri) as websocket:
            await websocket.recv()
            assert websocket.logger.logger is logging.getLogger("fastws.client")


def test_default_logger():
    assert connect("ws://localhost/").logger is logging.getLogger("fastws.client")


@pytest.mark.parametrize(
    "options",
    [{"max_queue": (8, 2)}, {"max_queue": (8, None)}, {"write_limit": (65536, 1024)}, {"write_limit": (4096, None)}],
)
@run
async def test_tuple_limits(options):
    async def echo(websocket):
        async for message in websocket:
            await websocket.send(message)

    async with server(echo) as (_, uri):
        async with connect(uri, **options) as websocket:
            for i in range(20):
                await websocket.send(str(i))
                assert await websocket.recv() == str(i)


@pytest.mark.parametrize(
    "function, args, kwargs, name",
    [
        (connect, ("ws://localhost/",), {"process_response": None}, "process_response"),
        (connect, ("ws://localhost/",), {"pingInterval": 3}, "pingInterval"),
        (connect, ("ws://localhost/",), {"ssl_context": None}, "ssl_context"),
        (connect, ("ws://localhost/",), {"reuse_port": True}, "reuse_port"),  # create_server's, not ours
        (connect, ("ws://localhost/",), {"unix": True, "family": 0}, "family"),  # TCP only
        (unix_connect, ("/x",), {"local_addr": ("127.0.0.1", 0)}, "local_addr"),
        (unix_connect, ("/x",), {"bogus": 1}, "bogus"),
        (connect_listener, (fastws.Listener, "ws://localhost/"), {"bogus": 1}, "bogus"),
        (connect_listener, (fastws.Listener, "ws://localhost/"), {"logger_name": "x"}, "logger_name"),
    ],
)
def test_unknown_keyword_arguments_rejected_at_the_call(function, args, kwargs, name):
    with pytest.raises(TypeError) as info:
        function(*args, **kwargs)
    assert str(info.value) == f"{function.__name__}() got an unexpected keyword argument {name!r}"


@pytest.mark.parametrize(
    "options",
    [
        {"family": socket.AF_INET},
        {"local_addr": ("127.0.0.1", 0)},
        {"proto": 0, "flags": 0},
        {"happy_eyeballs_delay": 0.25},
        {"ssl_handshake_timeout": None},
    ],
)
@run
async def test_event_loop_arguments_accepted(options):
    """What the running loop takes is accepted; what it does not (uvloop has
    no happy_eyeballs_delay) is refused at the call, naming it."""
    taken = inspect.signature(asyncio.get_running_loop().create_connection).parameters
    async with server(report) as (_, uri):
        missing = [name for name in options if name not in taken]
        if missing:
            with pytest.raises(TypeError, match=f"unexpected keyword argument {missing[0]!r}"):
                connect(uri, **options)
            return
        async with connect(uri, **options) as websocket:
            assert json.loads(await websocket.recv())["path"] == "/"


def test_connect_own_arguments_all_accepted():
    client = connect(
        "wss://localhost/",
        origin="https://localhost",
        subprotocols=["chat"],
        extra_headers={"X-A": "1"},
        additional_headers={"X-B": "2"},
        user_agent_header=None,
        compression=None,
        extensions=None,
        proxy=None,
        proxy_ssl=None,
        proxy_server_hostname=None,
        process_exception=lambda exc: exc,
        reconnect_delays=lambda: iter([1.0]),
        open_timeout=1,
        ping_interval=None,
        ping_timeout=None,
        close_timeout=1,
        max_size=None,
        max_queue=(4, 1),
        write_limit=(1024, 256),
        logger="x",
        create_connection=ClientConnection,
        ssl=None,
        server_hostname="localhost",
        host="127.0.0.1",
        port=1,
        proxy_ssl_handshake_timeout=5,
    )
    assert client.uri.host == "localhost"


@run
async def test_unix_connect(tmp_path):
    path = str(tmp_path / "ws.sock")
    async with fastws.unix_serve(report, path, ping_interval=None):
        async with unix_connect(path) as websocket:
            assert json.loads(await websocket.recv()) == {"path": "/", "host": "localhost"}
        async with unix_connect(path, "ws://example.invalid/chat", ssl_handshake_timeout=None) as websocket:
            assert json.loads(await websocket.recv()) == {"path": "/chat", "host": "example.invalid"}


@run
async def test_connect_listener():
    messages = asyncio.get_running_loop().create_future()

    class Keep(fastws.Listener):
        def on_message(self, connection, message):
            messages.set_result(message)

    async with server(report) as (_, uri):
        async with connect_listener(Keep, uri + "cb", ping_interval=None):
            assert json.loads(await messages)["path"] == "/cb"


@pytest.mark.parametrize(
    "proxy, error",
    [
        ("ftp://proxy.example:21", InvalidProxy),
        ("http://", InvalidProxy),
        (42, TypeError),
        (["http://proxy.example"], TypeError),
    ],
)
def test_bad_proxy_argument_rejected_at_the_call(proxy, error):
    with pytest.raises(error):
        connect("ws://localhost/", proxy=proxy)


@pytest.mark.parametrize("proxy", [None, False])
@run
async def test_no_proxy_ignores_environment(proxy, monkeypatch):
    # A proxy nobody listens on: used, it would refuse the connection.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    for name in ("WS_PROXY", "HTTP_PROXY", "ALL_PROXY", "http_proxy", "all_proxy", "ws_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead}")
    async with server(report) as (_, uri):
        with pytest.raises(OSError):
            await connect(uri)  # proxy=True: the environment's proxy
        async with connect(uri, proxy=proxy) as websocket:
            assert json.loads(await websocket.recv())["path"] == "/"


@run
async def test_ssl_with_ws_uri_rejected():
    import ssl

    with pytest.raises(ValueError) as info:
        connect("ws://localhost/", ssl=ssl.create_default_context())
    assert str(info.value) == "connect() got an ssl context for a ws:// URI; use wss://"


@run
async def test_a_timeout_of_the_connection_itself_is_not_called_open_timeout():
    """connect(2) timing out (ETIMEDOUT) is raised as it is, not as the expiry
    of open_timeout (from Python 3.11 on both are TimeoutError)."""
    loop = asyncio.get_running_loop()

    async def timing_out(*args, **kwargs):
        raise TimeoutError(110, "Connection timed out")

    loop.create_connection = timing_out  # type: ignore[method-assign]
    try:
        with pytest.raises(TimeoutError) as caught:
            await fastws.connect("ws://127.0.0.1:1/", open_timeout=30, proxy=None)
    finally:
        del loop.create_connection
    assert caught.value.errno == 110 and "open_timeout" not in str(caught.value)
    assert "during the opening handshake" not in str(caught.value)

"""fastws.sync.server: hooks, authentication, origins, subprotocols, shutdown,
handler outcomes, TLS, Unix sockets, and the options serve() and connect() refuse."""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import re
import socket
import ssl
import threading
from typing import Any

import pytest

from fastws.exceptions import (
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidStatus,
    InvalidURI,
)
from fastws.sync.client import connect, unix_connect
from fastws.sync.server import ServerConnection, basic_auth, serve, unix_serve

from sync_helpers import TIMEOUT, echo, running, sync_server


def test_handler_return_closes_1000_and_raise_closes_1011(caplog: pytest.LogCaptureFixture) -> None:
    def handler(ws: ServerConnection) -> None:
        if ws.request.path == "/boom":
            raise RuntimeError("boom")

    with sync_server(handler) as uri:
        with connect(uri, proxy=None) as ws, pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=TIMEOUT)
        assert ws.close_code == 1000
        with caplog.at_level(logging.ERROR, "fastws.server"):
            with connect(uri + "boom", proxy=None) as ws, pytest.raises(ConnectionClosedError):
                ws.recv(timeout=TIMEOUT)
            assert ws.close_code == 1011
    failures = [r for r in caplog.records if r.getMessage() == "connection handler failed"]
    assert len(failures) == 1 and "boom" in str(failures[0].exc_info[1])
    assert failures[0].name == "fastws.server"


def test_shutdown_closes_open_connections_with_1001() -> None:
    entered = threading.Event()

    def handler(ws: ServerConnection) -> None:
        entered.set()
        for _ in ws:
            pass

    server = serve(handler, "127.0.0.1", 0, ping_interval=None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    uri = f"ws://127.0.0.1:{server.socket.getsockname()[1]}/"
    clients = [connect(uri, proxy=None) for _ in range(3)]
    assert entered.wait(TIMEOUT)
    assert len(server.connections) == 3
    stopper = threading.Thread(target=server.shutdown)
    stopper.start()
    for ws in clients:
        with pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=TIMEOUT)
        assert ws.close_code == 1001
    stopper.join(TIMEOUT)
    thread.join(TIMEOUT)
    assert not stopper.is_alive() and not thread.is_alive()
    assert server.connections == set()
    with pytest.raises(OSError):
        connect(uri, proxy=None, open_timeout=2)
    server.shutdown()  # again: nothing


def test_shutdown_from_a_handler_is_refused() -> None:
    errors: list = []

    def handler(ws: ServerConnection) -> None:
        try:
            ws.server.shutdown()
        except RuntimeError as exc:
            errors.append(str(exc))

    with sync_server(handler) as uri, connect(uri, proxy=None) as ws:
        with pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=TIMEOUT)
    assert len(errors) == 1 and "connection handler" in errors[0]


def test_server_attributes() -> None:
    seen: dict = {}

    def handler(ws: ServerConnection) -> None:
        seen.update(
            id=ws.id, logger=ws.logger, request=ws.request, response=ws.response,
            local=ws.local_address, remote=ws.remote_address, sock=ws.socket,
        )  # fmt: skip

    with sync_server(handler) as uri, connect(uri + "path?q=1", proxy=None) as ws:
        with pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=TIMEOUT)
    assert seen["request"].path == "/path?q=1"
    assert seen["response"].status_code == 101
    assert seen["logger"].logger.name == "fastws.server"
    assert seen["logger"].extra == {"websocket": seen["logger"].extra["websocket"]}
    assert seen["local"][1] == int(uri.split(":")[2].strip("/"))
    assert isinstance(seen["sock"], socket.socket)
    assert ws.logger.logger.name == "fastws.client" and ws.logger.extra["websocket"] is ws
    assert ws.id != seen["id"]
    assert ws.response.status_code == 101 and ws.request.path == "/path?q=1"


def test_fileno_and_socket() -> None:
    with running(serve(echo, "127.0.0.1", 0)) as server:
        assert server.fileno() == server.socket.fileno() >= 0


def test_process_request_response_and_respond() -> None:
    def process_request(connection: ServerConnection, request: Any) -> Any:
        if request.path == "/health":
            return connection.respond(200, "OK\n")
        if request.path == "/crash":
            raise ValueError("hook bug")
        return None

    def process_response(connection: ServerConnection, request: Any, response: Any) -> Any:
        if request.path == "/teapot":
            return connection.respond(418, "teapot\n")
        response.headers["X-Hook"] = "yes"
        return None

    with sync_server(echo, process_request=process_request, process_response=process_response) as uri:
        for path, status in [("health", 200), ("crash", 500), ("teapot", 418)]:
            with pytest.raises(InvalidStatus) as info:
                connect(uri + path, proxy=None)
            assert info.value.response.status_code == status, path
        with connect(uri, proxy=None) as ws:
            assert ws.response.headers["X-Hook"] == "yes"
            ws.send("still echoes")
            assert ws.recv(timeout=TIMEOUT) == "still echoes"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("authorization", "status", "body"),
    [
        (None, 401, b"Missing credentials\n"),
        ("Bearer abc", 401, b"Unsupported credentials\n"),
        ("Basic !!!", 401, b"Unsupported credentials\n"),
        (_basic("alice", "wrong"), 401, b"Invalid credentials\n"),
        (_basic("mallory", "secret"), 401, b"Invalid credentials\n"),
        (_basic("alice", "secret"), 101, None),
        (_basic("bob", "pa:ss"), 101, None),
    ],
)
@pytest.mark.parametrize("by", ["credentials", "check_credentials"])
def test_basic_auth(authorization: Any, status: int, body: Any, by: str) -> None:
    users = {"alice": "secret", "bob": "pa:ss"}
    if by == "credentials":
        hook = basic_auth(realm="test zone", credentials=list(users.items()))
    else:
        hook = basic_auth(realm="test zone", check_credentials=lambda u, p: users.get(u) == p)
    names: list = []

    def handler(ws: ServerConnection) -> None:
        names.append(ws.username)

    headers = {"Authorization": authorization} if authorization else None
    with sync_server(handler, process_request=hook) as uri:
        if status == 101:
            with connect(uri, proxy=None, additional_headers=headers) as ws:
                with pytest.raises(ConnectionClosedOK):
                    ws.recv(timeout=TIMEOUT)
            assert names == [authorization and base64.b64decode(authorization[6:]).decode().split(":")[0]]
        else:
            with pytest.raises(InvalidStatus) as info:
                connect(uri, proxy=None, additional_headers=headers)
            response = info.value.response
            assert response.status_code == 401 and response.body == body
            assert response.headers["WWW-Authenticate"] == 'Basic realm="test zone", charset="UTF-8"'
            assert names == []


@pytest.mark.parametrize(
    "args",
    [{}, {"credentials": ("a", "b"), "check_credentials": lambda u, p: True}, {"credentials": [("a", 1)]}],
)
def test_basic_auth_refuses_bad_arguments(args: dict) -> None:
    with pytest.raises(TypeError):
        basic_auth(**args)


ORIGINS = ["https://exact.example", re.compile(r"https://[a-z]+\.allowed\.example"), None]


@pytest.mark.parametrize(
    ("origin", "ok"),
    [
        ("https://exact.example", True),
        ("https://sub.allowed.example", True),
        (None, True),
        ("https://sub.allowed.example.evil", False),  # fullmatch, not match
        ("https://exact.example.evil", False),
        ("https://other.example", False),
    ],
)
def test_origins_values_and_regular_expressions(origin: Any, ok: bool) -> None:
    with sync_server(echo, origins=ORIGINS) as uri:
        if ok:
            with connect(uri, proxy=None, origin=origin) as ws:
                ws.send("in")
                assert ws.recv(timeout=TIMEOUT) == "in"
        else:
            with pytest.raises(InvalidStatus) as info:
                connect(uri, proxy=None, origin=origin)
            assert info.value.response.status_code == 403


def test_origins_without_none_refuses_requests_without_origin() -> None:
    with sync_server(echo, origins=["https://a.example"]) as uri, pytest.raises(InvalidStatus):
        connect(uri, proxy=None)


@pytest.mark.parametrize(
    ("server_options", "offered", "chosen"),
    [
        ({"subprotocols": ["chat", "superchat"]}, ["superchat", "chat"], "chat"),
        ({"subprotocols": ["chat"]}, ["other"], None),
        ({"select_subprotocol": lambda ws, offered: offered[-1]}, ["a", "b"], "b"),
        ({"select_subprotocol": lambda ws, offered: None}, ["a", "b"], None),
    ],
)
def test_subprotocols(server_options: dict, offered: list, chosen: Any) -> None:
    got: list = []

    def handler(ws: ServerConnection) -> None:
        got.append(ws.subprotocol)

    with sync_server(handler, **server_options) as uri:
        with connect(uri, proxy=None, subprotocols=offered) as ws:
            assert ws.subprotocol == chosen
            with pytest.raises(ConnectionClosedOK):
                ws.recv(timeout=TIMEOUT)
    assert got == [chosen]


def test_headers_on_both_sides() -> None:
    seen: list = []

    def handler(ws: ServerConnection) -> None:
        seen.append(ws.request.headers)

    with sync_server(handler, server_header="my-server", extra_headers={"X-Extra": "1"}) as uri:
        with connect(uri, proxy=None, user_agent_header="my-agent", additional_headers={"X-Mine": "2"}) as ws:
            assert ws.response.headers["Server"] == "my-server"
            assert ws.response.headers["X-Extra"] == "1"
        with connect(uri, proxy=None, user_agent_header=None) as ws:
            pass
    with sync_server(handler, server_header=None) as uri, connect(uri, proxy=None) as ws:
        assert "Server" not in ws.response.headers
    assert seen[0]["User-Agent"] == "my-agent" and seen[0]["X-Mine"] == "2"
    assert "User-Agent" not in seen[1]
    assert seen[2]["User-Agent"].startswith("fastws/")


def test_max_size_fails_with_1009() -> None:
    got: list = []

    def handler(ws: ServerConnection) -> None:
        try:
            for message in ws:
                got.append(len(message))
        except ConnectionClosedError as exc:
            got.append(exc.sent.code)

    with sync_server(handler, max_size=1000) as uri, connect(uri, proxy=None) as ws:
        ws.send(b"x" * 1000)  # at the limit: fine
        ws.send(b"x" * 1001)
        with pytest.raises(ConnectionClosedError):
            ws.recv(timeout=TIMEOUT)
        assert ws.close_code == 1009
    assert got == [1000, 1009]
    with sync_server(echo) as uri, connect(uri, proxy=None, max_size=100) as ws:
        ws.send("y" * 101)
        with pytest.raises(ConnectionClosedError):
            ws.recv(timeout=TIMEOUT)
        assert ws.protocol.close_sent.code == 1009


def _echo_in_fragments_of_10(ws: ServerConnection) -> None:
    for message in ws:
        ws.send([message[i : i + 10] for i in range(0, len(message), 10)])


def test_max_size_pair_limits_messages_and_fragments() -> None:
    with sync_server(_echo_in_fragments_of_10, compression=None) as uri:
        with connect(uri, proxy=None, compression=None, max_size=(100, 10)) as ws:
            ws.send(["x" * 10] * 10)  # ten fragments of 10: fine
            assert ws.recv(timeout=TIMEOUT) == "x" * 100
        with sync_server(lambda ws: ws.send(["y" * 11, "z"]), compression=None) as uri2:
            with connect(uri2, proxy=None, max_size=(100, 10)) as ws:
                with pytest.raises(ConnectionClosedError):
                    ws.recv(timeout=TIMEOUT)
                assert ws.protocol.close_sent.code == 1009


@pytest.fixture(scope="module")
def certificates() -> Any:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def test_tls(certificates: Any) -> None:
    server_context, client_context = certificates
    with running(serve(echo, "127.0.0.1", 0, ssl=server_context, ping_interval=None)) as server:
        port = server.socket.getsockname()[1]
        with connect(f"wss://localhost:{port}/", ssl=client_context, proxy=None) as ws:
            assert isinstance(ws.socket, ssl.SSLSocket)
            for message in ["tls", b"\x00" * 100_000, "é" * 50_000]:
                ws.send(message)
                assert ws.recv(timeout=TIMEOUT) == message
            assert ws.ping().wait(TIMEOUT)
        assert ws.close_code == 1000
        with connect(
            f"wss://127.0.0.1:{port}/", ssl=client_context, server_hostname="localhost", proxy=None
        ) as ws:
            ws.send("by address")
            assert ws.recv(timeout=TIMEOUT) == "by address"
        with pytest.raises(ssl.SSLError):
            connect(f"wss://localhost:{port}/", proxy=None)  # the default context does not trust the CA


def test_unix_sockets(tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "ws.sock")
    with running(unix_serve(echo, path, ping_interval=None)):
        with unix_connect(path, proxy=None) as ws:
            ws.send("over unix")
            assert ws.recv(timeout=TIMEOUT) == "over unix"
            assert ws.remote_address == path
        with connect("ws://localhost/x", unix=True, path=path) as ws:
            ws.send(b"again")
            assert ws.recv(timeout=TIMEOUT) == b"again"


def test_sock_argument_on_both_sides() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    with running(serve(echo, sock=listener, ping_interval=None)) as server:
        port = server.socket.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        with connect(f"ws://example.invalid:{port}/", sock=client, proxy=None) as ws:
            ws.send("through sock")
            assert ws.recv(timeout=TIMEOUT) == "through sock"
            assert ws.socket is client


@pytest.mark.parametrize("function", ["connect", "serve", "unix_connect", "unix_serve"])
def test_unknown_keyword_arguments_are_refused_at_the_call(function: str) -> None:
    calls = {
        "connect": lambda: connect("ws://127.0.0.1:9/", nonsense=1, ping_intreval=3),
        "serve": lambda: serve(echo, "127.0.0.1", 0, nonsense=1, ping_intreval=3),
        "unix_connect": lambda: unix_connect("/nonexistent", nonsense=1, ping_intreval=3),
        "unix_serve": lambda: unix_serve(echo, "/nonexistent", nonsense=1, ping_intreval=3),
    }
    with pytest.raises(TypeError, match="nonsense"):
        calls[function]()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"uri": "http://127.0.0.1/"}, InvalidURI),
        ({"uri": "ws://127.0.0.1/", "ssl": ssl.create_default_context()}, ValueError),
        ({"uri": "ws://127.0.0.1/", "compression": "zstd"}, ValueError),
        ({"uri": "ws://127.0.0.1/", "max_queue": 0}, ValueError),
        ({"uri": "ws://127.0.0.1/", "max_size": (1, 2, 3)}, ValueError),
        ({"uri": "ws://127.0.0.1/", "max_size": -1}, ValueError),
    ],
)
def test_connect_refuses_bad_options_before_any_io(kwargs: dict, error: type) -> None:
    with pytest.raises(error):
        connect(proxy=None, **kwargs)


def test_open_timeout_when_the_server_never_answers() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    with contextlib.closing(listener):
        port = listener.getsockname()[1]
        with pytest.raises(TimeoutError):
            connect(f"ws://127.0.0.1:{port}/", proxy=None, open_timeout=0.1)


def test_server_open_timeout_drops_silent_clients() -> None:
    with sync_server(echo, open_timeout=0.1) as uri:
        port = int(uri.split(":")[2].strip("/"))
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            assert sock.recv(100) == b""  # closed without an answer

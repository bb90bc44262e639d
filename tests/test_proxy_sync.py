"""Connecting through proxies with blocking sockets: connect_through_proxy on
its own, then fastws.sync.client.connect(proxy=...), against a real proxy
(pproxy) and a real server on loopback. A tunnel counted by the proxy, or a
proxy that wants credentials, shows that the traffic went through it."""

from __future__ import annotations

import contextlib
import os
import socket
import threading

import pytest

from fastws.exceptions import InvalidProxy, InvalidProxyMessage, InvalidProxyStatus, ProxyError
from fastws.proxy import parse_proxy
from fastws.sync import proxy as sync_proxy
from fastws.sync.client import connect
from fastws.sync.proxy import connect_through_proxy
from fastws.sync.server import serve
from fastws.uri import parse_uri

from asyncio_helpers import HANDSHAKE
from proxy_helpers import Certificates, ProxyServer, fake_proxy

pytest.importorskip("pproxy")
pytest.importorskip("python_socks")

TIMEOUT = 10.0
TIMEOUTS = (TimeoutError, socket.timeout)  # distinct classes before Python 3.10


@pytest.fixture(scope="module")
def certs():
    return Certificates()


@pytest.fixture
def environ(monkeypatch):
    """No proxy in the environment unless the test sets one."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("REQUEST_METHOD", raising=False)
    return monkeypatch


def echo(websocket):
    for message in websocket:
        websocket.send(message)


@contextlib.contextmanager
def serving(ssl=None):
    """A fastws.sync echo server on 127.0.0.1; yields a function giving its URI
    with a host name (``localhost`` by default, which the proxy resolves)."""
    with serve(echo, "127.0.0.1", 0, ssl=ssl, ping_interval=None) as server:
        port = server.socket.getsockname()[1]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield lambda host="localhost": f"{'wss' if ssl else 'ws'}://{host}:{port}/"
        finally:
            server.shutdown()
            thread.join(TIMEOUT)


def through(proxy_url, uri, timeout=TIMEOUT, **options):
    return connect_through_proxy(parse_proxy(proxy_url), parse_uri(uri), timeout=timeout, **options)


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    return data


# --- connect_through_proxy on its own -------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https", "socks5", "socks5h", "socks4"])
@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_handshake_through_proxy(certs, scheme, secure):
    host = "127.0.0.1" if scheme == "socks4" else "localhost"  # socks4 sends an IPv4 address
    protocols = "http" if scheme.startswith("http") else scheme.rstrip("h")
    with ProxyServer(protocols, tls=certs if scheme == "https" else None) as proxy:
        with serving(certs.server if secure else None) as uri:
            options = {"proxy_ssl": certs.client} if scheme == "https" else {}
            if scheme == "https" and secure:
                with pytest.raises(InvalidProxy, match="not supported by the sync client yet"):
                    through(proxy.url(scheme), uri(host))
                assert proxy.tunnels == []
                return
            sock = through(proxy.url(scheme), uri(host), **options)
            try:
                assert sock.gettimeout() == TIMEOUT
                if secure:
                    sock = certs.client.wrap_socket(sock, server_hostname=host)
                sock.sendall(HANDSHAKE)
                assert read_head(sock).startswith(b"HTTP/1.1 101 ")
                assert len(proxy.tunnels) == 1
                # socks4 and socks5 resolve the name here, the others at the proxy.
                target = "127.0.0.1" if scheme in ("socks4", "socks5") else host
                assert proxy.tunnels[0].endswith(f" -> {target}:{parse_uri(uri()).port}")
            finally:
                sock.close()


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_bytes_after_the_answer_stay_on_the_socket(certs, tls):
    # Not one byte past the answer is read: a plain socket is peeked at, a TLS
    # one read a few bytes at a time. The answer comes in one write.
    answer = b"HTTP/1.1 200 OK\r\nVia: 1.1 fake\r\n\r\nfirst bytes of the server"
    with fake_proxy(lambda head: answer, certs.server if tls else None) as fake:
        proxy = parse_proxy(f"{'https' if tls else 'http'}://127.0.0.1:{fake['port']}")
        options = {"proxy_ssl": certs.client} if tls else {}
        sock = connect_through_proxy(proxy, parse_uri("ws://example.com:1234/"), timeout=TIMEOUT, **options)
        with sock:
            received = b""
            while True:
                data = sock.recv(4096)
                if not data:
                    break
                received += data
        assert received == b"first bytes of the server"
    assert fake["heads"][0].startswith(b"CONNECT example.com:1234 HTTP/1.1\r\nHost: example.com:1234\r\n")


BAD_ANSWERS = [
    (b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n", InvalidProxyStatus, "HTTP 407"),
    (b"HTTP/1.1 502 Bad Gateway\r\n\r\n", InvalidProxyStatus, "HTTP 502 Bad Gateway"),
    (b"HTTP/1.1 200 OK\r\n", InvalidProxyMessage, "closed the connection before answering"),
    (b"", InvalidProxyMessage, "closed the connection before answering"),
    (b"HTTP/1.1 200 OK\r\nX: " + b"x" * 10000 + b"\r\n\r\n", InvalidProxyMessage, "longer than 8192"),
    (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 200 + b"\r\n", InvalidProxyMessage, "more than 128 headers"),
]
# A TLS record from a plain-text proxy URL (inside TLS, it would be just bytes).
TLS_ALERT = (b"\x15\x03\x03\x00\x02\x02\x46", InvalidProxyMessage, "answered with TLS")


@pytest.mark.parametrize(
    "answer, error, message, tls",
    [(*case, False) for case in [*BAD_ANSWERS, TLS_ALERT]] + [(*case, True) for case in BAD_ANSWERS],
)
def test_bad_answers(certs, answer, error, message, tls):
    with fake_proxy(lambda head: answer, certs.server if tls else None) as fake:
        proxy = parse_proxy(f"{'https' if tls else 'http'}://127.0.0.1:{fake['port']}")
        options = {"proxy_ssl": certs.client} if tls else {}
        with pytest.raises(error, match=message):
            connect_through_proxy(proxy, parse_uri("ws://example.com/"), timeout=TIMEOUT, **options)


def test_silent_proxy_times_out():
    with fake_proxy(lambda head: None) as fake:
        with pytest.raises(TIMEOUTS):
            through(f"http://127.0.0.1:{fake['port']}", "ws://example.com/", timeout=0.3)
        # The socket was closed: the fake proxy saw EOF and left (joined on exit).


def test_proxy_unreachable_is_an_os_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        for scheme in ("http", "socks5"):
            with pytest.raises(OSError):
                through(f"{scheme}://127.0.0.1:{port}", "ws://example.com/")


@pytest.mark.parametrize(
    "proxy_url, options, error, message",
    [
        ("http://127.0.0.1:1", {"proxy_ssl": True}, ValueError, "for https:// proxies, not http://"),
        ("socks5://127.0.0.1:1", {"proxy_server_hostname": "p"}, ValueError, "for https:// proxies, not socks5://"),
        ("http://127.0.0.1:1", {"family": 2}, TypeError, "unexpected arguments: family"),
    ],
)
def test_bad_options(proxy_url, options, error, message):
    with pytest.raises(error, match=message):
        through(proxy_url, "ws://example.com/", **options)


def test_socks_without_python_socks(monkeypatch):
    monkeypatch.setattr(sync_proxy, "_HAVE_SOCKS", False)
    with pytest.raises(InvalidProxy, match=r"pip install 'pyfastws\[socks\]'") as exc_info:
        through("socks5h://user:secret@127.0.0.1:1080", "ws://example.com/")
    assert "secret" not in str(exc_info.value)


# --- fastws.sync.client.connect(proxy=...) --------------------------------------


def exchange(uri, **options):
    with connect(uri, ping_interval=None, open_timeout=TIMEOUT, **options) as websocket:
        websocket.send("through")
        return websocket.recv(timeout=TIMEOUT)


@pytest.mark.parametrize(
    "scheme, secure",
    [("http", False), ("http", True), ("https", False), ("socks5h", False), ("socks5h", True)],
)
def test_connect_through_proxy(environ, certs, scheme, secure):
    protocols = "http" if scheme.startswith("http") else "socks5"
    with ProxyServer(protocols, tls=certs if scheme == "https" else None) as proxy:
        with serving(certs.server if secure else None) as uri:
            options = {"ssl": certs.client} if secure else {}
            if scheme == "https":
                options["proxy_ssl"] = certs.client
            assert exchange(uri(), proxy=proxy.url(scheme), **options) == "through"
            assert [line.rsplit(" ", 1)[1] for line in proxy.tunnels] == [f"localhost:{parse_uri(uri()).port}"]


@pytest.mark.parametrize("scheme", ["http", "socks5"])
def test_connect_with_credentials(environ, scheme):
    with ProxyServer(scheme, auth="alice:s3cret") as proxy:
        with serving() as uri:
            assert exchange(uri(), proxy=proxy.url(scheme, "alice:s3cret")) == "through"
            assert len(proxy.tunnels) == 1
            for credentials in (None, "alice:wrong"):
                if scheme == "http":
                    with pytest.raises(InvalidProxyStatus) as exc_info:
                        exchange(uri(), proxy=proxy.url(scheme, credentials))
                    assert exc_info.value.response.status_code == 407
                    assert "wrong" not in str(exc_info.value)
                else:
                    with pytest.raises((ProxyError, OSError)):
                        exchange(uri(), proxy=proxy.url(scheme, credentials))
            assert len(proxy.tunnels) == 1


def test_connect_uses_the_environment(environ):
    with ProxyServer("http") as proxy:
        with serving() as uri:
            environ.setenv("HTTP_PROXY", proxy.url("http"))
            assert exchange(uri()) == "through"
            assert len(proxy.tunnels) == 1
            assert exchange(uri(), proxy=None) == "through"
            assert len(proxy.tunnels) == 1
            environ.setenv("NO_PROXY", "localhost")
            assert exchange(uri()) == "through"
            assert len(proxy.tunnels) == 1
            environ.setenv("NO_PROXY", "other.example")
            assert exchange(uri()) == "through"
            assert len(proxy.tunnels) == 2


def test_connect_invalid_proxy(environ):
    with pytest.raises(InvalidProxy, match="scheme 'ftp'"):
        exchange("ws://localhost:1/", proxy="ftp://user:pw@proxy")
    environ.setenv("HTTP_PROXY", "gopher://proxy")
    with pytest.raises(InvalidProxy, match="scheme 'gopher'"):
        exchange("ws://localhost:1/")


@pytest.mark.parametrize(
    "options, user_agent",
    [
        ({}, b"User-Agent: fastws/"),
        ({"user_agent_header": "probe/1"}, b"User-Agent: probe/1\r\n"),
        ({"user_agent_header": None}, None),
    ],
)
def test_connect_sends_user_agent_and_credentials_to_proxy(environ, options, user_agent):
    with fake_proxy(lambda head: b"HTTP/1.1 403 Forbidden\r\n\r\n") as fake:
        with pytest.raises(InvalidProxyStatus, match="403 Forbidden"):
            exchange("ws://example.com:8765/", proxy=f"http://u:p@127.0.0.1:{fake['port']}", **options)
    head = fake["heads"][0]
    assert head.startswith(b"CONNECT example.com:8765 HTTP/1.1\r\n")
    assert b"\r\nProxy-Authorization: Basic dTpw\r\n" in head
    if user_agent is None:
        assert b"User-Agent" not in head
    else:
        assert user_agent in head


def test_connect_open_timeout_covers_the_proxy(environ):
    with fake_proxy(lambda head: None) as fake:  # reads CONNECT, never answers
        with pytest.raises(TIMEOUTS):
            with connect("ws://example.com/", proxy=f"http://127.0.0.1:{fake['port']}", open_timeout=0.3):
                pass

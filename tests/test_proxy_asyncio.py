"""Connecting through proxies on asyncio: create_connection_through_proxy on its
own, then fastws.connect(proxy=...), against a real proxy (pproxy) and a real
server on loopback. A tunnel counted by the proxy, or a proxy that wants
credentials, shows that the traffic went through it."""

from __future__ import annotations

import asyncio
import socket
import sys

import pytest

import fastws
from fastws.asyncio import proxy as asyncio_proxy
from fastws.asyncio.proxy import create_connection_through_proxy
from fastws.exceptions import InvalidProxy, InvalidProxyMessage, InvalidProxyStatus, ProxyError
from fastws.proxy import parse_proxy
from fastws.uri import parse_uri

from asyncio_helpers import HANDSHAKE, run
from proxy_helpers import Certificates, ProxyServer, fake_proxy

pytest.importorskip("pproxy")
pytest.importorskip("python_socks")

TLS_IN_TLS = sys.version_info >= (3, 11)


@pytest.fixture(scope="module")
def certs():
    return Certificates()


@pytest.fixture
def environ(monkeypatch):
    """No proxy in the environment unless the test sets one."""
    import os

    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("REQUEST_METHOD", raising=False)
    return monkeypatch


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


class _Serving:
    """A fastws echo server on 127.0.0.1 (TLS with ``ssl``); :meth:`uri` names it
    ``localhost``, a name the proxy resolves itself."""

    def __init__(self, ssl=None):
        self.ssl = ssl

    async def __aenter__(self):
        self.server = await fastws.serve(echo, "127.0.0.1", 0, ssl=self.ssl, ping_interval=None)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info):
        self.server.close()
        await self.server.wait_closed()

    def uri(self, host="localhost"):
        return f"{'wss' if self.ssl else 'ws'}://{host}:{self.port}/"


# --- create_connection_through_proxy on its own ---------------------------------


class Recorder(asyncio.Protocol):
    """Writes a WebSocket handshake request once connected, keeps what it reads."""

    def __init__(self, request=HANDSHAKE):
        self.request = request
        self.received = bytearray()
        self.closed = asyncio.get_running_loop().create_future()
        self.changed = asyncio.Event()

    def connection_made(self, transport):
        self.transport = transport
        if self.request:
            transport.write(self.request)

    def data_received(self, data):
        self.received += data
        self.changed.set()

    def connection_lost(self, exc):
        self.closed.set_result(exc)

    async def read_until(self, marker):
        while marker not in self.received:
            self.changed.clear()
            await self.changed.wait()
        return bytes(self.received)


class BufferedRecorder(asyncio.BufferedProtocol, Recorder):
    """The same, as a BufferedProtocol (as fastws' connections are), with a
    small buffer so that bytes come in several pieces."""

    def get_buffer(self, sizehint):
        self._buffer = bytearray(3)
        return self._buffer

    def buffer_updated(self, nbytes):
        self.data_received(bytes(self._buffer[:nbytes]))


async def open_raw(proxy_url, uri, protocol=Recorder, **kwargs):
    loop = asyncio.get_running_loop()
    return await create_connection_through_proxy(
        loop, protocol, parse_proxy(proxy_url), parse_uri(uri), **kwargs
    )


@pytest.mark.parametrize("scheme", ["http", "https", "socks5", "socks5h", "socks4"])
@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
@run
async def test_handshake_through_proxy(certs, scheme, secure):
    if scheme == "https" and secure and not TLS_IN_TLS:
        # asyncio's start_tls() over a TLS transport came with Python 3.11.
        with pytest.raises(InvalidProxy, match=r"needs Python 3\.11"):
            await open_raw("https://127.0.0.1:1", "wss://example.com/", ssl=certs.client)
        return
    host = "127.0.0.1" if scheme == "socks4" else "localhost"  # socks4 sends an IPv4 address
    protocols = "http" if scheme.startswith("http") else scheme.rstrip("h")
    with ProxyServer(protocols, tls=certs if scheme == "https" else None) as proxy:
        async with _Serving(certs.server if secure else None) as serving:
            transport, protocol = await open_raw(
                proxy.url(scheme),
                serving.uri(host),
                ssl=certs.client if secure else None,
                proxy_ssl=certs.client if scheme == "https" else None,
            )
            try:
                response = await protocol.read_until(b"\r\n\r\n")
                assert response.startswith(b"HTTP/1.1 101 ")
                # TLS with the server for wss://, else with an https:// proxy, else none.
                tls = transport.get_extra_info("ssl_object")
                if secure:
                    assert tls.server_hostname == host
                elif scheme == "https":
                    assert tls.server_hostname == "127.0.0.1"
                else:
                    assert tls is None
                assert len(proxy.tunnels) == 1
                # socks4 and socks5 resolve the name here, the others at the proxy.
                target = "127.0.0.1" if scheme in ("socks4", "socks5") else host
                assert proxy.tunnels[0].endswith(f" -> {target}:{serving.port}")
            finally:
                transport.close()


@pytest.mark.parametrize("protocol", [Recorder, BufferedRecorder])
@run
async def test_bytes_after_the_answer_reach_the_protocol(protocol):
    # A proxy may send the server's first bytes with its answer: none is lost,
    # whatever kind of protocol takes the transport over.
    with fake_proxy(lambda head: b"HTTP/1.1 200 OK\r\n\r\nfirst bytes of the server") as fake:
        # The protocol sends nothing: the fake proxy, closing, leaves no unread
        # bytes behind, and the close is a FIN, not a reset.
        transport, received = await open_raw(
            f"http://127.0.0.1:{fake['port']}", "ws://example.com:1234/", lambda: protocol(request=b"")
        )
        assert await received.closed is None  # the fake proxy closes after its answer
        assert bytes(received.received) == b"first bytes of the server"
    assert fake["heads"][0].startswith(b"CONNECT example.com:1234 HTTP/1.1\r\nHost: example.com:1234\r\n")


@run
async def test_bytes_before_tls_are_refused(certs):
    with fake_proxy(lambda head: b"HTTP/1.1 200 OK\r\n\r\n\x16\x03\x03") as fake:
        with pytest.raises(InvalidProxyMessage, match="data before the TLS handshake"):
            await open_raw(f"http://127.0.0.1:{fake['port']}", "wss://example.com/", ssl=certs.client)


@pytest.mark.parametrize(
    "answer, error, message",
    [
        (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", InvalidProxyStatus, "HTTP 403 Forbidden"),
        (b"HTTP/1.1 502 Bad Gateway\r\n\r\n", InvalidProxyStatus, "HTTP 502 Bad Gateway"),
        (b"HTTP/1.1 200 OK\r\n", InvalidProxyMessage, "closed the connection before answering"),
        (b"", InvalidProxyMessage, "closed the connection before answering"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"x" * 10000 + b"\r\n\r\n", InvalidProxyMessage, "longer than 8192"),
        (b"SOCKS?\r\n\r\n", InvalidProxyMessage, "invalid status line"),
        (b"\x15\x03\x03\x00\x02\x02\x46", InvalidProxyMessage, "answered with TLS"),
    ],
)
@run
async def test_bad_answers(answer, error, message):
    with fake_proxy(lambda head: answer) as fake:
        with pytest.raises(error, match=message):
            await open_raw(f"http://127.0.0.1:{fake['port']}", "ws://example.com/")


@run
async def test_proxy_unreachable_is_an_os_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        for scheme in ("http", "socks5"):
            with pytest.raises(OSError):
                await open_raw(f"{scheme}://127.0.0.1:{port}", "ws://example.com/")


@run
async def test_silent_proxy_is_cancelled_cleanly():
    received = asyncio.get_running_loop().create_future()

    async def never_answer(reader, writer):
        received.set_result(await reader.read())  # until the client leaves
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(open_raw(f"http://127.0.0.1:{port}", "ws://example.com/"), 0.5)
        # Cancelled, the client closed its connection to the proxy.
        assert (await received).startswith(b"CONNECT example.com:80 HTTP/1.1\r\n")


@pytest.mark.parametrize(
    "proxy_url, options, message",
    [
        ("http://127.0.0.1:1", {"proxy_ssl": True}, "for https:// proxies, not http://"),
        ("http://127.0.0.1:1", {"proxy_server_hostname": "p"}, "for https:// proxies, not http://"),
        ("socks5://127.0.0.1:1", {"proxy_ssl": True}, "for https:// proxies, not socks5://"),
        ("http://127.0.0.1:1", {"server_hostname": "example.com"}, "only meaningful with ssl"),
    ],
)
@run
async def test_tls_options_need_tls(proxy_url, options, message):
    with pytest.raises(ValueError, match=message):
        await open_raw(proxy_url, "ws://example.com/", **options)


@run
async def test_socks_without_python_socks(monkeypatch):
    monkeypatch.setattr(asyncio_proxy, "_HAVE_SOCKS", False)
    with pytest.raises(InvalidProxy, match=r"pip install 'pyfastws\[socks\]'") as exc_info:
        await open_raw("socks5h://user:secret@127.0.0.1:1080", "ws://example.com/")
    assert "secret" not in str(exc_info.value)


# --- fastws.connect(proxy=...) --------------------------------------------------


async def exchange(uri, **options):
    async with fastws.connect(uri, ping_interval=None, **options) as websocket:
        await websocket.send("through")
        return await websocket.recv()


@pytest.mark.parametrize("scheme", ["http", "https", "socks5h"])
@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
@run
async def test_connect_through_proxy(environ, certs, scheme, secure):
    if scheme == "https" and secure and not TLS_IN_TLS:
        with pytest.raises(InvalidProxy, match=r"needs Python 3\.11"):
            await exchange(
                "wss://example.com/", proxy="https://127.0.0.1:1", ssl=certs.client, proxy_ssl=certs.client
            )
        return
    protocols = "http" if scheme.startswith("http") else "socks5"
    with ProxyServer(protocols, tls=certs if scheme == "https" else None) as proxy:
        async with _Serving(certs.server if secure else None) as serving:
            options = {"ssl": certs.client} if secure else {}
            if scheme == "https":
                options["proxy_ssl"] = certs.client
            assert await exchange(serving.uri(), proxy=proxy.url(scheme), **options) == "through"
            assert [line.rsplit(" ", 1)[1] for line in proxy.tunnels] == [f"localhost:{serving.port}"]


@pytest.mark.parametrize("scheme", ["http", "socks5"])
@run
async def test_connect_with_credentials(environ, scheme):
    with ProxyServer(scheme, auth="alice:s3cret") as proxy:
        async with _Serving() as serving:
            assert await exchange(serving.uri(), proxy=proxy.url(scheme, "alice:s3cret")) == "through"
            assert len(proxy.tunnels) == 1
            for credentials in (None, "alice:wrong"):
                if scheme == "http":
                    with pytest.raises(InvalidProxyStatus) as exc_info:
                        await exchange(serving.uri(), proxy=proxy.url(scheme, credentials))
                    assert exc_info.value.response.status_code == 407
                    assert "wrong" not in str(exc_info.value)
                else:
                    # pproxy closes a SOCKS5 connection without credentials.
                    with pytest.raises((ProxyError, OSError)):
                        await exchange(serving.uri(), proxy=proxy.url(scheme, credentials))
            assert len(proxy.tunnels) == 1


@run
async def test_connect_uses_the_environment(environ):
    with ProxyServer("http") as proxy:
        async with _Serving() as serving:
            environ.setenv("HTTP_PROXY", proxy.url("http"))
            assert await exchange(serving.uri()) == "through"
            assert len(proxy.tunnels) == 1
            # proxy=None: directly.
            assert await exchange(serving.uri(), proxy=None) == "through"
            assert len(proxy.tunnels) == 1
            # NO_PROXY: directly.
            environ.setenv("NO_PROXY", f"localhost:{serving.port}")
            assert await exchange(serving.uri()) == "through"
            assert len(proxy.tunnels) == 1
            environ.setenv("NO_PROXY", "*")
            assert await exchange(serving.uri()) == "through"
            assert len(proxy.tunnels) == 1
            # Another port: through the proxy again.
            environ.setenv("NO_PROXY", "localhost:1")
            assert await exchange(serving.uri()) == "through"
            assert len(proxy.tunnels) == 2


@run
async def test_connect_env_wss_uses_https_proxy(environ, certs):
    with ProxyServer("http") as proxy:
        async with _Serving(certs.server) as serving:
            # HTTP_PROXY is for ws:// only; wss:// goes directly.
            environ.setenv("HTTP_PROXY", proxy.url("http"))
            assert await exchange(serving.uri(), ssl=certs.client) == "through"
            assert proxy.tunnels == []
            environ.setenv("HTTPS_PROXY", proxy.url("http"))
            assert await exchange(serving.uri(), ssl=certs.client) == "through"
            assert len(proxy.tunnels) == 1


@run
async def test_connect_invalid_proxy(environ):
    with pytest.raises(InvalidProxy, match="scheme 'ftp'"):
        await exchange("ws://localhost:1/", proxy="ftp://user:pw@proxy")
    environ.setenv("HTTP_PROXY", "gopher://proxy")
    with pytest.raises(InvalidProxy, match="scheme 'gopher'"):
        await exchange("ws://localhost:1/")


@pytest.mark.parametrize(
    "options, user_agent",
    [
        ({}, b"User-Agent: fastws/"),
        ({"user_agent_header": "probe/1"}, b"User-Agent: probe/1\r\n"),
        ({"user_agent_header": None}, None),
    ],
)
@run
async def test_connect_sends_user_agent_and_credentials_to_proxy(environ, options, user_agent):
    with fake_proxy(lambda head: b"HTTP/1.1 403 Forbidden\r\n\r\n") as fake:
        with pytest.raises(InvalidProxyStatus, match="403 Forbidden"):
            await exchange("ws://example.com:8765/", proxy=f"http://u:p@127.0.0.1:{fake['port']}", **options)
    head = fake["heads"][0]
    assert head.startswith(b"CONNECT example.com:8765 HTTP/1.1\r\n")
    assert b"\r\nProxy-Authorization: Basic dTpw\r\n" in head
    if user_agent is None:
        assert b"User-Agent" not in head
    else:
        assert user_agent in head


@run
async def test_connect_open_timeout_covers_the_proxy(environ):
    with fake_proxy(lambda head: None) as fake:  # reads CONNECT, never answers
        with pytest.raises(TimeoutError):
            await exchange("ws://example.com/", proxy=f"http://127.0.0.1:{fake['port']}", open_timeout=0.3)

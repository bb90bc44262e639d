"""Helpers for the proxy tests: a real proxy (pproxy) on 127.0.0.1 and a free
port, in its own thread and event loop, counting the tunnels it opened; a
scripted fake proxy for answers no real proxy gives; TLS certificates."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from typing import Callable, Iterator, List, Optional

import pytest


class ProxyServer:
    """A pproxy server running in a thread.

    Attributes:
        port (int): The port it listens on.
        tunnels (list[str]): pproxy's line for each tunnel it opened, such as
            ``"http 127.0.0.1:5678 -> 127.0.0.1:8765"``; a connection refused
            (bad credentials) adds none.
    """

    def __init__(self, schemes: str, auth: Optional[str] = None, ssl_context: Optional[ssl.SSLContext] = None):
        self.schemes = schemes
        self.auth = auth
        self.ssl_context = ssl_context
        self.port = 0
        self.tunnels: List[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: Optional[asyncio.AbstractServer] = None

    def _verbose(self, line: str) -> None:
        if " -> " in line:  # "<proto> <client> -> <host>:<port>": a tunnel
            self.tunnels.append(line)

    async def _start(self) -> None:
        import pproxy

        uri = f"{self.schemes}://127.0.0.1:0"
        if self.auth is not None:
            uri += f"#{self.auth}"
        server = pproxy.Server(uri)
        if self.ssl_context is not None:
            # pproxy reads sslserver from the Server object (its "+ssl" scheme
            # wants certificate files; a context is simpler).
            server.sslserver = self.ssl_context
        self._server = await server.start_server({"rserver": [], "authtime": -1, "verbose": self._verbose})
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()

    def __enter__(self) -> ProxyServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def url(self, scheme: str, credentials: Optional[str] = None) -> str:
        user = f"{credentials}@" if credentials is not None else ""
        return f"{scheme}://{user}127.0.0.1:{self.port}"


@contextlib.contextmanager
def fake_proxy(
    answer: Callable[[bytes], Optional[bytes]], ssl_context: Optional[ssl.SSLContext] = None
) -> Iterator[dict]:
    """A one-connection TCP server (TLS with ``ssl_context``) that reads a
    request head and writes ``answer(head)``, then closes; if ``answer``
    returns None, it waits for the client to close first. Yields
    ``{"port": ..., "heads": [...]}``."""
    listener = socket.create_server(("127.0.0.1", 0))
    state: dict = {"port": listener.getsockname()[1], "heads": []}

    def serve() -> None:
        with listener:
            try:
                conn, _ = listener.accept()
                if ssl_context is not None:
                    conn = ssl_context.wrap_socket(conn, server_side=True)
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    data = conn.recv(4096)
                    if not data:
                        return
                    head += data
                state["heads"].append(head)
                data = answer(head)
                if data is None:
                    with contextlib.suppress(OSError):
                        while conn.recv(4096):
                            pass
                else:
                    conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        # Wake accept() if no client came.
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", state["port"]), timeout=1).close()
        thread.join(10)


class Certificates:
    """trustme certificates for ``localhost`` and 127.0.0.1: a server context and
    a client context trusting the CA."""

    def __init__(self) -> None:
        trustme = pytest.importorskip("trustme")
        ca = trustme.CA()
        cert = ca.issue_cert("localhost", "127.0.0.1")
        self.server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self.server)
        self.client = ssl.create_default_context()
        ca.configure_trust(self.client)

"""Helpers for the proxy tests: a real proxy (pproxy) on 127.0.0.1 and a free
port, in a process of its own, counting the tunnels it opened; a scripted fake
proxy for answers no real proxy gives; TLS certificates."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from typing import Callable, Iterator, List, Optional

import pytest

# Run in the proxy's own process: pproxy serving one URI, printing its
# "verbose" lines (a tunnel is "<proto> <client> -> <host>:<port>") and its port.
_PPROXY = """
import asyncio, ssl, sys
import pproxy

async def main(uri, pem):
    server = pproxy.Server(uri)
    if pem:
        # pproxy reads sslserver from the Server object.
        server.sslserver = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.sslserver.load_cert_chain(pem)
    verbose = lambda line: print(line, flush=True)
    listening = await server.start_server({"rserver": [], "authtime": -1, "verbose": verbose})
    print("PORT", listening.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


class ProxyServer:
    """A pproxy server in a process of its own (its relays share no thread, loop
    or garbage with the test), stopped at the end of the ``with`` block.

    Args:
        schemes: What it serves: ``"http"``, ``"socks5"``, ``"http+socks5"``...
        auth: ``"user:password"`` that clients must give, if any.
        tls: Certificates whose server certificate it serves TLS with (an
            ``https://`` proxy), if any.

    Attributes:
        port (int): The port it listens on.
        tunnels (list[str]): pproxy's line for each tunnel it opened, such as
            ``"http 127.0.0.1:5678 -> 127.0.0.1:8765"``; a connection refused
            (bad credentials) adds none.
    """

    def __init__(self, schemes: str, auth: Optional[str] = None, tls: Optional[Certificates] = None):
        uri = f"{schemes}://127.0.0.1:0"
        if auth is not None:
            uri += f"#{auth}"
        self._command = [sys.executable, "-c", _PPROXY, uri, tls.server_pem if tls is not None else ""]
        self.port = 0
        self._tunnels: List[str] = []
        self._process: Optional[subprocess.Popen[bytes]] = None
        self._pending = b""

    def _read_lines(self, timeout: float) -> None:
        """Take the lines pproxy printed so far (waiting up to ``timeout`` for
        the first bytes)."""
        assert self._process is not None and self._process.stdout is not None
        fd = self._process.stdout.fileno()
        while select.select([fd], [], [], timeout)[0]:
            data = os.read(fd, 65536)
            if not data:
                break
            timeout = 0
            self._pending += data
            *lines, self._pending = self._pending.split(b"\n")
            for line in (raw.decode() for raw in lines):
                if line.startswith("PORT "):
                    self.port = int(line.split()[1])
                elif " -> " in line:
                    self._tunnels.append(line)

    @property
    def tunnels(self) -> List[str]:
        """pproxy's line for each tunnel it opened so far (it prints one before
        it connects to the server, so before any byte goes through)."""
        self._read_lines(0)
        return self._tunnels

    def __enter__(self) -> ProxyServer:
        self._process = subprocess.Popen(self._command, stdout=subprocess.PIPE, bufsize=0)
        deadline = time.monotonic() + 30
        while not self.port and time.monotonic() < deadline:
            self._read_lines(0.1)
        if not self.port:
            self._process.kill()
            self._process.wait()
            raise RuntimeError("pproxy did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._process is not None
        self._process.terminate()
        self._process.wait(10)
        assert self._process.stdout is not None
        self._process.stdout.close()

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
            state["conn"] = conn
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
        # Wake accept() if no client came, and recv() if the client's side is
        # not closed yet: an asyncio client closes its socket on the loop's next
        # iteration, which this join would otherwise hold up.
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", state["port"]), timeout=1).close()
        conn = state.get("conn")
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
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
        # The same key and chain in a file, for a server in another process.
        fd, self.server_pem = tempfile.mkstemp(suffix=".pem")
        os.close(fd)
        cert.private_key_and_cert_chain_pem.write_to_path(self.server_pem)
        weakref.finalize(self, os.remove, self.server_pem)
        self.client = ssl.create_default_context()
        ca.configure_trust(self.client)

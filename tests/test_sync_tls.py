"""fastws.sync over TLS: a partial TLS record does not block past a deadline
(recv(timeout=...), close_timeout, open_timeout), and large messages go both
ways on the non-blocking TLS sockets."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
import time
from typing import Any, Iterator, List, Tuple

import pytest

from fastws.exceptions import ConnectionClosedError
from fastws.sync.client import connect
from fastws.sync.server import ServerConnection, serve

from sync_helpers import TIMEOUT, echo, running, wait_until

trustme = pytest.importorskip("trustme")


@pytest.fixture(scope="module")
def contexts() -> Tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context) for ``localhost``."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return server_context, client_context


class _Relay:
    """A TCP relay in front of ``port``; once ``hold()`` is called, it passes
    only the first 10 bytes of what the server sends next: part of a TLS
    record, the rest never comes."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.held = threading.Event()
        self.socks: List[socket.socket] = []
        self.threads = [threading.Thread(target=self._run, daemon=True)]
        self.threads[0].start()

    def hold(self) -> None:
        self.held.set()

    def _pipe(self, src: socket.socket, dst: socket.socket, holds: bool) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if holds and self.held.is_set():
                    dst.sendall(data[:10])
                    return
                dst.sendall(data)

    def _run(self) -> None:
        with contextlib.suppress(OSError):
            client, _ = self.listener.accept()
            server = socket.create_connection(("127.0.0.1", self.port))
            self.socks += [client, server]
            up = threading.Thread(target=self._pipe, args=(client, server, False), daemon=True)
            self.threads.append(up)
            up.start()
            self._pipe(server, client, True)

    def close(self) -> None:
        self.listener.close()
        for sock in self.socks:
            sock.close()
        for thread in self.threads:
            thread.join(TIMEOUT)


@contextlib.contextmanager
def _held_connection(contexts: Tuple[ssl.SSLContext, ssl.SSLContext], **options: Any) -> Iterator[Any]:
    """A wss connection whose server sends 100 bytes once told, of which
    the client gets only part of a TLS record."""
    server_context, client_context = contexts
    go = threading.Event()

    def handler(ws: ServerConnection) -> None:
        assert go.wait(TIMEOUT)
        ws.send("x" * 100)
        with contextlib.suppress(Exception):
            ws.recv()

    with running(serve(handler, "127.0.0.1", 0, ssl=server_context, ping_interval=None)) as server:
        relay = _Relay(server.socket.getsockname()[1])
        try:
            port = relay.listener.getsockname()[1]
            ws = connect(f"wss://localhost:{port}/", ssl=client_context, proxy=None, ping_interval=None, **options)
            relay.hold()
            go.set()
            yield ws
            ws.close()
        finally:
            relay.close()


def _bounded(function: Any, limit: float) -> List[Any]:
    """Run ``function`` in a thread; its result or exception, if it returned within ``limit``."""
    outcome: List[Any] = []

    def run() -> None:
        try:
            outcome.append(function())
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    return outcome


def test_recv_timeout_with_part_of_a_tls_record(contexts: Any) -> None:
    with _held_connection(contexts, close_timeout=0.3) as ws:
        # This thread reads (before the background thread takes over).
        outcome = _bounded(lambda: ws.recv(timeout=0.3), 1.5)
        assert len(outcome) == 1 and isinstance(outcome[0], TimeoutError)


def test_close_timeout_with_part_of_a_tls_record(contexts: Any) -> None:
    with _held_connection(contexts, close_timeout=0.3) as ws:
        assert wait_until(lambda: ws._bg_reading)  # it reads the part of a record
        start = time.monotonic()
        assert _bounded(ws.close, 1.5) == [None]
        assert time.monotonic() - start < 1.5
        with pytest.raises(ConnectionClosedError):
            ws.recv(timeout=0)


def test_open_timeout_with_part_of_a_tls_record(contexts: Any) -> None:
    """A client that sends the header of a TLS record after the TLS handshake
    and then nothing: the server closes the connection at open_timeout."""
    server_context, client_context = contexts
    with running(serve(echo, "127.0.0.1", 0, ssl=server_context, open_timeout=0.3)) as server:
        raw = socket.create_connection(server.socket.getsockname(), timeout=TIMEOUT)
        with client_context.wrap_socket(raw, server_hostname="localhost") as tls:
            plain = socket.socket(fileno=os.dup(tls.fileno()))
            with plain:
                plain.sendall(b"\x17\x03\x03\x00\x40")
                plain.settimeout(1.5)
                start = time.monotonic()
                with contextlib.suppress(ConnectionResetError):
                    while plain.recv(4096):  # TLS session tickets, then the end
                        pass
                assert time.monotonic() - start < 1.5


def test_large_messages_both_ways_over_tls(contexts: Any) -> None:
    """Writes on the non-blocking TLS sockets go on after the socket was full."""
    server_context, client_context = contexts
    with running(serve(echo, "127.0.0.1", 0, ssl=server_context, ping_interval=None, max_size=None)) as server:
        port = server.socket.getsockname()[1]
        with connect(f"wss://localhost:{port}/", ssl=client_context, proxy=None, max_size=None) as ws:
            for size in (1, 70_000, 3_000_000):
                message = os.urandom(size)
                ws.send(message)
                ws.send(message.hex()[:size])
                assert ws.recv(timeout=TIMEOUT) == message
                assert ws.recv(timeout=TIMEOUT) == message.hex()[:size]


def test_shutdown_aborts_a_tls_handshake_without_open_timeout(contexts: Any) -> None:
    """With open_timeout=None, a client that never sends its ClientHello does
    not hold shutdown()."""
    server_context, _ = contexts
    server = serve(echo, "127.0.0.1", 0, ssl=server_context, open_timeout=None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with socket.create_connection(server.socket.getsockname(), timeout=TIMEOUT):
        assert wait_until(lambda: bool(server.tls_handshakes))
        assert _bounded(server.shutdown, 2.0) == [None]
    thread.join(TIMEOUT)

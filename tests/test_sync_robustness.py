"""fastws.sync under threads that race and peers that stall: ping().wait()
while another thread reads, recv(timeout=0) polling, no busy loop while the
background thread reads, no lost wake-up of the background thread, close()
and Server.shutdown() bounded when the peer stops reading, a handler raising
ConnectionClosed, leaving a reconnect() loop, open_timeout's exception."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any, Dict, Iterator, List

import pytest

import fastws.sync.core as core
from fastws.exceptions import ConnectionClosed, ConnectionClosedError
from fastws.protocol import ServerProtocol
from fastws.sync.client import ClientConnection, connect, reconnect
from fastws.sync.server import ServerConnection, serve

from sync_helpers import TIMEOUT, silent_server, sync_server, wait_until


def _reads_forever(ws: ServerConnection) -> None:
    for _ in ws:
        pass


def test_ping_wait_wakes_while_another_thread_is_in_recv() -> None:
    """The thread in recv() reads the pong: ping().wait() returns at once."""
    with sync_server(_reads_forever) as uri, connect(uri, proxy=None, ping_interval=None) as ws:

        def receive() -> None:
            with contextlib.suppress(ConnectionClosed):
                ws.recv()

        receiver = threading.Thread(target=receive, daemon=True)
        receiver.start()
        assert wait_until(lambda: ws._in_recv and ws._reader.locked())
        for timeout in (1.0, None):
            start = time.monotonic()
            result: List[bool] = []
            waiter = threading.Thread(target=lambda r=result, t=timeout: r.append(ws.ping().wait(t)), daemon=True)
            waiter.start()
            waiter.join(1.0)
            assert result == [True]
            assert time.monotonic() - start < 0.5
    receiver.join(TIMEOUT)


def test_recv_timeout_zero_polls_the_socket() -> None:
    """recv(timeout=0) called in a loop gets the message once it came."""
    go = threading.Event()

    def handler(ws: ServerConnection) -> None:
        assert go.wait(TIMEOUT)
        ws.send("hello")
        ws.recv()

    with sync_server(handler) as uri, connect(uri, proxy=None, ping_interval=None) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0)
        go.set()
        got = None
        deadline = time.monotonic() + 2.0
        while got is None and time.monotonic() < deadline:
            try:
                got = ws.recv(timeout=0)
            except TimeoutError:
                time.sleep(0.005)
        assert got == "hello"


@pytest.mark.parametrize("wait", ["ping", "wait_closed"])
def test_no_busy_loop_while_the_background_thread_reads(wait: str) -> None:
    """Waiting for a pong or the end while the background thread reads costs
    no CPU: the waiter sleeps until the reader has news."""
    with silent_server() as (uri, peer):
        with connect(uri, proxy=None, ping_interval=None, close_timeout=0.2) as ws:
            peer()
            assert wait_until(lambda: ws._bg_reading)
            cpu = time.process_time()
            if wait == "ping":
                assert not ws.ping().wait(0.3)  # the silent peer never answers
            else:
                assert not ws.wait_closed(0.3)
            assert time.process_time() - cpu < 0.1


class _WidenedCondition(threading.Condition):
    """The background thread's condition, held up as the thread enters it to
    park while the application is in recv(): it widens the window between its
    check of the connection's state and its wait. ``entering`` is set then."""

    def __init__(self, connection: Any) -> None:
        super().__init__(threading.Lock())
        self.connection = connection
        self.entering = threading.Event()

    def __enter__(self) -> bool:
        if threading.current_thread().name.startswith("fastws-") and self.connection._in_recv:
            self.entering.set()
            time.sleep(0.2)
        return super().__enter__()


def test_background_thread_sees_recv_return(monkeypatch: pytest.MonkeyPatch) -> None:
    """recv() returning while the background thread is about to park wakes it:
    the pings that come while the application only sends are answered."""
    init = core.ConnectionCore.__init__

    def widened(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        if isinstance(self, ClientConnection):
            self._bg_cond = _WidenedCondition(self)

    result: Dict[str, bool] = {}
    go, done = threading.Event(), threading.Event()

    def handler(ws: ServerConnection) -> None:
        assert go.wait(TIMEOUT)
        ws.send("one")
        assert ws.recv() == "answered?"
        result["pong"] = ws.ping().wait(1.0)
        done.set()
        ws.recv()

    with sync_server(handler) as uri:
        monkeypatch.setattr(core.ConnectionCore, "__init__", widened)
        with connect(uri, proxy=None, ping_interval=None) as ws:
            # The message comes while the background thread is held up.
            helper = threading.Thread(target=lambda: go.set() if ws._bg_cond.entering.wait(TIMEOUT) else None)
            helper.start()
            assert ws.recv() == "one"
            helper.join(TIMEOUT)
            ws.send("answered?")
            assert done.wait(TIMEOUT)  # the application only sends meanwhile
        assert result["pong"]


def _deaf_server() -> Iterator[str]:
    """A peer that answers the opening handshake, then never reads again."""
    listener = socket.create_server(("127.0.0.1", 0))
    socks: List[socket.socket] = []

    def run() -> None:
        with contextlib.suppress(OSError):
            sock, _ = listener.accept()
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            protocol = ServerProtocol(server_header=None)
            while protocol.state.name == "CONNECTING":
                protocol.receive_data(sock.recv(4096))
                sock.sendall(protocol.data_to_send())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        listener.close()
        thread.join(TIMEOUT)
        for sock in socks:
            sock.close()


def _fill(sock: socket.socket) -> None:
    """Fill the socket's send buffer, as a large send() to a peer that does not read."""
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:
            sock.send(b"\x00" * 65536)
    sock.setblocking(True)


def test_close_is_bounded_by_close_timeout_when_the_peer_does_not_read() -> None:
    with contextlib.contextmanager(_deaf_server)() as uri:
        ws = connect(uri, proxy=None, ping_interval=None, close_timeout=0.3, compression=None)
        _fill(ws.socket)
        start = time.monotonic()
        closer = threading.Thread(target=ws.close, daemon=True)
        closer.start()
        closer.join(2.0)
        assert not closer.is_alive()
        assert time.monotonic() - start < 1.5
        with pytest.raises(ConnectionClosedError):
            ws.recv(timeout=0)


def test_shutdown_is_bounded_when_a_client_does_not_read() -> None:
    """A handler blocked sending to a client that reads nothing does not hold
    shutdown() past close_timeout and a margin."""
    sending = threading.Event()

    def handler(ws: ServerConnection) -> None:
        sending.set()
        with contextlib.suppress(ConnectionClosed):
            while True:
                ws.send(b"\x00" * 65536)

    server = serve(handler, "127.0.0.1", 0, ping_interval=None, close_timeout=0.2)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = socket.create_connection(server.socket.getsockname(), timeout=TIMEOUT)
    try:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.sendall(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert sending.wait(TIMEOUT)
        start = time.monotonic()
        stopper = threading.Thread(target=server.shutdown, daemon=True)
        stopper.start()
        stopper.join(3.0)
        assert not stopper.is_alive()
        assert time.monotonic() - start < 2.5
    finally:
        client.close()
        if stopper.is_alive():  # pragma: no cover - the bug: unblock the handler
            stopper.join(TIMEOUT)
        thread.join(TIMEOUT)


def test_handler_raising_connection_closed_closes_its_connection() -> None:
    """The ConnectionClosed may come from another connection: this one is
    closed all the same (1011)."""

    def handler(ws: ServerConnection) -> None:
        raise ConnectionClosedError(None, None)

    with sync_server(handler) as uri, connect(uri, proxy=None, ping_interval=None) as ws:
        with pytest.raises(ConnectionClosedError):
            ws.recv(timeout=1.0)
        assert ws.close_code == 1011


def test_break_out_of_reconnect_closes_with_1000() -> None:
    codes: List[Any] = []
    ended = threading.Event()

    def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            ws.recv()
        codes.append(ws.close_code)
        ended.set()

    with sync_server(handler) as uri:
        for ws in reconnect(uri, proxy=None, ping_interval=None):
            assert ws.state.name == "OPEN"
            break
        assert ended.wait(TIMEOUT)
    assert codes == [1000]


def test_open_timeout_raises_timeout_error() -> None:
    """A server that takes the TCP connection but never answers the TLS
    handshake: TimeoutError (on Python 3.9 too, where socket.timeout is not one)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            connect(f"wss://127.0.0.1:{port}/", proxy=None, open_timeout=0.2)
        assert time.monotonic() - start < 2.0



def test_a_failing_create_connection_closes_the_socket(caplog: pytest.LogCaptureFixture) -> None:
    def refuse(*args: Any, **kwargs: Any) -> ServerConnection:
        raise RuntimeError("no connection for you")

    with sync_server(_reads_forever, create_connection=refuse) as uri:
        port = int(uri.rsplit(":", 1)[1].rstrip("/"))
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
            with contextlib.suppress(ConnectionResetError):
                assert client.recv(4096) == b""  # closed by the server, not left open
        assert wait_until(lambda: "creating the connection failed" in caplog.text)

"""fastws.sync: keepalive, pings answered while the application only sends, the
closing timeout, flow control (max_queue), reconnect() and redirects."""

from __future__ import annotations

import fcntl
import logging
import socket
import ssl
import struct
import termios
import threading
import time
from typing import Any, List

import pytest

from fastws.events import Close, Ping
from fastws.exceptions import (
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidMessage,
    InvalidStatus,
    SecurityError,
)
from fastws.protocol import CLOSED
from fastws.sync.client import backoff, connect, process_exception, reconnect
from fastws.sync.connection import IDLE_TAKEOVER
from fastws.sync.server import ServerConnection, serve

from sync_helpers import (
    TIMEOUT,
    echo,
    running,
    silent_client,
    silent_server,
    sync_server,
    wait_until,
)


def test_client_keepalive_fails_with_1011_when_pongs_do_not_come() -> None:
    with silent_server() as (uri, peer):
        ws = connect(uri, proxy=None, ping_interval=0.05, ping_timeout=0.1, close_timeout=0.2)
        start = time.monotonic()
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=TIMEOUT)
        assert time.monotonic() - start < TIMEOUT / 2
        assert info.value.sent is not None and info.value.sent.code == 1011
        assert info.value.sent.reason == "keepalive ping timeout"
        assert ws.state is CLOSED
        # The peer saw pings, then the close frame.
        events = peer().events
        assert any(isinstance(e, Ping) for e in events)
        assert Close(1011, "keepalive ping timeout") in events


def test_server_keepalive_fails_with_1011_when_pongs_do_not_come() -> None:
    ended: List[Any] = []

    def handler(ws: ServerConnection) -> None:
        try:
            ws.recv()
        except ConnectionClosedError as exc:
            ended.append(exc.sent)

    with sync_server(handler, ping_interval=0.05, ping_timeout=0.1, close_timeout=0.2) as uri:
        peer = silent_client(uri)
        try:
            assert peer.wait_for(lambda events: "EOF" in events)
            assert Close(1011, "keepalive ping timeout") in peer.events
        finally:
            peer.close()
    assert [c.code for c in ended] == [1011]


@pytest.mark.parametrize("reading", [True, False])
def test_keepalive_pings_answered_by_a_live_peer(reading: bool) -> None:
    """Keepalive pings get their pongs whether a thread is in recv() or not."""
    with sync_server(echo) as uri, connect(uri, proxy=None, ping_interval=0.02, ping_timeout=0.5) as ws:
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            if reading:
                with pytest.raises(TimeoutError):
                    ws.recv(timeout=0.05)
            else:
                ws.send("x")  # sending only: the echoes pile up, pongs still come
                time.sleep(0.01)
        assert ws.latency > 0
        ws.send("end")
        assert ws.state.name == "OPEN"


def test_pings_answered_while_the_application_only_sends() -> None:
    """A peer's ping gets its pong without any recv(), after IDLE_TAKEOVER."""
    answered = threading.Event()

    def handler(ws: ServerConnection) -> None:
        assert ws.ping().wait(TIMEOUT)
        answered.set()
        ws.recv()

    with sync_server(handler) as uri, connect(uri, proxy=None, ping_interval=None) as ws:
        start = time.monotonic()
        while not answered.is_set() and time.monotonic() - start < TIMEOUT:
            ws.send("busy")  # never recv()
            time.sleep(0.005)
        assert answered.is_set()
        assert time.monotonic() - start < IDLE_TAKEOVER + 2.0


def test_close_frame_seen_while_the_application_only_sends() -> None:
    def handler(ws: ServerConnection) -> None:
        ws.close(1001, "bye")

    with sync_server(handler) as uri, connect(uri, proxy=None) as ws:
        assert wait_until(lambda: ws.state is CLOSED)
        with pytest.raises(ConnectionClosedOK):
            ws.send("too late")
        assert (ws.close_code, ws.close_reason) == (1001, "bye")


def test_close_timeout_against_a_peer_that_never_answers_the_close() -> None:
    with silent_server() as (uri, peer):
        ws = connect(uri, proxy=None, ping_interval=None, close_timeout=0.1)
        start = time.monotonic()
        ws.close()
        elapsed = time.monotonic() - start
        assert 0.09 <= elapsed < TIMEOUT / 2
        assert ws.state is CLOSED and ws.close_code == 1006
        assert peer().wait_for(lambda events: Close(1000, "") in events)


def _unread(sock: socket.socket) -> int:
    """Bytes received by the kernel and not read yet."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]


def test_max_queue_stops_reading_the_socket_until_the_queue_drains() -> None:
    count, size = 200, 1024
    sent = threading.Event()

    def handler(ws: ServerConnection) -> None:
        for i in range(count):
            ws.send(i.to_bytes(4, "big") * (size // 4))
        sent.set()
        ws.recv()

    with sync_server(handler, compression=None) as uri:
        with connect(uri, proxy=None, compression=None, max_queue=(4, 1), ping_interval=None) as ws:
            assert sent.wait(TIMEOUT)
            # Nobody is in recv(): the background thread reads until the queue
            # reaches its high-water mark, and then stops.
            assert wait_until(lambda: ws._paused)
            queued = len(ws._messages)
            assert 4 <= queued < count
            unread = _unread(ws.socket)
            assert unread > 0
            time.sleep(IDLE_TAKEOVER * 4)  # the background thread had every chance to read
            assert len(ws._messages) == queued and _unread(ws.socket) == unread
            # Reading drains the queue, then the socket.
            for i in range(count):
                assert ws.recv(timeout=TIMEOUT) == i.to_bytes(4, "big") * (size // 4)
            assert _unread(ws.socket) == 0


def test_max_queue_none_reads_everything() -> None:
    count = 100
    sent = threading.Event()

    def handler(ws: ServerConnection) -> None:
        for i in range(count):
            ws.send(str(i))
        sent.set()
        ws.recv()

    with sync_server(handler) as uri, connect(uri, proxy=None, max_queue=None) as ws:
        assert sent.wait(TIMEOUT)
        assert wait_until(lambda: len(ws._messages) == count)
        assert [ws.recv() for _ in range(count)] == [str(i) for i in range(count)]


def _eof_during_handshake() -> Exception:
    try:
        raise InvalidMessage("connection closed during the opening handshake") from EOFError()
    except InvalidMessage as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (_eof_during_handshake(), True),
        (InvalidMessage("bad response"), False),
        (InvalidStatus(type("R", (), {"status_code": 503, "reason_phrase": ""})()), True),
        (InvalidStatus(type("R", (), {"status_code": 404, "reason_phrase": ""})()), False),
        (ValueError("bug"), False),
    ],
)
def test_default_process_exception(exc: Exception, retry: bool) -> None:
    assert process_exception(exc) is (None if retry else exc)


def test_backoff_grows_to_its_cap() -> None:
    delays = backoff(initial_delay=1.0, min_delay=0.5, max_delay=4.0, factor=2.0)
    first = next(delays)
    assert 0 <= first <= 1.0
    assert [next(delays) for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]


def test_reconnect_retries_then_connects(caplog: pytest.LogCaptureFixture) -> None:
    """The first attempts find no server (refused), then it comes up; each
    connection yielded is closed when the loop goes on."""
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    attempts: List[float] = []
    holder: dict = {}

    def delays() -> Any:
        while True:
            attempts.append(time.monotonic())
            if len(attempts) == 2:
                holder["server"] = serve(echo, "127.0.0.1", port, ping_interval=None)
                holder["thread"] = threading.Thread(target=holder["server"].serve_forever, daemon=True)
                holder["thread"].start()
            yield 0.01

    seen = []
    with caplog.at_level(logging.INFO, "fastws.client"):
        try:
            for ws in reconnect(f"ws://127.0.0.1:{port}/", proxy=None, reconnect_delays=delays):
                ws.send(f"try {len(seen)}")
                seen.append((ws, ws.recv(timeout=TIMEOUT)))
                if len(seen) == 2:
                    break
        finally:
            if "server" in holder:
                holder["server"].shutdown()
                holder["thread"].join(TIMEOUT)
    assert [m for _, m in seen] == ["try 0", "try 1"]
    assert seen[0][0].state is CLOSED  # closed when the loop went on
    assert len(attempts) >= 2
    retries = [r for r in caplog.records if r.getMessage().startswith("connect failed; reconnecting in")]
    assert len(retries) >= 2 and "ConnectionRefusedError" in retries[0].getMessage()


def test_reconnect_retries_a_server_that_closes_during_the_handshake() -> None:
    """A server that closes without answering: InvalidMessage from EOFError,
    which the default policy retries."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    attempts: List[int] = []

    def close_twice() -> None:
        for i in range(2):
            sock, _ = listener.accept()
            attempts.append(1)
            if i == 1:
                listener.close()  # before the client sees this attempt fail
            sock.close()

    thread = threading.Thread(target=close_twice, daemon=True)
    thread.start()
    with pytest.raises(ConnectionRefusedError):  # third attempt: nobody listens; give up then
        for _ in reconnect(
            f"ws://127.0.0.1:{port}/",
            proxy=None,
            reconnect_delays=lambda: iter([0.0, 0.0]),
            process_exception=lambda exc: exc if isinstance(exc, ConnectionRefusedError) else process_exception(exc),
        ):
            pass
    thread.join(TIMEOUT)
    assert len(attempts) == 2


def test_reconnect_raises_what_process_exception_returns() -> None:
    def refuse(connection: ServerConnection, request: Any) -> Any:
        return connection.respond(403, "no\n")

    with sync_server(echo, process_request=refuse) as uri:
        with pytest.raises(InvalidStatus):
            for _ in reconnect(uri, proxy=None):
                pass
        with pytest.raises(RuntimeError, match="mine"):
            for _ in reconnect(uri, proxy=None, process_exception=lambda exc: RuntimeError("mine")):
                pass


def _redirecting(location: str, status: int = 302) -> Any:
    def process_request(connection: ServerConnection, request: Any) -> Any:
        if request.path.startswith("/old"):
            response = connection.respond(status, "moved\n")
            response.headers["Location"] = location
            return response
        return None

    return process_request


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_is_followed(status: int) -> None:
    with sync_server(echo, process_request=_redirecting("/new", status)) as uri:
        with connect(uri + "old", proxy=None) as ws:
            assert ws.request.path == "/new"
            ws.send("moved")
            assert ws.recv(timeout=TIMEOUT) == "moved"


def test_redirect_loop_is_bounded() -> None:
    with sync_server(echo, process_request=_redirecting("/old-again")) as uri:
        with pytest.raises(SecurityError, match="redirects"):
            connect(uri + "old", proxy=None)


def test_redirect_to_another_origin_drops_credentials() -> None:
    seen: List[Any] = []

    def handler(ws: ServerConnection) -> None:
        seen.append(ws.request.headers)

    with sync_server(handler) as target:
        with sync_server(echo, process_request=_redirecting(target.replace("127.0.0.1", "localhost"))) as uri:
            headers = {"Authorization": "Basic eDp5", "X-Keep": "1"}
            with connect(uri + "old", proxy=None, additional_headers=headers):
                pass
    assert "Authorization" not in seen[0] and seen[0]["X-Keep"] == "1"


def test_redirect_from_wss_to_ws_is_refused() -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with sync_server(echo) as plain:
        hook = _redirecting(plain)
        with running(serve(echo, "127.0.0.1", 0, ssl=server_context, process_request=hook)) as server:
            port = server.socket.getsockname()[1]
            with pytest.raises(SecurityError, match="wss://"):
                connect(f"wss://localhost:{port}/old", ssl=client_context, proxy=None)


@pytest.mark.parametrize("timeout", [None, TIMEOUT])
def test_recv_takes_the_socket_back_from_the_background_thread(timeout: Any) -> None:
    go = threading.Event()

    def handler(ws: ServerConnection) -> None:
        assert go.wait(TIMEOUT)
        ws.send("after the takeover")
        ws.recv()

    with sync_server(handler) as uri, connect(uri, proxy=None, ping_interval=None) as ws:
        assert wait_until(lambda: ws._bg_reading)  # nobody in recv(): the background thread reads
        go.set()
        assert ws.recv(timeout=timeout) == "after the takeover"
        ws.send("done")


def test_threads_send_while_one_receives() -> None:
    """send() from several threads at once, recv() in another: every message
    arrives whole, each thread's in its order."""
    threads_count, per_thread = 4, 200
    with sync_server(echo) as uri, connect(uri, proxy=None) as ws:

        def sender(n: int) -> None:
            for i in range(per_thread):
                ws.send(f"{n}:{i}" if i % 2 else f"{n}:{i}".encode())

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(threads_count)]
        for thread in threads:
            thread.start()
        got = [ws.recv(timeout=TIMEOUT) for _ in range(threads_count * per_thread)]
        for thread in threads:
            thread.join(TIMEOUT)
    for n in range(threads_count):
        mine = [m if isinstance(m, str) else m.decode() for m in got]
        assert [m for m in mine if m.startswith(f"{n}:")] == [f"{n}:{i}" for i in range(per_thread)]

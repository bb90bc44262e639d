"""Helpers of the fastws.sync tests: a server in a thread, stopped by the test,
and silent peers (a real sans-I/O protocol on a raw socket that answers the
opening handshake and then never writes)."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any, Callable, Iterator, List

from fastws.protocol import ClientProtocol, ServerProtocol
from fastws.sync.server import Server, serve

#: Seconds any wait of a test may take before it counts as a hang.
TIMEOUT = 10.0


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    """Run ``server.serve_forever()`` in a thread; shut it down on the way out."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "serve_forever() did not return after shutdown()"


@contextlib.contextmanager
def sync_server(handler: Callable[..., Any], **options: Any) -> Iterator[str]:
    """A fastws.sync server on 127.0.0.1 and a free port; yields its ws:// URI."""
    options.setdefault("ping_interval", None)
    with running(serve(handler, "127.0.0.1", 0, **options)) as server:
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/"


def echo(websocket: Any) -> None:
    for message in websocket:
        websocket.send(message)


class SilentPeer:
    """One end of a connection that completes the opening handshake and then
    only reads: it never answers a ping nor a close. ``frames`` collects the
    events the other end sent (messages, Ping, Close...)."""

    def __init__(self, sock: socket.socket, protocol: Any) -> None:
        self.sock = sock
        self.protocol = protocol
        self.events: List[Any] = []
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        handshake_done = False
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.protocol.receive_data(data)
                out = self.protocol.data_to_send()
                if not handshake_done:
                    if out:
                        self.sock.sendall(out)  # the 101 (server) only
                    handshake_done = self.protocol.state.name != "CONNECTING"
                with self.changed:
                    self.events.extend(self.protocol.events_received())
                    self.changed.notify_all()
        except OSError:
            pass
        with self.changed:
            self.events.append("EOF")
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[List[Any]], bool], timeout: float = TIMEOUT) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self.events), timeout)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        self.thread.join(TIMEOUT)


@contextlib.contextmanager
def silent_server() -> Iterator[tuple]:
    """A server that accepts one connection and stays silent after the 101;
    yields (uri, a function returning its SilentPeer once connected)."""
    listener = socket.create_server(("127.0.0.1", 0))
    peers: List[SilentPeer] = []
    ready = threading.Event()

    def accept() -> None:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        peer = SilentPeer(sock, ServerProtocol(server_header=None))
        peers.append(peer)
        ready.set()
        peer._read()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()

    def peer() -> SilentPeer:
        assert ready.wait(TIMEOUT)
        return peers[0]

    try:
        yield f"ws://127.0.0.1:{listener.getsockname()[1]}/", peer
    finally:
        listener.close()
        for p in peers:
            with contextlib.suppress(OSError):
                p.sock.close()
        thread.join(TIMEOUT)


def silent_client(uri: str) -> SilentPeer:
    """A client that opens a connection to ``uri`` and stays silent after the
    handshake (started; the 101 is read before it returns)."""
    host, port = uri.split("//")[1].rstrip("/").split(":")
    sock = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    sock.settimeout(None)
    protocol = ClientProtocol(uri)
    sock.sendall(protocol.data_to_send())
    peer = SilentPeer(sock, protocol)
    peer.thread.start()
    assert peer.wait_for(lambda _: protocol.state.name != "CONNECTING")
    return peer


def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    """Poll ``predicate`` until it is true (for states no event announces)."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True

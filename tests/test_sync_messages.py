"""fastws.sync: messages over a real loopback connection, both ways, and with
the other stacks (fastws.serve, websockets' servers and sync client)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from typing import Any, Iterator

import pytest
import websockets.asyncio.server
import websockets.sync.client
import websockets.sync.server

import fastws
from fastws.exceptions import ConcurrencyError, ConnectionClosedError, ConnectionClosedOK
from fastws.protocol import CLOSED, OPEN
from fastws.sync.client import connect

from sync_helpers import TIMEOUT, echo, silent_server, sync_server


class Fragments:
    """An iterable that is not a list: a generator of fragments each time."""

    def __iter__(self) -> Iterator[str]:
        yield "a"
        yield "b"


# (what is sent, send()'s text=, recv()'s decode=, what comes back)
MESSAGES = [
    ("hello", None, None, "hello"),
    (b"\x00\xff", None, None, b"\x00\xff"),
    (bytearray(b"ba"), None, None, b"ba"),
    (memoryview(b"mv"), None, None, b"mv"),
    ("", None, None, ""),
    (b"", None, None, b""),
    ("é" * 70_000, None, None, "é" * 70_000),
    (b"\x01" * 300_000, None, None, b"\x01" * 300_000),
    (["frag", "ment", "ed"], None, None, "fragmented"),
    ([b"frag", bytearray(b"ment"), memoryview(b"ed")], None, None, b"fragmented"),
    (Fragments(), None, None, "ab"),
    (b"caf\xc3\xa9", True, None, "café"),  # bytes sent as text
    ("café", False, None, b"caf\xc3\xa9"),  # str sent as binary
    ([b"a", b"b"], True, None, "ab"),
    (["a", "b"], False, None, b"ab"),
    ("café", None, False, b"caf\xc3\xa9"),  # text received as bytes
    (b"caf\xc3\xa9", None, True, "café"),  # binary received as str
    ("text", None, True, "text"),
    (b"bin", None, False, b"bin"),
]


@contextlib.contextmanager
def fastws_asyncio_server() -> Iterator[str]:
    """fastws.serve() on an event loop in a thread."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict = {}

    async def handler(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        server = await fastws.serve(handler, "127.0.0.1", 0, ping_interval=None)
        state["port"] = server.sockets[0].getsockname()[1]
        state["stop"] = asyncio.Event()
        started.set()
        await state["stop"].wait()
        server.close()
        await server.wait_closed()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(TIMEOUT)
    try:
        yield f"ws://127.0.0.1:{state['port']}/"
    finally:
        loop.call_soon_threadsafe(state["stop"].set)
        thread.join(TIMEOUT)
        loop.close()


@contextlib.contextmanager
def websockets_sync_server() -> Iterator[str]:
    def handler(ws: Any) -> None:
        for message in ws:
            ws.send(message)

    with websockets.sync.server.serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/"
        finally:
            server.shutdown()
            thread.join(TIMEOUT)


@contextlib.contextmanager
def websockets_asyncio_server() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict = {}

    async def handler(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with websockets.asyncio.server.serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
            state["port"] = list(server.sockets)[0].getsockname()[1]
            state["stop"] = asyncio.Event()
            started.set()
            await state["stop"].wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(TIMEOUT)
    try:
        yield f"ws://127.0.0.1:{state['port']}/"
    finally:
        loop.call_soon_threadsafe(state["stop"].set)
        thread.join(TIMEOUT)
        loop.close()


SERVERS = {
    "fastws.sync": lambda: sync_server(echo),
    "fastws.sync-no-compression": lambda: sync_server(echo, compression=None),
    "fastws.serve": fastws_asyncio_server,
    "websockets.sync": websockets_sync_server,
    "websockets.asyncio": websockets_asyncio_server,
}


@pytest.mark.parametrize("server", list(SERVERS))
@pytest.mark.parametrize("compression", ["deflate", None])
def test_echo_every_kind_of_message(server: str, compression: Any) -> None:
    with SERVERS[server]() as uri, connect(uri, compression=compression, proxy=None) as ws:
        assert ws.state is OPEN
        for message, text, decode, expected in MESSAGES:
            ws.send(message, text=text)
            got = ws.recv(timeout=TIMEOUT, decode=decode)
            assert type(got) is type(expected) and got == expected, (message, text, decode)
    assert ws.state is CLOSED
    assert ws.close_code == 1000


@pytest.mark.parametrize("compression", ["deflate", None])
def test_websockets_sync_client_against_our_server(compression: Any) -> None:
    with sync_server(echo, compression=compression) as uri:
        with websockets.sync.client.connect(uri, compression=compression, proxy=None) as ws:
            for message, text, decode, expected in MESSAGES:
                if text is not None or decode is not None or isinstance(message, (bytearray, memoryview)):
                    continue
                ws.send(message)
                assert ws.recv(timeout=TIMEOUT) == expected
            ws.send("bye")
            assert ws.recv(timeout=TIMEOUT) == "bye"
        assert ws.close_code == 1000


def test_recv_timeout_and_then_a_message() -> None:
    def handler(ws: Any) -> None:
        assert ws.recv() == "go"
        ws.send("late")
        ws.recv()

    with sync_server(handler) as uri, connect(uri, proxy=None) as ws:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.05)
        assert time.monotonic() - start >= 0.05
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0)
        ws.send("go")
        assert ws.recv(timeout=TIMEOUT) == "late"


def test_recv_streaming_gives_the_message() -> None:
    with sync_server(echo) as uri, connect(uri, proxy=None) as ws:
        ws.send(["a", "b", "c"])
        assert "".join(ws.recv_streaming()) == "abc"
        ws.send(b"xyz")
        assert b"".join(ws.recv_streaming()) == b"xyz"
        ws.send("é")
        assert b"".join(ws.recv_streaming(decode=False)) == "é".encode()


def test_iteration_ends_on_a_normal_close() -> None:
    def handler(ws: Any) -> None:
        for i in range(3):
            ws.send(str(i))
        ws.close(1001, "going")

    with sync_server(handler) as uri, connect(uri, proxy=None) as ws:
        assert list(ws) == ["0", "1", "2"]
        assert (ws.close_code, ws.close_reason) == (1001, "going")
        with pytest.raises(ConnectionClosedOK):
            ws.recv()
        with pytest.raises(ConnectionClosedOK):
            ws.send("late")


def test_iteration_raises_on_an_abnormal_close() -> None:
    def handler(ws: Any) -> None:
        ws.send("one")
        ws.close(4000, "custom")

    with sync_server(handler) as uri, connect(uri, proxy=None) as ws:
        seen = []
        with pytest.raises(ConnectionClosedError) as info:
            for message in ws:
                seen.append(message)
        assert seen == ["one"]
        assert info.value.rcvd.code == 4000 and info.value.rcvd.reason == "custom"


@pytest.mark.parametrize(
    ("code", "reason"), [(1000, ""), (1000, "done"), (1001, "bye"), (3000, "app"), (4999, "é" * 40)]
)
def test_client_close_code_and_reason_reach_the_server(code: int, reason: str) -> None:
    got: dict = {}

    def handler(ws: Any) -> None:
        with contextlib.suppress(ConnectionClosedOK, ConnectionClosedError):
            ws.recv()
        got["close"] = (ws.close_code, ws.close_reason)

    with sync_server(handler) as uri:
        ws = connect(uri, proxy=None)
        ws.close(code, reason)
        assert ws.state is CLOSED
        ws.close()  # again: nothing
    assert got["close"] == (code, reason)


def test_ping_event_and_latency() -> None:
    with sync_server(echo) as uri, connect(uri, proxy=None, ping_interval=None) as ws:
        assert ws.latency == 0.0
        first = ws.ping()
        second = ws.ping(b"payload")
        assert isinstance(first, threading.Event)
        assert second.wait(TIMEOUT) and first.is_set()  # a pong answers the pings before it
        assert 0 < ws.latency < TIMEOUT
        with pytest.raises(ConcurrencyError):
            ws.ping("same")
            ws.ping("same")
        ws.pong(b"unsolicited")
        ws.send("still fine")
        assert ws.recv(timeout=TIMEOUT) == "still fine"
    lost = ws.ping if ws.state is OPEN else None
    assert lost is None


def test_ping_ack_on_close() -> None:
    """A peer that never pongs: the pings still pending when the connection
    ends are set if they asked for ack_on_close, and only those."""
    with silent_server() as (uri, peer):
        ws = connect(uri, proxy=None, ping_interval=None)
        acked = ws.ping(ack_on_close=True)
        plain = ws.ping(ack_on_close=False)
        assert peer().wait_for(lambda events: len(events) >= 2)  # both pings arrived, unanswered
        assert not acked.is_set() and not plain.is_set()
        peer().sock.shutdown(socket.SHUT_RDWR)  # the peer leaves without a close frame
        with pytest.raises(ConnectionClosedError):
            ws.recv(timeout=TIMEOUT)
        assert acked.is_set()
        assert not plain.is_set()


def test_two_threads_in_recv() -> None:
    def handler(ws: Any) -> None:
        assert ws.recv() == "release"
        ws.send("one")

    with sync_server(handler) as uri, connect(uri, proxy=None) as ws:
        result: dict = {}
        thread = threading.Thread(target=lambda: result.setdefault("m", ws.recv(timeout=TIMEOUT)))
        thread.start()
        from sync_helpers import wait_until

        assert wait_until(lambda: ws._recv_lock.locked())
        with pytest.raises(ConcurrencyError):
            ws.recv(timeout=1)
        ws.send("release")
        thread.join(TIMEOUT)
        assert result["m"] == "one"


@pytest.mark.parametrize("bad", [{"a": 1}, 42, None, [b"x", "y"], ["x", 1]])
def test_send_refuses_what_is_not_a_message(bad: Any) -> None:
    with sync_server(echo) as uri, connect(uri, proxy=None) as ws:
        with pytest.raises(TypeError):
            ws.send(bad)
        if isinstance(bad, list):  # a fragment went out: the connection is failed
            with pytest.raises(ConnectionClosedError):
                ws.recv(timeout=TIMEOUT)
            assert ws.protocol.close_sent.code == 1011
        else:
            ws.send("ok")
            assert ws.recv(timeout=TIMEOUT) == "ok"

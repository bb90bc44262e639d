"""Flow control, the callback interface and broadcast."""

from __future__ import annotations

import asyncio
import logging

import pytest

import fastws
from fastws import CloseCode, ConnectionClosedOK

from asyncio_helpers import listener_server, raw_client, read_frame, run, server


class Echo(fastws.Listener):
    def __init__(self, log):
        self.log = log

    def on_open(self, connection):
        self.log.append("open")

    def on_message(self, connection, message):
        self.log.append(message)
        connection.send_nowait(message)

    def on_ping(self, connection, data):
        self.log.append(("ping", data))

    def on_close(self, connection, code, reason):
        self.log.append(("close", code, reason))


@run
async def test_listener_server_with_recv_client():
    log = []
    async with listener_server(lambda: Echo(log)) as (_, uri):
        async with fastws.connect(uri) as websocket:
            await websocket.send("hi")
            assert await websocket.recv() == "hi"
            await websocket.send(b"\x00\x01")
            assert await websocket.recv() == b"\x00\x01"
            await websocket.send(["frag", "ments"])
            assert await websocket.recv() == "fragments"
            await websocket.ping(b"p")
        await asyncio.sleep(0)  # on_close runs in connection_lost on the server
    for _ in range(100):
        if log and log[-1][0] == "close":
            break
        await asyncio.sleep(0.01)
    assert log == ["open", "hi", b"\x00\x01", "fragments", ("ping", b"p"), ("close", 1000, "")]


@run
async def test_listener_client():
    async def echo(websocket):
        async for message in websocket:
            await websocket.send(message)

    got = asyncio.get_running_loop().create_future()

    class Client(fastws.Listener):
        def on_open(self, connection):
            connection.send_nowait("from a listener")

        def on_message(self, connection, message):
            got.set_result(message)

    async with server(echo) as (_, uri):
        connection = await fastws.connect_listener(Client, uri)
        assert await got == "from a listener"
        with pytest.raises(fastws.InvalidState):
            await connection.recv()  # messages go to the listener
        await connection.close()


@run
async def test_listener_exception_fails_the_connection_with_1011(caplog):
    class Broken(fastws.Listener):
        def on_message(self, connection, message):
            raise ValueError("bad listener")

    with caplog.at_level(logging.ERROR, logger="fastws"):
        async with listener_server(Broken) as (_, uri):
            async with fastws.connect(uri) as websocket:
                await websocket.send("x")
                with pytest.raises(fastws.ConnectionClosedError) as info:
                    await websocket.recv()
                assert info.value.code == CloseCode.INTERNAL_ERROR
    assert any("listener on_message failed" in r.getMessage() for r in caplog.records)


@run
async def test_slow_reader_pauses_reading_and_bounds_memory():
    """A handler that does not call recv(): once max_queue messages wait, the
    server stops reading the socket; the client's sends then wait on its full
    write buffer. Memory stays bounded on both sides; nothing is lost."""
    connections = []
    release = asyncio.Event()
    size, count = 64 * 1024, 400  # 25 MiB: far more than the kernel buffers hold

    async def lazy(websocket):
        connections.append(websocket)
        await release.wait()
        received = 0
        async for message in websocket:
            assert len(message) == size
            received += 1
            if received == count:
                break
        await websocket.send(str(received))

    async def send_all(websocket, progress):
        for _ in range(count):
            await websocket.send(bytes(size))
            progress.append(websocket.write_buffer_size)

    # No compression: zeros would shrink to nothing and never fill a buffer.
    async with server(lazy, max_queue=4, max_size=size, compression=None) as (_, uri):
        async with fastws.connect(uri, write_limit=size, compression=None) as websocket:
            progress = []
            sender = asyncio.ensure_future(send_all(websocket, progress))
            # polled: the connection's internal state has no event to wait on
            while not (connections and connections[0]._reading_paused):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            # Let the client fill every buffer until its send() has to wait.
            stalled = 0
            while stalled < 10:
                before = len(progress)
                await asyncio.sleep(0.01)
                stalled = stalled + 1 if len(progress) == before else 0
            assert not sender.done()
            assert len(progress) < count
            # The server queued at most max_queue messages plus one socket read's worth.
            assert 4 <= len(connections[0]._messages) <= 4 + (256 * 1024) // size + 1
            # The client's transport never held much more than write_limit.
            assert max(progress) <= 2 * size
            release.set()
            await sender
            assert await websocket.recv() == str(count)


@run
async def test_send_waits_while_the_peer_does_not_read():
    """The server writes to a client that never reads: send() blocks once the
    transport buffer passes write_limit, so the server's memory stays bounded."""
    state = {}
    blocked = asyncio.Event()

    async def flood(websocket):
        sent = 0
        while True:
            task = asyncio.ensure_future(websocket.send(bytes(64 * 1024)))
            await asyncio.sleep(0)
            if not task.done():
                state["buffered"] = websocket.write_buffer_size
                state["sent"] = sent
                blocked.set()
                try:
                    await task
                except fastws.ConnectionClosed:
                    return
            sent += 1

    async with server(flood, write_limit=256 * 1024, close_timeout=0.5, compression=None) as (_, uri):
        reader, writer = await raw_client(uri)
        writer.transport.pause_reading()  # never read: the kernel buffers fill up
        await blocked.wait()
        # Kernel socket buffers take some, the transport holds at most about
        # write_limit plus one message; never the whole flood.
        assert state["buffered"] <= 256 * 1024 + 64 * 1024
        assert state["sent"] < 1000
        writer.transport.abort()


@run
async def test_broadcast_reaches_every_open_connection():
    connections = set()
    ready = asyncio.Event()

    async def register(websocket):
        connections.add(websocket)
        if len(connections) == 3:
            ready.set()
        await websocket.wait_closed()

    async with server(register) as (_, uri):
        clients = [await fastws.connect(uri) for _ in range(3)]
        await ready.wait()
        fastws.broadcast(connections, "news")
        fastws.broadcast(connections, b"\x01\x02")
        for client in clients:
            assert await client.recv() == "news"
            assert await client.recv() == b"\x01\x02"
        # Closed connections are skipped without error.
        await clients[0].close()
        fastws.broadcast(connections, "after close")
        for client in clients[1:]:
            assert await client.recv() == "after close"
            await client.close()


@run
async def test_broadcast_skips_a_slow_reader(caplog):
    """One client stops reading: once its server-side buffer is over write_limit,
    broadcast skips it (and logs it) while the others still get every message."""
    connections = {}
    ready = asyncio.Event()

    async def register(websocket):
        connections[websocket.remote_address] = websocket
        if len(connections) == 3:
            ready.set()
        await websocket.wait_closed()

    async def count(client, seen):
        async for message in client:
            seen.append(message if isinstance(message, str) else len(message))

    big = bytes(256 * 1024)
    async with server(register, write_limit=4096) as (_, uri):
        clients = [await fastws.connect(uri, max_queue=None) for _ in range(3)]
        await ready.wait()
        slow_client, fast_clients = clients[0], clients[1:]
        slow_client.transport.pause_reading()
        slow = connections[slow_client.local_address]
        fast = [connections[c.local_address] for c in fast_clients]
        seen = [[] for _ in fast_clients]
        readers = [asyncio.ensure_future(count(c, s)) for c, s in zip(fast_clients, seen)]
        for _ in range(400):  # at most 100 MiB: kernel buffers hold a few MiB
            if slow.write_buffer_size > slow.write_limit:
                break
            fastws.broadcast(connections.values(), big)
            # polled: a write buffer draining has no event to wait on
            while any(c.write_buffer_size for c in fast):  # noqa: ASYNC110
                await asyncio.sleep(0.001)
        assert slow.write_buffer_size > slow.write_limit
        with caplog.at_level(logging.WARNING, logger="fastws"):
            fastws.broadcast(connections.values(), "while slow")
        skipped = [r.getMessage() for r in caplog.records if "skipped broadcast" in r.getMessage()]
        assert skipped == [f"skipped broadcast: {slow!r} is not reading fast enough"]
        for client in fast_clients:
            await client.close()
        await asyncio.gather(*readers)
        for messages in seen:
            assert messages[-1] == "while slow"
        slow_client.transport.abort()


@run
async def test_broadcast_from_a_client_masks_each_frame():
    async def echo(websocket):
        async for message in websocket:
            await websocket.send(message)

    async with server(echo) as (_, uri):
        clients = [await fastws.connect(uri) for _ in range(2)]
        fastws.broadcast(clients, "masked")  # the server requires masked frames
        for client in clients:
            assert await client.recv() == "masked"
            await client.close()


@run
async def test_close_timeout_aborts_a_peer_that_never_closes():
    async def closer(websocket):
        await websocket.close()

    async with server(closer, close_timeout=0.1) as (_, uri):
        reader, writer = await raw_client(uri)
        opcode, _, payload = await read_frame(reader)
        assert opcode == 8  # the server's close frame; we never answer
        # The server gives up after close_timeout and closes TCP anyway.
        assert await reader.read() == b""
        writer.close()


@run
async def test_async_for_stops_on_a_normal_close():
    async def two(websocket):
        await websocket.send("a")
        await websocket.send("b")

    async with server(two) as (_, uri):
        async with fastws.connect(uri) as websocket:
            assert [m async for m in websocket] == ["a", "b"]
            assert websocket.close_code == CloseCode.NORMAL_CLOSURE


@run
async def test_messages_received_before_the_close_are_all_delivered():
    async def burst(websocket):
        for i in range(500):
            await websocket.send(str(i))
        await websocket.close(CloseCode.GOING_AWAY)

    async with server(burst) as (_, uri):
        async with fastws.connect(uri, max_queue=None) as websocket:
            await websocket.wait_closed()
            got = [m async for m in websocket]
    assert got == [str(i) for i in range(500)]


@run
async def test_recv_after_close_raises_connection_closed_ok():
    async def quit_(websocket):
        pass

    async with server(quit_) as (_, uri):
        async with fastws.connect(uri) as websocket:
            with pytest.raises(ConnectionClosedOK):
                await websocket.recv()
            with pytest.raises(ConnectionClosedOK):
                await websocket.recv()
            with pytest.raises(ConnectionClosedOK):
                await websocket.send("late")


class _RecordingTransport(asyncio.WriteTransport):
    """Records what a connection writes; writelines() is asyncio's default,
    which joins its chunks (as the selector transports do before 3.12)."""

    def __init__(self):
        super().__init__()
        self.writes = []

    def write(self, data):
        self.writes.append(("write", data))

    def set_write_buffer_limits(self, high=None, low=None):
        pass

    def get_write_buffer_size(self):
        return 0


class _WritevTransport(_RecordingTransport):
    """A transport with a writelines() of its own (writev), like uvloop's."""

    def writelines(self, list_of_data):
        self.writes.append(("writelines", list(list_of_data)))


@pytest.mark.parametrize("transport_class", [_RecordingTransport, _WritevTransport])
@run
async def test_large_payloads_reach_the_transport_uncopied(transport_class):
    from fastws.asyncio.connection import Connection
    from fastws.protocol import Protocol, Side

    connection = Connection(Protocol(Side.SERVER), ping_interval=None)
    transport = transport_class()
    connection.connection_made(transport)
    small, large = b"s" * 100, b"L" * (1 << 20)
    connection.send_nowait(small)
    connection.send_nowait(large)
    await connection.send(large)
    header = b"\x82\x7f" + (1 << 20).to_bytes(8, "big")
    if transport_class is _WritevTransport:
        expected = [("write", b"\x82\x64" + small)] + [("writelines", [header, large])] * 2
    else:
        expected = [("write", b"\x82\x64" + small)] + [("write", header), ("write", large)] * 2
    assert transport.writes == expected
    # The very object the application passed: no copy on the way.
    payloads = [c for _, data in transport.writes for c in (data if isinstance(data, list) else [data])]
    assert sum(chunk is large for chunk in payloads) == 2

"""Load without loss: many idle connections held with a measured memory cost
per connection, and echo traffic in which no message is lost, duplicated,
corrupted or reordered, including across a close after a burst and a server
shutdown with busy connections.

The heavy variants are marked ``slow`` (``python -m pytest -m slow tests/test_load.py``);
the others run in a few seconds. Figures are printed (``-s`` shows them) and
recorded in the README's reliability section."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import random
import resource
import subprocess
import sys
import textwrap
import time

import pytest

import fastws
from fastws import CloseCode, ConnectionClosed, ConnectionClosedOK

import asyncio_helpers
from asyncio_helpers import HANDSHAKE, listener_server, server

KiB = 1024


def run(coro_fn):
    """asyncio_helpers.run with a bound of 150 s instead of 20 s: the slow
    variants here hold thousands of connections on two shared cores."""
    bounded = asyncio_helpers.run(coro_fn)

    @functools.wraps(coro_fn)
    def wrapper(*args, **kwargs):
        saved, asyncio_helpers.TEST_TIMEOUT = asyncio_helpers.TEST_TIMEOUT, 150.0
        try:
            return bounded(*args, **kwargs)
        finally:
            asyncio_helpers.TEST_TIMEOUT = saved

    return wrapper


# --- mixed traffic ------------------------------------------------------------------


def make_messages(client: int, count: int, seed: int = 6):
    """The list of :func:`gen_messages`."""
    return list(gen_messages(client, count, seed))


def gen_messages(client: int, count: int, seed: int = 6):
    """``count`` messages for ``client``: text and binary, 0 B to 256 KiB (most
    small), some to be sent in fragments. Each carries its client, its sequence
    number and a digest of its body, so that a loss, a duplicate, a reordering
    or a corruption shows even without the list of what was sent."""
    rng = random.Random(seed * 1_000_003 + client)
    for seq in range(count):
        roll = rng.random()
        if roll < 0.05:
            size = rng.randrange(0, 256 * KiB + 1)
        elif roll < 0.30:
            size = rng.randrange(0, 4 * KiB)
        else:
            size = rng.randrange(0, 100)
        text = rng.random() < 0.5
        if text:
            alphabet = "abcdefghij é€𐍈"
            body = "".join(rng.choice(alphabet) for _ in range(min(size, 2000)))
            body = (body * (size // max(len(body), 1) + 1))[:size] if body else ""
            digest = hashlib.blake2b(body.encode(), digest_size=8).hexdigest()
            message = f"{client}:{seq}:{digest}:{body}"
        else:
            body = rng.randbytes(size)
            digest = hashlib.blake2b(body, digest_size=8).digest()
            message = b"%d:%d:" % (client, seq) + digest + body
        fragments = rng.random() < 0.15 and len(message) >= 3
        yield message, fragments


def check(message, client: int, seq: int) -> None:
    """The message is the ``seq``-th of ``client`` and its body is intact."""
    if isinstance(message, str):
        c, s, digest, body = message.split(":", 3)
        assert (int(c), int(s)) == (client, seq)
        assert hashlib.blake2b(body.encode(), digest_size=8).hexdigest() == digest
    else:
        c, s, rest = message.split(b":", 2)
        assert (int(c), int(s)) == (client, seq)
        assert hashlib.blake2b(rest[8:], digest_size=8).digest() == rest[:8]


def split3(message):
    third = len(message) // 3
    return [message[:third], message[third : 2 * third], message[2 * third :]]


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


class EchoListener(fastws.Listener):
    def on_message(self, connection, message):
        connection.send_nowait(message)


async def run_client(uri: str, client: int, count: int, **options) -> int:
    """Send ``count`` mixed messages while reading their echoes; every echo is
    checked against what was sent, in order. Returns the number checked."""
    messages = make_messages(client, count)
    async with fastws.connect(uri, max_size=None, **options) as websocket:

        async def send_all():
            for message, fragmented in messages:
                await websocket.send(split3(message) if fragmented else message)

        sender = asyncio.ensure_future(send_all())
        checked = 0
        for seq, (message, _) in enumerate(messages):
            echoed = await websocket.recv()
            assert type(echoed) is type(message)
            check(echoed, client, seq)
            assert echoed == message
            checked += 1
        await sender
    # Nothing more came: no duplicate.
    assert websocket.close_code == CloseCode.NORMAL_CLOSURE
    return checked


@pytest.mark.parametrize(
    "clients, count, kind",
    [
        (8, 60, "handler"),
        (8, 60, "listener"),
        pytest.param(50, 400, "handler", marks=pytest.mark.slow),
        pytest.param(50, 400, "listener", marks=pytest.mark.slow),
    ],
)
@run
async def test_many_clients_echo_mixed_messages_without_loss(clients, count, kind):
    # The handler server negotiates permessage-deflate (the default), the
    # listener server does not: both paths carry the traffic.
    if kind == "handler":
        serving = server(echo, max_size=None)
    else:
        serving = listener_server(EchoListener, max_size=None, compression=None)
    async with serving as (srv, uri):
        options = {} if kind == "handler" else {"compression": None}
        started = time.monotonic()
        checked = await asyncio.gather(*(run_client(uri, c, count, **options) for c in range(clients)))
        elapsed = time.monotonic() - started
    assert checked == [count] * clients
    print(f"\n{kind}: {clients} clients x {count} messages = {sum(checked)} echoed and checked in {elapsed:.1f} s")


# --- a close after a burst ----------------------------------------------------------


@pytest.mark.parametrize("count", [300, pytest.param(3000, marks=pytest.mark.slow)])
@run
async def test_close_after_a_burst_delivers_every_message(count):
    """The client sends a burst and closes at once: the server's handler gets
    every message, in order, then a clean close; and the other way round."""
    got = []
    done = asyncio.get_running_loop().create_future()

    async def collect(websocket):
        try:
            async for message in websocket:
                got.append(message)
        finally:
            done.set_result(websocket.close_code)

    messages = make_messages(1, count)
    async with server(collect, max_size=None) as (_, uri):
        websocket = await fastws.connect(uri)
        for message, fragmented in messages:
            await websocket.send(split3(message) if fragmented else message)
        await websocket.close()
        assert await done == CloseCode.NORMAL_CLOSURE
    assert len(got) == count
    for seq, message in enumerate(got):
        check(message, 1, seq)
        assert message == messages[seq][0]

    async def burst(websocket):
        for message, fragmented in messages:
            await websocket.send(split3(message) if fragmented else message)
        # returning closes with 1000 right after the last send

    async with server(burst) as (_, uri):
        async with fastws.connect(uri, max_size=None) as websocket:  # default max_queue
            received = [message async for message in websocket]
        assert websocket.close_code == CloseCode.NORMAL_CLOSURE
    assert len(received) == count
    for seq, message in enumerate(received):
        check(message, 1, seq)


# --- server shutdown with busy connections ----------------------------------------


@pytest.mark.parametrize("clients", [10, pytest.param(100, marks=pytest.mark.slow)])
@run
async def test_server_shutdown_with_busy_connections_loses_nothing_acknowledged(clients):
    """Clients send numbered messages as fast as they can and read the echoes;
    the server shuts down in the middle. A message is *acknowledged* when the
    server's send() of its echo returned. The guarantee checked, per client:

    - every acknowledged echo reaches the client, in order, before the 1001
      close (what the server wrote before its close frame is never lost);
    - the client gets at most one echo more (a send() that wrote its frame and
      then saw the close while waiting for the buffer to drain);
    - what the client got is a prefix of what the server received, which is a
      prefix of what the client sent: no loss in the middle, no duplicate, no
      reordering;
    - the client ends with ConnectionClosedOK 1001, its sender with
      ConnectionClosed, and the shutdown is bounded in time.
    """
    received = {}  # client -> messages the handler got
    acked = {}  # client -> messages whose echo send() returned
    busy = asyncio.Event()

    async def handler(websocket):
        client = int(await websocket.recv())
        received[client], acked[client] = [], []
        async for message in websocket:
            received[client].append(message)
            await websocket.send(message)
            acked[client].append(message)
            if len(acked) == clients and all(len(a) >= 20 for a in acked.values()):
                busy.set()

    async def client_run(uri, client):
        websocket = await fastws.connect(uri, max_size=None, compression=None)
        await websocket.send(str(client))
        sent, echoed = [], []

        async def send_all():
            for message, _ in gen_messages(client, 20_000, seed=7):
                await websocket.send(message)
                sent.append(message)
            raise AssertionError("the server should have shut down before the end")

        sender = asyncio.ensure_future(send_all())
        try:
            while True:
                echoed.append(await websocket.recv())
        except ConnectionClosedOK as exc:
            assert exc.code == CloseCode.GOING_AWAY
        with pytest.raises(ConnectionClosed):
            await sender
        return sent, echoed

    srv = await fastws.serve(
        handler, "127.0.0.1", 0, ping_interval=None, max_size=None, close_timeout=10, compression=None
    )
    uri = f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}/"
    runs = asyncio.ensure_future(asyncio.gather(*(client_run(uri, c) for c in range(clients))))
    await asyncio.wait_for(busy.wait(), 60)
    started = time.monotonic()
    srv.close()
    await asyncio.wait_for(srv.wait_closed(), 30)
    shutdown = time.monotonic() - started
    results = await asyncio.wait_for(runs, 30)
    total_echoed = total_acked = 0
    for client, (sent, echoed) in enumerate(results):
        ack = acked[client]
        assert echoed[: len(ack)] == ack, f"client {client}: an acknowledged echo was lost"
        assert len(echoed) - len(ack) <= 1
        assert received[client] == sent[: len(received[client])]
        assert echoed == received[client][: len(echoed)]
        total_echoed += len(echoed)
        total_acked += len(ack)
    assert total_acked >= 20 * clients
    print(
        f"\nshutdown with {clients} busy clients: {total_acked} acknowledged,"
        f" {total_echoed} echoed, in {shutdown:.2f} s"
    )
    # Well under close_timeout (10 s): once its close frame is out, a connection
    # reads on to find the client's, even with its queue full (max_queue) and
    # its handler gone. (The margin is for a loaded 2-core machine.)
    assert shutdown < 5, shutdown


# --- 10 000 idle connections -----------------------------------------------------

SERVER_SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, os, resource, sys
    import fastws

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    async def idle(websocket):
        await websocket.wait_closed()

    async def main():
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        async with fastws.serve(idle, "127.0.0.1", 0, ping_interval=None, backlog=4096) as srv:
            print(srv.sockets[0].getsockname()[1], flush=True)
            while True:
                command = (await reader.readline()).decode().strip()
                if command in ("", "quit"):
                    break
                if command == "rss":
                    gc.collect()
                    print(rss(), len(srv.connections), flush=True)
                elif command == "broadcast":
                    fastws.broadcast(srv.connections, "hello")
                    print("ok", flush=True)
            srv.close(close_connections=False)

    if os.environ.get("FASTWS_TEST_UVLOOP") == "1":
        import uvloop
        uvloop.run(main())
    else:
        asyncio.run(main())
    """
)


class IdleClient(asyncio.Protocol):
    def __init__(self, handshake: bytes, opened: asyncio.Future, hello: asyncio.Future):
        self.handshake, self.opened, self.hello = handshake, opened, hello
        self.buffer = b""

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.handshake)

    def data_received(self, data):
        self.buffer += data
        if not self.opened.done():
            if b"\r\n\r\n" in self.buffer:
                head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
                self.opened.set_result(head.split(b"\r\n", 1)[0])
        if self.opened.done() and not self.hello.done() and len(self.buffer) >= 7:
            self.hello.set_result(self.buffer[:7])

    def connection_lost(self, exc):
        for future in (self.opened, self.hello):
            if not future.done():
                future.set_exception(ConnectionError("closed"))
                future.exception()


def _raise_nofile(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
        except (ValueError, OSError):
            pytest.skip(f"RLIMIT_NOFILE hard limit is {hard}, below the {needed} file descriptors needed")
    else:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


@pytest.mark.slow
@pytest.mark.parametrize("count, deflate", [(10_000, False), (1_000, True)], ids=["10000-plain", "1000-deflate"])
@run
async def test_idle_connections_held_and_memory_per_connection(count, deflate):
    """``count`` idle connections to a server in another process: all complete
    the handshake, all are held (the server counts them, and a broadcast reaches
    every one), and the server's RSS grows by a bounded amount per connection."""
    _raise_nofile(count + 200)
    loop = asyncio.get_running_loop()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVER_SCRIPT,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )

    async def ask(command: str) -> list:
        process.stdin.write(command.encode() + b"\n")
        await process.stdin.drain()
        return (await asyncio.wait_for(process.stdout.readline(), 60)).decode().split()

    transports = []
    try:
        port = int(await asyncio.wait_for(process.stdout.readline(), 30))
        handshake = HANDSHAKE
        if deflate:
            handshake = HANDSHAKE.replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
        # One connection first, so that the baseline includes what the first
        # connection loads once (imports, the shared read buffer...).
        opened, hello = loop.create_future(), loop.create_future()
        transport, _ = await loop.create_connection(lambda: IdleClient(handshake, opened, hello), "127.0.0.1", port)
        transports.append(transport)
        await opened
        before, held = map(int, await ask("rss"))
        assert held == 1

        started = time.monotonic()
        limit = asyncio.Semaphore(500)
        futures = []

        async def open_one():
            opened, hello = loop.create_future(), loop.create_future()
            futures.append((opened, hello))
            async with limit:
                transport, _ = await loop.create_connection(
                    lambda: IdleClient(handshake, opened, hello), "127.0.0.1", port
                )
                transports.append(transport)
                return await opened

        status_lines = await asyncio.wait_for(asyncio.gather(*(open_one() for _ in range(count))), 90)
        opening = time.monotonic() - started
        assert set(status_lines) == {b"HTTP/1.1 101 Switching Protocols"}
        after, held = map(int, await ask("rss"))
        assert held == count + 1
        per_connection = (after - before) / count

        assert await ask("broadcast") == ["ok"]
        hellos = await asyncio.wait_for(asyncio.gather(*(h for _, h in futures)), 60)
        assert hellos == [b"\x81\x05hello"] * count
        print(
            f"\n{count} idle connections ({'permessage-deflate' if deflate else 'no compression'}):"
            f" opened in {opening:.1f} s, server RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MiB,"
            f" {per_connection / 1024:.1f} KiB per connection"
        )
        if deflate:
            assert per_connection < 400 * KiB, per_connection
        else:
            assert per_connection < 24 * KiB, per_connection
        for transport in transports:
            transport.close()
        transports = []
        deadline = time.monotonic() + 60
        while int((await ask("rss"))[1]) != 0:
            assert time.monotonic() < deadline, "the server did not see every connection close"
            await asyncio.sleep(0.2)
    finally:
        for transport in transports:
            transport.abort()
        if process.returncode is None:
            process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 30)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()

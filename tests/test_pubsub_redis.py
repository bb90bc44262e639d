"""fastws.PubSub through a real Redis (issue #17, items 2 and 5): fan-out to
every process, topics, text and binary, subscriptions, per-publisher order,
the URLs it takes, and its life (start, close). What happens when Redis or the
connections to it go away is in ``test_pubsub_redis_faults.py``.

Each "process" of an app is a :class:`Node`: a PubSub with its own publisher
identity and Redis connections, and a fastws server whose clients are the
subscribers. Several nodes in one event loop stand for several processes; a
node can also run in a real process of its own (:func:`node_process`), which
the tests also use to stop a reader (SIGSTOP) without touching the PubSub's
insides.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import sys
from typing import Any, AsyncIterator, Callable, Dict, List, Optional

import pytest
import redis.asyncio as aredis
import trustme

import fastws
from fastws.exceptions import PublishBufferFull, PubSubError

from asyncio_helpers import run, server
from redis_helpers import RedisServer, redis_available, running_redis

pytestmark = pytest.mark.skipif(not redis_available(), reason="redis-server is not installed")

#: The stream every node of a test shares.
STREAM = "fastws:test"
#: Seconds any one awaited message or condition may take before the test fails.
WAIT = 5.0
#: Seconds a close() with nothing left to publish may take.
CLOSE_BOUND = 2.0

Message = Any  # str or bytes, as a client receives it


# --- nodes: a PubSub and a server whose clients subscribe --------------------------------


class Node:
    """One process of an app: :attr:`pubsub`, and a fastws server at :attr:`uri`.

    A client that connects to ``uri + "x,y"`` is subscribed to ``x`` and ``y``
    and gets ``"subscribed"``; it may then send ``"unsubscribe x"`` (answered
    with ``"unsubscribed x"``). :attr:`connections` are the server's side of
    every client, in order of arrival.
    """

    def __init__(self, pubsub: fastws.PubSub) -> None:
        self.pubsub = pubsub
        self.uri = ""
        self.connections: List[Any] = []


@contextlib.asynccontextmanager
async def node(url: str, **options: Any) -> AsyncIterator[Node]:
    """A started :class:`Node` on ``url`` (the stream is :data:`STREAM` unless given)."""
    options.setdefault("stream", STREAM)
    pubsub = fastws.PubSub(url, **options)
    this = Node(pubsub)

    async def handler(websocket: Any) -> None:
        this.connections.append(websocket)
        for topic in filter(None, websocket.request.path.strip("/").split(",")):
            pubsub.subscribe(websocket, topic)
        await websocket.send("subscribed")
        with contextlib.suppress(fastws.ConnectionClosed):
            async for command in websocket:
                name, _, topic = command.partition(" ")
                assert name == "unsubscribe", command
                pubsub.unsubscribe(websocket, topic)
                await websocket.send(f"unsubscribed {topic}")

    await pubsub.start()
    try:
        async with server(handler) as (_, uri):
            this.uri = uri
            yield this
    finally:
        await close_promptly(pubsub)


async def close_promptly(pubsub: fastws.PubSub, bound: float = CLOSE_BOUND) -> None:
    """``pubsub.close()``, failing the test if it takes more than ``bound`` seconds
    (a hung close would otherwise only show as a test that runs into its
    timeout, or, since close() swallows its caller's cancellation, one that
    passes slowly)."""
    closing = asyncio.ensure_future(pubsub.close())
    done, _ = await asyncio.wait({closing}, timeout=bound)
    if not done:
        pytest.fail(f"PubSub.close() did not return within {bound} s (see test_close_right_after_start)")
    closing.result()


async def subscriber(stack: contextlib.AsyncExitStack, uri: str, *topics: str) -> Any:
    """A client of the node (or node process) at ``uri``, subscribed to ``topics``."""
    client = await stack.enter_async_context(fastws.connect(uri + ",".join(topics), ping_interval=None))
    assert await asyncio.wait_for(client.recv(), WAIT) == "subscribed"
    return client


async def receive(client: Any, count: int) -> List[Message]:
    """The next ``count`` messages of ``client``."""
    return [await asyncio.wait_for(client.recv(), WAIT) for _ in range(count)]


async def receive_until(client: Any, last: Message, limit: int = 100_000) -> List[Message]:
    """The messages of ``client`` up to and including ``last``."""
    received: List[Message] = []
    while not received or received[-1] != last:
        assert len(received) < limit, f"no {last!r} in {limit} messages"
        received.append(await asyncio.wait_for(client.recv(), WAIT))
    return received


def of(prefix: str, messages: List[Message]) -> List[Message]:
    """The messages of one publisher (``"a:1"``... for prefix ``"a"``), in the order received."""
    return [m for m in messages if m.startswith(prefix + ":")]


def numbered(prefix: str, numbers: Any) -> List[str]:
    return [f"{prefix}:{i}" for i in numbers]


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.005)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def redis_client(server: RedisServer, **options: Any) -> AsyncIterator[Any]:
    """A plain redis-py client of ``server``, to look at the stream or kill connections."""
    client = aredis.Redis.from_url(server.url, **options)
    try:
        yield client
    finally:
        await client.aclose()


async def wait_for_redis(
    client: Any, predicate: Callable[[List[Dict[str, str]]], bool], what: str, timeout: float = WAIT
) -> None:
    """Poll Redis's CLIENT LIST until ``predicate`` holds for it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate(await client.client_list()):
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what} in {await client.client_list()}")
        await asyncio.sleep(0.005)


# --- a node in a process of its own ------------------------------------------------------

#: A node as a program: ``python -c NODE_SCRIPT URL STREAM RETENTION``. It prints
#: its port, then serves until its stdin closes. Clients subscribe as with
#: :class:`Node`; on any connection, ``"counters"`` is answered with the
#: PubSub's counters as JSON, and ``"publish TOPIC PREFIX COUNT"`` publishes
#: ``PREFIX:1`` ... ``PREFIX:COUNT`` one after the other (each awaited), then
#: answers ``"published"``.
NODE_SCRIPT = r"""
import asyncio, json, sys
import fastws

async def main(url, stream, retention):
    pubsub = fastws.PubSub(url, stream=stream, retention=retention)

    async def handler(websocket):
        for topic in filter(None, websocket.request.path.strip("/").split(",")):
            pubsub.subscribe(websocket, topic)
        await websocket.send("subscribed")
        async for command in websocket:
            name, _, args = command.partition(" ")
            if name == "counters":
                await websocket.send(json.dumps(pubsub.counters.as_dict()))
            elif name == "publish":
                topic, prefix, count = args.split()
                for i in range(1, int(count) + 1):
                    await pubsub.publish(topic, f"{prefix}:{i}")
                await websocket.send("published")

    async with pubsub:
        async with fastws.serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
            print(server.sockets[0].getsockname()[1], flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


class NodeProcess:
    """A node running :data:`NODE_SCRIPT` in a process of its own."""

    def __init__(self, process: asyncio.subprocess.Process, uri: str) -> None:
        self.process = process
        self.uri = uri
        self.control: Any = None  # a client subscribed to nothing, for commands

    def stop(self) -> None:
        """SIGSTOP: the process, its reader included, does nothing until :meth:`cont`."""
        self.process.send_signal(signal.SIGSTOP)

    def cont(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    async def counters(self) -> Dict[str, int]:
        await self.control.send("counters")
        counters: Dict[str, int] = json.loads(await asyncio.wait_for(self.control.recv(), WAIT))
        return counters

    async def publish(self, topic: str, prefix: str, count: int) -> None:
        await self.control.send(f"publish {topic} {prefix} {count}")
        assert await asyncio.wait_for(self.control.recv(), 3 * WAIT) == "published"


@contextlib.asynccontextmanager
async def node_process(url: str, *, retention: int = 100_000) -> AsyncIterator[NodeProcess]:
    """A :class:`NodeProcess` on ``url`` and :data:`STREAM`, stopped at the end."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", NODE_SCRIPT, url, STREAM, str(retention),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 3 * WAIT)
        assert line.strip().isdigit(), f"the node process printed {line!r} (exit code {process.returncode})"
        this = NodeProcess(process, f"ws://127.0.0.1:{int(line)}/")
        async with contextlib.AsyncExitStack() as stack:
            this.control = await subscriber(stack, this.uri)
            yield this
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)
        assert process.stdin is not None
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), WAIT)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()


# --- fan-out -----------------------------------------------------------------------------


@run
async def test_publish_reaches_subscribers_of_every_node(redis_server: RedisServer) -> None:
    async with node(redis_server.url) as a, node(redis_server.url) as b, node(redis_server.url) as c:
        async with contextlib.AsyncExitStack() as stack:
            clients = [await subscriber(stack, n.uri, "x") for n in (a, b, c, a)]
            for i in range(5):
                await a.pubsub.publish("x", f"a:{i}")
            for client in clients:
                assert await receive(client, 5) == numbered("a", range(5))
        # Each node received each message once, and wrote it to its own subscribers.
        assert [(n.pubsub.counters.received, n.pubsub.counters.delivered) for n in (a, b, c)] == [
            (5, 10), (5, 5), (5, 5)
        ]
        assert a.pubsub.counters.published == 5
        assert b.pubsub.counters.published == c.pubsub.counters.published == 0


@run
async def test_topics_filter_what_subscribers_get(redis_server: RedisServer) -> None:
    async with node(redis_server.url) as a, node(redis_server.url) as b:
        async with contextlib.AsyncExitStack() as stack:
            only_x = await subscriber(stack, b.uri, "x")
            only_y = await subscriber(stack, b.uri, "y")
            both = await subscriber(stack, a.uri, "x", "y")
            for topic, message in [("x", "x:1"), ("y", "y:1"), ("z", "z:1"), ("x", "x:2"), ("y", "y:2")]:
                await a.pubsub.publish(topic, message)
            await a.pubsub.publish("x", "end")
            await a.pubsub.publish("y", "end")
            assert await receive_until(only_x, "end") == ["x:1", "x:2", "end"]
            assert await receive_until(only_y, "end") == ["y:1", "y:2", "end"]
            assert await receive_until(both, "end") == ["x:1", "y:1", "x:2", "y:2", "end"]
            assert await receive(both, 1) == ["end"]
        # The clients are closed: they left their topics.
        await wait_until(lambda: a.pubsub.topics() == b.pubsub.topics() == frozenset(), "the topics to empty")
        assert b.pubsub.counters.received == 7  # z too: every node reads the whole stream


@pytest.mark.parametrize("method", ["publish", "publish_nowait"])
@pytest.mark.parametrize(
    "message, text, expected",
    [
        ("héllo ✓", None, "héllo ✓"),
        (b"\x00\xff\x80", None, b"\x00\xff\x80"),
        (bytearray(b"ab"), None, b"ab"),
        (memoryview(b"xabcx")[1:-1], None, b"abc"),
        ("", None, ""),
        (b"", None, b""),
        ("héllo", False, "héllo".encode()),
        ("héllo", True, "héllo"),
        (b"caf\xc3\xa9", True, "café"),
        (b"caf\xc3\xa9", False, b"caf\xc3\xa9"),
        ("x" * 200_000, None, "x" * 200_000),
    ],
    ids=["str", "bytes", "bytearray", "memoryview", "empty-str", "empty-bytes", "str-as-binary",
         "str-as-text", "bytes-as-text", "bytes-as-binary", "large"],
)
@run
async def test_text_stays_text_and_bytes_stay_binary(
    redis_server: RedisServer, method: str, message: Any, text: Optional[bool], expected: Message
) -> None:
    async with node(redis_server.url) as a, node(redis_server.url) as b:
        async with contextlib.AsyncExitStack() as stack:
            client = await subscriber(stack, b.uri, "x")
            if method == "publish":
                await a.pubsub.publish("x", message, text=text)
            else:
                a.pubsub.publish_nowait("x", message, text=text)
            await a.pubsub.publish("x", "end")
            received = await receive(client, 2)
            assert received == [expected, "end"]
            assert type(received[0]) is type(expected)


@run
async def test_topic_names_are_any_string(redis_server: RedisServer) -> None:
    topics = ["δωμάτιο", "a:b", "room 1", "🎉", ""]
    async with node(redis_server.url) as a, node(redis_server.url) as b:
        async with contextlib.AsyncExitStack() as stack:
            client = await subscriber(stack, b.uri, "end")
            for topic in topics:
                b.pubsub.subscribe(b.connections[0], topic)
            for topic in topics:
                await a.pubsub.publish(topic, f"to {topic!r}")
            await a.pubsub.publish("end", "end")
            assert await receive_until(client, "end") == [f"to {t!r}" for t in topics] + ["end"]


@run
async def test_unsubscribe_stops_delivery(redis_server: RedisServer) -> None:
    async with node(redis_server.url) as a, node(redis_server.url) as b:
        async with contextlib.AsyncExitStack() as stack:
            client = await subscriber(stack, b.uri, "x", "y")
            other = await subscriber(stack, b.uri, "x")
            (connection, other_connection) = b.connections
            await a.pubsub.publish("x", "x:1")
            assert await receive(client, 1) == ["x:1"]
            await client.send("unsubscribe x")
            assert await receive(client, 1) == ["unsubscribed x"]
            assert b.pubsub.topics(connection) == frozenset({"y"})
            assert b.pubsub.subscribers("x") == frozenset({other_connection})
            await a.pubsub.publish("x", "x:2")
            await a.pubsub.publish("y", "y:1")
            # Had x:2 reached it, it would come before y:1 (one publisher's order).
            assert await receive(client, 1) == ["y:1"]
            assert await receive(other, 2) == ["x:1", "x:2"]
            # Unsubscribing from a topic it is not in, again, changes nothing.
            b.pubsub.unsubscribe(connection, "x")
            b.pubsub.unsubscribe(connection, "never")
            assert b.pubsub.topics(connection) == frozenset({"y"})
            b.pubsub.unsubscribe_all(connection)
            assert b.pubsub.topics(connection) == frozenset()
            assert b.pubsub.topics() == frozenset({"x"})


@pytest.mark.parametrize("how", ["close", "abort"])
@run
async def test_closed_connection_leaves_its_topics(redis_server: RedisServer, how: str) -> None:
    async with node(redis_server.url) as a, node(redis_server.url) as b:
        async with contextlib.AsyncExitStack() as stack:
            staying = await subscriber(stack, b.uri, "x")
            leaving = await subscriber(stack, b.uri, "x", "y")
            assert len(b.pubsub.subscribers("x")) == 2
            assert b.pubsub.topics() == frozenset({"x", "y"})
            if how == "close":
                await leaving.close()
            else:
                leaving.transport.abort()
            await wait_until(lambda: b.connections[1].state is fastws.State.CLOSED, "the server side to close")
            assert b.pubsub.subscribers("x") == frozenset({b.connections[0]})
            assert b.pubsub.subscribers("y") == frozenset()
            assert b.pubsub.topics() == frozenset({"x"})
            assert b.pubsub.topics(b.connections[1]) == frozenset()
            # Subscribing a closed connection does nothing (it would never leave).
            b.pubsub.subscribe(b.connections[1], "z")
            assert b.pubsub.topics() == frozenset({"x"})
            await a.pubsub.publish("y", "y:1")
            await a.pubsub.publish("x", "x:1")
            assert await receive(staying, 1) == ["x:1"]
            assert (b.pubsub.counters.delivered, b.pubsub.counters.skipped) == (1, 0)


# --- order -------------------------------------------------------------------------------


@run
async def test_each_publishers_order_is_kept_when_publishers_interleave(redis_server: RedisServer) -> None:
    count, burst = 400, 40
    async with node(redis_server.url) as a, node(redis_server.url) as b, node(redis_server.url) as c:
        async with contextlib.AsyncExitStack() as stack:
            clients = [await subscriber(stack, n.uri, "x") for n in (c, a, b)]

            async def gathered() -> None:  # many publishes waiting for Redis at once
                await asyncio.gather(*(a.pubsub.publish("x", f"a:{i}") for i in range(count)))

            async def bursts() -> None:  # publish_nowait, a burst per turn of the loop
                for start in range(0, count, burst):
                    for i in range(start, start + burst):
                        b.pubsub.publish_nowait("x", f"b:{i}")
                    await asyncio.sleep(0)

            await asyncio.gather(gathered(), bursts())
            await b.pubsub.publish("x", "b:end")
            await a.pubsub.publish("x", "a:end")
            for client in clients:
                received = await receive_until(client, "a:end")
                assert of("a", received) == numbered("a", range(count)) + ["a:end"]
                assert of("b", received) == numbered("b", range(count)) + ["b:end"]
                assert len(received) == 2 * count + 2
                # The publishers did interleave (else this test would prove little).
                assert received.index("b:0") < received.index(f"a:{count - 1}")
                assert received.index("a:0") < received.index(f"b:{count - 1}")
        for n in (a, b, c):
            assert (n.pubsub.counters.received, n.pubsub.counters.duplicates, n.pubsub.counters.missed) == (
                2 * count + 2, 0, 0
            )
        assert (a.pubsub.buffered, b.pubsub.buffered) == (0, 0)


@run
async def test_publishes_cross_real_processes_both_ways(redis_server: RedisServer) -> None:
    count = 50
    async with node(redis_server.url) as a, node_process(redis_server.url) as p:
        async with contextlib.AsyncExitStack() as stack:
            here = await subscriber(stack, a.uri, "x")
            there = await subscriber(stack, p.uri, "x")
            publishing = asyncio.ensure_future(p.publish("x", "p", count))
            for i in range(1, count + 1):
                await a.pubsub.publish("x", f"a:{i}")
            await publishing
            await a.pubsub.publish("x", "a:end")
            for client in (here, there):
                received = await receive_until(client, "a:end")
                assert of("a", received) == numbered("a", range(1, count + 1)) + ["a:end"]
                assert of("p", received) == numbered("p", range(1, count + 1))
                assert len(received) == 2 * count + 1
            counters = await p.counters()
            assert (counters["published"], counters["received"], counters["duplicates"], counters["missed"]) == (
                count, 2 * count + 1, 0, 0
            )
            assert counters["delivered"] == 2 * count + 1


# --- URLs --------------------------------------------------------------------------------


def tls_redis() -> Any:
    return running_redis(tls=trustme.CA())


@pytest.mark.parametrize("transport", ["unix", "tls"])
@run
async def test_unix_socket_and_tls_urls(transport: str) -> None:
    with running_redis(unix=True) if transport == "unix" else tls_redis() as redis:
        assert redis.url.startswith("unix:///" if transport == "unix" else "rediss://127.0.0.1:")
        options = {"redis_options": {"ssl_ca_certs": redis.ca_file}} if transport == "tls" else {}
        async with node(redis.url, **options) as a, node(redis.url, **options) as b:
            async with contextlib.AsyncExitStack() as stack:
                client = await subscriber(stack, b.uri, "x")
                await a.pubsub.publish("x", "x:1")
                a.pubsub.publish_nowait("x", b"x:2")
                await a.pubsub.publish("x", "x:3")
                assert await receive(client, 3) == ["x:1", b"x:2", "x:3"]


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:6379/0", "127.0.0.1:6379", "tcp://127.0.0.1:6379", "redis+sentinel://127.0.0.1:26379",
     "ws://127.0.0.1/", "", "Redis:/127.0.0.1"],
)
def test_a_url_that_is_not_redis_is_refused(url: str) -> None:
    with pytest.raises(ValueError) as raised:
        fastws.PubSub(url)
    assert str(raised.value) == f"expected a redis://, rediss:// or unix:// URL, got {url!r}"


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("retention", 0, "retention must be at least 1, got 0"),
        ("max_buffer", 0, "max_buffer must be at least 1, got 0"),
        ("max_buffer_bytes", -1, "max_buffer_bytes must be at least 1, got -1"),
        ("replay", -0.5, "replay must be >= 0, got -0.5"),
    ],
)
def test_bounds_must_be_positive(option: str, value: float, message: str) -> None:
    options: Dict[str, Any] = {option: value}
    with pytest.raises(ValueError) as raised:
        fastws.PubSub("redis://127.0.0.1:6379/0", **options)
    assert str(raised.value) == message


# --- life --------------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["before start", "after close"])
@pytest.mark.parametrize("method", ["publish", "publish_nowait"])
@run
async def test_publish_outside_start_and_close_fails(redis_server: RedisServer, when: str, method: str) -> None:
    pubsub = fastws.PubSub(redis_server.url, stream=STREAM)
    if when == "after close":
        await pubsub.start()
        await pubsub.publish("x", "taken")
        await close_promptly(pubsub)
    with pytest.raises(PubSubError) as raised:
        if method == "publish":
            await pubsub.publish("x", "x")
        else:
            pubsub.publish_nowait("x", "x")
    expected = (
        "publish before start(): use async with PubSub(...) or await start()"
        if when == "before start"
        else "publish on a closed PubSub"
    )
    assert str(raised.value) == expected
    assert not isinstance(raised.value, PublishBufferFull)
    assert pubsub.counters.published == (0 if when == "before start" else 1)
    async with redis_client(redis_server) as client:
        assert await client.xlen(STREAM) == (0 if when == "before start" else 1)


@run
async def test_start_once_and_close_twice(redis_server: RedisServer) -> None:
    pubsub = fastws.PubSub(redis_server.url, stream=STREAM)
    await pubsub.start()
    with pytest.raises(PubSubError, match=r"^a PubSub starts once$"):
        await pubsub.start()
    await close_promptly(pubsub)
    await close_promptly(pubsub)
    with pytest.raises(PubSubError, match=r"^a PubSub starts once$"):
        await pubsub.start()


@run
async def test_close_right_after_start(redis_server: RedisServer) -> None:
    # Whenever close() comes, while the reader is still connecting or later,
    # it stops the PubSub's tasks and returns.
    for turns in range(30):
        pubsub = fastws.PubSub(redis_server.url, stream=STREAM)
        await pubsub.start()
        for _ in range(turns):
            await asyncio.sleep(0)
        await close_promptly(pubsub)
    async with redis_client(redis_server) as client:
        # Only the admin client is left connected.
        assert [c["cmd"] for c in await client.client_list()] == ["client|list"]


@run
async def test_close_passes_its_callers_cancellation_on(redis_server: RedisServer) -> None:
    pubsub = fastws.PubSub(redis_server.url, stream=STREAM)
    await pubsub.start()
    await pubsub.publish("x", "x")
    async with redis_client(redis_server) as client:
        # The reader is waiting in XREAD BLOCK (not between two commands).
        await wait_for_redis(client, lambda clients: any("b" in c["flags"] for c in clients), "a blocked XREAD")
    closing = asyncio.ensure_future(pubsub.close())
    await asyncio.sleep(0)  # close() ran until it waits for its tasks to end
    assert not closing.done()
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing


@run
async def test_close_waits_for_redis_to_take_what_was_published(redis_server: RedisServer) -> None:
    count = 2000
    async with node(redis_server.url) as b:
        async with contextlib.AsyncExitStack() as stack:
            client = await subscriber(stack, b.uri, "x")
            async with node(redis_server.url) as a:
                for i in range(count):
                    a.pubsub.publish_nowait("x", f"a:{i}")
                assert a.pubsub.buffered > 0
            assert a.pubsub.buffered == 0
            assert await receive(client, count) == numbered("a", range(count))


@pytest.mark.parametrize("bad", [None, 1, ["x"], object()])
@run
async def test_wrong_types_are_refused(redis_server: RedisServer, bad: Any) -> None:
    async with node(redis_server.url) as a:
        with pytest.raises(TypeError, match=r"^message must be str or bytes-like, not "):
            await a.pubsub.publish("x", bad)
        with pytest.raises(TypeError, match=r"^message must be str or bytes-like, not "):
            a.pubsub.publish_nowait("x", bad)
        if bad is not None:
            with pytest.raises(TypeError, match=r"^topic must be a str, not "):
                await a.pubsub.publish(bad, "x")
        with pytest.raises(TypeError, match=r"^cannot subscribe a "):
            a.pubsub.subscribe(bad, "x")
        assert a.pubsub.counters.published == 0
        assert a.pubsub.buffered == 0

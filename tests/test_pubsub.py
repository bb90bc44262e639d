"""fastws.PubSub in one process: topics of real connections (serve() handlers,
Listeners, clients), the fan-out, slow subscribers, and the API's errors."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest

import fastws
import fastws.pubsub
from fastws import PubSubError
from fastws.pubsub.topics import as_connection

from asyncio_helpers import listener_server, run, server

WAIT = 5.0


async def eventually(condition, what: str) -> None:
    """Wait (bounded) for ``condition()``: a close seen by the server side has
    no event of its own to wait on."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


class Room:
    """A server whose handler subscribes each connection to the topics it is
    told in its first message ("a,b"), says "ok", then publishes each message
    it receives as "topic:text" to that topic."""

    def __init__(self, pubsub: fastws.PubSub) -> None:
        self.pubsub = pubsub
        self.connections: list = []

    async def handler(self, websocket) -> None:
        self.connections.append(websocket)
        for topic in (await websocket.recv()).split(","):
            self.pubsub.subscribe(websocket, topic)
        await websocket.send("ok")
        async for message in websocket:
            topic, _, text = message.partition(":")
            await self.pubsub.publish(topic, text)


async def join(uri: str, topics: str):
    client = await fastws.connect(uri)
    await client.send(topics)
    assert await client.recv() == "ok"
    return client


@run
async def test_publish_reaches_every_subscriber_of_the_topic_only():
    async with fastws.PubSub() as pubsub:
        room = Room(pubsub)
        async with server(room.handler) as (_, uri):
            a = await join(uri, "news")
            b = await join(uri, "news,sport")
            c = await join(uri, "sport")
            await a.send("news:hello")
            await c.send("sport:goal")
            assert await a.recv() == "hello"
            assert [await b.recv(), await b.recv()] == ["hello", "goal"]
            assert await c.recv() == "goal"
            await a.send("weather:rain")  # nobody's topic
            await a.send("news:again")
            assert await a.recv() == "again"
            assert await b.recv() == "again"
            assert pubsub.topics() == {"news", "sport"}
            assert pubsub.subscribers("sport") == {room.connections[1], room.connections[2]}
            assert pubsub.topics(room.connections[1]) == {"news", "sport"}
            assert pubsub.counters.published == 4
            assert pubsub.counters.delivered == 6
            for client in (a, b, c):
                await client.close()


@run
async def test_text_binary_and_the_text_override():
    async with fastws.PubSub() as pubsub:
        room = Room(pubsub)
        async with server(room.handler) as (_, uri):
            client = await join(uri, "t")
            await pubsub.publish("t", "text")
            await pubsub.publish("t", b"\x00\xff")
            await pubsub.publish("t", bytearray(b"ab"))
            await pubsub.publish("t", memoryview(b"xyz"))
            await pubsub.publish("t", b"as text", text=True)
            await pubsub.publish("t", "as binary", text=False)
            pubsub.publish_nowait("t", "nowait")
            got = [await client.recv() for _ in range(7)]
            assert got == ["text", b"\x00\xff", b"ab", b"xyz", "as text", b"as binary", "nowait"]
            await client.close()


@run
async def test_unsubscribe_and_unsubscribe_all():
    async with fastws.PubSub() as pubsub:
        room = Room(pubsub)
        async with server(room.handler) as (_, uri):
            client = await join(uri, "a,b,c")
            connection = room.connections[0]
            pubsub.unsubscribe(connection, "a")
            pubsub.unsubscribe(connection, "a")  # twice: nothing happens
            pubsub.unsubscribe(connection, "never")
            assert pubsub.topics(connection) == {"b", "c"}
            await pubsub.publish("a", "gone")
            await pubsub.publish("b", "still")
            assert await client.recv() == "still"
            pubsub.unsubscribe_all(connection)
            assert pubsub.topics(connection) == frozenset()
            assert pubsub.topics() == frozenset()
            await pubsub.publish("b", "gone too")
            pubsub.subscribe(connection, "a")  # subscribing again after leaving all
            await pubsub.publish("a", "back")
            assert await client.recv() == "back"
            await client.close()


@run
async def test_a_closed_connection_leaves_its_topics():
    async with fastws.PubSub() as pubsub:
        room = Room(pubsub)
        async with server(room.handler) as (_, uri):
            first = await join(uri, "x,y")
            second = await join(uri, "x")
            await first.close()
            await eventually(lambda: pubsub.subscribers("y") == frozenset(), "the close to reach the server")
            assert pubsub.subscribers("x") == {room.connections[1]}
            assert pubsub.topics() == {"x"}
            closed = room.connections[0]
            pubsub.subscribe(closed, "z")  # a closed connection is not kept
            assert pubsub.topics() == {"x"}
            await pubsub.publish("x", "to the second")
            assert await second.recv() == "to the second"
            second.transport.abort()  # no close frame: the TCP close is enough
            await eventually(lambda: pubsub.topics() == frozenset(), "the abort to reach the server")


@run
async def test_listener_subscribes_and_publishes_without_awaiting():
    pubsub = fastws.PubSub()

    class Chat(fastws.Listener):
        def on_open(self, connection):
            pubsub.subscribe(connection, "chat")

        def on_message(self, connection, message):
            pubsub.publish_nowait("chat", message)

    async with pubsub, listener_server(Chat) as (_, uri):
        clients = [await fastws.connect(uri) for _ in range(3)]
        await eventually(lambda: len(pubsub.subscribers("chat")) == 3, "three subscribers")
        await clients[0].send("one")
        await clients[2].send(b"two")
        for client in clients:
            assert [await client.recv(), await client.recv()] == ["one", b"two"]
        for client in clients:
            await client.close()


@run
async def test_client_connections_as_subscribers_mask_each_frame():
    """Subscribers may be client connections too: the server they talk to
    requires masked frames, so each gets a frame masked with its own key."""
    echoed = []

    async def record(websocket):
        async for message in websocket:
            echoed.append(message)

    async with fastws.PubSub() as pubsub, server(record) as (_, uri):
        clients = [await fastws.connect(uri) for _ in range(2)]
        for client in clients:
            pubsub.subscribe(client, "up")
        await pubsub.publish("up", "masked")
        await pubsub.publish("up", b"\x01")
        await eventually(lambda: len(echoed) == 4, "both clients' frames")
        assert sorted(echoed, key=repr) == sorted(["masked", "masked", b"\x01", b"\x01"], key=repr)
        for client in clients:
            await client.close()


@run
async def test_a_slow_subscriber_is_skipped_counted_and_logged_once(caplog):
    """A subscriber that stopped reading is skipped once its buffer is over
    write_limit, the others get every message, and the warnings are not one
    per message."""
    big = bytes(256 * 1024)
    async with fastws.PubSub() as pubsub:
        room = Room(pubsub)
        async with server(room.handler, write_limit=4096) as (_, uri):
            clients = [await fastws.connect(uri, max_queue=None) for _ in range(3)]
            for client in clients:
                await client.send("feed")
                assert await client.recv() == "ok"
            slow_client, fast_clients = clients[0], clients[1:]
            slow_client.transport.pause_reading()
            slow = room.connections[0]
            fast = room.connections[1:]
            seen = [[] for _ in fast_clients]

            async def count(client, into):
                async for message in client:
                    into.append(message if isinstance(message, str) else len(message))

            readers = [asyncio.ensure_future(count(c, s)) for c, s in zip(fast_clients, seen)]
            sent = 0
            started = asyncio.get_running_loop().time()
            with caplog.at_level(logging.WARNING, logger="fastws.pubsub"):
                for _ in range(400):  # at most 100 MiB: kernel buffers hold a few MiB
                    if slow.write_buffer_size > slow.write_limit:
                        break
                    await pubsub.publish("feed", big)
                    sent += 1
                    # polled: a write buffer draining has no event to wait on
                    while any(c.write_buffer_size for c in fast):  # noqa: ASYNC110
                        await asyncio.sleep(0.001)
                assert slow.write_buffer_size > slow.write_limit
                assert pubsub.counters.skipped == 0
                for i in range(5):
                    await pubsub.publish("feed", f"while slow {i}")
            elapsed = asyncio.get_running_loop().time() - started
            assert pubsub.counters.skipped == 5
            warnings = [r.getMessage() for r in caplog.records if r.name == "fastws.pubsub"]
            # one warning, then at most one a second: not one per message
            assert 1 <= len(warnings) <= 1 + int(elapsed), warnings
            assert warnings[0] == (
                "skipped 1 deliveries to subscribers that could not take them,"
                f" the last: {slow!r} is not reading fast enough"
            )
            for client in fast_clients:
                await client.close()
            await asyncio.gather(*readers)
            for messages in seen:
                assert messages == [len(big)] * sent + [f"while slow {i}" for i in range(5)]
            slow_client.transport.abort()


def test_as_connection_finds_the_connection_of_an_asgi_scope():
    class FakeConnection:
        protocol = None

        def add_close_callback(self, callback):
            pass

    connection = FakeConnection()
    scope = {"type": "websocket", "extensions": {"fastws": {"connection": connection}}}

    class StarletteLike:
        def __init__(self, scope):
            self.scope = scope

    assert as_connection(connection) is connection
    assert as_connection(scope) is connection
    assert as_connection(StarletteLike(scope)) is connection
    with pytest.raises(TypeError, match=r"not made by fastws: PubSub needs .* fastws\.uvicorn"):
        as_connection({"type": "websocket", "extensions": {}})
    with pytest.raises(TypeError, match="cannot subscribe a str"):
        as_connection("ws://nowhere")
    with pytest.raises(TypeError, match="cannot subscribe a dict"):
        as_connection({"type": "http"})


@run
async def test_errors_name_what_was_wrong():
    pubsub = fastws.PubSub()
    with pytest.raises(TypeError, match="topic must be a str, not bytes"):
        await pubsub.publish(b"topic", "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="message must be str or bytes-like, not int"):
        await pubsub.publish("topic", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cannot subscribe a NoneType"):
        pubsub.subscribe(None, "topic")
    await pubsub.start()
    with pytest.raises(PubSubError, match="starts once"):
        await pubsub.start()
    await pubsub.close()
    await pubsub.close()  # closing twice is fine
    with pytest.raises(PubSubError, match="publish on a closed PubSub"):
        await pubsub.publish("topic", "x")
    with pytest.raises(PubSubError, match="publish on a closed PubSub"):
        pubsub.publish_nowait("topic", "x")


@pytest.mark.parametrize(
    "url, options, message",
    [
        ("http://127.0.0.1:6379", {}, "expected a redis://, rediss:// or unix:// URL, got 'http://127.0.0.1:6379'"),
        (None, {"retention": 0}, "retention must be at least 1, got 0"),
        (None, {"max_buffer": 0}, "max_buffer must be at least 1, got 0"),
        (None, {"max_buffer_bytes": -1}, "max_buffer_bytes must be at least 1, got -1"),
        (None, {"replay": -1.0}, "replay must be >= 0, got -1.0"),
    ],
)
def test_bad_arguments(url, options, message):
    with pytest.raises(ValueError) as excinfo:
        fastws.PubSub(url, **options)
    assert str(excinfo.value) == message


def test_a_redis_url_without_the_redis_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ImportError, match=r"needs the redis package: pip install 'fastws\[redis\]'"):
        fastws.PubSub("redis://127.0.0.1:6379/0")


@run
async def test_a_redis_pubsub_refuses_to_publish_before_start():
    pubsub = fastws.PubSub("redis://127.0.0.1:1/0")
    with pytest.raises(PubSubError, match=r"publish before start\(\)"):
        await pubsub.publish("topic", "x")
    assert pubsub.buffered == 0


def test_current_pubsub():
    with pytest.raises(LookupError, match="python -m fastws run --pubsub URL"):
        fastws.current_pubsub()
    pubsub = fastws.PubSub()
    fastws.pubsub.set_current(pubsub)
    try:
        assert fastws.current_pubsub() is pubsub
    finally:
        fastws.pubsub.set_current(None)
    with pytest.raises(LookupError):
        fastws.current_pubsub()


def test_counters_and_repr():
    pubsub = fastws.PubSub(logger="my.logger")
    assert pubsub.logger.name == "my.logger"
    assert repr(pubsub) == "<PubSub this process, 0 topics>"
    assert pubsub.counters.as_dict() == dict.fromkeys(
        ("published", "received", "delivered", "skipped", "missed", "duplicates", "reconnections"), 0
    )
    assert repr(pubsub.counters).startswith("Counters(published=0, received=0,")
    assert repr(fastws.PubSub("redis://user:secret@127.0.0.1:6379/0")) == "<PubSub redis://127.0.0.1:6379/0, 0 topics>"

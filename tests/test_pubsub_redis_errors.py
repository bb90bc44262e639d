"""fastws.PubSub when Redis refuses or misbehaves, and its edges: a close()
whose wait is cancelled, the log of a Redis that is away, error replies to
XREAD and XADD (WRONGTYPE, out of memory), a least-privilege ACL user, a
subscriber reset by its peer in a fan-out, credentials in URLs, and the close
callbacks of a connection that subscribes again and again.

Each test pins a bug a review found (the scripts in its report); the helpers
are those of ``test_pubsub_redis.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from typing import Any, List

import pytest
from test_pubsub_redis import (
    STREAM,
    close_promptly,
    free_port,
    node,
    receive,
    redis_client,
    subscriber,
    wait_for_redis,
    wait_until,
)

import fastws
from fastws.exceptions import PubSubError

from asyncio_helpers import HANDSHAKE, run, server
from redis_helpers import RedisServer, redis_available

needs_redis = pytest.mark.skipif(not redis_available(), reason="redis-server is not installed")

LOGGER = "fastws.pubsub"
#: Seconds Redis stays away in the logging test: several backoff steps.
AWAY = 1.5


def messages(caplog: pytest.LogCaptureFixture, level: int, text: str) -> List[str]:
    """What PubSub logged at ``level`` with ``text`` in it."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == LOGGER and r.levelno == level and text in r.getMessage()
    ]


def pubsub_tasks() -> List[str]:
    return [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("fastws.PubSub")]


# --- close() cancelled -------------------------------------------------------------------


@needs_redis
@run
async def test_close_cancelled_while_waiting_still_stops(redis_server: RedisServer) -> None:
    """close() waits for Redis to take a pending message; cancelled in that
    wait, it still stops the writer and reader, fails what was pending and
    forgets the subscriptions."""
    pubsub = fastws.PubSub(redis_server.url, stream=STREAM, close_timeout=10)
    await pubsub.start()
    subscribed = asyncio.get_running_loop().create_future()

    async def handler(websocket: Any) -> None:
        pubsub.subscribe(websocket, "x")
        subscribed.set_result(None)
        await websocket.wait_closed()

    server = await fastws.serve(handler, "127.0.0.1", 0, ping_interval=None)
    port = server.sockets[0].getsockname()[1]
    client = await fastws.connect(f"ws://127.0.0.1:{port}/", ping_interval=None)
    await subscribed
    assert pubsub.topics() == {"x"}
    redis_server.kill()
    waiter = asyncio.ensure_future(pubsub.publish("x", "hello"))
    await wait_until(lambda: pubsub.buffered > 0, "the message to wait for Redis")
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(pubsub.close(), 0.5)
    assert pubsub_tasks() == []
    assert pubsub.buffered == 0
    assert pubsub.topics() == frozenset()
    with pytest.raises(PubSubError):
        await asyncio.wait_for(waiter, 1.0)
    await close_promptly(pubsub)  # a second close returns at once
    await client.close()
    server.close()
    await server.wait_closed()


# --- Redis away: one warning, backoff, one "again" ---------------------------------------


@needs_redis
@run
async def test_redis_away_is_logged_once_and_its_return_once(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    pubsub = fastws.PubSub(redis_server.url, stream=STREAM, close_timeout=0.1)
    await pubsub.start()
    try:
        redis_server.kill()
        pubsub.publish_nowait("x", "waits")
        # Not synchronisation: the span of the outage whose log is counted.
        await asyncio.sleep(AWAY)
        assert len(messages(caplog, logging.WARNING, "while publishing")) == 1
        assert len(messages(caplog, logging.WARNING, "while reading")) == 1
        assert messages(caplog, logging.INFO, "again") == []
        redis_server.start()
        await wait_until(lambda: pubsub.buffered == 0, "Redis to take the message")
        await wait_until(
            lambda: bool(messages(caplog, logging.INFO, "reading from Redis")), "the reader to say it is back"
        )
        assert len(messages(caplog, logging.INFO, "publishing to Redis at")) == 1
        assert len(messages(caplog, logging.INFO, "reading from Redis at")) == 1
        assert len(messages(caplog, logging.WARNING, "lost Redis")) == 2
    finally:
        await close_promptly(pubsub)


# --- error replies: XREAD on a key of another type ---------------------------------------


@needs_redis
@run
async def test_reader_survives_an_error_reply(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The stream's key briefly holds a string: XREAD gets WRONGTYPE; the
    reader logs it, keeps trying, and reads again once the key is gone."""
    async with contextlib.AsyncExitStack() as stack:
        this = await stack.enter_async_context(node(redis_server.url))
        admin = await stack.enter_async_context(redis_client(redis_server))
        client = await subscriber(stack, this.uri, "x")
        await this.pubsub.publish("x", "before")
        assert await receive(client, 1) == ["before"]

        def reader(clients: List[Any]) -> Any:
            found = [c for c in clients if c.get("name", "").startswith("fastws-pubsub-reader")]
            return found[0] if found and found[0].get("cmd") == "xread" and "b" in found[0]["flags"] else None

        await wait_for_redis(admin, lambda clients: reader(clients) is not None, "the reader blocked in XREAD")
        blocked = reader(await admin.client_list())
        await admin.delete(STREAM)
        await admin.set(STREAM, "oops")
        # End the reader's XREAD BLOCK now: its next XREAD meets the string.
        await admin.execute_command("CLIENT", "UNBLOCK", blocked["id"])
        await wait_until(
            lambda: bool(messages(caplog, logging.ERROR, "WRONGTYPE")), "the reader to log WRONGTYPE"
        )
        await admin.delete(STREAM)
        await this.pubsub.publish("x", "after")
        assert await receive(client, 1) == ["after"]


# --- ACL: a user without INFO, a user without anything -----------------------------------


@needs_redis
@run
async def test_a_user_without_info_works_with_a_warning(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with redis_client(redis_server) as admin:
        await admin.execute_command("ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all", "-@dangerous")
    app_url = redis_server.url.replace("redis://", "redis://app:pw@")
    async with contextlib.AsyncExitStack() as stack:
        this = await stack.enter_async_context(node(app_url))
        client = await subscriber(stack, this.uri, "x")
        await this.pubsub.publish("x", "works")
        assert await receive(client, 1) == ["works"]
    assert messages(caplog, logging.WARNING, "allow the user +info")


@needs_redis
@run
async def test_a_user_refused_everything_fails_start(redis_server: RedisServer) -> None:
    async with redis_client(redis_server) as admin:
        await admin.execute_command("ACL", "SETUSER", "nobody", "on", ">s3cret", "~*", "-@all")
    url = redis_server.url.replace("redis://", "redis://nobody:s3cret@")
    pubsub = fastws.PubSub(url, stream=STREAM)
    with pytest.raises(PubSubError) as raised:
        await pubsub.start()
    assert f"127.0.0.1:{redis_server.port}" in str(raised.value)
    assert "s3cret" not in str(raised.value)
    await close_promptly(pubsub)


# --- error replies: XADD refused for now, or for good ------------------------------------


@needs_redis
@run
async def test_out_of_memory_keeps_messages_pending(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis out of memory mid-batch: what it refused waits and goes out once
    it has memory again, in order; no reader misses anything."""
    count = 100
    async with contextlib.AsyncExitStack() as stack:
        admin = await stack.enter_async_context(redis_client(redis_server))
        publisher = await stack.enter_async_context(node(redis_server.url))
        reader = await stack.enter_async_context(node(redis_server.url))
        client = await subscriber(stack, reader.uri, "x")
        await publisher.pubsub.publish("x", "warm")
        assert await receive(client, 1) == ["warm"]
        used = (await admin.info("memory"))["used_memory"]
        await admin.config_set("maxmemory-policy", "noeviction")
        await admin.config_set("maxmemory", used + 300_000)
        try:
            payloads = [b"%d " % i + b"z" * 10_000 for i in range(count)]
            gathered = asyncio.ensure_future(
                asyncio.gather(*(publisher.pubsub.publish("x", p) for p in payloads), return_exceptions=True)
            )
            await wait_until(
                lambda: gathered.done() or bool(messages(caplog, logging.WARNING, "takes no messages")),
                "Redis to refuse for lack of memory",
            )
            assert not gathered.done(), gathered.result()
            assert publisher.pubsub.buffered > 0
        finally:
            await admin.config_set("maxmemory", 0)
        assert await asyncio.wait_for(gathered, 5.0) == [None] * count
        assert await receive(client, count) == payloads
        assert reader.pubsub.counters.missed == 0


@needs_redis
@run
async def test_a_permanent_refusal_fails_its_publish(redis_server: RedisServer) -> None:
    async with contextlib.AsyncExitStack() as stack:
        admin = await stack.enter_async_context(redis_client(redis_server))
        this = await stack.enter_async_context(node(redis_server.url))
        client = await subscriber(stack, this.uri, "x")
        await admin.set(STREAM, "not a stream")
        with pytest.raises(PubSubError, match="Redis refused the message"):
            await this.pubsub.publish("x", "refused")
        await admin.delete(STREAM)
        await this.pubsub.publish("x", "taken")
        assert await receive(client, 1) == ["taken"]


# --- subscribe after unsubscribe_all -----------------------------------------------------


@run
async def test_subscribing_again_does_not_grow_close_callbacks() -> None:
    pubsub = fastws.PubSub()
    connections: List[Any] = []

    async def handler(websocket: Any) -> None:
        connections.append(websocket)
        await websocket.wait_closed()

    async with pubsub, server(handler) as (_, uri):
        async with fastws.connect(uri) as client:
            await wait_until(lambda: bool(connections), "the server's connection")
            connection = connections[0]
            pubsub.subscribe(connection, "room")
            # No public API counts a connection's close callbacks: the future
            # behind add_close_callback() is looked at.
            callbacks = len(connection._closed._callbacks)
            for _ in range(1000):
                pubsub.unsubscribe_all(connection)
                pubsub.subscribe(connection, "room")
            assert len(connection._closed._callbacks) == callbacks
            await pubsub.publish("room", "still delivered")
            assert await asyncio.wait_for(client.recv(), 5.0) == "still delivered"
        await wait_until(lambda: not pubsub.subscribers("room"), "the closed connection to leave")


# --- a subscriber reset by its peer, in a synchronous burst ------------------------------


async def reset_peer(handler: Any, burst: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A raw client completes the handshake, then resets its TCP connection
    (SO_LINGER 0); before the loop sees it, ``burst()`` writes to it 50 times."""
    accepted: asyncio.Future = asyncio.get_running_loop().create_future()

    async def serve(websocket: Any) -> None:
        handler(websocket)
        accepted.set_result(websocket)
        await websocket.wait_closed()

    async with server(serve) as (_, uri):
        port = int(uri.rsplit(":", 1)[1].strip("/"))
        raw = socket.create_connection(("127.0.0.1", port))
        try:
            raw.sendall(HANDSHAKE)
            connection = await asyncio.wait_for(accepted, 5.0)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            raw.close()  # RST: the server's kernel knows at once, its loop not yet
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            for _ in range(50):
                burst()
            await asyncio.wait_for(connection.wait_closed(), 5.0)
    floods = [r for r in caplog.records if "socket.send() raised exception" in r.getMessage()]
    assert len(floods) <= 1, f"{len(floods)} warnings"


@run
async def test_pubsub_passes_over_a_reset_subscriber(caplog: pytest.LogCaptureFixture) -> None:
    pubsub = fastws.PubSub()
    async with pubsub:
        await reset_peer(
            lambda websocket: pubsub.subscribe(websocket, "room"),
            lambda: pubsub.publish_nowait("room", "m"),
            caplog,
        )
        # The first write is the one that meets the reset (transport.write()
        # cannot tell): it counts; the 49 after it, to a closing transport, not.
        assert pubsub.counters.delivered <= 1


@run
async def test_broadcast_passes_over_a_reset_connection(caplog: pytest.LogCaptureFixture) -> None:
    connections: List[Any] = []
    await reset_peer(connections.append, lambda: fastws.broadcast(connections, "m"), caplog)


# --- URLs and arguments ------------------------------------------------------------------


SECRET_URL = "redis://alice:s3cret@127.0.0.1:{port}/0?password=x"


@needs_redis
@run
async def test_credentials_never_show(caplog: pytest.LogCaptureFixture) -> None:
    url = SECRET_URL.format(port=free_port())  # nothing listens there
    pubsub = fastws.PubSub(url)
    shown = [repr(pubsub)]
    with pytest.raises(PubSubError) as raised:
        await pubsub.start()
    shown.append(str(raised.value))
    with pytest.raises(ValueError) as refused:
        fastws.PubSub(url.replace("redis://", "http://"))
    shown.append(str(refused.value))
    with pytest.raises(ValueError) as refused:
        fastws.PubSub(url.replace("redis://", "redis:/"))  # not a URL, credentials all the same
    shown.append(str(refused.value))
    shown.extend(r.getMessage() for r in caplog.records)
    for text in shown:
        assert "s3cret" not in text and "password=x" not in text, text
    assert "127.0.0.1" in shown[1]


@needs_redis
@run
async def test_the_scheme_is_case_insensitive(redis_server: RedisServer) -> None:
    url = redis_server.url.replace("redis://", "REDIS://")
    async with contextlib.AsyncExitStack() as stack:
        this = await stack.enter_async_context(node(url))
        client = await subscriber(stack, this.uri, "x")
        await this.pubsub.publish("x", "upper")
        assert await receive(client, 1) == ["upper"]


def test_close_timeout_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="close_timeout"):
        fastws.PubSub(close_timeout=-1)


@run
async def test_subscribe_on_a_closed_pubsub_is_refused() -> None:
    pubsub = fastws.PubSub()
    connections: List[Any] = []

    async def handler(websocket: Any) -> None:
        connections.append(websocket)
        await websocket.wait_closed()

    async with pubsub:
        pass
    async with server(handler) as (_, uri):
        async with fastws.connect(uri):
            await wait_until(lambda: bool(connections), "the server's connection")
            with pytest.raises(PubSubError, match="subscribe on a closed PubSub"):
                pubsub.subscribe(connections[0], "room")

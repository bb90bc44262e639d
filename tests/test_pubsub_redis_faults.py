"""fastws.PubSub when Redis goes away (issue #17, items 2 and 5): connections
to Redis dropped mid-stream, Redis killed and started again empty, publishing
while it is away (the bounded buffer), closing while it is away, and a reader
that falls further behind than the stream keeps; and a Redis that cannot be
reached (or trusted) at start.

The nodes and helpers are those of ``test_pubsub_redis.py``. A reader is
stopped without touching the PubSub's insides by running its node in a process
of its own and sending that process SIGSTOP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, List, Set

import pytest
from test_pubsub_redis import (
    CLOSE_BOUND,
    STREAM,
    WAIT,
    close_promptly,
    free_port,
    node,
    node_process,
    numbered,
    receive,
    receive_until,
    redis_client,
    subscriber,
    tls_redis,
    wait_for_redis,
    wait_until,
)

import fastws
from fastws.exceptions import PublishBufferFull, PubSubError

from asyncio_helpers import run
from redis_helpers import RedisServer, redis_available

pytestmark = pytest.mark.skipif(not redis_available(), reason="redis-server is not installed")


async def client_ids(admin: Any) -> Set[int]:
    """The ids of the clients connected to Redis, but ``admin``."""
    own = await admin.client_id()
    return {int(c["id"]) for c in await admin.client_list()} - {own}


def blocked_readers(count: int) -> Any:
    """A CLIENT LIST predicate: ``count`` clients wait in XREAD BLOCK."""
    return lambda clients: sum("b" in c["flags"] for c in clients) == count


class Publisher:
    """Publishes ``prefix:0`` ... ``prefix:count-1`` one after the other (each
    awaited) in a task; :attr:`halfway` is set when half of them are out."""

    def __init__(self, pubsub: Any, count: int, prefix: str = "a") -> None:
        self.halfway = asyncio.Event()
        self.task = asyncio.ensure_future(self._publish(pubsub, count, prefix))

    async def _publish(self, pubsub: Any, count: int, prefix: str) -> None:
        for i in range(count):
            if i == count // 2:
                self.halfway.set()
            await pubsub.publish("x", f"{prefix}:{i}")


# --- connections to Redis dropped --------------------------------------------------------


@pytest.mark.parametrize("dropped", ["all", "publisher's", "reader's"])
@run
async def test_dropped_redis_connections_lose_nothing(redis_server: RedisServer, dropped: str) -> None:
    count = 300
    async with redis_client(redis_server) as admin, contextlib.AsyncExitStack() as stack:
        b = await stack.enter_async_context(node(redis_server.url))
        await wait_for_redis(admin, blocked_readers(1), "b's reader in XREAD")
        ids_of_b = await client_ids(admin)
        a = await stack.enter_async_context(node(redis_server.url))
        client = await subscriber(stack, b.uri, "x")
        publisher = Publisher(a.pubsub, count)
        await publisher.halfway.wait()
        # Mid-stream: a's publishes go on while the connections are cut
        # (whether a command was under way on them then is left to chance).
        if dropped == "all":
            await admin.client_kill_filter(_type="normal")  # every client but admin
        else:
            clients = [c for c in await admin.client_list() if int(c["id"]) in await client_ids(admin)]
            if dropped == "publisher's":  # a's connections but its reader
                killed = [c for c in clients if int(c["id"]) not in ids_of_b and c["cmd"] != "xread"]
            else:
                killed = [c for c in clients if int(c["id"]) in ids_of_b and c["cmd"] == "xread"]
            assert killed, clients
            for c in killed:
                await admin.client_kill_filter(_id=c["id"])
        assert not publisher.task.done()
        assert await receive(client, count) == numbered("a", range(count))
        await asyncio.wait_for(publisher.task, WAIT)
        await a.pubsub.publish("x", "a:end")
        assert await receive(client, 1) == ["a:end"]
        assert (b.pubsub.counters.received, b.pubsub.counters.missed) == (count + 1, 0)


@pytest.mark.parametrize("dropped", ["publisher's", "reader's"])
@run
async def test_reconnections_are_counted(redis_server: RedisServer, dropped: str) -> None:
    # The connection is cut between two commands (the publisher's) or while
    # it waits in XREAD BLOCK (the reader's): either way it is made again, once.
    async with redis_client(redis_server) as admin, contextlib.AsyncExitStack() as stack:
        b = await stack.enter_async_context(node(redis_server.url))
        await wait_for_redis(admin, blocked_readers(1), "b's reader in XREAD")
        ids_of_b = await client_ids(admin)
        a = await stack.enter_async_context(node(redis_server.url))
        client = await subscriber(stack, b.uri, "x")
        await a.pubsub.publish("x", "a:1")
        assert await receive(client, 1) == ["a:1"]
        await wait_for_redis(admin, blocked_readers(2), "both readers in XREAD")
        clients = [c for c in await admin.client_list() if int(c["id"]) in await client_ids(admin)]
        if dropped == "publisher's":
            killed = [c for c in clients if int(c["id"]) not in ids_of_b and c["cmd"] != "xread"]
        else:
            killed = [c for c in clients if int(c["id"]) in ids_of_b and c["cmd"] == "xread"]
        assert killed, clients
        for c in killed:
            await admin.client_kill_filter(_id=c["id"])
        if dropped == "reader's":
            await wait_for_redis(admin, blocked_readers(2), "b's reader back in XREAD")
        await a.pubsub.publish("x", "a:2")
        assert await receive(client, 1) == ["a:2"]
        reconnected, other = (a, b) if dropped == "publisher's" else (b, a)
        assert (reconnected.pubsub.counters.reconnections, other.pubsub.counters.reconnections) == (1, 0)


# --- Redis killed and started again (empty) ----------------------------------------------


@run
async def test_redis_restarted_mid_stream_loses_nothing(redis_server: RedisServer) -> None:
    count = 300
    async with node(redis_server.url) as b, node(redis_server.url) as a:
        async with contextlib.AsyncExitStack() as stack:
            client = await subscriber(stack, b.uri, "x")
            publisher = Publisher(a.pubsub, count)
            await publisher.halfway.wait()
            redis_server.kill()
            await wait_until(lambda: a.pubsub.buffered > 0, "a publish waiting for Redis")
            assert not publisher.task.done()
            redis_server.start()
            assert await receive(client, count) == numbered("a", range(count))
            await asyncio.wait_for(publisher.task, WAIT)
            await a.pubsub.publish("x", "a:end")
            assert await receive(client, 1) == ["a:end"]
        assert a.pubsub.counters.reconnections >= 1
        assert (b.pubsub.counters.received, b.pubsub.counters.missed) == (count + 1, 0)
        assert a.pubsub.buffered == 0


@pytest.mark.parametrize("after_restart", [10, 0], ids=["publishing", "idle"])
@run
async def test_redis_restart_replays_what_it_lost(redis_server: RedisServer, after_restart: int) -> None:
    # p's reader is stopped, so a's messages 2..10 are only in Redis (1 went
    # out to p's waiting XREAD) when Redis dies with them. a publishes them
    # again from its replay window once it finds a new Redis: whether it goes
    # on publishing (the new ones then follow) or has nothing more to say.
    before = 10
    async with redis_client(redis_server) as admin:
        async with node(redis_server.url) as a, node_process(redis_server.url) as p:
            async with contextlib.AsyncExitStack() as stack:
                client = await subscriber(stack, p.uri, "x")
                await wait_for_redis(admin, blocked_readers(2), "both readers in XREAD")
                p.stop()
                for i in range(1, before + 1):
                    await a.pubsub.publish("x", f"a:{i}")
                redis_server.kill()
                redis_server.start()
                for i in range(before + 1, before + after_restart + 1):
                    await asyncio.wait_for(a.pubsub.publish("x", f"a:{i}"), WAIT)
                p.cont()
                everything = numbered("a", range(1, before + after_restart + 1))
                assert await receive(client, len(everything)) == everything
                await a.pubsub.publish("x", "a:end")
                assert await receive(client, 1) == ["a:end"]
                counters = await p.counters()
                assert (counters["received"], counters["missed"]) == (len(everything) + 1, 0)
                assert counters["duplicates"] >= 1  # a:1, read from the old Redis and replayed
                assert a.pubsub.counters.reconnections >= 1


# --- publishing while Redis is away ------------------------------------------------------


@run
async def test_publish_beyond_max_buffer_fails_at_once(redis_server: RedisServer) -> None:
    async with node(redis_server.url) as b, node(redis_server.url, max_buffer=3) as a:
        async with contextlib.AsyncExitStack() as stack:
            client = await subscriber(stack, b.uri, "x")
            redis_server.kill()
            waiting = [asyncio.ensure_future(a.pubsub.publish("x", f"a:{i}")) for i in (1, 2)]
            await wait_until(lambda: a.pubsub.buffered == 2, "two publishes waiting")
            a.pubsub.publish_nowait("x", "a:3")
            assert a.pubsub.buffered == 3
            with pytest.raises(PublishBufferFull) as raised:
                await asyncio.wait_for(a.pubsub.publish("x", "a:4"), WAIT)
            assert str(raised.value) == (
                f"3 messages (12 bytes) are waiting for Redis at {redis_server.url} already (max_buffer=3,"
                " max_buffer_bytes=67108864): Redis is away or slower than the publishers"
            )
            with pytest.raises(PublishBufferFull, match=r"\(max_buffer=3,"):
                a.pubsub.publish_nowait("x", "a:4")
            assert a.pubsub.buffered == 3
            assert not any(task.done() for task in waiting)
            redis_server.start()
            await asyncio.wait_for(asyncio.gather(*waiting), WAIT)
            await a.pubsub.publish("x", "a:end")
            assert await receive_until(client, "a:end") == ["a:1", "a:2", "a:3", "a:end"]
        assert a.pubsub.counters.published == 4
        assert (b.pubsub.counters.received, b.pubsub.counters.missed) == (4, 0)


@run
async def test_publish_beyond_max_buffer_bytes_fails_at_once(redis_server: RedisServer) -> None:
    # A message counts its payload and its topic ("x": 1 byte).
    async with node(redis_server.url) as b, node(redis_server.url, max_buffer_bytes=100) as a:
        async with contextlib.AsyncExitStack() as stack:
            client = await subscriber(stack, b.uri, "x")
            redis_server.kill()
            first = asyncio.ensure_future(a.pubsub.publish("x", "1" * 59))  # 60 bytes
            await wait_until(lambda: a.pubsub.buffered == 1, "a publish waiting")
            with pytest.raises(PublishBufferFull) as raised:
                await asyncio.wait_for(a.pubsub.publish("x", b"2" * 50), WAIT)  # 51 more: 111 > 100
            assert str(raised.value).startswith(
                f"1 messages (60 bytes) are waiting for Redis at {redis_server.url} already"
                " (max_buffer=10000, max_buffer_bytes=100): "
            )
            with pytest.raises(PublishBufferFull, match=r" max_buffer_bytes=100\)"):
                a.pubsub.publish_nowait("x", "2" * 50)
            a.pubsub.publish_nowait("x", "3" * 39)  # 40 more: 100, the bound itself
            assert a.pubsub.buffered == 2
            redis_server.start()
            await asyncio.wait_for(first, WAIT)
            await a.pubsub.publish("x", "end")
            assert await receive_until(client, "end") == ["1" * 59, "3" * 39, "end"]


@run
async def test_close_while_redis_is_away_fails_waiting_publishes(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    close_timeout = 0.3
    async with node(redis_server.url, close_timeout=close_timeout) as a:
        redis_server.kill()
        waiting = [asyncio.ensure_future(a.pubsub.publish("x", f"a:{i}")) for i in range(2)]
        await wait_until(lambda: a.pubsub.buffered == 2, "two publishes waiting")
        a.pubsub.publish_nowait("x", "a:2")
        loop = asyncio.get_running_loop()
        started = loop.time()
        with caplog.at_level(logging.ERROR, logger="fastws.pubsub"):
            await close_promptly(a.pubsub, close_timeout + CLOSE_BOUND)
        assert loop.time() - started >= close_timeout
        for task in waiting:
            with pytest.raises(PubSubError) as raised:
                await task
            assert str(raised.value) == "the PubSub closed before Redis took the message"
            assert not isinstance(raised.value, PublishBufferFull)
        assert a.pubsub.buffered == 0
        assert [r.getMessage() for r in caplog.records if r.name == "fastws.pubsub" and r.levelno >= logging.ERROR] == [
            f"closed with 3 messages Redis never took (at {redis_server.url})"
        ]
        with pytest.raises(PubSubError, match=r"^publish on a closed PubSub$"):
            await a.pubsub.publish("x", "late")


# --- a reader further behind than the stream keeps ---------------------------------------


def runs(numbers: List[int]) -> List[List[int]]:
    """``numbers`` cut into runs of consecutive integers."""
    cut: List[List[int]] = []
    for number in numbers:
        if cut and number == cut[-1][-1] + 1:
            cut[-1].append(number)
        else:
            cut.append([number])
    return cut


@run
async def test_a_reader_far_behind_skips_ahead_and_counts_what_it_missed(redis_server: RedisServer) -> None:
    retention, count = 100, 3000
    async with redis_client(redis_server) as admin:
        async with node(redis_server.url, retention=retention) as a, node_process(redis_server.url) as p:
            async with contextlib.AsyncExitStack() as stack:
                client = await subscriber(stack, p.uri, "x")
                await wait_for_redis(admin, blocked_readers(2), "both readers in XREAD")
                p.stop()
                for i in range(1, count):
                    a.pubsub.publish_nowait("x", f"a:{i}")
                await a.pubsub.publish("x", f"a:{count}")
                # The stream stays about retention long (MAXLEN ~ trims whole
                # nodes of stream-node-max-entries, 100 by default).
                kept = await admin.xlen(STREAM)
                assert retention <= kept < retention + 100
                p.cont()
                received = await receive_until(client, f"a:{count}")
                # p read a:1 (sent to its waiting XREAD before it stopped),
                # maybe a few more, then what the stream still holds.
                first, *rest = runs([int(m.split(":")[1]) for m in received])
                assert first[0] == 1
                assert rest == [list(range(count - kept + 1, count + 1))]
                counters = await p.counters()
                assert counters["received"] == len(received)
                assert counters["missed"] == count - len(received)
                assert counters["duplicates"] == 0
                # It reads on from there as usual.
                await a.pubsub.publish("x", "a:end")
                assert await receive(client, 1) == ["a:end"]


# --- Redis unreachable at start ------------------------------------------------------


@run
async def test_tls_with_an_untrusted_certificate_fails_at_start() -> None:
    with tls_redis() as redis:
        pubsub = fastws.PubSub(redis.url, stream=STREAM)  # no ssl_ca_certs: the CA is unknown
        with pytest.raises(PubSubError) as raised:
            await pubsub.start()
        assert str(raised.value).startswith(f"cannot reach Redis at {redis.url}: ")
        assert "certificate" in str(raised.value).lower()


#: URLs with credentials, and the part that errors and reprs show of them.
CREDENTIALS = [
    ("redis://127.0.0.1:{port}/0", "redis://127.0.0.1:{port}/0"),
    ("redis://alice:s3cret@127.0.0.1:{port}/0", "redis://127.0.0.1:{port}/0"),
    ("redis://:s3cret@127.0.0.1:{port}/0", "redis://127.0.0.1:{port}/0"),
    ("redis://alice:p%40s3cret@127.0.0.1:{port}/0", "redis://127.0.0.1:{port}/0"),
    ("redis://127.0.0.1:{port}/0?password=s3cret", "redis://127.0.0.1:{port}/0"),
    ("unix://:s3cret@/nonexistent-fastws/redis.sock", "unix:///nonexistent-fastws/redis.sock"),
    ("unix:///nonexistent-fastws/redis.sock?db=0&password=s3cret", "unix:///nonexistent-fastws/redis.sock"),
]


@pytest.mark.parametrize("url, shown", CREDENTIALS, ids=[
    "plain", "user-password", "password", "quoted-password", "password-query", "unix-password", "unix-password-query"
])
@run
async def test_unreachable_redis_at_start_names_the_url_without_credentials(url: str, shown: str) -> None:
    port = free_port()  # nothing listens there
    url, shown = url.format(port=port), shown.format(port=port)
    pubsub = fastws.PubSub(url, stream=STREAM)
    with pytest.raises(PubSubError) as raised:
        await pubsub.start()
    message = str(raised.value)
    assert message.startswith(f"cannot reach Redis at {shown}"), message
    assert repr(pubsub).startswith(f"<PubSub {shown}"), repr(pubsub)
    for secret in ("s3cret", "alice"):
        assert secret not in message
        assert secret not in repr(pubsub)
    # Not started: publishing fails; closing is harmless.
    with pytest.raises(PubSubError, match=r"^publish before start"):
        await pubsub.publish("x", "x")
    await pubsub.close()

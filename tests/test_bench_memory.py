"""What an open, idle server connection holds (issue #18, idle memory), checked
without timing: no zlib stream before the first compressed message, no queue
for recv() while nothing waits in it, one coroutine for a handler waiting in
``async for``, no per-connection identifier or logger adapter until asked
for, a protocol without an instance dict of its own; and the memory
benchmark's measure end to end (``bench.memory``)."""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import os
import tempfile
import uuid
from typing import Any, ClassVar, List

import pytest

import fastws
from fastws.protocol import SERVER, Protocol, ServerProtocol

from asyncio_helpers import listener_server, run, server


def _referents(obj: Any) -> List[Any]:
    """What ``obj`` refers to directly, its instance dict's values included."""
    found = list(gc.get_referents(obj))
    if hasattr(obj, "__dict__"):
        found += list(vars(obj).values())
    return found


def _zlib_streams(extension: Any) -> List[Any]:
    """The compressors and decompressors an extension holds (any backend's:
    objects with ``flush`` and ``compress`` or ``decompress`` that are not
    classes, modules or functions)."""
    streams = []
    for obj in _referents(extension):
        if isinstance(obj, type) or callable(obj) and not hasattr(obj, "flush"):
            continue
        if hasattr(obj, "flush") and (hasattr(obj, "compress") or hasattr(obj, "decompress")):
            streams.append(obj)
    return streams


class Opened(fastws.Listener):
    """Keeps the server's connections, and the messages they get."""

    connections: ClassVar[List[Any]] = []
    opened: ClassVar[asyncio.Event]

    def on_open(self, connection: Any) -> None:
        type(self).connections.append(connection)
        type(self).opened.set()

    def on_message(self, connection: Any, message: Any) -> None:
        connection.send_nowait(message)


async def _listener_connection(srv_uri: str, **options: Any) -> tuple:
    Opened.connections = []
    Opened.opened = asyncio.Event()
    client = await fastws.connect(srv_uri, ping_interval=None, **options)
    await Opened.opened.wait()
    return client, Opened.connections[0]


@pytest.mark.parametrize("compression", [None, "deflate"])
@run
async def test_an_idle_listener_connection_holds_no_zlib_stream_until_a_compressed_message(compression):
    async with listener_server(Opened, compression=compression) as (_, uri):
        client, conn = await _listener_connection(uri, compression=compression)
        try:
            extensions = conn.protocol.extensions
            if compression is None:
                assert extensions == []
                return
            (ext,) = extensions
            assert ext.name == "permessage-deflate"
            assert _zlib_streams(ext) == []
            # The first compressed message each way makes them: the check above can fail.
            message = "hello, compression " * 20
            await client.send(message)
            assert await client.recv() == message
            assert len(_zlib_streams(ext)) == 2
        finally:
            await client.close()


@run
async def test_recv_has_no_queue_while_nothing_waits_in_it():
    arrived = asyncio.Event()
    conns: List[Any] = []
    release = asyncio.Event()

    async def handler(websocket):
        conns.append(websocket)
        arrived.set()
        await release.wait()  # not in recv(): messages must queue
        assert await websocket.recv() == "one"
        assert await websocket.recv() == "two"
        await websocket.send("done")
        async for _ in websocket:
            pass

    async with server(handler) as (_, uri):
        async with fastws.connect(uri, ping_interval=None) as client:
            await arrived.wait()
            conn = conns[0]
            assert not any(type(obj) is collections.deque for obj in _referents(conn))
            await client.send("one")
            await client.send("two")
            pong = await client.ping()
            await pong  # it comes after both messages: they are queued by then
            assert any(type(obj) is collections.deque for obj in _referents(conn))
            release.set()
            assert await client.recv() == "done"
            assert not any(type(obj) is collections.deque for obj in _referents(conn))


@run
async def test_a_handler_waiting_in_async_for_holds_one_coroutine_for_the_wait():
    conns: List[Any] = []
    waiting = asyncio.Event()

    async def handler(websocket):
        conns.append(websocket)
        waiting.set()
        async for message in websocket:
            await websocket.send(message)

    async with server(handler) as (_, uri):
        async with fastws.connect(uri, ping_interval=None) as client:
            await waiting.wait()
            await client.send("x")
            assert await client.recv() == "x"  # the handler is back in async for
            task = conns[0].handler_task
            chain = []
            awaited: Any = task.get_coro()
            while awaited is not None and hasattr(awaited, "cr_await"):
                chain.append(awaited.cr_code.co_name)
                awaited = awaited.cr_await
            # _run_handler awaits the handler, which awaits __anext__'s
            # coroutine, which awaits recv()'s future itself.
            assert chain == ["_run_handler", "handler", "_next_message"]
            assert awaited is not None and not asyncio.iscoroutine(awaited)  # the future's iterator
        # A normal close ends the async for.
        await asyncio.wait_for(task, 5)


@run
async def test_id_and_logger_are_made_when_first_read():
    async with listener_server(Opened) as (_, uri):
        client, conn = await _listener_connection(uri)
        try:
            held = _referents(conn)
            assert not any(isinstance(obj, (uuid.UUID, logging.LoggerAdapter)) for obj in held)
            ident = conn.id
            assert isinstance(ident, uuid.UUID) and ident.version == 4
            assert conn.id is ident
            assert client.id != ident
            adapter = conn.logger
            assert isinstance(adapter, logging.LoggerAdapter)
            assert adapter.extra == {"websocket": conn}
            assert adapter.logger.name == "fastws.server"
            assert conn.logger is adapter
            # assignable, as websockets' Connection.id is
            mine = uuid.UUID(int=7)
            conn.id = mine
            assert conn.id is mine
        finally:
            await client.close()


def test_the_protocol_keeps_its_state_in_slots():
    assert not hasattr(Protocol(SERVER), "__dict__")
    server_protocol = ServerProtocol()
    own = vars(server_protocol)
    assert own.keys().isdisjoint(Protocol.__slots__)
    # CPython shares the keys of instance dicts up to 30 of them; past that,
    # each instance holds a table of its own (about 1.5 KiB here).
    assert len(own) < 30


# --- bench.memory, end to end --------------------------------------------------------


def test_bench_memory_measures_a_stack_with_deflate_negotiated():
    from bench.memory import measure

    with tempfile.TemporaryDirectory() as logs:
        sample = measure("fastws-listener", 30, deflate=True, warmup=5, log_dir=logs)
    assert sample.connections == 30
    assert sample.negotiated == 30
    assert sample.rss_before_kib > 0 and sample.rss_after_kib > 0
    assert sample.kib_per_connection == (sample.rss_after_kib - sample.rss_before_kib) / 30


def test_bench_memory_refuses_a_measure_without_the_extension():
    from bench.memory import MeasureError, measure

    # The floor answers any request with a 101 that negotiates nothing.
    with tempfile.TemporaryDirectory() as logs:
        with pytest.raises(MeasureError, match="permessage-deflate negotiated on 0 of 15"):
            measure("floor", 10, deflate=True, warmup=5, log_dir=logs)
        assert os.listdir(logs)  # the processes' stderr is kept there


def test_bench_memory_extra_figures_are_the_medians_of_the_runs(monkeypatch, tmp_path):
    # The RSS readings and opening times beside the measure are every run's
    # median, as the measure's own figure is, not the last run's.
    import statistics

    import bench.memory as group
    from bench.results import Context

    samples: List[Any] = []
    real = group.measure

    def recorded(*args: Any, **kwargs: Any) -> Any:  # the real measure, its samples kept
        sample = real(*args, **kwargs)
        samples.append(sample)
        return sample

    monkeypatch.setattr(group, "measure", recorded)
    result = group.run_group(Context(mode="quick", out_dir=str(tmp_path)), stacks=(group.FLOOR,), connections=300,
                             repeats=3)  # fmt: skip
    (idle, _) = result.measures
    label = group.LABELS[group.FLOOR]
    assert idle.samples[label] == [round(s.kib_per_connection, 3) for s in samples]
    assert idle.extra[label] == {
        "server RSS before (MiB)": round(statistics.median(s.rss_before_kib / 1024 for s in samples), 1),
        "server RSS after (MiB)": round(statistics.median(s.rss_after_kib / 1024 for s in samples), 1),
        "opened in (s)": round(statistics.median(s.open_seconds for s in samples), 2),
    }

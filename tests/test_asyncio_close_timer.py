"""The close timeout of a server's connections runs on one timer for all of
them (``CloseTimer``): each connection is still cut at its own deadline."""

from __future__ import annotations

import asyncio
from typing import Any, List

import fastws
from fastws.asyncio.server_connection import CloseTimer

from asyncio_helpers import raw_client, read_frame, run, server


async def closer(websocket: Any) -> None:
    await websocket.close()


async def _unanswered_close(uri: str) -> tuple:
    """A client that gets the server's close frame and never answers it:
    (time the close frame came, time the server hung up)."""
    loop = asyncio.get_running_loop()
    reader, writer = await raw_client(uri)
    opcode, _, _ = await read_frame(reader)
    assert opcode == 8
    received = loop.time()
    assert await reader.read() == b""
    closed = loop.time()
    writer.close()
    return received, closed


@run
async def test_each_connection_is_cut_at_its_own_close_deadline():
    timeout = 0.3
    async with server(closer, close_timeout=timeout) as (srv, uri):
        assert isinstance(srv._close_timer, CloseTimer)
        first = asyncio.ensure_future(_unanswered_close(uri))
        await asyncio.sleep(timeout / 2)  # the second closes later
        second = asyncio.ensure_future(_unanswered_close(uri))
        (got1, cut1), (got2, cut2) = await asyncio.wait_for(asyncio.gather(first, second), 5)
        assert cut1 - got1 >= timeout - 0.05 and cut2 - got2 >= timeout - 0.05
        assert cut1 < cut2
        # A connection closed properly meanwhile leaves nothing behind.
        async with fastws.connect(uri) as websocket:
            assert [m async for m in websocket] == []
        assert srv._close_timer.deadlines == {}


@run
async def test_close_timeout_changed_by_a_connection_gets_its_own_timer():
    class Impatient(fastws.ServerConnection):
        def connection_made(self, transport: Any) -> None:
            self.close_timeout = 0.1
            super().connection_made(transport)

    async with server(closer, close_timeout=30, create_connection=Impatient) as (srv, uri):
        got, cut = await asyncio.wait_for(_unanswered_close(uri), 5)
        assert 0.08 <= cut - got < 5
        assert srv._close_timer.deadlines == {} and not srv._close_timer.armed


@run
async def test_the_shared_close_timer_stops_with_the_server():
    async with server(closer, close_timeout=30) as (srv, uri):
        async with fastws.connect(uri) as websocket:
            assert [m async for m in websocket] == []
    assert not srv._close_timer.armed and srv._close_timer.deadlines == {}


class _Stage:
    """Stands for a connection in the timer: watched again when first cut,
    as a connection is for the second stage of its close."""

    def __init__(
        self, timer: CloseTimer, loop: asyncio.AbstractEventLoop, cuts: List[Any], done: asyncio.Event
    ) -> None:
        self.timer, self.loop, self.cuts, self.stage = timer, loop, cuts, 0
        self.done = done

    def _close_timed_out(self) -> None:
        self.cuts.append((self, self.stage))
        if len(self.cuts) == 4:
            self.done.set()
        self.stage += 1
        if self.stage == 1:
            self.timer.watch(self, self.loop)  # type: ignore[arg-type]


class _CountingTimer(CloseTimer):
    __slots__ = ("runs",)

    def _expired(self, loop: asyncio.AbstractEventLoop) -> None:
        self.runs += 1
        super()._expired(loop)


@run
async def test_a_connection_watched_again_when_cut_keeps_one_timer_for_all():
    loop = asyncio.get_running_loop()
    timer = _CountingTimer(0.05)
    timer.runs = 0
    cuts: List[Any] = []
    done = asyncio.Event()
    a, b = _Stage(timer, loop, cuts, done), _Stage(timer, loop, cuts, done)
    timer.watch(a, loop)  # type: ignore[arg-type]
    await asyncio.sleep(0.02)
    timer.watch(b, loop)  # type: ignore[arg-type]
    await asyncio.wait_for(done.wait(), 5)
    assert cuts == [(a, 0), (b, 0), (a, 1), (b, 1)]
    assert timer.deadlines == {} and not timer.armed
    # One run per deadline at most: a timer set again while a connection was
    # cut, besides the one for the next deadline, would run once more (within
    # one timeout of the last cut).
    await asyncio.sleep(0.1)
    assert timer.runs <= 4

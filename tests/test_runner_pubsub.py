"""``python -m fastws run --pubsub URL``: every worker has its own started
PubSub on one real Redis, so a client on one worker receives what a client on
another publishes; in both modes of the runner."""

from __future__ import annotations

import asyncio
import socket

import pytest

import fastws
from fastws import CloseCode

from asyncio_helpers import run
from runner_helpers import STEP, start_runner

MODES = pytest.mark.parametrize("mode", ["--reuse-port", "--no-reuse-port"], ids=["reuse_port", "parent_accept"])


async def join(uri: str):
    """A client of the "room" handler: (websocket, its worker's pid) once subscribed."""
    websocket = await fastws.connect(uri, ping_interval=None)
    return websocket, int(await asyncio.wait_for(websocket.recv(), STEP))


@MODES
@run
async def test_a_client_receives_what_a_client_on_another_worker_publishes(mode, redis_server):
    async with start_runner(
        "runner_helpers:room", "--port", "0", "--workers", "2", mode, "--pubsub", redis_server.url
    ) as runner:
        a, pid_a = await join(runner.uri)
        for _ in range(60):  # until a client lands on the other worker
            b, pid_b = await join(runner.uri)
            if pid_b != pid_a:
                break
            await b.close()
        assert pid_b != pid_a
        assert {pid_a, pid_b} == set(runner.workers().values())
        await b.send("from b")
        assert await asyncio.wait_for(a.recv(), STEP) == "from b"
        assert await asyncio.wait_for(b.recv(), STEP) == "from b"
        await a.send(b"from a")
        assert await asyncio.wait_for(b.recv(), STEP) == b"from a"
        assert await asyncio.wait_for(a.recv(), STEP) == b"from a"
        await a.close()
        await b.close()


@run
async def test_without_pubsub_there_is_no_current_pubsub():
    async with start_runner("runner_helpers:room", "--port", "0", "--workers", "1") as runner:
        websocket = await fastws.connect(runner.uri, ping_interval=None)
        with pytest.raises(fastws.ConnectionClosedError) as info:
            await asyncio.wait_for(websocket.recv(), STEP)
        assert info.value.rcvd.code == CloseCode.INTERNAL_ERROR
        await runner.wait_line(lambda line: "LookupError: no PubSub was started" in line)


@run
async def test_a_bad_pubsub_url_is_refused_before_starting():
    async with start_runner(
        "runner_helpers:room", "--port", "0", "--pubsub", "http://redis/", listening=False
    ) as runner:
        assert await runner.exit_status() == 1
        assert "fastws run: expected a redis://, rediss:// or unix:// URL, got 'http://redis/'" in runner.stderr


@run
async def test_a_worker_that_cannot_reach_redis_is_retried_then_given_up():
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    async with start_runner(
        "runner_helpers:room", "--port", "0", "--workers", "1",
        "--pubsub", f"redis://127.0.0.1:{port}/0", listening=False,
    ) as runner:
        assert await runner.exit_status() == 1
        assert "worker 1 cannot start its PubSub" in runner.stderr
        assert "giving up" in runner.stderr
        assert "Traceback" not in runner.stderr

"""Handlers that tests/test_runner*.py run in ``python -m fastws run`` workers,
and helpers to drive the runner as a real process."""

from __future__ import annotations

import os
import time

import fastws


async def echo_pid(websocket) -> None:
    """Answer every message with the worker's pid."""
    async for _ in websocket:
        await websocket.send(str(os.getpid()))


class PidListener(fastws.Listener):
    """The same as echo_pid, with the callback interface."""

    def on_message(self, connection, message) -> None:
        connection.send_nowait(f"listener {os.getpid()}")


async def block_loop(websocket) -> None:
    """Blocks its worker's event loop on the first message: SIGTERM cannot stop it."""
    async for _ in websocket:
        await websocket.send(str(os.getpid()))
        time.sleep(60)


async def room(websocket) -> None:
    """Subscribe to "room", say the pid, publish every message received to "room"."""
    pubsub = fastws.current_pubsub()
    pubsub.subscribe(websocket, "room")
    await websocket.send(str(os.getpid()))
    async for message in websocket:
        await pubsub.publish("room", message)


not_a_handler = 42


# A worker that imports this module with FASTWS_TEST_RUNNER_EXIT=N set dies at
# once with status N, before it serves: how the tests make a worker that
# cannot start (the test process itself never has it set).
if os.environ.get("FASTWS_TEST_RUNNER_EXIT"):
    os._exit(int(os.environ["FASTWS_TEST_RUNNER_EXIT"]))

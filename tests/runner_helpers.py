"""Handlers that tests/test_runner*.py run in ``python -m fastws run`` workers,
and helpers to drive the runner as a real process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional

import fastws

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
STEP = 10.0  # seconds any one step may take
SERVING = re.compile(r"worker (\d+) \(pid (\d+)\) serving")


async def echo_pid(websocket) -> None:
    """Answer every message with the worker's pid."""
    async for _ in websocket:
        await websocket.send(str(os.getpid()))


async def loop_name(websocket) -> None:
    """Answer every message with the module of the worker's event loop class."""
    async for _ in websocket:
        await websocket.send(type(asyncio.get_running_loop()).__module__)


class PidListener(fastws.Listener):
    """The same as echo_pid, with the callback interface."""

    def on_message(self, connection, message) -> None:
        connection.send_nowait(f"listener {os.getpid()}")


async def block_loop(websocket) -> None:
    """Blocks its worker's event loop on the first message: SIGTERM cannot stop it."""
    async for _ in websocket:
        await websocket.send(str(os.getpid()))
        time.sleep(60)  # noqa: ASYNC251 - blocking the loop is the point


async def room(websocket) -> None:
    """Subscribe to "room", say the pid, publish every message received to "room"."""
    pubsub = fastws.current_pubsub()
    pubsub.subscribe(websocket, "room")
    await websocket.send(str(os.getpid()))
    async for message in websocket:
        await pubsub.publish("room", message)


not_a_handler = 42


class NotAListener:
    pass


# --- driving the runner ---------------------------------------------------------------


def _env(**extra: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), str(TESTS), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


class Runner:
    """A runner's process group: its stdout's first line and every stderr line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: List[str] = []
        self.changed = asyncio.Event()
        self.reader = asyncio.ensure_future(self._read())
        self.uri = ""

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.lines.append(line.decode(errors="replace").rstrip("\n"))
            self.changed.set()
        self.changed.set()

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    async def wait_line(self, predicate: Callable[[str], object], after: int = 0) -> str:
        """The first stderr line from index ``after`` on for which ``predicate`` is true."""

        async def wait() -> str:
            seen = after
            while True:
                for line in self.lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.lines)
                if self.reader.done():
                    raise AssertionError(f"no such line in stderr:\n{self.stderr}")
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(wait(), STEP)

    def workers(self) -> dict:
        """{worker index: pid} from the lines the workers logged when they served (latest wins)."""
        found = {}
        for line in self.lines:
            match = SERVING.search(line)
            if match:
                found[int(match.group(1))] = int(match.group(2))
        return found

    async def listening(self) -> str:
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), STEP)).decode()
        if not line.startswith("listening on ws://"):
            raise AssertionError(f"unexpected first line {line!r}; stderr:\n{self.stderr}")
        self.uri = line.split()[-1]
        return self.uri

    async def exit_status(self) -> int:
        status = await asyncio.wait_for(self.proc.wait(), STEP)
        await asyncio.wait_for(self.reader, STEP)
        return status

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)


@contextlib.asynccontextmanager
async def start_runner(*args: str, command: Optional[List[str]] = None, listening: bool = True, **env: str):
    """``python -m fastws run ARGS`` (or ``command``) in a session of its own."""
    if command is None:
        command = [sys.executable, "-m", "fastws", "run", *args]
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(ROOT),
        env=_env(**env),
        start_new_session=True,
    )
    runner = Runner(proc)
    try:
        if listening:
            await runner.listening()
        yield runner
    finally:
        runner.kill_group()
        await proc.wait()
        # Both pipes read to their end: the transport closes before the loop does.
        assert proc.stdout is not None
        await asyncio.wait_for(asyncio.gather(proc.stdout.read(), runner.reader), STEP)


# A worker that imports this module with FASTWS_TEST_RUNNER_EXIT=N set dies at
# once with status N, before it serves: how the tests make a worker that
# cannot start (the test process itself never has it set).
if os.environ.get("FASTWS_TEST_RUNNER_EXIT"):
    os._exit(int(os.environ["FASTWS_TEST_RUNNER_EXIT"]))

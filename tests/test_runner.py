"""``python -m fastws run`` and ``fastws.runner.run()``: real parent and worker
processes on loopback, in both modes (SO_REUSEPORT, the parent accepting);
every process group started here is killed at the end of its test."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import ssl
import sys
import textwrap

import pytest

import fastws
from fastws import CloseCode, ConnectionClosedOK
from fastws.runner import MAX_QUICK_DEATHS, handler_target
from fastws.runner import run as run_workers

import runner_helpers
from asyncio_helpers import run
from runner_helpers import ROOT, SERVING, STEP, start_runner

MODES = pytest.mark.parametrize("mode", ["--reuse-port", "--no-reuse-port"], ids=["reuse_port", "parent_accept"])

pytestmark = pytest.mark.skipif(not hasattr(socket, "send_fds"), reason="needs socket.send_fds")


async def ask(uri: str, message: str = "pid?") -> str:
    """One connection, one message, one answer."""
    async with fastws.connect(uri, ping_interval=None, open_timeout=STEP) as websocket:
        await websocket.send(message)
        return await asyncio.wait_for(websocket.recv(), STEP)


async def reach(uri: str, pids: set, attempts: int = 60) -> set:
    """Connect until every pid of ``pids`` answered (the kernel spreads
    SO_REUSEPORT connections by a hash of the client's port: each new
    connection reaches a given worker of 2 with probability 1/2)."""
    seen = set()
    for _ in range(attempts):
        seen.add(int((await ask(uri)).split()[-1]))
        if seen >= pids:
            break
    return seen


# --- the handler's name --------------------------------------------------------------


async def local_handler_factory():
    async def handler(websocket):
        pass

    return handler


@pytest.mark.parametrize(
    "handler, target",
    [
        (runner_helpers.echo_pid, "runner_helpers:echo_pid"),
        (runner_helpers.PidListener, "runner_helpers:PidListener"),
        ("runner_helpers:echo_pid", "runner_helpers:echo_pid"),
        ("package.module:Class.method", "package.module:Class.method"),
    ],
)
def test_handler_target(handler, target):
    assert handler_target(handler) == target


@pytest.mark.parametrize(
    "handler, error, match",
    [
        (lambda websocket: None, TypeError, "lambda or a function defined inside another"),
        (asyncio.run(local_handler_factory()), TypeError, "lambda or a function defined inside another"),
        (42, TypeError, "handler must be a coroutine function, a Listener subclass or 'MODULE:NAME'"),
        ("runner_helpers.echo_pid", ValueError, "handler must be 'MODULE:NAME'"),
        ("runner_helpers:", ValueError, "handler must be 'MODULE:NAME'"),
        (":echo_pid", ValueError, "handler must be 'MODULE:NAME'"),
    ],
)
def test_handler_target_refuses(handler, error, match):
    with pytest.raises(error, match=re.escape(match)):
        handler_target(handler)


def test_handler_target_refuses_an_impostor():
    async def echo_pid(websocket):
        pass

    echo_pid.__qualname__ = "echo_pid"
    echo_pid.__module__ = "runner_helpers"
    with pytest.raises(TypeError, match="runner_helpers:echo_pid is not it"):
        handler_target(echo_pid)


@pytest.mark.parametrize(
    "options, error, match",
    [
        (dict(workers=0), ValueError, "workers must be a positive integer, not 0"),
        (dict(workers=True), ValueError, "workers must be a positive integer, not True"),
        (dict(shutdown_timeout=0), ValueError, "shutdown_timeout must be positive, not 0"),
        (dict(pubsub=b"redis://"), TypeError, "pubsub must be a URL"),
        (dict(reuse_port=True, sock=None), TypeError, "run() sets 'sock' itself"),
        (dict(listener=object), TypeError, "run() sets 'listener' itself"),
        (dict(no_such_option=1), TypeError, "unexpected keyword argument 'no_such_option'"),
        (dict(max_size=-1), ValueError, "max_size"),
        (dict(loop="trio"), ValueError, "loop must be 'auto', 'asyncio' or 'uvloop', not 'trio'"),
        (dict(process_request=lambda connection, request: None), TypeError, "must be picklable"),
        (dict(ssl=ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)), TypeError, "terminate TLS in a reverse proxy"),
    ],
)
def test_run_refuses_bad_options_before_starting_anything(options, error, match):
    with pytest.raises(error, match=re.escape(match)):
        run_workers(runner_helpers.echo_pid, port=0, **options)


def test_cli_defaults():
    from fastws.__main__ import build_parser

    args = build_parser().parse_args(["run", "app:handler"])
    assert (args.handler, args.host, args.port, args.workers) == ("app:handler", "127.0.0.1", 8765, None)
    assert (args.pubsub, args.reuse_port, args.max_size, args.log_level) == (None, None, None, "info")
    assert args.loop == "auto"
    args = build_parser().parse_args(["run", "a:b", "--no-reuse-port", "--workers", "3", "--pubsub", "redis://h"])
    assert (args.reuse_port, args.workers, args.pubsub) == (False, 3, "redis://h")


# --- serving ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "loop, module",
    [("asyncio", "asyncio.unix_events"), ("uvloop", "uvloop"), ("auto", "uvloop")],
)
@run
async def test_the_workers_event_loop(loop, module):
    """--loop picks the workers' loop; auto is uvloop, installed with the test dependencies."""
    async with start_runner("runner_helpers:loop_name", "--port", "0", "--workers", "1", "--loop", loop) as runner:
        assert await ask(runner.uri) == module


@MODES
@run
async def test_connections_reach_every_worker(mode):
    async with start_runner("runner_helpers:echo_pid", "--port", "0", "--workers", "2", mode) as runner:
        assert runner.uri.startswith("ws://127.0.0.1:")
        workers = runner.workers()
        assert sorted(workers) == [1, 2], runner.stderr
        pids = set(workers.values())
        assert len(pids) == 2 and runner.proc.pid not in pids
        if mode == "--no-reuse-port":
            # The parent hands connections to the workers in turn.
            answers = [int(await ask(runner.uri)) for _ in range(4)]
            assert answers[0] != answers[1] and answers[:2] == answers[2:], answers
            assert set(answers) == pids
        else:
            assert await reach(runner.uri, pids) == pids
        # Several connections open at once, each answered by its own worker.
        websockets = [await fastws.connect(runner.uri, ping_interval=None) for _ in range(6)]
        for websocket in websockets:
            await websocket.send("pid?")
        assert {int(await websocket.recv()) for websocket in websockets} <= pids
        for websocket in websockets:
            await websocket.close()


@MODES
@run
async def test_listener_class(mode):
    async with start_runner(
        "runner_helpers:PidListener", "--port", "0", "--workers", "2", mode
    ) as runner:
        pids = set(runner.workers().values())
        answers = set()
        for _ in range(60):
            answer = await ask(runner.uri)
            assert answer.startswith("listener ")
            answers.add(int(answer.split()[1]))
            if answers == pids:
                break
        assert answers == pids


@run
async def test_max_size_reaches_the_workers():
    async with start_runner(
        "runner_helpers:echo_pid", "--port", "0", "--workers", "1", "--max-size", "10"
    ) as runner:
        async with fastws.connect(runner.uri, ping_interval=None) as websocket:
            await websocket.send("x" * 11)
            with pytest.raises(fastws.ConnectionClosedError) as info:
                await asyncio.wait_for(websocket.recv(), STEP)
        assert info.value.rcvd.code == CloseCode.MESSAGE_TOO_BIG


@MODES
@run
async def test_a_killed_worker_is_replaced(mode):
    async with start_runner("runner_helpers:echo_pid", "--port", "0", "--workers", "2", mode) as runner:
        workers = runner.workers()
        killed, survivor = workers[1], workers[2]
        mark = len(runner.lines)
        os.kill(killed, signal.SIGKILL)
        await runner.wait_line(
            lambda line: f"worker 1 (pid {killed}) died (killed by SIGKILL)" in line, mark
        )
        line = await runner.wait_line(lambda line: SERVING.search(line) and "worker 1 " in line, mark)
        replacement = int(SERVING.search(line).group(2))
        assert replacement not in (killed, survivor)
        assert await reach(runner.uri, {survivor, replacement}) == {survivor, replacement}
        assert runner.proc.returncode is None


@MODES
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("group", [False, True], ids=["parent", "group"])
@run
async def test_a_signal_closes_every_connection_with_1001(mode, signum, group):
    # To the parent alone, or to the whole group (Ctrl-C in a terminal, a
    # service manager): then each worker has it twice, from there and from the
    # parent, and still exits 0.
    async with start_runner("runner_helpers:echo_pid", "--port", "0", "--workers", "2", mode) as runner:
        pids = set(runner.workers().values())
        websockets, answered = [], set()
        for _ in range(60):  # connections open on both workers
            websocket = await fastws.connect(runner.uri, ping_interval=None)
            await websocket.send("pid?")
            answered.add(int(await websocket.recv()))
            websockets.append(websocket)
            if answered == pids and len(websockets) >= 4:
                break
        assert answered == pids
        if group:
            os.killpg(runner.proc.pid, signum)
        else:
            runner.proc.send_signal(signum)
        for websocket in websockets:
            with pytest.raises(ConnectionClosedOK) as info:
                await asyncio.wait_for(websocket.recv(), STEP)
            assert info.value.rcvd.code == CloseCode.GOING_AWAY
        assert await runner.exit_status() == 0, runner.stderr
        assert f"received {signum.name}" in runner.stderr
        assert "Traceback" not in runner.stderr
        assert "WARNING" not in runner.stderr


@MODES
@run
async def test_workers_stop_when_the_parent_is_killed(mode):
    async with start_runner("runner_helpers:echo_pid", "--port", "0", "--workers", "1", mode) as runner:
        websocket = await fastws.connect(runner.uri, ping_interval=None)
        await websocket.send("pid?")
        await websocket.recv()
        runner.proc.kill()  # the parent only: its worker finds its end of the channel closed
        with pytest.raises(ConnectionClosedOK) as info:
            await asyncio.wait_for(websocket.recv(), STEP)
        assert info.value.rcvd.code == CloseCode.GOING_AWAY


@run
async def test_workers_still_running_after_the_timeout_are_killed():
    async with start_runner(
        "runner_helpers:block_loop", "--port", "0", "--workers", "1", "--shutdown-timeout", "0.5"
    ) as runner:
        (pid,) = runner.workers().values()
        websocket = await fastws.connect(runner.uri, ping_interval=None)
        await websocket.send("block")
        assert int(await websocket.recv()) == pid  # its loop is blocked from now on
        runner.proc.send_signal(signal.SIGTERM)
        assert await runner.exit_status() == 1
        assert f"worker 1 (pid {pid}) still running 0.5 s after SIGTERM: killing it" in runner.stderr
        websocket.transport.abort()


# --- failures -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target, message",
    [
        (
            "no_such_module:handler",
            "cannot import handler 'no_such_module:handler': No module named 'no_such_module'",
        ),
        (
            "runner_helpers:missing",
            "cannot import handler 'runner_helpers:missing': module 'runner_helpers' has no 'missing'",
        ),
        (
            "runner_helpers:not_a_handler",
            "handler 'runner_helpers:not_a_handler' is a int, neither a coroutine function",
        ),
        (
            "runner_helpers:NotAListener",
            "handler 'runner_helpers:NotAListener' is a class but not a fastws.Listener subclass",
        ),
        ("runner_helpers", "fastws run: handler must be 'MODULE:NAME', not 'runner_helpers'"),
    ],
)
@MODES
@run
async def test_a_handler_that_cannot_be_loaded_stops_the_runner(target, message, mode):
    async with start_runner(target, "--port", "0", "--workers", "2", mode, listening=False) as runner:
        assert await runner.exit_status() == 1
        out = await runner.proc.stdout.read()
        assert out == b""
        assert message in runner.stderr
        assert runner.stderr.count(message) == 1, runner.stderr
        assert "Traceback" not in runner.stderr


@run
async def test_a_module_that_fails_at_import_shows_its_traceback(tmp_path):
    (tmp_path / "broken_app.py").write_text("async def handler(websocket):\n    pass\n\n1 / 0\n")
    async with start_runner(
        "broken_app:handler", "--port", "0", "--workers", "1", listening=False,
        PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path)]),
    ) as runner:
        assert await runner.exit_status() == 1
        assert "cannot import handler 'broken_app:handler':\nTraceback" in runner.stderr
        assert "ZeroDivisionError: division by zero" in runner.stderr


@run
async def test_a_worker_dying_at_start_is_retried_then_given_up():
    async with start_runner(
        "runner_helpers:echo_pid", "--port", "0", "--workers", "1", listening=False,
        FASTWS_TEST_RUNNER_EXIT="7",
    ) as runner:
        assert await runner.exit_status() == 1
        err = runner.stderr
        assert err.count("died (exit status 7)") == MAX_QUICK_DEATHS - 1, err
        for delay in ("0.1", "0.2", "0.4", "0.8"):
            assert f"starting it again in {delay} s" in err
        assert (
            f"worker 1 died {MAX_QUICK_DEATHS} times in a row within 2 s of its start"
            " (the last time: exit status 7); giving up"
        ) in err


@MODES
@run
async def test_a_busy_port_fails_with_a_message(mode):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        async with start_runner(
            "runner_helpers:echo_pid", "--port", str(port), "--workers", "1", mode, listening=False
        ) as runner:
            assert await runner.exit_status() == 1
            assert f"cannot listen on 127.0.0.1:{port}" in runner.stderr
            assert "Traceback" not in runner.stderr


# --- the Python API -----------------------------------------------------------------------

SCRIPT = """\
import os
import sys

import fastws.runner


async def handler(websocket):
    async for message in websocket:
        await websocket.send(f"{{__name__}} {{os.getpid()}}")


if __name__ == "__main__":
    sys.exit(fastws.runner.run(handler, port=0, workers=2, reuse_port={reuse_port}, log_level="info"))
"""


@pytest.mark.parametrize("reuse_port", [True, False], ids=["reuse_port", "parent_accept"])
@run
async def test_run_a_handler_of_the_main_script(tmp_path, reuse_port):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(SCRIPT.format(reuse_port=reuse_port)))
    async with start_runner(command=[sys.executable, str(script)]) as runner:
        pids = set(runner.workers().values())
        assert len(pids) == 2
        seen = set()
        for _ in range(60):
            name, pid = (await ask(runner.uri)).split()
            assert name == "__mp_main__"  # the script, imported again by each worker
            seen.add(int(pid))
            if seen == pids:
                break
        assert seen == pids
        runner.proc.send_signal(signal.SIGTERM)
        assert await runner.exit_status() == 0, runner.stderr


@MODES
@run
async def test_a_signal_to_the_group_of_idle_workers(mode):
    # No connection to close: a worker's loop is closed at once, before the
    # parent's SIGTERM comes after the group's one; it must not kill the worker.
    async with start_runner("runner_helpers:echo_pid", "--port", "0", "--workers", "2", mode) as runner:
        os.killpg(runner.proc.pid, signal.SIGTERM)
        assert await runner.exit_status() == 0, runner.stderr
        assert "WARNING" not in runner.stderr

"""``python -m fastws``: --version, the echo server and the interactive client,
run as real subprocesses (each bounded by the ``run`` deadline and timeouts)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import fastws
from fastws import CloseCode, ConnectionClosedOK

from asyncio_helpers import listener_server, run, server

ROOT = Path(__file__).resolve().parents[1]
STEP = 10.0  # seconds any one step of a subprocess may take


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


async def start(*args: str, stdin=None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fastws", *args,
        stdin=stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(ROOT),
        env=_env(),
    )


async def finish(proc: asyncio.subprocess.Process) -> tuple:
    """Wait for the process to exit: (returncode, stdout, stderr)."""
    out, err = await asyncio.wait_for(proc.communicate(), STEP)
    return proc.returncode, out.decode(), err.decode()


async def kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


async def start_server(*extra: str) -> tuple:
    """``python -m fastws serve --port 0``: (process, uri) once it listens."""
    proc = await start("serve", "--port", "0", *extra)
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), STEP)).decode()
    except BaseException:
        await kill(proc)
        raise
    if not line.startswith("listening on ws://"):
        await kill(proc)
        raise AssertionError(f"unexpected first line from serve: {line!r}")
    return proc, line.split()[-1]


def test_version():
    result = subprocess.run(
        [sys.executable, "-m", "fastws", "--version"],
        capture_output=True, text=True, timeout=STEP, cwd=str(ROOT), env=_env(),
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.strip()
    assert out.startswith(f"fastws {fastws.__version__} ")
    assert f"implementation: {fastws.IMPLEMENTATION}" in out
    if fastws.IMPLEMENTATION == "cython":
        from fastws import _speedups

        assert f"SIMD: {_speedups.simd_level()}" in out
    from fastws.asyncio import fastpath

    assert f"connection fast path: {fastpath.IMPLEMENTATION};" in out
    assert len(result.stdout.splitlines()) == 1, result.stdout


def test_no_command_prints_usage():
    result = subprocess.run(
        [sys.executable, "-m", "fastws"],
        capture_output=True, text=True, timeout=STEP, cwd=str(ROOT), env=_env(),
    )
    assert result.returncode == 2
    assert "serve" in result.stderr and "client" in result.stderr


def test_defaults():
    from fastws.__main__ import build_parser

    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port) == ("127.0.0.1", 8765)
    args = build_parser().parse_args(["serve", "--host", "::1", "--port", "9000"])
    assert (args.host, args.port) == ("::1", 9000)
    assert build_parser().parse_args(["client", "ws://h/"]).uri == "ws://h/"


# --- serve ------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@run
async def test_serve_echoes_and_shuts_down_cleanly_on_a_signal(signum):
    proc, uri = await start_server()
    try:
        assert uri.startswith("ws://127.0.0.1:")
        async with fastws.connect(uri, ping_interval=None) as websocket:
            for message in ["hello", "é" * 3000, b"\x00\xff" * 5000, b"", ""]:
                await websocket.send(message)
                assert await websocket.recv() == message
            await websocket.send([b"frag", b"mented"])
            assert await websocket.recv() == b"fragmented"
        assert websocket.close_code == CloseCode.NORMAL_CLOSURE

        # A connection still open at shutdown is closed with 1001.
        websocket = await fastws.connect(uri, ping_interval=None)
        proc.send_signal(signum)
        with pytest.raises(ConnectionClosedOK) as info:
            await asyncio.wait_for(websocket.recv(), STEP)
        assert info.value.code == CloseCode.GOING_AWAY
        code, _, err = await finish(proc)
        assert code == 0, err
        assert f"received {signum.name}" in err
        assert "Traceback" not in err
    finally:
        await kill(proc)


@run
async def test_serve_on_a_busy_port_fails_with_a_message():
    proc, uri = await start_server()
    try:
        port = uri.rsplit(":", 1)[1].strip("/")
        second = await start("serve", "--port", port)
        code, out, err = await finish(second)
        assert code == 1
        assert f"cannot listen on 127.0.0.1:{port}" in err
        assert "Traceback" not in err
    finally:
        proc.send_signal(signal.SIGTERM)
        await finish(proc)


# --- client -----------------------------------------------------------------------------


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


class EchoListener(fastws.Listener):
    """Echoes from data_received: each echo is written before the pong of any
    ping that followed the message, which makes the output below deterministic."""

    def on_message(self, connection, message):
        connection.send_nowait(message)


@run
async def test_client_sends_lines_and_prints_the_echoes():
    lines = ["hello", "", "héllo wörld ✓", "x" * 100_000, "last"]
    async with listener_server(EchoListener) as (_, uri):
        proc = await start("client", uri, stdin=asyncio.subprocess.PIPE)
        try:
            # Everything at once, then the end of input: the client pings,
            # and closes with 1000 once the pong came, after every echo.
            data = "".join(line + "\n" for line in lines).encode()
            code, out, err = await asyncio.wait_for(_communicate(proc, data), STEP)
        finally:
            await kill(proc)
    assert code == 0, err
    assert out.split("\n") == lines + [""]
    assert f"connected to {uri}" in err
    assert "connection closed: 1000" in err


async def _communicate(proc, data: bytes):
    out, err = await proc.communicate(data)
    return proc.returncode, out.decode(), err.decode()


@run
async def test_client_is_interactive_and_exits_when_the_server_closes():
    async def handler(websocket):
        await websocket.send("welcome")
        await websocket.send(b"\x01\x02\xff")
        async for message in websocket:
            if message == "quit":
                await websocket.close(CloseCode.NORMAL_CLOSURE, "bye")
                return
            await websocket.send(message.upper())

    async with server(handler) as (_, uri):
        proc = await start("client", uri, stdin=asyncio.subprocess.PIPE)
        try:
            readline = lambda: asyncio.wait_for(proc.stdout.readline(), STEP)  # noqa: E731
            # Messages print while standard input is open and idle.
            assert await readline() == b"welcome\n"
            assert await readline() == b"(binary, 3 bytes) 0102ff\n"
            # One line at a time: each answer arrives before the next line is typed.
            for word in ["one", "two", "three"]:
                proc.stdin.write(word.encode() + b"\n")
                await proc.stdin.drain()
                assert await readline() == word.upper().encode() + b"\n"
            # The server closes while standard input is still open: the client exits.
            proc.stdin.write(b"quit\n")
            await proc.stdin.drain()
            out, err = await asyncio.wait_for(proc.communicate(), STEP)
        finally:
            await kill(proc)
    assert proc.returncode == 0, err
    assert out == b""
    assert "connection closed: 1000 (bye)" in err.decode()


@run
async def test_client_exit_status_on_an_abnormal_close():
    async def broken(websocket):
        await websocket.recv()
        raise RuntimeError("handler bug (expected by the test)")

    async with server(broken) as (_, uri):
        proc = await start("client", uri, stdin=asyncio.subprocess.PIPE)
        try:
            proc.stdin.write(b"boom\n")
            await proc.stdin.drain()
            code, _, err = await finish(proc)
        finally:
            await kill(proc)
    assert code == 1
    assert "connection closed: 1011" in err


@run
async def test_client_on_sigint_closes_with_1001():
    closed = asyncio.get_running_loop().create_future()

    async def handler(websocket):
        await websocket.send("ready")
        try:
            await websocket.recv()
        except fastws.ConnectionClosed as exc:
            closed.set_result(exc.code)

    async with server(handler) as (_, uri):
        proc = await start("client", uri, stdin=asyncio.subprocess.PIPE)
        try:
            assert await asyncio.wait_for(proc.stdout.readline(), STEP) == b"ready\n"
            proc.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(closed, STEP) == CloseCode.GOING_AWAY
            code, _, err = await finish(proc)
        finally:
            await kill(proc)
    assert code == 0, err
    assert "Traceback" not in err


@run
async def test_client_cannot_connect():
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nobody listens there now
    proc = await start("client", f"ws://127.0.0.1:{port}/", stdin=asyncio.subprocess.DEVNULL)
    try:
        code, out, err = await finish(proc)
    finally:
        await kill(proc)
    assert code == 1
    assert f"failed to connect to ws://127.0.0.1:{port}/" in err
    assert "Traceback" not in err

    proc = await start("client", "http://example.invalid/", stdin=asyncio.subprocess.DEVNULL)
    try:
        code, out, err = await finish(proc)
    finally:
        await kill(proc)
    assert code == 1
    assert "failed to connect" in err


@run
async def test_client_against_the_cli_server():
    """Both halves of the command line together."""
    srv, uri = await start_server()
    try:
        proc = await start("client", uri, stdin=asyncio.subprocess.PIPE)
        try:
            code, out, err = await asyncio.wait_for(_communicate(proc, b"ping\npong\n"), STEP)
        finally:
            await kill(proc)
        assert code == 0, err
        assert out == "ping\npong\n"
    finally:
        srv.send_signal(signal.SIGINT)
        code, _, err = await finish(srv)
        assert code == 0, err

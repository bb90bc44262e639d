"""``uvicorn --ws fastws.uvicorn:WebSocketProtocol`` from the command line, as users
start it: one process, and ``--workers 2`` (uvicorn's supervisor and two worker
processes sharing the listening socket; each imports the backend by name)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fastws

from asyncio_helpers import run
from uvicorn_helpers import FASTWS, free_port

APP = '''
import os

async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        # who served it, and the message back
        await send({"type": "websocket.send", "text": f"{os.getpid()} {message.get('text')}"})
'''


def start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    (tmp_path / "pid_app.py").write_text(APP)
    port = free_port()
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "pid_app:app", "--host", "127.0.0.1", "--port", str(port),
         "--ws", FASTWS, "--lifespan", "off", "--log-level", "warning", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return proc, port


def stop(proc: subprocess.Popen[bytes]) -> str:
    """SIGTERM, as a process manager stops uvicorn; its stderr (the logs)."""
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"uvicorn did not stop on SIGTERM: {err.decode(errors='replace')}") from None
    return err.decode(errors="replace")


async def connect_when_up(uri: str, proc: subprocess.Popen[bytes]) -> fastws.ClientConnection:
    deadline = time.monotonic() + 15
    while True:
        try:
            return await fastws.connect(uri, ping_interval=None)
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("workers", [1, 2])
def test_uvicorn_cli_serves_with_fastws(tmp_path: Path, workers: int) -> None:
    extra = ["--workers", str(workers)] if workers > 1 else []
    proc, port = start(tmp_path, *extra)
    uri = f"ws://127.0.0.1:{port}/"

    @run
    async def exchange() -> set[int]:
        first = await connect_when_up(uri, proc)
        clients = [first] + [await fastws.connect(uri, ping_interval=None) for _ in range(11)]
        pids = set()
        for i, client in enumerate(clients):
            await client.send(f"hello {i}")
            pid, text = (await client.recv()).split(" ", 1)
            assert text == f"hello {i}"
            pids.add(int(pid))
        for client in clients:
            await client.close()
            assert client.close_code == 1000
        return pids

    try:
        pids = exchange()
    finally:
        logs = stop(proc)
    assert "Traceback" not in logs, logs
    if workers == 1:
        assert pids == {proc.pid}
    else:
        # Served by the worker processes, never by uvicorn's supervisor (which
        # worker takes a connection is the kernel's choice: any spread is valid).
        assert proc.pid not in pids
        assert 1 <= len(pids) <= workers

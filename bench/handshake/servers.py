"""The handshake group's servers: the echo servers of :mod:`bench.echo.servers`,
and the floor, a bare event loop protocol.

    python -m bench.handshake.servers floor LOOP PORT

The floor accepts a connection, answers its first read with the same bytes and
closes: what accepting, one round trip and closing cost on the loop, with no
HTTP and no WebSocket (``wsload handshake --raw 1`` drives it). It prints
``READY <port>`` and serves until SIGTERM, SIGINT or the end of standard input,
as the echo servers do.

:func:`server` starts any of them in a process of its own and stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import subprocess
import sys
import tempfile
import time
from typing import Any, Iterator, Optional, Tuple

from bench.echo import HOST
from bench.echo.servers import serve_until_stopped, server_main
from bench.handshake import FLOOR
from bench.results import ROOT, subprocess_env

#: Seconds a server may take to print READY.
READY_TIMEOUT = 30.0


class ServerError(RuntimeError):
    """A server process did not start, or died: its stack has no numbers."""


class _AnswerOnceAndClose(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)
        self.transport.close()


async def _start_floor(port: int) -> Tuple[int, Any]:
    server = await asyncio.get_running_loop().create_server(_AnswerOnceAndClose, HOST, port)

    async def close() -> None:
        server.close()
        await server.wait_closed()

    return server.sockets[0].getsockname()[1], close


async def _serve(name: str, port: int) -> None:
    await serve_until_stopped(_start_floor, port, 2)


def _tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-lines:])
    except OSError:
        return ""


def _wait_ready(process: subprocess.Popen, err_path: str, timeout: float) -> int:
    """Read ``READY <port>`` from the server's stdout; returns the port."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ServerError(f"server not ready after {timeout:g} s; stderr: {_tail(err_path)}")
        readable, _, _ = select.select([fd], [], [], min(remaining, 0.5))
        chunk = os.read(fd, 4096) if readable else b""
        if readable and not chunk or not readable and process.poll() is not None:
            process.wait(timeout=5)
            raise ServerError(f"server exited with status {process.returncode} before READY; "
                              f"stderr: {_tail(err_path)}")
        data += chunk
    line = data.split(b"\n", 1)[0].decode("ascii", "replace").strip()
    parts = line.split()
    if len(parts) != 2 or parts[0] != "READY" or not parts[1].isdigit():
        raise ServerError(f"server said {line!r} instead of 'READY <port>'")
    return int(parts[1])


def _stop(process: subprocess.Popen) -> None:
    """Close stdin (the server stops), then SIGTERM, then SIGKILL: each bounded."""
    try:
        if process.poll() is None:
            if process.stdin is not None:
                try:
                    process.stdin.close()
                except OSError:
                    pass
            try:
                process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
    finally:
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass


@contextlib.contextmanager
def server(stack: str, loop: str = "uvloop", cpu: Optional[int] = None) -> Iterator[Tuple[int, int]]:
    """Run a server of ``stack`` (an echo stack of :mod:`bench.echo.servers`,
    or :data:`FLOOR`) on ``loop`` in its own process.

    Args:
        stack: The server to start.
        loop: ``"uvloop"`` or ``"asyncio"``.
        cpu: Pin the server to this CPU.

    Yields:
        ``(port, pid)`` once it listens; on the way out (an error or
        KeyboardInterrupt included) the process is stopped.

    Raises:
        ServerError: It did not print READY within :data:`READY_TIMEOUT`.
    """
    module = "bench.handshake.servers" if stack == FLOOR else "bench.echo.servers"
    command = [sys.executable, "-m", module, stack, loop, "0"]
    preexec = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    env = subprocess_env()
    env.pop("FASTWS_BENCH_COMPRESSION", None)  # handshakes measure no compression
    with tempfile.TemporaryDirectory(prefix="fastws-handshake-") as tmp:
        err_path = os.path.join(tmp, "server.err")
        with open(err_path, "wb") as err:
            process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                preexec_fn=preexec,
            )
        try:
            port = _wait_ready(process, err_path, READY_TIMEOUT)
            yield port, process.pid
            if process.poll() is not None:
                raise ServerError(f"server exited with status {process.returncode}; stderr: {_tail(err_path)}")
        finally:
            _stop(process)


def main(argv: Optional[list] = None) -> int:
    return server_main("python -m bench.handshake.servers", __doc__.split("\n\n")[0], "server", (FLOOR,),
                       _serve, argv)


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    code = main()
    sys.stdout.flush()
    os._exit(code)

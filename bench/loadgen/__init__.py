"""wsload, a WebSocket load generator in C, and the Python side that runs it.

Python clients cost more CPU per connection than the servers they measure, so
server-scale groups (handshakes per second, broadcast) drive the servers with
``wsload.c``: one process, epoll, non-blocking sockets, nothing beyond libc.
It is compiled on first use with ``cc -O2`` (``CC`` in the environment chooses
another compiler) into ``bench/loadgen/build/`` (git-ignored; where the checkout
is read-only, ``~/.cache/fastws-bench/``; ``FASTWS_BENCH_CACHE`` sets another),
under a name that carries a hash of the source and the compiler command, so an
edited source is rebuilt.

    binary = build()                      # path, or GroupSkipped("no C compiler: ...")
    handshake(port, duration=2.0)         # sessions/s: open, 16 B echo, close; 64 in flight
    broadcast(port, 1000, 10, 64, 10.0)   # time until every client has each message

Both return wsload's JSON output as a dict; ``wsload.c``'s header describes the
modes and every field. Failures of the server are counted in ``"errors"``
(by kind, the first described in ``"first_error"``), never a hang: every wait
in wsload has a timeout. A wsload that cannot run at all (file descriptor
limit, bad arguments) raises :class:`LoadgenError`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
from typing import Any, Dict, List, Optional, Sequence

from bench.results import GroupSkipped

__all__ = ["LoadgenError", "build", "handshake", "broadcast", "run", "SOURCE"]

HOST = "127.0.0.1"
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wsload.c")
CFLAGS = ("-O2",)


class LoadgenError(RuntimeError):
    """wsload could not run, or ran past its bound: its numbers do not exist."""


def cache_dir() -> str:
    """Where compiled binaries live: ``$FASTWS_BENCH_CACHE``, else
    ``bench/loadgen/build`` when this directory is writable, else
    ``$XDG_CACHE_HOME/fastws-bench`` or ``~/.cache/fastws-bench``."""
    explicit = os.environ.get("FASTWS_BENCH_CACHE")
    if explicit:
        return explicit
    here = os.path.dirname(SOURCE)
    if os.access(here, os.W_OK):
        return os.path.join(here, "build")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fastws-bench")


def _compiler() -> List[str]:
    return shlex.split(os.environ.get("CC") or "cc") or ["cc"]


@functools.cache
def _build(cc: tuple, source_digest: str, directory: str) -> str:
    binary = os.path.join(directory, f"wsload-{source_digest}")
    if os.access(binary, os.X_OK):
        return binary
    if sys.platform != "linux":
        raise GroupSkipped(f"wsload needs Linux (epoll), not {sys.platform}")
    os.makedirs(directory, exist_ok=True)
    partial = f"{binary}.{os.getpid()}.partial"
    command = [*cc, *CFLAGS, "-o", partial, SOURCE]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except FileNotFoundError:
        raise GroupSkipped(f"no C compiler: {cc[0]} not found (set CC to one)") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GroupSkipped(f"no C compiler: {shlex.join(command)}: {exc}") from None
    if proc.returncode != 0:
        try:
            os.unlink(partial)
        except OSError:
            pass
        tail = " | ".join(proc.stderr.strip().splitlines()[-5:])
        raise GroupSkipped(f"no C compiler: {shlex.join(command)} failed ({proc.returncode}): {tail}")
    os.replace(partial, binary)  # atomic: concurrent builds never run a half-written file
    for name in os.listdir(directory):  # older builds (a process running one keeps its inode)
        if name.startswith("wsload-") and name != os.path.basename(binary) and not name.endswith(".partial"):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass
    return binary


def build() -> str:
    """Compile ``wsload.c`` unless a binary of this source and compiler exists.

    Returns:
        The path of the binary.

    Raises:
        GroupSkipped: No working C compiler (``"no C compiler: ..."``), or not Linux.
    """
    cc = _compiler()
    with open(SOURCE, "rb") as f:
        source = f.read()
    digest = hashlib.sha256()
    digest.update(source)
    digest.update("\0".join([*cc, *CFLAGS, platform.machine()]).encode())
    return _build(tuple(cc), digest.hexdigest()[:16], cache_dir())


def run(mode: str, args: Sequence[str], bound: float) -> Dict[str, Any]:
    """Run ``wsload MODE ARGS`` and return its JSON output.

    Args:
        mode: ``"handshake"`` or ``"broadcast"``.
        args: Options, as on wsload's command line.
        bound: Seconds after which wsload is killed: beyond every timeout it has.

    Raises:
        GroupSkipped: wsload cannot be built here.
        LoadgenError: wsload exited with an error, printed no JSON, or ran past ``bound``.
    """
    command = [build(), mode, *args]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=bound)
    except subprocess.TimeoutExpired:
        raise LoadgenError(f"wsload {mode} ran past {bound:g} s and was killed: {shlex.join(args)}") from None
    if proc.returncode != 0:
        why = proc.stderr.strip() or f"no message; stdout: {proc.stdout.strip()[:200]!r}"
        raise LoadgenError(f"wsload {mode} exited with status {proc.returncode}: {why}")
    lines = proc.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise LoadgenError(f"wsload {mode} printed no JSON: {proc.stdout.strip()[:200]!r}") from None
    if not isinstance(result, dict):
        raise LoadgenError(f"wsload {mode} printed {type(result).__name__}, not an object")
    return result


def handshake(
    port: int,
    *,
    concurrency: int = 64,
    duration: float = 1.0,
    size: int = 16,
    warmup: float = 0.0,
    timeout: float = 5.0,
    max_errors: int = 1000,
    host: str = HOST,
    path: str = "/",
    cpu: Optional[int] = None,
    raw: bool = False,
) -> Dict[str, Any]:
    """Measure sessions per second: connect, upgrade, one echo of ``size`` bytes, close.

    Args:
        port: The server's TCP port on ``host``.
        concurrency: Sessions kept in flight.
        duration: Seconds measured (after ``warmup`` seconds not counted).
        size: Bytes of the binary message echoed in each session.
        warmup: Seconds of sessions before the measured window.
        timeout: Seconds a session may go without progress before it counts as
            an error (``"timeout"``); also the longest wait for the sessions in
            flight at the end.
        max_errors: The run stops early (``"aborted": true``) after this many errors.
        host: IPv4 address of the server.
        path: Request target of the upgrade.
        cpu: Run wsload on this CPU only.
        raw: Plain TCP sessions instead (connect, ``size`` bytes sent and read
            back, the server closes): the floor under the WebSocket ones.

    Returns:
        wsload's output: ``sessions`` ended within the window, ``seconds``,
        ``rate`` (sessions/s), ``completed`` (all sessions that ended cleanly,
        warmup and the drain at the end included), ``unfinished``, ``aborted``,
        ``latency_ms`` (``p50``, ``p90``, ``p99``, ``max`` of the window's
        sessions), ``errors`` (kind -> count), ``error_total``, ``first_error``.

    Raises:
        GroupSkipped: wsload cannot be built here.
        LoadgenError: wsload could not run.
    """
    args = [
        "--port", str(port), "--host", host, "--path", path, "--concurrency", str(concurrency),
        "--duration", repr(float(duration)), "--warmup", repr(float(warmup)), "--size", str(size),
        "--timeout", repr(float(timeout)), "--max-errors", str(max_errors),
    ]
    if cpu is not None:
        args += ["--cpu", str(cpu)]
    if raw:
        args += ["--raw", "1"]
    return run("handshake", args, bound=warmup + duration + 2 * timeout + 30)


def broadcast(
    port: int,
    clients: int,
    messages: int,
    size: int = 64,
    timeout: float = 10.0,
    *,
    concurrency: int = 128,
    max_errors: int = 1000,
    host: str = HOST,
    path: str = "/",
    cpu: Optional[int] = None,
) -> Dict[str, Any]:
    """Open ``clients`` connections, trigger a broadcast, time its deliveries.

    The first connection sends the text message ``"bcast MESSAGES SIZE"``; the
    server must then send ``messages`` binary messages of ``size`` bytes to
    every connection, in order, each starting with its index (4 bytes,
    big-endian).

    Args:
        port: The server's TCP port on ``host``.
        clients: Connections to open (wsload raises its file descriptor limit
            to fit, or fails with a message saying so).
        messages: Messages the server broadcasts.
        size: Bytes per message (at least 4).
        timeout: Seconds any connection may go without progress while opening
            or closing, and the broadcast without a delivery, before it counts
            as an error.
        concurrency: Handshakes in flight while opening.
        max_errors: Opening stops after this many errors.
        host: IPv4 address of the server.
        path: Request target of the upgrade.
        cpu: Run wsload on this CPU only.

    Returns:
        wsload's output: ``clients``, ``connected``, ``messages``, ``size``,
        ``connect_seconds``, ``first_ms`` and ``last_ms`` (per message: ms from
        the trigger until the first, and the last, connection had it; ``None``
        where none did, or not all), ``deliveries`` (``connected * messages``
        when all went well), ``seconds`` (until the last delivery),
        ``trigger_monotonic`` and ``end_monotonic`` (the trigger and the last
        delivery on :func:`time.monotonic`'s clock), ``errors``,
        ``error_total``, ``first_error``.

    Raises:
        GroupSkipped: wsload cannot be built here.
        LoadgenError: wsload could not run (file descriptor limit...).
    """
    args = [
        "--port", str(port), "--host", host, "--path", path, "--clients", str(clients),
        "--messages", str(messages), "--size", str(size), "--timeout", repr(float(timeout)),
        "--concurrency", str(concurrency), "--max-errors", str(max_errors),
    ]
    if cpu is not None:
        args += ["--cpu", str(cpu)]
    # Opening can take up to timeout per round of `concurrency` failures until
    # max_errors stops it; then the broadcast and the closing, timeout each.
    rounds = -(-max_errors // concurrency) + 4
    return run("broadcast", args, bound=timeout * rounds + clients / 200 + 60)

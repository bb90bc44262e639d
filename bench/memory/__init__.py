"""Idle memory: what an open, idle WebSocket connection costs a server, in RSS.

    python -m bench.memory            # the table (about a minute)
    python -m bench.memory --quick    # smoke run: 1,000 connections

For each stack, the server runs in a process of its own (the echo servers of
:mod:`bench.echo.servers`; the floor, a bare :class:`asyncio.Protocol` that
accepts and holds, in :mod:`bench.memory.servers`), all on uvloop (socketify
on its own loop). An opener process (:mod:`bench.memory.opener`) opens a
warm-up of connections and keeps them, the server's RSS is read once it has
settled, then N more connections are opened (each with a full opening
handshake; permessage-deflate offered for ``memory.idle_deflate``) and kept
idle, and RSS is read again: the cost of a connection is the difference over
N. The server and the opener run on different CPUs, with their open file
limits raised to the hard limit.

:func:`run_group` is the group for ``python -m bench``; :func:`measure` one
stack once.
"""

from __future__ import annotations

import json
import os
import resource
import select
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..results import ROOT, Context, GroupResult, GroupSkipped, Measure, subprocess_env

__all__ = ["STACKS", "LABELS", "FLOOR", "Sample", "MeasureError", "measure", "run_group"]

#: The stacks measured, in table order; FLOOR last.
FLOOR = "floor"
STACKS: Tuple[str, ...] = ("fastws", "fastws-listener", "websockets", "aiohttp", "picows", "socketify", FLOOR)
LABELS = {
    "fastws": "fastws serve()",
    "fastws-listener": "fastws Listener",
    "websockets": "websockets",
    "aiohttp": "aiohttp",
    "picows": "picows",
    "socketify": "socketify",
    FLOOR: "uvloop Protocol (floor)",
}
FASTWS_LABELS = (LABELS["fastws"], LABELS["fastws-listener"])
#: Module each stack's server needs.
REQUIRES = {
    "fastws": "fastws",
    "fastws-listener": "fastws",
    "websockets": "websockets",
    "aiohttp": "aiohttp",
    "picows": "picows",
    "socketify": "socketify",
    FLOOR: "uvloop",
}
#: Stacks that cannot negotiate permessage-deflate, and why.
NO_DEFLATE = {"picows": "picows does not implement permessage-deflate"}

LOOP = "uvloop"
#: Connections opened and kept before the first reading.
WARMUP = 100
READY_TIMEOUT = 30.0
#: Seconds the opener may take for a batch of handshakes (it has its own limit too).
OPEN_TIMEOUT = 150.0
#: RSS is settled when it moved less than this over SETTLE_READS reads...
SETTLE_KIB = 64
SETTLE_READS = 4
SETTLE_INTERVAL = 0.1
#: ... or after this many seconds.
SETTLE_MAX = 5.0


class MeasureError(Exception):
    """A stack could not be measured (a crash, a refused handshake, a timeout)."""


@dataclass
class Sample:
    """One stack, measured once."""

    kib_per_connection: float
    connections: int
    negotiated: int  # connections with permessage-deflate
    rss_before_kib: int
    rss_after_kib: int
    open_seconds: float  # time to open the N connections


# --- processes ---------------------------------------------------------------------


def _status_kib(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise MeasureError(f"no {field} in /proc/{pid}/status")


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15)


def settled_rss(pid: int) -> int:
    """The server's RSS in KiB, once it stopped moving and the server stopped
    working (or after SETTLE_MAX seconds)."""
    deadline = time.monotonic() + SETTLE_MAX
    reads = [_status_kib(pid)]
    ticks = _cpu_ticks(pid)
    while time.monotonic() < deadline:
        time.sleep(SETTLE_INTERVAL)
        reads.append(_status_kib(pid))
        now = _cpu_ticks(pid)
        busy, ticks = now != ticks, now
        last = reads[-SETTLE_READS:]
        if not busy and len(last) == SETTLE_READS and max(last) - min(last) < SETTLE_KIB:
            break
    return reads[-1]


def _preexec(cpu: Optional[int]) -> Callable[[], None]:
    def setup() -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    return setup


def pin_cpus() -> Tuple[Optional[int], Optional[int]]:
    """(server's CPU, opener's CPU): two different ones where there are two."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


def _read_line(proc: subprocess.Popen, timeout: float, what: str, err_path: str) -> str:
    """One line of ``proc``'s stdout, within ``timeout`` seconds."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise MeasureError(f"{what}: no answer after {timeout:.0f} s{_tail(err_path)}")
        readable, _, _ = select.select([fd], [], [], min(remaining, 0.5))
        if readable:
            chunk = os.read(fd, 1)
            if not chunk:
                proc.wait(timeout=5)
                raise MeasureError(f"{what}: exited with status {proc.returncode}{_tail(err_path)}")
            data += chunk
        elif proc.poll() is not None:
            raise MeasureError(f"{what}: exited with status {proc.returncode}{_tail(err_path)}")
    return data.decode("utf-8", "replace").strip()


def _tail(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().strip().splitlines()
    except OSError:
        return ""
    return ("; stderr: " + " | ".join(lines[-3:])) if lines else ""


def _stop(proc: subprocess.Popen) -> None:
    """Stop a child: the end of its stdin, SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    for stream in (proc.stdin, proc.stdout):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass


def _command(proc: subprocess.Popen, line: str, timeout: float, err_path: str) -> Dict[str, Any]:
    assert proc.stdin is not None
    try:
        proc.stdin.write((line + "\n").encode())
        proc.stdin.flush()
    except OSError as exc:
        raise MeasureError(f"opener: {exc}{_tail(err_path)}") from None
    answer = _read_line(proc, timeout, "opener", err_path)
    try:
        result: Dict[str, Any] = json.loads(answer)
    except ValueError:
        raise MeasureError(f"opener said {answer!r}{_tail(err_path)}") from None
    return result


def server_command(stack: str) -> List[str]:
    if stack == FLOOR:
        return [sys.executable, "-m", "bench.memory.servers", FLOOR, LOOP, "0"]
    return [sys.executable, "-m", "bench.echo.servers", stack, LOOP, "0"]


def measure(
    stack: str,
    connections: int,
    *,
    deflate: bool = False,
    warmup: int = WARMUP,
    pin: Tuple[Optional[int], Optional[int]] = (None, None),
    log_dir: str,
) -> Sample:
    """Measure ``stack`` once: its server's RSS per idle connection, over
    ``connections`` connections opened after ``warmup`` ones.

    Args:
        stack: One of :data:`STACKS`.
        connections: How many connections the measure opens.
        deflate: Offer permessage-deflate (the server is started with it on);
            every connection must negotiate it.
        warmup: Connections opened, and kept, before the first reading.
        pin: The CPUs of the server and of the opener (None: anywhere).
        log_dir: Where the processes' standard error goes.

    Raises:
        MeasureError: If a process failed, a handshake was refused, the
            extension was not negotiated, or the server closed a connection.
    """
    env = subprocess_env()
    env.pop("FASTWS_BENCH_COMPRESSION", None)
    if deflate:
        env["FASTWS_BENCH_COMPRESSION"] = "deflate"
    tag = f"{stack}{'-deflate' if deflate else ''}"
    server_err = os.path.join(log_dir, f"memory-{tag}-server.err")
    opener_err = os.path.join(log_dir, f"memory-{tag}-opener.err")
    with open(server_err, "wb") as err:
        server = subprocess.Popen(
            server_command(stack), cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=err, preexec_fn=_preexec(pin[0]),
        )
    opener: Optional[subprocess.Popen] = None
    try:
        line = _read_line(server, READY_TIMEOUT, f"{stack} server", server_err)
        words = line.split()
        if len(words) != 2 or words[0] != "READY" or not words[1].isdigit():
            raise MeasureError(f"{stack} server said {line!r} instead of 'READY <port>'")
        port = words[1]
        opener_cmd = [sys.executable, "-m", "bench.memory.opener", port]
        if deflate:
            opener_cmd.append("--deflate")
        if stack == FLOOR:
            opener_cmd.append("--floor")
        with open(opener_err, "wb") as err:
            opener = subprocess.Popen(
                opener_cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=err, preexec_fn=_preexec(pin[1]),
            )
        if warmup:
            _command(opener, f"open {warmup}", OPEN_TIMEOUT, opener_err)
        before = settled_rss(server.pid)
        start = time.monotonic()
        opened = _command(opener, f"open {connections}", OPEN_TIMEOUT, opener_err)
        open_seconds = time.monotonic() - start
        after = settled_rss(server.pid)
        check = _command(opener, "check", 30, opener_err)
        if check["closed"]:
            raise MeasureError(f"{stack}: the server closed {check['closed']} idle connections")
        total = warmup + connections
        if opened["open"] != total:
            raise MeasureError(f"{stack}: {opened['open']} connections open instead of {total}")
        if deflate and opened["negotiated"] != total:
            raise MeasureError(
                f"{stack}: permessage-deflate negotiated on {opened['negotiated']} of {total} connections"
            )
        if not deflate and opened["negotiated"]:
            raise MeasureError(f"{stack}: permessage-deflate negotiated though not offered")
        return Sample(
            kib_per_connection=(after - before) / connections,
            connections=connections,
            negotiated=opened["negotiated"] - (warmup if deflate else 0),
            rss_before_kib=before,
            rss_after_kib=after,
            open_seconds=open_seconds,
        )
    finally:
        if opener is not None:
            _stop(opener)
        _stop(server)


# --- the group -----------------------------------------------------------------------


def available(stack: str) -> Optional[str]:
    """None if ``stack`` can run here, else why not."""
    import importlib.util

    module = REQUIRES[stack]
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed"
    if stack not in (FLOOR,):
        from ..echo import SERVER_STACKS

        if stack not in SERVER_STACKS:
            return f"bench.echo.servers has no {stack} server"
    return None


def run_group(
    ctx: Context,
    stacks: Sequence[str] = STACKS,
    connections: Optional[int] = None,
    repeats: Optional[int] = None,
) -> GroupResult:
    """The idle memory group: ``memory.idle`` and ``memory.idle_deflate``, KiB
    of server RSS per open idle connection, for every stack (the floor in both).

    Args:
        ctx: The runner's context (mode, output directory, progress).
        stacks: The stacks to measure (default: all of :data:`STACKS`).
        connections: Connections per measure (default by mode: 1,000 quick,
            10,000 otherwise).
        repeats: Runs per stack (default by mode: 1, 2, 3).
    """
    if not sys.platform.startswith("linux"):
        raise GroupSkipped("reads the server's RSS from /proc (Linux only)")
    n = connections if connections is not None else ctx.pick(1000, 10000, 10000)
    runs = repeats if repeats is not None else ctx.pick(1, 2, 3)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < n + WARMUP + 64:
        raise GroupSkipped(f"the open file limit ({hard}) is below the {n + WARMUP + 64} connections need")
    result = GroupResult()
    pin = pin_cpus()
    os.makedirs(ctx.out_dir, exist_ok=True)

    plain: Dict[str, List[float]] = {}
    compressed: Dict[str, List[float]] = {}
    extra_plain: Dict[str, Dict[str, Any]] = {}
    extra_deflate: Dict[str, Dict[str, Any]] = {}
    runnable = []
    for stack in stacks:
        why = available(stack)
        if why is None:
            runnable.append(stack)
        else:
            result.skipped[LABELS[stack]] = why
    if not runnable:
        raise GroupSkipped("no stack can run here")
    for stack, why in NO_DEFLATE.items():
        if stack in runnable:
            result.skipped[f"{LABELS[stack]} (permessage-deflate)"] = why

    for run in range(runs):
        for stack in runnable:
            label = LABELS[stack]
            modes = (False,) if stack == FLOOR or stack in NO_DEFLATE else (False, True)
            for deflate in modes:
                what = f"{label}{' + deflate' if deflate else ''}"
                ctx.step(f"{what}: {n:,} connections" + (f" (run {run + 1}/{runs})" if runs > 1 else ""))
                sample = None
                for attempt in (1, 2):  # a second try, in a fresh server, if the first fails
                    try:
                        sample = measure(stack, n, deflate=deflate, pin=pin, log_dir=ctx.out_dir)
                        break
                    except MeasureError as exc:
                        if attempt == 2:
                            result.skipped[what] = str(exc)
                        else:
                            result.notes.append(f"{what}: a first attempt failed ({exc}); measured again.")
                if sample is None:
                    continue
                samples, extra = (compressed, extra_deflate) if deflate else (plain, extra_plain)
                samples.setdefault(label, []).append(round(sample.kib_per_connection, 3))
                # Each run's figures, their medians once every run is in (below).
                figures = extra.setdefault(label, {})
                figures.setdefault("server RSS before (MiB)", []).append(sample.rss_before_kib / 1024)
                figures.setdefault("server RSS after (MiB)", []).append(sample.rss_after_kib / 1024)
                figures.setdefault("opened in (s)", []).append(sample.open_seconds)
                if stack == FLOOR:
                    compressed.setdefault(label, []).append(round(sample.kib_per_connection, 3))
    for extra in (extra_plain, extra_deflate):
        for figures in extra.values():
            for key, values in figures.items():
                figures[key] = round(statistics.median(values), 2 if key == "opened in (s)" else 1)
    floor_label = LABELS[FLOOR] if LABELS[FLOOR] in plain else None
    placement = f"server on CPU {pin[0]}, opener on CPU {pin[1]}" if pin[0] is not None else "no CPU pinning"
    if plain:
        result.measures.append(
            Measure(
                id="memory.idle",
                title=f"Server memory per open idle connection ({n:,} connections)",
                unit="KiB",
                higher_is_better=False,
                samples=plain,
                fastws=[label for label in FASTWS_LABELS if label in plain],
                floor=floor_label,
                chart="memory.idle",
                short="no compression",
                extra=extra_plain,
                note="RSS growth of the server process over the connections, divided by their number.",
            )
        )
    if compressed:
        result.measures.append(
            Measure(
                id="memory.idle_deflate",
                title=f"Server memory per open idle connection, permessage-deflate negotiated ({n:,} connections)",
                unit="KiB",
                higher_is_better=False,
                samples=compressed,
                fastws=[label for label in FASTWS_LABELS if label in compressed],
                floor=floor_label if floor_label in compressed else None,
                chart="memory.idle",
                short="permessage-deflate",
                extra=extra_deflate,
                note="The floor negotiates nothing: its figure is the one without compression.",
            )
        )
    result.method = (
        f"Each server runs alone in its process on {LOOP} (socketify on its own loop), {placement}. An "
        f"opener process opens {WARMUP} connections (full opening handshakes, kept open), the server's "
        f"RSS (VmRSS) is read once it stops moving, then {n:,} more connections are opened, {64} "
        "handshakes at a time, and left idle; RSS is read again once settled, and the opener checks "
        "that none was closed. KiB per connection = RSS growth / connections. With permessage-deflate "
        "the server has compression on, the client offers it, and every connection must have "
        f"negotiated it. {runs} run(s) per stack, each with a fresh server process."
    )
    return result

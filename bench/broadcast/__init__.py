"""Broadcast: one message to thousands of connections.

    python -m bench.broadcast            # the table (a minute or two)
    python -m bench.broadcast --quick    # smoke run (1,000 connections, seconds)

:mod:`bench.loadgen`'s ``wsload broadcast`` (C, epoll) opens N WebSocket
connections to a stack's server (:mod:`bench.broadcast.servers`, each in its
stack's idiom, all on uvloop), then the first one sends ``"bcast K 64"``; the
server sends K binary messages of 64 bytes, message after message, to every
open connection. wsload records, for each message, when the last connection
had it. The servers run at once in processes of their own, pinned to one CPU,
wsload to the other; each repeat measures every stack in turn.

Measures, for N = 1,000 (and 5,000 and 10,000 beyond the quick run):

- ``broadcast.latency_1k``...: ms from the trigger until the last connection
  had the first message of the burst (message 0 goes to every connection
  before message 1 goes to any, so this is one message's fan-out);
- ``broadcast.rate_1k``...: deliveries per second over the burst (N x K
  messages over the time until the last one arrived);
- ``broadcast.cpu_1k``...: the server's CPU time per delivery over the burst,
  less noisy than the rate on a shared machine.

Besides a server per peer and the floor (a ``transport.write`` loop of one
prebuilt frame), fastws runs three ways: ``broadcast()`` from a ``serve()``
handler and from a Listener (one write per message and connection, as the
peers), and ``broadcast_many()`` of the whole burst (one write per connection,
as socketify's corking does on its own).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from bench.results import ROOT, Context, GroupResult, GroupSkipped, Measure, subprocess_env

from .. import loadgen
from .servers import LABELS, REQUIRES, STACKS

__all__ = ["STACKS", "LABELS", "SIZE", "settings", "server", "measure", "run_stacks", "run_group"]

FASTWS = ("fastws", "fastws-listener", "fastws-many")
FLOOR = "floor"
SIZE = 64  #: bytes per message
#: Seconds a server may take to print READY.
READY_TIMEOUT = 30.0
#: Seconds wsload waits without progress before it counts an error.
TIMEOUT = 10.0
#: Messages per burst for each count of connections: about 30,000-50,000
#: deliveries, half a second for the fastest stacks.
MESSAGES = {1000: 30, 5000: 10, 10000: 5}


def settings(mode: str) -> Tuple[Tuple[int, ...], int]:
    """(connection counts, repeats) for a mode of :data:`bench.results.MODES`."""
    return {
        "quick": ((1000,), 1),
        "default": ((1000, 5000, 10000), 2),
        "full": ((1000, 5000, 10000), 5),
    }[mode]


def missing(stack: str) -> List[str]:
    """The modules ``stack`` needs that are not installed (uvloop: all of them)."""
    needed = [m for m in (REQUIRES[stack], "uvloop") if m is not None]
    return [m for m in needed if importlib.util.find_spec(m) is None]


def cpu_pair() -> Tuple[Optional[int], Optional[int]]:
    """(server's CPU, wsload's CPU), or (None, None) with fewer than two CPUs."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None, None
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)


class ServerError(Exception):
    """A server did not start."""


def _tail(path: str, lines: int = 3) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-lines:])
    except OSError:
        return ""


def _wait_ready(process: subprocess.Popen, err_path: str) -> int:
    deadline = time.monotonic() + READY_TIMEOUT
    assert process.stdout is not None
    fd = process.stdout.fileno()
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ServerError(f"not ready after {READY_TIMEOUT:g} s; stderr: {_tail(err_path)}")
        readable, _, _ = select.select([fd], [], [], min(remaining, 0.5))
        chunk = os.read(fd, 4096) if readable else b""
        if readable and chunk:
            data += chunk
        elif process.poll() is not None or readable:
            process.wait()
            raise ServerError(f"exited with status {process.returncode} before READY; stderr: {_tail(err_path)}")
    parts = data.split(b"\n", 1)[0].decode("ascii", "replace").split()
    if len(parts) != 2 or parts[0] != "READY" or not parts[1].isdigit():
        raise ServerError(f"said {data[:80]!r} instead of 'READY <port>'")
    return int(parts[1])


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        with contextlib.suppress(OSError):
            assert process.stdin is not None
            process.stdin.close()  # the server stops at the end of its input
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    for stream in (process.stdin, process.stdout):
        with contextlib.suppress(OSError):
            if stream is not None:
                stream.close()


@contextlib.contextmanager
def server(stack: str, cpu: Optional[int] = None) -> Iterator[Tuple[int, int]]:
    """Run the broadcast server of ``stack`` in a process of its own (on CPU
    ``cpu`` if given); yields (port, pid) and stops it on the way out.

    Raises:
        ServerError: It did not print READY within :data:`READY_TIMEOUT`.
    """
    with tempfile.TemporaryDirectory(prefix="fastws-broadcast-") as tmp:
        err_path = os.path.join(tmp, "server.err")
        with open(err_path, "wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "bench.broadcast.servers", stack, "0"],
                cwd=ROOT, env=subprocess_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None,
            )
        try:
            yield _wait_ready(process, err_path), process.pid
        finally:
            _stop(process)


class _CpuSampler:
    """Samples a process's CPU time (its main thread's, in nanoseconds from
    /proc/PID/schedstat) every millisecond or so, in a thread, so that the
    time of an interval known only afterwards (the burst within a wsload run)
    can be read off."""

    def __init__(self, pid: int) -> None:
        self.path = f"/proc/{pid}/schedstat"
        self.samples: List[Tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> Optional[int]:
        try:
            with open(self.path, "rb") as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _run(self) -> None:
        while not self._stop.is_set():
            value = self._read()
            if value is None:
                return
            self.samples.append((time.monotonic(), value))
            self._stop.wait(0.001)

    def __enter__(self) -> _CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def at(self, when: float) -> Optional[float]:
        """CPU seconds at monotonic time ``when`` (the sample just before it)."""
        before = [value for t, value in self.samples if t <= when]
        return before[-1] / 1e9 if before else None


def measure(port: int, pid: int, clients: int, messages: int, cpu: Optional[int]) -> Dict[str, Any]:
    """One wsload broadcast run against the server (process ``pid``) on ``port``.

    Returns:
        wsload's output, with ``latency_ms`` (until the last connection had
        message 0), ``rate`` (deliveries/s) and ``server_us`` (server CPU time
        per delivery over the burst, µs; None where /proc cannot tell).

    Raises:
        bench.loadgen.LoadgenError: wsload could not run.
    """
    with _CpuSampler(pid) as sampler:
        started = time.monotonic()
        result = loadgen.broadcast(port, clients, messages, SIZE, TIMEOUT, cpu=cpu)
    if result.get("trigger_monotonic"):
        # wsload's CLOCK_MONOTONIC is time.monotonic()'s: the burst's own bounds.
        trigger, end = result["trigger_monotonic"], result["end_monotonic"]
    else:
        # An older wsload: its clock starts after its process did, so this
        # window starts and ends early by wsload's start-up time.
        trigger = started + result.get("connect_seconds", 0.0)
        end = trigger + result.get("seconds", 0.0)
    first, last = sampler.at(trigger), sampler.at(end)
    deliveries = result.get("deliveries") or 0
    known = first is not None and last is not None and deliveries
    result["server_us"] = (last - first) / deliveries * 1e6 if known else None  # type: ignore[operator]
    last_ms = result.get("last_ms") or [None]
    result["latency_ms"] = last_ms[0]
    result["rate"] = deliveries / result["seconds"] if result.get("seconds") else 0.0
    return result


def failure(result: Dict[str, Any]) -> Optional[str]:
    """Why a run's numbers are void (errors, missing deliveries), or None."""
    expected = result.get("clients", 0) * result.get("messages", 0)
    if result.get("error_total") or result.get("deliveries") != expected or result.get("latency_ms") is None:
        return (
            f"{result.get('deliveries')} of {expected} deliveries, {result.get('error_total')} errors;"
            f" first: {result.get('first_error')}"
        )
    return None


def run_stacks(
    stacks: Sequence[str],
    counts: Sequence[int],
    repeats: int,
    step: Callable[[str], None] = lambda message: None,
    messages: Optional[Dict[int, int]] = None,
) -> Tuple[Dict[Tuple[str, int], List[Dict[str, Any]]], Dict[str, str], Optional[Tuple[int, int]]]:
    """Start every stack's server, then measure each in turn at each count of
    connections, ``repeats`` times.

    Returns:
        ((stack, connections) -> the results of its good runs, stack -> why
        it has none, the (server, wsload) CPUs or None).

    Raises:
        GroupSkipped: wsload cannot be built here.
    """
    loadgen.build()  # GroupSkipped before any server starts
    messages = messages or MESSAGES
    server_cpu, client_cpu = cpu_pair()
    results: Dict[Tuple[str, int], List[Dict[str, Any]]] = {}
    problems: Dict[str, str] = {}
    ports: Dict[str, Tuple[int, int]] = {}
    with contextlib.ExitStack() as servers:
        for stack in stacks:
            absent = missing(stack)
            if absent:
                problems[stack] = f"not installed: {', '.join(absent)}"
                continue
            step(f"starting {LABELS[stack]}")
            try:
                ports[stack] = servers.enter_context(server(stack, server_cpu))
            except ServerError as exc:
                problems[stack] = f"server: {exc}"
        for run in range(repeats):
            for stack, (port, pid) in ports.items():
                for clients in counts:
                    if stack in problems:
                        break
                    step(f"{LABELS[stack]}: {clients:,} connections, run {run + 1}/{repeats}")
                    try:
                        result = measure(port, pid, clients, messages[clients], client_cpu)
                    except loadgen.LoadgenError as exc:
                        problems[stack] = str(exc)
                        break
                    why = failure(result)
                    if why:
                        problems[stack] = f"{clients:,} connections: {why}"
                        break
                    results.setdefault((stack, clients), []).append(result)
    pin = (server_cpu, client_cpu) if server_cpu is not None and client_cpu is not None else None
    return {k: r for k, r in results.items() if k[0] not in problems}, problems, pin


def _key(clients: int) -> str:
    return f"{clients // 1000}k" if clients % 1000 == 0 else str(clients)


def _median(values: Sequence[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _round(value: Optional[float], digits: int = 2) -> Optional[float]:
    return None if value is None else round(value, digits)


def measures(results: Dict[Tuple[str, int], List[Dict[str, Any]]], counts: Sequence[int]) -> List[Measure]:
    """The group's measures from :func:`run_stacks`'s results."""
    out: List[Measure] = []
    for clients in counts:
        order = [s for s in STACKS if (s, clients) in results]
        if not order:
            continue
        runs = {s: results[(s, clients)] for s in order}
        fastws = [LABELS[s] for s in FASTWS if s in runs]
        floor = LABELS[FLOOR] if FLOOR in runs else None
        k = _key(clients)
        count = f"{clients:,} connections"
        extra = {
            LABELS[s]: {
                "server CPU per delivery (µs)": _round(_median([r["server_us"] for r in runs[s]])),
                "last client, message 0 (ms)": _round(_median([r["latency_ms"] for r in runs[s]])),
                "last client, last message (ms)": _round(_median([r["last_ms"][-1] for r in runs[s]])),
                "messages per burst": runs[s][0]["messages"],
            }
            for s in order
        }
        out.append(
            Measure(
                id=f"broadcast.latency_{k}",
                title=f"Time until the last of {count} has one {SIZE} B message",
                unit="ms",
                higher_is_better=False,
                samples={LABELS[s]: [r["latency_ms"] for r in runs[s]] for s in order},
                fastws=fastws,
                floor=floor,
                chart="broadcast.latency",
                short=count,
                note="From the trigger leaving wsload until the last connection had message 0 of the burst"
                " (every server sends message 0 to all before message 1 to any); the trigger's own trip is in it.",
            )
        )
        out.append(
            Measure(
                id=f"broadcast.rate_{k}",
                title=f"Deliveries per second, {SIZE} B messages to {count}",
                unit="deliveries/s",
                higher_is_better=True,
                samples={LABELS[s]: [r["rate"] for r in runs[s]] for s in order},
                fastws=fastws,
                floor=floor,
                chart="broadcast.rate",
                short=count,
                extra=extra,
                note=f"{MESSAGES.get(clients, '?')} messages in a burst to every connection: connections x messages"
                " over the time from the trigger to the last delivery.",
            )
        )
        cpu = {LABELS[s]: [r["server_us"] for r in runs[s] if r["server_us"] is not None] for s in order}
        cpu = {label: values for label, values in cpu.items() if values}
        if cpu:
            out.append(
                Measure(
                    id=f"broadcast.cpu_{k}",
                    title=f"Server CPU time per delivery, {SIZE} B messages to {count}",
                    unit="µs",
                    higher_is_better=False,
                    samples=cpu,
                    fastws=[label for label in fastws if label in cpu],
                    floor=floor if floor in cpu else None,
                    chart="broadcast.cpu",
                    short=count,
                    note="The server's main thread's CPU time (from /proc, sampled every millisecond) from the"
                    " trigger to the last delivery (the bounds wsload reports), over the deliveries; each bound is read"
                    " to about a millisecond, so a burst of ~15 ms (one write per connection for the whole burst)"
                    " is within some 5-10 %.",
                )
            )
    return out


def run_group(ctx: Context) -> GroupResult:
    """The broadcast group of ``python -m bench``.

    Raises:
        GroupSkipped: No C compiler for wsload, uvloop missing, or no stack ran.
    """
    if importlib.util.find_spec("uvloop") is None:
        raise GroupSkipped("uvloop is not installed (every server runs on it)")
    counts, repeats = settings(ctx.mode)
    results, problems, pin = run_stacks(STACKS, counts, repeats, ctx.step)
    if not results:
        raise GroupSkipped("no stack could be measured: " + "; ".join(f"{s}: {w}" for s, w in problems.items()))
    placement = (
        f"the servers pinned to CPU {pin[0]}, wsload to CPU {pin[1]}" if pin else "no CPU pinning (fewer than 2 CPUs)"
    )
    bursts = ", ".join(f"{MESSAGES[n]} for {n:,}" for n in counts if n in MESSAGES)
    method = (
        "Each stack's broadcast server (bench/broadcast/servers.py: fastws.broadcast() from serve() and from a"
        " Listener, fastws's broadcast_many() of the whole burst from a Listener, websockets.broadcast(),"
        " aiohttp's `await ws.send_bytes()` over its connections, picows's"
        " transport.send() loop, socketify's app.publish() to a topic every connection subscribed, and a bare"
        " uvloop protocol writing one prebuilt frame to each transport as the floor) runs in its own process on"
        f" uvloop, all started at once; {placement}. For each count of connections wsload (bench/loadgen, C with"
        f" epoll) opens them, sends the trigger on the first, and times each of the K messages of {SIZE} bytes"
        f" the server then sends to every connection (K = {bursts});"
        f" {repeats} run(s) per count, stacks in turn within each repeat. A run with an error or a missing"
        " delivery voids the stack."
    )
    notes = []
    with contextlib.suppress(OSError, AttributeError):
        notes.append(f"Load average at the end of the group: {os.getloadavg()[0]:.2f}.")
    if any(s == "fastws-many" for s, _ in results):
        notes.append(
            "fastws broadcast_many() gives the whole burst to each connection in one write, as socketify's corking"
            " does on its own: past one write per delivery, and its first message arrives with its last."
        )
    if any(s == "picows" for s, _ in results) and importlib.util.find_spec("aiofastnet") is not None:
        notes.append(
            "picows runs on aiofastnet's transport (its default when installed), whose write costs less than"
            " uvloop's transport.write that the floor and the other stacks use."
        )
    if any(s == "socketify" for s, _ in results):
        notes.append(
            "socketify (uWebSockets) corks: app.publish() queues the message and the whole burst goes out to each"
            " connection in one write at the end of the loop iteration, so its rate is beyond one write per"
            " delivery, and its first message arrives only with the last."
        )
    return GroupResult(
        measures=measures(results, counts),
        skipped={LABELS[s]: why for s, why in problems.items()},
        method=method,
        notes=notes,
        versions=_versions(),
    )


def _versions() -> Dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for dist in ("websockets", "aiohttp", "picows", "socketify", "uvloop"):
        with contextlib.suppress(PackageNotFoundError):
            found[dist] = version(dist)
    return found

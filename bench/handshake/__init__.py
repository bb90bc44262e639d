"""Handshakes: how many WebSocket sessions a server completes per second.

    python -m bench.handshake            # the table (about a minute)
    python -m bench.handshake --quick    # smoke run (seconds)

A session is what a short-lived client costs a server: a TCP connection, the
HTTP upgrade, one 16-byte binary message echoed, the closing handshake (code
1000), and the server closing TCP. The sessions come from :mod:`bench.loadgen`'s
``wsload handshake`` (C, epoll), which keeps 64 of them in flight and checks
every step (the 101 status, Sec-WebSocket-Accept, the echo, the close code), so
the client's own cost stays far below the server's.

Each stack's echo server (:mod:`bench.echo.servers`, on uvloop; socketify on
its own loop over uvloop) runs in a process of its own, pinned to one CPU,
wsload to another. The floor, a bare uvloop :class:`asyncio.Protocol` that
answers one read with the same bytes and closes (:mod:`bench.handshake.servers`),
driven by ``wsload --raw 1`` (connect, 16 bytes each way, server closes), is
what accepting and closing a TCP connection costs on that loop. The full run
measures every stack on asyncio's own loop as well (``*.asyncio`` measures). All servers run
at once, and each repeat measures every stack in turn, so that a change of load
on the machine touches every stack alike.

Two measures: ``handshake.sessions`` (sessions per second) and ``handshake.cpu``
(the server's CPU time, user + system from /proc, per session: less noisy than
the rate on a shared machine). :func:`run_group` is the group of
``python -m bench``; :func:`measure_stack` one run of one stack.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import statistics
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from bench.echo.clients import cpu_seconds
from bench.results import Context, GroupResult, GroupSkipped, Measure

from .. import loadgen

__all__ = [
    "STACKS", "LABELS", "LOOPS", "FLOOR", "label", "missing", "settings", "measure_stack", "run_stacks", "measures",
    "run_group",
]

#: The floor's name: a bare uvloop protocol, in :mod:`bench.handshake.servers`.
FLOOR = "floor"
#: Stacks, in table order; the floor last.
STACKS: Tuple[str, ...] = ("fastws", "fastws-listener", "websockets", "aiohttp", "picows", "socketify", FLOOR)
LABELS: Dict[str, str] = {
    "fastws": "fastws serve()",
    "fastws-listener": "fastws Listener",
    "websockets": "websockets",
    "aiohttp": "aiohttp",
    "picows": "picows",
    "socketify": "socketify",
    FLOOR: "bare uvloop protocol (floor)",
}
LOOPS = ("uvloop", "asyncio")
FASTWS = ("fastws", "fastws-listener")
#: Modules each stack's server needs (and uvloop, on uvloop).
REQUIRES: Dict[str, Tuple[str, ...]] = {
    "fastws": ("fastws",),
    "fastws-listener": ("fastws",),
    "websockets": ("websockets",),
    "aiohttp": ("aiohttp",),
    "picows": ("picows",),
    "socketify": ("socketify",),
    FLOOR: (),
}

CONCURRENCY = 64  #: sessions in flight
SIZE = 16  #: bytes of the message echoed in each session
WARMUP = 0.25  #: seconds of sessions before each measured window
#: Errors tolerated per completed session before a run counts as failed.
ERROR_RATE = 0.001


def settings(mode: str) -> Tuple[int, float, Tuple[str, ...]]:
    """(repeats, seconds per run, loops) for a mode of :data:`bench.results.MODES`."""
    return {"quick": (1, 1.0, LOOPS[:1]), "default": (3, 2.0, LOOPS[:1]), "full": (5, 3.0, LOOPS)}[mode]


def label(stack: str, loop: str = "uvloop") -> str:
    """What a reader sees for ``stack``; the floor names its loop."""
    return f"bare {loop} protocol (floor)" if stack == FLOOR else LABELS[stack]


def missing(stack: str, loop: str = "uvloop") -> List[str]:
    """The modules ``stack`` needs on ``loop`` that are not installed."""
    needs = REQUIRES[stack] + (("uvloop",) if loop == "uvloop" else ())
    return [m for m in needs if importlib.util.find_spec(m) is None]


def cpu_pair() -> Tuple[Optional[int], Optional[int]]:
    """(server's CPU, wsload's CPU): two different CPUs this process may use,
    or (None, None) where there are fewer than two."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None, None
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)


def measure_stack(stack: str, port: int, pid: int, duration: float, cpu: Optional[int]) -> Dict[str, Any]:
    """One run of wsload against the server of ``stack`` (process ``pid``).

    Returns:
        wsload's output, with ``server_us``: the server's CPU time per
        completed session in microseconds (None where /proc cannot tell).

    Raises:
        bench.loadgen.LoadgenError: wsload could not run.
    """
    before = cpu_seconds(pid)
    result = loadgen.handshake(
        port, concurrency=CONCURRENCY, duration=duration, size=SIZE, warmup=WARMUP, cpu=cpu,
        raw=stack == FLOOR,
    )
    after = cpu_seconds(pid)
    completed = result.get("completed") or 0
    if before is None or after is None or not completed:
        result["server_us"] = None
    else:
        # Every session whose work the interval holds ended in it (wsload
        # drains the sessions in flight): warm-up, window and drain alike.
        result["server_us"] = (after - before) / completed * 1e6
    return result


def failure(result: Dict[str, Any]) -> Optional[str]:
    """Why a run's numbers are void (too many errors, aborted), or None."""
    errors = result.get("error_total", 0)
    completed = result.get("completed", 0)
    if result.get("aborted") or not result.get("sessions"):
        return f"{errors} errors, {completed} sessions; first: {result.get('first_error')}"
    if errors > ERROR_RATE * completed:
        return f"{errors} errors in {completed} sessions; first: {result.get('first_error')}"
    return None


def run_stacks(
    stacks: Sequence[str],
    repeats: int,
    duration: float,
    step: Callable[[str], None] = lambda message: None,
    loop: str = "uvloop",
) -> Tuple[Dict[str, List[Dict[str, Any]]], Dict[str, str], Optional[Tuple[int, int]]]:
    """Start every stack's server on ``loop``, then measure each in turn,
    ``repeats`` times.

    Returns:
        (stack -> the wsload results of its good runs, stack -> why it has
        none or lost some, the (server, wsload) CPUs or None).

    Raises:
        GroupSkipped: wsload cannot be built here.
    """
    # Imported here, not at the top: python -m bench.handshake.servers imports this package.
    from .servers import ServerError, server

    loadgen.build()  # GroupSkipped before any server starts
    server_cpu, client_cpu = cpu_pair()
    results: Dict[str, List[Dict[str, Any]]] = {}
    problems: Dict[str, str] = {}
    ports: Dict[str, Tuple[int, int]] = {}
    with contextlib.ExitStack() as servers:
        for stack in stacks:
            absent = missing(stack, loop)
            if absent:
                problems[stack] = f"not installed: {', '.join(absent)}"
                continue
            step(f"starting {label(stack, loop)}")
            running = server(stack, loop, server_cpu)
            try:
                ports[stack] = running.__enter__()
            except ServerError as exc:
                problems[stack] = str(exc)
                continue
            servers.push(_exit_recorded(stack, running, problems))
        for run in range(repeats):
            for stack, (port, pid) in ports.items():
                if stack in problems:
                    continue
                step(f"{label(stack, loop)}: run {run + 1}/{repeats}")
                try:
                    result = measure_stack(stack, port, pid, duration, client_cpu)
                except loadgen.LoadgenError as exc:
                    problems[stack] = str(exc)
                    continue
                why = failure(result)
                if why:
                    problems[stack] = why
                    continue
                results.setdefault(stack, []).append(result)
    pin = (server_cpu, client_cpu) if server_cpu is not None and client_cpu is not None else None
    return {s: r for s, r in results.items() if s not in problems}, problems, pin


def _exit_recorded(stack: str, running: Any, problems: Dict[str, str]) -> Callable[..., bool]:
    """An exit callback for ``running`` (a :func:`.servers.server` context)
    that records, instead of raising, the :class:`.servers.ServerError` it
    raises on the way out when the server died during the runs: that stack is
    void, the others keep their figures."""
    from .servers import ServerError

    def exit_(*exc_info: Any) -> bool:
        try:
            return bool(running.__exit__(*exc_info))
        except ServerError as exc:
            problems.setdefault(stack, str(exc))
            return False

    return exit_


def _median(values: Sequence[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def measures(results: Dict[str, List[Dict[str, Any]]], loop: str) -> List[Measure]:
    """``handshake.sessions`` and ``handshake.cpu`` (``.asyncio`` appended on
    asyncio's loop) from the good runs of each stack."""
    order = [s for s in STACKS if s in results]
    suffix = "" if loop == "uvloop" else f".{loop}"
    on = "" if loop == "uvloop" else f", on {loop}"
    sessions = {label(s, loop): [r["rate"] for r in results[s]] for s in order}
    cpu: Dict[str, List[float]] = {}
    for s in order:
        values = [r["server_us"] for r in results[s] if r["server_us"] is not None]
        if values:
            cpu[label(s, loop)] = values
    extra = {
        label(s, loop): {
            "p50 latency (ms)": _round(_median([r["latency_ms"]["p50"] for r in results[s]]), 2),
            "p99 latency (ms)": _round(_median([r["latency_ms"]["p99"] for r in results[s]]), 2),
        }
        for s in order
    }
    fastws = [LABELS[s] for s in FASTWS if s in results]
    floor = label(FLOOR, loop) if FLOOR in results else None
    found = [
        Measure(
            id=f"handshake.sessions{suffix}",
            title=f"Sessions per second (connect, upgrade, {SIZE} B echo, close; {CONCURRENCY} clients{on})",
            unit="sessions/s",
            higher_is_better=True,
            samples=sessions,
            fastws=fastws,
            floor=floor,
            short=loop,
            extra=extra,
            note=f"{CONCURRENCY} sessions in flight from wsload (C, epoll); the floor is TCP connect,"
            f" {SIZE} bytes each way and close, on a bare {loop} protocol.",
        )
    ]
    if cpu:
        found.append(
            Measure(
                id=f"handshake.cpu{suffix}",
                title=f"Server CPU time per session (user + system{on})",
                unit="µs",
                higher_is_better=False,
                samples=cpu,
                fastws=[name for name in fastws if name in cpu],
                floor=floor if floor in cpu else None,
                short=loop,
                note="The server process's CPU time over a run (from /proc) over the sessions it completed.",
            )
        )
    return found


def run_group(ctx: Context) -> GroupResult:
    """The handshake group of ``python -m bench``.

    Raises:
        GroupSkipped: No C compiler for wsload, uvloop missing, or no stack
            could be measured.
    """
    if importlib.util.find_spec("uvloop") is None:
        raise GroupSkipped("uvloop is not installed (the servers run on it)")
    repeats, duration, loops = settings(ctx.mode)
    found: List[Measure] = []
    skipped: Dict[str, str] = {}
    pin: Optional[Tuple[int, int]] = None
    measured: List[str] = []
    for loop in loops:
        results, problems, pin = run_stacks(STACKS, repeats, duration, ctx.step, loop)
        where = "" if loop == "uvloop" else f" on {loop}"
        skipped.update({label(s, loop) + ("" if s == FLOOR else where): why for s, why in problems.items()})
        if results:
            found += measures(results, loop)
            measured += [s for s in STACKS if s in results]
    if not found:
        raise GroupSkipped("no stack could be measured: " + "; ".join(f"{s}: {w}" for s, w in skipped.items()))
    placement = (
        f"the server pinned to CPU {pin[0]}, wsload to CPU {pin[1]}" if pin else "no CPU pinning (fewer than 2 CPUs)"
    )
    loops_text = " and ".join(loops)
    method = (
        f"Each stack's echo server runs in its own process on {loops_text} (socketify drives its libuv loop from"
        f" that loop), all started at once; {placement}. wsload (bench/loadgen/wsload.c, C with epoll) keeps"
        f" {CONCURRENCY} sessions in flight: TCP connect, HTTP upgrade (status, Upgrade, Connection and"
        f" Sec-WebSocket-Accept checked), one masked {SIZE} B binary message and its echo compared, close 1000"
        f" both ways, the server closing TCP first. {repeats} run(s) of {duration:g} s per stack after"
        f" {WARMUP:g} s of warm-up, stacks taken in turn within each repeat. Rate: sessions ended within the"
        f" window over its length. Server CPU: the process's user + system time over the whole run (from /proc)"
        f" over the sessions completed in it. A run with errors above {ERROR_RATE:.1%} of its sessions voids"
        " the stack."
    )
    notes = []
    load = _loadavg()
    if load is not None:
        notes.append(f"Load average at the end of the group: {load:.2f}.")
    if "socketify" in measured:
        notes.append(
            "socketify polls libuv from its asyncio loop (call_soon while busy, then every 1-10 ms when idle), so"
            " its CPU time includes that polling."
        )
    return GroupResult(measures=found, skipped=skipped, method=method, notes=notes, versions=_versions())


def _round(value: Optional[float], digits: int = 1) -> Optional[float]:
    return None if value is None else round(value, digits)


def _loadavg() -> Optional[float]:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def _versions() -> Dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for dist in ("websockets", "aiohttp", "picows", "socketify", "uvloop"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return found

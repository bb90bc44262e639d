"""The ASGI group of ``python -m bench``: :func:`run_group`.

For each server loop (asyncio, uvloop): every backend's echo server at once,
each in its own process (:class:`bench.asgi.__main__.Servers`), then one
client process that measures them in turns (:func:`bench.asgi.__main__.run_client`:
bench.echo's fastws Listener client on uvloop for every server), then the
servers are stopped. Each turn is a sample; the measures are bench.echo's
(:func:`bench.echo.group.echo_measures`): 32 B round trips/s, 1 MiB MB/s and
server CPU per 32 B echo, per loop. fastws's stacks are uvicorn with fastws's
backend (with Starlette, and with a bare ASGI app); ``fastws.serve`` alone, no
ASGI at all, is the bound every backend is held against, drawn as the floor.
"""

from __future__ import annotations

import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bench.asgi import BACKENDS, CEILING, LABELS
from bench.asgi.__main__ import DEFAULT_CLIENT, Servers, run_client, unavailable
from bench.echo import LOOPS
from bench.echo.__main__ import LOOP_MODULES, _available
from bench.echo.group import EchoSpec, echo_measures, pin_or_none, versions
from bench.results import Context, GroupResult, GroupSkipped, Measure

Key = Tuple[str, str]  # (server loop, backend)

FASTWS = ("fastws", "fastws-bare")


def collect(
    loops: Sequence[str],
    backends: Sequence[str],
    runs: int,
    duration: float,
    warmup: float,
    step: Any,
    client_loop: str,
    pin: Optional[Tuple[int, int]] = None,
) -> Tuple[Dict[Key, List[Dict[str, Any]]], Dict[Key, str]]:
    """Measure every backend on each server loop in ``runs`` turns.

    Returns:
        The turns by (loop, backend), in bench.echo's client format (a failed
        server: one ``{"error": ...}``), and the cases that could not run.
    """
    skipped: Dict[Key, str] = {}
    for loop in loops:
        for backend in backends:
            if not _available(LOOP_MODULES[loop]):
                skipped[(loop, backend)] = f"{loop} not installed"
            else:
                reason = unavailable(backend)
                if reason:
                    skipped[(loop, backend)] = reason
    server_cpu, client_cpu = pin if pin else (None, None)
    results: Dict[Key, List[Dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="fastws-asgi-") as tmp:
        for loop in loops:
            keys = [(loop, b) for b in backends if (loop, b) not in skipped]
            if not keys:
                continue
            servers = Servers(tmp)
            try:
                step(f"asgi: starting {len(keys)} servers on {loop}")
                servers.start(keys, None, server_cpu)
                seconds = len(keys) * (2 * warmup + 2 * runs * duration)
                step(f"asgi: measuring {len(keys)} servers on {loop}, {runs} turns (~{seconds:.0f} s)")
                results.update(
                    run_client(servers, keys, DEFAULT_CLIENT, client_loop, runs, duration, warmup, client_cpu)
                )
            finally:
                servers.stop()
    return results, skipped


def to_measures(
    results: Dict[Key, List[Dict[str, Any]]], loops: Sequence[str], backends: Sequence[str]
) -> Tuple[List[Measure], List[str]]:
    """The group's measures (``asgi.rate.LOOP``, ``asgi.mbps.LOOP``,
    ``asgi.cpu.LOOP``) of :func:`collect`'s results, and notes on failures."""
    spec = EchoSpec(
        group="asgi",
        what="ASGI servers, one connection each",
        rate_note="One connection per server, one message in flight; every server measured in each turn by"
        " the same client (fastws's Listener client on uvloop). fastws.serve alone, no ASGI, is the ceiling.",
        fastws=[LABELS[b] for b in FASTWS],
        floor=LABELS[CEILING],
    )
    return echo_measures(results, loops, backends, LABELS, spec)


def run_group(ctx: Context) -> GroupResult:
    """Every ASGI backend on asyncio and uvloop, in turns.

    quick: 2 turns of 0.1 s; default: 3 turns of 0.3 s; full: 6 turns of 0.5 s
    (the standalone default).

    Raises:
        GroupSkipped: when uvicorn is not installed.
    """
    if not _available("uvicorn"):
        raise GroupSkipped("uvicorn is not installed")
    runs, duration, warmup = ctx.pick((2, 0.1, 0.05), (3, 0.3, 0.2), (6, 0.5, 0.3))
    loops = list(LOOPS)
    backends = list(BACKENDS)
    client_loop = "uvloop" if _available("uvloop") else "asyncio"
    pin = pin_or_none()
    results, skipped = collect(loops, backends, runs, duration, warmup, ctx.step, client_loop, pin)
    measures, notes = to_measures(results, loops, backends)
    where = f"servers on CPU {pin[0]}, the client on CPU {pin[1]}" if pin else "placed by the scheduler"
    method = (
        "A Starlette echo endpoint on uvicorn with each WebSocket backend (fastws's, websockets-sansio,"
        " websockets legacy, wsproto, wsproto patched by fastws.accelerate), Hypercorn and granian, and"
        " fastws.serve alone as the ceiling; for each server loop, every server in its own process at once,"
        f" one client process (fastws's Listener client on {client_loop}) measuring them in {runs} turns,"
        f" the order rotated each turn: {warmup} s of warm-up per size, then {duration} s of 32 B round trips"
        f" and {duration} s of 1 MiB messages per server and turn, every echo checked; {where}."
    )
    return GroupResult(
        measures=measures,
        skipped={f"{LABELS[b]} on {loop}": reason for (loop, b), reason in skipped.items()},
        method=method,
        notes=notes,
        versions=versions(("starlette", "hypercorn", "granian", "httptools")),
    )

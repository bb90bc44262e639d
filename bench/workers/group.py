"""The worker-scaling group of ``python -m bench``: :func:`run_group`.

For each run, server and worker count N (1, then 2),
:func:`bench.workers.__main__.run_case`: N server processes on one port with
SO_REUSEPORT (or ``python -m fastws run --workers N``), N client processes of
one connection each, moved until every worker holds one, then 32 B round trips
on all of them at once. Measures: the total round trips per second with 1 and
with 2 workers (one chart, the worker counts as its groups), with the workers'
CPU time per round trip and the connections per worker beside them, and the
ratio 2 workers / 1 worker of each run.
"""

from __future__ import annotations

import argparse
import tempfile
from typing import Any, Dict, List, Sequence, Tuple

from bench.echo import SMALL
from bench.echo.__main__ import CaseError
from bench.echo.group import labelled, median_or_none
from bench.results import Context, GroupResult, Measure
from bench.workers import LABELS, STACKS
from bench.workers.__main__ import run_case

Key = Tuple[str, int]  # (stack, workers)
COUNTS = (1, 2)
FASTWS = ("fastws-run", "fastws", "fastws-listener")
FLOOR = "raw-tcp"


def settings(duration: float, warmup: float) -> argparse.Namespace:
    """The settings :func:`run_case` reads, as ``python -m bench.workers`` passes them by default."""
    return argparse.Namespace(
        duration=duration, warmup=warmup, balance=True, loop="asyncio", pin=False, connections=1
    )


def collect(
    stacks: Sequence[str], args: argparse.Namespace, repeat: int, step: Any
) -> Dict[Key, List[Dict[str, Any]]]:
    """Every (stack, N) ``repeat`` times, the sequence once per repeat: the
    results by (stack, N), ``{"error": ...}`` for a run that failed."""
    results: Dict[Key, List[Dict[str, Any]]] = {}
    cases = [(stack, n) for stack in stacks for n in COUNTS]
    total, done = len(cases) * repeat, 0
    with tempfile.TemporaryDirectory(prefix="fastws-workers-") as tmp:
        for _ in range(repeat):
            for stack, n in cases:
                done += 1
                step(f"workers: {LABELS[stack]}, {n} worker{'s' if n > 1 else ''} ({done}/{total})")
                try:
                    result = run_case(stack, n, args, tmp)
                except CaseError as exc:
                    result = {"stack": stack, "workers": n, "error": str(exc)}
                results.setdefault((stack, n), []).append(result)
    return results


def to_measures(
    results: Dict[Key, List[Dict[str, Any]]], stacks: Sequence[str]
) -> Tuple[List[Measure], List[str]]:
    """``workers.rate.1``, ``workers.rate.2`` (chart ``workers.rate``) and
    ``workers.scaling`` of :func:`collect`'s results, and notes on failures."""
    order = [LABELS[s] for s in stacks]
    fastws = [LABELS[s] for s in FASTWS]
    floor = LABELS[FLOOR]
    measures: List[Measure] = []
    notes: List[str] = []
    for n in COUNTS:
        samples: Dict[str, List[float]] = {}
        extra: Dict[str, Dict[str, Any]] = {}
        for stack in stacks:
            runs = results.get((stack, n), [])
            ok = [r for r in runs if "error" not in r]
            failed = [r["error"] for r in runs if "error" in r]
            if failed:
                notes.append(f"{LABELS[stack]}, {n} worker(s): {len(failed)} of {len(runs)} runs failed: {failed[-1]}")
            if not ok:
                continue
            samples[LABELS[stack]] = [r["rate"] for r in ok]
            server = median_or_none(r.get("server_us") for r in ok)
            middle = sorted(ok, key=lambda r: r["rate"])[len(ok) // 2]
            extra[LABELS[stack]] = {
                "server CPU per round trip (µs)": None if server is None else round(server, 1),
                "connections per worker": "/".join(str(c) for c in middle["spread"]),
            }
        if samples:
            measures.append(
                Measure(
                    id=f"workers.rate.{n}",
                    title=f"Echo round trips per second, {SMALL} B, {n} worker{'s' if n > 1 else ''}, one client"
                    " connection per worker",
                    unit="round trips/s",
                    higher_is_better=True,
                    samples=labelled(samples, order),
                    fastws=[label for label in fastws if label in samples],
                    floor=floor if floor in samples else None,
                    chart="workers.rate",
                    chart_title=f"Echo round trips per second, {SMALL} B, N workers with one client connection each",
                    short=f"{n} worker{'s' if n > 1 else ''}",
                    extra=extra,
                    note="All clients at once, one message in flight each; server CPU: all workers' user +"
                    " system time (from /proc) per round trip.",
                )
            )
    ratios: Dict[str, List[float]] = {}
    for stack in stacks:
        pairs = zip(results.get((stack, 1), []), results.get((stack, 2), []))
        values = [two["rate"] / one["rate"] for one, two in pairs if "error" not in one and "error" not in two]
        if values:
            ratios[LABELS[stack]] = values
    if ratios:
        measures.append(
            Measure(
                id="workers.scaling",
                title="Scaling: round trips per second with 2 workers / with 1 (each run's pair)",
                unit="x",
                higher_is_better=True,
                samples=labelled(ratios, order),
                fastws=[label for label in fastws if label in ratios],
                floor=floor if floor in ratios else None,
                note="On 2 CPUs shared with the load generator, the ratio also measures the idle wake-ups"
                " that one worker pays and two avoid: the raw TCP floor scales as much.",
            )
        )
    return measures, notes


def run_group(ctx: Context) -> GroupResult:
    """Every server with 1 and 2 workers, repeated.

    quick: 0.3 s per measure, once; default: 1 s, twice; full: 3 s, three
    times (the standalone default).
    """
    duration, warmup, repeat = ctx.pick((0.3, 0.05, 1), (1.0, 0.2, 2), (3.0, 0.3, 3))
    stacks = list(STACKS)
    results = collect(stacks, settings(duration, warmup), repeat, ctx.step)
    measures, notes = to_measures(results, stacks)
    method = (
        "N server processes on one port with SO_REUSEPORT (python -m fastws run --workers N, or N serve()"
        " processes; asyncio's loop), N client processes with one connection each (fastws's Listener client on"
        " uvloop; raw TCP for the floor), moved until every worker holds one connection; then"
        f" {warmup} s of warm-up and {duration} s of {SMALL} B round trips on all at once. {repeat} run(s) of"
        " every case, interleaved; processes placed by the scheduler. CPU times from /proc."
    )
    return GroupResult(measures=measures, method=method, notes=notes)

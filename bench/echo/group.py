"""The echo group of ``python -m bench``: :func:`run_group`.

Runs :func:`bench.echo.__main__.run_case` (an echo server process, its
client in another) for every stack on asyncio and on uvloop, repeated, and
turns the clients' results into :class:`~bench.results.Measure` objects:
32 B round trips per second, 1 MiB throughput, and the server's CPU time per
32 B echo, one measure per loop, the loops grouped on one chart per kind.

socketify has an echo server in :mod:`bench.echo.servers` but no client
library of its own: picows's client, the leanest of the others, drives it, and
its label says so (``"socketify (picows client)"``).

Also the home of what the other group adapters share: :func:`echo_measures`,
:func:`median_or_none`, :func:`labelled`, :func:`pin_or_none` and :func:`versions`.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from bench.echo import LARGE, LOOPS, SMALL, STACKS
from bench.echo.__main__ import (
    BORROWED_CLIENT,
    CASE_LABELS,
    LOOP_MODULES,
    SERVER_ONLY,
    CaseError,
    _version,
    run_case,
    unavailable,
)
from bench.results import Context, GroupResult, GroupSkipped, Measure

#: fastws's own stacks.
FASTWS = ("fastws", "fastws-listener")
FLOOR = "raw-tcp"

Key = Tuple[str, str]  # (loop, stack)


def stack_label(stack: str) -> str:
    """The label a reader sees: bench.echo's, with the client named where it is borrowed."""
    return CASE_LABELS[stack]


def group_stacks() -> List[str]:
    """bench.echo's default stacks, and the server-only ones a borrowed client can drive."""
    return list(STACKS) + list(SERVER_ONLY)


def pin_or_none() -> Optional[Tuple[int, int]]:
    """Two CPUs (server's, client's) when this process may use two or more, else None."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else None


def versions(dists: Sequence[str]) -> Dict[str, str]:
    """Distribution -> version of those of ``dists`` that are installed."""
    found = {dist: _version(dist) for dist in dists}
    return {dist: v for dist, v in found.items() if v is not None}


def median_or_none(values: Iterable[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def labelled(samples: Dict[str, List[float]], order: Sequence[str]) -> Dict[str, List[float]]:
    """``samples`` in the order of ``order``, without the labels that have none."""
    return {label: samples[label] for label in order if samples.get(label)}


def collect(
    stacks: Sequence[str],
    loops: Sequence[str],
    duration: float,
    warmup: float,
    repeat: int,
    step: Callable[[str], None],
    pin: Optional[Tuple[int, int]] = None,
) -> Tuple[Dict[Key, List[Dict[str, Any]]], Dict[Key, str]]:
    """Run every (loop, stack) ``repeat`` times, the whole sequence once per repeat.

    Returns:
        The results by (loop, stack): the client's JSON (bench.echo.clients'
        format) or ``{"error": ...}`` for each run; and the cases that could
        not run, with the reason.
    """
    skipped: Dict[Key, str] = {}
    cases: List[Key] = []
    for loop in loops:
        module = LOOP_MODULES[loop]
        for stack in stacks:
            if module is not None and importlib.util.find_spec(module) is None:
                skipped[(loop, stack)] = f"{loop} not installed"
                continue
            reason = unavailable(stack)
            if reason:
                skipped[(loop, stack)] = reason
            else:
                cases.append((loop, stack))
    results: Dict[Key, List[Dict[str, Any]]] = {}
    total = len(cases) * repeat
    done = 0
    for _ in range(repeat):
        for loop, stack in cases:
            done += 1
            step(f"echo: {stack_label(stack)} on {loop} ({done}/{total})")
            try:
                result = run_case(stack, loop, duration, warmup, pin=pin, client_stack=BORROWED_CLIENT.get(stack))
            except CaseError as exc:
                result = {"stack": stack, "loop": loop, "error": str(exc)}
            results.setdefault((loop, stack), []).append(result)
    return results, skipped


def _per_echo(run: Dict[str, Any], size: str, side: str) -> Optional[float]:
    """CPU seconds of ``side`` per echo of ``size`` ("small", "large") in one run."""
    figures = run[size]
    count = figures["round_trips" if size == "small" else "messages"]
    cpu = figures.get(f"{side}_cpu_s")
    return cpu / count if cpu is not None and count else None


CPU_NOTE = (
    "User + system time of the server process (all threads, from /proc) during the round-trip measure, divided"
    " by the round trips: the figure that other load on the machine disturbs least."
)


@dataclass
class EchoSpec:
    """How :func:`echo_measures` names and explains the measures of a group.

    Attributes:
        group: The measures' id prefix (``"echo"``: ``echo.rate.uvloop``...).
        what: What runs, in the titles (``"one connection"``).
        rate_note: The note of the round-trip measures.
        fastws: The labels of fastws's stacks.
        floor: The label of the floor (or ceiling) stack, if any.
    """

    group: str
    what: str
    rate_note: str
    fastws: Sequence[str] = ()
    floor: Optional[str] = None


def echo_measures(
    results: Dict[Key, List[Dict[str, Any]]],
    loops: Sequence[str],
    names: Sequence[str],
    labels: Dict[str, str],
    spec: EchoSpec,
) -> Tuple[List[Measure], List[str]]:
    """Measures of echo runs in bench.echo.clients' format, keyed (loop, name),
    and notes on the runs that failed.

    Per loop: ``GROUP.rate.LOOP`` (round trips/s, 32 B), ``GROUP.mbps.LOOP``
    (MB/s, 1 MiB) and ``GROUP.cpu.LOOP`` (server CPU us per 32 B echo); the
    charts ``GROUP.rate``, ``GROUP.mbps`` and ``GROUP.cpu`` group them by loop.
    """
    order = [labels[name] for name in names]
    measures: List[Measure] = []
    notes: List[str] = []
    for loop in loops:
        rate: Dict[str, List[float]] = {}
        mbps: Dict[str, List[float]] = {}
        cpu: Dict[str, List[float]] = {}
        rate_extra: Dict[str, Dict[str, Any]] = {}
        mbps_extra: Dict[str, Dict[str, Any]] = {}
        for name in names:
            runs = results.get((loop, name), [])
            ok = [r for r in runs if "error" not in r]
            failed = [r["error"] for r in runs if "error" in r]
            label = labels[name]
            if failed:
                notes.append(f"{label} on {loop}: {len(failed)} of {len(runs)} runs failed: {failed[-1]}")
            if not ok:
                continue
            rate[label] = [r["small"]["rate"] for r in ok]
            mbps[label] = [r["large"]["mb_per_s"] for r in ok]
            server_small = [_per_echo(r, "small", "server") for r in ok]
            if all(v is not None for v in server_small):
                cpu[label] = [v * 1e6 for v in server_small if v is not None]
            client_small = median_or_none(_per_echo(r, "small", "client") for r in ok)
            if client_small is not None:
                rate_extra[label] = {"client CPU per round trip (µs)": round(client_small * 1e6, 1)}
            server_large = median_or_none(_per_echo(r, "large", "server") for r in ok)
            client_large = median_or_none(_per_echo(r, "large", "client") for r in ok)
            figures = {}
            if server_large is not None:
                figures["server CPU per 1 MiB echo (ms)"] = round(server_large * 1e3, 2)
            if client_large is not None:
                figures["client CPU per 1 MiB echo (ms)"] = round(client_large * 1e3, 2)
            if figures:
                mbps_extra[label] = figures
        for kind, samples, extra in (("rate", rate, rate_extra), ("mbps", mbps, mbps_extra), ("cpu", cpu, {})):
            if not samples:
                continue
            chart_title, unit, higher, note = {
                "rate": (
                    f"Echo round trips per second, {SMALL} B messages, {spec.what}",
                    "round trips/s", True, spec.rate_note,
                ),
                "mbps": (
                    f"Echo throughput, {LARGE // 2**20} MiB messages, {spec.what}",
                    "MB/s", True, "10^6 bytes echoed per second, counted in one direction.",
                ),
                "cpu": (f"Server CPU time per {SMALL} B echo, {spec.what}", "µs", False, CPU_NOTE),
            }[kind]  # fmt: skip
            measures.append(
                Measure(
                    id=f"{spec.group}.{kind}.{loop}",
                    title=f"{chart_title} ({loop})",
                    unit=unit,
                    higher_is_better=higher,
                    samples=labelled(samples, order),
                    fastws=[label for label in spec.fastws if label in samples],
                    floor=spec.floor if spec.floor in samples else None,
                    chart=f"{spec.group}.{kind}",
                    chart_title=chart_title,
                    short=loop,
                    extra=extra,
                    note=note,
                )
            )
    return measures, notes


def to_measures(
    results: Dict[Key, List[Dict[str, Any]]], loops: Sequence[str], stacks: Sequence[str]
) -> Tuple[List[Measure], List[str]]:
    """The echo group's measures of :func:`collect`'s results (see :func:`echo_measures`)."""
    labels = {stack: stack_label(stack) for stack in stacks}
    spec = EchoSpec(
        group="echo",
        what="one connection",
        rate_note="One message in flight: send, wait for the echo, repeat. Each stack's own client (socketify:"
        " picows's); server and client in separate processes.",
        fastws=[labels[s] for s in FASTWS if s in labels],
        floor=labels.get(FLOOR),
    )
    return echo_measures(results, loops, stacks, labels, spec)


def run_group(ctx: Context) -> GroupResult:
    """The echo group: every stack on asyncio and uvloop, repeated.

    quick: 0.2 s per measure, once; default: 0.5 s per measure, twice;
    full: 2 s per measure (the standalone default), three times.

    Raises:
        GroupSkipped: when no stack can run here.
    """
    duration, warmup, repeat = ctx.pick((0.2, 0.05, 1), (0.5, 0.2, 2), (2.0, 0.3, 3))
    stacks = group_stacks()
    loops = list(LOOPS)
    pin = pin_or_none()
    results, skipped = collect(stacks, loops, duration, warmup, repeat, ctx.step, pin)
    if not results:
        raise GroupSkipped("no echo stack can run here: " + "; ".join(sorted(set(skipped.values()))))
    measures, notes = to_measures(results, loops, stacks)
    where = (
        f"server on CPU {pin[0]}, client on CPU {pin[1]}" if pin else "processes placed by the scheduler"
    )
    method = (
        f"For each loop and stack, an echo server process and a client process (each stack's own client;"
        f" socketify has none, picows's drives it), one connection with one message in flight:"
        f" {warmup} s of warm-up per size, then {duration} s of {SMALL} B round trips and {duration} s of"
        f" {LARGE // 2**20} MiB messages; every echo checked. {repeat} run(s) of every case, the cases"
        f" interleaved; {where}. CPU times from /proc."
    )
    return GroupResult(
        measures=measures,
        skipped={f"{stack_label(stack)} on {loop}": reason for (loop, stack), reason in skipped.items()},
        method=method,
        notes=notes,
        versions=versions(("aiofastnet",)),
    )

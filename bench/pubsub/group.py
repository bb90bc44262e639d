"""The pub/sub fan-out group of ``python -m bench``: :func:`run_group`.

Starts one redis-server (persistence off, a free loopback port), then for each
run and stack :func:`bench.pubsub.__main__.run_case`: the stack's server
processes, the load generator (fastws Listener subscribers on uvloop), the
servers stopped; Redis is stopped at the end, also on error. Each run is a
sample of three measures: deliveries per second, the p99 latency from publish
to the last subscriber, and the server workers' CPU time per delivery, with
fastws's four stacks (through Redis and in one process, on asyncio and uvloop)
against Django Channels (both Redis layers) and python-socketio.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from typing import Any, Dict, List, Sequence, Tuple

from bench.echo.__main__ import CaseError, _available
from bench.echo.group import labelled, median_or_none, versions
from bench.pubsub import LABELS, PEERS, REQUIRES, STACKS, USES_REDIS
from bench.pubsub.__main__ import Redis, run_case
from bench.results import Context, GroupResult, GroupSkipped, Measure

FASTWS = tuple(stack for stack in STACKS if stack.startswith("fastws"))
#: fastws in one process, without Redis: shown beside the two-worker stacks, not set against the peers.
IN_PROCESS = tuple(stack for stack in FASTWS if "local" in stack)


def settings(subscribers: int, duration: float, warmup: float) -> argparse.Namespace:
    """The settings :func:`run_case` reads, as ``python -m bench.pubsub`` would pass them."""
    return argparse.Namespace(
        subscribers=subscribers, workers=2, procs=2, window=2, rate=0.0, duration=duration, warmup=warmup,
        profile_dir=None,
    )  # fmt: skip


def collect(
    stacks: Sequence[str], args: argparse.Namespace, repeat: int, step: Any
) -> Dict[str, List[Dict[str, Any]]]:
    """Every stack ``repeat`` times (the sequence once per repeat), one Redis for all.

    Returns:
        The load generator's results by stack (``{"error": ...}`` for a run that failed).

    Raises:
        GroupSkipped: when redis-server does not start.
    """
    results: Dict[str, List[Dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="fastws-pubsub-") as tmp:
        try:
            redis = Redis(tmp) if any(s in USES_REDIS for s in stacks) else None
        except SystemExit as exc:  # Redis() says why it did not start
            raise GroupSkipped(str(exc)) from None
        try:
            total, done = len(stacks) * repeat, 0
            for _ in range(repeat):
                for stack in stacks:
                    done += 1
                    step(f"pubsub: {LABELS[stack]} ({done}/{total})")
                    try:
                        result = run_case(stack, args, redis, tmp)
                    except CaseError as exc:
                        result = {"stack": stack, "error": str(exc)}
                    results.setdefault(stack, []).append(result)
        finally:
            if redis is not None:
                redis.stop()
    return results


def to_measures(
    results: Dict[str, List[Dict[str, Any]]], stacks: Sequence[str], subscribers: int
) -> Tuple[List[Measure], List[str]]:
    """(measures, notes) of :func:`collect`'s results: ``pubsub.rate``,
    ``pubsub.p99`` and ``pubsub.cpu``."""
    labels = {stack: LABELS[stack] for stack in stacks}
    order = [labels[s] for s in stacks]
    rate: Dict[str, List[float]] = {}
    p99: Dict[str, List[float]] = {}
    cpu: Dict[str, List[float]] = {}
    rate_extra: Dict[str, Dict[str, Any]] = {}
    p99_extra: Dict[str, Dict[str, Any]] = {}
    cpu_extra: Dict[str, Dict[str, Any]] = {}
    notes: List[str] = []
    for stack in stacks:
        runs = results.get(stack, [])
        ok = [r for r in runs if "error" not in r]
        failed = [r["error"] for r in runs if "error" in r]
        label = labels[stack]
        if failed:
            notes.append(f"{label}: {len(failed)} of {len(runs)} runs failed: {failed[-1]}")
        if not ok:
            continue
        rate[label] = [r["rate"] for r in ok]
        p99[label] = [r["p99_ms"] for r in ok]
        middle = sorted(ok, key=lambda r: r["rate"])[len(ok) // 2]
        rate_extra[label] = {"connections per worker": "/".join(str(n) for n in middle["spread"])}
        p99_extra[label] = {
            "p50 (ms)": round(statistics.median(r["p50_ms"] for r in ok), 1),
            "p50 to the first subscriber (ms)": round(statistics.median(r["first_p50_ms"] for r in ok), 1),
        }
        server = [r["server_cpu_s"] / r["deliveries"] * 1e6 for r in ok if r.get("server_cpu_s") is not None]
        if len(server) == len(ok):
            cpu[label] = server
            redis = median_or_none(
                r["redis_cpu_s"] / r["deliveries"] * 1e6 if r.get("redis_cpu_s") is not None else None for r in ok
            )
            client = median_or_none(r["client_cpu_s"] / r["deliveries"] * 1e6 for r in ok)
            cpu_extra[label] = {
                "redis-server CPU per delivery (µs)": None if redis is None else round(redis, 2),
                "load generator CPU per delivery (µs)": None if client is None else round(client, 2),
            }
    fastws = [labels[s] for s in FASTWS if s in labels and s not in IN_PROCESS]
    references = [labels[s] for s in IN_PROCESS if s in labels]
    what = f"1 publisher, {subscribers:,} subscribers on 2 workers, 64 B"
    spec: List[Tuple[str, Dict[str, List[float]], Dict[str, Dict[str, Any]], str, str, bool, str]] = [
        ("rate", rate, rate_extra, f"Fan-out deliveries per second ({what})", "deliveries/s", True,
         ("At most 2 messages out; every subscriber must get every message. fastws 'in 1 process' rows hold"
         " every subscriber in one process, without Redis.")),
        ("p99", p99, p99_extra, f"Latency from publish to the last subscriber, p99 ({what})", "ms", False,
         "At saturation (2 messages out), the time until every subscriber has the message."),
        ("cpu", cpu, cpu_extra, f"Server CPU time per delivery, all workers ({what})", "µs", False,
         ("User + system time of the server's worker processes (from /proc) per message delivered to one"
         " subscriber; Redis's own CPU time is beside it.")),
    ]  # fmt: skip
    measures: List[Measure] = []
    for kind, samples, extra, title, unit, higher, note in spec:
        if samples:
            measures.append(
                Measure(
                    id=f"pubsub.{kind}",
                    title=title,
                    unit=unit,
                    higher_is_better=higher,
                    samples=labelled(samples, order),
                    fastws=[label for label in fastws if label in samples],
                    references=[label for label in references if label in samples],
                    extra=extra,
                    note=note,
                )
            )
    return measures, notes


def run_group(ctx: Context) -> GroupResult:
    """Every pub/sub stack, repeated, with one redis-server.

    quick: 200 subscribers, 0.5 s per run, once; default: 1,000 subscribers,
    1 s, twice; full: 1,000 subscribers, 3 s, three times (the standalone default).

    Raises:
        GroupSkipped: when redis-server is not on PATH or does not start.
    """
    if not shutil.which("redis-server"):
        raise GroupSkipped("redis-server is not on PATH (Debian: apt-get install redis-server)")
    subscribers, duration, warmup, repeat = ctx.pick((200, 0.5, 0.2, 1), (1000, 1.0, 0.3, 2), (1000, 3.0, 1.0, 3))
    skipped: Dict[str, str] = {}
    for stack in STACKS:
        missing = [m for m in REQUIRES[stack] if not _available(m)]
        if missing:
            skipped[LABELS[stack]] = f"{', '.join(missing)} not installed"
    stacks = [s for s in STACKS if LABELS[s] not in skipped]
    if not any(s in PEERS for s in stacks) or not any(s in FASTWS for s in stacks):
        raise GroupSkipped("no peer or no fastws stack can run: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    args = settings(subscribers, duration, warmup)
    results = collect(stacks, args, repeat, ctx.step)
    measures, notes = to_measures(results, stacks, subscribers)
    method = (
        f"One publisher and {subscribers:,} subscribers (fastws Listener connections in 2 processes, on uvloop),"
        " one topic, 64 B text messages, at most 2 messages out (each stack at the rate it sustains); every"
        " stack served as its users serve it on 2 worker processes (fastws's in-process rows: 1), one"
        f" redis-server for all, flushed between stacks. {warmup} s of warm-up, then {duration} s measured;"
        f" {repeat} run(s) of every stack, interleaved. CPU times from /proc."
    )
    return GroupResult(
        measures=measures, skipped=skipped, method=method, notes=notes,
        versions=versions(("channels_redis", "Django", "hiredis")),
    )  # fmt: skip

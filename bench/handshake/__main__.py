"""Measure WebSocket sessions per second and print the table.

    python -m bench.handshake                       # every stack, 3 runs of 2 s
    python -m bench.handshake --quick               # 1 run of 1 s
    python -m bench.handshake --full                # 5 runs of 3 s
    python -m bench.handshake --loop asyncio        # the servers on asyncio's own loop
    python -m bench.handshake --stacks fastws,picows,floor --duration 5 --repeat 3 --json out.json

See :mod:`bench.handshake` for the method. The exit status is 1 when a stack
could not be measured (not installed, no READY, too many errors), else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from typing import Any, List, Optional, Sequence

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from bench.handshake import CONCURRENCY, LOOPS, SIZE, STACKS, label, run_stacks, settings
from bench.results import GroupSkipped


def _parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.handshake", description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="1 run of 1 s per stack")
    size.add_argument("--full", action="store_true", help="5 runs of 3 s per stack")
    parser.add_argument("--stacks", help=f"comma-separated, from {','.join(STACKS)} (default: all)")
    parser.add_argument("--duration", type=float, help="seconds per run")
    parser.add_argument("--repeat", type=int, help="runs per stack")
    parser.add_argument("--loop", choices=LOOPS, default="uvloop", help="the servers' event loop (default: uvloop)")
    parser.add_argument("--json", metavar="PATH", help="also write every run's wsload output here")
    args = parser.parse_args(argv)
    if args.stacks:
        chosen = [s.strip() for s in args.stacks.split(",") if s.strip()]
        unknown = [s for s in chosen if s not in STACKS]
        if unknown:
            parser.error(f"unknown stack {', '.join(unknown)}: choose from {', '.join(STACKS)}")
        args.stacks = chosen
    else:
        args.stacks = list(STACKS)
    if args.duration is not None and not 0.05 <= args.duration <= 600:
        parser.error(f"--duration {args.duration}: expected 0.05 to 600 seconds")
    if args.repeat is not None and not 1 <= args.repeat <= 100:
        parser.error(f"--repeat {args.repeat}: expected 1 to 100")
    return args


def _fmt(value: Optional[float], digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parse(argv)
    mode = "quick" if args.quick else "full" if args.full else "default"
    repeats, duration, _ = settings(mode)
    repeats = args.repeat or repeats
    duration = args.duration or duration

    def step(message: str) -> None:
        print(f"  {message}", file=sys.stderr, flush=True)

    try:
        results, problems, pin = run_stacks(args.stacks, repeats, duration, step, args.loop)
    except GroupSkipped as exc:
        print(f"cannot run: {exc}", file=sys.stderr)
        return 1
    print(
        f"Sessions per second: connect, upgrade, {SIZE} B echo, close; {CONCURRENCY} in flight;"
        f" {repeats} x {duration:g} s per stack; servers on {args.loop}"
        + (f"; server on CPU {pin[0]}, wsload on CPU {pin[1]}" if pin else "; no CPU pinning")
    )
    try:
        print(f"load average: {os.getloadavg()[0]:.2f}")
    except OSError:
        pass
    rows: List[List[str]] = []
    for stack in args.stacks:
        runs = results.get(stack)
        if not runs:
            continue
        rates = [r["rate"] for r in runs]
        cpu = [r["server_us"] for r in runs if r["server_us"] is not None]
        rows.append([
            label(stack, args.loop),
            _fmt(statistics.median(rates)),
            f"{_fmt(min(rates))}-{_fmt(max(rates))}",
            _fmt(statistics.median(cpu) if cpu else None, 1),
            _fmt(statistics.median(r["latency_ms"]["p50"] for r in runs), 2),
            _fmt(statistics.median(r["latency_ms"]["p99"] for r in runs), 2),
            str(sum(r["error_total"] for r in runs)),
        ])
    headers = ["stack", "sessions/s", "spread", "server us/session", "p50 ms", "p99 ms", "errors"]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths))))
    for row in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    for stack, why in problems.items():
        print(f"{label(stack, args.loop)}: not measured: {why}")
    if args.json:
        payload: Any = {"repeats": repeats, "duration": duration, "pin": pin, "results": results, "problems": problems}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

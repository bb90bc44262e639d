"""Run the fastws benchmark suite and print one short summary.

    python -m bench                       # the default groups, a few minutes
    python -m bench --quick               # every group, briefly: a smoke run
    python -m bench --full                # every group, the largest counts and most repeats
    python -m bench --only handshake,memory --out results/
    python -m bench --list                # the groups, and which run by default

Each group measures fastws and its peers (websockets, aiohttp, picows,
socketify, where installed) in the same run, repeating every figure; the command
shows one line of progress per group, then a table of every measure: fastws's
best stack, the fastest peer, their ratio and who is ahead. ``--out DIR``
(default ``bench-results``) receives ``report.md`` (every table, the machine,
the versions and the method), ``results.json`` (every raw figure) and PNG charts
(with matplotlib installed). The exit status is 1 when a group failed.

The kernel benchmarks alone, with pytest-benchmark's options, are
``python -m bench.kernels``; each group also runs alone as ``python -m bench.GROUP``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Dict, List, Optional, Tuple

if __package__ in (None, ""):  # python bench/__main__.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_parser() -> argparse.ArgumentParser:
    from bench.suite import GROUPS

    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run the fastws benchmark suite: fastws against its peers, one summary table.",
        epilog="groups: " + ", ".join(group.name + ("" if group.default else " (--quick/--full)") for group in GROUPS),
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="every group, fewer repeats and smaller counts: a smoke run")
    size.add_argument("--full", action="store_true", help="every group, the largest counts and the most repeats")
    parser.add_argument("--only", metavar="GROUP[,GROUP]", help="run only these groups (in any mode)")
    parser.add_argument(
        "--out",
        metavar="DIR",
        default="bench-results",
        help="where report.md, results.json and the charts go (default: bench-results)",
    )
    parser.add_argument("--list", action="store_true", help="list the groups and exit")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from bench import charts, summary
    from bench.suite import GROUPS, machine, run_suite, select

    if args.list:
        for group in GROUPS:
            when = "default" if group.default else "--quick, --full"
            print(f"{group.name:<12} {group.title} [{when}]")
        return 0

    mode = "quick" if args.quick else "full" if args.full else "default"
    only = [name.strip() for name in args.only.split(",") if name.strip()] if args.only else None
    try:
        groups = select(mode, only)
    except ValueError as exc:
        print(f"python -m bench: {exc}", file=sys.stderr)
        return 2
    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)

    info = machine()
    info["started"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = f", load {info['load_average']:.2f}" if info.get("load_average") is not None else ""
    print(
        f"fastws benchmarks, {mode} run: {', '.join(group.name for group in groups)}\n"
        f"{info['cpu']}, {info['cpus_usable']} CPUs usable{load}; fastws {info['fastws']}; {info['python']}",
        flush=True,
    )
    started = time.monotonic()
    try:
        runs = run_suite(groups, mode, out_dir)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    seconds = time.monotonic() - started
    info["load_average_after"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    # The figures are written before the charts are drawn: a chart that fails loses no result.
    summary.write_json(os.path.join(out_dir, "results.json"), runs, info, mode, seconds)
    report_path = os.path.join(out_dir, "report.md")
    why_not = charts.unavailable()
    summary.write_report(report_path, runs, info, mode, {}, why_not or "being drawn", seconds)
    drawn: Dict[str, List[Tuple[str, str]]] = {}
    if why_not is None:
        try:
            drawn = charts.draw_all(runs, out_dir)
        except Exception as exc:  # a plotting library's failure must not cost the run
            why_not = f"failed: {type(exc).__name__}: {exc}"
    summary.write_report(report_path, runs, info, mode, drawn, why_not, seconds)

    print()
    for line in summary.summary_text(runs):
        print(line)
    notes = summary.problems(runs)
    if notes:
        print()
        for line in notes:
            print(line)
    print()
    count = sum(len(v) for v in drawn.values())
    print(f"report: {os.path.join(args.out, 'report.md')}; raw figures: {os.path.join(args.out, 'results.json')}")
    print(f"charts: {count} in {args.out}" if not why_not else f"charts: {why_not}")
    failed = [run for run in runs if run.error is not None]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

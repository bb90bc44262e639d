"""Run the kernel benchmarks and print the comparison report.

    python -m bench                      # everything, quick settings (a few minutes)
    python -m bench -k test_mask         # only what pytest's -k selects
    python -m bench -k "parse or build" --max-time 1 --json results.json
    python -m bench --report results.json   # print the report of an earlier run
    python -m bench -- -x --benchmark-disable-gc   # after --: passed to pytest

Runs ``pytest bench --benchmark-only --benchmark-json=FILE`` in a subprocess from
the repository root, then prints :mod:`bench.report` on FILE. Any option not listed
below also goes to pytest. The exit code is pytest's when it failed, else 0.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run the fastws kernel benchmarks (pytest-benchmark) and print a comparison table.",
        epilog="Unknown options, and everything after --, are passed to pytest.",
    )
    parser.add_argument("-k", dest="keyword", metavar="EXPR", help="pytest -k expression, e.g. 'test_mask and 64KiB'")
    parser.add_argument(
        "--json",
        metavar="PATH",
        help="keep pytest-benchmark's JSON results here (default: a temporary file, deleted)",
    )
    parser.add_argument(
        "--max-time",
        type=float,
        default=0.2,
        metavar="S",
        help="pytest-benchmark's --benchmark-max-time per benchmark (default: 0.2)",
    )
    parser.add_argument(
        "--min-rounds",
        type=int,
        default=5,
        metavar="N",
        help="pytest-benchmark's --benchmark-min-rounds (default: 5)",
    )
    parser.add_argument(
        "--min-time",
        type=float,
        default=0.0001,
        metavar="S",
        help="pytest-benchmark's --benchmark-min-time, the least duration of one round: "
        "fast calls are repeated within a round (default: 0.0001, which keeps timer "
        "overhead small and the JSON to a few MB)",
    )
    parser.add_argument(
        "--stat",
        choices=("median", "mean", "min"),
        default="median",
        help="statistic for throughput and ratios in the report (default: median)",
    )
    parser.add_argument(
        "--baseline",
        metavar="NAME",
        help="compare every group against this implementation (its display name, e.g. 'fastws[cython] apply_mask')",
    )
    parser.add_argument(
        "--report",
        metavar="PATH",
        help="do not run anything: print the report of an existing JSON file",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    args, unknown = build_parser().parse_known_args(argv)
    extra = unknown + extra

    # Imported here so that `python -m bench --help` works without pytest.
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from bench import report

    if args.report:
        report.report(report.load(args.report), stat=args.stat, baseline=args.baseline)
        return 0

    if args.json:
        json_path = os.path.abspath(args.json)
        cleanup = False
    else:
        fd, json_path = tempfile.mkstemp(prefix="fastws-bench-", suffix=".json")
        os.close(fd)
        os.unlink(json_path)  # written by pytest-benchmark only if something ran
        cleanup = True

    cmd = [
        sys.executable,
        "-m",
        "pytest",
        BENCH_DIR,
        "--benchmark-only",
        f"--benchmark-json={json_path}",
        f"--benchmark-max-time={args.max_time}",
        f"--benchmark-min-rounds={args.min_rounds}",
        f"--benchmark-min-time={args.min_time}",
        "--benchmark-quiet",  # our report replaces pytest-benchmark's own table
        "-q",
        "-rs",  # list skipped implementations with their reasons
        "-p",
        "no:cacheprovider",
    ]
    if args.keyword:
        cmd += ["-k", args.keyword]
    cmd += extra

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    print("+ " + " ".join(cmd[2:]), flush=True)
    try:
        rc = subprocess.call(cmd, cwd=ROOT, env=env)
    except KeyboardInterrupt:
        rc = 130

    try:
        # pytest-benchmark creates the file even when nothing ran (left empty).
        data = None
        if os.path.exists(json_path) and os.path.getsize(json_path) > 0:
            try:
                data = report.load(json_path)
            except ValueError as exc:
                print(f"\ncannot read {json_path}: {exc}", file=sys.stderr)
        if data is not None:
            print()
            sys.stdout.flush()
            report.report(data, stat=args.stat, baseline=args.baseline)
            if not cleanup:
                print(f"\nresults kept in {json_path}")
        else:
            print("\nno benchmark results were written", file=sys.stderr)
    finally:
        if cleanup and os.path.exists(json_path):
            os.unlink(json_path)

    if rc != 0:
        print(f"\npytest exited with status {rc}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())

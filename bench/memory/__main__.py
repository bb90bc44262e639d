"""Print the idle memory table: server RSS per open idle connection, by stack.

    python -m bench.memory                        # 10,000 connections per stack (about a minute)
    python -m bench.memory --quick                # 1,000 connections
    python -m bench.memory --stacks fastws,fastws-listener,floor -n 5000 --repeat 3

See :mod:`bench.memory` for the method.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from typing import List, Optional

BENCH_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if BENCH_PARENT not in sys.path:
    sys.path.insert(0, BENCH_PARENT)

from bench.memory import LABELS, STACKS, run_group  # noqa: E402
from bench.results import Context  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="1,000 connections per stack")
    size.add_argument("--full", action="store_true", help="10,000 connections, 3 runs per stack")
    parser.add_argument("--stacks", help=f"comma-separated, from {','.join(STACKS)} (default: all)")
    parser.add_argument("-n", "--connections", type=int, help="connections per measure")
    parser.add_argument("--repeat", type=int, help="runs per stack")
    parser.add_argument("--logs", help="keep the servers' and openers' stderr in this directory")
    args = parser.parse_args(argv)
    stacks = STACKS if not args.stacks else tuple(s.strip() for s in args.stacks.split(",") if s.strip())
    unknown = [s for s in stacks if s not in STACKS]
    if unknown:
        parser.error(f"unknown stack(s): {', '.join(unknown)} (choose from {', '.join(STACKS)})")
    mode = "quick" if args.quick else "full" if args.full else "default"

    def step(message: str) -> None:
        print(f"  {message}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="fastws-memory-") as tmp:
        ctx = Context(mode=mode, out_dir=args.logs or tmp, step=step)
        result = run_group(ctx, stacks, args.connections, args.repeat)
    measures = {m.id: m for m in result.measures}
    plain, deflate = measures.get("memory.idle"), measures.get("memory.idle_deflate")
    labels = [LABELS[s] for s in stacks]
    title = plain.title if plain else deflate.title if deflate else "Server memory per open idle connection"
    print()
    print(title.split(" (")[0] + ", KiB (median of runs)")
    print(f"  {'stack':<26} {'no compression':>15} {'permessage-deflate':>19}")

    def cell(measure, label: str) -> str:
        if measure is None or label not in measure.samples:
            return "-"
        values = measure.samples[label]
        text = f"{statistics.median(values):.2f}"
        if len(values) > 1:
            text += f" ({min(values):.2f}-{max(values):.2f})"
        return text

    for label in labels:
        print(f"  {label:<26} {cell(plain, label):>15} {cell(deflate, label):>19}")
    for what, why in result.skipped.items():
        print(f"  skipped {what}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

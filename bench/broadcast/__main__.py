"""Run the broadcast benchmark and print its table.

    python -m bench.broadcast                       # 1,000, 5,000 and 10,000 connections, 2 repeats
    python -m bench.broadcast --quick               # 1,000 connections, once
    python -m bench.broadcast --stacks fastws,floor --counts 5000 --repeat 5
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.broadcast import LABELS, MESSAGES, SIZE, STACKS, measures, run_stacks, settings  # noqa: E402
from bench.results import GroupSkipped  # noqa: E402


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.broadcast", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 connections, one run")
    parser.add_argument("--full", action="store_true", help="more repeats")
    parser.add_argument("--stacks", help=f"comma-separated, among {','.join(STACKS)}")
    parser.add_argument("--counts", help="comma-separated connection counts (default: by mode)")
    parser.add_argument("--messages", type=int, help="messages per burst (default: by count)")
    parser.add_argument("--repeat", type=int, help="runs per stack and count (default: by mode)")
    args = parser.parse_args(argv)
    counts, repeats = settings("quick" if args.quick else "full" if args.full else "default")
    stacks: List[str] = list(STACKS)
    if args.stacks:
        stacks = [s.strip() for s in args.stacks.split(",") if s.strip()]
        unknown = [s for s in stacks if s not in STACKS]
        if unknown:
            parser.error(f"unknown stacks {', '.join(unknown)}; choose among {', '.join(STACKS)}")
    if args.counts:
        counts = tuple(int(c) for c in args.counts.split(","))
    if args.repeat:
        repeats = args.repeat
    messages = {n: args.messages or MESSAGES.get(n) or max(1, 50000 // n) for n in counts}
    load = os.getloadavg()[0]
    try:
        results, problems, pin = run_stacks(
            stacks, counts, repeats, lambda line: print(f"  {line}", file=sys.stderr), messages
        )
    except GroupSkipped as exc:
        print(f"broadcast benchmark skipped: {exc}", file=sys.stderr)
        return 1
    print("fastws broadcast benchmark")
    print(
        f"  {SIZE} B binary messages, a burst of K to every connection; all servers on uvloop"
        + (f"; servers on CPU {pin[0]}, wsload on CPU {pin[1]}" if pin else "")
        + f"; median of {repeats} run(s); load average before: {load:.2f}, after: {os.getloadavg()[0]:.2f}"
    )
    by_id = {m.id: m for m in measures(results, counts)}
    for clients in counts:
        k = f"{clients // 1000}k" if clients % 1000 == 0 else str(clients)
        rate, latency, cpu = (by_id.get(f"broadcast.{name}_{k}") for name in ("rate", "latency", "cpu"))
        if rate is None:
            continue
        print()
        print(f"{clients:,} connections, K = {messages[clients]}")
        rows = [["stack", "deliveries/s", "last client, msg 0 (ms)", "server CPU/delivery (us)"]]
        for label in rate.samples:
            rows.append(
                [
                    label,
                    f"{rate.median(label):,.0f}",
                    f"{latency.median(label):.1f}" if latency and label in latency.samples else "-",
                    f"{cpu.median(label):.2f}" if cpu and label in cpu.samples else "-",
                ]
            )
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for i, row in enumerate(rows):
            print("  " + "  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))))
            if i == 0:
                print("  " + "  ".join("-" * w for w in widths))
    for stack, why in problems.items():
        print(f"  {LABELS.get(stack, stack)}: not measured: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run the compression group on its own and print its table.

    python -m bench.compression                 # about a minute
    python -m bench.compression --quick         # smoke run
    python -m bench.compression --full
    python -m bench.compression --stacks fastws,aiohttp --repeat 5

Progress goes to stderr, the table to stdout (medians over the runs; the
spread is in ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.compression import CASE_KEYS, CASES, run_group  # noqa: E402
from bench.results import Context  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compression", description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smoke run: 0.3 s per measure, one run")
    size.add_argument("--full", action="store_true", help="3 s per measure, five runs")
    parser.add_argument("--stacks", metavar="A,B", help=f"comma-separated, among {','.join(CASE_KEYS)}")
    parser.add_argument("--json", metavar="PATH", help="also write every measure, with its samples, here")
    args = parser.parse_args(argv)
    import bench.compression as group

    if args.stacks:
        wanted = [s.strip() for s in args.stacks.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in CASE_KEYS]
        if unknown:
            raise SystemExit(f"unknown stacks: {', '.join(unknown)} (known: {', '.join(CASE_KEYS)})")
        group.CASES = tuple(case for case in CASES if case.key in wanted)
    mode = "quick" if args.quick else "full" if args.full else "default"
    ctx = Context(mode=mode, out_dir=os.getcwd(), step=lambda line: print(f"  {line}", file=sys.stderr, flush=True))
    result = run_group(ctx)
    by_id = {m.id: m for m in result.measures}
    rtt, mbps, ratio = by_id["compression.rtt_32"], by_id["compression.mbps_1m"], by_id.get("compression.ratio")
    print("permessage-deflate echo of chat-like JSON (medians)")
    print(f"  {result.method}")
    print()
    headers = ["stack", "32 B rt/s", "server us/rt", "1 MiB MB/s", "server ms/echo"]
    headers += ["wire % (server)", "wire % (client)"]
    rows = []
    for label in rtt.samples:

        def cell(value: Optional[float], fmt: str) -> str:
            return "-" if value is None else format(value, fmt)

        rows.append(
            [
                label,
                cell(rtt.median(label), ",.0f"),
                cell(rtt.extra.get(label, {}).get("server CPU us per round trip"), ".1f"),
                cell(mbps.median(label) if label in mbps.samples else None, ".1f"),
                cell(mbps.extra.get(label, {}).get("server CPU ms per 1 MiB echo"), ".2f"),
                cell(ratio.median(label) if ratio and label in ratio.samples else None, ".1f"),
                cell(ratio.extra.get(label, {}).get("client's messages, % of payload") if ratio else None, ".1f"),
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  " + "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths))))
    print("  " + "  ".join("-" * w for w in widths))
    for row in rows:
        print("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    for what, why in result.skipped.items():
        print(f"  skipped: {what}: {why}")
    for note in result.notes:
        print(f"  note: {note}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"method": result.method, "measures": [m.to_json() for m in result.measures],
                       "skipped": result.skipped, "versions": result.versions}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Print the comparison tables from a pytest-benchmark JSON file.

    python -m bench.report RESULTS.json [--stat median|mean|min] [--baseline NAME]

One table per benchmark group (a kernel at one size): each implementation's mean
and median time per call, its throughput (GB/s or frames/s, from the byte and
frame counts the benchmarks put in ``extra_info``) and its speed relative to the
group's baseline (the baseline's time divided by this row's time: 2.00x is twice
as fast as the baseline, 0.50x half as fast). A summary then sets the fastest
fastws entry of each group against the fastest other entry.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

KERNEL_ORDER = ("mask", "utf8", "parse", "build")
KERNEL_TITLES = {
    "mask": "Masking (XOR with a 4-byte key)",
    "utf8": "UTF-8 validation",
    "parse": "Frame parsing (server side, masked frames)",
    "build": "Frame building",
}


# --- formatting ------------------------------------------------------------------


def fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            value = seconds / scale
            break
    if value >= 100:
        return f"{value:.0f} {unit}"
    if value >= 10:
        return f"{value:.1f} {unit}"
    return f"{value:.2f} {unit}"


def _sig3(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def fmt_bytes_rate(bytes_per_s: float) -> str:
    if bytes_per_s >= 1e9:
        return f"{_sig3(bytes_per_s / 1e9)} GB/s"
    if bytes_per_s >= 1e6:
        return f"{_sig3(bytes_per_s / 1e6)} MB/s"
    return f"{_sig3(bytes_per_s / 1e3)} kB/s"


def fmt_frame_rate(frames_per_s: float) -> str:
    if frames_per_s >= 1e6:
        return f"{_sig3(frames_per_s / 1e6)} M frames/s"
    if frames_per_s >= 1e3:
        return f"{_sig3(frames_per_s / 1e3)} k frames/s"
    return f"{_sig3(frames_per_s)} frames/s"


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    if ratio >= 100:
        return f"{ratio:.0f}x"
    if ratio >= 10:
        return f"{ratio:.1f}x"
    return f"{ratio:.2f}x"


def render_table(headers: list[str], rows: list[list[str]], align: str) -> list[str]:
    """Plain-text table; ``align`` has one 'l' or 'r' per column."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells):
        out = []
        for cell, width, a in zip(cells, widths, align):
            out.append(cell.ljust(width) if a == "l" else cell.rjust(width))
        return "  " + "  ".join(out).rstrip()

    return [line(headers), "  " + "  ".join("-" * w for w in widths)] + [line(r) for r in rows]


# --- model -------------------------------------------------------------------------


class Row:
    def __init__(self, bench: dict) -> None:
        info = bench.get("extra_info", {})
        stats = bench["stats"]
        self.name = info.get("impl", bench.get("name", "?"))
        self.kernel = info.get("kernel", "other")
        self.case = info.get("case", bench.get("group") or "")
        self.order = info.get("order", 0)
        self.baseline = info.get("baseline")
        self.primary = info.get("primary", "bytes")
        self.bytes_per_call = info.get("bytes_per_call")
        self.frames_per_call = info.get("frames_per_call")
        self.note = info.get("note")
        # Rows compared with each other in the summary: "inplace" kernels do not
        # allocate, so they are set against each other, not against allocating ones.
        self.variant = info.get("variant", "")
        self.mean = stats["mean"]
        self.median = stats["median"]
        self.min = stats["min"]
        self.stddev = stats["stddev"]
        self.rounds = stats["rounds"]
        self.group = bench.get("group") or f"{self.kernel} | {self.case}"

    def time(self, stat: str) -> float:
        return getattr(self, stat)

    def throughput(self, stat: str) -> str:
        t = self.time(stat)
        if t <= 0:
            return "-"
        if self.primary == "frames" and self.frames_per_call:
            return fmt_frame_rate(self.frames_per_call / t)
        if self.bytes_per_call:
            return fmt_bytes_rate(self.bytes_per_call / t)
        if self.frames_per_call:
            return fmt_frame_rate(self.frames_per_call / t)
        return "-"

    @property
    def is_fastws(self) -> bool:
        return self.name.startswith("fastws")

    @property
    def is_floor(self) -> bool:
        return self.name.startswith("floor")


def load(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def group_rows(data: dict) -> dict[str, list[Row]]:
    groups: dict[str, list[Row]] = defaultdict(list)
    for bench in data.get("benchmarks", []):
        row = Row(bench)
        groups[row.group].append(row)
    return groups


def _kernel_key(kernel: str) -> int:
    return KERNEL_ORDER.index(kernel) if kernel in KERNEL_ORDER else len(KERNEL_ORDER)


# --- report ------------------------------------------------------------------------


def header_lines(data: dict) -> list[str]:
    mi = data.get("machine_info", {})
    cpu = mi.get("cpu", {}) or {}
    lines = ["fastws kernel benchmarks"]
    python = f"{mi.get('python_implementation', '?')} {mi.get('python_version', '?')}"
    cpu_name = cpu.get("brand_raw") or mi.get("processor") or "?"
    count = cpu.get("count")
    lines.append(f"  machine: {cpu_name}" + (f", {count} cores" if count else "") + f"; {python}")
    fw = mi.get("fastws")
    if fw:
        if fw.get("compiled"):
            simd = fw.get("simd_level")
            lines.append("  fastws compiled core: yes" + (f" (simd_level={simd})" if simd else ""))
        else:
            lines.append(f"  fastws compiled core: NOT BUILT ({fw.get('reason', '')}); pure-Python twin only")
    peers = mi.get("peers")
    if peers:
        lines.append(
            "  peers: "
            + ", ".join(f"{k} {v}" if v else f"{k} (not installed)" for k, v in peers.items())
        )
    if data.get("datetime"):
        lines.append(f"  run: {data['datetime']}")
    return lines


def report(data: dict, stat: str = "median", baseline: str | None = None, out=sys.stdout) -> None:
    groups = group_rows(data)
    p = lambda s="": print(s, file=out)  # noqa: E731

    for line in header_lines(data):
        p(line)
    if not groups:
        p()
        p("No benchmark results (everything skipped or deselected?).")
        return
    p(
        f"  times are per call; throughput and ratios use the {stat}; "
        "'vs X' = X's time / this row's time (higher is faster)"
    )

    by_kernel: dict[str, list[str]] = defaultdict(list)
    for name, rows in groups.items():
        by_kernel[rows[0].kernel].append(name)

    summary = []
    for kernel in sorted(by_kernel, key=_kernel_key):
        names = sorted(by_kernel[kernel], key=lambda g: (groups[g][0].order, g))
        notes: dict[str, str] = {}
        p()
        p(f"=== {KERNEL_TITLES.get(kernel, kernel)} ===")
        for gname in names:
            rows = sorted(groups[gname], key=lambda r: r.time(stat))
            base_name = baseline or rows[0].baseline
            base = next((r for r in rows if r.name == base_name), None)
            p()
            label = f"vs {base_name}" if base_name else "vs baseline"
            p(f"{kernel} | {rows[0].case}" + ("" if base else f"   (baseline {base_name!r} not measured)"))
            table = []
            for r in rows:
                ratio = base.time(stat) / r.time(stat) if base and r.time(stat) > 0 else None
                table.append(
                    [
                        r.name + (" *" if r.note else ""),
                        fmt_time(r.mean),
                        fmt_time(r.median),
                        f"{100 * r.stddev / r.mean:.0f}%" if r.mean else "-",
                        str(r.rounds),
                        r.throughput(stat),
                        fmt_ratio(ratio),
                    ]
                )
                if r.note:
                    notes[r.name] = r.note
            for line in render_table(
                ["implementation", "mean", "median", "stddev", "rounds", "throughput", label],
                table,
                "lrrrrrr",
            ):
                p(line)

            for variant in sorted({r.variant for r in rows}):
                ours = [r for r in rows if r.variant == variant and r.is_fastws]
                others = [r for r in rows if r.variant == variant and not r.is_fastws and not r.is_floor]
                if ours and others:
                    case = rows[0].case + (f" ({variant})" if variant else "")
                    summary.append((kernel, case, ours[0], others[0]))
        if notes:
            p()
            p("  * " + "\n  * ".join(f"{k}: {v}" for k, v in sorted(notes.items())))

    if summary:
        p()
        p("=== Summary: fastest fastws entry vs fastest other entry per group ===")
        table = [
            [
                f"{k} | {case}",
                f"{ours.name} {fmt_time(ours.time(stat))}",
                f"{other.name} {fmt_time(other.time(stat))}",
                fmt_ratio(other.time(stat) / ours.time(stat)),
            ]
            for k, case, ours, other in summary
        ]
        for line in render_table(["group", "fastws", "fastest other", "speedup"], table, "lllr"):
            p(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("json", help="a file written by pytest --benchmark-json")
    parser.add_argument(
        "--stat",
        choices=("median", "mean", "min"),
        default="median",
        help="statistic used for throughput and ratios (default: median)",
    )
    parser.add_argument(
        "--baseline",
        metavar="NAME",
        help="implementation display name to compare against in every group "
        "(default: each group's own, e.g. websockets.speedups)",
    )
    args = parser.parse_args(argv)
    report(load(args.json), stat=args.stat, baseline=args.baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())

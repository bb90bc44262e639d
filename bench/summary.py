"""The summary table, ``report.md`` and ``results.json`` of a suite run.

The summary sets, for every measure, fastws's best stack against the best
peer: both medians, the ratio (above 1 when fastws is ahead, whichever way the
measure counts) and who is ahead. A floor (raw TCP, a bare protocol) is never a
peer: it shows what no stack can beat.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .results import Measure
from .suite import GroupRun

# --- numbers ----------------------------------------------------------------------


def fmt_value(value: float, unit: str = "") -> str:
    """A figure with 3 significant digits and a k/M suffix for large rates."""
    if value != value or math.isinf(value):
        return "n/a"
    magnitude = abs(value)
    if unit.endswith("/s") and magnitude >= 10_000:
        for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if magnitude >= scale:
                return f"{value / scale:.3g}{suffix} {unit}".rstrip()
    if magnitude >= 1000:
        text = f"{value:,.0f}".replace(",", " ")
    elif magnitude >= 100:
        text = f"{value:.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    elif magnitude == 0:
        text = "0"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".rstrip()


def fmt_ratio(ratio: float) -> str:
    if ratio != ratio:
        return "n/a"
    if math.isinf(ratio):
        return "inf"
    return f"{ratio:.2f}x"


def fmt_spread(measure: Measure, label: str) -> str:
    """The median's spread as ``±N%`` (half the min-max range over the median)."""
    values = measure.samples[label]
    if len(values) < 2:
        return "1 run"
    median = measure.median(label)
    low, high = measure.spread(label)
    if not median:
        return f"{fmt_value(low)}-{fmt_value(high)}"
    return f"±{(high - low) / 2 / abs(median) * 100:.0f}%"


# --- the summary --------------------------------------------------------------------


def summary_row(measure: Measure) -> Optional[Dict[str, Any]]:
    """fastws's best against the best peer, or ``None`` when the measure lacks either."""
    mine = measure.best(list(measure.fastws))
    if mine is None:
        return None
    peer = measure.best(measure.peers())
    row: Dict[str, Any] = {
        "id": measure.id,
        "measure": measure.title,
        "unit": measure.unit,
        "fastws": mine,
        "fastws_value": measure.median(mine),
        "peer": peer,
        "peer_value": measure.median(peer) if peer is not None else None,
        "ratio": measure.ratio(mine, peer) if peer is not None else None,
    }
    if peer is None:
        row["ahead"] = "no peer"
    elif row["ratio"] >= 1.02:
        row["ahead"] = "fastws"
    elif row["ratio"] <= 1 / 1.02:
        row["ahead"] = "peer"
    else:
        row["ahead"] = "level"
    row["headline"] = measure.headline
    return row


def summary_rows(runs: Sequence[GroupRun]) -> List[Dict[str, Any]]:
    rows = []
    for run in runs:
        if run.result is None:
            continue
        for measure in run.result.measures:
            row = summary_row(measure)
            if row is not None:
                row["group"] = run.group.name
                rows.append(row)
    return rows


def _value_cell(label: Optional[str], value: Optional[float], unit: str, who: bool) -> str:
    if label is None or value is None:
        return "-"
    text = fmt_value(value, unit)
    return f"{text} ({label})" if who else text


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> List[str]:
    """A plain-text table; *align* has one ``l`` or ``r`` per column."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(cell).ljust(width) if a == "l" else str(cell).rjust(width)
            for cell, width, a in zip(cells, widths, align)
        ]
        return "  ".join(parts).rstrip()

    return [line(headers), line(["-" * w for w in widths])] + [line(row) for row in rows]


SUMMARY_HEADERS = ("measure", "fastws (best)", "best peer", "fastws vs peer", "ahead")


def summary_text(runs: Sequence[GroupRun]) -> List[str]:
    """The short table the command ends with: the headline measures."""
    rows = []
    for row in summary_rows(runs):
        if not row["headline"]:
            continue
        rows.append(
            [
                row["measure"],
                _value_cell(row["fastws"], row["fastws_value"], row["unit"], row["fastws"] != "fastws"),
                _value_cell(row["peer"], row["peer_value"], row["unit"], True),
                fmt_ratio(row["ratio"]) if row["ratio"] is not None else "-",
                row["ahead"],
            ]
        )
    if not rows:
        return ["(no measure has both a fastws figure and a peer's)"]
    return table(SUMMARY_HEADERS, rows, "lllrl")


def problems(runs: Sequence[GroupRun]) -> List[str]:
    lines = []
    for run in runs:
        if run.error is not None:
            last = run.error.splitlines()[-1] if run.error else "error"
            lines.append(f"{run.group.name}: FAILED: {last}")
        elif run.skipped is not None:
            lines.append(f"{run.group.name}: not run: {run.skipped}")
        elif run.result is not None:
            for what, why in run.result.skipped.items():
                lines.append(f"{run.group.name}: {what} skipped: {why}")
    return lines


# --- report.md --------------------------------------------------------------------------


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> List[str]:
    def esc(cell: Any) -> str:
        return str(cell).replace("|", "\\|")

    sep = ["---:" if a == "r" else "---" for a in align]
    out = ["| " + " | ".join(esc(h) for h in headers) + " |", "| " + " | ".join(sep) + " |"]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return out


def measure_table(measure: Measure) -> List[str]:
    """Every stack of one measure: median, spread, runs, and its standing against fastws's best."""
    mine = measure.best(list(measure.fastws))
    order = sorted(
        measure.samples,
        key=lambda label: measure.median(label),
        reverse=measure.higher_is_better,
    )
    extra_keys: List[str] = []
    for values in measure.extra.values():
        extra_keys += [key for key in values if key not in extra_keys]
    rows = []
    for label in order:
        name = label
        if label == measure.floor:
            name += "" if "floor" in label else " *(floor)*"
        elif label in measure.fastws:
            name = f"**{label}**"
        elif label in measure.references:
            name += " *(reference)*"
        cells = [
            name,
            fmt_value(measure.median(label), measure.unit),
            fmt_spread(measure, label),
            str(len(measure.samples[label])),
            fmt_ratio(measure.ratio(mine, label)) if mine is not None and label != mine else "",
        ]
        extras = measure.extra.get(label, {})
        cells += [_fmt_extra(extras.get(key)) for key in extra_keys]
        rows.append(cells)
    headers = ["stack", f"median ({measure.unit})", "spread", "runs", "fastws's best vs this"] + extra_keys
    return _md_table(headers, rows, "lrrrr" + "r" * len(extra_keys))


def _fmt_extra(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return fmt_value(value)
    return str(value)


def write_report(
    path: str,
    runs: Sequence[GroupRun],
    info: Dict[str, Any],
    mode: str,
    charts: Dict[str, List[Tuple[str, str]]],
    charts_note: Optional[str],
    seconds: float,
) -> None:
    """Write ``report.md``: the summary, then every group's method, tables and charts."""
    started = info.get("started") or time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        "# fastws benchmark report",
        "",
        f"Run started {started}, mode `{mode}`, {seconds / 60:.1f} minutes.",
        "",
        "## Machine",
        "",
    ]
    for key in ("cpu", "cpus", "cpus_usable", "memory", "os", "python", "fastws", "fastws_kernels"):
        if info.get(key) is not None:
            lines.append(f"- {key.replace('_', ' ')}: {info[key]}")
    if info.get("load_average") is not None:
        load = f"{info['load_average']:.2f} at the start"
        if info.get("load_average_after") is not None:
            load += f", {info['load_average_after']:.2f} at the end"
        lines.append(f"- load average (1 min): {load}")
    versions = dict(info.get("versions", {}))
    for run in runs:
        if run.result is not None:
            versions.update(run.result.versions)
    if versions:
        lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    lines += [
        "",
        "## Method",
        "",
        "Every figure is the median of repeated runs; the spread is half the range between the lowest and the",
        "highest run, as a share of the median, and the charts draw that range as error bars. Every stack of a",
        "measure is measured in the same run on the same machine, on the same event loop wherever a stack lets",
        "its loop be chosen (socketify runs its own; picows may use its own transport: each group says). Servers",
        "and load generators run in separate processes, pinned to separate CPUs where the machine has two or",
        "more. A *floor* (raw TCP, a bare event-loop protocol) does the least any stack must do, and is not",
        "counted as a peer; a *reference* is shown for comparison only. In the summary, *fastws vs peer* is",
        "above 1 when fastws is ahead, for rates and for costs alike; *best peer* is the fastest, or the",
        "leanest for costs.",
        "",
        "## Summary",
        "",
    ]
    rows = [
        [
            row["measure"],
            _value_cell(row["fastws"], row["fastws_value"], row["unit"], True),
            _value_cell(row["peer"], row["peer_value"], row["unit"], True),
            fmt_ratio(row["ratio"]) if row["ratio"] is not None else "-",
            row["ahead"],
        ]
        for row in summary_rows(runs)
    ]
    lines += _md_table(SUMMARY_HEADERS, rows, "lllrl")
    issues = problems(runs)
    if issues:
        lines += ["", "Not measured:", ""] + [f"- {line}" for line in issues]
    if charts_note:
        lines += ["", f"Charts: {charts_note}"]
    for run in runs:
        lines += ["", f"## {run.group.title}", "", f"Group `{run.group.name}`, {run.seconds:.0f} s."]
        if run.error is not None:
            lines += ["", "The group failed:", "", "```", run.error, "```"]
            continue
        if run.skipped is not None:
            lines += ["", f"Not run: {run.skipped}"]
            continue
        assert run.result is not None
        result = run.result
        if result.method:
            lines += ["", result.method]
        for key, path_ in charts.get(run.group.name, []):
            lines += ["", f"![{key}]({path_})"]
        for measure in result.measures:
            lines += ["", f"### {measure.title}", ""] + measure_table(measure)
            if measure.note:
                lines += ["", measure.note]
        if result.skipped:
            lines += ["", "Skipped:", ""] + [f"- {what}: {why}" for what, why in result.skipped.items()]
        if result.notes:
            lines += [""] + [f"- {note}" for note in result.notes]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def write_json(path: str, runs: Sequence[GroupRun], info: Dict[str, Any], mode: str, seconds: float) -> None:
    """Write ``results.json``: every raw sample of every measure, with the machine."""
    data: Dict[str, Any] = {
        "format": 1,
        "mode": mode,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": seconds,
        "machine": info,
        "summary": summary_rows(runs),
        "groups": {},
    }
    for run in runs:
        entry: Dict[str, Any] = {"title": run.group.title, "seconds": run.seconds}
        if run.error is not None:
            entry["error"] = run.error
        if run.skipped is not None:
            entry["skipped_group"] = run.skipped
        if run.result is not None:
            entry.update(
                measures=[measure.to_json() for measure in run.result.measures],
                skipped=run.result.skipped,
                method=run.result.method,
                notes=run.result.notes,
                versions=run.result.versions,
            )
        data["groups"][run.group.name] = entry
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, default=_json_default)
        f.write("\n")
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)

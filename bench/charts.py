"""PNG charts of a suite run, drawn with matplotlib (an optional dependency).

One chart per ``Measure.chart`` key: grouped bars, one group per measure
(``Measure.short`` on the x axis), one bar per stack with the same colour for a
stack on every chart, error bars from the lowest to the highest run, and the
floor, where the measure has one, drawn as a dashed line across its group. A
logarithmic value axis when a measure asks for it or when the bars of a chart
span more than 30 times.
"""

from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

from .results import Measure
from .suite import GroupRun

#: fastws's stacks in warm colours, peers in cool and neutral ones.
FASTWS_COLOURS = ("#d9480f", "#f08c00", "#c2255c", "#e8590c", "#a61e4d")
PEER_COLOURS = ("#1c7ed6", "#2f9e44", "#7048e8", "#0c8599", "#495057", "#5c940d", "#364fc7", "#868e96")
FLOOR_COLOUR = "#212529"

LOG_SPAN = 30.0


def unavailable() -> Optional[str]:
    """Why charts cannot be drawn here, or ``None`` when they can."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "skipped: matplotlib is not installed (python -m pip install matplotlib, or the [bench] extra)"
    return None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "chart"


class Palette:
    """A colour per stack label, the same on every chart of a run."""

    def __init__(self) -> None:
        self.colours: Dict[str, str] = {}
        self._mine = 0
        self._peers = 0

    def colour(self, label: str, mine: bool) -> str:
        if label not in self.colours:
            if mine:
                self.colours[label] = FASTWS_COLOURS[self._mine % len(FASTWS_COLOURS)]
                self._mine += 1
            else:
                self.colours[label] = PEER_COLOURS[self._peers % len(PEER_COLOURS)]
                self._peers += 1
        return self.colours[label]


def chart_groups(measures: Sequence[Measure]) -> List[Tuple[str, List[Measure]]]:
    """Measures by chart key (and unit), in order of first appearance."""
    keys: Dict[Tuple[str, str], List[Measure]] = {}
    for measure in measures:
        keys.setdefault((measure.chart or measure.id, measure.unit), []).append(measure)
    out = []
    for (key, unit), group in keys.items():
        same_key = [k for k in keys if k[0] == key]
        out.append((key if len(same_key) == 1 else f"{key}-{unit}", group))
    return out


def draw(key: str, measures: Sequence[Measure], path: str, palette: Palette) -> None:
    """Draw one chart of grouped bars to *path*."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels: List[str] = []
    mine: set = set()
    for measure in measures:
        mine.update(measure.fastws)
        mine.update(measure.references)
        for label in measure.samples:
            if label != measure.floor and label not in labels:
                labels.append(label)
    first = {label: i for i, label in enumerate(labels)}
    labels.sort(key=lambda label: (label not in mine, first[label]))

    n = max(len(labels), 1)
    width = 0.8 / n
    fig_width = max(7.0, min(15.0, 3.2 + len(measures) * (0.45 * n + 0.6)))
    fig, ax = plt.subplots(figsize=(fig_width, 4.2), dpi=110)
    values: List[float] = []
    for i, label in enumerate(labels):
        xs, heights, low, high = [], [], [], []
        for j, measure in enumerate(measures):
            if label not in measure.samples or not measure.samples[label]:
                continue
            median = measure.median(label)
            lo, hi = measure.spread(label)
            xs.append(j - 0.4 + width * (i + 0.5))
            heights.append(median)
            low.append(max(median - lo, 0.0))
            high.append(max(hi - median, 0.0))
            values += [lo, hi]
        if not xs:
            continue
        ax.bar(
            xs,
            heights,
            width * 0.92,
            yerr=[low, high],
            capsize=2,
            label=label,
            color=palette.colour(label, label in mine),
            edgecolor="black" if label in mine else "none",
            linewidth=0.6,
            error_kw={"elinewidth": 0.8},
        )
        for x, height, above in zip(xs, heights, high):
            ax.annotate(
                _short_number(height),
                (x, height + above),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=6.5,
                rotation=90,
            )
    floor_drawn = False
    for j, measure in enumerate(measures):
        if measure.floor and measure.samples.get(measure.floor):
            value = measure.median(measure.floor)
            values.append(value)
            ax.hlines(
                value,
                j - 0.45,
                j + 0.45,
                colors=FLOOR_COLOUR,
                linestyles="dashed",
                linewidth=1.2,
                label=None if floor_drawn else measure.floor,
            )
            floor_drawn = True
    positive = [v for v in values if v > 0]
    if any(m.log for m in measures) or (positive and max(positive) / min(positive) > LOG_SPAN):
        ax.set_yscale("log")
    ax.set_xticks(range(len(measures)))
    ax.set_xticklabels([m.short or ("" if len(measures) == 1 else m.title) for m in measures], fontsize=9)
    unit = measures[0].unit
    better = "higher is better" if measures[0].higher_is_better else "lower is better"
    ax.set_ylabel(f"{unit} ({better})")
    title = next((m.chart_title for m in measures if m.chart_title), None) or measures[0].title
    ax.set_title(title, fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if ax.get_yscale() == "log":
        low, high = ax.get_ylim()
        ax.set_ylim(low, high * 3)
    else:
        ax.set_ylim(0, ax.get_ylim()[1] * 1.15)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _short_number(value: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def draw_all(runs: Sequence[GroupRun], out_dir: str) -> Dict[str, List[Tuple[str, str]]]:
    """Draw every group's charts into *out_dir*; returns group -> [(chart key, file name)]."""
    palette = Palette()
    drawn: Dict[str, List[Tuple[str, str]]] = {}
    for run in runs:
        if run.result is None:
            continue
        for key, measures in chart_groups(run.result.measures):
            name = _slug(key) + ".png"
            draw(key, measures, os.path.join(out_dir, name), palette)
            drawn.setdefault(run.group.name, []).append((key, name))
    return drawn

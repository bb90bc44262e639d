"""What every benchmark group hands to ``python -m bench``: measures, samples, notes.

A group (``bench.echo``, ``bench.handshake``...) exposes ``run_group(ctx)``,
which takes a :class:`Context` and returns a :class:`GroupResult`: one
:class:`Measure` per figure it measured, each holding, for every stack, the raw
samples of its repeated runs. The runner (:mod:`bench.__main__`) turns those
into the summary table, ``report.md``, ``results.json`` and the charts; a group
never prints tables of its own there, it reports progress through
:meth:`Context.step`.
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

#: The three sizes of a run: ``quick`` is a smoke run of every group (a minute
#: or two in all), ``default`` what ``python -m bench`` runs (a few minutes),
#: ``full`` everything, with the largest counts and the most repeats.
MODES = ("quick", "default", "full")

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)


@dataclass
class Measure:
    """One figure, measured for several stacks.

    Attributes:
        id: Stable key, ``group.name`` (``"handshake.sessions"``), used in
            ``results.json`` and chart file names.
        title: What is measured, in plain words, as a table row reads it:
            ``"Handshakes per second (open, 16 B echo, close; 64 clients)"``.
        unit: Unit of the samples: ``"sessions/s"``, ``"MB/s"``, ``"KiB"``, ``"ns"``.
        higher_is_better: ``True`` for rates, ``False`` for times, memory, CPU.
        samples: Stack label -> the value of each repeated run (at least one).
            Labels are what a reader sees: ``"fastws"``, ``"fastws Listener"``,
            ``"websockets"``, ``"raw TCP (floor)"``.
        fastws: The labels in ``samples`` that are fastws's own stacks.
        floor: The label in ``samples`` that is a floor (raw TCP, a bare event
            loop protocol, a memory copy): drawn on charts, never counted as a peer.
        references: Labels in ``samples`` shown for comparison but neither
            fastws's entry nor a peer (fastws in a setting the peers do not share,
            such as one process where the peers run two workers).
        chart: Measures with the same ``chart`` key (and unit) share one chart
            of grouped bars; default: the measure's own id.
        short: A short name for the chart's x axis (``"32 B"``, ``"1 MiB"``);
            default: the title.
        chart_title: The title of the chart this measure is drawn in (the
            first measure of a chart that sets one wins); default: ``title``.
        log: Draw this measure's chart with a logarithmic value axis.
        extra: Secondary figures by stack (server CPU per session, connections
            per worker...), shown in ``report.md`` under the measure's table.
        note: One or two sentences on method or caveats, printed under the table.
        headline: Whether the terminal's short summary shows this measure
            (``report.md``'s summary shows every measure); a group with many
            measures of one kind marks a representative few.
    """

    id: str
    title: str
    unit: str
    higher_is_better: bool
    samples: Dict[str, List[float]]
    fastws: Sequence[str] = ()
    floor: Optional[str] = None
    references: Sequence[str] = ()
    chart: Optional[str] = None
    short: Optional[str] = None
    chart_title: Optional[str] = None
    log: bool = False
    extra: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    note: str = ""
    headline: bool = True

    def median(self, label: str) -> float:
        return statistics.median(self.samples[label])

    def spread(self, label: str) -> Tuple[float, float]:
        """The lowest and highest sample of *label* (the error bar)."""
        values = self.samples[label]
        return min(values), max(values)

    def peers(self) -> List[str]:
        return [
            label
            for label in self.samples
            if label not in self.fastws and label != self.floor and label not in self.references
        ]

    def best(self, labels: Sequence[str]) -> Optional[str]:
        """The label among *labels* with the best median, or ``None``."""
        present = [label for label in labels if self.samples.get(label)]
        if not present:
            return None
        key = self.median
        return max(present, key=key) if self.higher_is_better else min(present, key=key)

    def ratio(self, label: str, other: str) -> float:
        """How many times better *label* is than *other* (above 1: *label* is ahead)."""
        a, b = self.median(label), self.median(other)
        if self.higher_is_better:
            return a / b if b else math.inf
        return b / a if a else math.inf

    def to_json(self) -> Dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            "samples": self.samples,
            "median": {label: self.median(label) for label in self.samples},
            "fastws": list(self.fastws),
            "floor": self.floor,
            "references": list(self.references),
            "chart": self.chart or self.id,
            "short": self.short,
            "chart_title": self.chart_title,
            "log": self.log,
            "extra": self.extra,
            "note": self.note,
            "headline": self.headline,
        }


@dataclass
class GroupResult:
    """Everything one group measured.

    Attributes:
        measures: In the order the report shows them.
        skipped: Stack (or part of the group) -> why it did not run
            (``"socketify: not installed"``).
        method: A paragraph for ``report.md``: how the group measures (processes,
            clients, counts, durations, repeats, CPU placement).
        notes: Further lines for ``report.md``.
        versions: Distribution -> version of what the group ran, where it goes
            beyond the runner's own list.
    """

    measures: List[Measure] = field(default_factory=list)
    skipped: Dict[str, str] = field(default_factory=dict)
    method: str = ""
    notes: List[str] = field(default_factory=list)
    versions: Dict[str, str] = field(default_factory=dict)


class GroupSkipped(Exception):
    """Raised by ``run_group`` when the whole group cannot run here (the message says why)."""


@dataclass
class Context:
    """What the runner gives a group.

    Attributes:
        mode: One of :data:`MODES`.
        out_dir: Where the group may leave files of its own (profiles, logs).
        step: Progress callback: ``ctx.step("websockets: 3/5")``, one short line
            per step, no newline; the runner shows it to the user.
    """

    mode: str
    out_dir: str
    step: Callable[[str], None] = lambda message: None

    def pick(self, quick: Any, default: Any, full: Any) -> Any:
        """The setting for this run's mode."""
        return {"quick": quick, "default": default, "full": full}[self.mode]

    def python(self, *args: str, timeout: Optional[float] = None) -> subprocess.CompletedProcess:
        """Run ``python ARGS`` from the repository root, with the root on the path.

        The output is captured (a group's tables never reach the user's terminal);
        a failure raises :class:`subprocess.CalledProcessError` with the output.
        """
        return subprocess.run(
            [sys.executable, *args],
            cwd=ROOT,
            env=subprocess_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )


def subprocess_env() -> Dict[str, str]:
    """The environment for a benchmark subprocess: the repository root on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    return env

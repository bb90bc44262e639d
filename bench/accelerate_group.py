"""The patched-libraries group of ``python -m bench``: :func:`run_group`.

For each library :mod:`bench.accelerate` knows (wsproto, autobahn, tornado,
websockets, aiohttp, ws4py) and finds installed, runs ``python -m
bench.accelerate --libraries LIB --json FILE`` in a process of its own (the
patches never touch the runner's modules) and turns each row into a
:class:`~bench.results.Measure` with two stacks: the library as it is
(``"unpatched"``) and the library after ``fastws.accelerate`` patched it
(``"patched by fastws.accelerate"``, fastws's label). Rates share one chart
per unit, with a logarithmic axis: the speed-ups span three decades.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import tempfile
from typing import Any, Dict, List

from bench.accelerate import BENCHES
from bench.echo.group import versions
from bench.results import Context, GroupResult, GroupSkipped, Measure

UNPATCHED = "unpatched"
PATCHED = "patched by fastws.accelerate"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def to_measures(rows: List[Dict[str, Any]]) -> List[Measure]:
    """The measures of ``python -m bench.accelerate --json`` rows (one per row
    with samples on both sides), ids ``accelerate.LIBRARY.MEASURE``; the first
    of each library is the one the terminal's short summary shows."""
    measures = []
    libraries = set()
    for row in rows:
        before, after = row.get("before_samples"), row.get("after_samples")
        if not before or not after:
            continue
        library, what, unit = row["library"], row["what"], row["unit"]
        first = library not in libraries
        libraries.add(library)
        notes = [row["note"]] if row.get("note") else []
        if "reference" in what:
            notes.append("Unpatched: the library's compiled code")
        measures.append(
            Measure(
                id=f"accelerate.{library}.{_slug(what)}",
                title=f"{library}: {what}",
                unit=unit,
                higher_is_better=True,
                samples={UNPATCHED: list(before), PATCHED: list(after)},
                fastws=[PATCHED],
                chart="accelerate." + _slug(unit),
                chart_title=f"Patched libraries ({unit}): unpatched against patched by fastws.accelerate",
                short=f"{library}: {re.sub(r' [(][^)]*[)]', '', what)}",
                log=True,
                headline=first,
                note=" ".join(note.rstrip(".") + "." for note in notes),
            )
        )
    return measures


def run_group(ctx: Context) -> GroupResult:
    """Every installed library, unpatched then patched, in its own process.

    quick: 2 runs of 0.05 s per figure; default: 3 of 0.2 s; full: 5 of 0.5 s.

    Raises:
        GroupSkipped: when none of the libraries is installed.
    """
    seconds, repeat = ctx.pick((0.05, 2), (0.2, 3), (0.5, 5))
    skipped = {name: f"{name} not installed" for name in BENCHES if importlib.util.find_spec(name) is None}
    libraries = [name for name in BENCHES if name not in skipped]
    if not libraries:
        raise GroupSkipped(f"none of {', '.join(BENCHES)} is installed")
    rows: List[Dict[str, Any]] = []
    notes: List[str] = []
    with tempfile.TemporaryDirectory(prefix="fastws-accelerate-") as tmp:
        for i, name in enumerate(libraries, 1):
            ctx.step(f"accelerate: {name} ({i}/{len(libraries)})")
            path = os.path.join(tmp, f"{name}.json")
            try:
                done = ctx.python(
                    "-m", "bench.accelerate", "--libraries", name, f"--time={seconds}", f"--repeat={repeat}",
                    f"--json={path}", timeout=300,
                )  # fmt: skip
            except subprocess.CalledProcessError as exc:
                last = (exc.stderr or "").strip().splitlines()[-1:] or [f"status {exc.returncode}"]
                skipped[name] = f"failed: {last[0]}"
                continue
            except subprocess.TimeoutExpired:
                skipped[name] = "failed: timed out after 300 s"
                continue
            if "compiled core is not active" in done.stdout and not notes:
                notes.append("fastws's compiled core is not active: the patches ran its pure-Python twin.")
            with open(path, encoding="utf-8") as f:
                rows.extend(json.load(f))
    method = (
        "Each library in a process of its own: the same call through the library's own entry point (the"
        f" attribute its code looks up), timed unpatched then patched, {repeat} runs of {seconds} s each, and"
        " checked to give the same result. websockets and aiohttp: their pure-Python fallback (what runs"
        " without their extensions) against the patched one, with their compiled code as a reference row."
    )
    return GroupResult(
        measures=to_measures(rows), skipped=skipped, method=method, notes=notes,
        versions=versions(("autobahn", "tornado", "ws4py")),
    )  # fmt: skip

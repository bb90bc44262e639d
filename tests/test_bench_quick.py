"""``python -m bench --quick --out DIR``, run for real: every group measures, and the
run leaves ``report.md``, ``results.json`` and at least one chart per group.

Marked slow (every group's servers and clients, a minute or two) and run by CI after
installing the ``bench`` extra, which brings the peers (picows, socketify...) and
matplotlib: ``python -m pip install -e ".[bench]" && python -m pytest -m slow
tests/test_bench_quick.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import memory  # noqa: E402
from bench.suite import GROUPS  # noqa: E402

#: Stacks a quick run may leave out here, with why: only what a peer cannot do at all
#: (picows has no permessage-deflate, so the memory group has no picows figure with
#: it). A group that skips a stack because its library is missing means the bench
#: extra did not install it.
ALLOWED_SKIPS: dict = {
    "memory": {
        f"{memory.LABELS[stack]} (permessage-deflate)": why for stack, why in memory.NO_DEFLATE.items()
    },
}


#: What the ``bench`` extra installs beyond the ``test`` extra, which the groups need.
BENCH_EXTRA = ("pytest_benchmark", "picows", "socketify", "matplotlib", "granian")
MISSING = [name for name in BENCH_EXTRA if importlib.util.find_spec(name) is None]


@pytest.mark.slow
@pytest.mark.skipif(bool(MISSING), reason=f"the bench extra is not installed (missing: {', '.join(MISSING)})")
def test_quick_run_writes_report_json_and_a_chart_per_group(tmp_path: Path) -> None:
    out = tmp_path / "results"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    data = json.loads((out / "results.json").read_text())
    assert set(data["groups"]) == {group.name for group in GROUPS}
    for name, group in data["groups"].items():
        assert "error" not in group, f"{name}: {group.get('error')}"
        assert "skipped_group" not in group, f"{name}: {group.get('skipped_group')}"
        assert group["measures"], f"{name} measured nothing"
        for measure in group["measures"]:
            assert measure["samples"], measure["id"]
            assert all(values for values in measure["samples"].values()), measure["id"]
        assert group["skipped"] == ALLOWED_SKIPS.get(name, {}), f"{name} skipped {group['skipped']}"

    report = (out / "report.md").read_text()
    assert "## Summary" in report and "NOT met" not in report
    for group in GROUPS:
        assert f"## {group.title}" in report
        charts = [line for line in report.split(f"## {group.title}", 1)[1].split("\n## ", 1)[0].splitlines()
                  if line.startswith("![")]
        assert charts, f"no chart for {group.name}"
        for line in charts:
            name = line.split("](", 1)[1].rstrip(")")
            assert (out / name).read_bytes()[:4] == b"\x89PNG"

    # The terminal shows progress and the summary, never a raw command line or a goal verdict.
    assert "fastws vs peer" in done.stdout
    assert "+ pytest" not in done.stdout and "NOT met" not in done.stdout

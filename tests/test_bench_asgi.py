"""``python -m bench.asgi``: a tiny real run of the ASGI echo benchmark (every
backend that the ``test`` extra installs, real server and client processes,
a few milliseconds per measure), checked for a complete table and JSON.

Marked slow: one server and one client process per backend take about ten
seconds in all. Run it with ``python -m pytest -m slow tests/test_bench_asgi.py``;
FASTWS_TEST_UVLOOP=1 runs the servers on uvloop instead of asyncio.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastws

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.asgi import BACKENDS as DEFAULT_BACKENDS  # noqa: E402
from bench.asgi import LABELS  # noqa: E402

#: Every default backend but granian, which only the ``bench`` extra installs.
BACKENDS = [backend for backend in DEFAULT_BACKENDS if backend != "granian"]
LOOP = "uvloop" if os.environ.get("FASTWS_TEST_UVLOOP") == "1" else "asyncio"


@pytest.mark.slow
def test_tiny_run_reports_every_backend(tmp_path: Path) -> None:
    out = tmp_path / "asgi.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [
            sys.executable, "-m", "bench.asgi",
            "--backends", ",".join(BACKENDS), "--loops", LOOP, "--client-loop", LOOP,
            "--runs", "1", "--duration", "0.05", "--warmup", "0.02", "--json", str(out),
        ],
        cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    # patch_wsproto() refuses fastws's pure-Python twin: that row is skipped, with the reason.
    compiled = fastws.IMPLEMENTATION == "cython"
    measured = [b for b in BACKENDS if compiled or b != "wsproto-accel"]
    data = json.loads(out.read_text())
    summary = {row["backend"]: row for row in data["summary"]}
    assert sorted(summary) == sorted(measured)
    for backend, row in summary.items():
        assert row["loop"] == LOOP
        assert row["runs"] == 1, backend
        assert row["rate"] > 0 and row["mbps"] > 0, backend
    assert not [r for r in data["results"] if "error" in r]
    skipped = {row["backend"]: row["reason"] for row in data["skipped"]}
    if compiled:
        assert skipped == {}
    else:
        assert list(skipped) == ["wsproto-accel"]
        assert "compiled core is not active" in skipped["wsproto-accel"]

    # The table: a row per backend, with numbers where measured, and the goals line.
    lines = done.stdout.splitlines()
    for backend in BACKENDS:
        row = [line for line in lines if line.strip().startswith(LABELS[backend] + "  ")]
        assert len(row) == 1, (backend, done.stdout)
        cells = row[0].split()
        if backend in measured:
            rate = row[0][len("  " + LABELS[backend]) :].split()[0]
            assert int(rate.replace(",", "")) > 0, row[0]
        else:
            assert "skipped" in cells, row[0]
    assert any(line.startswith(f"  {LOOP:8} round trips ") for line in lines), done.stdout
    assert "What the ASGI layers cost fastws" in done.stdout

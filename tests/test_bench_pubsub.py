"""``python -m bench.pubsub``: a tiny real run of the fan-out benchmark (Redis,
every stack's server processes and the load generator, a few subscribers, a
fraction of a second per measure), checked for well-formed results in which
every delivery arrived.

Marked slow: each stack starts its server processes (2 workers) and the
client's, about 20 seconds in all. Run it with ``python -m pytest -m slow
tests/test_bench_pubsub.py``. It needs Debian's ``redis-server`` and the
peers (channels, channels_redis, python-socketio, uvicorn, uvloop); a stack
whose library is missing is skipped by the benchmark and here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.pubsub import LABELS, STACKS, USES_REDIS  # noqa: E402

SUBSCRIBERS = 6
WORKERS = 2

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed"),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    """One tiny run of every stack: the JSON it wrote and its standard output."""
    out = tmp_path_factory.mktemp("pubsub") / "pubsub.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [
            sys.executable, "-m", "bench.pubsub", "--subscribers", str(SUBSCRIBERS), "--workers", str(WORKERS),
            "--duration", "0.2", "--warmup", "0.05", "--repeat", "1", "--json", str(out),
        ],
        cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {"data": json.loads(out.read_text()), "stdout": done.stdout}


@pytest.mark.parametrize("stack", STACKS)
def test_every_delivery_arrived(run: Dict[str, Any], stack: str) -> None:
    data = run["data"]
    skipped = {row["stack"]: row["reason"] for row in data["skipped"]}
    if stack in skipped:
        pytest.skip(f"{stack}: {skipped[stack]}")
    [result] = [r for r in data["results"] if r["stack"] == stack]
    assert "error" not in result, result
    assert result["subscribers"] == SUBSCRIBERS
    # Every subscriber got every message published, exactly once (the client
    # fails the run otherwise; this checks what it reports says so).
    assert result["published"] > result["messages"] > 0
    assert result["delivered"] == result["published"] * SUBSCRIBERS
    assert result["deliveries"] == result["messages"] * SUBSCRIBERS
    assert result["rate"] > 0
    assert 0 < result["first_p50_ms"] <= result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    # The subscribers and the publisher, over the workers of the stack.
    workers = 1 if stack.startswith("fastws-local") else WORKERS
    assert len(result["spread"]) == workers
    assert sum(result["spread"]) == SUBSCRIBERS + 1
    assert result["server_cpu_s"] > 0 and result["client_cpu_s"] > 0
    if stack in USES_REDIS:
        assert result["redis_cpu_s"] is not None
    else:
        assert result["redis_cpu_s"] is None


def test_table(run: Dict[str, Any]) -> None:
    data = run["data"]
    lines = run["stdout"].splitlines()
    summary = {row["stack"]: row for row in data["summary"]}
    skipped = {row["stack"] for row in data["skipped"]}
    assert sorted(summary) == sorted(s for s in STACKS if s not in skipped)
    for stack in STACKS:
        [row] = [line for line in lines if line.startswith("  " + LABELS[stack] + "  ")][:1]
        cell = row[len("  " + LABELS[stack]) :].split()[0]
        if stack in skipped:
            assert cell == "skipped", row
        else:
            assert int(cell.replace(",", "")) > 0, row
    assert "fastws through Redis against the faster peer" in run["stdout"]

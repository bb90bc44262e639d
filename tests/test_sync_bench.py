"""``python -m bench.sync``: a tiny real run (both servers, every client, a few
tens of milliseconds per measure), checked for a complete table and JSON.
About a second in all: not marked slow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_run_reports_every_client_and_server(tmp_path: Path) -> None:
    out = tmp_path / "sync.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "bench.sync", "--runs", "1", "--duration", "0.05", "--warmup", "0.01",
         "--server-loop", "asyncio", "--json", str(out)],
        cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    data = json.loads(out.read_text())
    assert [s["server"] for s in data["servers"]] == ["fastws.serve", "fastws.sync"]
    for server in data["servers"]:
        assert not server["errors"]
        assert sorted(server["summary"]) == sorted(["fastws.sync", "fastws.asyncio", "websockets.sync", "raw-socket"])
        for row in server["summary"].values():
            assert row["median"] > 0 and row["cpu_us"] > 0
        assert [(g["client"], g["peer"]) for g in server["goals"]] == [
            ("fastws.sync", "fastws.asyncio"),
            ("fastws.sync", "websockets.sync"),
        ]
    assert "fastws.sync / websockets.sync: " in done.stdout

"""Programs written for the websockets library run on fastws with only the
package name changed.

Each program in ``tests/websockets_programs/`` follows one of websockets'
examples or how-to guides (quickstart, authentication, routing and health
checks, broadcast, reconnection, the sync API, graceful shutdown, TLS) and
imports websockets. It runs twice: as written, on websockets, which checks
that it is a correct websockets program and gives the expected output; then
with ``websockets`` replaced by ``fastws`` in its text, on fastws, which must
print the same lines and log no error.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

PROGRAMS = Path(__file__).parent / "websockets_programs"
TIMEOUT = 60


def only_the_package_name_changed(source: str) -> str:
    return re.sub(r"\bwebsockets\b", "fastws", source)


def run_program(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=path.parent,
    )


@pytest.mark.parametrize("name", sorted(p.stem for p in PROGRAMS.glob("*.py")))
def test_websockets_program_runs_on_fastws(name, tmp_path):
    original = PROGRAMS / f"{name}.py"
    on_websockets = run_program(original)
    assert on_websockets.returncode == 0, on_websockets.stderr
    assert on_websockets.stdout

    ported = tmp_path / f"{name}.py"
    ported.write_text(only_the_package_name_changed(original.read_text()))
    on_fastws = run_program(ported)
    assert on_fastws.returncode == 0, on_fastws.stderr
    assert "Traceback" not in on_fastws.stderr, on_fastws.stderr
    assert on_fastws.stdout.splitlines() == on_websockets.stdout.splitlines()


def test_the_rewrite_changes_only_the_package_name():
    source = "from websockets.asyncio.server import serve\nimport websockets\nWEBSOCKETS = 'websockets'\n"
    assert only_the_package_name_changed(source) == (
        "from fastws.asyncio.server import serve\nimport fastws\nWEBSOCKETS = 'fastws'\n"
    )

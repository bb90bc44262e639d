"""What a type checker sees of ``fastws``: the names that ``fastws/__init__``
imports lazily at run time (``fastws.serve``, ``fastws.connect``, the protocol
layer...) are typed, not ``Any``, so that mistakes in their use are reported.

mypy runs in process (``mypy.api.run``) on small snippets, with its cache in a
temporary directory and its own configuration (not the project's), against the
``fastws`` under test (the checkout, or the installed wheel)."""

from __future__ import annotations

import re
import site
import sys
import textwrap
from pathlib import Path

import pytest

import fastws

mypy_api = pytest.importorskip("mypy.api", reason="mypy is not installed (the lint extra)")

# The directory that holds the ``fastws`` under test. An editable install reaches it
# through an import hook, which mypy does not follow, so it is named to mypy unless
# it is a site-packages directory (an installed wheel), where mypy finds it itself.
PACKAGE_PARENT = Path(fastws.__file__).resolve().parent.parent
SITE_DIRS = {Path(p).resolve() for p in [*site.getsitepackages(), site.getusersitepackages()]}


@pytest.fixture(scope="module")
def run_mypy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mypy")
    config = tmp / "mypy.ini"
    lines = [
        "[mypy]",
        f"python_version = {sys.version_info[0]}.{sys.version_info[1]}",
        "strict = True",
        f"cache_dir = {tmp / 'cache'}",
        # fastws's own errors are the project's mypy run's business, not this test's
        "[mypy-fastws,fastws.*]",
        "follow_imports = silent",
    ]
    if PACKAGE_PARENT not in SITE_DIRS:
        lines.insert(3, f"mypy_path = {PACKAGE_PARENT}")
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def run(source: str) -> tuple[str, int]:
        snippet = tmp / "snippet.py"
        snippet.write_text(textwrap.dedent(source), encoding="utf-8")
        stdout, stderr, status = mypy_api.run(
            ["--config-file", str(config), "--no-error-summary", "--show-error-codes",
             str(snippet)]
        )
        assert "snippet.py" in stdout or status == 0, (stdout, stderr)
        return stdout, status

    return run


def revealed(stdout: str) -> dict[int, str]:
    """Line number -> the type mypy revealed there."""
    return {
        int(line): kind
        for line, kind in re.findall(r'snippet\.py:(\d+): note: Revealed type is "(.*)"', stdout)
    }


def test_lazy_names_are_typed_for_mypy(run_mypy):
    stdout, status = run_mypy(
        """\
        import fastws
        reveal_type(fastws.serve)
        reveal_type(fastws.connect)
        reveal_type(fastws.Protocol)
        reveal_type(fastws.Headers)
        reveal_type(fastws.Ping)
        reveal_type(fastws.Listener)
        reveal_type(fastws.codec.apply_mask)
        """
    )
    types = revealed(stdout)
    assert sorted(types) == list(range(2, 9)), stdout
    for line, kind in types.items():
        assert kind != "Any", (line, stdout)
    assert "fastws.asyncio.server.serve" in types[2]
    assert "fastws.asyncio.client.connect" in types[3]
    assert "Protocol" in types[4] and "Headers" in types[5]
    assert "error:" not in stdout, stdout
    assert status == 0, stdout


def test_mypy_reports_misuse_of_the_lazy_names(run_mypy):
    stdout, status = run_mypy(
        """\
        import fastws

        async def main() -> None:
            async with fastws.connect(8765) as websocket:
                n: int = await websocket.recv()
            fastws.serv
        """
    )
    assert status == 1, stdout
    # a port where the URI goes
    assert re.search(r"snippet\.py:4: error: .*\"connect\".*\[arg-type\]", stdout), stdout
    # recv() gives str | bytes, not int
    assert re.search(r"snippet\.py:5: error: .*\[assignment\]", stdout), stdout
    # no catch-all __getattr__ for the checker: a misspelt name is an error
    assert re.search(r"snippet\.py:6: error: .*\"serv\".*\[attr-defined\]", stdout), stdout

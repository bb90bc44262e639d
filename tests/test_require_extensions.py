"""FASTWS_REQUIRE_EXTENSIONS=1 where the compiled core is missing or broken: an
ImportError that says which module, why, and what to do (not Python's
"circular import" guess), in a subprocess where an import hook hides
``fastws._speedups`` the way a pure install lacks it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import load_speedups

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run in the subprocess: hide (or break) fastws._speedups, import fastws, print
# the implementation or the error.
SCRIPT = textwrap.dedent(
    """
    import sys

    MODE, HIDDEN, IMPORTED = sys.argv[1:]

    class Hide:
        def find_spec(self, name, path=None, target=None):
            if name != HIDDEN or MODE == "present":
                return None
            if MODE == "missing":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            raise ImportError("undefined symbol: fastws_mask")

    sys.meta_path.insert(0, Hide())
    try:
        import importlib
        module = importlib.import_module(IMPORTED)
    except ImportError as exc:
        print("ImportError:", exc)
    else:
        print("imported:", module.IMPLEMENTATION)
    """
)


def run(mode: str, hidden: str = "fastws._speedups", imported: str = "fastws", **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FASTWS_")}
    environ.update(env)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode, hidden, imported],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


ADVICE = (
    "install a fastws wheel, or build the extensions (a C compiler and Cython, then"
    " `pip install .` or `python setup.py build_ext --inplace` in a source checkout);"
    " unset FASTWS_REQUIRE_EXTENSIONS to run on the pure-Python twin"
)

CASES = [
    # (id, hook mode, environment, expected output)
    ("missing", "missing", {"FASTWS_REQUIRE_EXTENSIONS": "1"},
     ("ImportError: fastws: FASTWS_REQUIRE_EXTENSIONS is set but the compiled module"
      f" fastws._speedups is not built: {ADVICE}")),
    ("broken", "broken", {"FASTWS_REQUIRE_EXTENSIONS": "1"},
     ("ImportError: fastws: FASTWS_REQUIRE_EXTENSIONS is set but the compiled module"
      f" fastws._speedups cannot be imported (undefined symbol: fastws_mask): {ADVICE}")),
    ("missing-not-required", "missing", {}, "imported: python"),
    ("missing-required-off", "missing", {"FASTWS_REQUIRE_EXTENSIONS": "0"}, "imported: python"),
    ("both-flags", "present", {"FASTWS_REQUIRE_EXTENSIONS": "1", "FASTWS_NO_EXTENSIONS": "1"},
     "ImportError: FASTWS_NO_EXTENSIONS and FASTWS_REQUIRE_EXTENSIONS are both set"),
    ("pure-by-choice", "missing", {"FASTWS_NO_EXTENSIONS": "1"}, "imported: python"),
]


@pytest.mark.parametrize("mode, env, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_import(mode, env, expected):
    assert run(mode, **env) == expected


def test_required_and_present():
    load_speedups()  # skips where the extension is not built (fails under the flag)
    assert run("present", FASTWS_REQUIRE_EXTENSIONS="1") == "imported: cython"


def test_required_compiled_fast_path_missing():
    """The asyncio layer's compiled fast path is required the same way."""
    load_speedups()
    assert run(
        "missing", "fastws.asyncio._fastpath", "fastws.asyncio.fastpath", FASTWS_REQUIRE_EXTENSIONS="1"
    ) == (
        "ImportError: fastws: FASTWS_REQUIRE_EXTENSIONS is set but the compiled module"
        f" fastws.asyncio._fastpath is not built: {ADVICE}"
    )
    assert run("missing", "fastws.asyncio._fastpath", "fastws.asyncio.fastpath") == "imported: python"

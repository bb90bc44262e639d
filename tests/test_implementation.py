"""The codec picker (``fastws.codec``): which implementation ``import fastws``
gives, and how FASTWS_NO_EXTENSIONS / FASTWS_REQUIRE_EXTENSIONS change it.

The environment is read once at import time, so every variant runs in a fresh
interpreter (``sys.executable``)."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastws
from fastws import _codec_py

ROOT = Path(__file__).resolve().parent.parent
# The codec's names, which both implementations define.
CODEC_NAMES = tuple(name for name in fastws.codec.__all__ if name != "IMPLEMENTATION")

# Prints the chosen implementation and checks that the public names are that
# module's own objects.
REPORT = f"""
import fastws, fastws.codec
impl = fastws.codec._impl
for name in {CODEC_NAMES!r}:
    assert getattr(fastws.codec, name) is getattr(impl, name), name
    # and the package's re-exports (not every codec name is one)
    assert getattr(fastws, name, getattr(impl, name)) is getattr(impl, name), name
print(fastws.IMPLEMENTATION, impl.__name__)
"""

# Makes ``fastws._speedups`` unimportable, as on an interpreter without a build.
BLOCK_EXTENSION = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "fastws._speedups":
            raise ImportError("blocked by the test: no compiled extension")
        return None
sys.meta_path.insert(0, _Block())
"""

# Puts a stand-in ``fastws._speedups`` in place, so that the picker's decisions
# are tested the same way whether or not the real extension is built.
FAKE_EXTENSION = f"""
import sys, types
fake = types.ModuleType("fastws._speedups")
for name in {CODEC_NAMES!r}:
    setattr(fake, name, object())
sys.modules["fastws._speedups"] = fake
"""


def run_python(code: str, **env_vars: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTWS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(env_vars)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard, not a timing assertion
    )


def speedups_importable() -> bool:
    try:
        importlib.import_module("fastws._speedups")
    except ImportError:
        return False
    return True


def test_implementation_in_this_process():
    assert fastws.IMPLEMENTATION in ("cython", "python")
    expected = "fastws._speedups" if fastws.IMPLEMENTATION == "cython" else "fastws._codec_py"
    assert fastws.codec._impl.__name__ == expected
    assert fastws.FrameParser is fastws.codec._impl.FrameParser


def test_default_prefers_the_extension():
    result = run_python(REPORT)
    assert result.returncode == 0, result.stderr
    if speedups_importable():
        assert result.stdout.split() == ["cython", "fastws._speedups"]
    else:
        assert result.stdout.split() == ["python", "fastws._codec_py"]


def test_extension_is_used_when_importable():
    result = run_python(FAKE_EXTENSION + REPORT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["cython", "fastws._speedups"]


@pytest.mark.parametrize("value", ["1", "true", "yes", "TRUE", " 1 ", "on"])
def test_no_extensions_forces_python(value):
    result = run_python(FAKE_EXTENSION + REPORT, FASTWS_NO_EXTENSIONS=value)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["python", "fastws._codec_py"]


@pytest.mark.parametrize("value", ["", "0", "false", "no", "FALSE", " No "])
def test_false_values_do_not_force_python(value):
    result = run_python(FAKE_EXTENSION + REPORT, FASTWS_NO_EXTENSIONS=value)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["cython", "fastws._speedups"]


def test_no_extensions_with_the_real_extension():
    if not speedups_importable():
        pytest.skip("fastws._speedups is not built")
    result = run_python(REPORT, FASTWS_NO_EXTENSIONS="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["python", "fastws._codec_py"]


def test_missing_extension_falls_back_to_python():
    result = run_python(BLOCK_EXTENSION + REPORT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["python", "fastws._codec_py"]


@pytest.mark.parametrize("value", ["1", "true"])
def test_require_extensions_makes_a_missing_extension_an_error(value):
    code = BLOCK_EXTENSION + """
try:
    import fastws
except ImportError as exc:
    print("ImportError:", exc)
else:
    print("imported", fastws.IMPLEMENTATION)
"""
    result = run_python(code, FASTWS_REQUIRE_EXTENSIONS=value)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(
        "ImportError: fastws: FASTWS_REQUIRE_EXTENSIONS is set but the compiled module"
        " fastws._speedups cannot be imported (blocked by the test: no compiled extension): "
    )


def test_require_extensions_with_an_extension():
    result = run_python(FAKE_EXTENSION + REPORT, FASTWS_REQUIRE_EXTENSIONS="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["cython", "fastws._speedups"]


def test_require_extensions_with_the_real_extension():
    if not speedups_importable():
        pytest.skip("fastws._speedups is not built")
    result = run_python(REPORT, FASTWS_REQUIRE_EXTENSIONS="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["cython", "fastws._speedups"]


def test_no_and_require_together_is_an_error():
    code = FAKE_EXTENSION + """
try:
    import fastws
except ImportError as exc:
    print("ImportError:", exc)
"""
    result = run_python(code, FASTWS_NO_EXTENSIONS="1", FASTWS_REQUIRE_EXTENSIONS="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "ImportError: FASTWS_NO_EXTENSIONS and FASTWS_REQUIRE_EXTENSIONS are both set"
    )


def test_pure_module_is_always_importable():
    # The fallback must never depend on the extension.
    result = run_python(BLOCK_EXTENSION + "import fastws._codec_py as m; print(m.__name__)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "fastws._codec_py"
    assert _codec_py.validate_utf8(b"ok")


def test_asyncio_names_are_lazy_and_match_the_asyncio_layer():
    """``import fastws`` does not import asyncio; the names it imports on first
    use are exactly those the asyncio layer exports."""
    code = (
        "import sys, fastws\n"
        "assert 'asyncio' not in sys.modules, 'import fastws imported asyncio'\n"
        "assert 'fastws.asyncio' not in sys.modules\n"
        "import fastws.asyncio as layer\n"
        "assert fastws._ASYNCIO_NAMES == set(layer.__all__), fastws._ASYNCIO_NAMES ^ set(layer.__all__)\n"
        "assert all(getattr(fastws, n) is getattr(layer, n) for n in layer.__all__)\n"
        "assert set(layer.__all__) <= set(fastws.__all__)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr


def test_protocol_names_are_lazy_and_come_from_their_modules():
    """The protocol layer, the events and the handshake's HTTP objects are imported
    on first use too: each lazy name is its module's own object, is exported, and
    is one its module exports."""
    code = (
        "import sys, importlib, fastws\n"
        "assert not any(m.startswith(('fastws.protocol', 'fastws.http11', 'fastws.handshake',"
        " 'fastws.events')) for m in sys.modules), sorted(sys.modules)\n"
        "assert set(fastws._LAZY) == {n for ns in fastws._LAZY_MODULES.values() for n in ns}\n"
        "assert set(fastws._LAZY) <= set(fastws.__all__) <= set(dir(fastws))\n"
        "for name, module in sorted(fastws._LAZY.items()):\n"
        "    mod = importlib.import_module('fastws.' + module)\n"
        "    assert name in mod.__all__, (name, module)\n"
        "    assert getattr(fastws, name) is getattr(mod, name), name\n"
        "assert all(hasattr(fastws, n) for n in fastws.__all__)\n"
        "try:\n"
        "    fastws.no_such_name\n"
        "except AttributeError as exc:\n"
        "    assert 'no_such_name' in str(exc)\n"
        "else:\n"
        "    raise AssertionError('fastws.no_such_name did not raise AttributeError')\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr


def test_lazy_names_are_the_type_checking_imports():
    """What type checkers see (the ``if TYPE_CHECKING:`` imports of fastws/__init__)
    is what __getattr__ serves at run time: same names, same modules."""
    tree = ast.parse(Path(fastws.__file__).read_text(encoding="utf-8"))
    seen = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.level == 1, ast.unparse(imp)
                seen.update((alias.name, imp.module) for alias in imp.names)
    assert seen == fastws._LAZY


def test_codec_and_accelerate_import_neither_protocol_nor_http_nor_asyncio():
    """``import fastws.codec`` and ``import fastws.accelerate`` stay light: neither
    the sans-I/O protocol, nor the HTTP parser and handshake, nor the asyncio layer."""
    code = (
        "import fastws.codec, fastws.accelerate, sys; "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('fastws'))))"
    )
    for env in ({}, {"FASTWS_NO_EXTENSIONS": "1"}):
        result = run_python(code, **env)
        assert result.returncode == 0, result.stderr
        loaded = result.stdout.split()
        assert "fastws.codec" in loaded and "fastws.accelerate" in loaded, loaded
        heavy = [
            m
            for m in loaded
            if m.startswith(("fastws.protocol", "fastws.asyncio"))
            or m in ("fastws.http11", "fastws.handshake")
        ]
        assert heavy == [], (env, heavy)


# --- the connection's fast path (fastws.asyncio.fastpath) follows the codec -----------

FASTPATH_REPORT = """
import fastws
from fastws.asyncio import fastpath
from fastws.asyncio.connection import Connection
assert Connection.__mro__[1] is fastpath.FastPath
print(fastws.IMPLEMENTATION, fastpath.IMPLEMENTATION, fastpath.FastPath.__module__)
"""

# Makes ``fastws.asyncio._fastpath`` unimportable: a partial build.
BLOCK_FASTPATH = BLOCK_EXTENSION.replace('"fastws._speedups"', '"fastws.asyncio._fastpath"')


def fastpath_importable() -> bool:
    try:
        importlib.import_module("fastws.asyncio._fastpath")
    except ImportError:
        return False
    return speedups_importable()


def test_fastpath_follows_the_codec():
    result = run_python(FASTPATH_REPORT)
    assert result.returncode == 0, result.stderr
    if fastpath_importable():
        assert result.stdout.split() == ["cython", "cython", "fastws.asyncio._fastpath"]
    else:
        assert result.stdout.split()[1:] == ["python", "fastws.asyncio._fastpath_py"]


def test_no_extensions_gives_the_pure_fastpath():
    result = run_python(FASTPATH_REPORT, FASTWS_NO_EXTENSIONS="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["python", "python", "fastws.asyncio._fastpath_py"]


def test_missing_fastpath_falls_back_or_fails_when_required():
    if not speedups_importable():
        pytest.skip("fastws._speedups is not built")
    result = run_python(BLOCK_FASTPATH + FASTPATH_REPORT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["cython", "python", "fastws.asyncio._fastpath_py"]
    result = run_python(BLOCK_FASTPATH + FASTPATH_REPORT, FASTWS_REQUIRE_EXTENSIONS="1")
    assert result.returncode != 0
    assert "ImportError: blocked by the test" in result.stderr


# Makes Cython unimportable (its pure-Python ``cython`` module too), as where it
# is not installed.
BLOCK_CYTHON = BLOCK_EXTENSION.replace(
    'if name == "fastws._speedups":', 'if name.partition(".")[0] in ("cython", "Cython"):'
)

# One text message through the pure twin's Connection, echoed by a Listener.
PURE_ECHO = """
import asyncio
from fastws.asyncio import _fastpath_py
from fastws.asyncio.connection import Listener, connection_class
from fastws.codec import build_frame
from fastws.protocol import Protocol, Side

class Echo(Listener):
    def on_message(self, connection, message):
        connection.send_nowait(message)

class Transport:
    def __init__(self):
        self.out = []
    def write(self, data):
        self.out.append(data)
    def writelines(self, chunks):
        self.out.extend(chunks)
    def set_write_buffer_limits(self, high=None, low=None):
        pass

async def main():
    conn = connection_class(pure=True)(Protocol(Side.SERVER), listener=Echo(), ping_interval=None)
    transport = Transport()
    conn.connection_made(transport)
    data = build_frame(1, "h\\u00e9llo", mask=True)
    conn.get_buffer(-1)[: len(data)] = data
    conn.buffer_updated(len(data))
    assert transport.out == [build_frame(1, "h\\u00e9llo")], transport.out

asyncio.run(main())
print(_fastpath_py.IMPLEMENTATION, _fastpath_py.cython.__name__)
"""


@pytest.mark.parametrize("no_extensions", ["1", ""], ids=["no_extensions", "default"])
def test_pure_fastpath_needs_no_cython(no_extensions):
    """The pure twin's source is also the compiled one's, and imports
    ``cython``: where Cython is not installed it runs all the same, with its
    stand-in (``cython.compiled`` False)."""
    result = run_python(BLOCK_CYTHON + PURE_ECHO, FASTWS_NO_EXTENSIONS=no_extensions)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["python", "fastws.asyncio._fastpath_cython"]


def test_compiled_fastpath_is_the_pure_source_compiled():
    """fastws.asyncio._fastpath has no Python source of its own, so that only
    a build provides it (a pure install can never import it), and it reports
    the same names as the pure twin."""
    import fastws.asyncio

    package = Path(fastws.asyncio.__file__).parent
    assert not (package / "_fastpath.py").exists() and not (package / "_fastpath.pyx").exists()
    if not fastpath_importable():
        with pytest.raises(ImportError):
            importlib.import_module("fastws.asyncio._fastpath")
        return
    from fastws.asyncio import _fastpath, _fastpath_py

    assert _fastpath.__file__.endswith((".so", ".pyd")), _fastpath.__file__
    assert (_fastpath.IMPLEMENTATION, _fastpath_py.IMPLEMENTATION) == ("cython", "python")
    assert _fastpath.__all__ == _fastpath_py.__all__
    assert _fastpath.FastPath.__module__ == "fastws.asyncio._fastpath"

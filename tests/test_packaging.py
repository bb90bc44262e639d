"""What a wheel promises: the compiled core picks its SIMD kernels at run time (so one
wheel runs on every CPU of its platform, and the portable kernels are exercised and
agree with the fast ones), and on a free-threaded CPython the extension does not
claim to be safe without the GIL, so the interpreter turns the GIL back on.

These run against whatever ``fastws`` is importable: the source tree in development,
the installed wheel under scripts/check_wheels.py and cibuildwheel."""

from __future__ import annotations

import os
import platform
import random
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from fastws import _codec_py

from conftest import load_speedups

ROOT = Path(__file__).resolve().parent.parent
X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def run_python(code: str, **env_vars: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter, the FASTWS_* environment cleared, then ``env_vars``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTWS_") and k != "PYTHON_GIL"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(env_vars)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,  # a hang guard, not a timing assertion
    )


def samples():
    """Inputs around every block size the kernels use (16, 32, 64 bytes), at odd offsets."""
    rng = random.Random(8)
    text = "ascii, ünïcödé, 中文, 🎉 ".encode() * 40
    out = []
    for n in list(range(0, 130)) + [255, 256, 257, 1000, 4096 + 3, 70_000]:
        out.append(bytes(rng.getrandbits(8) for _ in range(min(n, 2000))) * (n // 2000 + 1))
        out.append((text * (n // len(text) + 1))[:n])
    return out


# --- SIMD: run-time dispatch, and the portable path ---------------------------------

CHECK_KERNELS = """
import random, sys
import fastws._speedups as fast, fastws._codec_py as pure
rng = random.Random(1)
text = "ascii, ünïcödé, 中文, 🎉 ".encode() * 200
for n in list(range(0, 200)) + [1000, 4099, 70000]:
    data = bytes(rng.getrandbits(8) for _ in range(min(n, 3000))) * (n // 3000 + 1)
    key = bytes(rng.getrandbits(8) for _ in range(4))
    assert fast.apply_mask(data, key) == pure.apply_mask(data, key), n
    for chunk in (data, text[:n], text[1:n]):
        assert fast.validate_utf8(chunk) == pure.validate_utf8(chunk), n
print(fast.simd_level())
"""


def test_fastws_simd_generic_selects_the_portable_kernels():
    """FASTWS_SIMD=generic, read at import: the portable kernels run, and agree with
    the pure twin (the path an ARM, an old x86 or an MSVC build always takes)."""
    load_speedups()
    result = run_python(CHECK_KERNELS, FASTWS_SIMD="generic", FASTWS_REQUIRE_EXTENSIONS="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["generic"]


def test_default_level_is_chosen_from_the_cpu():
    """Without FASTWS_SIMD the level comes from the CPU at run time, never from the
    build machine: AVX2 only on an x86 CPU that reports it, the portable kernels elsewhere."""
    load_speedups()
    result = run_python(CHECK_KERNELS, FASTWS_REQUIRE_EXTENSIONS="1")
    assert result.returncode == 0, result.stderr
    (level,) = result.stdout.split()
    if not X86:
        assert level == "generic"
    elif sys.platform == "linux":
        flags = Path("/proc/cpuinfo").read_text().split()
        assert level == ("avx2" if "avx2" in flags else "generic")
    else:
        assert level in ("generic", "avx2")


def test_every_level_gives_the_same_results():
    """Switch kernels in this process: the portable level is always available, every
    level this CPU can run agrees with the pure twin, byte for byte."""
    fast = load_speedups()
    original = fast.simd_level()
    levels = []
    try:
        for level in ("generic", "avx2"):
            try:
                fast._set_simd_level(level)
            except ValueError:
                assert level != "generic", "the portable kernels must always be available"
                continue
            assert fast.simd_level() == level
            levels.append(level)
            for data in samples():
                for offset in (0, 1, 3):
                    view = memoryview(data)[offset:]
                    key = b"\x37\xfa\x21\x3d"
                    assert fast.apply_mask(view, key) == _codec_py.apply_mask(view, key)
                    assert fast.validate_utf8(view) == _codec_py.validate_utf8(view)
                    buffer = bytearray(view)
                    assert fast.apply_mask_inplace(buffer, key, offset) == _codec_py.apply_mask_inplace(
                        bytearray(view), key, offset
                    )
    finally:
        fast._set_simd_level(original)
    assert "generic" in levels
    if X86 and sys.platform == "linux" and "avx2" in Path("/proc/cpuinfo").read_text().split():
        assert "avx2" in levels, "this CPU has AVX2 but the AVX2 kernels were not built"


def test_unknown_level_is_refused():
    fast = load_speedups()
    with pytest.raises(ValueError):
        fast._set_simd_level("avx512-please")


# --- free-threaded CPython (3.13t, 3.14t) -------------------------------------------

IMPORT_AND_REPORT = """
import sys, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import fastws._speedups
print(sys._is_gil_enabled())
for w in caught:
    print(w.category.__name__, w.message)
"""


def test_free_threaded_build_turns_the_gil_back_on():
    """The extension keeps module-level state (the mask-key pool, the SIMD level) and
    parsers with internal buffers that are not guarded against concurrent use, so it
    does not declare itself free-threading compatible: on a free-threaded CPython,
    importing it enables the GIL (with CPython's RuntimeWarning). When that changes,
    this test must change with the ``freethreading_compatible`` directive in setup.py."""
    load_speedups()
    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        # A regular build: there is a GIL, whatever the extension says.
        assert getattr(sys, "_is_gil_enabled", lambda: True)()
        return
    result = run_python(IMPORT_AND_REPORT)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "True", result.stdout
    assert any(
        line.startswith("RuntimeWarning") and "fastws._speedups" in line for line in lines[1:]
    ), result.stdout

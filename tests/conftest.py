"""Shared fixtures for the codec tests.

``codec`` runs a test once against the compiled module (``fastws._speedups``,
id ``cython``) and once against the pure-Python twin (``fastws._codec_py``, id
``python``). When the extension is not built, the ``cython`` runs are skipped,
unless ``FASTWS_REQUIRE_EXTENSIONS`` is set to a true value (as CI does): then a
missing extension is a failure, never a silent skip.
"""

from __future__ import annotations

import importlib
import os

import pytest
from hypothesis import settings

# Deterministic property tests: same examples on every run, no example database
# on disk, no timing-based deadline. HYPOTHESIS_PROFILE=... picks another one.
settings.register_profile(
    "fastws",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    print_blob=True,
)
settings.register_profile(
    "fastws-thorough",
    parent=settings.get_profile("fastws"),
    max_examples=3000,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fastws"))


def _flag(name: str) -> bool:
    """Same truth rule as ``fastws.codec``."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


REQUIRE_EXTENSIONS = _flag("FASTWS_REQUIRE_EXTENSIONS")


def _import_speedups():
    """``(module, None)`` or ``(None, reason)``."""
    try:
        return importlib.import_module("fastws._speedups"), None
    except ImportError as exc:
        return None, f"fastws._speedups is not importable ({exc})"


def load_speedups():
    """The compiled module; skips (or fails under FASTWS_REQUIRE_EXTENSIONS)
    when it is missing. For use inside tests and fixtures."""
    module, reason = _import_speedups()
    if module is None:
        compiled_unavailable(reason)
    return module


def compiled_unavailable(reason: str) -> None:
    """Skip the test for a missing compiled part, or fail it under
    FASTWS_REQUIRE_EXTENSIONS."""
    if REQUIRE_EXTENSIONS:
        pytest.fail(f"{reason}, and FASTWS_REQUIRE_EXTENSIONS is set", pytrace=False)
    pytest.skip(reason)


def load_codec(name: str):
    if name == "cython":
        return load_speedups()
    if name == "python":
        return importlib.import_module("fastws._codec_py")
    raise AssertionError(name)


# Session scope so that hypothesis' @given tests can use them too.
@pytest.fixture(scope="session", params=["cython", "python"])
def codec(request):
    """The codec module under test: ``fastws._speedups`` or ``fastws._codec_py``."""
    return load_codec(request.param)


@pytest.fixture(scope="session")
def both_codecs():
    """``(compiled, pure)`` for the tests that compare the two implementations."""
    return load_speedups(), importlib.import_module("fastws._codec_py")


def pytest_report_header(config):
    lines = []
    try:
        import fastws

        lines.append(f"fastws.IMPLEMENTATION: {fastws.IMPLEMENTATION}")
    except ImportError as exc:
        lines.append(f"fastws: not importable ({exc})")
    module, reason = _import_speedups()
    if module is None:
        lines.append(f"fastws._speedups: {reason}")
    else:
        simd_level = getattr(module, "simd_level", None)
        level = simd_level() if simd_level is not None else "n/a"
        lines.append(f"fastws._speedups.simd_level(): {level}")
    lines.append(f"FASTWS_REQUIRE_EXTENSIONS: {REQUIRE_EXTENSIONS}")
    return lines


SIMD_LEVELS = ("generic", "avx2")


@pytest.fixture(scope="session")
def simd_levels(codec):
    """Call ``simd_levels()`` to iterate over the SIMD code paths this machine
    can run: for the compiled module each usable level is switched on in turn
    (and the original one restored), for the pure module there is one pass
    (``None``). Lets a test hit the generic fallback on an AVX2 machine too."""

    def levels():
        get = getattr(codec, "simd_level", None)
        set_ = getattr(codec, "_set_simd_level", None)
        if get is None or set_ is None:
            yield None
            return
        original = get()
        used = 0
        try:
            for level in SIMD_LEVELS:
                try:
                    set_(level)
                except (ValueError, RuntimeError, OSError):
                    continue  # not supported by this CPU
                if get() != level:
                    continue
                used += 1
                yield level
        finally:
            set_(original)
        assert used, f"no usable SIMD level among {SIMD_LEVELS} (current: {original})"

    return levels


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With FASTWS_FORBID_SKIPS=1 (CI sets it) a skipped test is a failure: a
    missing peer (websockets, aiohttp, Chromium...) must never turn an interop
    test into a silent pass on the machine that proves the project works."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and _flag("FASTWS_FORBID_SKIPS"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped ({reason}), and FASTWS_FORBID_SKIPS is set"


@pytest.fixture
def redis_server():
    """A fresh redis-server on a free loopback port, persistence off, for one
    test (tests/redis_helpers.py)."""
    from redis_helpers import running_redis

    with running_redis() as server:
        yield server

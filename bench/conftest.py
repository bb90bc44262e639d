"""Fixtures that provide the implementations being compared.

Each fixture returns a module, a function or a small harness, or skips the test
with the reason it is unavailable: the compiled core when it is not built, a peer
library when it is not installed (or its compiled part is missing). The pure-Python
twin is always there.

Run from the repository root without installing anything: ``python -m bench.kernels`` or
``python -m pytest bench --benchmark-only``.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import os
import sys

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from bench._support import FlowControlStub, require_attr  # noqa: E402

PEERS = ("websockets", "aiohttp", "wsproto", "wsaccel", "picows")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _import(modname: str, what: str):
    """Import ``modname`` or skip, saying why."""
    try:
        return importlib.import_module(modname)
    except ImportError as exc:
        pytest.skip(f"{what}: cannot import {modname} ({exc})")


# --- what ends up in the JSON's machine_info (printed by the report) ----------------


def _compiled_status() -> dict:
    try:
        mod = importlib.import_module("fastws._speedups")
    except ImportError as exc:
        return {"compiled": False, "reason": str(exc)}
    status = {"compiled": True, "file": os.path.basename(getattr(mod, "__file__", "") or "")}
    simd = getattr(mod, "simd_level", None)
    if simd is not None:
        try:
            status["simd_level"] = simd()
        except Exception as exc:  # pragma: no cover - depends on the build
            status["simd_level"] = f"error: {exc}"
    return status


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["fastws"] = _compiled_status()
    machine_info["peers"] = {name: _version(name) for name in PEERS}


# --- fastws ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fastws_cython():
    """The compiled core, :mod:`fastws._speedups`."""
    return _import("fastws._speedups", "fastws compiled core not built")


@pytest.fixture(scope="session")
def fastws_python():
    """The pure-Python twin, :mod:`fastws._codec_py` (always available)."""
    return importlib.import_module("fastws._codec_py")


# --- websockets --------------------------------------------------------------------


@pytest.fixture(scope="session")
def websockets_speedups():
    """websockets' C extension (``websockets.speedups.apply_mask``)."""
    return _import("websockets.speedups", "websockets C speedups not available")


@pytest.fixture(scope="session")
def websockets_utils():
    """websockets' pure-Python ``apply_mask`` (``websockets.utils`` since 10.0)."""
    mod = _import("websockets.utils", "websockets not installed")
    require_attr(mod, "apply_mask", "websockets.utils")
    return mod


@pytest.fixture(scope="session")
def websockets_frames():
    """``(Frame, Opcode, StreamReader)`` for websockets' Sans-I/O frame layer."""
    frames = _import("websockets.frames", "websockets not installed")
    streams = _import("websockets.streams", "websockets too old (no websockets.streams)")
    return frames.Frame, frames.Opcode, streams.StreamReader


# --- aiohttp -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def aiohttp_mask():
    """aiohttp's compiled in-place mask ``_websocket_mask_cython(mask: bytes, data: bytearray)``.

    It lives in ``aiohttp._websocket.mask`` since 3.11 and in the ``aiohttp._websocket``
    extension module before that."""
    _import("aiohttp", "aiohttp not installed")
    for modname in ("aiohttp._websocket.mask", "aiohttp._websocket"):
        try:
            mod = importlib.import_module(modname)
        except ImportError:
            continue
        fn = getattr(mod, "_websocket_mask_cython", None)
        if fn is not None:
            return fn
    pytest.skip("aiohttp's compiled mask is not built (only the pure-Python fallback)")


class AiohttpReaderHarness:
    """aiohttp's ``WebSocketReader`` fed directly, its messages collected in a real
    ``WebSocketDataQueue`` (the compiled reader types its queue argument) whose
    protocol is a stub and whose loop is never run."""

    def __init__(self, reader_cls, queue_cls, loop, name: str) -> None:
        self.reader_cls = reader_cls
        self.queue_cls = queue_cls
        self.loop = loop
        self.name = name

    def new(self):
        """A fresh ``(reader, queue)``: server side, no size limit, no compression."""
        # The queue's high-water mark is a C unsigned int: keep limit * 2 below 2**32.
        queue = self.queue_cls(FlowControlStub(), 2**30, loop=self.loop)
        try:
            reader = self.reader_cls(queue, 0, compress=False, decode_text=False)
        except TypeError:  # aiohttp < 3.12 has no decode_text
            reader = self.reader_cls(queue, 0, compress=False)
        return reader, queue

    @staticmethod
    def messages(queue) -> list:
        return [msg for msg, _size in queue._buffer]


@pytest.fixture(scope="session")
def bench_loop():
    """An event loop that exists (some peers want one at construction) but is not run."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def aiohttp_reader(bench_loop):
    _import("aiohttp", "aiohttp not installed")
    try:
        mod = importlib.import_module("aiohttp._websocket.reader_c")
    except ImportError as exc:
        pytest.skip(f"aiohttp's compiled WebSocket reader is not available ({exc})")
    return AiohttpReaderHarness(mod.WebSocketReader, mod.WebSocketDataQueue, bench_loop, "aiohttp (cython)")


@pytest.fixture(scope="session")
def aiohttp_writer():
    """aiohttp's ``WebSocketWriter`` class and its ``WSMsgType``."""
    _import("aiohttp", "aiohttp not installed")
    try:
        from aiohttp._websocket.writer import WebSocketWriter  # aiohttp >= 3.11
    except ImportError:
        try:
            from aiohttp.http_websocket import WebSocketWriter
        except ImportError as exc:
            pytest.skip(f"aiohttp's WebSocketWriter not found ({exc})")
    from aiohttp import WSMsgType

    require_attr(WebSocketWriter, "_write_websocket_frame", "aiohttp's WebSocketWriter")
    return WebSocketWriter, WSMsgType, FlowControlStub


# --- wsproto -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def wsproto_frame_protocol():
    mod = _import("wsproto.frame_protocol", "wsproto not installed")
    return mod.FrameProtocol


# --- wsaccel -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def wsaccel_xormask():
    mod = _import("wsaccel.xormask", "wsaccel not installed")
    return mod.XorMaskerSimple


@pytest.fixture(scope="session")
def wsaccel_utf8():
    mod = _import("wsaccel.utf8validator", "wsaccel not installed")
    return mod.Utf8Validator


# --- picows ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def picows_mod():
    """``(picows, picows.picows)``: picows has no standalone parser or builder, only
    the connection objects, which the benchmarks drive with a fake transport."""
    top = _import("picows", "picows not installed")
    core = _import("picows.picows", "picows compiled core not available")
    return top, core

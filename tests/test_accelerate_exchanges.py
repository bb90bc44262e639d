"""fastws.accelerate on the real libraries: for each one, a client and a server
of that library exchange fragmented text and binary messages and a large binary
one, then the client sends invalid UTF-8; run unpatched, patched (checking that
the library really calls fastws's code), and unpatched again. The messages and
the rejection (close code and reason) must be the same in all three runs.

A missing library skips, which FASTWS_FORBID_SKIPS=1 (CI) turns into a failure.
aiohttp's and websockets' pure-Python fallbacks are exercised in a subprocess
where their compiled code is switched off, as on PyPy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import fastws.accelerate as acc
from fastws import codec

sys.path.insert(0, os.path.dirname(__file__))
import accelerate_helpers as helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _unpatched():
    acc.unpatch_all()
    yield
    acc.unpatch_all()


def three_runs(library, patch, check_patched, **kwargs):
    """Unpatched, patched, unpatched again: the summaries, all equal."""
    pytest.importorskip(library)
    before = helpers.RUNNERS[library]()
    result = patch(allow_pure=True, **kwargs)
    assert result.active and result.changed, result
    check_patched()
    try:
        patched = helpers.RUNNERS[library]()
    finally:
        assert getattr(acc, f"unpatch_{library}")() is True
    after = helpers.RUNNERS[library]()
    assert before["messages"] == helpers.EXPECTED
    assert patched == before
    assert after == before
    return before


def test_wsproto_exchange():
    def check():
        import wsproto.connection
        import wsproto.frame_protocol as fp

        from fastws.accelerate import _wsproto

        assert fp.XorMaskerSimple is _wsproto.XorMaskerSimple
        assert fp.FrameDecoder.__module__ == "fastws.accelerate._wsproto"
        assert wsproto.connection.FrameProtocol is fp.FrameProtocol
        assert fp.FrameProtocol.__module__ == "fastws.accelerate._wsproto"
        assert _wsproto.apply_mask_inplace is codec.apply_mask_inplace
        assert _wsproto.FrameParser is codec.FrameParser

    summary = three_runs("wsproto", acc.patch_wsproto, check)
    code, reason = summary["rejection"]["client"]
    assert code == 1007 and "can't decode byte 0xed in position 4" in reason


def test_autobahn_exchange():
    def check():
        import autobahn.websocket.protocol as protocol

        from fastws.accelerate.wsaccel import utf8validator, xormask

        assert protocol.Utf8Validator is utf8validator.Utf8Validator
        assert type(protocol.create_xor_masker(b"abcd", 1000)) is xormask.XorMaskerSimple
        assert xormask._apply_mask is codec.apply_mask
        assert utf8validator._scan_utf8 is codec.scan_utf8

    summary = three_runs("autobahn", acc.patch_autobahn, check)
    # Autobahn fails the connection (1007) and names the index of the bad byte
    [server] = summary["rejection"]["server"]
    assert "invalid UTF-8 while processing text message at payload octet index 5" in server[1]


def test_tornado_exchange():
    def check():
        import tornado.util
        import tornado.web
        import tornado.websocket

        from fastws.accelerate import _tornado

        for module in (tornado.util, tornado.web, tornado.websocket):
            assert module._websocket_mask is _tornado.websocket_mask
        assert _tornado._apply_mask is codec.apply_mask

    summary = three_runs("tornado", acc.patch_tornado, check)
    assert summary["rejection"]["client"][0] is None  # Tornado aborts: read_message() -> None


def test_ws4py_exchange():
    def check():
        import ws4py.framing
        import ws4py.streaming

        from fastws.accelerate import _ws4py
        from fastws.accelerate.wsaccel.utf8validator import Utf8Validator

        assert ws4py.streaming.Utf8Validator is Utf8Validator
        assert ws4py.framing.Frame.mask is ws4py.framing.Frame.unmask
        assert ws4py.framing.Frame.mask.__module__ == "fastws.accelerate._ws4py"
        assert _ws4py.apply_mask_inplace is codec.apply_mask_inplace

    summary = three_runs("ws4py", acc.patch_ws4py, check)
    assert summary["rejection"] == [1007, "Invalid UTF-8 bytes"]


def test_websockets_exchange_forced_over_speedups():
    """With websockets' speedups present, force=True replaces them."""

    def check():
        import websockets.frames

        assert websockets.frames.apply_mask is codec.apply_mask

    summary = three_runs("websockets", acc.patch_websockets, check, force=True)
    assert summary["rejection"] == [1007, "invalid continuation byte at position 4"]


def test_aiohttp_forced_patches_the_python_level_mask():
    pytest.importorskip("aiohttp")
    import aiohttp._websocket.helpers as helpers_mod
    import aiohttp._websocket.writer as writer

    from fastws.accelerate import _aiohttp

    original = helpers_mod.websocket_mask
    assert acc.patch_aiohttp(force=True, allow_pure=True).active
    assert writer.websocket_mask is _aiohttp.websocket_mask
    data = bytearray(b"hello world")
    writer.websocket_mask(b"\x01\x02\x03\x04", data)
    assert bytes(data) == codec.apply_mask(b"hello world", b"\x01\x02\x03\x04")
    assert acc.unpatch_aiohttp()
    assert helpers_mod.websocket_mask is original


# --- pure-Python fallbacks of aiohttp and websockets, in a subprocess -----------------

_BLOCK_WEBSOCKETS_SPEEDUPS = (
    "import sys; sys.modules['websockets.speedups'] = None; "  # as if not built
    "sys.path.insert(0, 'tests'); import accelerate_helpers as h; sys.exit(h.main(sys.argv[1:]))"
)


def run_in_subprocess(library, *args, env=None):
    full_env = dict(os.environ, **(env or {}))
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, full_env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", _BLOCK_WEBSOCKETS_SPEEDUPS, library, *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _expected_json():
    return helpers._jsonable(helpers.EXPECTED)


def test_aiohttp_pure_fallback_exchange():
    """AIOHTTP_NO_EXTENSIONS=1: aiohttp's Python reader and writer call
    fastws's mask once patched; same messages, same 1007."""
    pytest.importorskip("aiohttp")
    env = {"AIOHTTP_NO_EXTENSIONS": "1"}
    before = run_in_subprocess("aiohttp", env=env)
    patched = run_in_subprocess("aiohttp", "patch", env=env)
    assert patched["active"] and "runs on fastws" in patched["reason"]
    assert before["summary"]["messages"] == _expected_json()
    assert patched["summary"] == before["summary"]
    assert before["summary"]["rejection"][:2] == [8, 1007]


def test_aiohttp_not_patched_over_its_extension():
    pytest.importorskip("aiohttp")
    import aiohttp._websocket.helpers as helpers_mod

    if helpers_mod.websocket_mask is helpers_mod._websocket_mask_python:
        pytest.skip("aiohttp's extension is not built here")
    result = acc.patch_aiohttp(allow_pure=True)
    assert not result.active and not result.changed
    assert "compiled mask is active" in result.reason
    assert helpers_mod.websocket_mask is not codec.apply_mask_inplace


def test_websockets_pure_fallback_exchange():
    """websockets without its speedups (blocked in the subprocess): patched by
    default, same messages, same 1007."""
    pytest.importorskip("websockets")
    before = run_in_subprocess("websockets")
    patched = run_in_subprocess("websockets", "patch")
    assert patched["active"] and "forced" not in patched["reason"]
    assert before["summary"]["messages"] == _expected_json()
    assert patched["summary"] == before["summary"]


def test_websockets_not_patched_over_its_speedups():
    pytest.importorskip("websockets")
    import websockets.frames
    import websockets.utils

    if websockets.frames.apply_mask is websockets.utils.apply_mask:
        pytest.skip("websockets' speedups are not built here")
    result = acc.patch_websockets(allow_pure=True)
    assert not result.active and "speedups are active" in result.reason
    assert websockets.frames.apply_mask is not codec.apply_mask

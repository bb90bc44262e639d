"""fastws.accelerate's contract: patch_all/unpatch_all, idempotent and exactly
reversible patches, clear refusals (pure-Python codec, changed internals,
libraries whose own compiled code is active)."""

from __future__ import annotations

import warnings

import pytest

import fastws.accelerate as acc
from fastws import codec
from fastws.accelerate import _patching

LIBS = ["wsproto", "autobahn", "aiohttp", "websockets", "tornado", "ws4py"]


@pytest.fixture(autouse=True)
def _unpatched():
    acc.unpatch_all()
    yield
    acc.unpatch_all()


@pytest.fixture(params=["wsproto", "autobahn", "tornado", "ws4py"])
def library(request):
    pytest.importorskip(request.param)
    return request.param


def snapshot(result):
    """Current value of every attribute a patch targets (by dotted name)."""
    import importlib

    values = {}
    for target in result.targets:
        parts = target.split(".")
        for i in range(len(parts) - 1, 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            for part in parts[i:-1]:
                obj = getattr(obj, part)
            values[target] = getattr(obj, parts[-1])
            break
    return values


def test_patch_is_idempotent_and_unpatch_restores_exactly(library):
    patch = getattr(acc, f"patch_{library}")
    unpatch = getattr(acc, f"unpatch_{library}")
    first = patch(allow_pure=True)
    assert first and first.changed and first.targets and first.library == library and first.version
    patched = snapshot(first)
    assert unpatch() is True
    original = snapshot(first)
    assert all(patched[t] is not original[t] for t in first.targets)
    assert all(v.__module__.startswith("fastws.") for v in patched.values())
    again = patch(allow_pure=True)
    assert again.changed
    second = patch(allow_pure=True)
    assert second.active and not second.changed and second.reason == "already patched"
    assert snapshot(first) == patched
    assert unpatch() is True and unpatch() is False
    assert snapshot(first) == original


def test_patch_all_and_unpatch_all():
    results = acc.patch_all(allow_pure=True)
    assert set(results) == set(LIBS)
    for name, result in results.items():
        assert isinstance(result, acc.PatchResult)
        assert result.active or result.reason, name
    undone = acc.unpatch_all()
    assert undone == {name: bool(results[name].active) for name in LIBS}
    assert acc.unpatch_all() == {name: False for name in LIBS}


def test_pure_codec_refuses_with_a_warning(monkeypatch, library):
    monkeypatch.setattr(codec, "IMPLEMENTATION", "python")
    patch = getattr(acc, f"patch_{library}")
    with pytest.warns(acc.AccelerationWarning, match="compiled core is not active"):
        result = patch()
    assert not result and not result.changed and "allow_pure=True" in result.reason
    assert getattr(acc, f"unpatch_{library}")() is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert patch(allow_pure=True).active


def test_compiled_core_patches_without_warning(monkeypatch, library):
    monkeypatch.setattr(codec, "IMPLEMENTATION", "cython")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert getattr(acc, f"patch_{library}")().active


@pytest.mark.parametrize(
    ("library", "module", "attribute"),
    [
        ("autobahn", "autobahn.websocket.protocol", "create_xor_masker"),
        ("tornado", "tornado.websocket", "_websocket_mask"),
        ("ws4py", "ws4py.streaming", "Utf8Validator"),
        ("wsproto", "wsproto.connection", "FrameProtocol"),
    ],
)
def test_changed_internals_raise_and_patch_nothing(monkeypatch, library, module, attribute):
    pytest.importorskip(library)
    import importlib

    mod = importlib.import_module(module)
    monkeypatch.delattr(mod, attribute)
    version = _patching.distribution_version(library)
    with pytest.raises(acc.IncompatibleVersion) as info:
        getattr(acc, f"patch_{library}")(allow_pure=True)
    message = str(info.value)
    assert f"{library} {version}" in message and repr(attribute) in message and module in message
    assert getattr(acc, f"unpatch_{library}")() is False  # nothing was patched
    # patch_all warns instead of raising, and goes on with the others
    with pytest.warns(acc.AccelerationWarning, match=repr(attribute)):
        results = acc.patch_all(allow_pure=True)
    assert not results[library] and repr(attribute) in results[library].reason


def test_unpatch_leaves_a_foreign_replacement_alone():
    tornado_websocket = pytest.importorskip("tornado.websocket")
    acc.patch_tornado(allow_pure=True)

    def someone_elses(mask, data):
        return data

    tornado_websocket._websocket_mask = someone_elses
    with pytest.warns(acc.AccelerationWarning, match="replaced by something else"):
        assert acc.unpatch_tornado()
    assert tornado_websocket._websocket_mask is someone_elses
    import tornado.util

    tornado_websocket._websocket_mask = tornado.util._websocket_mask


def test_patch_results_are_truthy_only_when_active():
    result = acc.PatchResult("x", "1", False, False, (), "why")
    assert not result
    assert acc.PatchResult("x", "1", True, False)

"""The wsaccel-compatible layer (fastws.accelerate.wsaccel) against the real
wsaccel: same names, same results, same indexes and errors, on any split of
the input; and its patch_autobahn/patch_ws4py and sys.modules alias."""

from __future__ import annotations

import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastws.accelerate as acc
from fastws import codec
from fastws.accelerate import wsaccel as compat
from fastws.accelerate.wsaccel import utf8validator, xormask

real_utf8 = pytest.importorskip("wsaccel.utf8validator")
real_xor = pytest.importorskip("wsaccel.xormask")


@pytest.fixture(autouse=True)
def _unpatched():
    acc.unpatch_all()
    yield
    acc.unpatch_all()


def test_same_public_names():
    assert {n for n in dir(real_utf8) if not n.startswith("_")} <= set(dir(utf8validator))
    assert {n for n in dir(real_xor) if not n.startswith("_")} <= set(dir(xormask))
    assert utf8validator.Utf8Validator.UTF8_ACCEPT == real_utf8.Utf8Validator.UTF8_ACCEPT == 0
    assert utf8validator.Utf8Validator.UTF8_REJECT == real_utf8.Utf8Validator.UTF8_REJECT == 1


_chunks = st.lists(
    st.one_of(
        st.text(max_size=30).map(lambda s: s.encode("utf-8", "surrogatepass")),
        st.binary(max_size=8),
        st.sampled_from([b"\xf0\x90", b"\x80\x80", b"\xed", b"\xa0", b"\xe2\x82", b"\xac", b""]),
    ),
    max_size=8,
)


@given(chunks=_chunks)
def test_validate_matches_wsaccel(chunks):
    ours, theirs = utf8validator.Utf8Validator(), real_utf8.Utf8Validator()
    for chunk in chunks:
        assert ours.validate(chunk) == theirs.validate(chunk)
        assert (ours.state, ours.i) == (theirs.state, theirs.i)
    ours.reset(), theirs.reset()
    assert ours.validate(b"ok") == theirs.validate(b"ok")


@given(data=st.binary(max_size=40))
def test_decode_matches_wsaccel(data):
    ours, theirs = utf8validator.Utf8Validator(), real_utf8.Utf8Validator()
    for b in data:
        assert ours.decode(b) == theirs.decode(b)
        assert (ours.state, ours.codepoint) == (theirs.state, theirs.codepoint)
    # decode and validate share one state
    assert ours.validate(b"\x80a") == theirs.validate(b"\x80a")


def test_validate_errors_and_inputs():
    v = utf8validator.Utf8Validator()
    with pytest.raises(TypeError, match="a bytes-like object is required, not 'str'"):
        v.validate("text")
    assert v.validate(bytearray("é".encode())) == (True, True, 2, 2)
    assert v.validate(memoryview(b"\xe2\x82")) == (True, False, 2, 4)
    assert v.state not in (0, 1)
    with pytest.raises(ValueError, match="UTF8_ACCEPT"):
        v.state = 5
    v.state = v.UTF8_ACCEPT
    assert v.validate(b"\xac") == (False, False, 0, 4)


@given(
    data=st.binary(max_size=2000),
    key=st.binary(min_size=4, max_size=4),
    cuts=st.lists(st.integers(0, 2000), max_size=4),
)
def test_xor_masker_matches_wsaccel(data, key, cuts):
    ours, theirs = xormask.XorMaskerSimple(key), real_xor.XorMaskerSimple(key)
    bounds = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    for a, b in zip(bounds, bounds[1:]):
        assert ours.process(data[a:b]) == theirs.process(data[a:b])
        assert ours.pointer() == theirs.pointer()
    ours.reset(), theirs.reset()
    assert ours.pointer() == 0
    assert ours.process(data) == theirs.process(data)


def test_masker_errors_and_null_masker():
    with pytest.raises(ValueError, match=r"^mask should be 4byte\.$"):
        xormask.XorMaskerSimple(b"abc")
    with pytest.raises(TypeError, match="a bytes-like object is required, not 'str'"):
        xormask.XorMaskerSimple(b"abcd").process("str")
    null = xormask.XorMaskerNull(b"abcd")
    data = bytearray(b"unchanged")
    assert null.process(data) is data and null.pointer() == 9
    assert isinstance(xormask.createXorMasker(b"abcd", 10), xormask.XorMaskerSimple)
    assert xormask.XorMaskerSimple(bytearray(b"abcd")).process(b"\x00" * 5) == b"abcda"


def test_patch_functions_delegate():
    pytest.importorskip("autobahn")
    pytest.importorskip("ws4py")
    import autobahn.websocket.protocol as protocol
    import ws4py.streaming

    assert acc.patch_autobahn(allow_pure=True).active
    assert protocol.Utf8Validator is utf8validator.Utf8Validator
    assert compat.patch_autobahn().changed is False  # already patched: a no-op
    assert acc.unpatch_autobahn()
    assert protocol.Utf8Validator is not utf8validator.Utf8Validator
    if codec.IMPLEMENTATION == "cython":
        assert compat.patch_ws4py().active
        assert ws4py.streaming.Utf8Validator is utf8validator.Utf8Validator


def test_alias_as_wsaccel(monkeypatch):
    assert compat.alias_as_wsaccel() is False  # the real one is installed: left alone
    for name in ("wsaccel", "wsaccel.utf8validator", "wsaccel.xormask"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert compat.alias_as_wsaccel(replace=True) is True
    import wsaccel
    from wsaccel.xormask import XorMaskerSimple

    assert wsaccel is compat and XorMaskerSimple is xormask.XorMaskerSimple
    assert wsaccel.__version__ == "0.6.6"

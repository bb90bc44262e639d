"""``scan_utf8(data, pending)``: incremental strict UTF-8 validation that reports
the index of the first invalid byte, as a DFA validator (Hoehrmann's, used by
wsaccel, Autobahn and ws4py) does. Both codecs, compared with an independent
byte-at-a-time DFA written here."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

# Bjoern Hoehrmann's UTF-8 DFA (256 byte classes, then 9 states x 16 classes):
# the reference the failure index must agree with.
_TYPES = bytes.fromhex(
    "00" * 128 + "01" * 16 + "09" * 16 + "07" * 32 + "0808" + "02" * 30
    + "0a030303030303030303030303040303" + "0b060606050808080808080808080808"
)
_TRANS = bytes.fromhex(
    "00010203050807010101040601010101010101010101010101010101010101010100010101010100"
    "01000101010101010102010101010102010201010101010101010101010101020101010101010101"
    "01020101010101010102010101010101010101010101010301030101010101010103010101010103"
    "010301010101010101030101010101010101010101010101"
)


def dfa_scan(chunks):
    """Feed chunks to the DFA; per chunk (index of rejection or -1)."""
    state, out = 0, []
    for chunk in chunks:
        bad = -1
        for i, b in enumerate(chunk):
            state = _TRANS[state * 16 + _TYPES[b]]
            if state == 1:
                bad = i
                break
        out.append(bad)
        if bad >= 0:
            break
    return out, state


def codec_scan(codec, chunks):
    pending, out = b"", []
    for chunk in chunks:
        bad, pending = codec.scan_utf8(chunk, pending)
        out.append(bad)
        if bad >= 0:
            assert pending == b""
            break
    return out, pending


@pytest.mark.parametrize(
    ("data", "index"),
    [
        (b"", -1),
        (b"hello", -1),
        ("κόσμε €𝄞".encode(), -1),
        (b"\x80", 0),
        (b"ab\xc0\x80", 2),  # C0 never leads
        (b"\xe0\x80\x80", 1),  # overlong: E0 needs A0..BF next
        (b"\xed\xa0\x80", 1),  # surrogate
        (b"\xf4\x90\x80\x80", 1),  # above U+10FFFF
        (b"\xf5", 0),
        (b"\xe2\x82\x41", 2),  # cut by ASCII
        (b"x" * 100 + b"\xff" + b"y" * 100, 100),  # past the SIMD width
        ("é".encode() * 40 + b"\xc3\x28", 81),
    ],
)
def test_index_of_first_invalid_byte(codec, data, index):
    assert codec.scan_utf8(data) == (index, b"" if index >= 0 or not data else codec.scan_utf8(data)[1])
    assert codec.scan_utf8(data)[0] == dfa_scan([data])[0][0]


def test_pending_sequence_carried_across_calls(codec):
    euro = "€".encode()  # E2 82 AC
    assert codec.scan_utf8(euro[:1]) == (-1, euro[:1])
    assert codec.scan_utf8(euro[1:2], euro[:1]) == (-1, euro[:2])
    assert codec.scan_utf8(euro[2:] + b"!", euro[:2]) == (-1, b"")
    # the continuation of a pending sequence is checked too
    assert codec.scan_utf8(b"\x80", b"\xe0") == (0, b"")
    assert codec.scan_utf8(b"", b"\xf0\x90") == (-1, b"\xf0\x90")
    # bytearray and memoryview inputs
    assert codec.scan_utf8(bytearray(b"\xac"), memoryview(euro[:2])) == (-1, b"")


@pytest.mark.parametrize("pending", [b"a", b"\x80", b"\xc3\xa9", b"\xe0\x80", b"\xf0\x90\x80\x80", b"\xff"])
def test_pending_must_be_an_incomplete_sequence(codec, pending):
    with pytest.raises(ValueError, match="pending must be an incomplete UTF-8 sequence"):
        codec.scan_utf8(b"", pending)


def test_type_errors(codec):
    with pytest.raises(TypeError, match="data must be a bytes-like object, not str"):
        codec.scan_utf8("text")
    with pytest.raises(TypeError, match="pending must be a bytes-like object, not int"):
        codec.scan_utf8(b"", 3)


_utf8ish = st.lists(
    st.one_of(
        st.text(max_size=20).map(lambda s: s.encode("utf-8", "surrogatepass")),
        st.binary(max_size=6),
        st.sampled_from([b"\xed\xa0", b"\xe0\x9f", b"\xf4\x90", b"\xc2", b"\xf0\x90\x80", b"\x80"]),
    ),
    max_size=12,
).map(b"".join)


@given(data=_utf8ish, cuts=st.lists(st.integers(0, 200), max_size=6))
def test_matches_the_dfa_on_any_split(codec, data, cuts):
    bounds = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in zip(bounds, bounds[1:])] or [b""]
    expected, state = dfa_scan(chunks)
    got, pending = codec_scan(codec, chunks)
    assert got == expected
    if expected[-1] < 0:
        assert (pending == b"") == (state == 0)
        assert data.endswith(pending)


@given(data=_utf8ish)
def test_agrees_with_validate_utf8(codec, data):
    bad, pending = codec.scan_utf8(data)
    assert (bad < 0 and pending == b"") == codec.validate_utf8(data)


@given(data=_utf8ish)
def test_both_codecs_agree(both_codecs, data):
    compiled, pure = both_codecs
    for cut in {0, len(data) // 2, len(data)}:
        head, tail = data[:cut], data[cut:]
        a = compiled.scan_utf8(head)
        b = pure.scan_utf8(head)
        assert a == b
        if a[0] < 0:
            assert compiled.scan_utf8(tail, a[1]) == pure.scan_utf8(tail, b[1])


# Long texts too, so that the bulk (SIMD) part of the shared boundary code runs.
_long_utf8ish = st.tuples(
    st.integers(0, 70).map(lambda n: b"a" * n),
    _utf8ish,
    st.text(min_size=20, max_size=120).map(lambda s: s.encode("utf-8")),
    _utf8ish,
).map(b"".join)


@given(data=_utf8ish | _long_utf8ish, cuts=st.lists(st.integers(0, 400), max_size=6))
def test_agrees_with_the_incremental_validator(codec, simd_levels, data, cuts):
    """Utf8Validator and scan_utf8 share their boundary code: on any split,
    feed() fails exactly where scan_utf8 finds an invalid byte, and complete
    is a pending sequence of b""."""
    bounds = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in zip(bounds, bounds[1:])] or [b""]
    for _level in simd_levels():
        validator = codec.Utf8Validator()
        pending = b""
        for chunk in chunks:
            bad, pending = codec.scan_utf8(chunk, pending)
            assert validator.feed(chunk) is (bad < 0)
            if bad >= 0:
                assert not validator.valid and not validator.complete
                break
            assert validator.complete is (pending == b"")

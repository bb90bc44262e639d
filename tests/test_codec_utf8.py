"""Strict UTF-8 validation (RFC 3629, required by RFC 6455 sections 5.6 and 8.1):
``validate_utf8`` and the incremental ``Utf8Validator``."""

from __future__ import annotations

import re

import pytest


def h(text: str) -> bytes:
    return bytes.fromhex(text)


VALID = [
    ("empty", b""),
    ("ascii", b"Hello, world"),
    ("nul", b"\x00"),
    ("U+007F", h("7f")),
    ("U+0080", h("c280")),
    ("U+07FF", h("dfbf")),
    ("U+0800", h("e0a080")),
    ("U+0FFF", h("e0bfbf")),
    ("U+1000", h("e18080")),
    ("U+D7FF-before-surrogates", h("ed9fbf")),
    ("U+E000-after-surrogates", h("ee8080")),
    ("U+FFFD", h("efbfbd")),
    ("U+FFFF", h("efbfbf")),
    ("U+10000", h("f0908080")),
    ("U+3FFFF", h("f0bfbfbf")),
    ("U+40000", h("f1808080")),
    ("U+100000", h("f4808080")),
    ("U+10FFFF", h("f48fbfbf")),
    ("greek-kosme", "κόσμε".encode()),
    ("mixed", "Hello-µ@ßöäüàá-UTF-8!! €𝄞 日本語".encode()),
    ("all-lengths-adjacent", h("41c280e0a080f0908080")),
]

INVALID = [
    ("overlong-2-C0-80", h("c080")),
    ("overlong-2-C1-BF", h("c1bf")),
    ("overlong-3-E0-80-80", h("e08080")),
    ("overlong-3-E0-9F-BF", h("e09fbf")),
    ("overlong-4-F0-80-80-80", h("f0808080")),
    ("overlong-4-F0-8F-BF-BF", h("f08fbfbf")),
    ("surrogate-ED-A0-80", h("eda080")),
    ("surrogate-ED-AD-BF", h("edadbf")),
    ("surrogate-ED-B0-80", h("edb080")),
    ("surrogate-ED-BF-BF", h("edbfbf")),
    ("surrogate-pair", h("eda080edb080")),
    ("above-U+10FFFF-F4-90-80-80", h("f4908080")),
    ("above-U+10FFFF-F4-BF-BF-BF", h("f4bfbfbf")),
    ("above-U+10FFFF-F5", h("f5808080")),
    ("F7-BF-BF-BF", h("f7bfbfbf")),
    ("5-byte-form", h("f888808080")),
    ("6-byte-form", h("fc8480808080")),
    *[(f"byte-{b:02X}", bytes([b])) for b in range(0xF5, 0x100)],
    ("lone-continuation-80", h("80")),
    ("lone-continuation-BF", h("bf")),
    ("continuation-after-ascii", b"a\x80b"),
    ("two-continuations", h("8080")),
    ("extra-continuation", h("c280") + h("80")),
    ("truncated-2-at-end", b"abc" + h("c2")),
    ("truncated-3-after-1", h("e0")),
    ("truncated-3-after-2", h("e0a0")),
    ("truncated-euro", h("e282")),
    ("truncated-4-after-3", h("f09080")),
    ("truncated-then-ascii-2", h("c241")),
    ("truncated-then-ascii-3", h("e0a041")),
    ("truncated-then-ascii-4", h("f0908041")),
    ("bad-second-byte", h("e228a1")),
    ("lead-then-lead", h("c2c280")),
]


def _buffers(data: bytes):
    return [data, bytearray(data), memoryview(data), memoryview(b"xx" + data)[2:]]


def test_tables_agree_with_cpython():
    """Guard the tables themselves: CPython's strict decoder is the reference."""
    for _name, data in VALID:
        data.decode("utf-8")
    for _name, data in INVALID:
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")


@pytest.mark.parametrize("data", [d for _, d in VALID], ids=[n for n, _ in VALID])
def test_validate_valid(codec, data):
    for buf in _buffers(data):
        assert codec.validate_utf8(buf) is True


@pytest.mark.parametrize("data", [d for _, d in INVALID], ids=[n for n, _ in INVALID])
def test_validate_invalid(codec, data):
    for buf in _buffers(data):
        assert codec.validate_utf8(buf) is False
    # also when it sits after a long valid ASCII prefix and before valid text
    assert codec.validate_utf8(b"a" * 100 + data) is False
    assert codec.validate_utf8(b"a" * 100 + data + b"b" * 100) is False


def test_validate_every_code_point_boundary_vs_decode(codec):
    # Every 1-, 2- and 3-byte lead with every second byte, completed by 80 80.
    for lead in range(0x100):
        for second in range(0x100):
            data = bytes([lead, second, 0x80, 0x80])
            try:
                data.decode("utf-8")
                expected = True
            except UnicodeDecodeError:
                expected = False
            assert codec.validate_utf8(data) is expected, data.hex()


def test_validate_rejects_non_bytes(codec):
    with pytest.raises(TypeError, match=re.escape("data must be a bytes-like object, not str")):
        codec.validate_utf8("text")


def test_validate_non_byte_format(codec):
    raw = "ab€d".encode()  # 6 bytes
    assert codec.validate_utf8(memoryview(raw + b"xy").cast("H")) is True
    assert codec.validate_utf8(memoryview(h("eda080") + b"x").cast("H")) is False


# Long inputs: one bad byte at every position, to cross every SIMD block boundary.
BAD_BYTES = [0x80, 0xC0, 0xFF, 0xED]


@pytest.mark.parametrize("bad", BAD_BYTES, ids=lambda b: f"{b:02X}")
def test_long_ascii_one_bad_byte_near_start(codec, simd_levels, bad):
    base = bytearray(b"a" * 300)
    for _level in simd_levels():
        assert codec.validate_utf8(base) is True
        for pos in range(100):
            data = bytearray(base)
            data[pos] = bad
            assert codec.validate_utf8(data) is False, pos


@pytest.mark.parametrize("bad", BAD_BYTES, ids=lambda b: f"{b:02X}")
def test_long_ascii_one_bad_byte_near_end_of_64k(codec, simd_levels, bad):
    size = 64 * 1024
    base = bytearray(b"a" * size)
    for _level in simd_levels():
        assert codec.validate_utf8(base) is True
        for pos in range(size - 100, size):
            data = bytearray(base)
            data[pos] = bad
            assert codec.validate_utf8(data) is False, pos


@pytest.mark.parametrize(
    "char", ["é", "€", "𝄞"], ids=["2-byte", "3-byte", "4-byte"]
)
def test_long_multibyte_runs_at_every_alignment(codec, simd_levels, char):
    encoded = char.encode()
    for _level in simd_levels():
        for offset in range(70):
            prefix = b"a" * offset
            data = prefix + encoded * 40 + b"z" * 70
            assert codec.validate_utf8(data) is True, offset
            # a surrogate, an overlong and a truncation at that same alignment
            assert codec.validate_utf8(prefix + h("eda080") + data) is False, offset
            assert codec.validate_utf8(prefix + h("c0af") + data) is False, offset
            assert codec.validate_utf8(data + prefix + encoded[:-1]) is False, offset
            # sequence cut by a stray ASCII byte at every offset of a long run
            cut = prefix + encoded[:-1] + b"a" + encoded * 40
            assert codec.validate_utf8(cut) is False, offset


def test_long_valid_text_64k(codec, simd_levels):
    text = ("ASCII text, ünïcödé, €uro, 日本語, 𝄞 music. " * 2000).encode()
    assert len(text) > 64 * 1024
    for _level in simd_levels():
        assert codec.validate_utf8(text) is True
        cut = text.rindex("𝄞".encode()) + 2  # inside the last 4-byte sequence
        assert codec.validate_utf8(text[:cut]) is False
        assert codec.validate_utf8(text + h("f4908080")) is False


# --- Utf8Validator ------------------------------------------------------------------


def test_validator_initial_state(codec):
    v = codec.Utf8Validator()
    assert v.valid is True
    assert v.complete is True  # an empty message is valid


def test_validator_complete_only_on_boundary(codec):
    v = codec.Utf8Validator()
    for byte, complete in [(0xE2, False), (0x82, False), (0xAC, True), (0xF0, False),
                           (0x9D, False), (0x84, False), (0x9E, True), (0x41, True)]:
        assert v.feed(bytes([byte])) is True
        assert v.valid is True
        assert v.complete is complete, hex(byte)


def test_validator_empty_feed(codec):
    v = codec.Utf8Validator()
    assert v.feed(b"") is True
    assert v.complete is True
    assert v.feed(h("e2")) is True
    assert v.feed(b"") is True
    assert v.complete is False
    assert v.feed(h("82ac")) is True
    assert v.complete is True


# (bytes, index of the first byte that makes the input impossible)
IMPOSSIBLE_AT = [
    ("surrogate-ED-A0", h("eda080"), 1),
    ("surrogate-ED-BF", h("edbfbf"), 1),
    ("above-max-F4-90", h("f4908080"), 1),
    ("overlong-E0-80", h("e08080"), 1),
    ("overlong-E0-9F", h("e09fbf"), 1),
    ("overlong-F0-80", h("f0808080"), 1),
    ("overlong-F0-8F", h("f08fbfbf"), 1),
    ("C0", h("c080"), 0),
    ("C1", h("c1bf"), 0),
    ("F5", h("f5808080"), 0),
    ("FF", h("ff"), 0),
    ("lone-continuation", h("80"), 0),
    ("continuation-after-ascii", b"abc\x80", 3),
    ("ascii-after-lead-2", h("c241"), 1),
    ("ascii-after-lead-3", h("e28241"), 2),
    ("ascii-after-lead-4", h("f0908041"), 3),
    ("lead-after-lead", h("e2c2"), 1),
    ("after-valid-text", "€uro".encode() + h("eda0"), 7),
]


@pytest.mark.parametrize(
    "data, index", [(d, i) for _, d, i in IMPOSSIBLE_AT], ids=[n for n, _, _ in IMPOSSIBLE_AT]
)
def test_validator_fails_at_first_impossible_byte(codec, data, index):
    v = codec.Utf8Validator()
    for pos, byte in enumerate(data[: index + 1]):
        result = v.feed(bytes([byte]))
        assert result is (pos < index), pos
    assert v.valid is False
    assert v.complete is False
    # in one piece, stopping right at the bad byte
    v = codec.Utf8Validator()
    assert v.feed(data[: index + 1]) is False
    assert v.valid is False


@pytest.mark.parametrize(
    "data", [d for _, d in VALID + INVALID], ids=[n for n, _ in VALID + INVALID]
)
def test_validator_every_split_matches_one_shot(codec, data):
    expected = codec.validate_utf8(data)
    pieces_list = [[data]]
    pieces_list += [[data[:i], data[i:]] for i in range(len(data) + 1)]
    pieces_list.append([bytes([b]) for b in data])
    for pieces in pieces_list:
        v = codec.Utf8Validator()
        results = [v.feed(p) for p in pieces]
        verdict = all(results) and v.complete
        assert verdict is expected, pieces
        assert v.valid is all(results)


def test_validator_stays_invalid(codec):
    v = codec.Utf8Validator()
    assert v.feed(h("c0")) is False
    for more in [b"a", b"", "é".encode(), h("80")]:
        assert v.feed(more) is False
        assert v.valid is False
        assert v.complete is False


def test_validator_reset(codec):
    v = codec.Utf8Validator()
    assert v.feed(h("ff")) is False
    v.reset()
    assert v.valid is True
    assert v.complete is True
    assert v.feed("€".encode()) is True
    assert v.complete is True
    # reset in the middle of a sequence forgets the pending bytes
    assert v.feed(h("e282")) is True
    assert v.complete is False
    v.reset()
    assert v.complete is True
    assert v.feed(b"a") is True
    assert v.complete is True
    v.feed(h("e282"))
    v.reset()
    assert v.feed(h("ac")) is False  # a continuation byte with nothing before it


def test_validator_accepts_buffers(codec):
    v = codec.Utf8Validator()
    assert v.feed(bytearray(h("e2"))) is True
    assert v.feed(memoryview(h("82"))) is True
    assert v.feed(memoryview(b"x" + h("ac"))[1:]) is True
    assert v.complete is True


def test_validator_rejects_non_bytes(codec):
    v = codec.Utf8Validator()
    with pytest.raises(TypeError, match=re.escape("data must be a bytes-like object, not str")):
        v.feed("text")

"""Masking (RFC 6455 section 5.3): ``apply_mask`` and ``apply_mask_inplace``.

Every result is checked against the obvious byte-by-byte definition.
"""

from __future__ import annotations

import array
import random
import re

import pytest

KEYS = [
    bytes.fromhex("37fa213d"),  # the key of the RFC 6455 section 5.7 examples
    bytes.fromhex("00000000"),
    bytes.fromhex("ffffffff"),
    bytes.fromhex("01020304"),
    bytes.fromhex("a5805aff"),
]
SMALL_LENGTHS = list(range(71))
BIG_LENGTHS = [127, 128, 255, 256, 1023, 4095, 4096, 4097, 65535, 65536, 100_003]


def reference_mask(data: bytes, mask: bytes, phase: int = 0) -> bytes:
    return bytes(b ^ mask[(i + phase) % 4] for i, b in enumerate(data))


def payload(n: int, seed: int = 0) -> bytes:
    return random.Random(n * 31 + seed).randbytes(n)


BUFFER_TYPES = {
    "bytes": bytes,
    "bytearray": bytearray,
    "memoryview": lambda b: memoryview(b),
    "memoryview-of-bytearray": lambda b: memoryview(bytearray(b)),
}


# --- apply_mask -------------------------------------------------------------------


def test_rfc_example(codec):
    # RFC 6455 section 5.7: "Hello" masked with 37 fa 21 3d.
    assert codec.apply_mask(b"Hello", bytes.fromhex("37fa213d")) == bytes.fromhex("7f9f4d5158")
    assert codec.apply_mask(bytes.fromhex("7f9f4d5158"), bytes.fromhex("37fa213d")) == b"Hello"


@pytest.mark.parametrize("kind", list(BUFFER_TYPES))
@pytest.mark.parametrize("key", KEYS, ids=lambda k: k.hex())
def test_apply_mask_small_lengths(codec, kind, key):
    for n in SMALL_LENGTHS:
        data = payload(n)
        result = codec.apply_mask(BUFFER_TYPES[kind](data), key)
        assert type(result) is bytes
        assert result == reference_mask(data, key), n


@pytest.mark.parametrize("n", BIG_LENGTHS)
def test_apply_mask_big_lengths(codec, simd_levels, n):
    data = payload(n)
    key = KEYS[4]
    expected = reference_mask(data, key)
    for _level in simd_levels():
        assert codec.apply_mask(data, key) == expected
        assert codec.apply_mask(bytearray(data), key) == expected
        assert codec.apply_mask(memoryview(data), key) == expected


@pytest.mark.parametrize("kind", ["bytearray", "memoryview", "memoryview-of-bytearray"])
def test_apply_mask_key_types(codec, kind):
    key = KEYS[0]
    data = payload(37)
    assert codec.apply_mask(data, BUFFER_TYPES[kind](key)) == reference_mask(data, key)


def test_apply_mask_leaves_input_alone(codec):
    data = bytearray(payload(50))
    original = bytes(data)
    codec.apply_mask(data, KEYS[3])
    assert data == original


def test_apply_mask_is_an_involution(codec):
    data = payload(1000)
    assert codec.apply_mask(codec.apply_mask(data, KEYS[4]), KEYS[4]) == data


@pytest.mark.parametrize("fmt", ["I", "H", "Q"])
def test_apply_mask_non_byte_format(codec, fmt):
    # A buffer of wider items is masked as its raw bytes.
    raw = payload(64)
    view = memoryview(bytearray(raw)).cast(fmt)
    assert view.itemsize > 1
    assert codec.apply_mask(view, KEYS[0]) == reference_mask(raw, KEYS[0])
    arr = array.array(fmt, raw)
    assert codec.apply_mask(arr, KEYS[0]) == reference_mask(raw, KEYS[0])
    # A 4-byte key given as one 32-bit item is still a 4-byte key.
    key_view = memoryview(bytearray(KEYS[4])).cast("I")
    assert codec.apply_mask(raw, key_view) == reference_mask(raw, KEYS[4])


@pytest.mark.parametrize("offset", range(1, 8))
def test_apply_mask_unaligned_slices(codec, offset):
    for n in SMALL_LENGTHS + [1000, 4099]:
        base = bytearray(payload(n + 16, seed=offset))
        view = memoryview(base)[offset : offset + n]
        expected = reference_mask(bytes(view), KEYS[4])
        assert codec.apply_mask(view, KEYS[4]) == expected, n
        assert codec.apply_mask(bytes(view), memoryview(bytes(8) + KEYS[4])[8:]) == expected


@pytest.mark.parametrize("length", [0, 1, 2, 3, 5, 8, 16])
def test_apply_mask_wrong_key_length(codec, length):
    with pytest.raises(ValueError, match=re.escape(f"mask must be 4 bytes, got {length}")):
        codec.apply_mask(b"data", bytes(length))


@pytest.mark.parametrize(
    "data", ["text", 1234, None, [1, 2, 3, 4], 1.5], ids=lambda d: type(d).__name__
)
def test_apply_mask_data_not_bytes(codec, data):
    with pytest.raises(
        TypeError, match=re.escape(f"data must be a bytes-like object, not {type(data).__name__}")
    ):
        codec.apply_mask(data, KEYS[0])


@pytest.mark.parametrize("mask", ["abcd", 1234, None, [1, 2, 3, 4]], ids=lambda m: type(m).__name__)
def test_apply_mask_key_not_bytes(codec, mask):
    with pytest.raises(
        TypeError, match=re.escape(f"mask must be a bytes-like object, not {type(mask).__name__}")
    ):
        codec.apply_mask(b"data", mask)


# --- apply_mask_inplace -------------------------------------------------------------


@pytest.mark.parametrize("phase", range(4))
@pytest.mark.parametrize("key", KEYS, ids=lambda k: k.hex())
def test_inplace_every_phase(codec, key, phase):
    for n in SMALL_LENGTHS:
        data = payload(n)
        buf = bytearray(data)
        assert codec.apply_mask_inplace(buf, key, phase) == (phase + n) % 4
        assert buf == reference_mask(data, key, phase), n


@pytest.mark.parametrize("n", BIG_LENGTHS)
@pytest.mark.parametrize("phase", range(4))
def test_inplace_big_lengths(codec, simd_levels, n, phase):
    data = payload(n)
    expected = reference_mask(data, KEYS[4], phase)
    for _level in simd_levels():
        buf = bytearray(data)
        assert codec.apply_mask_inplace(buf, KEYS[4], phase) == (phase + n) % 4
        assert buf == expected


def test_inplace_phase_keyword_and_default(codec):
    buf = bytearray(b"Hello")
    assert codec.apply_mask_inplace(buf, KEYS[0]) == 1
    assert buf == bytes.fromhex("7f9f4d5158")
    buf = bytearray(b"Hello")
    assert codec.apply_mask_inplace(buf, KEYS[0], phase=2) == 3
    assert buf == reference_mask(b"Hello", KEYS[0], 2)


@pytest.mark.parametrize("kind", ["memoryview-of-bytearray", "array-I", "memoryview-cast-I"])
def test_inplace_buffer_types(codec, kind):
    raw = payload(40)
    if kind == "memoryview-of-bytearray":
        backing = bytearray(raw)
        target = memoryview(backing)
    elif kind == "array-I":
        backing = target = array.array("I", raw)
    else:
        backing = bytearray(raw)
        target = memoryview(backing).cast("I")
    assert codec.apply_mask_inplace(target, KEYS[3], 1) == 1
    assert bytes(backing) == reference_mask(raw, KEYS[3], 1)


@pytest.mark.parametrize("offset", range(1, 8))
def test_inplace_unaligned_slices(codec, offset):
    for n in SMALL_LENGTHS + [1000, 4099]:
        for phase in range(4):
            raw = payload(n + 16, seed=offset)
            base = bytearray(raw)
            view = memoryview(base)[offset : offset + n]
            assert codec.apply_mask_inplace(view, KEYS[4], phase) == (phase + n) % 4
            expected = raw[:offset] + reference_mask(raw[offset : offset + n], KEYS[4], phase)
            assert base == expected + raw[offset + n :], (n, phase)


def _unmask_in_pieces(codec, data: bytes, key: bytes, cuts: list[int]) -> bytes:
    buf = bytearray(data)
    view = memoryview(buf)
    phase = 0
    bounds = [0, *cuts, len(data)]
    for start, stop in zip(bounds, bounds[1:]):
        phase = codec.apply_mask_inplace(view[start:stop], key, phase)
        assert phase == stop % 4
    return bytes(buf)


def test_inplace_piecewise_every_single_split(codec):
    data = payload(67)
    expected = codec.apply_mask(data, KEYS[4])
    for cut in range(len(data) + 1):
        assert _unmask_in_pieces(codec, data, KEYS[4], [cut]) == expected, cut


def test_inplace_piecewise_random_splits(codec):
    rng = random.Random(1234)
    for n in [0, 1, 5, 63, 64, 65, 500, 5000]:
        data = payload(n)
        expected = reference_mask(data, KEYS[0])
        for _ in range(30):
            cuts = sorted(rng.randint(0, n) for _ in range(rng.randint(0, 8)))
            assert _unmask_in_pieces(codec, data, KEYS[0], cuts) == expected, (n, cuts)
        # and byte by byte
        assert _unmask_in_pieces(codec, data, KEYS[0], list(range(1, n))) == expected


@pytest.mark.parametrize(
    "buffer",
    [b"abcdef", memoryview(b"abcdef"), memoryview(bytearray(b"abcdef")).toreadonly()],
    ids=["bytes", "memoryview-of-bytes", "readonly-memoryview"],
)
def test_inplace_readonly_buffer(codec, buffer):
    with pytest.raises(TypeError, match=re.escape("buffer must be writable")):
        codec.apply_mask_inplace(buffer, KEYS[0])


def test_inplace_buffer_not_bytes(codec):
    with pytest.raises(TypeError, match=re.escape("buffer must be a bytes-like object, not str")):
        codec.apply_mask_inplace("abcdef", KEYS[0])


@pytest.mark.parametrize("phase", [-1, 4, 5, 100])
def test_inplace_bad_phase(codec, phase):
    buf = bytearray(b"abcdef")
    with pytest.raises(ValueError, match=re.escape(f"phase must be 0 to 3, got {phase}")):
        codec.apply_mask_inplace(buf, KEYS[0], phase)
    assert buf == b"abcdef"


@pytest.mark.parametrize("length", [0, 3, 5])
def test_inplace_wrong_key_length(codec, length):
    buf = bytearray(b"abcdef")
    with pytest.raises(ValueError, match=re.escape(f"mask must be 4 bytes, got {length}")):
        codec.apply_mask_inplace(buf, bytes(length))
    assert buf == b"abcdef"

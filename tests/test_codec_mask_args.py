"""The argument forms of ``apply_mask_inplace`` and ``apply_mask``, table-driven.

The compiled core reads an ``int`` phase and a ``bytes`` key without a Python
call and takes the buffer protocol for the rest; these tables pin what every
other form does, on both implementations, and check that the two raise the
same errors with the same messages, in the same order (mask, then phase, then
buffer), leaving the buffer untouched.
"""

from __future__ import annotations

import array
import enum
import sys

import pytest

KEY = bytes.fromhex("a5805aff")
DATA = bytes(range(37)) + b"\xfe\xff\x80"  # 40 bytes, a length not a multiple of 8


def reference_mask(data: bytes, mask: bytes, phase: int = 0) -> bytes:
    return bytes(b ^ mask[(i + phase) % 4] for i, b in enumerate(data))


class Index:
    """Not an int, but an integer through ``__index__`` (as numpy's integers are)."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


class Small(int):
    """An int subclass."""


class Phase(enum.IntEnum):
    TWO = 2


# --- phase ---------------------------------------------------------------------------

GOOD_PHASES = [
    # id, phase, the phase it means
    ("0", 0, 0),
    ("1", 1, 1),
    ("2", 2, 2),
    ("3", 3, 3),
    ("True", True, 1),
    ("False", False, 0),
    ("int-subclass", Small(3), 3),
    ("IntEnum", Phase.TWO, 2),
    ("__index__", Index(1), 1),
]


@pytest.mark.parametrize(
    "phase, meaning", [(p, m) for _, p, m in GOOD_PHASES], ids=[i for i, _, _ in GOOD_PHASES]
)
@pytest.mark.parametrize("as_keyword", [False, True], ids=["positional", "keyword"])
def test_phase_forms(codec, phase, meaning, as_keyword):
    buf = bytearray(DATA)
    if as_keyword:
        result = codec.apply_mask_inplace(buf, KEY, phase=phase)
    else:
        result = codec.apply_mask_inplace(buf, KEY, phase)
    assert type(result) is int
    assert result == (meaning + len(DATA)) % 4
    assert buf == reference_mask(DATA, KEY, meaning)


def test_phase_default_is_zero(codec):
    buf = bytearray(DATA)
    assert codec.apply_mask_inplace(buf, KEY) == len(DATA) % 4
    assert buf == reference_mask(DATA, KEY, 0)


BAD_PHASES = [
    # id, phase, exception, message
    ("-1", -1, ValueError, "phase must be 0 to 3, got -1"),
    ("4", 4, ValueError, "phase must be 0 to 3, got 4"),
    ("257", 257, ValueError, "phase must be 0 to 3, got 257"),
    ("long-max", 2**63 - 1, ValueError, f"phase must be 0 to 3, got {2**63 - 1}"),
    ("long-min", -(2**63), ValueError, f"phase must be 0 to 3, got {-(2**63)}"),
    ("2**63", 2**63, ValueError, f"phase must be 0 to 3, got {2**63}"),
    ("2**64+1", 2**64 + 1, ValueError, f"phase must be 0 to 3, got {2**64 + 1}"),
    ("-10**40", -(10**40), ValueError, f"phase must be 0 to 3, got {-(10**40)}"),
    ("__index__-7", Index(7), ValueError, "phase must be 0 to 3, got 7"),
    ("__index__-huge", Index(2**80), ValueError, f"phase must be 0 to 3, got {2**80}"),
    ("int-subclass-9", Small(9), ValueError, "phase must be 0 to 3, got 9"),
    ("float", 1.0, TypeError, "'float' object cannot be interpreted as an integer"),
    ("str", "1", TypeError, "'str' object cannot be interpreted as an integer"),
    ("None", None, TypeError, "'NoneType' object cannot be interpreted as an integer"),
    ("bytes", b"\x01", TypeError, "'bytes' object cannot be interpreted as an integer"),
]


@pytest.mark.parametrize(
    "phase, error, message",
    [(p, e, m) for _, p, e, m in BAD_PHASES],
    ids=[i for i, _, _, _ in BAD_PHASES],
)
def test_bad_phase(codec, phase, error, message):
    buf = bytearray(DATA)
    with pytest.raises(error) as info:
        codec.apply_mask_inplace(buf, KEY, phase)
    assert str(info.value) == message
    assert type(info.value) is error
    assert buf == DATA


def test_index_raising_propagates(codec):
    class Broken:
        def __index__(self) -> int:
            raise ZeroDivisionError("from __index__")

    buf = bytearray(DATA)
    with pytest.raises(ZeroDivisionError, match="from __index__"):
        codec.apply_mask_inplace(buf, KEY, Broken())
    assert buf == DATA


# --- order of the checks ---------------------------------------------------------------

ORDER = [
    # id, buffer, mask, phase, exception, message
    ("mask-before-phase", bytearray(4), b"abc", 9, ValueError, "mask must be 4 bytes, got 3"),
    ("mask-type-before-phase", bytearray(4), "abcd", "x", TypeError,
     "mask must be a bytes-like object, not str"),
    ("phase-before-buffer", b"read-only", KEY, 4, ValueError, "phase must be 0 to 3, got 4"),
    ("phase-type-before-buffer", "text", KEY, 0.5, TypeError,
     "'float' object cannot be interpreted as an integer"),
    ("buffer-last", "text", KEY, 3, TypeError, "buffer must be a bytes-like object, not str"),
]


@pytest.mark.parametrize(
    "buffer, mask, phase, error, message",
    [row[1:] for row in ORDER],
    ids=[row[0] for row in ORDER],
)
def test_check_order(codec, buffer, mask, phase, error, message):
    with pytest.raises(error) as info:
        codec.apply_mask_inplace(buffer, mask, phase)
    assert str(info.value) == message


# --- buffer and mask forms -----------------------------------------------------------


def _strided(data: bytes) -> tuple[bytearray, memoryview]:
    backing = bytearray(b"".join(bytes([b, 0xEE]) for b in data))
    return backing, memoryview(backing)[::2]


BUFFERS = [
    # id, make(data) -> (backing, target); the masked bytes are read from backing
    ("bytearray", lambda d: (lambda b: (b, b))(bytearray(d))),
    ("bytearray-subclass", lambda d: (lambda b: (b, b))(type("BA", (bytearray,), {})(d))),
    ("memoryview", lambda d: (lambda b: (b, memoryview(b)))(bytearray(d))),
    ("memoryview-slice", lambda d: (lambda b: (b, memoryview(b)[:]))(bytearray(d))),
    ("memoryview-cast-I", lambda d: (lambda b: (b, memoryview(b).cast("I")))(bytearray(d))),
    ("memoryview-2d", lambda d: (lambda b: (b, memoryview(b).cast("B", (4, len(d) // 4))))(bytearray(d))),
    ("array-B", lambda d: (lambda a: (a, a))(array.array("B", d))),
    ("strided", _strided),
    ("reversed", lambda d: (lambda b: (b, memoryview(b)[::-1]))(bytearray(d[::-1]))),
]


def _masked_bytes(backing) -> bytes:
    raw = bytes(memoryview(backing))
    if len(raw) == 2 * len(DATA):  # the strided backing: every other byte
        assert set(raw[1::2]) == {0xEE}, "a byte between the strided ones was written"
        return raw[::2]
    return raw


@pytest.mark.parametrize("make", [m for _, m in BUFFERS], ids=[i for i, _ in BUFFERS])
@pytest.mark.parametrize("phase", [0, 3])
def test_buffer_forms(codec, make, phase):
    backing, target = make(DATA)
    assert codec.apply_mask_inplace(target, KEY, phase) == (phase + len(DATA)) % 4
    masked = _masked_bytes(backing)
    if isinstance(target, memoryview) and target.strides == (-1,):
        masked = masked[::-1]  # written back to front: the view's first byte is the last
    assert masked == reference_mask(DATA, KEY, phase)


READ_ONLY = [
    ("bytes", lambda: DATA),
    ("memoryview-of-bytes", lambda: memoryview(DATA)),
    ("readonly-memoryview", lambda: memoryview(bytearray(DATA)).toreadonly()),
    ("strided-readonly", lambda: memoryview(DATA)[::2]),
    ("2d-readonly", lambda: memoryview(DATA).cast("B", (4, len(DATA) // 4))),
]


@pytest.mark.parametrize("make", [m for _, m in READ_ONLY], ids=[i for i, _ in READ_ONLY])
def test_read_only_buffers(codec, make):
    buffer = make()
    with pytest.raises(TypeError) as info:
        codec.apply_mask_inplace(buffer, KEY)
    assert str(info.value) == "buffer must be writable"


def test_released_memoryview(codec):
    view = memoryview(bytearray(DATA))
    view.release()
    with pytest.raises(ValueError, match="released memoryview"):
        codec.apply_mask_inplace(view, KEY)
    with pytest.raises(ValueError, match="released memoryview"):
        codec.apply_mask(view, KEY)


KEYS = [
    # id, mask
    ("bytes", KEY),
    ("bytearray", bytearray(KEY)),
    ("memoryview", memoryview(KEY)),
    ("strided-memoryview", memoryview(bytes(b for k in KEY for b in (k, 0))).__getitem__(slice(None, None, 2))),
    ("array-B", array.array("B", KEY)),
    ("memoryview-cast-I", memoryview(KEY).cast("I")),
]


@pytest.mark.parametrize("mask", [k for _, k in KEYS], ids=[i for i, _ in KEYS])
def test_key_forms(codec, mask):
    buf = bytearray(DATA)
    assert codec.apply_mask_inplace(buf, mask, 1) == (1 + len(DATA)) % 4
    assert buf == reference_mask(DATA, KEY, 1)
    assert codec.apply_mask(DATA, mask) == reference_mask(DATA, KEY)
    assert codec.apply_mask(bytearray(DATA), mask) == reference_mask(DATA, KEY)


BAD_KEYS = [
    ("bytes-3", b"abc", ValueError, "mask must be 4 bytes, got 3"),
    ("bytes-5", b"abcde", ValueError, "mask must be 4 bytes, got 5"),
    ("bytearray-8", bytearray(8), ValueError, "mask must be 4 bytes, got 8"),
    ("array-I-one", array.array("I", [1]), None, None),  # 4 bytes: a good key
    ("array-I-two", array.array("I", [1, 2]), ValueError, "mask must be 4 bytes, got 8"),
    ("str", "abcd", TypeError, "mask must be a bytes-like object, not str"),
    ("int", 1234, TypeError, "mask must be a bytes-like object, not int"),
    ("None", None, TypeError, "mask must be a bytes-like object, not NoneType"),
]


@pytest.mark.parametrize(
    "mask, error, message", [row[1:] for row in BAD_KEYS], ids=[row[0] for row in BAD_KEYS]
)
def test_key_errors(codec, mask, error, message):
    buf = bytearray(DATA)
    if error is None:
        codec.apply_mask_inplace(buf, mask)
        assert codec.apply_mask(DATA, mask) == bytes(buf)
        return
    for call in (lambda: codec.apply_mask_inplace(buf, mask), lambda: codec.apply_mask(DATA, mask)):
        with pytest.raises(error) as info:
            call()
        assert str(info.value) == message
    assert buf == DATA


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((), {}),
        ((bytearray(4),), {}),
        ((bytearray(4), KEY, 0, 0), {}),
        ((bytearray(4), KEY), {"phase": 0, "other": 1}),
        ((bytearray(4), KEY, 0), {"phase": 0}),
    ],
    ids=["none", "one", "four", "unknown-keyword", "phase-twice"],
)
def test_wrong_arguments(codec, args, kwargs):
    with pytest.raises(TypeError):
        codec.apply_mask_inplace(*args, **kwargs)


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 7, 8, 11, 12, 15, 16, 31, 32, 33, 63, 125, 127, 128, 129])
@pytest.mark.parametrize("phase", range(4))
def test_small_sizes_every_tail(codec, simd_levels, n, phase):
    """The word loop, the 4-byte step and the byte tail of the small-size kernel."""
    data = bytes((i * 7 + 3) & 0xFF for i in range(n))
    for _level in simd_levels():
        buf = bytearray(data)
        assert codec.apply_mask_inplace(buf, KEY, phase) == (phase + n) % 4
        assert buf == reference_mask(data, KEY, phase)
        assert codec.apply_mask(data, KEY) == reference_mask(data, KEY)


def _error_of(codec, buffer, mask, phase):
    """``(type, message)`` of what ``apply_mask_inplace`` raised, or ``None``."""
    if isinstance(buffer, bytearray):
        buffer = bytearray(buffer)  # each twin writes into its own copy
    try:
        codec.apply_mask_inplace(buffer, mask, phase)
    except Exception as exc:  # noqa: BLE001 - compared as they are
        return type(exc), str(exc)
    return None


def test_twins_raise_the_same_errors(both_codecs):
    compiled, pure = both_codecs
    forms = (
        [(bytearray(DATA), KEY, phase) for _, phase, _, _ in BAD_PHASES]
        + [row[1:4] for row in ORDER]
        + [(make(), KEY, 0) for _, make in READ_ONLY]
        + [(bytearray(DATA), mask, 0) for _, mask, _, _ in BAD_KEYS]
    )
    for buffer, mask, phase in forms:
        expected = _error_of(pure, buffer, mask, phase)
        assert _error_of(compiled, buffer, mask, phase) == expected, (buffer, mask, phase)


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="reference counts are CPython's")
def test_no_reference_leaked(codec):
    """The fast paths take no reference they do not give back."""
    buf = bytearray(DATA)
    phase = Index(2)
    before = (sys.getrefcount(buf), sys.getrefcount(KEY), sys.getrefcount(phase))
    for _ in range(1000):
        codec.apply_mask_inplace(buf, KEY, 2)
        codec.apply_mask_inplace(buf, KEY, phase)
        codec.apply_mask_inplace(memoryview(buf), KEY)
    assert (sys.getrefcount(buf), sys.getrefcount(KEY), sys.getrefcount(phase)) == before

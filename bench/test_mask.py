"""Masking (RFC 6455 section 5.3): XOR a payload with a 4-byte key.

One group per payload size. Allocating kernels return new bytes; in-place ones
XOR a bytearray again and again (no allocation, so they are not directly comparable
with the allocating ones: compare them with each other). ``bytes(bytearray)`` is
the floor of an allocating mask: one allocation and one copy of the same size;
``operator.is_`` called with an in-place kernel's two arguments is the floor of an
in-place one: the cost of the benchmark loop and of one call to a C function,
which every row pays too and which is most of a row at 16 B.
"""

from __future__ import annotations

import functools
import operator

import pytest

from bench._support import (
    MASK_KEY,
    KiB,
    MiB,
    describe,
    random_bytes,
    record_throughput,
    ref_mask,
    require_attr,
    size_id,
    size_label,
)

SIZES = (16, 125, KiB, 64 * KiB, MiB, 16 * MiB)
BASELINE = "websockets.speedups"


@functools.cache
def _data(size: int) -> tuple[bytes, bytes]:
    data = random_bytes(size, seed=size)
    return data, ref_mask(data, MASK_KEY)


# Each adapter returns (function, args, what one call produced) and the test
# checks the latter. The function and its arguments go to pytest-benchmark as they
# are, so that no wrapper is timed where the API does not need one.


def _fastws_cython(request, data, key):
    mod = request.getfixturevalue("fastws_cython")
    fn = require_attr(mod, "apply_mask", "fastws._speedups")
    return fn, (data, key), fn(data, key)


def _fastws_cython_inplace(request, data, key):
    mod = request.getfixturevalue("fastws_cython")
    fn = require_attr(mod, "apply_mask_inplace", "fastws._speedups")
    once = bytearray(data)
    fn(once, key)
    return fn, (bytearray(data), key), bytes(once)


def _fastws_python(request, data, key):
    fn = request.getfixturevalue("fastws_python").apply_mask
    return fn, (data, key), fn(data, key)


def _fastws_python_inplace(request, data, key):
    fn = request.getfixturevalue("fastws_python").apply_mask_inplace
    once = bytearray(data)
    fn(once, key)
    return fn, (bytearray(data), key), bytes(once)


def _websockets_speedups(request, data, key):
    fn = request.getfixturevalue("websockets_speedups").apply_mask
    return fn, (data, key), fn(data, key)


def _websockets_utils(request, data, key):
    fn = request.getfixturevalue("websockets_utils").apply_mask
    return fn, (data, key), fn(data, key)


def _aiohttp(request, data, key):
    fn = request.getfixturevalue("aiohttp_mask")  # fn(mask: bytes, data: bytearray) -> None
    once = bytearray(data)
    fn(key, once)
    return fn, (key, bytearray(data)), bytes(once)


def _wsaccel(request, data, key):
    cls = request.getfixturevalue("wsaccel_xormask")

    def xor_masker_simple(data, key, cls=cls):
        # One masker per frame: it keeps the key phase across process() calls.
        return cls(key).process(data)

    return xor_masker_simple, (data, key), xor_masker_simple(data, key)


def _copy_floor(request, data, key):
    buf = bytearray(data)
    return bytes, (buf,), None  # checked against the input, not the masked output


def _call_floor(request, data, key):
    # A C function given the same two arguments, doing nothing with them.
    return operator.is_, (bytearray(data), key), None


IMPLS = {
    # id: (display name, adapter, note)
    "fastws-cython": ("fastws[cython] apply_mask", _fastws_cython, None),
    "fastws-cython-inplace": (
        "fastws[cython] apply_mask_inplace",
        _fastws_cython_inplace,
        "in place on a bytearray, no allocation",
    ),
    "fastws-python": ("fastws[python] apply_mask", _fastws_python, None),
    "fastws-python-inplace": (
        "fastws[python] apply_mask_inplace",
        _fastws_python_inplace,
        "in place on a bytearray, no allocation",
    ),
    "websockets-speedups": (BASELINE, _websockets_speedups, None),
    "websockets-utils": ("websockets.utils (py)", _websockets_utils, None),
    "aiohttp": (
        "aiohttp _websocket_mask_cython",
        _aiohttp,
        "in place on a bytearray, no allocation",
    ),
    "wsaccel": ("wsaccel XorMaskerSimple", _wsaccel, "includes the masker's construction"),
    "copy-floor": ("floor: bytes(bytearray)", _copy_floor, "allocation + copy, no XOR"),
    "call-floor": (
        "floor: operator.is_(bytearray, key)",
        _call_floor,
        "the benchmark loop and one C call, no work",
    ),
}

INPLACE = {"fastws-cython-inplace", "fastws-python-inplace", "aiohttp", "call-floor"}

CASES = [(size, impl) for size in SIZES for impl in IMPLS]


@pytest.mark.parametrize(
    ("size", "impl"), CASES, ids=[f"{size_id(s)}-{i}" for s, i in CASES]
)
def test_mask(benchmark, request, size, impl):
    name, adapter, note = IMPLS[impl]
    data, expected = _data(size)
    fn, args, produced = adapter(request, data, MASK_KEY)

    # Check once, outside the timed loop.
    if impl == "copy-floor":
        assert fn(*args) == data
    elif impl == "call-floor":
        assert fn(*args) is False
    else:
        assert produced == expected, f"{name} masked {size_label(size)} wrongly"

    describe(
        benchmark,
        kernel="mask",
        case=size_label(size),
        order=size,
        impl=name,
        baseline=BASELINE,
        bytes_per_call=size,
        primary="bytes",
        note=note,
        variant="inplace" if impl in INPLACE else "",
    )
    benchmark(fn, *args)
    record_throughput(benchmark)

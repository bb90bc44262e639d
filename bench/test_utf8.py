"""UTF-8 validation of whole text messages (RFC 6455 section 8.1, RFC 3629).

One group per (text kind, size): pure ASCII, mixed 2-4 byte text (Latin-1 accents,
Cyrillic, CJK, emoji) and the same mixed text with an invalid last byte, so that a
validator must read everything before it can say no. ``bytes.decode("utf-8")`` is
CPython's own strict decoder: it builds a ``str`` as well, and is the reference.
"""

from __future__ import annotations

import functools

import pytest

from bench._support import (
    KiB,
    MiB,
    describe,
    record_throughput,
    require_attr,
    size_id,
    size_label,
    utf8_data,
)

SIZES = (KiB, 64 * KiB, MiB)
KINDS = ("ascii", "mixed", "invalid-end")
BASELINE = 'bytes.decode("utf-8")'


@functools.cache
def _data(kind: str, size: int) -> tuple[bytes, bool]:
    return utf8_data(kind, size)


def _decode_or_false(data):
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# Each adapter returns (function, args, the validity one call reported).


def _fastws_cython(request, data, valid):
    fn = require_attr(request.getfixturevalue("fastws_cython"), "validate_utf8", "fastws._speedups")
    return fn, (data,), fn(data)


def _fastws_python(request, data, valid):
    fn = request.getfixturevalue("fastws_python").validate_utf8
    return fn, (data,), fn(data)


def _decode(request, data, valid):
    if valid:
        # Called directly: nothing to catch, no wrapper to time.
        return bytes.decode, (data, "utf-8"), isinstance(data.decode("utf-8"), str)
    return _decode_or_false, (data,), _decode_or_false(data)


def _wsaccel(request, data, valid):
    cls = request.getfixturevalue("wsaccel_utf8")

    def wsaccel_validate(data, cls=cls):
        # (valid so far, ends on a code point boundary, index, total index)
        return cls().validate(data)

    ok, complete, _, _ = wsaccel_validate(data)
    return wsaccel_validate, (data,), ok and complete


IMPLS = {
    "fastws-cython": ("fastws[cython] validate_utf8", _fastws_cython, None),
    "fastws-python": ("fastws[python] validate_utf8", _fastws_python, None),
    "decode": (BASELINE, _decode, "also builds the str"),
    "wsaccel": ("wsaccel Utf8Validator", _wsaccel, "includes the validator's construction"),
}

CASES = [(kind, size, impl) for kind in KINDS for size in SIZES for impl in IMPLS]


@pytest.mark.parametrize(
    ("kind", "size", "impl"), CASES, ids=[f"{k}-{size_id(s)}-{i}" for k, s, i in CASES]
)
def test_utf8(benchmark, request, kind, size, impl):
    name, adapter, note = IMPLS[impl]
    data, valid = _data(kind, size)
    fn, args, reported = adapter(request, data, valid)
    assert reported is valid, f"{name} says {reported} on {kind} {size_label(size)}, expected {valid}"

    describe(
        benchmark,
        kernel="utf8",
        case=f"{kind} {size_label(size)}",
        order=KINDS.index(kind) * 1e9 + size,
        impl=name,
        baseline=BASELINE,
        bytes_per_call=size,
        primary="bytes",
        note=note,
    )
    benchmark(fn, *args)
    record_throughput(benchmark)

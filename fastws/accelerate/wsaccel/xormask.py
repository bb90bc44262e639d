"""wsaccel-compatible XOR maskers (``wsaccel.xormask``), on fastws's codec.

Same names, signatures and results as wsaccel 0.6: :class:`XorMaskerSimple`
``(mask)`` with ``process(data) -> bytes``, ``pointer()`` and ``reset()``;
:class:`XorMaskerNull`; :func:`createXorMasker`. The XOR runs in fastws's
compiled kernel (AVX2 where the CPU has it) instead of wsaccel's byte loop.
"""

from __future__ import annotations

from typing import Any, Optional, Union

from ...codec import apply_mask as _apply_mask

__all__ = ["XorMaskerNull", "XorMaskerSimple", "createXorMasker"]

_BytesLike = Union[bytes, bytearray, memoryview]


def _bytes_like_error(obj: Any) -> TypeError:
    # wsaccel's typed memoryview arguments raise exactly this
    return TypeError(f"a bytes-like object is required, not {type(obj).__name__!r}")


class XorMaskerNull:
    """Pass-through masker: ``process`` returns its argument and counts bytes."""

    __slots__ = ("_ptr",)

    def __init__(self, mask: Optional[_BytesLike] = None) -> None:
        self._ptr = 0

    def pointer(self) -> int:
        """Bytes processed since creation or the last :meth:`reset`."""
        return self._ptr

    def reset(self) -> None:
        self._ptr = 0

    def process(self, data: Any) -> Any:
        self._ptr += len(data)
        return data


class XorMaskerSimple:
    """XOR with a 4-byte ``mask``, continuing across calls where the previous
    one stopped (RFC 6455 section 5.3): ``process(a) + process(b)`` equals
    ``process(a + b)`` on a fresh masker."""

    __slots__ = ("_ptr", "_mask")

    def __init__(self, mask: _BytesLike) -> None:
        try:
            key = bytes(memoryview(mask))
        except TypeError:
            raise _bytes_like_error(mask) from None
        if len(key) != 4:
            raise ValueError("mask should be 4byte.")
        self._ptr = 0
        self._mask = key

    def pointer(self) -> int:
        """Bytes processed since creation or the last :meth:`reset`."""
        return self._ptr

    def reset(self) -> None:
        """Start again at the first byte of the mask."""
        self._ptr = 0

    def process(self, data: _BytesLike) -> bytes:
        """Return ``data`` masked (a new ``bytes``)."""
        key = self._mask
        phase = self._ptr & 3
        if phase:
            key = key[phase:] + key[:phase]
        try:
            out = _apply_mask(data, key)
        except TypeError:
            raise _bytes_like_error(data) from None
        self._ptr += len(out)
        return out


def createXorMasker(mask: _BytesLike, len: Optional[int] = None) -> XorMaskerSimple:  # noqa: A002
    """``XorMaskerSimple(mask)``; ``len`` is accepted and ignored, as in wsaccel."""
    return XorMaskerSimple(mask)

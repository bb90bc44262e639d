"""wsaccel-compatible incremental UTF-8 validator (``wsaccel.utf8validator``).

:class:`Utf8Validator` has wsaccel's (and Autobahn's and ws4py's) interface:
``validate(buf) -> (valid, endsOnCodePoint, currentIndex, totalIndex)``,
``decode(byte) -> state``, ``reset()``, the attributes ``i``, ``state`` and
``codepoint``, and the constants ``UTF8_ACCEPT`` (0) and ``UTF8_REJECT`` (1).
``validate`` runs on fastws's compiled :func:`fastws.codec.scan_utf8` (SIMD
where available) and reports the same indexes as the byte-at-a-time DFA
(Bjoern Hoehrmann's) those libraries use; ``decode`` runs that DFA.

One difference: ``state`` may only be set to ``UTF8_ACCEPT`` or
``UTF8_REJECT`` (the validator keeps the bytes of an open sequence rather than
a DFA state); every value it reports is the DFA's.
"""

from __future__ import annotations

from typing import Tuple, Union

from ...codec import scan_utf8 as _scan_utf8

__all__ = ["Utf8Validator"]

_BytesLike = Union[bytes, bytearray, memoryview]

# Hoehrmann's DFA: a class per byte value, then 9 states x 16 classes.
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

_ACCEPT = 0
_REJECT = 1


def _bytes_like_error(obj: object) -> TypeError:
    # what wsaccel's typed memoryview arguments raise
    return TypeError(f"a bytes-like object is required, not {type(obj).__name__!r}")


def _nbytes(buf: object) -> int:
    """The number of bytes in a buffer (any shape or format: indexes count
    bytes, as in ``bytes(buf)``)."""
    try:
        return memoryview(buf).nbytes  # type: ignore[arg-type]
    except TypeError:
        raise _bytes_like_error(buf) from None


class Utf8Validator:
    """Incremental strict UTF-8 validator with wsaccel's interface.

    Feed a message chunk by chunk to :meth:`validate`; ``reset()`` before the
    next message.
    """

    UTF8_ACCEPT = _ACCEPT
    UTF8_REJECT = _REJECT

    __slots__ = ("i", "codepoint", "_pending", "_rejected")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything, to validate a new sequence."""
        self.i = 0
        self.codepoint = 0
        self._pending = b""
        self._rejected = False

    @property
    def state(self) -> int:
        """The DFA state: 0 (UTF8_ACCEPT) on a code point boundary, 1
        (UTF8_REJECT) after invalid input, another value inside a sequence."""
        if self._rejected:
            return _REJECT
        state = _ACCEPT
        for b in self._pending:
            state = _TRANS[state * 16 + _TYPES[b]]
        return state

    @state.setter
    def state(self, value: int) -> None:
        if value == _ACCEPT:
            self._pending, self._rejected = b"", False
        elif value == _REJECT:
            self._pending, self._rejected = b"", True
        else:
            raise ValueError(
                "fastws's Utf8Validator.state can only be set to UTF8_ACCEPT (0) or UTF8_REJECT (1)"
            )

    def decode(self, b: int) -> int:
        """Eat one byte; return the new state (0: a code point ends here and
        ``codepoint`` holds it, 1: invalid, other: more bytes needed)."""
        state = self.state
        kind = _TYPES[b]
        if state != _ACCEPT:
            # wsaccel's codepoint is a C int: after invalid input it wraps
            cp = ((self.codepoint << 6) | (b & 0x3F)) & 0xFFFFFFFF
            self.codepoint = cp - 0x100000000 if cp & 0x80000000 else cp
        else:
            self.codepoint = (0xFF >> kind) & b
        state = _TRANS[state * 16 + kind]
        if state == _ACCEPT:
            self._pending = b""
        elif state == _REJECT:
            self._pending, self._rejected = b"", True
        else:
            self._pending += bytes((b,))
        return state

    def validate(self, buf: _BytesLike) -> Tuple[bool, bool, int, int]:
        """Validate the next chunk: ``(valid, endsOnCodePoint, currentIndex,
        totalIndex)``. When invalid, ``currentIndex`` is the index in ``buf``
        of the byte that made it so and ``totalIndex`` its index in everything
        validated since :meth:`reset`; else they are the number of bytes in
        ``buf`` and the total length. Any buffer is read as its bytes, in C
        order (a ``memoryview(b)[::2]`` too)."""
        if self._rejected:
            return _nbytes(buf) == 0, False, 0, self.i
        try:
            bad, pending = _scan_utf8(buf, self._pending)
        except TypeError:
            raise _bytes_like_error(buf) from None
        if bad < 0:
            n = len(buf) if type(buf) is bytes else _nbytes(buf)
            self._pending = pending
            self.i += n
            return True, not pending, n, self.i
        self._pending = b""
        self._rejected = True
        self.i += bad
        return False, False, bad, self.i

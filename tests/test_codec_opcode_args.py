"""The opcode forms of ``build_frame`` and ``build_header``, table-driven.

The compiled core reads an int, or an int subclass such as ``Opcode``, without
a Python call, and anything else through ``__index__``; these tables check
that each form builds the same frame as the plain int, or fails with the
same error and message, on both implementations.
"""

from __future__ import annotations

import enum

import pytest

from fastws.frames import Opcode


class Index:
    """An integer through ``__index__`` only."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


class Sub(int):
    """An int subclass."""


class Other(enum.IntEnum):
    TEXT = 1
    THREE = 3
    HUGE = 2**70


GOOD = [
    # id, opcode, the int it means
    ("int", 2, 2),
    ("Opcode.BINARY", Opcode.BINARY, 2),
    ("Opcode.TEXT", Opcode.TEXT, 1),
    ("Opcode.PING", Opcode.PING, 9),
    ("Opcode.CONTINUATION", Opcode(0), 0),
    ("True", True, 1),
    ("False", False, 0),
    ("int-subclass", Sub(10), 10),
    ("other-IntEnum", Other.TEXT, 1),
    ("__index__", Index(8), 8),
]


@pytest.mark.parametrize("opcode, value", [(o, v) for _, o, v in GOOD], ids=[i for i, _, _ in GOOD])
@pytest.mark.parametrize("fin", [True, False])
def test_opcode_forms_build_what_the_int_builds(codec, opcode, value, fin):
    if value >= 8 and not fin:
        fin = True  # control frames are never fragmented
    assert codec.build_frame(opcode, b"abc", fin=fin) == codec.build_frame(value, b"abc", fin=fin)
    assert codec.build_header(opcode, 3, fin=fin) == codec.build_header(value, 3, fin=fin)
    assert codec.build_frame(opcode, b"abc")[0] & 0x0F == value


BAD = [
    # id, opcode, payload length, exception, message
    ("IntEnum-3", Other.THREE, 0, ValueError, "invalid opcode 3"),
    ("IntEnum-huge", Other.HUGE, 0, ValueError, f"invalid opcode {2**70}"),
    ("int-subclass-11", Sub(11), 0, ValueError, "invalid opcode 11"),
    ("int-subclass-negative", Sub(-3), 0, ValueError, "invalid opcode -3"),
    ("int-subclass-huge", Sub(2**64), 0, ValueError, f"invalid opcode {2**64}"),
    ("long-max", 2**63 - 1, 0, ValueError, f"invalid opcode {2**63 - 1}"),
    ("long-min", -(2**63), 0, ValueError, f"invalid opcode {-(2**63)}"),
    ("__index__-4", Index(4), 0, ValueError, "invalid opcode 4"),
    ("__index__-huge", Index(-(2**80)), 0, ValueError, f"invalid opcode {-(2**80)}"),
    ("Opcode.CLOSE-too-long", Opcode.CLOSE, 126, ValueError, "control frame of 126 bytes (125 at most)"),
    ("float", 2.0, 0, TypeError, "'float' object cannot be interpreted as an integer"),
    ("str", "2", 0, TypeError, "'str' object cannot be interpreted as an integer"),
    ("None", None, 0, TypeError, "'NoneType' object cannot be interpreted as an integer"),
]


@pytest.mark.parametrize(
    "opcode, length, error, message",
    [row[1:] for row in BAD],
    ids=[row[0] for row in BAD],
)
def test_bad_opcodes(codec, opcode, length, error, message):
    with pytest.raises(error) as info:
        codec.build_frame(opcode, bytes(length))
    assert (type(info.value), str(info.value)) == (error, message)
    with pytest.raises(error) as info:
        codec.build_header(opcode, length)
    assert (type(info.value), str(info.value)) == (error, message)


def test_opcode_checked_before_payload(codec):
    with pytest.raises(TypeError, match="'float' object cannot be interpreted as an integer"):
        codec.build_frame(1.0, 123)
    with pytest.raises(ValueError, match="invalid opcode 3"):
        codec.build_frame(Other.THREE, bytes(200), mask=b"abc")


def test_index_raising_propagates(codec):
    class Broken:
        def __index__(self) -> int:
            raise ZeroDivisionError("from __index__")

    for call in (lambda: codec.build_frame(Broken(), b""), lambda: codec.build_header(Broken(), 0)):
        with pytest.raises(ZeroDivisionError, match="from __index__"):
            call()


def test_twins_agree_on_every_form(both_codecs):
    compiled, pure = both_codecs

    def outcome(codec, opcode, length):
        try:
            return "ok", codec.build_frame(opcode, bytes(length)), codec.build_header(opcode, length)
        except (ValueError, TypeError) as exc:
            return "error", type(exc), str(exc)

    for _, opcode, *_rest in GOOD + BAD:
        for length in (0, 125, 126):
            assert outcome(compiled, opcode, length) == outcome(pure, opcode, length), (opcode, length)

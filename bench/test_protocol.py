"""The protocol layer's cost per message, above the bare frame parser.

A server-side :class:`fastws.protocol.Protocol` receives one buffer of masked
client frames (each with its own key) and returns every message as an event; the
bare :class:`FrameParser` (same options: ``mask_required=True``, the same
``max_size``) parses the same buffer. The difference between the two rows of a
group, divided by the frame count, is the Python work the protocol adds per
message: the event loop over the frames, the checks, ``bytes.decode`` for text
and the list of events. Both rows use the active codec (``fastws.IMPLEMENTATION``).

Self-contained: needs only pytest-benchmark (no fixture from conftest.py).
"""

from __future__ import annotations

import os
import random
import sys

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import fastws  # noqa: E402
from fastws import codec  # noqa: E402
from fastws.protocol import DEFAULT_MAX_SIZE, Protocol, Side  # noqa: E402

pytest.importorskip("pytest_benchmark")

IMPL = fastws.IMPLEMENTATION
_ALPHABET = b"abcdefghijklmnopqrstuvwxyz0123456789 "


def _masked_frame(opcode: int, payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        header = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        header = bytes([0x80 | opcode, 0xFE]) + n.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0xFF]) + n.to_bytes(8, "big")
    return header + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))


def _buffer(count: int, size: int, opcode: int, seed: int):
    rng = random.Random(seed)
    payloads = [bytes(rng.choice(_ALPHABET) for _ in range(size)) for _ in range(count)]
    buf = b"".join(_masked_frame(opcode, p, rng.randbytes(4)) for p in payloads)
    return buf, payloads


# (case, frame count, payload size, opcode)
CASES = [
    ("1000 x 16 B text", 1000, 16, 1),
    ("1000 x 16 B binary", 1000, 16, 2),
    ("1000 x 125 B text", 1000, 125, 1),
]


def _describe(benchmark, case: str, order: int, impl: str, count: int, nbytes: int) -> None:
    # The same extra_info keys as bench/_support.describe, so bench/report.py
    # shows these rows in their own "protocol" section.
    benchmark.group = f"protocol | {case}"
    info = benchmark.extra_info
    info.update(
        kernel="protocol",
        case=case,
        order=order,
        impl=impl,
        baseline=f"fastws FrameParser.feed ({IMPL})",
        primary="frames",
        frames_per_call=count,
        bytes_per_call=nbytes,
    )


def _bare(buf):
    return codec.FrameParser(mask_required=True, max_size=DEFAULT_MAX_SIZE).feed(buf)


def _protocol(buf):
    proto = Protocol(Side.SERVER)
    proto.receive_data(buf)
    return proto.events_received()


@pytest.mark.parametrize("case, count, size, opcode", CASES, ids=[c[0].replace(" ", "") for c in CASES])
@pytest.mark.parametrize("layer", ["parser", "protocol"])
def test_protocol_receive(benchmark, layer, case, count, size, opcode):
    buf, payloads = _buffer(count, size, opcode, seed=count * 31 + size + opcode)
    expected = [p.decode() for p in payloads] if opcode == 1 else payloads
    order = CASES.index(next(c for c in CASES if c[0] == case))
    if layer == "parser":
        _describe(benchmark, case, order, f"fastws FrameParser.feed ({IMPL})", count, len(buf))
        frames = benchmark(_bare, buf)
        assert [f.payload for f in frames] == payloads
    else:
        _describe(benchmark, case, order, f"fastws Protocol.receive_data ({IMPL})", count, len(buf))
        events = benchmark(_protocol, buf)
        assert events == expected

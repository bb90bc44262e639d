"""Frame parsing and building (RFC 6455 section 5): ``FrameParser``, ``build_frame``
and ``Frame``, starting from the byte examples of section 5.7."""

from __future__ import annotations

import pickle
import random
import re

import pytest

from fastws.exceptions import InvalidUTF8, PayloadTooBig, ProtocolError
from fastws.frames import Opcode

CONT, TEXT, BINARY = Opcode.CONTINUATION, Opcode.TEXT, Opcode.BINARY
CLOSE, PING, PONG = Opcode.CLOSE, Opcode.PING, Opcode.PONG
KEY = bytes.fromhex("37fa213d")  # the masking key of the section 5.7 examples


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def as_tuples(frames):
    return [(f.opcode, f.fin, f.rsv1, f.rsv2, f.rsv3, f.payload) for f in frames]


def feed_pieces(parser, pieces):
    frames = []
    for piece in pieces:
        frames += parser.feed(piece)
    return frames


def byte_by_byte(data: bytes):
    return [data[i : i + 1] for i in range(len(data))]


BIN256 = bytes(range(256))
BIN64K = bytes(i * 7 % 251 for i in range(65536))

# RFC 6455 section 5.7. (id, wire bytes, sent by the client?, [(opcode, fin, payload)])
RFC_EXAMPLES = [
    ("single-frame-unmasked-text", h("81 05 48 65 6c 6c 6f"), False, [(TEXT, True, b"Hello")]),
    (
        "single-frame-masked-text",
        h("81 85 37 fa 21 3d 7f 9f 4d 51 58"),
        True,
        [(TEXT, True, b"Hello")],
    ),
    (
        "fragmented-unmasked-text",
        h("01 03 48 65 6c") + h("80 02 6c 6f"),
        False,
        [(TEXT, False, b"Hel"), (CONT, True, b"lo")],
    ),
    ("unmasked-ping", h("89 05 48 65 6c 6c 6f"), False, [(PING, True, b"Hello")]),
    ("masked-pong", h("8a 85 37 fa 21 3d 7f 9f 4d 51 58"), True, [(PONG, True, b"Hello")]),
    ("256-bytes-binary", h("82 7E 01 00") + BIN256, False, [(BINARY, True, BIN256)]),
    (
        "64KiB-binary",
        h("82 7F 00 00 00 00 00 01 00 00") + BIN64K,
        False,
        [(BINARY, True, BIN64K)],
    ),
]
RFC_IDS = [e[0] for e in RFC_EXAMPLES]
RFC_PARAMS = [e[1:] for e in RFC_EXAMPLES]


# --- the RFC examples ----------------------------------------------------------------


@pytest.mark.parametrize("wire, masked, expected", RFC_PARAMS, ids=RFC_IDS)
def test_rfc_example_parse(codec, wire, masked, expected):
    parser = codec.FrameParser(mask_required=masked)
    frames = parser.feed(wire)
    assert [(f.opcode, f.fin, f.payload) for f in frames] == expected
    for f in frames:
        assert type(f.opcode) is Opcode
        assert type(f.payload) is bytes
        assert f.rsv1 is False and f.rsv2 is False and f.rsv3 is False
        assert type(f.fin) is bool
    assert parser.buffered == 0


def _consumed(wire: bytes, masked: bool, n: int) -> int:
    """Bytes of complete frames within the first n bytes of wire (reference)."""
    pos = 0
    while True:
        if n - pos < 2:
            return pos
        length = wire[pos + 1] & 0x7F
        start = pos + 2
        if length == 126:
            length = int.from_bytes(wire[start : start + 2], "big")
            start += 2
        elif length == 127:
            length = int.from_bytes(wire[start : start + 8], "big")
            start += 8
        stop = start + (4 if masked else 0) + length
        if stop > n:
            return pos
        pos = stop


@pytest.mark.parametrize("wire, masked, expected", RFC_PARAMS, ids=RFC_IDS)
def test_rfc_example_byte_by_byte(codec, wire, masked, expected):
    parser = codec.FrameParser(mask_required=masked)
    frames = []
    for i, piece in enumerate(byte_by_byte(wire)):
        frames += parser.feed(piece)
        assert parser.buffered == i + 1 - _consumed(wire, masked, i + 1)
    assert [(f.opcode, f.fin, f.payload) for f in frames] == expected
    assert parser.buffered == 0


@pytest.mark.parametrize("wire, masked, expected", RFC_PARAMS, ids=RFC_IDS)
def test_rfc_example_build(codec, wire, masked, expected):
    built = b"".join(
        codec.build_frame(op, payload, fin=fin, mask=KEY if masked else None)
        for op, fin, payload in expected
    )
    assert built == wire


# --- length encodings ------------------------------------------------------------------

LENGTH_HEADERS = [
    (0, h("82 00")),
    (1, h("82 01")),
    (125, h("82 7D")),
    (126, h("82 7E 00 7E")),
    (127, h("82 7E 00 7F")),
    (65535, h("82 7E FF FF")),
    (65536, h("82 7F 00 00 00 00 00 01 00 00")),
    (65537, h("82 7F 00 00 00 00 00 01 00 01")),
]


@pytest.mark.parametrize(
    "n, header", LENGTH_HEADERS, ids=[str(n) for n, _ in LENGTH_HEADERS]
)
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_length_edges(codec, n, header, masked):
    payload = bytes(i % 253 for i in range(n))
    if masked:
        header = header[:1] + bytes([header[1] | 0x80]) + header[2:]
    wire = codec.build_frame(BINARY, payload, mask=KEY if masked else None)
    assert wire[: len(header)] == header
    body = wire[len(header) :]
    if masked:
        assert body[:4] == KEY
        assert body[4:] == codec.apply_mask(payload, KEY)
    else:
        assert body == payload
    # parsed in one piece, in pieces of 1, 3 and 1000 bytes
    for size in (len(wire), 1, 3, 1000):
        if size == 1 and n > 1000:
            size = 7
        parser = codec.FrameParser(mask_required=masked, max_size=n)
        frames = feed_pieces(parser, [wire[i : i + size] for i in range(0, len(wire), size)])
        assert as_tuples(frames) == [(BINARY, True, False, False, False, payload)]
        assert parser.buffered == 0


def test_length_above_2_63_rejected_without_allocating(codec):
    # 8-byte length 2**63: the most significant bit must be 0 (section 5.2).
    header = h("82 7F 80 00 00 00 00 00 00 00")
    for max_size in (None, 1, 2**63 - 1):
        parser = codec.FrameParser(mask_required=False, max_size=max_size)
        with pytest.raises(ProtocolError) as info:
            parser.feed(header)
        assert type(info.value) is ProtocolError
        assert info.value.close_code == 1002
        assert str(info.value) == "64-bit length with the most significant bit set"
    parser = codec.FrameParser(mask_required=True)
    with pytest.raises(ProtocolError, match="most significant bit"):
        parser.feed(h("82 FF FF FF FF FF FF FF FF FF"))


def test_length_2_63_minus_1_waits_without_allocating(codec):
    # Legal header for an absurd frame: with no max_size the parser just waits
    # for the payload (it must not try to allocate 2**63 bytes up front).
    parser = codec.FrameParser(mask_required=False, max_size=None)
    assert parser.feed(h("82 7F 7F FF FF FF FF FF FF FF")) == []
    assert parser.buffered == 10
    assert parser.feed(b"abc") == []
    assert parser.buffered == 13


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_length_2_63_minus_1_too_big_from_the_header_alone(codec, masked):
    header = h("82 FF" if masked else "82 7F") + h("7F FF FF FF FF FF FF FF")
    message = f"frame of {2**63 - 1} bytes exceeds max_size of {2**20} bytes"
    # all of the header at once, no mask key and no payload yet
    parser = codec.FrameParser(mask_required=masked, max_size=2**20)
    with pytest.raises(PayloadTooBig, match=re.escape(message)) as info:
        parser.feed(header)
    assert info.value.close_code == 1009
    # byte by byte: the error comes with the last byte of the length
    parser = codec.FrameParser(mask_required=masked, max_size=2**20)
    for byte in byte_by_byte(header[:-1]):
        assert parser.feed(byte) == []
    with pytest.raises(PayloadTooBig, match=re.escape(message)):
        parser.feed(header[-1:])


@pytest.mark.parametrize(
    "n", [0, 1, 125, 126, 65535, 65536, 70000], ids=lambda n: f"len{n}"
)
def test_max_size_boundary(codec, n):
    wire = codec.build_frame(BINARY, bytes(n), mask=KEY)
    assert len(codec.FrameParser(mask_required=True, max_size=n).feed(wire)) == 1
    if n:
        parser = codec.FrameParser(mask_required=True, max_size=n - 1)
        with pytest.raises(PayloadTooBig) as info:
            parser.feed(wire)
        assert str(info.value) == f"frame of {n} bytes exceeds max_size of {n - 1} bytes"
        assert info.value.close_code == 1009


def test_max_size_applies_to_control_frames(codec):
    parser = codec.FrameParser(mask_required=False, max_size=4)
    message = "frame of 5 bytes exceeds max_size of 4 bytes"
    with pytest.raises(PayloadTooBig, match=re.escape(message)):
        parser.feed(h("89 05 48 65 6c 6c 6f"))


@pytest.mark.parametrize(
    "max_size", [2**63 - 1, 2**63, 2**64, 2**100], ids=["2^63-1", "2^63", "2^64", "2^100"]
)
def test_huge_max_size_means_no_practical_limit(codec, max_size):
    # Any non-negative int is a valid max_size; one above every 63-bit length
    # accepts every legal frame header.
    parser = codec.FrameParser(mask_required=False, max_size=max_size)
    assert parser.feed(h("82 7F 7F FF FF FF FF FF FF FF")) == []
    assert parser.buffered == 10


@pytest.mark.parametrize("max_size", [-1, -100])
def test_negative_max_size(codec, max_size):
    message = f"max_size must be >= 0 or None, got {max_size}"
    with pytest.raises(ValueError, match=re.escape(message)):
        codec.FrameParser(mask_required=False, max_size=max_size)


# --- every parser error ------------------------------------------------------------------

# (id, wire, options, exception type, close code, exact message, bytes needed to
# detect it). The header is the whole story: no payload is needed for any of them.
S = {"mask_required": False}  # we are the client: server frames are unmasked
C = {"mask_required": True}  # we are the server: client frames are masked
RSV1 = {"mask_required": False, "allow_rsv1": True}
RSV1_MSG = "reserved bit RSV1 set without an extension that allows it"

ERRORS = [
    ("rsv1-text", h("C1 00"), S, ProtocolError, 1002, RSV1_MSG, 2),
    ("rsv1-binary-masked", h("C2 80"), C, ProtocolError, 1002, RSV1_MSG, 2),
    ("rsv1-ping", h("C9 00"), S, ProtocolError, 1002, RSV1_MSG, 2),
    ("rsv2", h("A1 00"), S, ProtocolError, 1002, "reserved bit RSV2 set", 2),
    ("rsv2-with-allow-rsv1", h("E1 00"), RSV1, ProtocolError, 1002, "reserved bit RSV2 set", 2),
    ("rsv3", h("91 00"), S, ProtocolError, 1002, "reserved bit RSV3 set", 2),
    ("rsv3-close", h("98 00"), S, ProtocolError, 1002, "reserved bit RSV3 set", 2),
    *[
        (f"reserved-opcode-{op}", bytes([0x80 | op, 0]), S, ProtocolError, 1002,
         f"reserved opcode {op}", 2)
        for op in [*range(3, 8), *range(11, 16)]
    ],
    ("reserved-opcode-fin-clear", h("03 00"), S, ProtocolError, 1002, "reserved opcode 3", 2),
    *[
        (f"fragmented-{op.name.lower()}", bytes([op, 0]), S, ProtocolError, 1002,
         f"fragmented control frame ({op.name} with FIN clear)", 2)
        for op in (CLOSE, PING, PONG)
    ],
    *[
        (f"long-{op.name.lower()}-{b1 & 0x7F}", bytes([0x80 | op, b1]), S, ProtocolError, 1002,
         f"control frame ({op.name}) longer than 125 bytes", 2)
        for op in (CLOSE, PING, PONG)
        for b1 in (126, 127)
    ],
    ("long-ping-masked", h("89 FE 00 7E"), C, ProtocolError, 1002,
     "control frame (PING) longer than 125 bytes", 2),
    ("unmasked-from-client", h("81 05 48 65 6c 6c 6f"), C, ProtocolError, 1002,
     "unmasked frame from the client", 2),
    ("unmasked-empty-close-from-client", h("88 00"), C, ProtocolError, 1002,
     "unmasked frame from the client", 2),
    ("masked-from-server", h("81 85 37 fa 21 3d 7f 9f 4d 51 58"), S, ProtocolError, 1002,
     "masked frame from the server", 2),
    ("non-minimal-16-bit-0", h("82 7E 00 00"), S, ProtocolError, 1002,
     "length 0 sent in the 16-bit form (not minimal)", 4),
    ("non-minimal-16-bit-125", h("82 7E 00 7D") + bytes(125), S, ProtocolError, 1002,
     "length 125 sent in the 16-bit form (not minimal)", 4),
    ("non-minimal-16-bit-masked", h("82 FE 00 05") + KEY + bytes(5), C, ProtocolError, 1002,
     "length 5 sent in the 16-bit form (not minimal)", 4),
    ("non-minimal-64-bit-0", h("82 7F 00 00 00 00 00 00 00 00"), S, ProtocolError, 1002,
     "length 0 sent in the 64-bit form (not minimal)", 10),
    ("non-minimal-64-bit-125", h("82 7F 00 00 00 00 00 00 00 7D"), S, ProtocolError, 1002,
     "length 125 sent in the 64-bit form (not minimal)", 10),
    ("non-minimal-64-bit-65535", h("82 7F 00 00 00 00 00 00 FF FF"), S, ProtocolError, 1002,
     "length 65535 sent in the 64-bit form (not minimal)", 10),
    ("64-bit-msb", h("82 7F 80 00 00 00 00 00 00 00"), S, ProtocolError, 1002,
     "64-bit length with the most significant bit set", 10),
    ("64-bit-msb-small-rest", h("82 7F 80 00 00 00 00 00 00 05"), S, ProtocolError, 1002,
     "64-bit length with the most significant bit set", 10),
    ("max-size-7-bit", h("82 06") + bytes(6), {**S, "max_size": 5}, PayloadTooBig, 1009,
     "frame of 6 bytes exceeds max_size of 5 bytes", 2),
    ("max-size-16-bit", h("82 7E 01 00"), {**S, "max_size": 255}, PayloadTooBig, 1009,
     "frame of 256 bytes exceeds max_size of 255 bytes", 4),
    ("max-size-64-bit", h("82 FF 00 00 00 00 00 01 00 00"), {**C, "max_size": 65535},
     PayloadTooBig, 1009, "frame of 65536 bytes exceeds max_size of 65535 bytes", 10),
    ("max-size-zero", h("81 81") + KEY + b"x", {**C, "max_size": 0}, PayloadTooBig, 1009,
     "frame of 1 bytes exceeds max_size of 0 bytes", 2),
    # allow_rsv1 (permessage-deflate): only on the first frame of a data message
    ("allow-rsv1-continuation", h("C0 00"), RSV1, ProtocolError, 1002,
     "RSV1 set on a continuation frame", 2),
    ("allow-rsv1-continuation-nofin", h("40 00"), RSV1, ProtocolError, 1002,
     "RSV1 set on a continuation frame", 2),
    *[
        (f"allow-rsv1-{op.name.lower()}", bytes([0xC0 | op, 0]), RSV1, ProtocolError, 1002,
         f"RSV1 set on a control frame ({op.name})", 2)
        for op in (CLOSE, PING, PONG)
    ],
    # precedence: reserved bits, reserved opcode, control frame rules, mask direction
    ("order-rsv1-before-rsv2-rsv3-opcode", h("F3 80"), S, ProtocolError, 1002, RSV1_MSG, 2),
    ("order-rsv2-before-rsv3", h("B3 00"), S, ProtocolError, 1002, "reserved bit RSV2 set", 2),
    ("order-rsv3-before-opcode", h("93 00"), S, ProtocolError, 1002, "reserved bit RSV3 set", 2),
    ("order-opcode-before-mask", h("83 05"), C, ProtocolError, 1002, "reserved opcode 3", 2),
    ("order-fin-before-length", h("09 7E"), S, ProtocolError, 1002,
     "fragmented control frame (PING with FIN clear)", 2),
    ("order-length-before-rsv1", h("C9 7E"), RSV1, ProtocolError, 1002,
     "control frame (PING) longer than 125 bytes", 2),
    ("order-control-before-mask", h("89 7E"), C, ProtocolError, 1002,
     "control frame (PING) longer than 125 bytes", 2),
    ("order-rsv1-before-mask", h("C0 85"), RSV1, ProtocolError, 1002,
     "RSV1 set on a continuation frame", 2),
    ("order-msb-before-max-size", h("82 7F FF FF FF FF FF FF FF FF"), {**S, "max_size": 1},
     ProtocolError, 1002, "64-bit length with the most significant bit set", 10),
    ("order-minimal-before-max-size", h("82 7E 00 05"), {**S, "max_size": 1},
     ProtocolError, 1002, "length 5 sent in the 16-bit form (not minimal)", 4),
]
with_each_error = pytest.mark.parametrize(
    "wire, options, exc_type, code, message, needed",
    [e[1:] for e in ERRORS],
    ids=[e[0] for e in ERRORS],
)


@with_each_error
def test_parser_error(codec, wire, options, exc_type, code, message, needed):
    parser = codec.FrameParser(**options)
    with pytest.raises(ProtocolError, match=re.escape(message)) as info:
        parser.feed(wire)
    assert type(info.value) is exc_type
    assert info.value.close_code == code
    assert str(info.value) == message
    assert info.value.frames == []


@with_each_error
def test_parser_error_detected_as_soon_as_possible(
    codec, wire, options, exc_type, code, message, needed
):
    parser = codec.FrameParser(**options)
    for i in range(needed - 1):
        assert parser.feed(wire[i : i + 1]) == []
    with pytest.raises(exc_type, match=re.escape(message)):
        parser.feed(wire[needed - 1 : needed])


@with_each_error
def test_parser_error_after_good_frames(codec, wire, options, exc_type, code, message, needed):
    # ProtocolError.frames: what was complete before the error, in that feed call.
    masked = options["mask_required"]
    mask = KEY if masked else None
    big = bytes(min(300, options.get("max_size", 300)))
    good = [codec.build_frame(TEXT, b"", mask=mask), codec.build_frame(PING, b"", mask=mask),
            codec.build_frame(BINARY, big, mask=mask)]
    parser = codec.FrameParser(**options)
    assert len(parser.feed(good[0])) == 1  # delivered by an earlier call: not in .frames
    with pytest.raises(exc_type, match=re.escape(message)) as info:
        parser.feed(good[1] + good[2] + wire)
    assert as_tuples(info.value.frames) == [
        (PING, True, False, False, False, b""),
        (BINARY, True, False, False, False, big),
    ]
    assert info.value.close_code == code


@with_each_error
def test_parser_stays_failed(codec, wire, options, exc_type, code, message, needed):
    parser = codec.FrameParser(**options)
    with pytest.raises(exc_type):
        parser.feed(wire)
    assert parser.buffered == 0
    good = codec.build_frame(TEXT, b"ok", mask=KEY if options["mask_required"] else None)
    for later in (b"", good, wire):
        with pytest.raises(ProtocolError) as info:
            parser.feed(later)
        assert type(info.value) is exc_type
        assert str(info.value) == message
        assert info.value.close_code == code
        assert info.value.frames == []  # delivered with the first error, never twice
        assert parser.buffered == 0


def test_error_in_a_later_frame_of_a_split_stream(codec):
    # The bad frame's header completes in a later call than the good frame.
    good = codec.build_frame(TEXT, b"Hello")
    parser = codec.FrameParser(mask_required=False)
    assert parser.feed(good + h("A1")) and parser.buffered == 1
    with pytest.raises(ProtocolError, match="RSV2") as info:
        parser.feed(h("00"))
    assert info.value.frames == []


# --- accepted RSV1 ------------------------------------------------------------------------


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=lambda o: o.name)
@pytest.mark.parametrize("fin", [True, False], ids=["fin", "nofin"])
def test_allow_rsv1_on_data_frames(codec, opcode, fin):
    wire = codec.build_frame(opcode, b"compressed", fin=fin, rsv1=True)
    assert wire[0] == (0x80 if fin else 0) | 0x40 | opcode
    parser = codec.FrameParser(mask_required=False, allow_rsv1=True)
    frames = parser.feed(wire + codec.build_frame(CONT, b"more"))
    assert as_tuples(frames) == [
        (opcode, fin, True, False, False, b"compressed"),
        (CONT, True, False, False, False, b"more"),
    ]
    with pytest.raises(ProtocolError, match=re.escape(RSV1_MSG)):
        codec.FrameParser(mask_required=False).feed(wire)


# --- incremental feeding ----------------------------------------------------------------


def _stream(codec, masked: bool) -> tuple[bytes, list]:
    mask = KEY if masked else None
    spec = [
        (TEXT, b"Hello", True), (BINARY, b"", True), (PING, b"", True),
        (TEXT, "日本".encode(), False), (PONG, b"p" * 125, True), (CONT, b"x" * 126, False),
        (CONT, b"y" * 65535, False), (CONT, b"z" * 65536, True), (CLOSE, h("03e8") + b"bye", True),
    ]
    wire = b"".join(codec.build_frame(op, p, fin=fin, mask=mask) for op, p, fin in spec)
    return wire, [(op, fin, False, False, False, p) for op, p, fin in spec]


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_byte_at_a_time_equals_all_at_once(codec, masked):
    wire, expected = _stream(codec, masked)
    at_once = codec.FrameParser(mask_required=masked).feed(wire)
    assert as_tuples(at_once) == expected
    parser = codec.FrameParser(mask_required=masked)
    frames = []
    for i in range(len(wire)):
        got = parser.feed(wire[i : i + 1])
        assert len(got) <= 1
        frames += got
    assert as_tuples(frames) == expected
    assert parser.buffered == 0


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_random_chunks_equal_all_at_once(codec, masked):
    wire, expected = _stream(codec, masked)
    rng = random.Random(42)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(wire)), rng.randint(1, 40)))
        bounds = [0, *cuts, len(wire)]
        pieces = [wire[a:b] for a, b in zip(bounds, bounds[1:])]
        kinds = [bytes, bytearray, memoryview]
        pieces = [kinds[i % 3](p) for i, p in enumerate(pieces)]
        parser = codec.FrameParser(mask_required=masked)
        assert as_tuples(feed_pieces(parser, pieces)) == expected
        assert parser.buffered == 0


def test_buffered(codec):
    parser = codec.FrameParser(mask_required=True)
    assert parser.buffered == 0
    assert parser.feed(b"") == []
    assert parser.buffered == 0
    wire = codec.build_frame(TEXT, b"Hello", mask=KEY)  # 2 + 4 + 5 bytes
    assert parser.feed(wire[:1]) == []
    assert parser.buffered == 1
    assert parser.feed(wire[1:6]) == []
    assert parser.buffered == 6
    frames = parser.feed(wire[6:] + wire[:3])
    assert as_tuples(frames) == [(TEXT, True, False, False, False, b"Hello")]
    assert parser.buffered == 3
    assert len(parser.feed(wire[3:] + wire)) == 2
    assert parser.buffered == 0


# --- the frame in progress: pending() and pending_payload() --------------------------------
# What arrived of a frame before its end, so that the protocol can fail fast (invalid UTF-8
# in a text frame that arrives in pieces, Autobahn cases 6.4.3 and 6.4.4).

# (id, opcode, fin, rsv1, payload, parser options)
PENDING = [
    ("text-masked", TEXT, True, False, "κόσμε".encode() + b"!" * 3, {"mask_required": True}),
    ("text-unmasked", TEXT, False, False, b"Hello, world", {"mask_required": False}),
    ("continuation", CONT, True, False, b"abcdefghij", {"mask_required": True}),
    ("binary-rsv1", BINARY, False, True, bytes(range(9)), {"mask_required": True, "allow_rsv1": True}),
    ("16-bit-length", TEXT, True, False, b"x" * 300, {"mask_required": True}),
    ("64-bit-length", BINARY, True, False, BIN64K + b"tail", {"mask_required": False}),
]


@pytest.mark.parametrize(
    "opcode, fin, rsv1, payload, options", [c[1:] for c in PENDING], ids=[c[0] for c in PENDING]
)
def test_pending_frame_byte_by_byte(codec, opcode, fin, rsv1, payload, options):
    masked = options["mask_required"]
    wire = codec.build_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=KEY if masked else None)
    header = len(wire) - len(payload)
    parser = codec.FrameParser(**options)
    step = 1 if len(wire) < 1000 else 997  # the 64 KiB frame: in odd-sized pieces
    fed = 0
    while len(wire) - fed > step:
        assert parser.feed(wire[fed : fed + step]) == []
        fed += step
        pending = parser.pending()
        if fed < header:  # inside the header (the masking key included): nothing yet
            assert pending is None
            assert parser.pending_payload() == b""
            continue
        received = fed - header
        assert pending == (opcode, fin, rsv1, received)
        assert type(pending[0]) is Opcode
        assert parser.pending_payload() == payload[:received]
        for start in (1, 2, 3, 4, 5, received - 1, received, received + 7):
            if start >= 0:
                assert parser.pending_payload(start) == payload[start:received], start
    (frame,) = parser.feed(wire[fed:])
    assert frame.payload == payload
    assert parser.pending() is None
    assert parser.pending_payload() == b""


def test_pending_between_frames_and_after_an_error(codec):
    parser = codec.FrameParser(mask_required=False)
    assert parser.pending() is None
    assert parser.pending_payload() == b""
    # A frame with an empty payload so far, right after a complete one.
    (frame,) = parser.feed(codec.build_frame(TEXT, b"one") + h("02 05"))
    assert frame.payload == b"one"
    assert parser.pending() == (BINARY, False, False, 0)
    assert parser.pending_payload() == b""
    parser.feed(b"ab")
    assert parser.pending() == (BINARY, False, False, 2)
    assert parser.pending_payload(1) == b"b"
    with pytest.raises(ValueError):
        parser.pending_payload(-1)
    with pytest.raises(ProtocolError, match="RSV2") as info:
        parser.feed(b"cde" + h("A1 05"))  # completes it, then RSV2 fails the parser
    assert [f.payload for f in info.value.frames] == [b"abcde"]
    assert parser.pending() is None
    assert parser.pending_payload() == b""


def test_pending_payload_is_a_copy(codec):
    parser = codec.FrameParser(mask_required=True)
    wire = codec.build_frame(TEXT, b"abcdefgh", mask=KEY)
    parser.feed(wire[:-3])
    seen = parser.pending_payload()
    assert seen == b"abcde" and type(seen) is bytes
    (frame,) = parser.feed(wire[-3:])
    assert frame.payload == b"abcdefgh" and seen == b"abcde"


def test_feed_does_not_keep_a_reference_to_the_input(codec):
    parser = codec.FrameParser(mask_required=False)
    data = bytearray(h("81 05 48 65"))
    assert parser.feed(data) == []
    data[:] = b"\x00" * len(data)  # the caller reuses its receive buffer
    frames = parser.feed(bytearray(b"llo"))
    assert as_tuples(frames) == [(TEXT, True, False, False, False, b"Hello")]


def test_feed_rejects_non_bytes(codec):
    parser = codec.FrameParser(mask_required=False)
    with pytest.raises(TypeError):
        parser.feed("text")


def test_feed_non_byte_format(codec):
    wire = codec.build_frame(BINARY, b"abcdef")  # 8 bytes
    frames = codec.FrameParser(mask_required=False).feed(memoryview(bytearray(wire)).cast("I"))
    assert as_tuples(frames) == [(BINARY, True, False, False, False, b"abcdef")]


# --- build_frame --------------------------------------------------------------------------


@pytest.mark.parametrize("opcode", list(Opcode), ids=lambda o: o.name)
def test_build_opcodes(codec, opcode):
    assert codec.build_frame(opcode, b"abc") == bytes([0x80 | opcode, 3]) + b"abc"
    assert codec.build_frame(int(opcode), b"abc") == bytes([0x80 | opcode, 3]) + b"abc"


@pytest.mark.parametrize(
    "fin, rsv1, b0",
    [(True, False, 0x82), (False, False, 0x02), (True, True, 0xC2), (False, True, 0x42)],
)
def test_build_fin_rsv1(codec, fin, rsv1, b0):
    wire = codec.build_frame(BINARY, b"x", fin=fin, rsv1=rsv1)
    assert wire == bytes([b0, 1]) + b"x"
    parser = codec.FrameParser(mask_required=False, allow_rsv1=True)
    assert as_tuples(parser.feed(wire)) == [(BINARY, fin, rsv1, False, False, b"x")]


def test_build_str_payload_is_utf8(codec):
    text = "Grüße, 世界 𝄞"
    assert codec.build_frame(TEXT, text) == codec.build_frame(TEXT, text.encode("utf-8"))
    assert codec.build_frame(TEXT, text, mask=KEY) == codec.build_frame(
        TEXT, text.encode("utf-8"), mask=KEY
    )
    assert codec.build_frame(TEXT, "") == h("81 00")


@pytest.mark.parametrize(
    "payload",
    [b"Hello", bytearray(b"Hello"), memoryview(b"Hello"), memoryview(b"__Hello")[2:]],
    ids=["bytes", "bytearray", "memoryview", "memoryview-slice"],
)
def test_build_payload_types(codec, payload):
    wire = codec.build_frame(TEXT, payload)
    assert type(wire) is bytes
    assert wire == h("81 05 48 65 6c 6c 6f")
    assert codec.build_frame(TEXT, payload, mask=KEY) == h("81 85 37 fa 21 3d 7f 9f 4d 51 58")


def test_build_payload_non_byte_format(codec):
    raw = bytes(range(8))
    wire = codec.build_frame(BINARY, memoryview(bytearray(raw)).cast("I"))
    assert wire == h("82 08") + raw


@pytest.mark.parametrize("mask", [None, False], ids=["None", "False"])
def test_build_unmasked(codec, mask):
    assert codec.build_frame(TEXT, b"Hello", mask=mask) == h("81 05 48 65 6c 6c 6f")


@pytest.mark.parametrize(
    "key", [KEY, bytearray(KEY), memoryview(KEY)], ids=["bytes", "bytearray", "memoryview"]
)
def test_build_with_key(codec, key):
    assert codec.build_frame(TEXT, b"Hello", mask=key) == h("81 85 37 fa 21 3d 7f 9f 4d 51 58")
    assert codec.build_frame(PING, b"", mask=key) == h("89 80") + KEY


def test_build_mask_true_uses_fresh_keys(codec):
    payload = b"Hello, masked world"
    wires = [codec.build_frame(BINARY, payload, mask=True) for _ in range(32)]
    keys = set()
    for wire in wires:
        assert wire[:2] == bytes([0x82, 0x80 | len(payload)])
        assert len(wire) == 2 + 4 + len(payload)
        key = wire[2:6]
        keys.add(key)
        assert wire[6:] == codec.apply_mask(payload, key)
    # 32 draws of a 32-bit key: a repeat of one key for all is not going to happen
    assert len(keys) > 1
    parser = codec.FrameParser(mask_required=True)
    frames = parser.feed(b"".join(wires))
    assert [f.payload for f in frames] == [payload] * 32


@pytest.mark.parametrize("opcode", [*range(3, 8), *range(11, 16), 16, 255])
def test_build_invalid_opcode(codec, opcode):
    with pytest.raises(ValueError, match=re.escape(f"invalid opcode {opcode}")):
        codec.build_frame(opcode, b"")


@pytest.mark.parametrize("opcode", [CLOSE, PING, PONG], ids=lambda o: o.name)
def test_build_control_frame_limits(codec, opcode):
    assert codec.build_frame(opcode, bytes(125))[:2] == bytes([0x80 | opcode, 125])
    for n in (126, 1000, 70000):
        message = f"control frame of {n} bytes (125 at most)"
        with pytest.raises(ValueError, match=re.escape(message)):
            codec.build_frame(opcode, bytes(n))
    with pytest.raises(ValueError, match=re.escape("control frames cannot be fragmented")):
        codec.build_frame(opcode, b"", fin=False)


@pytest.mark.parametrize("length", [0, 3, 5])
def test_build_wrong_key_length(codec, length):
    with pytest.raises(ValueError, match=re.escape(f"mask must be 4 bytes, got {length}")):
        codec.build_frame(TEXT, b"Hello", mask=bytes(length))


def test_build_payload_not_bytes(codec):
    with pytest.raises(TypeError, match=re.escape("payload must be a bytes-like object, not int")):
        codec.build_frame(BINARY, 123)


@pytest.mark.parametrize("opcode", list(Opcode), ids=lambda o: o.name)
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_build_parse_round_trip(codec, opcode, masked):
    lengths = [0, 1, 125] if opcode >= 8 else [0, 1, 125, 126, 65535, 65536]
    for n in lengths:
        payload = bytes(i % 256 for i in range(n))
        for fin in ([True] if opcode >= 8 else [True, False]):
            wire = codec.build_frame(opcode, payload, fin=fin, mask=KEY if masked else None)
            frames = codec.FrameParser(mask_required=masked).feed(wire)
            assert as_tuples(frames) == [(opcode, fin, False, False, False, payload)]


# --- Frame --------------------------------------------------------------------------------


def test_frame_fields_and_defaults(codec):
    f = codec.Frame(TEXT, b"Hello")
    assert as_tuples([f]) == [(TEXT, True, False, False, False, b"Hello")]
    assert type(f.opcode) is Opcode
    g = codec.Frame(2, bytearray(b"x"), False, True, True, True)
    assert as_tuples([g]) == [(BINARY, False, True, True, True, b"x")]
    assert type(g.opcode) is Opcode and type(g.payload) is bytes
    assert codec.Frame(PING).payload == b""


def test_frame_equality(codec):
    f = codec.Frame(TEXT, b"Hello")
    assert f == codec.Frame(TEXT, b"Hello", True)
    assert f != codec.Frame(TEXT, b"Hello!")
    assert f != codec.Frame(BINARY, b"Hello")
    assert f != codec.Frame(TEXT, b"Hello", fin=False)
    assert f != codec.Frame(TEXT, b"Hello", rsv1=True)
    assert f != codec.Frame(TEXT, b"Hello", rsv2=True)
    assert f != codec.Frame(TEXT, b"Hello", rsv3=True)
    assert f != (TEXT, b"Hello")
    assert codec.FrameParser(mask_required=False).feed(h("81 05 48 65 6c 6c 6f")) == [f]


def test_frame_is_read_only_and_unhashable(codec):
    f = codec.Frame(TEXT, b"Hello")
    for name in ("opcode", "payload", "fin", "rsv1", "rsv2", "rsv3"):
        with pytest.raises(AttributeError):
            setattr(f, name, getattr(f, name))
    with pytest.raises(TypeError):
        hash(f)


def test_frame_invalid_opcode(codec):
    with pytest.raises(ValueError):
        codec.Frame(3, b"")


def test_frame_pickle(codec):
    f = codec.Frame(BINARY, b"\x00\xff", fin=False, rsv1=True)
    g = pickle.loads(pickle.dumps(f))
    assert type(g) is type(f)
    assert g == f


@pytest.mark.parametrize(
    "args, expected",
    [
        ((TEXT, b"Hello"), "Frame(TEXT, b'Hello', fin=True)"),
        ((CONT, b"", False), "Frame(CONTINUATION, b'', fin=False)"),
        (
            (BINARY, b"x", True, True, False, True),
            "Frame(BINARY, b'x', fin=True, rsv1=True, rsv3=True)",
        ),
        ((PING, b"a" * 64), f"Frame(PING, {b'a' * 64!r}, fin=True)"),
        ((BINARY, b"a" * 65), f"Frame(BINARY, {b'a' * 60!r}...(65 bytes), fin=True)"),
    ],
    ids=["text", "continuation", "rsv", "64-bytes", "65-bytes"],
)
def test_frame_repr(codec, args, expected):
    assert repr(codec.Frame(*args)) == expected


def test_exception_types_are_shared(codec):
    # Both implementations raise fastws.exceptions classes, not their own.
    assert issubclass(PayloadTooBig, ProtocolError) and issubclass(InvalidUTF8, ProtocolError)
    with pytest.raises(ProtocolError) as info:
        codec.FrameParser(mask_required=False).feed(h("A1 00"))
    assert type(info.value).__module__ == "fastws.exceptions"


@pytest.mark.parametrize("opcode", [0, 8, 9, 10])
def test_build_refuses_rsv1_outside_the_first_data_frame(codec, opcode):
    with pytest.raises(ValueError, match="RSV1 may only be set on the first frame of a data message"):
        codec.build_frame(opcode, b"", rsv1=True)


@pytest.mark.parametrize("max_size", [1.5, True, "10"])
def test_max_size_must_be_an_int(codec, max_size):
    with pytest.raises(TypeError, match="max_size must be an int or None"):
        codec.FrameParser(mask_required=True, max_size=max_size)


@pytest.mark.parametrize("data", [None, 5, "text"])
def test_feed_refuses_what_is_not_bytes_like(codec, data):
    # (a strided memoryview is bytes-like: tests/test_buffers.py)
    parser = codec.FrameParser(mask_required=False)
    with pytest.raises(TypeError, match=f"^data must be a bytes-like object, not {type(data).__name__}$"):
        parser.feed(data)

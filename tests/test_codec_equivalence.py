"""Property tests (hypothesis).

Tests taking ``codec`` check one implementation against a reference (CPython's
UTF-8 decoder, build/parse round trips) and run for both. Tests taking
``both_codecs`` feed the same input to the compiled module and the pure twin and
demand the same results, or the same exception type, close code and message.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fastws.exceptions import ProtocolError

DATA_OPCODES = [0, 1, 2]
CONTROL_OPCODES = [8, 9, 10]
keys = st.binary(min_size=4, max_size=4)
# Integers that do not fit the C types behind an argument: both implementations
# must refuse them with the same ValueError, not an OverflowError from the C side.
huge_ints = st.sampled_from([2**31, 2**32, 2**63 - 1, 2**63, 2**64, 2**70, -(2**63), -(2**70)])


# --- strategies --------------------------------------------------------------------------


@st.composite
def payloads(draw, max_size=None):
    """Short payloads mostly, sometimes long ones that need the 16- and 64-bit lengths."""
    if max_size is not None and max_size <= 125:
        return draw(st.binary(max_size=max_size))
    small = st.binary(max_size=200)
    big = st.tuples(st.binary(min_size=1, max_size=8), st.integers(126, 70_000)).map(
        lambda t: (t[0] * (t[1] // len(t[0]) + 1))[: t[1]]
    )
    return draw(st.one_of(small, small, big))


@st.composite
def frame_specs(draw, allow_rsv1=True):
    """(opcode, payload, fin, rsv1) of a frame that the parser must accept."""
    opcode = draw(st.sampled_from(DATA_OPCODES + CONTROL_OPCODES))
    if opcode >= 8:
        return opcode, draw(payloads(max_size=125)), True, False
    rsv1 = allow_rsv1 and opcode != 0 and draw(st.booleans())
    return opcode, draw(payloads()), draw(st.booleans()), rsv1


@st.composite
def splits(draw, data: bytes, max_pieces: int = 12):
    """``data`` cut at arbitrary points, as a mix of bytes, bytearray and memoryview."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=max_pieces - 1)))
    bounds = [0, *cuts, len(data)]
    kinds = [bytes, bytearray, memoryview]
    return [
        draw(st.sampled_from(kinds))(data[a:b]) for a, b in zip(bounds, bounds[1:])
    ]


@st.composite
def mutated(draw, data: bytes):
    """``data`` with a few bytes flipped, replaced, inserted or deleted, or cut short."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, len(data)))
        if kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "truncate":
            del data[pos:]
        elif pos < len(data):
            if kind == "flip":
                data[pos] ^= 1 << draw(st.integers(0, 7))
            elif kind == "set":
                data[pos] = draw(st.integers(0, 255))
            else:
                del data[pos : pos + draw(st.integers(1, 4))]
    return bytes(data)


INTERESTING_LENGTHS = [0, 1, 125, 126, 127, 65535, 65536, 2**63 - 1, 2**63, 2**64 - 1]


@st.composite
def crafted_headers(draw, mask_required: bool):
    """A header with any opcode, flags and mask bit (mostly the right ones), an
    interesting length and extended length, then a key and a short payload."""
    fin = draw(st.sampled_from([0x80, 0x80, 0]))
    rsv = draw(st.sampled_from([0] * 8 + [0x40, 0x40, 0x20, 0x10]))
    opcode = draw(st.sampled_from(DATA_OPCODES * 3 + CONTROL_OPCODES * 2 + [3, 7, 11, 15]))
    b0 = fin | rsv | opcode
    length = draw(st.sampled_from([0, 1, 125, 126, 126, 126, 127, 127, 127]) | st.integers(0, 127))
    right_mask = 0x80 if mask_required else 0
    b1 = draw(st.sampled_from([right_mask, right_mask, 0x80 - right_mask])) | length
    ext = b""
    if b1 & 0x7F == 126:
        ext = (draw(st.sampled_from(INTERESTING_LENGTHS)) % 65536).to_bytes(2, "big")
    elif b1 & 0x7F == 127:
        ext = draw(st.sampled_from(INTERESTING_LENGTHS)).to_bytes(8, "big")
    return bytes([b0, b1]) + ext + draw(st.binary(max_size=12))


@st.composite
def parser_inputs(draw, kinds=("random", "valid", "mutated", "mutated")):
    """(options, pieces): random, valid, mutated valid or crafted bytes, cut anywhere."""
    options = {
        "mask_required": draw(st.booleans()),
        "max_size": draw(st.sampled_from([None, 0, 5, 125, 126, 1000, 65536, 2**63 - 1])),
        "allow_rsv1": draw(st.booleans()),
    }
    kind = draw(st.sampled_from(kinds))
    if kind == "random":
        data = draw(st.binary(max_size=300))
    elif kind == "crafted":
        headers = crafted_headers(options["mask_required"])
        data = b"".join(draw(st.lists(headers, min_size=1, max_size=3)))
    else:
        # mostly masked as the options demand, sometimes the wrong way round
        masked = options["mask_required"] ^ (draw(st.integers(0, 9)) == 0)
        specs = draw(st.lists(frame_specs(options["allow_rsv1"]), min_size=1, max_size=5))
        from fastws import _codec_py  # the builder is not under test here

        data = b"".join(
            _codec_py.build_frame(op, p, fin=fin, rsv1=rsv1, mask=draw(keys) if masked else None)
            for op, p, fin, rsv1 in specs
        )
        if kind == "mutated":
            data = draw(mutated(data))
    return options, draw(splits(data))


utf8_texts = st.text(max_size=60).map(lambda s: s.encode("utf-8"))
# text that may hold surrogates, encoded anyway: valid except for ED A0..BF xx
surrogate_texts = st.text(
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF) | st.characters(), max_size=30
).map(lambda s: s.encode("utf-8", "surrogatepass"))
# a soup of lead bytes, continuation bytes at the edges of their ranges and
# whole characters: reaches overlongs, truncations and out-of-range sequences
UTF8_SNIPPETS = [
    b"a", b"\x00", b"\x7f", *(bytes([b]) for b in (0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF)),
    *(bytes([b]) for b in (0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xED, 0xEE, 0xEF)),
    *(bytes([b]) for b in (0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xF8, 0xFF)),
    *(chr(c).encode() for c in (0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFF, 0x10000, 0x10FFFF)),
]
utf8_soup = st.lists(st.sampled_from(UTF8_SNIPPETS), max_size=24).map(b"".join)
utf8_inputs = st.one_of(
    utf8_texts, utf8_texts.flatmap(mutated), surrogate_texts, utf8_soup, st.binary(max_size=60)
)


# --- helpers -----------------------------------------------------------------------------


def frame_tuple(f):
    return (int(f.opcode), f.fin, f.rsv1, f.rsv2, f.rsv3, f.payload)


def error_tuple(exc):
    return (type(exc), getattr(exc, "close_code", None), str(exc))


def outcome(func, *args):
    try:
        return ("ok", func(*args))
    except (ProtocolError, ValueError, TypeError, OverflowError) as exc:
        return ("error", error_tuple(exc))


def run_parser(module, options, pieces):
    """What each feed call gives: frames or an error (with its .frames)."""
    parser = module.FrameParser(**options)
    log = []
    for piece in pieces:
        try:
            frames = parser.feed(piece)
        except ProtocolError as exc:
            log.append(("error", error_tuple(exc), [frame_tuple(f) for f in exc.frames]))
            # failed for good: a later call raises the same error again
            try:
                parser.feed(b"\x81\x00")
            except ProtocolError as again:
                log.append(("again", error_tuple(again), parser.buffered))
            else:
                log.append(("no error after a failure",))
            break
        pending = parser.pending()
        if pending is not None:
            pending = (int(pending[0]), *pending[1:])
        log.append(("frames", [frame_tuple(f) for f in frames], parser.buffered, pending,
                    parser.pending_payload(), parser.pending_payload(3)))
    return log


def is_valid_prefix(data: bytes) -> bool:
    """Reference: ``data`` can be the beginning of valid UTF-8. Tries to complete a
    trailing partial sequence with 1 to 3 more bytes; one of 80, 90, A0 suits the
    second byte after any valid lead, 80 suits the third and fourth."""
    for extra in range(4):
        for second in (0x80, 0x90, 0xA0):
            tail = bytes([second]) + b"\x80" * (extra - 1) if extra else b""
            try:
                (data + tail).decode("utf-8")
                return True
            except UnicodeDecodeError:
                pass
    return False


def decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


# --- one implementation against a reference ----------------------------------------------


@given(
    masked=st.booleans(),
    specs=st.lists(frame_specs(), min_size=1, max_size=6),
    data=st.data(),
)
def test_parse_of_build_is_identity(codec, masked, specs, data):
    wire = b"".join(
        codec.build_frame(op, p, fin=fin, rsv1=rsv1, mask=data.draw(keys) if masked else None)
        for op, p, fin, rsv1 in specs
    )
    pieces = data.draw(splits(wire))
    parser = codec.FrameParser(mask_required=masked, allow_rsv1=True)
    frames = []
    for piece in pieces:
        frames += parser.feed(piece)
    assert [frame_tuple(f) for f in frames] == [
        (op, fin, rsv1, False, False, p) for op, p, fin, rsv1 in specs
    ]
    assert parser.buffered == 0


@given(data=utf8_inputs)
def test_validate_utf8_matches_decode(codec, data):
    assert codec.validate_utf8(data) is decodes(data)


@given(data=st.binary(max_size=300))
def test_validate_utf8_random_bytes(codec, data):
    assert codec.validate_utf8(data) is decodes(data)


long_utf8 = st.tuples(
    st.integers(0, 70).map(lambda n: b"a" * n),  # shifts everything across block boundaries
    st.text(min_size=20, max_size=200).map(lambda s: s.encode("utf-8")).flatmap(mutated),
    utf8_soup,
).map(b"".join)


@given(data=long_utf8)
def test_validate_utf8_long_mutated_text(codec, simd_levels, data):
    expected = decodes(data)
    for _level in simd_levels():
        assert codec.validate_utf8(data) is expected


@given(data=utf8_inputs, cuts=st.lists(st.integers(0, 60), max_size=8))
def test_incremental_validator_matches_one_shot(codec, data, cuts):
    expected = decodes(data)
    # every split in two, and the drawn multi-way split
    cut_sets = [[i] for i in range(len(data) + 1)] + [sorted(c for c in cuts if c <= len(data))]
    for cut_set in cut_sets:
        bounds = [0, *cut_set, len(data)]
        v = codec.Utf8Validator()
        results = []
        for a, b in zip(bounds, bounds[1:]):
            results.append(v.feed(data[a:b]))
            prefix = data[:b]
            # a feed fails exactly when the input can no longer become valid UTF-8,
            # and stays failed; complete means valid and on a code point boundary
            assert results[-1] is is_valid_prefix(prefix), (cut_set, b)
            assert v.valid is results[-1]
            assert v.complete is decodes(prefix), (cut_set, b)
        assert (all(results) and v.complete) is expected, cut_set


@given(data=utf8_inputs)
def test_incremental_validator_byte_by_byte(codec, data):
    v = codec.Utf8Validator()
    for i in range(len(data)):
        assert v.feed(data[i : i + 1]) is is_valid_prefix(data[: i + 1])
        assert v.complete is decodes(data[: i + 1])
    v.reset()
    assert v.feed(data) is is_valid_prefix(data)
    assert v.complete is decodes(data)


# --- the two implementations against each other -------------------------------------------


@given(inputs=parser_inputs())
def test_parsers_agree(both_codecs, inputs):
    cy, py = both_codecs
    options, pieces = inputs
    assert run_parser(cy, options, pieces) == run_parser(py, options, pieces)


@given(inputs=parser_inputs(kinds=("crafted",)))
def test_parsers_agree_on_crafted_headers(both_codecs, inputs):
    cy, py = both_codecs
    options, pieces = inputs
    assert run_parser(cy, options, pieces) == run_parser(py, options, pieces)


@given(data=st.binary(max_size=300), key=keys, phase=st.integers(0, 3), offset=st.integers(0, 7))
def test_masking_agrees(both_codecs, data, key, phase, offset):
    cy, py = both_codecs
    expected = bytes(b ^ key[(i + phase) % 4] for i, b in enumerate(data))
    if phase == 0:
        assert cy.apply_mask(data, key) == py.apply_mask(data, key) == expected
    results = []
    for module in (cy, py):
        buf = bytearray(bytes(offset) + data)
        next_phase = module.apply_mask_inplace(memoryview(buf)[offset:], key, phase)
        results.append((next_phase, bytes(buf[offset:])))
    assert results[0] == results[1] == ((phase + len(data)) % 4, expected)


@given(phase=st.integers(-5, 8) | huge_ints)
def test_mask_phase_checks_agree(both_codecs, phase):
    cy, py = both_codecs

    def mask(module):
        buf = bytearray(b"abcdef")
        return module.apply_mask_inplace(buf, b"\x01\x02\x03\x04", phase), bytes(buf)

    assert outcome(mask, cy) == outcome(mask, py)


@given(start=st.integers(-3, 40) | huge_ints, received=st.integers(0, 29))
def test_pending_payload_agrees(both_codecs, start, received):
    """pending_payload(start) of a frame of 30 bytes, ``received`` of them in."""
    cy, py = both_codecs
    frame = bytes([0x82, 30]) + bytes(range(30))

    def look(module):
        parser = module.FrameParser(mask_required=False)
        assert parser.feed(frame[: 2 + received]) == []
        return parser.pending_payload(start)

    assert outcome(look, cy) == outcome(look, py)


@given(payload=st.one_of(
    st.binary(max_size=130),
    st.tuples(st.integers(0, 65535), utf8_inputs).map(lambda t: t[0].to_bytes(2, "big") + t[1]),
    st.tuples(st.sampled_from([1000, 1001, 1005, 1015, 3000, 4999, 5000]), utf8_inputs).map(
        lambda t: t[0].to_bytes(2, "big") + t[1]
    ),
))
def test_parse_close_agrees(both_codecs, payload):
    cy, py = both_codecs
    a, b = outcome(cy.parse_close, payload), outcome(py.parse_close, payload)
    assert a == b
    if a[0] == "ok":
        assert type(a[1][0]) is type(b[1][0])


@given(code=st.integers(-1000, 100_000) | st.sampled_from([1005, 1015, 2999, 3000, 4999]) | huge_ints,
       reason=st.text(max_size=130))
def test_build_close_agrees(both_codecs, code, reason):
    cy, py = both_codecs
    assert outcome(cy.build_close, code, reason) == outcome(py.build_close, code, reason)


@given(
    opcode=st.integers(0, 16) | huge_ints,
    payload=st.one_of(st.binary(max_size=300), st.text(max_size=50)),
    fin=st.booleans(),
    rsv1=st.booleans(),
    key=st.none() | keys,
)
def test_build_frame_agrees(both_codecs, opcode, payload, fin, rsv1, key):
    cy, py = both_codecs

    def build(module):
        return module.build_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=key)

    assert outcome(build, cy) == outcome(build, py)


@given(spec=frame_specs(), rsv2=st.booleans(), rsv3=st.booleans())
def test_frame_objects_agree(both_codecs, spec, rsv2, rsv3):
    cy, py = both_codecs
    opcode, payload, fin, rsv1 = spec
    a = cy.Frame(opcode, payload, fin, rsv1, rsv2, rsv3)
    b = py.Frame(opcode, payload, fin, rsv1, rsv2, rsv3)
    assert frame_tuple(a) == frame_tuple(b)
    assert repr(a) == repr(b)
    assert a == cy.Frame(opcode, payload, fin, rsv1, rsv2, rsv3)
    assert a != cy.Frame(opcode, payload + b"x", fin, rsv1, rsv2, rsv3)


def test_failed_parser_repeats_its_error_whatever_it_is_fed(both_codecs):
    """After a protocol error, every feed() raises it again, before looking at
    its argument: a str or None then is not a TypeError in either twin."""
    for bad in (b"\x82\x00", "text", None, 12):
        results = []
        for module in both_codecs:
            parser = module.FrameParser(mask_required=False)
            first = outcome(parser.feed, b"\x83\x00")  # reserved opcode 3
            results.append((first, outcome(parser.feed, bad)))
        (first, again), other = results
        assert first[0] == "error" and first[1][0].__name__ == "ProtocolError"
        assert again == ("error", first[1]), bad
        assert other == results[0], bad

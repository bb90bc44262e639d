"""``build_header(opcode, length, *, fin=True, rsv1=False)``: the header of an
unmasked frame, for a writer that sends a large payload after it uncopied.

``build_header(op, len(p), ...) + p`` must be ``build_frame(op, p, ...)``, and
the same mistakes must raise the same errors; both twins must agree on every
input, including integers too large for C.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastws.frames import Opcode

CONT, TEXT, BINARY = Opcode.CONTINUATION, Opcode.TEXT, Opcode.BINARY
CLOSE, PING, PONG = Opcode.CLOSE, Opcode.PING, Opcode.PONG


@pytest.mark.parametrize(
    ("opcode", "length", "options", "header"),
    [
        (TEXT, 0, {}, "81 00"),
        (TEXT, 5, {}, "81 05"),
        (BINARY, 125, {}, "82 7d"),
        (BINARY, 126, {}, "82 7e 00 7e"),
        (BINARY, 127, {}, "82 7e 00 7f"),
        (BINARY, 0xFFFF, {}, "82 7e ff ff"),
        (BINARY, 0x10000, {}, "82 7f 00 00 00 00 00 01 00 00"),
        (BINARY, 0x0102030405060708, {}, "82 7f 01 02 03 04 05 06 07 08"),
        (BINARY, 2**63 - 1, {}, "82 7f 7f ff ff ff ff ff ff ff"),
        (TEXT, 5, {"fin": False}, "01 05"),
        (CONT, 5, {"fin": False}, "00 05"),
        (CONT, 70_000, {}, "80 7f 00 00 00 00 00 01 11 70"),
        (TEXT, 5, {"rsv1": True}, "c1 05"),
        (BINARY, 300, {"fin": False, "rsv1": True}, "42 7e 01 2c"),
        (CLOSE, 125, {}, "88 7d"),
        (PING, 0, {}, "89 00"),
        (PONG, 3, {}, "8a 03"),
        (2, 3, {}, "82 03"),  # an int opcode
        (True, 3, {}, "81 03"),  # bools are ints, as for build_frame
        (BINARY, True, {}, "82 01"),
    ],
)
def test_header_bytes(codec, opcode, length, options, header):
    built = codec.build_header(opcode, length, **options)
    assert type(built) is bytes
    assert built == bytes.fromhex(header)


@pytest.mark.parametrize(
    ("opcode", "length", "options", "exc_type", "message"),
    [
        (3, 0, {}, ValueError, "invalid opcode 3"),
        (11, 0, {}, ValueError, "invalid opcode 11"),
        (16, 0, {}, ValueError, "invalid opcode 16"),
        (-1, 0, {}, ValueError, "invalid opcode -1"),
        (2**64, 0, {}, ValueError, f"invalid opcode {2**64}"),
        (-(2**70), 0, {}, ValueError, f"invalid opcode {-(2**70)}"),
        (PING, 126, {}, ValueError, "control frame of 126 bytes (125 at most)"),
        (CLOSE, 2**63, {}, ValueError, f"control frame of {2**63} bytes (125 at most)"),
        (PONG, 0, {"fin": False}, ValueError, "control frames cannot be fragmented"),
        (CONT, 0, {"rsv1": True}, ValueError,
         "RSV1 may only be set on the first frame of a data message"),
        (PING, 0, {"rsv1": True}, ValueError,
         "RSV1 may only be set on the first frame of a data message"),
        (BINARY, -1, {}, ValueError, "length must be 0 to 2**63 - 1, got -1"),
        (BINARY, 2**63, {}, ValueError, f"length must be 0 to 2**63 - 1, got {2**63}"),
        (TEXT, 2**64, {}, ValueError, f"length must be 0 to 2**63 - 1, got {2**64}"),
        (CONT, -(2**70), {}, ValueError, f"length must be 0 to 2**63 - 1, got {-(2**70)}"),
        (PING, -1, {}, ValueError, "length must be 0 to 2**63 - 1, got -1"),
        # the opcode is checked first
        (7, -1, {}, ValueError, "invalid opcode 7"),
        ("1", 0, {}, TypeError, "'str' object cannot be interpreted as an integer"),
        (1.0, 0, {}, TypeError, "'float' object cannot be interpreted as an integer"),
        (BINARY, 1.5, {}, TypeError, "'float' object cannot be interpreted as an integer"),
        (BINARY, b"ab", {}, TypeError, "'bytes' object cannot be interpreted as an integer"),
        (BINARY, None, {}, TypeError, "'NoneType' object cannot be interpreted as an integer"),
    ],
)
def test_header_errors(codec, opcode, length, options, exc_type, message):
    with pytest.raises(exc_type) as excinfo:
        codec.build_header(opcode, length, **options)
    assert str(excinfo.value) == message


def test_fin_and_rsv1_are_keyword_only(codec):
    """A call with the arguments in (opcode, fin, length) order must fail
    loudly, not build a header for a length of 0 or 1."""
    with pytest.raises(TypeError):
        codec.build_header(TEXT, True, 5)


def outcome(func, *args, **kwargs):
    try:
        return ("ok", func(*args, **kwargs))
    except (ValueError, TypeError, OverflowError) as exc:
        return ("error", type(exc), str(exc))


def test_same_results_and_errors_as_build_frame(codec):
    """Every opcode, the lengths around the control frame limit, every FIN and
    RSV1: a header and its payload are build_frame's frame, a refusal is
    build_frame's refusal."""
    for opcode in [*range(-1, 17), 255]:
        for length in (0, 1, 125, 126):
            for fin in (True, False):
                for rsv1 in (False, True):
                    payload = bytes(range(length))
                    header = outcome(codec.build_header, opcode, length, fin=fin, rsv1=rsv1)
                    frame = outcome(codec.build_frame, opcode, payload, fin=fin, rsv1=rsv1)
                    case = (opcode, length, fin, rsv1)
                    if frame[0] == "ok":
                        assert header[0] == "ok", case
                        assert header[1] + payload == frame[1], case
                    else:
                        assert header == frame, case


# --- properties ------------------------------------------------------------------------

LENGTH_EDGES = [0, 1, 125, 126, 127, 0xFFFF, 0x10000, 2**32, 2**63 - 1]
huge_ints = st.sampled_from([2**31, 2**32, 2**63 - 1, 2**63, 2**64, 2**70, -(2**63), -(2**70)])


@given(
    opcode=st.integers(-2, 16) | huge_ints,
    length=st.sampled_from(LENGTH_EDGES) | st.integers(-3, 70_000) | huge_ints,
    fin=st.booleans(),
    rsv1=st.booleans(),
)
def test_twins_agree(both_codecs, opcode, length, fin, rsv1):
    cy, py = both_codecs
    assert outcome(cy.build_header, opcode, length, fin=fin, rsv1=rsv1) == outcome(
        py.build_header, opcode, length, fin=fin, rsv1=rsv1
    )


@given(
    opcode=st.sampled_from([0, 1, 2]),
    payload=st.binary(max_size=200) | st.integers(126, 70_000).map(bytes),
    fin=st.booleans(),
    rsv1=st.booleans(),
)
def test_header_then_payload_is_the_frame_and_parses_back(codec, opcode, payload, fin, rsv1):
    rsv1 = rsv1 and opcode != 0
    header = codec.build_header(opcode, len(payload), fin=fin, rsv1=rsv1)
    assert header + payload == codec.build_frame(opcode, payload, fin=fin, rsv1=rsv1)
    parser = codec.FrameParser(mask_required=False, allow_rsv1=True)
    # the header alone, then the payload: as a writer sends them
    frames = parser.feed(header)
    if payload:
        assert frames == []
        frames = parser.feed(payload)
    [frame] = frames
    assert (frame.opcode, frame.payload, frame.fin, frame.rsv1) == (opcode, payload, fin, rsv1)


@given(length=st.integers(0, 2**63 - 1))
def test_any_length_round_trips_through_the_parser_header(codec, length):
    """The parser reads back the length that the header announces, up to
    2**63 - 1 (seen through pending(): no payload is sent)."""
    header = codec.build_header(BINARY, length)
    assert len(header) == (2 if length < 126 else 4 if length < 0x10000 else 10)
    parser = codec.FrameParser(mask_required=False)
    frames = parser.feed(header)
    if length == 0:
        assert [f.payload for f in frames] == [b""]
    else:
        assert frames == []
        assert parser.pending() == (BINARY, True, False, 0)

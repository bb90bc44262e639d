"""wsproto's frame decoding on fastws keeps wsproto's exact behaviour.

The same byte streams (valid frames, fragmented messages, control frames,
invalid UTF-8 and every kind of header error), cut at random places, go
through wsproto's ``FrameProtocol`` unpatched and patched: the frames handed
out (opcode, payload, frame_finished, message_finished, in the same pieces)
and the ``ParseFailed`` raised (message and close code) must be identical.
"""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastws.accelerate as acc

fp = pytest.importorskip("wsproto.frame_protocol")


@pytest.fixture(autouse=True)
def _unpatched():
    acc.unpatch_wsproto()
    yield
    acc.unpatch_wsproto()


def raw_frame(opcode, payload, *, fin=True, rsv=0, key=None, length_form=None):
    """Any frame, including invalid ones (``length_form`` 16 or 64 forces a
    non-minimal length; ``rsv`` sets reserved bits)."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask = 0x80 if key is not None else 0
    if length_form == 64 or (length_form is None and n >= 65536):
        header = struct.pack("!BBQ", b0, mask | 127, n)
    elif length_form == 16 or (length_form is None and n >= 126):
        header = struct.pack("!BBH", b0, mask | 126, n)
    else:
        header = struct.pack("!BB", b0, mask | n)
    if key is None:
        return header + payload
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return header + key + masked


def run(stream, cuts, client=False):
    """Feed ``stream`` cut at ``cuts`` to a fresh FrameProtocol (whatever
    fp.FrameProtocol is now); every frame out, then the error if any."""
    proto = fp.FrameProtocol(client=client, extensions=[])
    out = []
    bounds = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    try:
        for a, b in zip(bounds, bounds[1:]):
            proto.receive_bytes(stream[a:b])
            out.extend(tuple(f) for f in proto.received_frames())
        out.extend(tuple(f) for f in proto.received_frames())
    except fp.ParseFailed as exc:
        out.append(("ParseFailed", str(exc), int(exc.code)))
    return out


def both(stream, cuts, client=False):
    acc.unpatch_wsproto()
    expected = run(stream, cuts, client)
    assert acc.patch_wsproto(allow_pure=True).active
    got = run(stream, cuts, client)
    acc.unpatch_wsproto()
    return expected, got


_frames = st.lists(
    st.one_of(
        # valid data frames (fragments of messages, in any order: wsproto judges)
        st.tuples(st.sampled_from([0, 1, 2]), st.binary(max_size=300), st.booleans(), st.just(0), st.none()),
        st.tuples(st.sampled_from([1, 0]), st.sampled_from([b"\xed\xa0\x80", "é".encode(), b"\xc3", b"\xa9"]),
                  st.booleans(), st.just(0), st.none()),
        # control frames, valid and too long or fragmented
        st.tuples(st.sampled_from([8, 9, 10]), st.binary(max_size=130), st.booleans(), st.just(0), st.none()),
        st.tuples(st.just(8), st.sampled_from([b"\x03\xe8bye", b"\x03\xe8\xff", b"\x00\x01", b"\x03"]),
                  st.just(True), st.just(0), st.none()),
        # reserved bits and opcodes, non-minimal lengths
        st.tuples(st.sampled_from([1, 2, 3, 7, 11, 15]), st.binary(max_size=20), st.booleans(),
                  st.integers(0, 7), st.sampled_from([None, 16, 64])),
    ),
    max_size=8,
)


@given(frames=_frames, cuts=st.lists(st.integers(0, 3000), max_size=5), unmasked=st.integers(0, 9))
def test_same_frames_and_errors_as_wsproto(frames, cuts, unmasked):
    stream = b"".join(
        raw_frame(op, payload, fin=fin, rsv=rsv, length_form=form,
                  key=None if i == unmasked else os.urandom(4))
        for i, (op, payload, fin, rsv, form) in enumerate(frames)
    )
    expected, got = both(stream, cuts)
    assert got == expected


@given(
    payloads=st.lists(st.binary(max_size=200), min_size=1, max_size=5),
    cuts=st.lists(st.integers(0, 1200), max_size=6),
)
def test_client_side_unmasked_frames(payloads, cuts):
    stream = b"".join(raw_frame(2, p) for p in payloads) + raw_frame(1, b"ok", key=b"abcd")
    expected, got = both(stream, cuts, client=True)
    assert got == expected
    assert got[-1][0] == "ParseFailed"  # a masked frame from the server


def test_partial_payloads_come_out_in_the_same_pieces():
    payload = os.urandom(200_000)
    stream = raw_frame(2, payload, key=b"\x01\x02\x03\x04", fin=False) + raw_frame(0, b"end", key=b"abcd")
    cuts = [5, 9, 70_000, 70_001, 150_000]
    expected, got = both(stream, cuts)
    assert got == expected
    # the first frame comes out in 4 pieces (frame_finished False but the last)
    assert [g[2:] for g in got] == [(False, False)] * 3 + [(True, False), (True, True)]


def test_extensions_keep_wsprotos_decoder_with_the_fast_masker():
    from wsproto.extensions import PerMessageDeflate

    acc.patch_wsproto(allow_pure=True)
    ext = PerMessageDeflate()
    ext._enabled = True
    decoder = fp.FrameDecoder(client=False, extensions=[ext])
    assert decoder._fast is False  # wsproto's own code path, which calls the extension
    decoder.receive_bytes(raw_frame(2, b"abc", key=b"wxyz"))
    assert decoder.parse_header()
    assert type(decoder.masker) is fp.XorMaskerSimple  # fastws's
    assert fp.XorMaskerSimple.__module__ == "fastws.accelerate._wsproto"
    assert decoder.process_buffer().payload == b"abc"


def test_masker_matches_wsprotos():
    original = fp.XorMaskerSimple
    acc.patch_wsproto(allow_pure=True)
    fast = fp.XorMaskerSimple
    assert fast is not original
    key = b"\x11\x22\x33\x44"
    a, b = original(bytearray(key)), fast(bytearray(key))
    for chunk in (b"", b"x", b"hello", os.urandom(1001), bytearray(b"abc"), memoryview(b"defg")):
        ra, rb = a.process(chunk), b.process(chunk)
        assert type(rb) is bytearray and rb == ra


def test_client_frames_are_masked_with_the_fast_masker():
    acc.patch_wsproto(allow_pure=True)
    proto = fp.FrameProtocol(client=True, extensions=[])
    wire = bytes(proto.send_data(b"x" * 1000))
    server = fp.FrameProtocol(client=False, extensions=[])
    server.receive_bytes(wire)
    [frame] = list(server.received_frames())
    assert frame.payload == b"x" * 1000


def test_incompatible_wsproto_is_refused(monkeypatch):
    monkeypatch.delattr(fp, "FrameDecoder")
    with pytest.raises(acc.IncompatibleVersion, match=r"wsproto [\d.]+: .*has no attribute 'FrameDecoder'"):
        acc.patch_wsproto(allow_pure=True)
    assert fp.XorMaskerSimple.__module__ == "wsproto.frame_protocol"  # nothing patched

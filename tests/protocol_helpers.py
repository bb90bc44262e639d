"""Helpers shared by the protocol tests: a frame builder independent of both codecs
(so it can build invalid frames too), and functions to pump bytes between two
protocols in memory."""

from __future__ import annotations

import struct

from fastws import _codec_py

MASK = b"\x37\xfa\x21\x3d"

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0, 1, 2, 8, 9, 10


def make_frame(
    opcode: int,
    payload: bytes | str = b"",
    *,
    fin: bool = True,
    rsv1: bool = False,
    rsv2: bool = False,
    rsv3: bool = False,
    masked: bool = True,
    length: int | None = None,
) -> bytes:
    """Serialize a frame by hand, without any validation: any opcode, any bits.
    ``masked`` uses :data:`MASK`. ``length`` overrides the announced length."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    b0 = opcode | (0x80 if fin else 0) | (0x40 if rsv1 else 0) | (0x20 if rsv2 else 0)
    b0 |= 0x10 if rsv3 else 0
    n = len(payload) if length is None else length
    mask_bit = 0x80 if masked else 0
    if n < 126:
        header = bytes([b0, mask_bit | n])
    elif n < 0x10000:
        header = bytes([b0, mask_bit | 126]) + struct.pack("!H", n)
    else:
        header = bytes([b0, mask_bit | 127]) + struct.pack("!Q", n)
    if not masked:
        return header + payload
    body = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return header + MASK + body


def close_payload(code: int, reason: str | bytes = b"") -> bytes:
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


def sent_frames(data: bytes, *, by_client: bool, allow_rsv1: bool = False) -> list:
    """(opcode, payload, fin, rsv1) of the frames a protocol sent, parsed with the
    pure codec; checks the masking direction on the way."""
    parser = _codec_py.FrameParser(mask_required=by_client, allow_rsv1=allow_rsv1)
    return [(int(f.opcode), f.payload, f.fin, f.rsv1) for f in parser.feed(data)]


def sent_close(data: bytes, *, by_client: bool):
    """(code, reason) of the last frame sent, which must be a close frame."""
    frames = sent_frames(data, by_client=by_client)
    assert frames, "nothing was sent"
    opcode, payload, _, _ = frames[-1]
    assert opcode == CLOSE, frames
    code, reason = _codec_py.parse_close(payload)
    return int(code), reason


def pump(a, b, *, split=None) -> bool:
    """Move every pending byte from a to b and from b to a until both are quiet.
    ``split(data) -> list of chunks`` cuts what is delivered. Returns True if
    anything moved."""
    moved = False
    while True:
        progressed = False
        for src, dst in ((a, b), (b, a)):
            data = src.data_to_send()
            if data:
                progressed = moved = True
                for chunk in split(data) if split else [data]:
                    dst.receive_data(chunk)
        if not progressed:
            return moved


def byte_by_byte(data: bytes) -> list:
    return [data[i : i + 1] for i in range(len(data))]

"""Close frame payloads (RFC 6455 sections 5.5.1 and 7.4): ``parse_close`` and
``build_close``."""

from __future__ import annotations

import re

import pytest

from fastws.exceptions import InvalidUTF8, ProtocolError
from fastws.frames import CloseCode

# RFC 6455 section 7.4: codes a peer may send. 1004 is reserved, 1005, 1006 and
# 1015 are only reported locally; 1012-1014 were registered with IANA later.
ACCEPTED = [*range(1000, 1004), *range(1007, 1015), 3000, 3001, 3999, 4000, 4500, 4999]
REJECTED = [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 10000, 65535]
NAMED = {c.value for c in CloseCode}


def payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


# --- parse_close ------------------------------------------------------------------------


def test_empty_payload_means_no_status(codec):
    code, reason = codec.parse_close(b"")
    assert (code, reason) == (1005, "")
    assert code is CloseCode.NO_STATUS_RCVD
    assert type(reason) is str


def test_one_byte_payload(codec):
    message = "close payload of 1 byte (a code takes 2)"
    with pytest.raises(ProtocolError, match=re.escape(message)) as info:
        codec.parse_close(b"\x03")
    assert type(info.value) is ProtocolError
    assert info.value.close_code == 1002


@pytest.mark.parametrize("n", [126, 127, 1000])
def test_payload_longer_than_125(codec, n):
    data = payload(1000, b"x" * (n - 2))
    message = f"close payload of {n} bytes (125 at most)"
    with pytest.raises(ProtocolError, match=re.escape(message)) as info:
        codec.parse_close(data)
    assert info.value.close_code == 1002


def test_payload_of_125_bytes(codec):
    assert codec.parse_close(payload(1000, b"x" * 123)) == (1000, "x" * 123)


@pytest.mark.parametrize("code", REJECTED)
def test_rejected_codes(codec, code):
    with pytest.raises(ProtocolError, match=re.escape(f"invalid close code {code}")) as info:
        codec.parse_close(payload(code, b"reason"))
    assert type(info.value) is ProtocolError
    assert info.value.close_code == 1002
    assert str(info.value) == f"invalid close code {code}"


@pytest.mark.parametrize("code", ACCEPTED)
def test_accepted_codes(codec, code):
    for reason in ("", "bye", "Grüße 👋"):
        got_code, got_reason = codec.parse_close(payload(code, reason.encode()))
        assert got_code == code
        assert got_reason == reason
        if code in NAMED:
            assert got_code is CloseCode(code)
        else:
            assert type(got_code) is int


@pytest.mark.parametrize(
    "reason",
    [b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"ok\xe2\x82", b"\xf4\x90\x80\x80", b"abc\x80"],
    ids=["FF", "overlong", "surrogate", "truncated", "above-max", "lone-continuation"],
)
def test_invalid_utf8_reason(codec, reason):
    with pytest.raises(InvalidUTF8, match=re.escape("invalid UTF-8 in close reason")) as info:
        codec.parse_close(payload(1000, reason))
    assert type(info.value) is InvalidUTF8
    assert info.value.close_code == 1007


def test_code_checked_before_reason(codec):
    with pytest.raises(ProtocolError, match="invalid close code 999") as info:
        codec.parse_close(payload(999, b"\xff"))
    assert info.value.close_code == 1002


@pytest.mark.parametrize(
    "data",
    [bytearray(payload(1001, b"away")), memoryview(payload(1001, b"away")),
     memoryview(b"xy" + payload(1001, b"away"))[2:]],
    ids=["bytearray", "memoryview", "memoryview-slice"],
)
def test_parse_buffer_types(codec, data):
    assert codec.parse_close(data) == (CloseCode.GOING_AWAY, "away")


def test_parse_rejects_non_bytes(codec):
    with pytest.raises(TypeError, match=re.escape("payload must be a bytes-like object, not str")):
        codec.parse_close("\x03\xe8")


# --- build_close ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, reason, expected",
    [
        (1000, "", b"\x03\xe8"),
        (1000, "bye", b"\x03\xe8bye"),
        (CloseCode.GOING_AWAY, "", b"\x03\xe9"),
        (1011, "é", b"\x03\xf3\xc3\xa9"),
        (3000, "", b"\x0b\xb8"),
        (4999, "x", b"\x13\x87x"),
    ],
    ids=["1000", "1000-reason", "CloseCode-member", "utf8-reason", "3000", "4999"],
)
def test_build(codec, code, reason, expected):
    built = codec.build_close(code, reason)
    assert type(built) is bytes
    assert built == expected


def test_build_no_status(codec):
    assert codec.build_close(1005) == b""
    assert codec.build_close(CloseCode.NO_STATUS_RCVD, "") == b""
    with pytest.raises(ValueError, match=re.escape("close code 1005 cannot be sent")):
        codec.build_close(1005, "with a reason")


@pytest.mark.parametrize("code", [c for c in REJECTED if c != 1005])
def test_build_rejected_codes(codec, code):
    with pytest.raises(ValueError, match=re.escape(f"close code {code} cannot be sent")):
        codec.build_close(code)
    with pytest.raises(ValueError, match=re.escape(f"close code {code} cannot be sent")):
        codec.build_close(code, "reason")


@pytest.mark.parametrize(
    "reason, size",
    [("x" * 124, 124), ("é" * 62, 124), ("x" * 200, 200), ("€" * 42, 126)],
    ids=["ascii-124", "2-byte-124", "ascii-200", "3-byte-126"],
)
def test_build_reason_too_long(codec, reason, size):
    with pytest.raises(ValueError, match=re.escape(f"close reason of {size} bytes (123 at most)")):
        codec.build_close(1000, reason)


@pytest.mark.parametrize(
    "reason", ["x" * 123, "é" * 61 + "x", "€" * 41], ids=["ascii", "2-byte", "3-byte"]
)
def test_build_reason_of_123_bytes(codec, reason):
    assert len(codec.build_close(1000, reason)) == 125


@pytest.mark.parametrize("code", ACCEPTED)
def test_round_trip(codec, code):
    for reason in ("", "normal", "日本語" * 13):
        assert codec.parse_close(codec.build_close(code, reason)) == (code, reason)


def test_close_code_prints_as_its_number():
    """As websockets' plain ints do, and as IntEnum does from Python 3.11 on."""
    from fastws.frames import CloseCode

    assert str(CloseCode.GOING_AWAY) == "1001" and f"{CloseCode.GOING_AWAY}" == "1001"
    assert repr(CloseCode.GOING_AWAY) == "<CloseCode.GOING_AWAY: 1001>"

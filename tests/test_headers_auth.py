"""HTTP Basic authentication's headers (RFC 7617): ``parse_authorization_basic``,
``build_authorization_basic``, ``build_www_authenticate_basic``, checked against
websockets' own helpers too."""

from __future__ import annotations

import base64

import pytest
import websockets.headers

from fastws.exceptions import InvalidHeader, InvalidHeaderFormat, InvalidHeaderValue
from fastws.handshake import build_request, generate_key, parse_uri
from fastws.headers import (
    build_authorization_basic,
    build_www_authenticate_basic,
    parse_authorization_basic,
)


def _websockets_takes_surrogates() -> bool:
    # websockets 15 (the Python 3.9 venv's) encodes credentials in strict UTF-8.
    try:
        websockets.headers.build_authorization_basic("\udcff", "")
    except UnicodeEncodeError:
        return False
    return True


WEBSOCKETS_TAKES_SURROGATES = _websockets_takes_surrogates()


def like_websockets(*values: str) -> bool:
    """Whether websockets' helpers are expected to give the same answer."""
    surrogates = any(0xDC80 <= ord(c) <= 0xDCFF for value in values for c in value)
    return WEBSOCKETS_TAKES_SURROGATES or not surrogates


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# header value, (username, password)
VALID = [
    ("Basic dXNlcjpwYXNz", ("user", "pass")),
    ("basic dXNlcjpwYXNz", ("user", "pass")),  # the scheme is case-insensitive
    ("BASIC dXNlcjpwYXNz", ("user", "pass")),
    ("Basic  dXNlcjpwYXNz", ("user", "pass")),  # 1*SP (RFC 7235 section 2.1)
    ("Basic " + b64(b":"), ("", "")),
    ("Basic " + b64(b"user:"), ("user", "")),
    ("Basic " + b64(b":pass"), ("", "pass")),
    ("Basic " + b64(b"user:pa:ss"), ("user", "pa:ss")),  # the first colon splits
    ("Basic " + b64("jérôme:pässwörd".encode()), ("jérôme", "pässwörd")),
    ("Basic " + b64("用户:密码".encode()), ("用户", "密码")),
    # Not UTF-8: the bytes survive as lone surrogates.
    ("Basic " + b64(b"\xff:\xfe"), ("\udcff", "\udcfe")),
]


@pytest.mark.parametrize("header, credentials", VALID, ids=[v[0] for v in VALID])
def test_parse_authorization_basic(header, credentials):
    assert parse_authorization_basic(header) == credentials
    # websockets takes one space only after the scheme.
    if "  " not in header and like_websockets(*credentials):
        assert websockets.headers.parse_authorization_basic(header) == credentials


SECRET = b64(b"alice:s3cret")

# header value, exception, words of its reason
INVALID = [
    ("", InvalidHeaderFormat, "expected an authentication scheme"),
    (" Basic " + SECRET, InvalidHeaderFormat, "expected an authentication scheme"),
    ("Bearer " + SECRET, InvalidHeaderValue, "unsupported authentication scheme"),
    ("Digest username=alice", InvalidHeaderValue, "unsupported authentication scheme"),
    ("Basic", InvalidHeaderFormat, "expected a space"),
    ("Basic\t" + SECRET, InvalidHeaderFormat, "expected a space"),
    ("Basic:" + SECRET, InvalidHeaderFormat, "expected a space"),
    ("Basic ", InvalidHeaderFormat, "not a token68"),
    ("Basic " + SECRET + " x", InvalidHeaderFormat, "not a token68"),
    ("Basic " + SECRET + ",", InvalidHeaderFormat, "not a token68"),
    ("Basic realm=x", InvalidHeaderFormat, "not a token68"),
    ("Basic " + SECRET[:-1], InvalidHeaderValue, "not base64"),  # bad padding
    ("Basic a-_~" + SECRET, InvalidHeaderValue, "not base64"),  # token68, not base64
    ("Basic " + b64(b"alice"), InvalidHeaderValue, "no colon"),
    ("Basic " + b64(b""), InvalidHeaderFormat, "not a token68"),
]


@pytest.mark.parametrize("header, error, reason", INVALID, ids=[v[0] for v in INVALID])
def test_parse_authorization_basic_errors(header, error, reason):
    with pytest.raises(error) as exc_info:
        parse_authorization_basic(header)
    exc = exc_info.value
    assert type(exc) is error
    assert isinstance(exc, InvalidHeader)
    assert exc.name == "Authorization"
    assert reason in str(exc)
    # The credentials never end up in the message (it may be logged).
    assert SECRET not in str(exc)
    assert "s3cret" not in str(exc)
    assert exc.value is not None and SECRET not in exc.value


# username, password
ROUND_TRIPS = [
    ("user", "pass"),
    ("", ""),
    ("user", ""),
    ("user", "pa:ss:"),
    ("jérôme", "pässwörd"),
    ("用户", "密码 with spaces"),
    ("\udcff", "\udcfe"),  # lone surrogates stand for non-UTF-8 bytes
]


@pytest.mark.parametrize("username, password", ROUND_TRIPS)
def test_build_authorization_basic(username, password):
    header = build_authorization_basic(username, password)
    if like_websockets(username, password):
        assert header == websockets.headers.build_authorization_basic(username, password)
    assert header.startswith("Basic ")
    assert parse_authorization_basic(header) == (username, password)


def test_build_authorization_basic_is_utf8():
    assert build_authorization_basic("é", "ü") == "Basic " + b64("é:ü".encode())


def test_build_authorization_basic_refuses_a_colon_in_the_username():
    with pytest.raises(ValueError, match="username 'a:b' contains a colon"):
        build_authorization_basic("a:b", "pass")


# realm, header value
WWW_AUTHENTICATE = [
    ("", 'Basic realm="", charset="UTF-8"'),
    ("my server", 'Basic realm="my server", charset="UTF-8"'),
    ('say "hi"', 'Basic realm="say \\"hi\\"", charset="UTF-8"'),
    ("back\\slash", 'Basic realm="back\\\\slash", charset="UTF-8"'),
    ("tab\there", 'Basic realm="tab\there", charset="UTF-8"'),
]


@pytest.mark.parametrize("realm, header", WWW_AUTHENTICATE)
def test_build_www_authenticate_basic(realm, header):
    assert build_www_authenticate_basic(realm) == header
    assert header == websockets.headers.build_www_authenticate_basic(realm)


@pytest.mark.parametrize("realm", ["a\r\nSet-Cookie: x=y", "nul\x00", "bell\x07", "\x7f", "€"])
def test_build_www_authenticate_basic_refuses_what_a_quoted_string_cannot_hold(realm):
    with pytest.raises(ValueError, match="cannot be sent in a quoted string"):
        build_www_authenticate_basic(realm)


# uri, the Authorization header of the client's request (None: no header)
CLIENT_REQUESTS = [
    ("ws://host/", None),
    ("ws://user:pass@host/", "Basic " + b64(b"user:pass")),
    ("ws://user@host/", "Basic " + b64(b"user:")),
    ("ws://us%40er:p%3Ass@host/", "Basic " + b64(b"us@er:p:ss")),
    ("ws://j%C3%A9r%C3%B4me:p%C3%A4ss@host/", "Basic " + b64("jérôme:päss".encode())),
]


@pytest.mark.parametrize("uri, authorization", CLIENT_REQUESTS)
def test_client_request_sends_user_info_as_basic_auth(uri, authorization):
    request = build_request(parse_uri(uri), generate_key())
    assert request.headers.get("Authorization") == authorization


def test_client_request_refuses_a_colon_in_the_username():
    with pytest.raises(ValueError, match="contains a colon"):
        build_request(parse_uri("ws://a%3Ab:pass@host/"), generate_key())

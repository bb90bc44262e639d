"""HTTP/1.1 for the opening handshake: Headers, Request, Response and the
incremental parsers with their limits (fastws.http11)."""

from __future__ import annotations

import pickle

import pytest

from fastws.exceptions import InvalidMessage, MultipleValuesError
from fastws.http11 import (
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    MAX_LINE,
    Headers,
    Request,
    RequestParser,
    Response,
    ResponseParser,
    parse_request,
)

from protocol_helpers import byte_by_byte

# --- Headers -------------------------------------------------------------------------


def test_headers_case_insensitive_and_multi_valued():
    h = Headers([("Host", "a"), ("X-Multi", "1"), ("x-multi", "2")])
    assert h["HOST"] == "a" and h["host"] == "a" and h.get("Host") == "a"
    assert h.get_all("X-MULTI") == ["1", "2"]
    with pytest.raises(MultipleValuesError, match="more than one X-Multi header"):
        h["X-Multi"]
    with pytest.raises(MultipleValuesError):
        h.get("x-multi")
    with pytest.raises(KeyError):
        h["Missing"]
    assert h.get("Missing") is None and h.get("Missing", "d") == "d"
    assert h.get_all("Missing") == []
    assert "x-MULTI" in h and "Missing" not in h and 3 not in h
    assert h.keys() == ["host", "x-multi"]
    assert len(h) == 3


def test_headers_order_and_spelling_are_kept():
    h = Headers()
    h.add("B", "1")
    h.add("a", "2")
    h.add("b", "3")
    assert list(h) == [("B", "1"), ("a", "2"), ("b", "3")]
    assert h.items() == [("B", "1"), ("a", "2"), ("b", "3")]
    assert h.serialize() == b"B: 1\r\na: 2\r\nb: 3\r\n"


def test_headers_setitem_replaces_and_delitem_removes_all():
    h = Headers([("A", "1"), ("B", "x"), ("a", "2")])
    h["A"] = "3"
    assert h.items() == [("B", "x"), ("A", "3")]
    del h["b"]
    assert h.items() == [("A", "3")]
    with pytest.raises(KeyError):
        del h["b"]


@pytest.mark.parametrize(
    "source",
    [{"A": "1", "B": "2"}, [("A", "1"), ("B", "2")], Headers([("A", "1"), ("B", "2")])],
    ids=["dict", "pairs", "headers"],
)
def test_headers_constructors(source):
    assert Headers(source) == Headers(A="1", B="2")


def test_headers_equality_ignores_name_case_but_not_order():
    assert Headers([("a", "1")]) == Headers([("A", "1")])
    assert Headers([("a", "1"), ("b", "2")]) != Headers([("b", "2"), ("a", "1")])
    assert Headers([("a", "1")]) != Headers([("a", "2")])


# (id, change): each change is seen by a lookup made before it (the name index is rebuilt).
HEADER_CHANGES = [
    ("add", lambda h: h.add("x-new", "1"), {"x-new": ["1"], "a": ["1", "2"]}),
    ("setitem", lambda h: h.__setitem__("A", "3"), {"a": ["3"], "x-new": []}),
    ("delitem", lambda h: h.__delitem__("a"), {"a": [], "b": ["v"]}),
    ("update", lambda h: h.update(Headers({"A": "9"})), {"a": ["1", "2", "9"]}),
    ("update-pairs", lambda h: h.update([("B", "w")]), {"b": ["v", "w"]}),
    ("setstate", lambda h: h.__setstate__([("C", "c")]), {"a": [], "c": ["c"]}),
]


@pytest.mark.parametrize(
    "change, expected", [c[1:] for c in HEADER_CHANGES], ids=[c[0] for c in HEADER_CHANGES]
)
def test_headers_lookups_follow_changes(change, expected):
    headers = Headers([("A", "1"), ("b", "v"), ("a", "2")])
    assert headers.get_all("A") == ["1", "2"] and "B" in headers and headers.keys() == ["a", "b"]
    change(headers)
    for name, values in expected.items():
        assert headers.get_all(name.upper()) == values
        assert (name in headers) is bool(values)
    assert headers.keys() == list(dict.fromkeys(n.lower() for n, _ in headers.items()))


def test_headers_get_all_returns_a_copy():
    headers = Headers([("A", "1")])
    headers.get_all("a").append("2")
    assert headers.get_all("a") == ["1"]


def test_headers_copy_is_independent_and_pickles():
    h = Headers(A="1")
    c = h.copy()
    c.add("B", "2")
    assert "B" not in h
    assert pickle.loads(pickle.dumps(c)) == c


@pytest.mark.parametrize(
    "name, value",
    [
        ("X-Evil", "a\r\nInjected: yes"),
        ("X-Evil", "a\nb"),
        ("X-Evil", "a\x00b"),
        ("X-Evil", "a\x7fb"),
        ("Bad Name", "v"),
        ("Bad:Name", "v"),
        ("", "v"),
        ("Ñame", "v"),
    ],
    ids=["crlf", "lf", "nul", "del", "space-in-name", "colon-in-name", "empty-name", "non-ascii-name"],
)
def test_headers_refuse_injection(name, value):
    h = Headers()
    with pytest.raises(ValueError):
        h.add(name, value)
    with pytest.raises(ValueError):
        h[name] = value
    assert len(h) == 0


def test_headers_refuse_non_str_values():
    with pytest.raises(TypeError):
        Headers().add("A", 1)  # type: ignore[arg-type]


# --- Request and Response objects ----------------------------------------------------


def test_request_serialize():
    req = Request("/chat?x=1", Headers([("Host", "example.com"), ("Upgrade", "websocket")]))
    assert req.serialize() == (
        b"GET /chat?x=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\r\n"
    )


@pytest.mark.parametrize("path", ["/a b", "/\r\nX: y", "/é"], ids=["space", "crlf", "non-ascii"])
def test_request_serialize_refuses_bad_targets(path):
    with pytest.raises((ValueError, UnicodeEncodeError)):
        Request(path).serialize()


def test_response_defaults_and_serialize():
    resp = Response(404, headers={"Content-Length": "2"}, body=b"no")
    assert resp.reason_phrase == "Not Found" and resp.status == 404
    assert resp.serialize() == b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"
    assert Response(599).reason_phrase == ""
    with pytest.raises(ValueError):
        Response(42)


# --- RequestParser ---------------------------------------------------------------

CHROME_LIKE = (
    b"GET /chat?room=1 HTTP/1.1\r\n"
    b"Host: example.com:8000\r\n"
    b"Connection: Upgrade\r\n"
    b"Upgrade: websocket\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"X-Spaces:   padded value \t\r\n"
    b"X-Empty:\r\n"
    b"X-Latin1: caf\xe9\r\n"
    b"\r\n"
)


def test_request_parser_whole_and_byte_by_byte():
    for pieces in ([CHROME_LIKE], byte_by_byte(CHROME_LIKE)):
        parser = RequestParser()
        results = [parser.feed(p) for p in pieces]
        assert results[:-1] == [None] * (len(pieces) - 1)
        req = results[-1]
        assert req.method == "GET" and req.path == "/chat?room=1" and req.version == "HTTP/1.1"
        assert req.headers["host"] == "example.com:8000"
        assert req.headers["X-Spaces"] == "padded value"
        assert req.headers["X-Empty"] == ""
        assert req.headers["X-Latin1"] == "café"
        assert parser.trailing == b""


@pytest.mark.parametrize("split", range(0, len(CHROME_LIKE) + 1, 7))
def test_request_parser_keeps_trailing_bytes(split):
    frames = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
    data = CHROME_LIKE + frames
    parser = RequestParser()
    req = parser.feed(data[:split]) or parser.feed(data[split:])
    assert req is not None and req.path == "/chat?room=1"
    assert parser.trailing == (frames if split <= len(CHROME_LIKE) else data[split:])


def test_request_parser_accepts_content_length_zero():
    req = RequestParser().feed(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    assert req.headers["Content-Length"] == "0"


def _head(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\r\n" for line in lines) + b"\r\n"


# (id, raw request, HTTP status, message fragment)
BAD_REQUESTS = [
    ("bare-lf", b"GET / HTTP/1.1\nHost: a\n\n", 400, "LF instead of CRLF"),
    ("bare-lf-in-headers", b"GET / HTTP/1.1\r\nHost: a\n\r\n", 400, "LF instead of CRLF"),
    ("empty-request-line", _head([b""]), 400, "invalid request line"),
    ("two-parts", _head([b"GET /"]), 400, "invalid request line"),
    ("four-parts", _head([b"GET / HTTP/1.1 x"]), 400, "invalid request line"),
    ("double-space", _head([b"GET  / HTTP/1.1"]), 400, "invalid request line"),
    ("bad-method", _head([b"G(T / HTTP/1.1"]), 400, "invalid method"),
    ("absolute-target", _head([b"GET http://a/ HTTP/1.1"]), 400, "invalid request target"),
    ("asterisk-target", _head([b"OPTIONS * HTTP/1.1"]), 400, "invalid request target"),
    ("non-ascii-target", _head([b"GET /\xff HTTP/1.1"]), 400, "invalid request target"),
    ("bad-version", _head([b"GET / HTTP/1"]), 400, "invalid HTTP version"),
    ("lowercase-version", _head([b"GET / http/1.1"]), 400, "invalid HTTP version"),
    ("http2", _head([b"GET / HTTP/2.0"]), 505, "unsupported HTTP version HTTP/2.0"),
    ("no-colon", _head([b"GET / HTTP/1.1", b"Host a"]), 400, "without a colon"),
    ("space-before-colon", _head([b"GET / HTTP/1.1", b"Host : a"]), 400, "invalid header name"),
    ("empty-name", _head([b"GET / HTTP/1.1", b": a"]), 400, "invalid header name"),
    ("obs-fold", _head([b"GET / HTTP/1.1", b"X: a", b" b"]), 400, "obsolete line folding"),
    ("control-in-value", _head([b"GET / HTTP/1.1", b"X: a\x01b"]), 400, "invalid value"),
    ("nul-in-value", _head([b"GET / HTTP/1.1", b"X: a\x00b"]), 400, "invalid value"),
    ("cr-in-value", _head([b"GET / HTTP/1.1", b"X: a\rb"]), 400, "invalid value"),
    ("body-content-length", _head([b"GET / HTTP/1.1", b"Content-Length: 5"]), 400, "request with a body"),
    ("body-chunked", _head([b"GET / HTTP/1.1", b"Transfer-Encoding: chunked"]), 400, "request with a body"),
    (
        "request-line-too-long",
        _head([b"GET /" + b"a" * MAX_LINE + b" HTTP/1.1"]),
        414,
        f"start line longer than {MAX_LINE} bytes",
    ),
    (
        "header-line-too-long",
        _head([b"GET / HTTP/1.1", b"X: " + b"a" * MAX_LINE]),
        431,
        f"header line longer than {MAX_LINE} bytes",
    ),
    (
        "too-many-headers",
        _head([b"GET / HTTP/1.1"] + [b"X-%d: v" % i for i in range(MAX_HEADERS + 1)]),
        431,
        f"more than {MAX_HEADERS} headers",
    ),
    (
        "headers-too-large",
        _head([b"GET / HTTP/1.1"] + [b"X-%d: " % i + b"v" * 8000 for i in range(9)]),
        431,
        f"headers exceed {MAX_HEADER_BYTES} bytes",
    ),
]


@pytest.mark.parametrize(
    "raw, status, message", [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS]
)
@pytest.mark.parametrize("how", ["whole", "bytewise"])
def test_request_parser_errors(raw, status, message, how):
    parser = RequestParser()
    with pytest.raises(InvalidMessage) as info:
        for piece in [raw] if how == "whole" else byte_by_byte(raw):
            parser.feed(piece)
    assert info.value.http_status == status
    assert message in str(info.value)
    # The parser stays failed.
    with pytest.raises(InvalidMessage) as again:
        parser.feed(b"\r\n")
    assert again.value is info.value


def test_request_parser_limit_detected_without_a_newline():
    """A line longer than the limit fails before its end arrives."""
    parser = RequestParser()
    with pytest.raises(InvalidMessage) as info:
        parser.feed(b"GET /" + b"a" * (MAX_LINE + 10))
    assert info.value.http_status == 414


def test_request_parser_custom_limits():
    parser = RequestParser(max_line=20, max_headers=1, max_header_bytes=100)
    assert parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n") is not None
    with pytest.raises(InvalidMessage, match="more than 1 headers"):
        RequestParser(max_headers=1).feed(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n")
    with pytest.raises(InvalidMessage, match="headers exceed 30 bytes"):
        RequestParser(max_header_bytes=30).feed(b"GET / HTTP/1.1\r\nA: 1\r\nB: 22222222\r\n\r\n")


def test_request_parser_at_exact_limits():
    line = b"GET /" + b"a" * (MAX_LINE - len(b"GET / HTTP/1.1")) + b" HTTP/1.1"
    assert len(line) == MAX_LINE
    raw = _head([line] + [b"X-%d: v" % i for i in range(MAX_HEADERS)])
    req = RequestParser().feed(raw)
    assert len(req.headers) == MAX_HEADERS


def test_request_parser_refuses_feeding_after_completion():
    parser = RequestParser()
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    with pytest.raises(RuntimeError):
        parser.feed(b"more")


# --- parse_request: the one-pass parse of a request that came whole ---------------

# (id, raw request): requests that the one-pass parse takes; it must give what the
# incremental parser gives when fed byte by byte (which never takes the one-pass path).
ONE_PASS_REQUESTS = [
    ("chrome-like", CHROME_LIKE),
    ("with-frames-after", CHROME_LIKE + b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"),
    ("no-headers", b"GET / HTTP/1.1\r\n\r\n"),
    ("http10", b"GET /x HTTP/1.0\r\nHost: a\r\n\r\n"),
    ("other-method", b"PATCH /x HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("repeated-and-cased", b"GET / HTTP/1.1\r\nhost: a\r\nX-A: 1\r\nx-a: 2\r\nHOST: b\r\n\r\n"),
    ("tabs-and-colons", b"GET / HTTP/1.1\r\nX:\t a:b: c \t\r\nY::\r\n\r\n"),
    ("obs-text", b"GET / HTTP/1.1\r\nX: \x80\xff\xe9t\xe9\r\n\r\n"),
    ("every-tchar", b"GET / HTTP/1.1\r\n!#$%&'*+-.^_`|~09AZaz: v\r\n\r\n"),
    ("at-exact-limits", _head([b"GET / HTTP/1.1"] + [b"X-%d: v" % i for i in range(MAX_HEADERS)])),
]


@pytest.mark.parametrize("raw", [c[1] for c in ONE_PASS_REQUESTS], ids=[c[0] for c in ONE_PASS_REQUESTS])
def test_parse_request_matches_the_incremental_parser(raw):
    parsed = parse_request(raw)
    assert parsed is not None
    request, trailing = parsed
    parser = RequestParser()
    expected = [parser.feed(piece) for piece in byte_by_byte(raw[: raw.index(b"\r\n\r\n") + 4])][-1]
    assert (request.method, request.path, request.version) == (
        expected.method,
        expected.path,
        expected.version,
    )
    assert list(request.headers) == list(expected.headers)
    assert trailing == raw[raw.index(b"\r\n\r\n") + 4 :]
    # Through RequestParser.feed, which takes the one-pass path for a whole request.
    whole = RequestParser()
    assert list(whole.feed(raw).headers) == list(expected.headers) and whole.trailing == trailing


@pytest.mark.parametrize("raw", [c[1] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS])
def test_parse_request_leaves_every_bad_request_to_the_incremental_parser(raw):
    """It never takes what the incremental parser refuses: that one reports the error."""
    assert parse_request(raw) is None


# (id, raw, limits): the one-pass parse declines, and the incremental parser decides.
DECLINED = [
    ("incomplete", b"GET / HTTP/1.1\r\nHost: a\r\n", {}),
    ("content-length-zero", b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", {}),
    ("too-many-headers", b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", {"max_headers": 1}),
    ("too-many-bytes", b"GET / HTTP/1.1\r\nA: 1\r\n\r\n", {"max_header_bytes": 23}),
    # Lines within the limit, but a head longer than it: it cannot tell at once.
    ("head-longer-than-a-line", b"GET / HTTP/1.1\r\nA: 1\r\n\r\n", {"max_line": 14}),
]


@pytest.mark.parametrize("raw, limits", [c[1:] for c in DECLINED], ids=[c[0] for c in DECLINED])
def test_parse_request_declines(raw, limits):
    assert parse_request(raw, **limits) is None


def test_parse_request_at_exact_byte_limits():
    raw = b"GET / HTTP/1.1\r\nA: 1\r\n\r\n"
    assert len(raw) == 24
    assert parse_request(raw, max_header_bytes=24, max_line=len(raw) - 4) is not None
    assert RequestParser(max_header_bytes=24).feed(raw) is not None
    assert RequestParser(max_line=14).feed(raw) is not None
    with pytest.raises(InvalidMessage, match="headers exceed 23 bytes"):
        RequestParser(max_header_bytes=23).feed(raw)


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_parse_request_takes_any_bytes_like_object(kind):
    request, trailing = parse_request(kind(CHROME_LIKE + b"x"))
    assert request.headers["X-Latin1"] == "café" and trailing == b"x" and type(trailing) is bytes


# --- ResponseParser --------------------------------------------------------------

SWITCHING = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
)
FRAME = b"\x81\x05Hello"

# (id, raw response, status, reason, body, trailing)
RESPONSES = [
    ("101-with-frames", SWITCHING + FRAME, 101, "Switching Protocols", b"", FRAME),
    ("101-empty-reason", b"HTTP/1.1 101 \r\nUpgrade: websocket\r\n\r\n", 101, "", b"", b""),
    ("101-no-reason", b"HTTP/1.1 101\r\n\r\n", 101, "", b"", b""),
    (
        "403-content-length",
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\nnope!\n",
        403,
        "Forbidden",
        b"nope!\n",
        b"",
    ),
    (
        "400-chunked",
        (
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n"
        ),
        400,
        "Bad Request",
        b"hello, world",
        b"",
    ),
    ("204-no-body", b"HTTP/1.1 204 No Content\r\n\r\n", 204, "No Content", b"", b""),
    ("http10-error", b"HTTP/1.0 503 Busy\r\nContent-Length: 0\r\n\r\n", 503, "Busy", b"", b""),
]


@pytest.mark.parametrize(
    "raw, status, reason, body, trailing", [c[1:] for c in RESPONSES], ids=[c[0] for c in RESPONSES]
)
@pytest.mark.parametrize("how", ["whole", "bytewise"])
def test_response_parser(raw, status, reason, body, trailing, how):
    parser = ResponseParser()
    result = None
    for piece in [raw] if how == "whole" else byte_by_byte(raw):
        if result is None:
            result = parser.feed(piece)
        else:  # after a 101, the rest is WebSocket data
            parser.trailing += piece
    assert result is not None
    assert (result.status_code, result.reason_phrase, result.body) == (status, reason, body)
    assert parser.trailing == trailing


def test_response_body_until_eof():
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 500 Oops\r\n\r\nbody ") is None
    assert parser.feed(b"until eof") is None
    resp = parser.feed_eof()
    assert resp.status_code == 500 and resp.body == b"body until eof"


@pytest.mark.parametrize(
    "raw",
    [b"", b"HTTP/1.1 101 Switching", b"HTTP/1.1 403 Forbidden\r\nContent-Length: 10\r\n\r\nshort"],
    ids=["nothing", "inside-status-line", "short-body"],
)
def test_response_incomplete_at_eof(raw):
    parser = ResponseParser()
    assert parser.feed(raw) is None
    with pytest.raises(InvalidMessage, match="connection closed before the response was complete"):
        parser.feed_eof()


# (id, raw, message fragment)
BAD_RESPONSES = [
    ("not-http", b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "invalid status line"),
    ("bad-version", b"HTTP/x 101 OK\r\n\r\n", "invalid HTTP version"),
    ("short-status", b"HTTP/1.1 10 OK\r\n\r\n", "invalid status code"),
    ("letters-status", b"HTTP/1.1 1O1 OK\r\n\r\n", "invalid status code"),
    ("bare-lf", b"HTTP/1.1 101 OK\n\n", "LF instead of CRLF"),
    ("bad-header", b"HTTP/1.1 101 OK\r\nNo colon\r\n\r\n", "without a colon"),
    ("bad-content-length", b"HTTP/1.1 400 X\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length"),
    # latin-1 superscript digits: str.isdigit() says yes, int() says no (found by the fuzzer)
    ("superscript-content-length", b"HTTP/1.1 400 X\r\nContent-Length: \xb9\xb94\r\n\r\n", "invalid Content-Length"),
    (
        "conflicting-content-length",
        b"HTTP/1.1 400 X\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "invalid Content-Length",
    ),
    ("bad-chunk-size", b"HTTP/1.1 400 X\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "invalid chunk size"),
    (
        "chunk-without-crlf",
        b"HTTP/1.1 400 X\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc",
        "not followed by CRLF",
    ),
    ("body-too-large", b"HTTP/1.1 400 X\r\nContent-Length: 2000000\r\n\r\n", "too large"),
]


@pytest.mark.parametrize("raw, message", [c[1:] for c in BAD_RESPONSES], ids=[c[0] for c in BAD_RESPONSES])
def test_response_parser_errors(raw, message):
    with pytest.raises(InvalidMessage, match=message):
        ResponseParser().feed(raw)


def test_response_body_limit_until_eof():
    parser = ResponseParser(max_body=10)
    parser.feed(b"HTTP/1.1 500 X\r\n\r\n0123456789")
    with pytest.raises(InvalidMessage, match="larger than 10 bytes"):
        parser.feed(b"!")


def test_invalid_message_pickles_with_status():
    exc = InvalidMessage("boom", http_status=431)
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is InvalidMessage and str(copy) == "boom" and copy.http_status == 431

"""The opening handshake (RFC 6455 section 4): keys and header grammars, the
server answering real browser requests and bad ones, its hooks, and the client
checking responses. Interoperability with the ``websockets`` library is in
test_protocol_interop.py."""

from __future__ import annotations

import base64

import pytest

from fastws.events import Close, Ping
from fastws.exceptions import (
    HeaderLineTooLong,
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderFormat,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidMethod,
    InvalidOrigin,
    InvalidProtocol,
    InvalidState,
    InvalidStatus,
    InvalidUpgrade,
    InvalidURI,
    NegotiationError,
    RequestLineTooLong,
)
from fastws.extensions import ClientExtensionFactory, Extension, ServerExtensionFactory
from fastws.handshake import (
    accept_key,
    build_extension_list,
    generate_key,
    negotiate_server_extensions,
    parse_extension_list,
    parse_token_list,
    parse_uri,
)
from fastws.http11 import Headers, Request, Response, ResponseParser
from fastws.protocol import CLOSED, CONNECTING, OPEN, ClientProtocol, ServerProtocol

from protocol_helpers import TEXT, byte_by_byte, make_frame

# --- keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, accept",
    [
        ("dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),  # RFC 6455 section 1.3
        ("x3JJHMbDL1EzLkh9GBhXDw==", "HSmrc0sMlYUkAGmm5OPpG2HaGWk="),
    ],
)
def test_accept_key(key, accept):
    assert accept_key(key) == accept


# Sec-WebSocket-Key values: accepted exactly when they are the base64 of 16 bytes,
# as base64.b64decode(key, validate=True) decodes them.
KEYS = [
    "dGhlIHNhbXBsZSBub25jZQ==",
    "AAAAAAAAAAAAAAAAAAAAAA==",
    "/+/+/+/+/+/+/+/+/+/+/+==",
    "AAAAAAAAAAAAAAAAAAAAAB==",  # padding bits set: b64decode takes it
    "AAAAAAAAAAAAAAAAAAAAAAA=",  # 17 bytes
    "AAAAAAAAAAAAAAAAAAAAAAAA",  # 18 bytes
    "AAAAAAAAAAAAAAAAAAAAAA=",
    "AAAAAAAAAAAAAAAAAAAAAA",
    "AAAAAAAAAAAAAAAAAAAAA===",
    "AAAAAAAAAA==AAAAAAAAAA==",
    "AAAAAAAAAAAAAAAAAAAAA-==",  # urlsafe alphabet
    "AAAAAAAAAAAAAAAAAAAAAé==",
    "AAAAAAAAAAA AAAAAAAAAA==",
    "",
]


@pytest.mark.parametrize("key", KEYS)
def test_key_check_matches_base64(key):
    try:
        valid = len(base64.b64decode(key.encode("ascii"), validate=True)) == 16
    except (ValueError, UnicodeEncodeError):
        valid = False
    server = ServerProtocol()
    server.receive_data(request_bytes(replace={"Sec-WebSocket-Key": key}))
    response = parse_response(server.data_to_send())
    assert response.status_code == (101 if valid else 400)
    if valid:
        assert response.headers["Sec-WebSocket-Accept"] == accept_key(key)


# Upgrade and Connection values: those that name websocket and upgrade are
# accepted, in any case and among other tokens; the others get 426 (or 400
# when not a token list).
UPGRADE_VALUES = [
    ("Upgrade", "websocket", 101),
    ("Upgrade", "WebSocket", 101),
    ("Upgrade", "h2c, websocket", 101),
    ("Upgrade", "websocket/13", 426),
    ("Upgrade", "websockets", 426),
    ("Upgrade", "", 426),
    ("Connection", "Upgrade", 101),
    ("Connection", "upgrade", 101),
    ("Connection", "keep-alive, Upgrade", 101),
    ("Connection", "Upgrade, keep-alive", 101),
    ("Connection", "keep-alive,upgrade", 101),
    ("Connection", "close, te, UPGRADE", 101),
    ("Connection", "Upgraded", 426),
    ("Connection", "keep-alive", 426),
    ("Connection", "Up grade", 400),
]


@pytest.mark.parametrize("name, value, status", UPGRADE_VALUES)
def test_upgrade_and_connection_values(name, value, status):
    server = ServerProtocol()
    server.receive_data(request_bytes(replace={name: value}))
    assert parse_response(server.data_to_send()).status_code == status


def test_upgrade_and_connection_split_across_lines():
    server = ServerProtocol()
    server.receive_data(
        request_bytes(
            replace={"Upgrade": "h2c", "Connection": "keep-alive"},
            extra=[("Upgrade", "websocket"), ("connection", "Upgrade")],
        )
    )
    assert parse_response(server.data_to_send()).status_code == 101


def test_generate_key_is_fresh_base64_of_16_bytes():
    keys = {generate_key() for _ in range(100)}
    assert len(keys) == 100
    for key in keys:
        assert len(key) == 24 and len(base64.b64decode(key, validate=True)) == 16


# --- URIs ----------------------------------------------------------------------------

# (uri, secure, host, port, resource_name, Host header, user_info)
URIS = [
    ("ws://example.com", False, "example.com", 80, "/", "example.com", None),
    ("ws://example.com/", False, "example.com", 80, "/", "example.com", None),
    ("wss://example.com", True, "example.com", 443, "/", "example.com", None),
    ("ws://example.com:8765/chat?a=1&b", False, "example.com", 8765, "/chat?a=1&b", "example.com:8765", None),
    ("wss://example.com:443/x", True, "example.com", 443, "/x", "example.com", None),
    ("ws://example.com:443/x", False, "example.com", 443, "/x", "example.com:443", None),
    ("WS://EXAMPLE.com/A", False, "example.com", 80, "/A", "example.com", None),
    ("ws://[::1]:9000/", False, "::1", 9000, "/", "[::1]:9000", None),
    ("ws://[::1]/", False, "::1", 80, "/", "[::1]", None),
    ("ws://127.0.0.1:1/p", False, "127.0.0.1", 1, "/p", "127.0.0.1:1", None),
    ("ws://user:p%40ss@host/", False, "host", 80, "/", "host", ("user", "p@ss")),
    ("ws://host/a b/é", False, "host", 80, "/a%20b/%C3%A9", "host", None),
    ("ws://bücher.example/", False, "xn--bcher-kva.example", 80, "/", "xn--bcher-kva.example", None),
]


@pytest.mark.parametrize("uri, secure, host, port, resource, host_header, user_info", URIS, ids=[u[0] for u in URIS])
def test_parse_uri(uri, secure, host, port, resource, host_header, user_info):
    parsed = parse_uri(uri)
    assert (parsed.secure, parsed.host, parsed.port, parsed.resource_name) == (secure, host, port, resource)
    assert parsed.host_header == host_header
    assert parsed.user_info == user_info


@pytest.mark.parametrize(
    "uri, reason",
    [
        ("http://example.com/", "scheme"),
        ("example.com", "scheme"),
        ("ws:///path", "no host"),
        ("ws://example.com/#frag", "fragment"),
        ("ws://example.com:99999/", "out of range"),
    ],
)
def test_parse_uri_errors(uri, reason):
    with pytest.raises(InvalidURI, match=reason) as info:
        parse_uri(uri)
    assert isinstance(info.value, ValueError)


# --- header grammars -----------------------------------------------------------------

TOKEN_LISTS = [
    ("websocket", ["websocket"]),
    ("keep-alive, Upgrade", ["keep-alive", "Upgrade"]),
    ("  a ,b\t,  c  ", ["a", "b", "c"]),
    (",a,,b,", ["a", "b"]),
    ("", []),
    (" , ", []),
]


@pytest.mark.parametrize("value, tokens", TOKEN_LISTS)
def test_parse_token_list(value, tokens):
    assert parse_token_list(value) == tokens


@pytest.mark.parametrize("value", ["a b", "a;b", 'a"', "a, b c", "é"])
def test_parse_token_list_errors(value):
    with pytest.raises(InvalidHeader, match="is not a token"):
        parse_token_list(value, "Connection")


def test_parse_token_list_with_slash():
    assert parse_token_list("websocket/13, h2c", "Upgrade", allow_slash=True) == ["websocket/13", "h2c"]
    with pytest.raises(InvalidHeader):
        parse_token_list("websocket/", "Upgrade", allow_slash=True)


EXTENSION_LISTS = [
    ("permessage-deflate", [("permessage-deflate", [])]),
    (
        "permessage-deflate; client_max_window_bits",
        [("permessage-deflate", [("client_max_window_bits", None)])],
    ),
    (
        'permessage-deflate; client_max_window_bits="10" ; server_no_context_takeover, x-y;a=1',
        [
            ("permessage-deflate", [("client_max_window_bits", "10"), ("server_no_context_takeover", None)]),
            ("x-y", [("a", "1")]),
        ],
    ),
    ("a , , b", [("a", []), ("b", [])]),
    ('a; p = "v\\1"', [("a", [("p", "v1")])]),
    ("", []),
]


@pytest.mark.parametrize("value, parsed", EXTENSION_LISTS)
def test_parse_extension_list(value, parsed):
    assert parse_extension_list(value) == parsed


@pytest.mark.parametrize(
    "value, reason",
    [
        ("a;", "expected a parameter name"),
        ("a; =1", "expected a parameter name"),
        ("a; p=", "expected a parameter value"),
        ('a; p="unterminated', "unterminated quoted string"),
        ('a; p="not a token"', "is not a token"),
        ("a b", "unexpected"),
        (";a", "expected an extension name"),
    ],
)
def test_parse_extension_list_errors(value, reason):
    with pytest.raises(InvalidHeader, match=reason):
        parse_extension_list(value)


def test_build_extension_list_round_trip():
    exts = [("permessage-deflate", [("client_max_window_bits", None), ("server_max_window_bits", "10")]), ("x", [])]
    value = build_extension_list(exts)
    assert value == "permessage-deflate; client_max_window_bits; server_max_window_bits=10, x"
    assert parse_extension_list(value) == exts


# --- real browser requests -------------------------------------------------------

# Header sets as Chrome 120 and Firefox 121 send them (order and spelling kept).
CHROME_KEY = "x3JJHMbDL1EzLkh9GBhXDw=="
CHROME_REQUEST = (
    b"GET /chat HTTP/1.1\r\n"
    b"Host: localhost:8765\r\n"
    b"Connection: Upgrade\r\n"
    b"Pragma: no-cache\r\n"
    b"Cache-Control: no-cache\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    b" Chrome/120.0.0.0 Safari/537.36\r\n"
    b"Upgrade: websocket\r\n"
    b"Origin: http://localhost:8000\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Accept-Language: en-US,en;q=0.9\r\n"
    b"Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\n"
    b"\r\n"
)
FIREFOX_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
FIREFOX_REQUEST = (
    b"GET /chat?token=abc HTTP/1.1\r\n"
    b"Host: localhost:8765\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0\r\n"
    b"Accept: */*\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Origin: http://localhost:8000\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Connection: keep-alive, Upgrade\r\n"
    b"Sec-Fetch-Dest: empty\r\n"
    b"Sec-Fetch-Mode: websocket\r\n"
    b"Sec-Fetch-Site: same-site\r\n"
    b"Pragma: no-cache\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Upgrade: websocket\r\n"
    b"\r\n"
)
BROWSERS = [
    ("chrome", CHROME_REQUEST, CHROME_KEY, "/chat"),
    ("firefox", FIREFOX_REQUEST, FIREFOX_KEY, "/chat?token=abc"),
]


def parse_response(data: bytes) -> Response:
    parser = ResponseParser()
    response = parser.feed(data)
    assert response is not None and parser.trailing == b""
    return response


@pytest.mark.parametrize("raw, key, path", [b[1:] for b in BROWSERS], ids=[b[0] for b in BROWSERS])
def test_browser_request_is_accepted(raw, key, path):
    server = ServerProtocol()
    server.receive_data(raw)
    (request,) = server.events_received()
    assert isinstance(request, Request) and request is server.request and request.path == path
    response = parse_response(server.data_to_send())
    assert response.status_code == 101 and response.reason_phrase == "Switching Protocols"
    assert response.headers["Upgrade"] == "websocket"
    assert response.headers["Connection"] == "Upgrade"
    assert response.headers["Sec-WebSocket-Accept"] == accept_key(key)
    # permessage-deflate was offered but is not supported: not in the answer.
    assert "Sec-WebSocket-Extensions" not in response.headers
    assert "Sec-WebSocket-Protocol" not in response.headers
    assert server.state is OPEN and server.error is None and server.subprotocol is None
    assert server.response == response


@pytest.mark.parametrize("raw", [b[1] for b in BROWSERS], ids=[b[0] for b in BROWSERS])
@pytest.mark.parametrize(
    "origins, status",
    [
        (["http://localhost:8000"], 101),
        (["https://example.com", "http://localhost:8000"], 101),
        (["https://example.com"], 403),
        ([None], 403),
        ([], 403),
        (None, 101),
    ],
)
def test_browser_origin_allow_list(raw, origins, status):
    server = ServerProtocol(origins=origins)
    server.receive_data(raw)
    response = parse_response(server.data_to_send())
    assert response.status_code == status
    if status == 403:
        assert type(server.error) is InvalidOrigin
        assert b"invalid Origin header: 'http://localhost:8000' (not allowed)" in response.body
        assert server.state is CLOSED and server.should_close_transport()


def test_subprotocol_server_preference():
    server = ServerProtocol(subprotocols=["superchat", "chat"])
    server.receive_data(CHROME_REQUEST)
    response = parse_response(server.data_to_send())
    assert response.headers["Sec-WebSocket-Protocol"] == "superchat"
    assert server.subprotocol == "superchat"


def test_subprotocol_no_match_answers_without_one():
    server = ServerProtocol(subprotocols=["v2.proto"])
    server.receive_data(CHROME_REQUEST)
    response = parse_response(server.data_to_send())
    assert response.status_code == 101 and "Sec-WebSocket-Protocol" not in response.headers
    assert server.subprotocol is None


def test_select_subprotocol_hook():
    seen = []

    def select(request, offered):
        seen.append((request.path, offered))
        return offered[-1]

    server = ServerProtocol(select_subprotocol=select, subprotocols=["chat"])
    server.receive_data(CHROME_REQUEST)
    assert parse_response(server.data_to_send()).headers["Sec-WebSocket-Protocol"] == "superchat"
    assert seen == [("/chat", ["chat", "superchat"])]


def test_select_subprotocol_hook_refuses_with_400():
    def select(request, offered):
        raise NegotiationError("no acceptable subprotocol")

    server = ServerProtocol(select_subprotocol=select)
    server.receive_data(CHROME_REQUEST)
    response = parse_response(server.data_to_send())
    assert response.status_code == 400 and b"no acceptable subprotocol" in response.body
    assert type(server.error) is NegotiationError


def test_select_subprotocol_hook_returning_something_not_offered_is_500():
    server = ServerProtocol(select_subprotocol=lambda request, offered: "mine")
    server.receive_data(CHROME_REQUEST)
    response = parse_response(server.data_to_send())
    assert response.status_code == 500
    assert b"internal error" in response.body and b"mine" not in response.body
    assert type(server.error) is ValueError and "'mine'" in str(server.error)


# --- bad handshakes ------------------------------------------------------------------


def request_bytes(
    *, method="GET", path="/", version="HTTP/1.1", drop=(), extra=(), replace=None
) -> bytes:
    """A valid handshake request, then edited: ``drop`` header names, ``extra``
    (name, value) appended, ``replace`` {name: value}."""
    headers = [
        ("Host", "example.com"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", FIREFOX_KEY),
        ("Sec-WebSocket-Version", "13"),
    ]
    replace = replace or {}
    lines = [f"{method} {path} {version}"]
    for name, value in headers:
        if name in drop:
            continue
        lines.append(f"{name}: {replace.get(name, value)}")
    lines += [f"{name}: {value}" for name, value in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# (id, raw request, status, exception type, text in the body, headers the response must have)
BAD_HANDSHAKES = [
    ("post", request_bytes(method="POST"), 405, InvalidMethod, "method POST is not allowed", {"Allow": "GET"}),
    ("http10", request_bytes(version="HTTP/1.0"), 400, InvalidHandshake, "HTTP/1.0 request", {}),
    ("http2", request_bytes(version="HTTP/2.0"), 505, InvalidProtocol, "unsupported HTTP version", {}),
    ("no-host", request_bytes(drop=["Host"]), 400, InvalidHeader, "missing Host header", {}),
    ("two-hosts", request_bytes(extra=[("Host", "other")]), 400, InvalidHeader, "more than one value", {}),
    (
        "no-upgrade",
        request_bytes(drop=["Upgrade"]),
        426,
        InvalidUpgrade,
        "missing Upgrade header",
        {"Upgrade": "websocket"},
    ),
    (
        "upgrade-h2c",
        request_bytes(replace={"Upgrade": "h2c"}),
        426,
        InvalidUpgrade,
        "invalid Upgrade header: 'h2c'",
        {},
    ),
    ("upgrade-garbage", request_bytes(replace={"Upgrade": "web socket"}), 400, InvalidHeaderFormat, "not a token", {}),
    ("no-connection", request_bytes(drop=["Connection"]), 426, InvalidUpgrade, "missing Connection header", {}),
    (
        "connection-keep-alive",
        request_bytes(replace={"Connection": "keep-alive"}),
        426,
        InvalidUpgrade,
        "invalid Connection header",
        {},
    ),
    ("no-key", request_bytes(drop=["Sec-WebSocket-Key"]), 400, InvalidHeader, "missing Sec-WebSocket-Key header", {}),
    (
        "key-not-base64",
        request_bytes(replace={"Sec-WebSocket-Key": "not base64!"}),
        400,
        InvalidHeaderValue,
        "not the base64 of 16 bytes",
        {},
    ),
    (
        "key-15-bytes",
        request_bytes(replace={"Sec-WebSocket-Key": base64.b64encode(b"x" * 15).decode()}),
        400,
        InvalidHeaderValue,
        "not the base64 of 16 bytes",
        {},
    ),
    (
        "key-17-bytes",
        request_bytes(replace={"Sec-WebSocket-Key": base64.b64encode(b"x" * 17).decode()}),
        400,
        InvalidHeaderValue,
        "not the base64 of 16 bytes",
        {},
    ),
    (
        "key-without-padding",
        request_bytes(replace={"Sec-WebSocket-Key": FIREFOX_KEY.rstrip("=")}),
        400,
        InvalidHeaderValue,
        "not the base64",
        {},
    ),
    (
        "two-keys",
        request_bytes(extra=[("Sec-WebSocket-Key", CHROME_KEY)]),
        400,
        InvalidHeader,
        "more than one value",
        {},
    ),
    (
        "no-version",
        request_bytes(drop=["Sec-WebSocket-Version"]),
        426,
        InvalidUpgrade,
        "missing Sec-WebSocket-Version header",
        {"Sec-WebSocket-Version": "13"},
    ),
    (
        "version-8",
        request_bytes(replace={"Sec-WebSocket-Version": "8"}),
        426,
        InvalidUpgrade,
        "only version 13",
        {"Sec-WebSocket-Version": "13", "Upgrade": "websocket"},
    ),
    (
        "two-versions",
        request_bytes(extra=[("Sec-WebSocket-Version", "8")]),
        426,
        InvalidUpgrade,
        "invalid Sec-WebSocket-Version",
        {"Sec-WebSocket-Version": "13"},
    ),
    (
        "bad-subprotocol-list",
        request_bytes(extra=[("Sec-WebSocket-Protocol", "a b")]),
        400,
        InvalidHeaderFormat,
        "Sec-WebSocket-Protocol",
        {},
    ),
    ("malformed-http", b"GET / HTTP/1.1\r\nHost example.com\r\n\r\n", 400, InvalidMessage, "without a colon", {}),
    (
        "not-http",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        400,
        InvalidMessage,
        "invalid request line",
        {},
    ),
    (
        "headers-too-large",
        request_bytes(extra=[("X-Big", "v" * 9000)]),
        431,
        HeaderLineTooLong,
        "header line longer",
        {},
    ),
    ("request-line-too-long", request_bytes(path="/" + "a" * 9000), 414, RequestLineTooLong, "start line longer", {}),
]


@pytest.mark.parametrize(
    "raw, status, exc_type, text, headers", [c[1:] for c in BAD_HANDSHAKES], ids=[c[0] for c in BAD_HANDSHAKES]
)
def test_bad_handshake_gets_the_right_status(raw, status, exc_type, text, headers):
    server = ServerProtocol()
    server.receive_data(raw + make_frame(TEXT, "never read"))
    response = parse_response(server.data_to_send())
    assert response.status_code == status
    assert type(server.error) is exc_type and server.error.http_status == status
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Content-Length"] == str(len(response.body))
    assert "close" in response.headers["Connection"]
    assert response.body.startswith(b"Failed to open a WebSocket connection: ")
    assert text.encode() in response.body
    for name, value in headers.items():
        assert response.headers[name] == value
    assert server.state is CLOSED and server.should_close_transport()
    assert server.response == response
    # The frame after the request is never processed, and nothing else is sent.
    assert all(not isinstance(e, str) for e in server.events_received())
    server.receive_data(b"more")
    assert server.data_to_send() == b""
    assert server.close_code is None


def test_426_lists_upgrade_in_connection():
    server = ServerProtocol()
    server.receive_data(request_bytes(drop=["Upgrade"]))
    response = parse_response(server.data_to_send())
    assert response.headers["Connection"] == "Upgrade, close"


def test_extra_headers_and_server_header():
    server = ServerProtocol(extra_headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")], server_header=None)
    server.receive_data(request_bytes())
    response = parse_response(server.data_to_send())
    assert response.headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    assert "Server" not in response.headers
    server = ServerProtocol()
    server.receive_data(request_bytes())
    assert parse_response(server.data_to_send()).headers["Server"].startswith("fastws/")


# --- process_request and deferred answers --------------------------------------------


def route(request):
    if request.path == "/health":
        return Response(200, headers={"Content-Type": "text/plain"}, body=b"OK\n")
    if request.path != "/chat":
        return ServerProtocol().reject(404, "Not here.\n")
    if request.headers.get("Authorization") != "Bearer good":
        return Response(401, headers={"WWW-Authenticate": "Bearer"})
    return None


@pytest.mark.parametrize(
    "raw, status, body",
    [
        (request_bytes(path="/chat", extra=[("Authorization", "Bearer good")]), 101, b""),
        (request_bytes(path="/nowhere"), 404, b"Not here.\n"),
        (request_bytes(path="/chat"), 401, b""),
        (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 200, b"OK\n"),  # not even a WebSocket request
        (b"GET /health HTTP/1.1\r\n\r\n", 200, b"OK\n"),  # runs before validation (no Host)
    ],
    ids=["accepted", "404", "401", "health-check", "before-validation"],
)
def test_process_request(raw, status, body):
    server = ServerProtocol(process_request=route)
    server.receive_data(raw)
    response = parse_response(server.data_to_send())
    assert response.status_code == status and response.body == body
    if status == 101:
        assert server.state is OPEN
    else:
        assert server.state is CLOSED and server.should_close_transport()
        assert server.error is None  # the application chose this answer
        assert response.headers["Content-Length"] == str(len(body))  # added when missing
        assert response.headers["Connection"] == "close"


def test_process_request_bug_is_500():
    def broken(request):
        raise KeyError("secret")

    server = ServerProtocol(process_request=broken)
    server.receive_data(request_bytes())
    response = parse_response(server.data_to_send())
    assert response.status_code == 500 and b"secret" not in response.body
    assert type(server.error) is KeyError
    assert server.state is CLOSED


@pytest.mark.parametrize("how", ["whole", "bytewise"])
def test_deferred_accept_keeps_early_frames(codec, how):
    server = ServerProtocol(auto_accept=False, codec=codec)
    data = request_bytes() + make_frame(TEXT, "early")
    for piece in [data] if how == "whole" else byte_by_byte(data):
        server.receive_data(piece)
    (request,) = server.events_received()
    assert server.state is CONNECTING and server.data_to_send() == b""
    server.receive_data(make_frame(TEXT, "later"))
    assert server.events_received() == []
    server.send_response(server.accept())
    assert parse_response(server.data_to_send()).status_code == 101
    assert server.events_received() == ["early", "later"]
    with pytest.raises(InvalidState):
        server.send_response(server.accept())


def test_deferred_reject():
    server = ServerProtocol(auto_accept=False)
    server.receive_data(request_bytes())
    server.send_response(server.reject(403, "Go away.\n"))
    response = parse_response(server.data_to_send())
    assert (response.status_code, response.body) == (403, b"Go away.\n")
    assert server.state is CLOSED and server.should_close_transport()


def test_deferred_accept_of_a_bad_request_is_an_error_response():
    server = ServerProtocol(auto_accept=False)
    server.receive_data(request_bytes(drop=["Sec-WebSocket-Key"]))
    response = server.accept()
    assert response.status_code == 400 and type(server.error) is InvalidHeader
    server.send_response(response)
    assert server.state is CLOSED


def test_accept_before_request_is_invalid_state():
    with pytest.raises(InvalidState):
        ServerProtocol(auto_accept=False).accept()


@pytest.mark.parametrize("raw", [b"", b"GET / HTTP/1.1\r\nHost: a\r\n"], ids=["nothing", "half-request"])
def test_server_eof_during_handshake(raw):
    server = ServerProtocol()
    server.receive_data(raw)
    server.receive_eof()
    assert server.state is CLOSED and type(server.error) is InvalidMessage
    assert server.events_received() == [] and server.data_to_send() == b""
    assert server.close_code is None


# --- bytes that follow the handshake -------------------------------------------------


@pytest.mark.parametrize("raw", [b[1] for b in BROWSERS], ids=[b[0] for b in BROWSERS])
def test_server_frames_in_the_same_read_as_the_request(codec, raw):
    frames = make_frame(TEXT, "Hello") + make_frame(TEXT, "again", fin=False) + make_frame(0, "!")
    data = raw + frames
    for split in range(len(data) + 1):
        server = ServerProtocol(codec=codec)
        server.receive_data(data[:split])
        server.receive_data(data[split:])
        events = server.events_received()
        assert isinstance(events[0], Request)
        assert events[1:] == ["Hello", "again!"], split


def fake_server_response(
    client: ClientProtocol, *, extra: bytes = b"", status: bytes = b"101 Switching Protocols"
) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(client.key).encode() + b"\r\n" + extra + b"\r\n"
    )


def test_client_frames_in_the_same_read_as_the_response(codec):
    probe = ClientProtocol("ws://example.com/")
    frames = make_frame(TEXT, "Hello", masked=False) + make_frame(9, b"ping", masked=False)
    for split in range(len(fake_server_response(probe)) + len(frames) + 1):
        client = ClientProtocol("ws://example.com/", codec=codec)
        client.data_to_send()
        data = fake_server_response(client) + frames
        client.receive_data(data[:split])
        client.receive_data(data[split:])
        events = client.events_received()
        assert isinstance(events[0], Response) and events[0].status_code == 101
        assert events[1:] == ["Hello", Ping(b"ping")], split
        assert client.data_to_send()[:2] == b"\x8a\x84"  # the masked pong


# --- client --------------------------------------------------------------------------


def test_client_request():
    client = ClientProtocol(
        "wss://user:pw@example.com:8443/chat?x=1",
        origin="https://example.com",
        subprotocols=["chat", "superchat"],
        extra_headers={"X-Trace": "1"},
        user_agent="tester/1",
    )
    raw = client.data_to_send()
    request = client.request
    assert raw == request.serialize()
    assert raw.startswith(b"GET /chat?x=1 HTTP/1.1\r\n")
    h = request.headers
    assert h["Host"] == "example.com:8443"
    assert h["Upgrade"] == "websocket" and h["Connection"] == "Upgrade"
    assert h["Sec-WebSocket-Key"] == client.key and len(base64.b64decode(client.key)) == 16
    assert h["Sec-WebSocket-Version"] == "13"
    assert h["Origin"] == "https://example.com"
    assert h["Sec-WebSocket-Protocol"] == "chat, superchat"
    assert h["X-Trace"] == "1" and h["User-Agent"] == "tester/1"
    assert h["Authorization"] == "Basic " + base64.b64encode(b"user:pw").decode()
    assert "Sec-WebSocket-Extensions" not in h
    assert client.state is CONNECTING


def test_client_keys_are_fresh():
    assert ClientProtocol("ws://a/").key != ClientProtocol("ws://a/").key


def test_client_request_minimal():
    client = ClientProtocol("ws://example.com", user_agent=None)
    assert [n for n, _ in client.request.headers] == [
        "Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version"
    ]


def test_client_rejects_invalid_subprotocol_names():
    with pytest.raises(ValueError):
        ClientProtocol("ws://a/", subprotocols=["bad name"])


@pytest.mark.parametrize(
    "extra",
    [b"", b"Upgrade: WebSocket\r\n", b"Server: x\r\nX-Other: y\r\n"],
    ids=["plain", "upgrade-case", "extra-headers"],
)
@pytest.mark.parametrize("how", ["whole", "bytewise"])
def test_client_accepts_valid_response(extra, how):
    client = ClientProtocol("ws://example.com/")
    response = fake_server_response(client, extra=extra)
    if extra.startswith(b"Upgrade"):
        response = response.replace(b"Upgrade: websocket\r\n", b"", 1).replace(
            b"Connection: Upgrade", b"Connection: keep-alive, upgrade"
        )
    for piece in [response] if how == "whole" else byte_by_byte(response):
        assert client.state is CONNECTING
        client.receive_data(piece)
    assert client.state is OPEN and client.error is None
    (event,) = client.events_received()
    assert event is client.response and event.status_code == 101


def client_response_cases():
    # (id, edit(client) -> raw response, exception type, message fragment)
    def good(client, **kw):
        return fake_server_response(client, **kw)

    def edit(old, new):
        return lambda c: good(c).replace(old, new, 1)

    return [
        (
            "403-with-body",
            lambda c: b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\nX-Why: origin\r\n\r\nnope\n",
            InvalidStatus,
            "HTTP 403 Forbidden",
        ),
        ("200", lambda c: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", InvalidStatus, "HTTP 200"),
        ("no-upgrade", edit(b"Upgrade: websocket\r\n", b""), InvalidUpgrade, "missing Upgrade header"),
        ("upgrade-h2c", edit(b"Upgrade: websocket", b"Upgrade: h2c"), InvalidUpgrade, "invalid Upgrade header"),
        ("upgrade-two", edit(b"Upgrade: websocket", b"Upgrade: websocket, h2c"), InvalidUpgrade, "invalid Upgrade"),
        ("no-connection", edit(b"Connection: Upgrade\r\n", b""), InvalidUpgrade, "missing Connection header"),
        ("connection-close", edit(b"Connection: Upgrade", b"Connection: close"), InvalidUpgrade, "invalid Connection"),
        (
            "no-accept",
            lambda c: good(c).replace(b"Sec-WebSocket-Accept: " + accept_key(c.key).encode() + b"\r\n", b""),
            InvalidHeader,
            "missing Sec-WebSocket-Accept",
        ),
        (
            "wrong-accept",
            lambda c: good(c).replace(accept_key(c.key).encode(), accept_key(CHROME_KEY).encode()),
            InvalidHeaderValue,
            "does not match the key",
        ),
        (
            "two-accepts",
            lambda c: good(c, extra=b"Sec-WebSocket-Accept: " + accept_key(c.key).encode() + b"\r\n"),
            InvalidHeader,
            "more than one value",
        ),
        (
            "subprotocol-not-offered",
            lambda c: good(c, extra=b"Sec-WebSocket-Protocol: chat\r\n"),
            NegotiationError,
            "none was offered",
        ),
        (
            "extension-not-offered",
            lambda c: good(c, extra=b"Sec-WebSocket-Extensions: permessage-deflate\r\n"),
            NegotiationError,
            "which was not offered",
        ),
        ("malformed-http", lambda c: b"HTTP/1.1 101 OK\nUpgrade: websocket\n\n", InvalidMessage, "LF instead of CRLF"),
        ("not-http", lambda c: b"\x81\x05Hello\r\n\r\n", InvalidMessage, "invalid"),
    ]


CLIENT_CASES = client_response_cases()


@pytest.mark.parametrize("make, exc_type, message", [c[1:] for c in CLIENT_CASES], ids=[c[0] for c in CLIENT_CASES])
def test_client_refuses_bad_response(make, exc_type, message):
    client = ClientProtocol("ws://example.com/")
    client.data_to_send()
    client.receive_data(make(client) + make_frame(TEXT, "never", masked=False))
    assert type(client.error) is exc_type and message in str(client.error)
    assert client.state is CLOSED and client.should_close_transport()
    events = client.events_received()
    if exc_type is InvalidMessage:
        assert events == [] and client.response is None
    else:
        assert events == [client.response]
    assert client.data_to_send() == b""
    with pytest.raises(InvalidState):
        client.send_text("x")


def test_client_refusal_carries_status_headers_and_body():
    client = ClientProtocol("ws://example.com/")
    client.receive_data(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\nX-Why: origin\r\n\r\nnope\n")
    exc = client.error
    assert isinstance(exc, InvalidHandshake)
    assert exc.status_code == 403 and exc.response.status_code == 403
    assert exc.headers["X-Why"] == "origin" and exc.body == b"nope\n"
    assert str(exc) == "server rejected the WebSocket connection: HTTP 403 Forbidden"


def test_client_refusal_with_body_until_eof():
    client = ClientProtocol("ws://example.com/")
    client.receive_data(b"HTTP/1.1 503 Service Unavailable\r\n\r\ntry ")
    client.receive_data(b"later")
    assert client.state is CONNECTING and client.error is None
    client.receive_eof()
    assert client.state is CLOSED
    assert type(client.error) is InvalidStatus and client.error.body == b"try later"
    assert client.events_received() == [client.response]
    assert client.close_code is None


def test_client_eof_before_response():
    client = ClientProtocol("ws://example.com/")
    client.receive_data(b"HTTP/1.1 101 Switching")
    client.receive_eof()
    assert type(client.error) is InvalidMessage and client.state is CLOSED
    assert client.events_received() == []


@pytest.mark.parametrize(
    "offered, answer, error",
    [
        (["chat"], b"chat", None),
        (["chat", "superchat"], b"superchat", None),
        (["chat"], b"superchat", "which was not offered"),
        (["chat", "superchat"], b"chat, superchat", "several subprotocols"),
    ],
)
def test_client_subprotocol(offered, answer, error):
    client = ClientProtocol("ws://a/", subprotocols=offered)
    client.receive_data(fake_server_response(client, extra=b"Sec-WebSocket-Protocol: " + answer + b"\r\n"))
    if error is None:
        assert client.state is OPEN and client.subprotocol == answer.decode()
    else:
        assert type(client.error) is NegotiationError and error in str(client.error)


# --- extension negotiation (the seam; permessage-deflate itself is not here) ---------


class Toy(Extension):
    def __init__(self, name, params, uses_rsv1=True):
        self.name = name
        self.params = params
        self.uses_rsv1 = uses_rsv1


class ToyServerFactory(ServerExtensionFactory):
    def __init__(self, name, uses_rsv1=True, refuse=False):
        self.name = name
        self.uses_rsv1 = uses_rsv1
        self.refuse = refuse

    def negotiate(self, params, accepted):
        if self.refuse or ("bad", None) in params:
            raise NegotiationError("refused")
        return params, Toy(self.name, params, self.uses_rsv1)


class ToyClientFactory(ClientExtensionFactory):
    def __init__(self, name, params=()):
        self.name = name
        self.params = list(params)

    def offer(self):
        return self.params

    def accept(self, params, accepted):
        if ("unacceptable", None) in params:
            raise NegotiationError("bad answer")
        return Toy(self.name, params)


def request_with_extensions(value: str) -> Request:
    return Request("/", Headers([("Sec-WebSocket-Extensions", value)]))


@pytest.mark.parametrize(
    "offer, factories, header, names",
    [
        ("x-a; p=1", [ToyServerFactory("x-a")], "x-a; p=1", ["x-a"]),
        ("x-a; bad, x-a; p=2", [ToyServerFactory("x-a")], "x-a; p=2", ["x-a"]),
        ("x-a; p=1, x-a; p=2", [ToyServerFactory("x-a")], "x-a; p=1", ["x-a"]),
        ("x-b, x-a", [ToyServerFactory("x-a")], "x-a", ["x-a"]),
        ("x-a", [ToyServerFactory("x-a", refuse=True)], None, []),
        # Only one extension may own RSV1; a second one using it is declined.
        ("x-a, x-b", [ToyServerFactory("x-a"), ToyServerFactory("x-b")], "x-a", ["x-a"]),
        (
            "x-a, x-b",
            [ToyServerFactory("x-a"), ToyServerFactory("x-b", uses_rsv1=False)],
            "x-a, x-b",
            ["x-a", "x-b"],
        ),
        ("permessage-deflate", [], None, []),
    ],
)
def test_server_extension_negotiation(offer, factories, header, names):
    value, extensions = negotiate_server_extensions(request_with_extensions(offer), factories)
    assert value == header
    assert [e.name for e in extensions] == names


def test_server_extension_garbage_is_400():
    server = ServerProtocol(extensions=[ToyServerFactory("x-a")])
    server.receive_data(request_bytes(extra=[("Sec-WebSocket-Extensions", "x-a; =")]))
    assert parse_response(server.data_to_send()).status_code == 400
    assert type(server.error) is InvalidHeaderFormat


def test_client_extension_negotiation():
    client = ClientProtocol("ws://a/", extensions=[ToyClientFactory("x-a", [("p", "1")])])
    assert client.request.headers["Sec-WebSocket-Extensions"] == "x-a; p=1"
    client.receive_data(fake_server_response(client, extra=b"Sec-WebSocket-Extensions: x-a; p=1\r\n"))
    assert client.state is OPEN
    (ext,) = client.extensions
    assert ext.name == "x-a" and ext.params == [("p", "1")]


@pytest.mark.parametrize(
    "answer, message",
    [
        (b"x-a; unacceptable", "bad answer"),
        (b"x-b", "'x-b', which was not offered"),
        (b"x-a, x-a", "several extensions use RSV1"),
    ],
)
def test_client_extension_negotiation_errors(answer, message):
    client = ClientProtocol("ws://a/", extensions=[ToyClientFactory("x-a")])
    client.receive_data(fake_server_response(client, extra=b"Sec-WebSocket-Extensions: " + answer + b"\r\n"))
    assert type(client.error) is NegotiationError and message in str(client.error)
    assert client.state is CLOSED


def test_handshake_errors_pickle():
    import pickle

    for exc in [
        InvalidHeader("Host"),
        InvalidUpgrade("Upgrade", "h2c"),
        InvalidOrigin("Origin", "x", "not allowed"),
        InvalidStatus(Response(403, body=b"no")),
        InvalidHandshake("x", http_status=405),
    ]:
        copy = pickle.loads(pickle.dumps(exc))
        assert type(copy) is type(exc) and str(copy) == str(exc)
        assert copy.http_status == exc.http_status


def test_close_event_not_reported_for_failed_handshake():
    client = ClientProtocol("ws://a/")
    client.receive_data(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    client.receive_eof()
    assert Close(1006, "") not in client.events_received()


def test_long_header_values_are_cut_in_error_messages():
    server = ServerProtocol()
    server.receive_data(request_bytes(replace={"Sec-WebSocket-Key": "k" * 5000}))
    response = parse_response(server.data_to_send())
    assert response.status_code == 400
    assert len(response.body) < 300 and b"kkk..." in response.body

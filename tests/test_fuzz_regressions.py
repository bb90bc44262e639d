"""Regression tests for what the fuzz runs (python -m fuzz.run) found.

Each finding's input also lives in ``fuzz/corpus/<target>/regress-*``, which
tests/test_fuzz_targets.py replays; the tests here state the bug directly.
"""

from __future__ import annotations

import pytest

from fastws.exceptions import InvalidMessage, InvalidURI
from fastws.handshake import build_request, parse_uri
from fastws.http11 import RequestParser, ResponseParser


# fuzz/corpus/http/regress-uri-host-with-spaces: parse_uri("ws://1.07,,  ")
# accepted the host "1.07,,  ", and the client then sent "Host: 1.07,,  ",
# which a server reads back as "1.07,," (a header value loses its trailing
# spaces): the request did not say what the URI said. Hosts with spaces or
# control characters are now an InvalidURI.
@pytest.mark.parametrize(
    "uri",
    ["ws://1.07,,  ", "ws://exa mple.com/", "ws://host\x00name/", "wss://a b:443/", "ws://x\x7fy/"],
)
def test_parse_uri_refuses_hosts_that_cannot_go_in_a_host_header(uri):
    with pytest.raises(InvalidURI, match="invalid host"):
        parse_uri(uri)


@pytest.mark.parametrize(
    "uri, host",
    [
        ("ws://example.com/", "example.com"),
        ("ws://[::1]:9000/", "::1"),
        ("ws://[fe80::1%25eth0]/", "fe80::1%25eth0"),
        ("ws://under_score.local/", "under_score.local"),
        ("ws://bücher.example/", "xn--bcher-kva.example"),
        ("ws://sub-delims!$&'()*+,;=.example/", "sub-delims!$&'()*+,;=.example"),
    ],
)
def test_parse_uri_still_accepts_valid_hosts(uri, host):
    parsed = parse_uri(uri)
    assert parsed.host == host
    # and the request built for it parses back the same
    request = build_request(parsed, "dGhlIHNhbXBsZSBub25jZQ==")
    assert RequestParser().feed(request.serialize()) == request


# fuzz/corpus/protocol/regress-content-length-superscript-digits: a response with
# "Content-Length: ¹¹4" (latin-1 superscript digits) passed the parser's
# str.isdigit() check, then int() raised a ValueError out of the client's
# handshake instead of an InvalidMessage. Only ASCII digits are a length now.
@pytest.mark.parametrize("value", [b"\xb9\xb94", b"\xb2", b"\xb3", b"1\xbc"])
def test_content_length_takes_ascii_digits_only(value):
    with pytest.raises(InvalidMessage, match="invalid Content-Length"):
        ResponseParser().feed(b"HTTP/1.1 400 X\r\nContent-Length: " + value + b"\r\n\r\n")

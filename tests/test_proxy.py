"""fastws.proxy without I/O: proxy URLs, the environment's proxy and NO_PROXY,
the CONNECT request, the parser of the proxy's answer."""

from __future__ import annotations

import os

import pytest

from fastws.exceptions import InvalidProxy, InvalidProxyMessage, InvalidProxyStatus, ProxyError
from fastws.proxy import (
    ConnectResponseParser,
    Proxy,
    get_proxy,
    parse_proxy,
    prepare_connect_request,
    resolve_proxy,
)
from fastws.uri import parse_uri

# --- parse_proxy ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://proxy:3128", Proxy("http", "proxy", 3128)),
        ("http://proxy", Proxy("http", "proxy", 80)),
        ("http://proxy/", Proxy("http", "proxy", 80)),
        ("HTTP://Proxy.Example", Proxy("http", "proxy.example", 80)),
        ("https://proxy", Proxy("https", "proxy", 443)),
        ("socks4://10.0.0.1", Proxy("socks4", "10.0.0.1", 1080)),
        ("socks4a://proxy:1081", Proxy("socks4a", "proxy", 1081)),
        ("socks5://[::1]:9050", Proxy("socks5", "::1", 9050)),
        ("socks5h://proxy", Proxy("socks5h", "proxy", 1080)),
        ("http://user:pass@proxy:8080", Proxy("http", "proxy", 8080, ("user", "pass"))),
        ("http://us%40er:p%3Ass%20w@proxy", Proxy("http", "proxy", 80, ("us@er", "p:ss w"))),
        ("http://user:@proxy", Proxy("http", "proxy", 80, ("user", ""))),
        ("socks5://a%3Ab:c@proxy", Proxy("socks5", "proxy", 1080, ("a:b", "c"))),
        ("http://bücher.example:8080", Proxy("http", "xn--bcher-kva.example", 8080)),
    ],
)
def test_parse_proxy(url, expected):
    proxy = parse_proxy(url)
    assert proxy == expected
    assert proxy.username == (expected.user_info and expected.user_info[0])
    assert proxy.password == (expected.user_info and expected.user_info[1])
    assert proxy.is_socks == url.lower().startswith("socks")


@pytest.mark.parametrize(
    "url, reason",
    [
        ("ftp://proxy", "scheme 'ftp' isn't supported"),
        ("proxy:3128", "scheme 'proxy' isn't supported"),
        ("//proxy:3128", "no scheme isn't supported"),
        ("http://", "no host"),
        ("http://:3128", "no host"),
        ("http://proxy:99999", "invalid port"),
        ("http://proxy:port", "invalid port"),
        ("http://[::1", "not a valid URL"),
        ("http://proxy/path", "no path"),
        ("http://proxy/?q=1", "no query"),
        ("http://proxy/#frag", "no fragment"),
        ("http://user@proxy", "username without a password"),
        ("http://us%3Aer:secret@proxy", "username contains a colon"),
        ("http://user:%ff%fesecret@proxy", "not valid UTF-8"),
        ("http://pro xy", "invalid host"),
    ],
)
def test_parse_proxy_invalid(url, reason):
    with pytest.raises(InvalidProxy) as exc_info:
        parse_proxy(url)
    assert reason in exc_info.value.reason
    assert isinstance(exc_info.value, ValueError)


@pytest.mark.parametrize(
    "url",
    [
        "http://user:secret@proxy/path",
        "http://user:secret@proxy:99999",
        "ftp://user:secret@proxy",
        "http://user:sec/ret@proxy",  # unencoded: the URL's path would begin at "/"
        "http://user:sec?ret@proxy",
        "http://user:sec#ret@proxy",
        "http://user:sec@ret@proxy/path",
        "http://user:secret@[::1",
    ],
)
def test_parse_proxy_invalid_hides_credentials(url):
    with pytest.raises(InvalidProxy) as exc_info:
        parse_proxy(url)
    for secret in ("sec", "ret", "user"):
        assert secret not in str(exc_info.value)
    assert exc_info.value.proxy.startswith(url.split(":", 1)[0] + "://***@")


def test_proxy_repr_hides_password():
    proxy = parse_proxy("http://user:secret@proxy")
    assert "secret" not in repr(proxy)
    assert "user" in repr(proxy)


# --- get_proxy and resolve_proxy ------------------------------------------------


@pytest.fixture
def environ(monkeypatch):
    """A clean proxy environment: every *_proxy variable removed; returns a
    function setting some."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("REQUEST_METHOD", raising=False)  # CGI ignores HTTP_PROXY

    def set_env(variables):
        for name, value in variables.items():
            monkeypatch.setenv(name, value)

    return set_env


H = "http://h-proxy:1"
S = "http://s-proxy:2"
SOCKS = "socks5://socks-proxy:3"
ALL = "socks5h://all-proxy:4"


@pytest.mark.parametrize(
    "env, uri, expected",
    [
        ({}, "ws://example.com/", None),
        ({}, "wss://example.com/", None),
        ({"HTTP_PROXY": H}, "ws://example.com/", H),
        ({"http_proxy": H}, "ws://example.com/", H),
        ({"HTTP_PROXY": H}, "wss://example.com/", None),
        ({"HTTPS_PROXY": S}, "wss://example.com/", S),
        # websockets' order: HTTPS_PROXY serves ws:// too, before HTTP_PROXY.
        ({"HTTPS_PROXY": S}, "ws://example.com/", S),
        ({"HTTP_PROXY": H, "HTTPS_PROXY": S}, "ws://example.com/", S),
        ({"HTTP_PROXY": H, "HTTPS_PROXY": S}, "wss://example.com/", S),
        ({"WS_PROXY": "http://ws:5", "HTTP_PROXY": H}, "ws://example.com/", "http://ws:5"),
        ({"WSS_PROXY": "http://wss:6", "HTTPS_PROXY": S}, "wss://example.com/", "http://wss:6"),
        ({"SOCKS_PROXY": SOCKS}, "ws://example.com/", SOCKS),
        ({"SOCKS_PROXY": SOCKS}, "wss://example.com/", SOCKS),
        ({"SOCKS_PROXY": "http://socks:7"}, "ws://example.com/", "socks5h://socks:7"),
        # A SOCKS proxy comes first (RFC 6455, "Proxy Usage").
        ({"HTTP_PROXY": H, "SOCKS_PROXY": SOCKS}, "ws://example.com/", SOCKS),
        ({"HTTPS_PROXY": S, "SOCKS_PROXY": SOCKS}, "wss://example.com/", SOCKS),
        ({"ALL_PROXY": ALL}, "ws://example.com/", ALL),
        ({"all_proxy": ALL}, "wss://example.com/", ALL),
        ({"ALL_PROXY": ALL, "SOCKS_PROXY": SOCKS}, "wss://example.com/", SOCKS),
        ({"ALL_PROXY": ALL, "HTTPS_PROXY": S}, "wss://example.com/", S),
        # NO_PROXY
        ({"HTTP_PROXY": H, "NO_PROXY": "example.com"}, "ws://example.com/", None),
        ({"HTTP_PROXY": H, "NO_PROXY": "example.com"}, "ws://www.example.com/", None),
        ({"HTTP_PROXY": H, "NO_PROXY": ".example.com"}, "ws://www.example.com/", None),
        ({"HTTP_PROXY": H, "NO_PROXY": "example.com"}, "ws://notexample.com/", H),
        ({"HTTP_PROXY": H, "NO_PROXY": "other.com, example.com"}, "ws://example.com/", None),
        ({"HTTP_PROXY": H, "no_proxy": "other.com,example.com"}, "ws://example.com/", None),
        ({"HTTP_PROXY": H, "NO_PROXY": "other.com"}, "ws://example.com/", H),
        ({"HTTP_PROXY": H, "NO_PROXY": "*"}, "ws://example.com/", None),
        ({"ALL_PROXY": ALL, "NO_PROXY": "*"}, "wss://example.com/", None),
        ({"HTTP_PROXY": H, "NO_PROXY": "example.com:8080"}, "ws://example.com:8080/", None),
        ({"HTTP_PROXY": H, "NO_PROXY": "example.com:8080"}, "ws://example.com:9090/", H),
        ({"HTTP_PROXY": H, "NO_PROXY": "example.com:80"}, "ws://example.com/", None),
        ({"HTTPS_PROXY": S, "NO_PROXY": "example.com:443"}, "wss://example.com/", None),
        ({"HTTP_PROXY": H, "NO_PROXY": "localhost,127.0.0.1"}, "ws://127.0.0.1:8765/", None),
        ({"HTTP_PROXY": H, "NO_PROXY": "localhost,127.0.0.1"}, "ws://localhost:8765/", None),
        ({"HTTP_PROXY": H, "NO_PROXY": ""}, "ws://example.com/", H),
        ({"HTTP_PROXY": H, "NO_PROXY": "::1"}, "ws://[::1]:8080/", None),
        ({"HTTP_PROXY": H, "NO_PROXY": "::1"}, "ws://[::2]:8080/", H),
    ],
)
def test_get_proxy(environ, env, uri, expected):
    environ(env)
    assert get_proxy(parse_uri(uri)) == expected


@pytest.mark.parametrize(
    "env, argument, expected",
    [
        ({}, True, None),
        ({"HTTP_PROXY": "http://u:p@proxy:3128"}, True, Proxy("http", "proxy", 3128, ("u", "p"))),
        ({"HTTP_PROXY": "http://proxy:3128"}, None, None),
        ({"HTTP_PROXY": "http://proxy:3128"}, False, None),
        ({"HTTP_PROXY": "http://proxy:3128"}, "socks5h://other", Proxy("socks5h", "other", 1080)),
        ({"HTTP_PROXY": "http://proxy:3128", "NO_PROXY": "*"}, "http://other:1", Proxy("http", "other", 1)),
    ],
)
def test_resolve_proxy(environ, env, argument, expected):
    environ(env)
    assert resolve_proxy(argument, parse_uri("ws://example.com/")) == expected


def test_resolve_proxy_invalid(environ):
    uri = parse_uri("ws://example.com/")
    environ({"HTTP_PROXY": "gopher://proxy"})
    with pytest.raises(InvalidProxy, match="gopher"):
        resolve_proxy(True, uri)
    with pytest.raises(TypeError, match="not bytes"):
        resolve_proxy(b"http://proxy", uri)  # type: ignore[arg-type]


# --- prepare_connect_request ----------------------------------------------------


@pytest.mark.parametrize(
    "proxy, uri, user_agent, expected",
    [
        (
            "http://proxy",
            "ws://example.com/chat",
            "ua/1",
            b"CONNECT example.com:80 HTTP/1.1\r\nHost: example.com:80\r\nUser-Agent: ua/1\r\n\r\n",
        ),
        (
            "http://proxy",
            "wss://example.com:8443/",
            None,
            b"CONNECT example.com:8443 HTTP/1.1\r\nHost: example.com:8443\r\n\r\n",
        ),
        (
            "https://proxy",
            "wss://[::1]/",
            None,
            b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n",
        ),
        (
            "http://Aladdin:open%20sesame@proxy",
            "ws://bücher.example/",
            None,
            (
                b"CONNECT xn--bcher-kva.example:80 HTTP/1.1\r\nHost: xn--bcher-kva.example:80\r\n"
                b"Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
            ),
        ),
    ],
)
def test_prepare_connect_request(proxy, uri, user_agent, expected):
    assert prepare_connect_request(parse_proxy(proxy), parse_uri(uri), user_agent) == expected


def test_prepare_connect_request_default_user_agent():
    request = prepare_connect_request(parse_proxy("http://proxy"), parse_uri("ws://example.com/"))
    assert b"\r\nUser-Agent: fastws/" in request


def test_prepare_connect_request_bad_user_agent():
    with pytest.raises(ValueError, match="User-Agent"):
        prepare_connect_request(parse_proxy("http://proxy"), parse_uri("ws://example.com/"), "a\r\nX: y")


# --- ConnectResponseParser ------------------------------------------------------


@pytest.mark.parametrize(
    "answer, status, reason, headers, trailing",
    [
        (b"HTTP/1.1 200 Connection established\r\n\r\n", 200, "Connection established", [], b""),
        (b"HTTP/1.0 200 OK\r\nProxy-Agent: p/1\r\n\r\n", 200, "OK", [("Proxy-Agent", "p/1")], b""),
        (b"HTTP/1.1 200\r\n\r\n", 200, "", [], b""),
        (b"HTTP/1.1 204 No Content\r\n\r\n", 204, "No Content", [], b""),
        # After a 2xx the tunnel begins: nothing is a body, even with Content-Length.
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, "OK", [("Content-Length", "5")], b"hello"),
        (b"HTTP/1.1 200 OK\r\n\r\n\x81\x02hi", 200, "OK", [], b"\x81\x02hi"),
    ],
)
def test_answer_accepted(answer, status, reason, headers, trailing):
    # In one piece, and byte by byte.
    parser = ConnectResponseParser()
    response = parser.feed(answer)
    assert response is not None
    assert (response.status_code, response.reason_phrase, list(response.headers)) == (status, reason, headers)
    assert parser.trailing == trailing
    assert parser.response is response
    parser.feed_eof()  # nothing to say once complete

    parser = ConnectResponseParser()
    head_end = len(answer) - len(trailing)
    results = [parser.feed(answer[i : i + 1]) for i in range(head_end)]
    assert results[:-1] == [None] * (head_end - 1)
    assert results[-1] is not None
    assert results[-1].status_code == status
    assert parser.trailing == b""


def test_answer_complete_feeds_no_more():
    parser = ConnectResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\n\r\n")
    with pytest.raises(RuntimeError):
        parser.feed(b"more")


@pytest.mark.parametrize(
    "answer, status",
    [
        (b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=p\r\n\r\n", 407),
        (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbidden", 403),
        (b"HTTP/1.1 502 Bad Gateway\r\n\r\n", 502),
        (b"HTTP/1.1 301 Moved Permanently\r\nLocation: http://x/\r\n\r\n", 301),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", 101),
    ],
)
def test_answer_refused(answer, status):
    parser = ConnectResponseParser()
    with pytest.raises(InvalidProxyStatus) as exc_info:
        parser.feed(answer)
    exc = exc_info.value
    assert isinstance(exc, ProxyError)
    assert exc.response.status_code == status
    assert str(status) in str(exc)
    if status == 407:
        assert exc.response.headers["Proxy-Authenticate"] == "Basic realm=p"
    assert parser.response is None
    with pytest.raises(RuntimeError):
        parser.feed(b"")


LONG = b"x" * 9000


@pytest.mark.parametrize(
    "answer, message",
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "invalid status line"),
        (b"HTTP/1.x 200 OK\r\n\r\n", "invalid HTTP version"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "invalid status code"),
        (b"HTTP/1.1 abc OK\r\n\r\n", "invalid status code"),
        (b"HTTP/2.0 200 OK\r\n\r\n", "unsupported HTTP version"),
        (b"HTTP/1.1 200 OK\n\n", "CRLF"),
        (b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n", "without a colon"),
        (b"HTTP/1.1 200 OK\r\nX: " + LONG + b"\r\n\r\n", "header line longer than 8192 bytes"),
        (b"HTTP/1.1 200 " + LONG + b"\r\n\r\n", "start line longer than 8192 bytes"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 200 + b"\r\n", "more than 128 headers"),
        (b"HTTP/1.1 200 OK\r\n" + (b"X: " + b"y" * 8000 + b"\r\n") * 10 + b"\r\n", "headers exceed 65536 bytes"),
        (b"\x16\x03\x01\x02\x00\x01", "answered with TLS: is it an https:// proxy"),
        (b"\x15\x03\x01\x00\x02\x02\x46", "answered with TLS: is it an https:// proxy"),
        (b"\x00\x5a\x00\x00", "invalid"),
    ],
)
def test_answer_invalid(answer, message):
    parser = ConnectResponseParser()
    with pytest.raises(InvalidProxyMessage, match=message) as exc_info:
        parser.feed(answer)
    assert isinstance(exc_info.value, ProxyError)
    with pytest.raises(RuntimeError):
        parser.feed(b"HTTP/1.1 200 OK\r\n\r\n")


def test_answer_limits_are_options():
    parser = ConnectResponseParser(max_header_bytes=64)
    with pytest.raises(InvalidProxyMessage, match="headers exceed 64 bytes"):
        parser.feed(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 10 + b"\r\n")
    parser = ConnectResponseParser(max_headers=2)
    with pytest.raises(InvalidProxyMessage, match="more than 2 headers"):
        parser.feed(b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n")
    parser = ConnectResponseParser(max_line=10)
    with pytest.raises(InvalidProxyMessage, match="longer than 10 bytes"):
        parser.feed(b"HTTP/1.1 200 Connection established\r\n\r\n")


def test_answer_oversized_without_end_fails_early():
    # A proxy sending endless header bytes is stopped at the limit, not buffered.
    parser = ConnectResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(InvalidProxyMessage, match="longer than 8192 bytes"):
        for _ in range(100):
            parser.feed(b"y" * 1000)


@pytest.mark.parametrize("received", [b"", b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\nX: y\r\n\r"])
def test_answer_eof(received):
    parser = ConnectResponseParser()
    assert parser.feed(received) is None
    with pytest.raises(InvalidProxyMessage, match="closed the connection before answering"):
        parser.feed_eof()


@pytest.mark.parametrize(
    "url, shown",
    [
        # No scheme (HTTPS_PROXY=user:pass@host is a common slip), or a broken one.
        ("user:secret@proxy:3128", "***@proxy:3128"),
        ("http:/user:secret@proxy:3128", "http:/***@proxy:3128"),
        ("user:sec@ret@proxy", "***@proxy"),
    ],
)
def test_parse_proxy_without_a_scheme_hides_credentials(url, shown):
    with pytest.raises(InvalidProxy) as exc_info:
        parse_proxy(url)
    for secret in ("sec", "ret", "user"):
        assert secret not in str(exc_info.value)
    assert exc_info.value.proxy == shown

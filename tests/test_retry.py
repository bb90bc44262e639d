"""fastws.retry: backoff delays, the default retry policy, redirect targets (sans-I/O)."""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys

import pytest

from fastws import retry
from fastws.exceptions import (
    ConnectionClosedError,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
    SecurityError,
)
from fastws.headers import Headers
from fastws.http11 import Response
from fastws.uri import parse_uri


def take(iterator, n):
    return list(itertools.islice(iterator, n))


# --- backoff ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, after_first",
    [
        # (initial_delay, min_delay, max_delay, factor): the delays after the random first one.
        ((5.0, 1.0, 10.0, 2.0), [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]),
        ((5.0, 3.0, 3.0, 2.0), [3.0, 3.0, 3.0]),  # min == max: max repeats
        ((5.0, 0.5, 1.0, 1.5), [0.5, 0.75, 1.0, 1.0]),
        ((0.0, 0.0, 0.0, 2.0), [0.0, 0.0, 0.0]),  # all zero: never sleeps (tests)
        ((1.0, 0.0, 10.0, 2.0), [0.0, 0.0, 0.0]),  # 0 never grows: repeats
        ((1.0, 2.0, 10.0, 1.0), [2.0, 2.0, 2.0]),  # factor 1: constant
        ((1.0, 20.0, 10.0, 2.0), [10.0, 10.0]),  # min above max: capped
    ],
)
def test_backoff_sequence(args, after_first):
    delays = retry.backoff(*args)
    first = next(delays)
    assert 0.0 <= first <= args[0]
    assert take(delays, len(after_first)) == pytest.approx(after_first)


def test_backoff_first_delay_is_random_up_to_initial_delay():
    random.seed(1234)
    expected = random.random() * 7.0
    random.seed(1234)
    assert next(retry.backoff(initial_delay=7.0)) == expected
    firsts = {next(retry.backoff(initial_delay=7.0)) for _ in range(20)}
    assert len(firsts) > 1 and all(0 <= d < 7.0 for d in firsts)


def test_backoff_defaults_are_websockets_defaults():
    assert (retry.BACKOFF_INITIAL_DELAY, retry.BACKOFF_MIN_DELAY, retry.BACKOFF_MAX_DELAY, retry.BACKOFF_FACTOR) == (
        5.0,
        3.1,
        90.0,
        1.618,
    )
    delays = take(retry.backoff(), 12)[1:]
    assert delays[0] == 3.1
    assert delays[1] == pytest.approx(3.1 * 1.618)
    assert delays[-1] == 90.0
    assert all(a <= b for a, b in zip(delays, delays[1:]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"initial_delay": -1}, "initial_delay must be >= 0, got -1"),
        ({"min_delay": -0.5}, "min_delay must be >= 0, got -0.5"),
        ({"max_delay": -2}, "max_delay must be >= 0, got -2"),
        ({"factor": 0.5}, "factor must be >= 1, got 0.5"),
    ],
)
def test_backoff_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as info:
        retry.backoff(**kwargs)
    assert str(info.value) == message


def read_constants(env):
    code = (
        "from fastws import retry; print(retry.BACKOFF_INITIAL_DELAY, retry.BACKOFF_MIN_DELAY,"
        " retry.BACKOFF_MAX_DELAY, retry.BACKOFF_FACTOR, retry.MAX_REDIRECTS)"
    )
    return subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )


def test_environment_overrides_defaults():
    result = read_constants(
        {
            "FASTWS_BACKOFF_INITIAL_DELAY": "0.5",
            "FASTWS_BACKOFF_MIN_DELAY": "0.25",
            "FASTWS_BACKOFF_MAX_DELAY": "2",
            "FASTWS_BACKOFF_FACTOR": "3",
            "FASTWS_MAX_REDIRECTS": "4",
        }
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0.5", "0.25", "2.0", "3.0", "4"]


def test_environment_bad_value_is_named():
    result = read_constants({"FASTWS_BACKOFF_MIN_DELAY": "soon"})
    assert result.returncode != 0
    assert "FASTWS_BACKOFF_MIN_DELAY must be a number of seconds, got 'soon'" in result.stderr


# --- process_exception ----------------------------------------------------------------


def status(code, headers=()):
    return InvalidStatus(Response(code, headers=Headers(list(headers))))


def eof_message():
    try:
        try:
            raise EOFError("stream ended")
        except EOFError as eof:
            raise InvalidMessage("connection closed before the response was complete") from eof
    except InvalidMessage as exc:
        return exc


@pytest.mark.parametrize(
    "exc, retried",
    [
        (ConnectionRefusedError(111, "refused"), True),
        (ConnectionResetError(104, "reset"), True),
        (OSError(101, "network unreachable"), True),
        (TimeoutError("timed out during the opening handshake"), True),
        (eof_message(), True),
        (InvalidMessage("invalid status line"), False),
        (status(500), True),
        (status(502), True),
        (status(503), True),
        (status(504), True),
        (status(501), False),
        (status(400), False),
        (status(401), False),
        (status(403), False),
        (status(404), False),
        (status(301, [("Location", "/x")]), False),
        (InvalidHandshake("missing Upgrade header"), False),
        (SecurityError("more than 10 redirects"), False),
        (InvalidURI("http://x", "scheme isn't ws or wss"), False),
        (ConnectionClosedError(None, None), False),
        (ValueError("bad"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_process_exception(exc, retried):
    assert retry.process_exception(exc) is (None if retried else exc)


# --- redirect_uri ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri, code, location, expected",
    [
        ("ws://a.example/old", 301, "ws://b.example:8080/new?q=1", "ws://b.example:8080/new?q=1"),
        ("ws://a.example/old", 302, "wss://a.example/new", "wss://a.example/new"),  # upgrade is fine
        ("ws://a.example/old", 303, "/new", "ws://a.example/new"),
        ("ws://a.example:81/x/old", 307, "new", "ws://a.example:81/x/new"),
        ("ws://a.example/x/y/old", 308, "../z", "ws://a.example/x/z"),
        ("ws://a.example/old?a=1", 301, "?b=2", "ws://a.example/old?b=2"),
        ("wss://a.example/old", 301, "//b.example/new", "wss://b.example/new"),  # scheme-relative
        ("ws://u:p@a.example/old", 302, "/new", "ws://u:p@a.example/new"),  # same origin keeps user info
        ("ws://a.example/old", 301, "http://b.example/new", "ws://b.example/new"),
        ("ws://a.example/old", 301, "https://b.example/new", "wss://b.example/new"),
        ("wss://a.example/old", 301, "HTTPS://b.example/new", "wss://b.example/new"),
        ("ws://a.example/old", 300, "/choice", "ws://a.example/choice"),
        ("ws://a.example/old", 301, "  /padded  ", "ws://a.example/padded"),
        ("ws://a.example/old", 301, "/new#part", "ws://a.example/new"),
    ],
)
def test_redirect_uri(uri, code, location, expected):
    exc = status(code, [("Location", location)])
    assert retry.redirect_uri(uri, exc) == expected
    # A parsed URI works as well (no user info to keep in it).
    if "@" not in uri:
        assert retry.redirect_uri(parse_uri(uri), exc) == expected


@pytest.mark.parametrize(
    "exc",
    [
        status(301),  # no Location: the InvalidStatus is raised as it is
        status(404, [("Location", "/new")]),
        status(304, [("Location", "/new")]),
        status(200, [("Location", "/new")]),
        InvalidHandshake("bad response"),
        ConnectionRefusedError(111, "refused"),
    ],
)
def test_redirect_uri_not_a_redirect(exc):
    assert retry.redirect_uri("ws://a.example/", exc) is None


@pytest.mark.parametrize("location", ["ws://a.example/new", "http://a.example/new", "/new"])
def test_redirect_uri_refuses_downgrade(location):
    exc = status(302, [("Location", location)])
    if location.startswith("/"):
        # Relative: stays on wss.
        assert retry.redirect_uri("wss://a.example/old", exc) == "wss://a.example/new"
        return
    with pytest.raises(SecurityError) as info:
        retry.redirect_uri("wss://a.example/old", exc)
    assert str(info.value) == "cannot follow a redirect from wss:// down to ws://a.example/new"


@pytest.mark.parametrize("location", ["ftp://a.example/file", "mailto:x@a.example", "ws://bad host/"])
def test_redirect_uri_unusable_location(location):
    with pytest.raises(InvalidURI):
        retry.redirect_uri("ws://a.example/", status(301, [("Location", location)]))


def test_max_redirects_default():
    assert retry.MAX_REDIRECTS == 10
    assert retry.REDIRECT_STATUSES == {300, 301, 302, 303, 307, 308}


@pytest.mark.parametrize(
    "a, b, same",
    [
        ("ws://a.example/x", "ws://a.example/y?z", True),
        ("ws://a.example/", "ws://A.EXAMPLE:80/", True),
        ("ws://a.example/", "wss://a.example/", False),
        ("ws://a.example/", "ws://a.example:81/", False),
        ("ws://a.example/", "ws://b.example/", False),
        ("ws://u:p@a.example/", "ws://a.example/", True),
    ],
)
def test_same_origin(a, b, same):
    assert retry.same_origin(parse_uri(a), parse_uri(b)) is same


@pytest.mark.parametrize(
    "headers, kept",
    [
        (None, None),
        ({"Authorization": "Basic eA==", "X-Trace": "1"}, [("X-Trace", "1")]),
        (
            [("cookie", "a=1"), ("X-A", "1"), ("Proxy-Authorization", "x"), ("X-B", "2"), ("AUTHORIZATION", "y")],
            [("X-A", "1"), ("X-B", "2")],
        ),
        (Headers([("X-Only", "1")]), [("X-Only", "1")]),
    ],
)
def test_strip_credentials(headers, kept):
    result = retry.strip_credentials(headers)
    assert (None if result is None else list(result)) == kept


@pytest.mark.parametrize(
    "uri, location, error",
    [
        ("wss://alice:s3cret@example.com/chat", "ws://example.com/next", SecurityError),
        ("ws://alice:s3cret@example.com/chat", "ftp://example.com/next", InvalidURI),
    ],
)
def test_redirect_errors_hide_the_uri_credentials(uri, location, error):
    refused = InvalidStatus(Response(302, headers=Headers([("Location", location)])))
    with pytest.raises(error) as caught:
        retry.redirect_uri(uri, refused)
    assert "s3cret" not in str(caught.value) and "alice" not in str(caught.value)


def test_shown_uri_has_no_credentials():
    assert retry.shown_uri(parse_uri("wss://alice:s3cret@example.com:8443/a?b")) == "wss://example.com:8443/a?b"

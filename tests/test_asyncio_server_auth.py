"""basic_auth(): HTTP Basic authentication as a process_request hook, against
fastws's client and websockets' client, over loopback."""

from __future__ import annotations

import asyncio
import base64

import pytest
import websockets.asyncio.client
import websockets.exceptions

import fastws
from fastws import InvalidStatus
from fastws.asyncio.server import basic_auth, serve
from fastws.headers import build_authorization_basic

from asyncio_helpers import run, server


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


async def whoami(websocket):
    await websocket.send(websocket.username)


async def refusal(uri: str, headers) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as info:
        async with fastws.connect(uri, additional_headers=headers):
            pass  # pragma: no cover - the handshake fails
    return info.value


def assert_401(exc: InvalidStatus, body: bytes, realm: str = "test") -> None:
    response = exc.response
    assert response.status_code == 401
    assert response.reason_phrase == "Unauthorized"
    assert response.headers["WWW-Authenticate"] == f'Basic realm="{realm}", charset="UTF-8"'
    assert response.body == body


CREDENTIALS = ("alice", "s3cret")

GOOD = "Basic " + b64(b"alice:s3cret")

# case, Authorization headers sent (None: none), the body of the 401
REFUSED = [
    ("missing", None, b"Missing credentials\n"),
    ("bearer", [("Authorization", "Bearer abc")], b"Unsupported credentials\n"),
    ("scheme only", [("Authorization", "Basic")], b"Unsupported credentials\n"),
    ("not token68", [("Authorization", "Basic !!not-base64!!")], b"Unsupported credentials\n"),
    ("bad base64", [("Authorization", GOOD[:-1])], b"Unsupported credentials\n"),
    ("no colon", [("Authorization", "Basic " + b64(b"alices3cret"))], b"Unsupported credentials\n"),
    ("twice", [("Authorization", GOOD), ("Authorization", GOOD)], b"Unsupported credentials\n"),
    ("wrong password", [("Authorization", "Basic " + b64(b"alice:wrong"))], b"Invalid credentials\n"),
    ("prefix", [("Authorization", "Basic " + b64(b"alice:s3cre"))], b"Invalid credentials\n"),
    ("longer", [("Authorization", "Basic " + b64(b"alice:s3cret "))], b"Invalid credentials\n"),
    ("user case", [("Authorization", "Basic " + b64(b"Alice:s3cret"))], b"Invalid credentials\n"),
    ("unknown user", [("Authorization", "Basic " + b64(b"bob:s3cret"))], b"Invalid credentials\n"),
    ("empty", [("Authorization", "Basic " + b64(b":"))], b"Invalid credentials\n"),
]


@pytest.mark.parametrize("case, headers, body", REFUSED, ids=[r[0] for r in REFUSED])
@run
async def test_refused(case, headers, body):
    async with server(whoami, process_request=basic_auth("test", credentials=CREDENTIALS)) as (_, uri):
        assert_401(await refusal(uri, headers), body)


# how the client sends the credentials
ACCEPTED = [
    ("uri", lambda uri: (uri.replace("ws://", "ws://alice:s3cret@"), None)),
    ("header", lambda uri: (uri, [("Authorization", GOOD)])),
    ("lowercase scheme", lambda uri: (uri, [("Authorization", "basic " + b64(b"alice:s3cret"))])),
]


@pytest.mark.parametrize("how, request_of", ACCEPTED, ids=[a[0] for a in ACCEPTED])
@run
async def test_accepted(how, request_of):
    async with server(whoami, process_request=basic_auth("test", credentials=CREDENTIALS)) as (_, uri):
        target, headers = request_of(uri)
        async with fastws.connect(target, additional_headers=headers) as websocket:
            assert await websocket.recv() == "alice"


# credentials=, then (username, password) -> accepted?
CREDENTIAL_LISTS = [
    (("alice", "s3cret"), [("alice", "s3cret", True), ("alice", "other", False)]),
    (["alice", "s3cret"], [("alice", "s3cret", True)]),  # a list of two strings is one pair
    ([("alice", "a"), ("bob", "b")], [("alice", "a", True), ("bob", "b", True), ("bob", "a", False)]),
    ([["alice", "a"], ["bob", "b"]], [("bob", "b", True), ("carol", "b", False)]),
    ((pair for pair in [("alice", "a"), ("bob", "b")]), [("alice", "a", True), ("bob", "b", True)]),
    ([("jérôme", "pässwörd")], [("jérôme", "pässwörd", True), ("jerome", "pässwörd", False)]),
    ([("用户", "密码")], [("用户", "密码", True), ("用户", "密", False)]),
    ([("", "")], [("", "", True), ("", "x", False)]),
    ([], [("alice", "s3cret", False)]),
]


@pytest.mark.parametrize("credentials, attempts", CREDENTIAL_LISTS)
@run
async def test_credentials(credentials, attempts):
    async with server(whoami, process_request=basic_auth("test", credentials=credentials)) as (_, uri):
        for username, password, accepted in attempts:
            headers = [("Authorization", build_authorization_basic(username, password))]
            if accepted:
                async with fastws.connect(uri, additional_headers=headers) as websocket:
                    assert await websocket.recv() == username
            else:
                assert_401(await refusal(uri, headers), b"Invalid credentials\n")


def sync_check(username, password):
    return (username, password) in {("alice", "s3cret"), ("jérôme", "pässwörd")}


async def async_check(username, password):
    await asyncio.sleep(0)  # a real suspension, as a database lookup has
    return sync_check(username, password)


@pytest.mark.parametrize("check", [sync_check, async_check])
@run
async def test_check_credentials(check):
    calls = []

    def recorded(username, password):
        calls.append((username, password))
        return check(username, password)

    async with server(whoami, process_request=basic_auth("test", check_credentials=recorded)) as (_, uri):
        for username, password, accepted in [
            ("alice", "s3cret", True),
            ("jérôme", "pässwörd", True),
            ("alice", "nope", False),
        ]:
            headers = [("Authorization", build_authorization_basic(username, password))]
            if accepted:
                async with fastws.connect(uri, additional_headers=headers) as websocket:
                    assert await websocket.recv() == username
            else:
                assert_401(await refusal(uri, headers), b"Invalid credentials\n")
        # Not called for a request without usable credentials.
        assert_401(await refusal(uri, None), b"Missing credentials\n")
        assert_401(await refusal(uri, [("Authorization", "Bearer x")]), b"Unsupported credentials\n")
    assert calls == [("alice", "s3cret"), ("jérôme", "pässwörd"), ("alice", "nope")]


@run
async def test_realm_and_server_header():
    async with server(whoami, process_request=basic_auth(credentials=CREDENTIALS)) as (_, uri):
        exc = await refusal(uri, None)
        assert_401(exc, b"Missing credentials\n", realm="")
        assert exc.response.headers["Server"].startswith("fastws/")
        assert exc.response.headers["Content-Type"] == "text/plain; charset=utf-8"
    realm = 'the "lab" server'
    async with server(whoami, process_request=basic_auth(realm, credentials=CREDENTIALS)) as (_, uri):
        exc = await refusal(uri, None)
        assert exc.response.headers["WWW-Authenticate"] == 'Basic realm="the \\"lab\\" server", charset="UTF-8"'


@run
async def test_username_is_none_without_basic_auth():
    async def handler(websocket):
        await websocket.send(repr(websocket.username))

    async with server(handler) as (_, uri):
        async with fastws.connect(uri.replace("ws://", "ws://alice:s3cret@")) as websocket:
            assert await websocket.recv() == "None"


# --- websockets' client -------------------------------------------------------------


@run
async def test_websockets_client_user_info():
    async with serve(whoami, "127.0.0.1", 0, process_request=basic_auth("test", credentials=CREDENTIALS)) as srv:
        port = srv.sockets[0].getsockname()[1]
        async with websockets.asyncio.client.connect(f"ws://alice:s3cret@127.0.0.1:{port}/") as websocket:
            assert await websocket.recv() == "alice"
        with pytest.raises(websockets.exceptions.InvalidStatus) as info:
            async with websockets.asyncio.client.connect(f"ws://alice:nope@127.0.0.1:{port}/"):
                pass  # pragma: no cover
        response = info.value.response
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Basic realm="test", charset="UTF-8"'
        assert response.body == b"Invalid credentials\n"
        with pytest.raises(websockets.exceptions.InvalidStatus) as info:
            async with websockets.asyncio.client.connect(f"ws://127.0.0.1:{port}/"):
                pass  # pragma: no cover
        assert info.value.response.body == b"Missing credentials\n"


# --- arguments ----------------------------------------------------------------------

# kwargs of basic_auth(), exception, message
BAD_ARGUMENTS = [
    ({}, ValueError, "either credentials or check_credentials"),
    ({"credentials": CREDENTIALS, "check_credentials": sync_check}, ValueError, "not both"),
    ({"credentials": "alice:s3cret"}, TypeError, "a (username, password) pair or an iterable"),
    ({"credentials": 42}, TypeError, "a (username, password) pair or an iterable"),
    ({"credentials": [("alice", "s3cret"), "bob"]}, TypeError, "pairs of str, not 'bob'"),
    ({"credentials": [("alice", b"s3cret")]}, TypeError, "pairs of str"),
    ({"credentials": [("alice", "s3cret", "x")]}, TypeError, "pairs of str"),
    ({"credentials": CREDENTIALS, "realm": "a\r\nSet-Cookie: x=y"}, ValueError, "cannot be sent in a quoted string"),
]


@pytest.mark.parametrize("kwargs, error, message", BAD_ARGUMENTS)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error) as info:
        basic_auth(**kwargs)
    assert message in str(info.value)

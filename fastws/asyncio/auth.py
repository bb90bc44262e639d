"""HTTP Basic authentication (RFC 7617) for :func:`~fastws.asyncio.serve`:
:func:`basic_auth` makes the ``process_request`` hook that asks for it.

::

    async with fastws.serve(
        handler, "localhost", 8765,
        process_request=basic_auth(realm="chat", credentials=("alice", "s3cret")),
    ):
        ...

The handler then finds the user's name in ``websocket.username``.
"""

from __future__ import annotations

import hmac
import http
import inspect
from typing import TYPE_CHECKING, Awaitable, Callable, Dict, Iterable, Optional, Tuple, Union

from ..exceptions import InvalidHeader
from ..headers import build_www_authenticate_basic, parse_authorization_basic
from ..http11 import Request, Response

if TYPE_CHECKING:
    from .server import ServerConnection

__all__ = ["basic_auth"]

#: ``check_credentials(username, password)``: a function or a coroutine function.
CheckCredentials = Callable[[str, str], Union[bool, Awaitable[bool]]]
Credentials = Union[Tuple[str, str], Iterable[Tuple[str, str]]]


def _as_pair(value: object) -> Optional[Tuple[str, str]]:
    """``value`` as ``(username, password)``, or None if it is not two strings."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        username, password = value
        if isinstance(username, str) and isinstance(password, str):
            return username, password
    return None


def _credentials_table(credentials: Credentials) -> Dict[str, bytes]:
    """``{username: password as bytes}``, checked."""
    pair = _as_pair(credentials)
    if pair is not None:
        pairs = [pair]
    elif isinstance(credentials, Iterable) and not isinstance(credentials, (str, bytes)):
        pairs = []
        for item in credentials:
            pair = _as_pair(item)
            if pair is None:
                raise TypeError(
                    f"credentials must hold (username, password) pairs of str, not {item!r}"
                )
            pairs.append(pair)
    else:
        raise TypeError(
            "credentials must be a (username, password) pair or an iterable of them,"
            f" not {credentials!r}"
        )
    return {username: password.encode("utf-8", "surrogateescape") for username, password in pairs}


def basic_auth(
    realm: str = "",
    credentials: Optional[Credentials] = None,
    check_credentials: Optional[CheckCredentials] = None,
) -> Callable[[ServerConnection, Request], Awaitable[Optional[Response]]]:
    """A ``process_request`` hook that requires HTTP Basic authentication.

    A request without valid credentials gets 401 Unauthorized, with a
    ``WWW-Authenticate`` header that asks for them and a body that says
    which of ``Missing credentials``, ``Unsupported credentials`` (not the
    Basic scheme, or not ``username:password`` in base64) or ``Invalid
    credentials`` it was. A request with valid ones goes on with the
    handshake, and the connection's ``username`` is set.

    Give exactly one of ``credentials`` and ``check_credentials``.

    Args:
        realm: The protection space, shown by browsers when they ask for a
            password; keep it ASCII.
        credentials: The accepted ``(username, password)`` pair, or an
            iterable of them. Passwords are compared in constant time.
        check_credentials: ``check_credentials(username, password)``, a
            function or a coroutine function, returns whether to let the
            client in.

    Returns:
        The coroutine function to pass as ``process_request`` to
        :func:`~fastws.asyncio.serve`.

    Raises:
        ValueError: If both or neither of ``credentials`` and
            ``check_credentials`` are given, or ``realm`` cannot be sent in a
            header.
        TypeError: If ``credentials`` is not a pair of strings or an iterable
            of them.
    """
    if (credentials is None) == (check_credentials is None):
        raise ValueError("basic_auth() needs either credentials or check_credentials, not both")
    # Built once: a realm with a CR or LF fails here, not on every request.
    challenge = build_www_authenticate_basic(realm)

    if credentials is not None:
        table = _credentials_table(credentials)

        def check_table(username: str, password: str) -> bool:
            # An unknown username costs a comparison too: the time taken does
            # not tell which usernames exist.
            expected = table.get(username)
            given = password.encode("utf-8", "surrogateescape")
            same = hmac.compare_digest(given if expected is None else expected, given)
            return same and expected is not None

        check: CheckCredentials = check_table
    else:
        assert check_credentials is not None
        check = check_credentials

    def unauthorized(connection: ServerConnection, text: str) -> Response:
        response = connection.respond(http.HTTPStatus.UNAUTHORIZED, text)
        response.headers["WWW-Authenticate"] = challenge
        return response

    async def process_request(connection: ServerConnection, request: Request) -> Optional[Response]:
        values = request.headers.get_all("Authorization")
        if not values:
            return unauthorized(connection, "Missing credentials\n")
        if len(values) > 1:  # which one would count?
            return unauthorized(connection, "Unsupported credentials\n")
        try:
            username, password = parse_authorization_basic(values[0])
        except InvalidHeader:
            return unauthorized(connection, "Unsupported credentials\n")
        valid = check(username, password)
        if inspect.isawaitable(valid):
            valid = await valid
        if not valid:
            return unauthorized(connection, "Invalid credentials\n")
        connection.username = username
        return None

    return process_request

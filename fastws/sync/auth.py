"""HTTP Basic authentication (RFC 7617) for the opening handshake:
:func:`basic_auth` makes a ``process_request`` hook."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any, Callable, Iterable, List, Optional, Tuple, Union

from ..exceptions import InvalidHeader
from ..headers import build_www_authenticate_basic, parse_authorization_basic
from ..http11 import Request, Response

if TYPE_CHECKING:  # pragma: no cover
    from .server import ServerConnection

__all__ = ["basic_auth"]

def _is_credentials(value: Any) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], str)
    )


def basic_auth(
    realm: str = "",
    credentials: Union[Tuple[str, str], Iterable[Tuple[str, str]], None] = None,
    check_credentials: Optional[Callable[[str, str], bool]] = None,
) -> Callable[[ServerConnection, Request], Optional[Response]]:
    """A ``process_request`` hook that requires HTTP Basic authentication.

    A request without valid ``Authorization: Basic`` credentials gets 401 with
    ``WWW-Authenticate: Basic realm="...", charset="UTF-8"``; on success the
    hook sets ``connection.username`` and lets the handshake go on.

    Args:
        realm: The protection space named in the challenge.
        credentials: A ``(username, password)`` pair, or an iterable of them.
        check_credentials: ``check_credentials(username, password)`` returns
            True for valid credentials (give it or ``credentials``, not both).

    Raises:
        TypeError: Neither or both of ``credentials`` and
            ``check_credentials`` are given, or ``credentials`` are not pairs
            of strings.
    """
    if (credentials is None) == (check_credentials is None):
        raise TypeError("basic_auth() needs either credentials or check_credentials")
    if credentials is not None:
        pairs: List[Any]
        if _is_credentials(credentials):
            pairs = [credentials]
        elif isinstance(credentials, Iterable):
            pairs = list(credentials)
            for pair in pairs:
                if not _is_credentials(pair):
                    raise TypeError(f"credentials must be (username, password) pairs of str, got {pair!r}")
        else:
            raise TypeError(f"credentials must be (username, password) pairs of str, got {credentials!r}")
        passwords = dict(pairs)

        def check(username: str, password: str) -> bool:
            expected = passwords.get(username)
            if expected is None:
                return False
            return hmac.compare_digest(expected.encode("utf-8"), password.encode("utf-8"))

        check_credentials = check
    assert check_credentials is not None
    challenge = build_www_authenticate_basic(realm)

    def refuse(connection: ServerConnection, text: str) -> Response:
        response = connection.respond(401, text)
        response.headers["WWW-Authenticate"] = challenge
        return response

    def process_request(connection: ServerConnection, request: Request) -> Optional[Response]:
        header = request.headers.get("Authorization")
        if header is None:
            return refuse(connection, "Missing credentials\n")
        try:
            username, password = parse_authorization_basic(header)
        except InvalidHeader:
            return refuse(connection, "Unsupported credentials\n")
        if not check_credentials(username, password):
            connection.logger.info("invalid credentials for user %r", username)
            return refuse(connection, "Invalid credentials\n")
        connection.username = username
        return None

    return process_request

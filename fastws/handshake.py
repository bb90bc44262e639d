"""The opening handshake (RFC 6455 section 4): keys, and building and checking
the client's request and the server's response. The URI parser
(``fastws.uri``) and the header grammars (``fastws.headers``) are
importable from here too.

Pure functions over :class:`~fastws.http11.Request` and
:class:`~fastws.http11.Response`; :mod:`fastws.protocol` strings them together.
Each check raises a subclass of :class:`~fastws.exceptions.InvalidHandshake`
whose ``http_status`` is what a server answers with (:func:`error_response`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, Union

from .exceptions import (
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderValue,
    InvalidMethod,
    InvalidOrigin,
    InvalidStatus,
    InvalidUpgrade,
    MultipleValuesError,
    NegotiationError,
)
from .extensions import ExtensionParams
from .headers import (
    TOKEN,
    Headers,
    HeadersLike,
    _check_value,
    build_authorization_basic,
    build_extension_list,
    parse_extension_list,
    parse_token_list,
)
from .http11 import Request, Response
from .uri import WebSocketURI, parse_uri

__all__ = [
    "GUID",
    "WebSocketURI",
    "parse_uri",
    "generate_key",
    "accept_key",
    "parse_token_list",
    "parse_extension_list",
    "build_extension_list",
    "build_request",
    "validate_response",
    "negotiate_client_extensions",
    "validate_request",
    "check_origins",
    "check_origin",
    "select_subprotocol",
    "offered_subprotocols",
    "negotiate_server_extensions",
    "build_response",
    "reject",
    "error_response",
]

#: The GUID of RFC 6455 section 1.3, appended to the key to compute the accept value.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"



# --- keys -----------------------------------------------------------------------


def generate_key() -> str:
    """A fresh ``Sec-WebSocket-Key``: base64 of 16 random bytes (RFC 6455 section 4.1)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value that answers ``key``: base64 of the
    SHA-1 of ``key`` followed by :data:`GUID` (RFC 6455 section 4.2.2).

    Args:
        key: The client's ``Sec-WebSocket-Key``.
    """
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return binascii.b2a_base64(digest, newline=False).decode("ascii")


# The base64 of 16 bytes: 22 characters of the alphabet and two of padding;
# what base64.b64decode(key, validate=True) takes and decodes to 16 bytes.
_KEY = re.compile(r"[A-Za-z0-9+/]{22}==")


def _check_key(key: str) -> bool:
    return _KEY.fullmatch(key) is not None


# --- header grammars ------------------------------------------------------------


def _values(headers: Headers, name: str) -> str:
    """All values of a list-valued header, joined as one list (RFC 7230 3.2.2)."""
    return ", ".join(headers.get_all(name))


def _single(headers: Headers, name: str) -> Optional[str]:
    try:
        return headers.get(name)
    except MultipleValuesError:
        raise InvalidHeader(name, _values(headers, name), "more than one value") from None


# --- client ---------------------------------------------------------------------


def build_request(
    uri: WebSocketURI,
    key: str,
    *,
    origin: Optional[str] = None,
    subprotocols: Optional[Sequence[str]] = None,
    extensions: Optional[Sequence[Tuple[str, ExtensionParams]]] = None,
    extra_headers: Optional[HeadersLike] = None,
    user_agent: Optional[str] = None,
) -> Request:
    """The client's upgrade request (RFC 6455 section 4.1).

    Args:
        uri: Where to connect; its user info, if any, becomes a Basic
            ``Authorization`` header.
        key: The ``Sec-WebSocket-Key``, from :func:`generate_key`.
        origin: The ``Origin`` header, if any.
        subprotocols: The subprotocols to offer, in order of preference.
        extensions: The extension offers, as for :func:`build_extension_list`.
        extra_headers: Headers added at the end.
        user_agent: The ``User-Agent`` header, if any.

    Returns:
        The request, to send with :meth:`~fastws.http11.Request.serialize`.

    Raises:
        ValueError: If a subprotocol is not a token, or the username in the
            user info contains a colon.
    """
    headers = Headers()
    headers.add("Host", uri.host_header)
    if uri.user_info is not None:
        headers.add("Authorization", build_authorization_basic(*uri.user_info))
    headers.add("Upgrade", "websocket")
    headers.add("Connection", "Upgrade")
    headers.add("Sec-WebSocket-Key", key)
    headers.add("Sec-WebSocket-Version", "13")
    if origin is not None:
        headers.add("Origin", origin)
    if subprotocols:
        for subprotocol in subprotocols:
            if not TOKEN.fullmatch(subprotocol):
                raise ValueError(f"invalid subprotocol {subprotocol!r}: not a token")
        headers.add("Sec-WebSocket-Protocol", ", ".join(subprotocols))
    if extensions:
        headers.add("Sec-WebSocket-Extensions", build_extension_list(extensions))
    if user_agent is not None:
        headers.add("User-Agent", user_agent)
    if extra_headers is not None:
        headers.update(extra_headers)
    return Request(uri.resource_name, headers)


def validate_response(
    response: Response,
    key: str,
    subprotocols: Optional[Sequence[str]] = None,
) -> Optional[str]:
    """Check the server's answer (RFC 6455 section 4.1, client requirements).

    Extensions are checked separately, by :func:`negotiate_client_extensions`.

    Args:
        response: The server's response.
        key: The ``Sec-WebSocket-Key`` the client sent.
        subprotocols: The subprotocols the client offered.

    Returns:
        The subprotocol the server selected, or None.

    Raises:
        ~fastws.exceptions.InvalidStatus: If the status is not 101.
        ~fastws.exceptions.InvalidUpgrade: If ``Upgrade`` or ``Connection`` is
            wrong.
        ~fastws.exceptions.InvalidHeader: If ``Sec-WebSocket-Accept`` is
            missing or does not match the key.
        ~fastws.exceptions.NegotiationError: If the server selected several
            subprotocols, or one that was not offered.
    """
    if response.status_code != 101:
        raise InvalidStatus(response)
    headers = response.headers

    upgrade = parse_token_list(_values(headers, "Upgrade"), "Upgrade", allow_slash=True)
    if [u.lower() for u in upgrade] != ["websocket"]:
        raise InvalidUpgrade("Upgrade", _values(headers, "Upgrade") or None)

    connection = parse_token_list(_values(headers, "Connection"), "Connection")
    if "upgrade" not in (c.lower() for c in connection):
        raise InvalidUpgrade("Connection", _values(headers, "Connection") or None)

    accept = _single(headers, "Sec-WebSocket-Accept")
    if accept is None:
        raise InvalidHeader("Sec-WebSocket-Accept")
    if accept != accept_key(key):
        raise InvalidHeaderValue("Sec-WebSocket-Accept", accept, "does not match the key")

    values = headers.get_all("Sec-WebSocket-Protocol")
    if not values:
        return None
    selected = parse_token_list(", ".join(values), "Sec-WebSocket-Protocol")
    if len(selected) != 1:
        raise NegotiationError(
            f"server selected several subprotocols: {', '.join(selected) or '(none)'}"
        )
    subprotocol = selected[0]
    if not subprotocols:
        raise NegotiationError(f"server selected subprotocol {subprotocol!r}; none was offered")
    if subprotocol not in subprotocols:
        raise NegotiationError(
            f"server selected subprotocol {subprotocol!r}, which was not offered"
            f" (offered: {', '.join(subprotocols)})"
        )
    return subprotocol


def negotiate_client_extensions(headers: Headers, factories: Sequence) -> list:
    """Turn the server's ``Sec-WebSocket-Extensions`` into negotiated extensions.

    Args:
        headers: The response's headers.
        factories: The client's extension factories, the ones it offered.

    Returns:
        The negotiated extensions, in the answer's order.

    Raises:
        ~fastws.exceptions.NegotiationError: If the server accepted an
            extension that was not offered, one that its factory refuses, or
            several that use RSV1.
    """
    value = _values(headers, "Sec-WebSocket-Extensions")
    if not value:
        return []
    accepted: list = []
    for ext_name, params in parse_extension_list(value):
        # Several offers of one extension (several factories with its name): the
        # first whose offer matches the answer takes it.
        candidates = [factory for factory in factories if factory.name == ext_name]
        if not candidates:
            raise NegotiationError(f"server accepted extension {ext_name!r}, which was not offered")
        for factory in candidates:
            try:
                extension = factory.accept(params, list(accepted))
            except NegotiationError:
                if factory is candidates[-1]:
                    raise
                continue
            accepted.append(extension)
            break
    _check_rsv1(accepted)
    return accepted


def _check_rsv1(extensions: Sequence) -> None:
    users = [ext.name for ext in extensions if getattr(ext, "uses_rsv1", False)]
    if len(users) > 1:
        raise NegotiationError(f"several extensions use RSV1: {', '.join(users)}")


# --- server ---------------------------------------------------------------------

#: ``Connection`` values that ask for the upgrade, in lower case, which need no parsing.
_CONNECTION_UPGRADE = frozenset({"upgrade", "keep-alive, upgrade", "upgrade, keep-alive"})


def validate_request(request: Request) -> str:
    """Check a client's upgrade request (RFC 6455 section 4.2.1).

    Args:
        request: The client's request.

    Returns:
        Its ``Sec-WebSocket-Key``.

    Raises:
        ~fastws.exceptions.InvalidHandshake: 405 for a method other than GET,
            400 for an HTTP version other than 1.1.
        ~fastws.exceptions.InvalidHeader: 400 for a missing or repeated
            ``Host``, or a bad ``Sec-WebSocket-Key``.
        ~fastws.exceptions.InvalidUpgrade: 426 when ``Upgrade``,
            ``Connection`` or ``Sec-WebSocket-Version`` does not ask for
            WebSocket version 13.
    """
    if request.method != "GET":
        raise InvalidMethod(
            f"method {request.method} is not allowed; the opening handshake is a GET",
            http_status=405,
        )
    if request.version != "HTTP/1.1":
        raise InvalidHandshake(f"{request.version} request; WebSocket needs HTTP/1.1")
    headers = request.headers
    # Lower-cased names -> values: the lookups below skip lower-casing the
    # names they know (the lists are Headers' own: read, never changed).
    index = headers._lookup()

    host = index.get("host")
    if host is None:
        raise InvalidHeader("Host")
    if len(host) > 1:
        raise InvalidHeader("Host", ", ".join(host), "more than one value")

    # The usual values, "websocket" and "Upgrade" (or "keep-alive, Upgrade"
    # from Firefox), take the short way; every other value is parsed.
    values = index.get("upgrade", ())
    if len(values) != 1 or values[0].lower() != "websocket":
        upgrade = parse_token_list(", ".join(values), "Upgrade", allow_slash=True)
        if "websocket" not in (u.lower() for u in upgrade):
            raise InvalidUpgrade("Upgrade", _values(headers, "Upgrade") or None)

    values = index.get("connection", ())
    if len(values) != 1 or values[0].lower() not in _CONNECTION_UPGRADE:
        connection = parse_token_list(", ".join(values), "Connection")
        if "upgrade" not in (c.lower() for c in connection):
            raise InvalidUpgrade("Connection", _values(headers, "Connection") or None)

    versions = index.get("sec-websocket-version", [])
    if versions != ["13"]:
        raise InvalidUpgrade(
            "Sec-WebSocket-Version",
            ", ".join(versions) or None,
            "only version 13 is supported" if versions else None,
        )

    keys = index.get("sec-websocket-key")
    if keys is None:
        raise InvalidHeader("Sec-WebSocket-Key")
    if len(keys) > 1:
        raise InvalidHeader("Sec-WebSocket-Key", ", ".join(keys), "more than one value")
    key = keys[0]
    if not _check_key(key):
        raise InvalidHeaderValue("Sec-WebSocket-Key", key, "not the base64 of 16 bytes")
    return key


#: An item of a server's ``origins``: an exact ``Origin`` value, a compiled
#: regular expression that must match a whole ``Origin`` value, or None for a
#: request without one.
OriginRule = Union[str, re.Pattern[str], None]


def check_origins(origins: Optional[Iterable[OriginRule]]) -> Optional[List[OriginRule]]:
    """Check a server's ``origins`` option before any request arrives.

    Args:
        origins: The allowed origins, as for :func:`check_origin`.

    Returns:
        ``origins`` as a list, or None.

    Raises:
        TypeError: If ``origins`` is a string (a list of one is meant), or an
            item is neither a string, a compiled ``str`` regular expression nor
            None.
    """
    if origins is None:
        return None
    if isinstance(origins, (str, bytes)):
        raise TypeError(
            f"origins must be a list of origins, not the {type(origins).__name__} {origins!r}"
        )
    rules = list(origins)
    for rule in rules:
        if rule is None or isinstance(rule, str):
            continue
        if isinstance(rule, re.Pattern) and isinstance(rule.pattern, str):
            continue
        raise TypeError(
            "origins must hold strings, compiled str regular expressions or None,"
            f" not {rule!r}"
        )
    return rules


def check_origin(request: Request, origins: Optional[Sequence[OriginRule]]) -> Optional[str]:
    """Check ``Origin`` against an allow-list.

    Args:
        request: The client's request.
        origins: The allowed origins: strings match the header exactly,
            compiled regular expressions must match all of it
            (:meth:`re.Pattern.fullmatch`), and None allows requests without
            ``Origin`` (non-browser clients). None instead of a list allows
            everything.

    Returns:
        The request's ``Origin``, or None.

    Raises:
        ~fastws.exceptions.InvalidHeader: 400, if ``Origin`` is repeated.
        ~fastws.exceptions.InvalidOrigin: 403, if the origin is not allowed.
    """
    origin = _single(request.headers, "Origin")
    if origins is None:
        return origin
    for rule in origins:
        if rule is None or isinstance(rule, str):
            if rule == origin:
                return origin
        elif origin is not None and rule.fullmatch(origin) is not None:
            return origin
    raise InvalidOrigin("Origin", origin, "not allowed" if origin is not None else None)


def select_subprotocol(offered: Sequence[str], supported: Optional[Sequence[str]]) -> Optional[str]:
    """Default subprotocol choice.

    Args:
        offered: The subprotocols the client offered.
        supported: The server's, in its order of preference.

    Returns:
        The first of ``supported`` that the client offered; None when there is
        no match (the response then names no subprotocol, as RFC 6455 allows,
        and the client decides).
    """
    if not supported or not offered:
        return None
    for subprotocol in supported:
        if subprotocol in offered:
            return subprotocol
    return None


def offered_subprotocols(request: Request) -> list:
    """Subprotocols the client offered, in its order of preference."""
    values = request.headers.get_all("Sec-WebSocket-Protocol")
    if not values:
        return []
    return parse_token_list(", ".join(values), "Sec-WebSocket-Protocol")


def negotiate_server_extensions(
    request: Request, factories: Sequence
) -> Tuple[Optional[str], list]:
    """Walk the client's offers in its order and let the server's ``factories``
    accept them: each factory accepts at most one offer, and an offer its
    factory declines, or a second extension that uses RSV1, is skipped.

    Args:
        request: The client's request.
        factories: The server's extension factories.

    Returns:
        The ``Sec-WebSocket-Extensions`` value to answer with (None if nothing
        was accepted), and the negotiated extensions.

    Raises:
        ~fastws.exceptions.InvalidHeader: If the header does not follow the
            grammar.
    """
    value = _values(request.headers, "Sec-WebSocket-Extensions")
    if not value or not factories:
        return None, []
    by_name = {factory.name: factory for factory in factories}
    accepted: list = []
    answers: list = []
    done: set = set()
    for ext_name, params in parse_extension_list(value):
        factory = by_name.get(ext_name)
        if factory is None or ext_name in done:
            continue
        uses_rsv1 = any(getattr(ext, "uses_rsv1", False) for ext in accepted)
        try:
            response_params, extension = factory.negotiate(params, list(accepted))
        except NegotiationError:
            continue
        if uses_rsv1 and getattr(extension, "uses_rsv1", False):
            continue  # RSV1 is taken: decline
        accepted.append(extension)
        answers.append((ext_name, response_params))
        done.add(ext_name)
    if not answers:
        return None, []
    return build_extension_list(answers), accepted


def build_response(
    key: str,
    *,
    subprotocol: Optional[str] = None,
    extensions: Optional[str] = None,
    extra_headers: Optional[HeadersLike] = None,
    server_header: Optional[str] = None,
) -> Response:
    """The server's 101 Switching Protocols (RFC 6455 section 4.2.2).

    Args:
        key: The client's ``Sec-WebSocket-Key``.
        subprotocol: The selected subprotocol, if any.
        extensions: The ``Sec-WebSocket-Extensions`` value, if any.
        extra_headers: Headers added at the end.
        server_header: The ``Server`` header, if any.
    """
    # Names and fixed values are known to be valid, and so is the base64 of
    # the accept key: only the values that come from elsewhere are checked.
    items = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
    ]
    if subprotocol is not None:
        items.append(("Sec-WebSocket-Protocol", _check_value("Sec-WebSocket-Protocol", subprotocol)))
    if extensions is not None:
        items.append(("Sec-WebSocket-Extensions", _check_value("Sec-WebSocket-Extensions", extensions)))
    if server_header is not None:
        items.append(("Server", _check_value("Server", server_header)))
    headers = Headers._trusted(items)
    if extra_headers is not None:
        headers.update(extra_headers)
    return Response(101, "Switching Protocols", headers)


def reject(
    status: int,
    text: str,
    *,
    headers: Optional[HeadersLike] = None,
    server_header: Optional[str] = None,
) -> Response:
    """An HTTP error response with a short plain-text body; the server closes the
    connection after it (``Connection: close``).

    Args:
        status: The HTTP status.
        text: The body, sent as ``text/plain`` in UTF-8.
        headers: More headers.
        server_header: The ``Server`` header, unless ``headers`` has one.
    """
    body = text.encode("utf-8")
    response = Response(status)
    h = response.headers
    if headers is not None:
        h.update(headers)
    if server_header is not None and "Server" not in h:
        h.add("Server", server_header)
    # A sender of Upgrade lists it in Connection (RFC 7230 section 6.7).
    h["Connection"] = "Upgrade, close" if "Upgrade" in h else "close"
    h["Content-Type"] = "text/plain; charset=utf-8"
    h["Content-Length"] = str(len(body))
    response.body = body
    return response


def error_response(exc: InvalidHandshake, *, server_header: Optional[str] = None) -> Response:
    """The response for a failed check: ``exc.http_status`` with the error message
    as body. 426 carries ``Upgrade: websocket`` and ``Sec-WebSocket-Version: 13``
    (RFC 6455 section 4.2.2, RFC 7231 section 6.5.15); 405 carries ``Allow: GET``.

    Args:
        exc: The error.
        server_header: The ``Server`` header, if any.
    """
    status = exc.http_status
    headers = Headers()
    if status == 426:
        headers.add("Upgrade", "websocket")
        headers.add("Sec-WebSocket-Version", "13")
    elif status == 405:
        headers.add("Allow", "GET")
    return reject(
        status,
        f"Failed to open a WebSocket connection: {exc}.\n",
        headers=headers,
        server_header=server_header,
    )


#: Signature of a server's ``select_subprotocol`` hook.
SelectSubprotocol = Callable[[Request, Sequence[str]], Optional[str]]
#: Signature of a server's ``process_request`` hook.
ProcessRequest = Callable[[Request], Optional[Response]]

"""The opening handshake (RFC 6455 section 4): keys, header grammars, and building
and checking the client's request and the server's response.

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
import urllib.parse
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

from .exceptions import (
    InvalidHandshake,
    InvalidHeader,
    InvalidOrigin,
    InvalidStatus,
    InvalidUpgrade,
    InvalidURI,
    MultipleValuesError,
    NegotiationError,
)
from .extensions import ExtensionParams
from .http11 import Headers, HeadersLike, Request, Response

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

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_OWS = " \t"
# RFC 3986 section 3.2.2: a reg-name (unreserved, pct-encoded, sub-delims), or the
# inside of an IP-literal (hex digits, colons, dots, a %-zone). No spaces or
# controls: the host goes into the Host header as is.
_HOST = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=%]+|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(%[A-Za-z0-9\-._~]+)?")


# --- URIs -----------------------------------------------------------------------


@dataclass(frozen=True)
class WebSocketURI:
    """A parsed ``ws://`` or ``wss://`` URI, as :func:`parse_uri` makes it.

    Attributes:
        secure (bool): True for ``wss://``.
        host (str): The host name (IDNA-encoded) or IP address.
        port (int): The port, 80 or 443 unless the URI gives one.
    """

    secure: bool
    host: str
    port: int
    #: Path and query: the request target of the handshake.
    resource_name: str
    #: ``(username, password)`` from ``user:password@``, sent as Basic auth.
    user_info: Optional[Tuple[str, str]] = None

    @property
    def host_header(self) -> str:
        """The ``Host`` value: host, bracketed if IPv6, and the port unless default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse_uri(uri: str) -> WebSocketURI:
    """Parse a WebSocket URI (RFC 6455 section 3).

    Args:
        uri: A ``ws://`` or ``wss://`` URI.

    Returns:
        The parsed URI; its path is percent-encoded where the request line
        needs it.

    Raises:
        ~fastws.exceptions.InvalidURI: If the scheme is not ``ws`` or ``wss``,
            or the URI has no host, a fragment, a bad port or a bad host.
    """
    try:
        parsed = urllib.parse.urlsplit(uri)
        port = parsed.port
    except ValueError as exc:
        raise InvalidURI(uri, str(exc)) from None
    scheme = parsed.scheme.lower()
    if scheme not in ("ws", "wss"):
        raise InvalidURI(uri, "scheme isn't ws or wss")
    if not parsed.hostname:
        raise InvalidURI(uri, "no host")
    if parsed.fragment:
        raise InvalidURI(uri, "fragment identifiers are not allowed")
    secure = scheme == "wss"
    path = parsed.path or "/"
    if parsed.query:
        path = f"{path}?{parsed.query}"
    # Percent-encode what cannot go on the request line as is (spaces, non-ASCII).
    path = urllib.parse.quote(path, safe="/%:@!$&'()*+,;=?~-._")
    user_info = None
    if parsed.username is not None or parsed.password is not None:
        user_info = (
            urllib.parse.unquote(parsed.username or ""),
            urllib.parse.unquote(parsed.password or ""),
        )
    host = parsed.hostname
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidURI(uri, "host cannot be encoded") from None
    if not _HOST.fullmatch(host):
        raise InvalidURI(uri, f"invalid host {host!r}")
    return WebSocketURI(secure, host, port or (443 if secure else 80), path, user_info)


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
    return base64.b64encode(digest).decode("ascii")


def _check_key(key: str) -> bool:
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return False
    return len(raw) == 16


# --- header grammars ------------------------------------------------------------


def _values(headers: Headers, name: str) -> str:
    """All values of a list-valued header, joined as one list (RFC 7230 3.2.2)."""
    return ", ".join(headers.get_all(name))


def parse_token_list(value: str, name: str = "header", *, allow_slash: bool = False) -> list:
    """Parse ``1#token`` (RFC 7230 section 7): comma-separated tokens with optional
    whitespace; empty elements are skipped. Tokens keep their case.

    Args:
        value: The header's value.
        name: The header's name, for the error.
        allow_slash: Accept ``token/token`` (the ``Upgrade`` header's
            protocol/version).

    Returns:
        The tokens, in order.

    Raises:
        ~fastws.exceptions.InvalidHeader: If an element is not a token.
    """
    tokens = []
    for element in value.split(","):
        element = element.strip(_OWS)
        if not element:
            continue
        parts = element.split("/", 1) if allow_slash else [element]
        if not all(_TOKEN.fullmatch(p) for p in parts):
            raise InvalidHeader(name, value, f"{element!r} is not a token")
        tokens.append(element)
    return tokens


def _parse_quoted(value: str, pos: int, name: str, header: str) -> Tuple[str, int]:
    """Parse a quoted-string starting at ``value[pos] == '"'``."""
    out: List[str] = []
    pos += 1
    while pos < len(value):
        char = value[pos]
        if char == '"':
            return "".join(out), pos + 1
        if char == "\\":
            pos += 1
            if pos >= len(value):
                break
            char = value[pos]
        out.append(char)
        pos += 1
    raise InvalidHeader(name, header, "unterminated quoted string")


def parse_extension_list(value: str, name: str = "Sec-WebSocket-Extensions") -> list:
    """Parse a ``Sec-WebSocket-Extensions`` value (RFC 6455 section 9.1).

    Args:
        value: The header's value.
        name: The header's name, for the error.

    Returns:
        ``[(extension_name, [(param, value or None), ...]), ...]``, in order. A
        quoted parameter value is unquoted, and must then be a token.

    Raises:
        ~fastws.exceptions.InvalidHeader: If the value does not follow the
            grammar.
    """
    result: list = []
    pos = 0
    n = len(value)

    def skip_ows(i: int) -> int:
        while i < n and value[i] in _OWS:
            i += 1
        return i

    def read_token(i: int, what: str) -> Tuple[str, int]:
        m = _TOKEN.match(value, i)
        if m is None:
            raise InvalidHeader(name, value, f"expected {what} at position {i}")
        return m.group(), m.end()

    while True:
        pos = skip_ows(pos)
        if pos < n and value[pos] == ",":  # empty list element
            pos += 1
            continue
        if pos >= n:
            break
        ext_name, pos = read_token(pos, "an extension name")
        params: ExtensionParams = []
        while True:
            pos = skip_ows(pos)
            if pos >= n or value[pos] == ",":
                break
            if value[pos] != ";":
                raise InvalidHeader(name, value, f"unexpected {value[pos]!r} at position {pos}")
            pos = skip_ows(pos + 1)
            param, pos = read_token(pos, "a parameter name")
            pos = skip_ows(pos)
            param_value: Optional[str] = None
            if pos < n and value[pos] == "=":
                pos = skip_ows(pos + 1)
                if pos < n and value[pos] == '"':
                    param_value, pos = _parse_quoted(value, pos, name, value)
                    if not _TOKEN.fullmatch(param_value):
                        raise InvalidHeader(
                            name, value, f"quoted value {param_value!r} is not a token"
                        )
                else:
                    param_value, pos = read_token(pos, "a parameter value")
            params.append((param, param_value))
        result.append((ext_name, params))
        if pos < n:  # at a comma
            pos += 1
    return result


def build_extension_list(extensions: Sequence[Tuple[str, ExtensionParams]]) -> str:
    """Serialize extensions for the ``Sec-WebSocket-Extensions`` header.

    Args:
        extensions: ``[(name, [(param, value or None), ...]), ...]``.

    Returns:
        The header's value.
    """
    parts = []
    for ext_name, params in extensions:
        items = [ext_name]
        for param, param_value in params:
            items.append(param if param_value is None else f"{param}={param_value}")
        parts.append("; ".join(items))
    return ", ".join(parts)


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
        ValueError: If a subprotocol is not a token.
    """
    headers = Headers()
    headers.add("Host", uri.host_header)
    if uri.user_info is not None:
        credentials = ":".join(uri.user_info).encode("utf-8")
        headers.add("Authorization", "Basic " + base64.b64encode(credentials).decode("ascii"))
    headers.add("Upgrade", "websocket")
    headers.add("Connection", "Upgrade")
    headers.add("Sec-WebSocket-Key", key)
    headers.add("Sec-WebSocket-Version", "13")
    if origin is not None:
        headers.add("Origin", origin)
    if subprotocols:
        for subprotocol in subprotocols:
            if not _TOKEN.fullmatch(subprotocol):
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
        raise InvalidHeader("Sec-WebSocket-Accept", accept, "does not match the key")

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
        raise InvalidHandshake(
            f"method {request.method} is not allowed; the opening handshake is a GET",
            http_status=405,
        )
    if request.version != "HTTP/1.1":
        raise InvalidHandshake(f"{request.version} request; WebSocket needs HTTP/1.1")
    headers = request.headers

    if _single(headers, "Host") is None:
        raise InvalidHeader("Host")

    upgrade = parse_token_list(_values(headers, "Upgrade"), "Upgrade", allow_slash=True)
    if "websocket" not in (u.lower() for u in upgrade):
        raise InvalidUpgrade("Upgrade", _values(headers, "Upgrade") or None)

    connection = parse_token_list(_values(headers, "Connection"), "Connection")
    if "upgrade" not in (c.lower() for c in connection):
        raise InvalidUpgrade("Connection", _values(headers, "Connection") or None)

    versions = headers.get_all("Sec-WebSocket-Version")
    if versions != ["13"]:
        raise InvalidUpgrade(
            "Sec-WebSocket-Version",
            ", ".join(versions) or None,
            "only version 13 is supported" if versions else None,
        )

    key = _single(headers, "Sec-WebSocket-Key")
    if key is None:
        raise InvalidHeader("Sec-WebSocket-Key")
    if not _check_key(key):
        raise InvalidHeader("Sec-WebSocket-Key", key, "not the base64 of 16 bytes")
    return key


def check_origin(request: Request, origins: Optional[Sequence[Optional[str]]]) -> Optional[str]:
    """Check ``Origin`` against an allow-list.

    Args:
        request: The client's request.
        origins: The allowed origins; put None in it to allow requests without
            ``Origin`` (non-browser clients). None allows everything.

    Returns:
        The request's ``Origin``, or None.

    Raises:
        ~fastws.exceptions.InvalidOrigin: 403, if the origin is not allowed.
    """
    origin = _single(request.headers, "Origin")
    if origins is not None and origin not in origins:
        raise InvalidOrigin("Origin", origin, "not allowed" if origin is not None else None)
    return origin


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
    return parse_token_list(
        _values(request.headers, "Sec-WebSocket-Protocol"), "Sec-WebSocket-Protocol"
    )


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
    headers = Headers()
    headers.add("Upgrade", "websocket")
    headers.add("Connection", "Upgrade")
    headers.add("Sec-WebSocket-Accept", accept_key(key))
    if subprotocol is not None:
        headers.add("Sec-WebSocket-Protocol", subprotocol)
    if extensions is not None:
        headers.add("Sec-WebSocket-Extensions", extensions)
    if server_header is not None:
        headers.add("Server", server_header)
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

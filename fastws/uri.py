"""WebSocket URIs (RFC 6455 section 3): ``ws://`` and ``wss://``, parsed."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Optional, Tuple

from .exceptions import InvalidURI

__all__ = ["WebSocketURI", "parse_uri"]

# RFC 3986 section 3.2.2: a reg-name (unreserved, pct-encoded, sub-delims), or the
# inside of an IP-literal (hex digits, colons, dots, a %-zone). No spaces or
# controls: the host goes into the Host header as is.
_HOST = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=%]+|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(%[A-Za-z0-9\-._~]+)?")


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

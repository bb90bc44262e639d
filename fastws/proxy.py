"""Proxies for clients, without I/O: which proxy applies to a URI, the
``CONNECT`` request an HTTP proxy gets, and the parser of its answer.

The drivers do the I/O: :mod:`fastws.asyncio.proxy` and
:mod:`fastws.sync.proxy`.

Supported proxy URLs: ``http://`` and ``https://`` (an HTTP proxy opening a
tunnel with ``CONNECT``; TLS to the proxy itself for ``https://``), and
``socks4://``, ``socks4a://``, ``socks5://``, ``socks5h://`` (through the
optional ``python-socks`` package; the ``a`` and ``h`` variants let the proxy
resolve the host name).
"""

from __future__ import annotations

import re
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Optional, Tuple, Union

from .exceptions import InvalidMessage, InvalidProxy, InvalidProxyMessage, InvalidProxyStatus
from .headers import Headers, build_authorization_basic
from .http11 import (
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    MAX_LINE,
    Response,
    ResponseParser,
    _HeadParser,
)
from .uri import _HOST, WebSocketURI
from .version import __version__

__all__ = [
    "Proxy",
    "parse_proxy",
    "get_proxy",
    "resolve_proxy",
    "prepare_connect_request",
    "ConnectResponseParser",
    "USER_AGENT",
    "DEFAULT_PORTS",
]

#: The ``User-Agent`` header of a ``CONNECT`` request unless told otherwise.
USER_AGENT = f"fastws/{__version__}"

#: The port of a proxy whose URL gives none, by scheme.
DEFAULT_PORTS = {
    "http": 80,
    "https": 443,
    "socks4": 1080,
    "socks4a": 1080,
    "socks5": 1080,
    "socks5h": 1080,
}

# Everything after the scheme (or from the start, without one: "user:pass@host",
# "http:/user:pass@host") to the last @: the credentials, even when a password
# holds an unencoded "/", "?", "#" or "@".
_USER_INFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*:/{1,2})?.*@", re.DOTALL)


def _redact(proxy: str) -> str:
    """The URL with its credentials replaced by ``***``, for error messages."""
    return _USER_INFO.sub(lambda m: (m.group(1) or "") + "***@", proxy, count=1)


@dataclass(frozen=True)
class Proxy:
    """A parsed proxy URL, as :func:`parse_proxy` makes it.

    Attributes:
        scheme (str): ``"http"``, ``"https"``, ``"socks4"``, ``"socks4a"``,
            ``"socks5"`` or ``"socks5h"``.
        host (str): The proxy's host name (IDNA-encoded, lower case) or IP address.
        port (int): The proxy's port; :data:`DEFAULT_PORTS` if the URL gives none.
        user_info (tuple[str, str] | None): ``(username, password)`` from
            ``user:password@`` in the URL, percent-decoded.
    """

    scheme: str
    host: str
    port: int
    user_info: Optional[Tuple[str, str]] = None

    @property
    def username(self) -> Optional[str]:
        """The username, or None without credentials."""
        return None if self.user_info is None else self.user_info[0]

    @property
    def password(self) -> Optional[str]:
        """The password, or None without credentials."""
        return None if self.user_info is None else self.user_info[1]

    @property
    def is_socks(self) -> bool:
        """True for the SOCKS schemes, False for ``http`` and ``https``."""
        return self.scheme.startswith("socks")

    @property
    def shown(self) -> str:
        """The proxy's URL without its credentials, for messages and logs."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def __repr__(self) -> str:
        # Never show the password (a Proxy may end up in a log or a traceback).
        user = "" if self.user_info is None else f", username={self.user_info[0]!r}"
        return f"Proxy(scheme={self.scheme!r}, host={self.host!r}, port={self.port}{user})"


def parse_proxy(proxy: str) -> Proxy:
    """Parse a proxy URL such as ``http://user:pass@proxy.example:3128``.

    Args:
        proxy: The proxy's URL; its scheme is one of :data:`DEFAULT_PORTS`.

    Returns:
        The parsed proxy.

    Raises:
        ~fastws.exceptions.InvalidProxy: If the scheme isn't supported, the URL
            has no host, a bad host or port, a path, query or fragment, or a
            username without a password. The URL in the message has its
            credentials replaced by ``***``.
    """
    shown = _redact(proxy)
    # urllib's messages may quote a piece of the URL, credentials included:
    # they are not passed on.
    try:
        parsed = urllib.parse.urlsplit(proxy)
    except ValueError:
        raise InvalidProxy(shown, "not a valid URL") from None
    try:
        port = parsed.port
    except ValueError:
        raise InvalidProxy(shown, "invalid port") from None
    scheme = parsed.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        if not scheme or not shown.lower().startswith(f"{scheme}:"):
            # No scheme, or what urllib took for one is part of the credentials
            # ("user:pass@host"): not to be shown.
            what = "no scheme"
        else:
            what = f"scheme {scheme!r}"
        raise InvalidProxy(shown, f"{what} isn't supported (use http, https, socks4, socks4a, socks5 or socks5h)")
    if not parsed.hostname:
        raise InvalidProxy(shown, "no host")
    if parsed.path not in ("", "/"):
        raise InvalidProxy(shown, "a proxy URL has no path")
    if parsed.query:
        raise InvalidProxy(shown, "a proxy URL has no query")
    if parsed.fragment:
        raise InvalidProxy(shown, "a proxy URL has no fragment")
    user_info = None
    if parsed.username is not None:
        if parsed.password is None:
            raise InvalidProxy(shown, "username without a password")
        try:
            username = urllib.parse.unquote(parsed.username, errors="strict")
            password = urllib.parse.unquote(parsed.password, errors="strict")
        except UnicodeDecodeError:
            raise InvalidProxy(shown, "credentials are not valid UTF-8 once percent-decoded") from None
        if ":" in username and scheme in ("http", "https"):
            raise InvalidProxy(shown, "username contains a colon, which Basic authentication cannot send")
        user_info = (username, password)
    try:
        host = parsed.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidProxy(shown, "host cannot be encoded") from None
    if not _HOST.fullmatch(host):
        raise InvalidProxy(shown, f"invalid host {host!r}")
    return Proxy(scheme, host, port or DEFAULT_PORTS[scheme], user_info)


def get_proxy(uri: WebSocketURI) -> Optional[str]:
    """The proxy the environment configures for ``uri``, if any.

    Read with :func:`urllib.request.getproxies` (the ``*_proxy`` environment
    variables, upper or lower case, or the system's settings on macOS and
    Windows). The first that is set wins:

    * ``ws://``: ``WS_PROXY``, ``SOCKS_PROXY``, ``HTTPS_PROXY``, ``HTTP_PROXY``,
      ``ALL_PROXY``;
    * ``wss://``: ``WSS_PROXY``, ``SOCKS_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``.

    That is the order of the websockets library (RFC 6455's "Proxy Usage": a
    SOCKS proxy first, then the proxy for HTTPS over the one for HTTP), with
    ``ALL_PROXY`` last, which websockets does not read.

    None if ``NO_PROXY`` (through :func:`urllib.request.proxy_bypass`) names the
    host: a host name, a domain suffix, ``host:port``, or ``*`` for every host.

    Args:
        uri: The WebSocket URI to connect to.

    Returns:
        The proxy's URL as configured, not parsed; None for a direct connection.
    """
    if urllib.request.proxy_bypass(f"{uri.host}:{uri.port}"):
        return None
    proxies = urllib.request.getproxies()
    keys = ("wss", "socks", "https", "all") if uri.secure else ("ws", "socks", "https", "http", "all")
    for key in keys:
        proxy = proxies.get(key)
        if proxy:
            # A system's SOCKS setting reads as http://host:port (macOS).
            if key == "socks" and proxy.startswith("http://"):
                proxy = "socks5h://" + proxy[len("http://") :]
            return proxy
    return None


def resolve_proxy(proxy: Union[bool, str, None], uri: WebSocketURI) -> Optional[Proxy]:
    """The proxy to connect to ``uri`` through, from a client's ``proxy`` argument.

    Args:
        proxy: True (the default of the clients) for the environment's proxy
            (:func:`get_proxy`); None or False for a direct connection; a proxy
            URL for that proxy.
        uri: The WebSocket URI to connect to.

    Returns:
        The parsed proxy, or None for a direct connection.

    Raises:
        ~fastws.exceptions.InvalidProxy: If the proxy URL is invalid (the
            environment's too).
        TypeError: If ``proxy`` is something else.
    """
    if proxy is True:
        proxy = get_proxy(uri)
    if proxy is None or proxy is False:
        return None
    if not isinstance(proxy, str):
        raise TypeError(f"proxy must be True, None or a URL, not {type(proxy).__name__}")
    return parse_proxy(proxy)


def prepare_connect_request(
    proxy: Proxy,
    uri: WebSocketURI,
    user_agent_header: Optional[str] = USER_AGENT,
) -> bytes:
    """The ``CONNECT`` request asking an HTTP proxy for a tunnel to ``uri``'s host.

    Args:
        proxy: The proxy; its credentials, if any, go in ``Proxy-Authorization``
            with the Basic scheme.
        uri: The WebSocket URI whose host and port the tunnel goes to.
        user_agent_header: The ``User-Agent`` header; None for none.

    Returns:
        The request line, the headers and the blank line.

    Raises:
        ValueError: If ``user_agent_header`` has a forbidden character.
    """
    host = f"[{uri.host}]" if ":" in uri.host else uri.host
    authority = f"{host}:{uri.port}"
    headers = Headers()
    headers["Host"] = authority
    if user_agent_header is not None:
        headers["User-Agent"] = user_agent_header
    if proxy.user_info is not None:
        headers["Proxy-Authorization"] = build_authorization_basic(*proxy.user_info)
    return f"CONNECT {authority} HTTP/1.1\r\n".encode("ascii") + headers.serialize() + b"\r\n"


class ConnectResponseParser(_HeadParser[Tuple[str, int, str]]):
    """Incremental parser of an HTTP proxy's answer to ``CONNECT``, with limits.

    Only the status line and the headers are read: after a 2xx answer the
    tunnel begins (RFC 9110 section 9.3.6), so what follows the blank line is
    the target's data, kept in :attr:`trailing`; the body of a refusal is not
    read (the connection is closed).

    Args:
        max_line: The longest status line or header line, without its CRLF
            (default :data:`~fastws.http11.MAX_LINE`).
        max_headers: The most header lines (default
            :data:`~fastws.http11.MAX_HEADERS`).
        max_header_bytes: The most bytes of status line and headers together
            (default :data:`~fastws.http11.MAX_HEADER_BYTES`).

    Attributes:
        response (~fastws.http11.Response | None): The 2xx answer, once complete.
        trailing (bytes): The bytes received after the answer's head.
    """

    _start_forbidden = ResponseParser._start_forbidden
    _parse_start_line = ResponseParser._parse_start_line

    def __init__(
        self,
        *,
        max_line: int = MAX_LINE,
        max_headers: int = MAX_HEADERS,
        max_header_bytes: int = MAX_HEADER_BYTES,
    ) -> None:
        super().__init__(max_line=max_line, max_headers=max_headers, max_header_bytes=max_header_bytes)
        self.response: Optional[Response] = None
        self.trailing = b""

    def feed(self, data: Union[bytes, bytearray, memoryview]) -> Optional[Response]:
        """Parse the next bytes of the answer.

        Args:
            data: The bytes received, any bytes-like object.

        Returns:
            The :class:`~fastws.http11.Response` once its head is complete and
            its status is 2xx; None before.

        Raises:
            ~fastws.exceptions.InvalidProxyMessage: If the answer cannot be
                parsed or breaks a limit.
            ~fastws.exceptions.InvalidProxyStatus: If the status isn't 2xx.
            RuntimeError: If the answer was complete already, or an error was
                raised already.
        """
        if self.response is not None or self._error is not None:
            raise RuntimeError("the proxy's answer was parsed already")
        if not self._buf and self._start is None and bytes(data[:1]) in (b"\x15", b"\x16"):
            # A TLS record (alert, handshake): the proxy speaks TLS.
            self._error = InvalidMessage("TLS")
            raise InvalidProxyMessage("the proxy answered with TLS: is it an https:// proxy?")
        try:
            done = self._feed_head(data)
        except InvalidMessage as exc:
            raise InvalidProxyMessage(f"invalid answer from the proxy: {exc}") from exc
        if not done:
            return None
        self.trailing = self._trailing()
        version, status, reason = self._start_line()
        response = Response(status, reason, self._headers, b"", version)
        response.reason_phrase = reason  # as received, empty included
        if not 200 <= status < 300:
            self._error = InvalidMessage("refused")  # no further feed
            raise InvalidProxyStatus(response)
        self.response = response
        return response

    def feed_eof(self) -> None:
        """Tell the parser that the proxy closed the connection before the end
        of the answer's head.

        Raises:
            ~fastws.exceptions.InvalidProxyMessage: Always, unless the answer
                was complete (then it does nothing).
        """
        if self.response is not None:
            return
        self._error = InvalidMessage("closed")
        raise InvalidProxyMessage("the proxy closed the connection before answering CONNECT")

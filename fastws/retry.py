"""Reconnection and redirect rules shared by the clients (sans-I/O).

The asyncio client (``async for websocket in connect(...)``) and the sync
client use the same rules, so they live here, with no event loop and no
socket:

- :func:`backoff`: the delays between reconnection attempts;
- :func:`process_exception`: which connection errors are worth retrying;
- :func:`redirect_uri`, :data:`MAX_REDIRECTS`, :func:`same_origin` and
  :func:`strip_credentials`: following a 3xx answer to the opening handshake.

The defaults can be changed with environment variables read at import time:
``FASTWS_BACKOFF_INITIAL_DELAY``, ``FASTWS_BACKOFF_MIN_DELAY``,
``FASTWS_BACKOFF_MAX_DELAY``, ``FASTWS_BACKOFF_FACTOR`` and
``FASTWS_MAX_REDIRECTS`` (websockets' ``WEBSOCKETS_*`` variables, renamed).
"""

from __future__ import annotations

import os
import random
import urllib.parse
from typing import Iterator, Optional, Union

from .exceptions import InvalidMessage, InvalidStatus, InvalidURI, SecurityError
from .headers import Headers, HeadersLike
from .uri import WebSocketURI, parse_uri

__all__ = [
    "BACKOFF_INITIAL_DELAY",
    "BACKOFF_MIN_DELAY",
    "BACKOFF_MAX_DELAY",
    "BACKOFF_FACTOR",
    "MAX_REDIRECTS",
    "REDIRECT_STATUSES",
    "RETRIED_STATUSES",
    "backoff",
    "process_exception",
    "redirect_uri",
    "same_origin",
    "strip_credentials",
]


def _env_float(name: str, default: str) -> float:
    value = os.environ.get(name, default)
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from None


#: Upper bound of the random first delay, in seconds.
BACKOFF_INITIAL_DELAY = _env_float("FASTWS_BACKOFF_INITIAL_DELAY", "5")
#: The second delay, in seconds; each next one is ``factor`` times longer.
BACKOFF_MIN_DELAY = _env_float("FASTWS_BACKOFF_MIN_DELAY", "3.1")
#: The longest delay, in seconds, repeated once reached.
BACKOFF_MAX_DELAY = _env_float("FASTWS_BACKOFF_MAX_DELAY", "90.0")
#: How much longer each delay is than the one before.
BACKOFF_FACTOR = _env_float("FASTWS_BACKOFF_FACTOR", "1.618")

#: How many redirects one connection attempt follows before giving up.
MAX_REDIRECTS = int(os.environ.get("FASTWS_MAX_REDIRECTS", "10"))

#: Statuses whose ``Location`` header the client follows (300 too, as
#: websockets does).
REDIRECT_STATUSES = frozenset({300, 301, 302, 303, 307, 308})

#: Statuses of a refused handshake worth retrying: the server, or a proxy or
#: load balancer in front of it, is in trouble for now.
RETRIED_STATUSES = frozenset({500, 502, 503, 504})

# Headers that must not follow a redirect to another origin.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})

# A Location header naming an HTTP URI means the same resource over WebSocket.
_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}


def backoff(
    initial_delay: float = BACKOFF_INITIAL_DELAY,
    min_delay: float = BACKOFF_MIN_DELAY,
    max_delay: float = BACKOFF_MAX_DELAY,
    factor: float = BACKOFF_FACTOR,
) -> Iterator[float]:
    """Delays between reconnection attempts: exponential, with jitter.

    The first delay is random, between 0 and ``initial_delay``, so that clients
    cut off together do not all come back at the same instant (RFC 6455
    section 7.2.3). Then ``min_delay``, multiplied by ``factor`` at each
    attempt up to ``max_delay``, which repeats forever.

    Args:
        initial_delay: Upper bound of the random first delay, in seconds.
        min_delay: The second delay, in seconds.
        max_delay: The longest delay, in seconds.
        factor: How much longer each delay is than the one before.

    Returns:
        An endless iterator of delays in seconds.

    Raises:
        ValueError: If a delay is negative or ``factor`` is below 1.
    """
    for name, value in (("initial_delay", initial_delay), ("min_delay", min_delay), ("max_delay", max_delay)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    return _backoff(initial_delay, min_delay, max_delay, factor)


def _backoff(initial_delay: float, min_delay: float, max_delay: float, factor: float) -> Iterator[float]:
    yield random.random() * initial_delay
    delay = min_delay
    # factor 1 or min_delay 0 never reach max_delay: min_delay repeats.
    while delay < max_delay and delay * factor > delay:
        yield delay
        delay *= factor
    while True:
        yield min(delay, max_delay)


def process_exception(exc: Exception) -> Optional[Exception]:
    """The default policy of a reconnecting client: retry, or give up?

    Worth retrying (the same attempt may succeed later):

    - :class:`OSError` (connection refused, reset, unreachable network...) and
      :class:`TimeoutError`;
    - :class:`~fastws.exceptions.InvalidMessage` caused by an
      :class:`EOFError`: the server closed the connection before answering;
    - :class:`~fastws.exceptions.InvalidStatus` with status 500, 502, 503 or
      504: the server (or a proxy in front of it) is in trouble for now.

    Anything else (a 403, a bad response, an invalid URI...) would fail the same
    way again.

    Pass your own function with the same signature as ``process_exception=``
    to choose otherwise; it may return ``exc``, another exception (raised from
    ``exc``), or None.

    Args:
        exc: Why the connection failed or was lost.

    Returns:
        None to retry (the error is logged at INFO level), or the exception to
        raise, which ends the reconnection loop: ``exc`` itself here.
    """
    if isinstance(exc, (OSError, TimeoutError)):
        return None
    if isinstance(exc, InvalidMessage) and isinstance(exc.__cause__, EOFError):
        return None
    if isinstance(exc, InvalidStatus) and exc.response.status_code in RETRIED_STATUSES:
        return None
    return exc


def shown_uri(uri: WebSocketURI) -> str:
    """The URI as a string without its credentials, for messages and logs.

    Args:
        uri: A parsed WebSocket URI.

    Returns:
        ``ws://`` or ``wss://``, the host (and port unless the default), the path.
    """
    scheme = "wss" if uri.secure else "ws"
    return f"{scheme}://{uri.host_header}{uri.resource_name}"


def redirect_uri(uri: Union[str, WebSocketURI], exc: BaseException) -> Optional[str]:
    """Where a redirect answer to the opening handshake points.

    A relative ``Location`` is resolved against ``uri``; an ``http://`` or
    ``https://`` one becomes ``ws://`` or ``wss://``; a fragment is dropped.

    Args:
        uri: The URI the client connected to.
        exc: Why the handshake failed.

    Returns:
        The absolute ``ws://`` or ``wss://`` URI to connect to, or None if
        ``exc`` is not a redirect: not an
        :class:`~fastws.exceptions.InvalidStatus`, a status other than 300,
        301, 302, 303, 307 or 308, or no ``Location`` header (the caller raises
        ``exc`` as it is, as websockets does).

    Raises:
        ~fastws.exceptions.SecurityError: If the redirect goes from ``wss://``
            down to ``ws://``.
        ~fastws.exceptions.InvalidURI: If ``Location`` is not a usable
            WebSocket URI once resolved.
    """
    if not isinstance(exc, InvalidStatus) or exc.response.status_code not in REDIRECT_STATUSES:
        return None
    location = exc.response.headers.get("Location")
    if location is None:
        return None
    base = uri if isinstance(uri, str) else shown_uri(uri)
    old = parse_uri(base) if isinstance(uri, str) else uri
    target = urllib.parse.urlsplit(urllib.parse.urljoin(base, location.strip()))
    scheme = _SCHEMES.get(target.scheme.lower(), target.scheme)
    # A fragment means nothing to a WebSocket server (and parse_uri refuses it).
    new_uri: str = urllib.parse.urlunsplit(target._replace(scheme=scheme, fragment=""))
    try:
        new = parse_uri(new_uri)  # InvalidURI for anything but ws:// and wss://
    except InvalidURI as error:
        # Said without the credentials the original URI may have carried over.
        shown = target._replace(scheme=scheme, netloc=target.netloc.rpartition("@")[2], fragment="")
        raise InvalidURI(urllib.parse.urlunsplit(shown), error.reason) from None
    if old.secure and not new.secure:
        raise SecurityError(f"cannot follow a redirect from wss:// down to {shown_uri(new)}")
    return new_uri


def same_origin(a: WebSocketURI, b: WebSocketURI) -> bool:
    """True if ``a`` and ``b`` have the same scheme, host and port.

    A redirect to another origin drops the credentials (see
    :func:`strip_credentials`), and cannot be followed over a Unix socket or
    to a host and port given explicitly.

    Args:
        a: A parsed URI.
        b: Another one.

    Returns:
        Whether they share their origin.
    """
    return (a.secure, a.host.lower(), a.port) == (b.secure, b.host.lower(), b.port)


def strip_credentials(headers: Optional[HeadersLike]) -> Optional[Headers]:
    """Headers without ``Authorization``, ``Cookie`` and ``Proxy-Authorization``,
    for a redirect to another origin.

    Args:
        headers: A :class:`~fastws.headers.Headers`, a mapping, or
            ``(name, value)`` pairs; or None.

    Returns:
        The other headers, in order; None if ``headers`` is None.
    """
    if headers is None:
        return None
    return Headers([(name, value) for name, value in Headers(headers) if name.lower() not in _CREDENTIAL_HEADERS])

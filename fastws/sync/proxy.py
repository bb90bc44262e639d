"""Connecting to a WebSocket server through a proxy, with blocking sockets.

:func:`connect_through_proxy` returns a socket connected to the server through
the proxy; the client wraps it in TLS for ``wss://``. The proxy is chosen and
parsed by :mod:`fastws.proxy`.
"""

from __future__ import annotations

import socket
import ssl as ssl_module
import time
from typing import Any, Optional, Union

from ..exceptions import InvalidProxy, ProxyError
from ..proxy import USER_AGENT, ConnectResponseParser, Proxy, prepare_connect_request
from ..uri import WebSocketURI

__all__ = ["connect_through_proxy"]

_END = b"\r\n\r\n"


def connect_through_proxy(
    proxy: Proxy,
    uri: WebSocketURI,
    *,
    timeout: Optional[float],
    proxy_ssl: Union[ssl_module.SSLContext, bool, None] = None,
    proxy_server_hostname: Optional[str] = None,
    user_agent_header: Optional[str] = USER_AGENT,
    **kwargs: Any,
) -> socket.socket:
    """Open a connection to ``uri``'s host and port through ``proxy``.

    An ``http://`` or ``https://`` proxy is asked for a tunnel with
    ``CONNECT``; a SOCKS proxy through ``python-socks``. Not one byte past the
    proxy's answer is read: what comes next on the socket is the server's.

    Args:
        proxy: The proxy, from :func:`fastws.proxy.parse_proxy`.
        uri: Where to connect to, through the proxy.
        timeout: The most seconds for connecting to the proxy and opening the
            tunnel, all together; None for no limit. The socket returned has
            this timeout set, as :func:`socket.create_connection` does.
        proxy_ssl: TLS with an ``https://`` proxy: an SSL context; a default
            one if None or True. Only for ``https://`` proxies.
        proxy_server_hostname: The proxy's name for TLS; ``proxy.host`` by
            default. Only for ``https://`` proxies.
        user_agent_header: The ``User-Agent`` header of the ``CONNECT``
            request; None for none.
        **kwargs: For the connection to the proxy, with a ``proxy_`` prefix
            removed: ``source_address`` (``local_addr`` is taken as its alias).

    Returns:
        The socket: an :class:`ssl.SSLSocket` (TLS with the proxy) for an
        ``https://`` proxy.

    Raises:
        ~fastws.exceptions.InvalidProxy: For a SOCKS proxy without
            ``python-socks``, or ``wss://`` through an ``https://`` proxy (TLS
            inside TLS is not supported by this client yet).
        ~fastws.exceptions.InvalidProxyStatus: If the proxy refused the tunnel
            (407: it wants credentials).
        ~fastws.exceptions.InvalidProxyMessage: If the proxy's answer is invalid.
        ~fastws.exceptions.ProxyError: If a SOCKS proxy failed otherwise.
        ValueError: If ``proxy_ssl`` or ``proxy_server_hostname`` is given for
            a proxy that isn't ``https://``.
        OSError: If a connection failed (refused, reset, timed out...).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    options = {key[len("proxy_") :] if key.startswith("proxy_") else key: value for key, value in kwargs.items()}
    if "local_addr" in options:
        options.setdefault("source_address", options.pop("local_addr"))
    source_address = options.pop("source_address", None)
    if options:
        raise TypeError(f"connect_through_proxy() got unexpected arguments: {', '.join(sorted(options))}")

    if proxy.scheme != "https" and (proxy_ssl is not None or proxy_server_hostname is not None):
        raise ValueError(f"proxy_ssl and proxy_server_hostname are for https:// proxies, not {proxy.scheme}://")
    if proxy.is_socks:
        return _connect_socks(proxy, uri, timeout, source_address)
    if proxy.scheme == "https" and uri.secure:
        raise InvalidProxy(proxy.shown, "wss:// through an https:// proxy is not supported by the sync client yet")

    sock = socket.create_connection((proxy.host, proxy.port), timeout, source_address=source_address)
    try:
        if proxy.scheme == "https":
            if proxy_ssl is None or proxy_ssl is True:
                proxy_ssl = ssl_module.create_default_context()
            assert isinstance(proxy_ssl, ssl_module.SSLContext)
            sock.settimeout(_remaining(deadline))
            sock = proxy_ssl.wrap_socket(sock, server_hostname=proxy_server_hostname or proxy.host)
        request = prepare_connect_request(proxy, uri, user_agent_header)
        sock.settimeout(_remaining(deadline))
        sock.sendall(request)
        _read_answer(sock, deadline)
        sock.settimeout(timeout)
    except BaseException:
        sock.close()
        raise
    return sock


def _remaining(deadline: Optional[float]) -> Optional[float]:
    if deadline is None:
        return None
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("timed out while connecting through the proxy")
    return remaining


def _read_answer(sock: socket.socket, deadline: Optional[float]) -> None:
    """Read the proxy's answer to CONNECT, not one byte further."""
    parser = ConnectResponseParser()
    # A plain socket is peeked at, then read up to the end of the answer's
    # head, which the parser finds. An SSLSocket cannot be peeked at: it is
    # read a few bytes at a time, never more than can still belong to the
    # head (at most the rest of the blank line's CRLFCRLF).
    peek = not isinstance(sock, ssl_module.SSLSocket)
    tail = b""  # the last bytes read, to find how much of CRLFCRLF they end with
    while True:
        sock.settimeout(_remaining(deadline))
        if peek:
            data = sock.recv(4096, socket.MSG_PEEK)
        else:
            data = sock.recv(_most_before_end(tail))
        if not data:
            parser.feed_eof()  # raises InvalidProxyMessage
            raise AssertionError("unreachable")  # pragma: no cover
        response = parser.feed(data)
        if peek:
            # Consume what the parser took: all of it, or up to the head's end.
            taken = len(data) - len(parser.trailing)
            while taken:
                taken -= len(sock.recv(taken))
        else:
            tail = (tail + data)[-3:]
        if response is not None:
            return


def _most_before_end(tail: bytes) -> int:
    """How many bytes can still be read without passing the end of the head,
    after bytes ending with ``tail``."""
    for matched in (3, 2, 1):
        if tail.endswith(_END[:matched]):
            return 4 - matched
    return 4


try:
    from python_socks import ProxyError as _SocksError
    from python_socks import ProxyType
    from python_socks.sync import Proxy as _SocksProxy
except ImportError:
    _HAVE_SOCKS = False
else:
    _HAVE_SOCKS = True


def _connect_socks(proxy: Proxy, uri: WebSocketURI, timeout: Optional[float], source_address: Any) -> socket.socket:
    """A socket connected to ``uri``'s host and port through a SOCKS proxy."""
    if not _HAVE_SOCKS:
        raise InvalidProxy(
            proxy.shown,
            "SOCKS proxies need the python-socks package: pip install 'pyfastws[socks]'",
        )
    socks = _SocksProxy(
        ProxyType.SOCKS5 if proxy.scheme.startswith("socks5") else ProxyType.SOCKS4,
        proxy.host,
        proxy.port,
        proxy.username,
        proxy.password,
        rdns=proxy.scheme in ("socks4a", "socks5h"),
    )
    try:
        sock = socks.connect(uri.host, uri.port, timeout=timeout, local_addr=source_address)
    except OSError:
        raise
    except _SocksError as exc:
        raise ProxyError(f"the SOCKS proxy refused the connection: {exc}") from exc
    except Exception as exc:
        raise ProxyError(f"connecting through the SOCKS proxy failed: {exc}") from exc
    sock.settimeout(timeout)
    return sock

"""Connecting to a WebSocket server through a proxy, on asyncio.

:func:`create_connection_through_proxy` stands in for
:meth:`asyncio.loop.create_connection` when a proxy applies: it returns the
transport to the server and the protocol, ``connection_made()`` called, like
``create_connection()`` does. The proxy is chosen and parsed by
:mod:`fastws.proxy`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl as ssl_module
import sys
from typing import Any, Callable, Dict, Optional, Tuple, Union, cast

from ..exceptions import InvalidProxy, InvalidProxyMessage, ProxyError
from ..proxy import USER_AGENT, ConnectResponseParser, Proxy, prepare_connect_request
from ..uri import WebSocketURI

__all__ = ["create_connection_through_proxy"]

_SSL = Union[ssl_module.SSLContext, bool, None]

# asyncio's start_tls() over a TLS transport (TLS to the server inside TLS to
# an https:// proxy) came with Python 3.11.
_TLS_IN_TLS = sys.version_info >= (3, 11)


async def create_connection_through_proxy(
    loop: asyncio.AbstractEventLoop,
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    proxy: Proxy,
    uri: WebSocketURI,
    *,
    ssl: _SSL = None,
    server_hostname: Optional[str] = None,
    proxy_ssl: _SSL = None,
    proxy_server_hostname: Optional[str] = None,
    user_agent_header: Optional[str] = USER_AGENT,
    ssl_handshake_timeout: Optional[float] = None,
    ssl_shutdown_timeout: Optional[float] = None,
    **kwargs: Any,
) -> Tuple[asyncio.Transport, asyncio.BaseProtocol]:
    """Open a connection to ``uri``'s host and port through ``proxy``.

    An ``http://`` or ``https://`` proxy is asked for a tunnel with
    ``CONNECT``; a SOCKS proxy through ``python-socks``. With ``ssl``, TLS to
    the server then runs inside the tunnel.

    Args:
        loop: The running event loop.
        protocol_factory: Makes the protocol, as for ``create_connection()``.
        proxy: The proxy, from :func:`fastws.proxy.parse_proxy`.
        uri: Where to connect to, through the proxy.
        ssl: TLS with the server (``wss://``): an SSL context, True for a
            default one, None for none.
        server_hostname: The server's name for TLS; ``uri.host`` by default.
        proxy_ssl: TLS with an ``https://`` proxy: an SSL context; a default
            one if None or True. Only for ``https://`` proxies.
        proxy_server_hostname: The proxy's name for TLS; ``proxy.host`` by
            default. Only for ``https://`` proxies.
        user_agent_header: The ``User-Agent`` header of the ``CONNECT``
            request; None for none.
        ssl_handshake_timeout: For the TLS handshake with the server.
        ssl_shutdown_timeout: For the TLS shutdown with the server (Python 3.11+).
        **kwargs: For the connection to the proxy: passed to
            ``create_connection()`` (``local_addr``, ``family``...), with a
            ``proxy_`` prefix removed (``proxy_ssl_handshake_timeout``). A
            SOCKS proxy takes only ``local_addr``.

    Returns:
        ``(transport, protocol)``, as ``create_connection()`` returns them.

    Raises:
        ~fastws.exceptions.InvalidProxy: For a SOCKS proxy without
            ``python-socks``, or ``wss://`` through an ``https://`` proxy
            before Python 3.11.
        ~fastws.exceptions.InvalidProxyStatus: If the proxy refused the tunnel
            (407: it wants credentials).
        ~fastws.exceptions.InvalidProxyMessage: If the proxy's answer is invalid.
        ~fastws.exceptions.ProxyError: If a SOCKS proxy failed otherwise.
        ValueError: If ``proxy_ssl`` or ``proxy_server_hostname`` is given for
            a proxy that isn't ``https://``, or ``server_hostname`` without
            ``ssl``.
        OSError: If a connection failed (refused, reset, timed out...).
    """
    if ssl is True:
        ssl = ssl_module.create_default_context()
    elif ssl is False:
        ssl = None
    if ssl is None and server_hostname is not None:
        raise ValueError("server_hostname is only meaningful with ssl")
    tls_kwargs: Dict[str, Any] = {}
    if ssl is not None:
        tls_kwargs["server_hostname"] = server_hostname or uri.host
        if ssl_handshake_timeout is not None:
            tls_kwargs["ssl_handshake_timeout"] = ssl_handshake_timeout
        if ssl_shutdown_timeout is not None:
            tls_kwargs["ssl_shutdown_timeout"] = ssl_shutdown_timeout
    proxy_kwargs = {key[len("proxy_") :] if key.startswith("proxy_") else key: value for key, value in kwargs.items()}

    if proxy.is_socks:
        if proxy_ssl is not None or proxy_server_hostname is not None:
            raise ValueError(f"proxy_ssl and proxy_server_hostname are for https:// proxies, not {proxy.scheme}://")
        local_addr = proxy_kwargs.pop("local_addr", None)
        if proxy_kwargs:
            raise TypeError(f"a SOCKS proxy takes no {', '.join(sorted(proxy_kwargs))} argument")
        sock = await _connect_socks(proxy, uri, local_addr)
        try:
            return await loop.create_connection(protocol_factory, sock=sock, ssl=ssl, **tls_kwargs)
        except BaseException:
            sock.close()
            raise

    if proxy.scheme == "https":
        if proxy_ssl is None or proxy_ssl is True:
            proxy_ssl = ssl_module.create_default_context()
        proxy_kwargs["server_hostname"] = proxy_server_hostname or proxy.host
        if ssl is not None and not _TLS_IN_TLS:
            raise InvalidProxy(proxy.shown, "wss:// through an https:// proxy needs Python 3.11 or later")
    elif proxy_ssl is not None or proxy_server_hostname is not None:
        raise ValueError("proxy_ssl and proxy_server_hostname are for https:// proxies, not http://")
    else:
        proxy_ssl = None

    request = prepare_connect_request(proxy, uri, user_agent_header)
    transport, tunnel = await loop.create_connection(
        lambda: _Tunnel(loop, request), proxy.host, proxy.port, ssl=proxy_ssl, **proxy_kwargs
    )
    try:
        await tunnel.opened
        if tunnel.lost is not None:
            raise ConnectionError("the proxy closed the connection after opening the tunnel") from tunnel.lost
        trailing = bytes(tunnel.trailing)
        protocol = protocol_factory()
        if ssl is not None:
            # The server cannot speak first in TLS: bytes before the handshake
            # are not the server's.
            if trailing:
                raise InvalidProxyMessage("the proxy sent data before the TLS handshake with the server")
            tls_transport = await loop.start_tls(transport, protocol, ssl, **tls_kwargs)
            if tls_transport is None:  # only if the loop closes meanwhile
                raise ConnectionError("the event loop closed during the TLS handshake")
            transport = tls_transport
            protocol.connection_made(transport)
        else:
            transport.set_protocol(protocol)
            protocol.connection_made(transport)
            if trailing:
                _feed(protocol, trailing)
            transport.resume_reading()
    except BaseException:
        transport.abort()
        raise
    return transport, protocol


class _Tunnel(asyncio.Protocol):
    """Sends ``CONNECT``, reads the answer, then stops reading: the bytes after
    the answer's head are kept in :attr:`trailing` for the protocol."""

    def __init__(self, loop: asyncio.AbstractEventLoop, request: bytes) -> None:
        self.request = request
        self.parser = ConnectResponseParser()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.trailing = bytearray()
        self.transport: Optional[asyncio.Transport] = None
        # Why the connection was lost after the tunnel opened, before the
        # protocol took the transport over.
        self.lost: Optional[BaseException] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not asyncio.Transport subclasses).
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.opened.done():  # read before pause_reading() took effect
            self.trailing += data
            return
        try:
            response = self.parser.feed(data)
        except Exception as exc:
            self._fail(exc)
            return
        if response is not None:
            assert self.transport is not None
            self.transport.pause_reading()
            self.trailing += self.parser.trailing
            self.opened.set_result(None)

    def eof_received(self) -> Optional[bool]:
        try:
            self.parser.feed_eof()
        except Exception as exc:
            self._fail(exc)
        return None  # close the transport

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if exc is None:
            exc = InvalidProxyMessage("the proxy closed the connection before answering CONNECT")
        if self.opened.done():
            self.lost = exc
        self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
            if self.transport is not None:
                self.transport.abort()


def _feed(protocol: asyncio.BaseProtocol, data: bytes) -> None:
    """Give ``data`` to ``protocol`` as a transport would."""
    if isinstance(protocol, asyncio.BufferedProtocol):
        view = memoryview(data)
        while view:
            buffer = memoryview(protocol.get_buffer(len(view)))
            n = min(len(buffer), len(view))
            if n == 0:
                raise RuntimeError("get_buffer() returned an empty buffer")
            buffer[:n] = view[:n]
            protocol.buffer_updated(n)
            view = view[n:]
    else:
        cast(asyncio.Protocol, protocol).data_received(data)


try:
    from python_socks import ProxyError as _SocksError
    from python_socks import ProxyType
    from python_socks.async_.asyncio import Proxy as _SocksProxy
except ImportError:
    _HAVE_SOCKS = False
else:
    _HAVE_SOCKS = True


async def _connect_socks(proxy: Proxy, uri: WebSocketURI, local_addr: Any) -> socket.socket:
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
        return await socks.connect(uri.host, uri.port, local_addr=local_addr)
    except OSError:
        raise
    except _SocksError as exc:
        raise ProxyError(f"the SOCKS proxy refused the connection: {exc}") from exc
    except Exception as exc:
        raise ProxyError(f"connecting through the SOCKS proxy failed: {exc}") from exc

"""``connect()``: a WebSocket client on asyncio.

::

    async with fastws.connect("ws://localhost:8765") as websocket:
        await websocket.send("world")
        print(await websocket.recv())

Errors: :class:`~fastws.exceptions.InvalidURI` for a URI that cannot be used,
:class:`~fastws.exceptions.InvalidStatus` (with the HTTP status, headers and
body) when the server refuses, another
:class:`~fastws.exceptions.InvalidHandshake` for a bad response,
:class:`TimeoutError` when the handshake takes longer than ``open_timeout``, and
OS errors such as :class:`ConnectionRefusedError` as they are.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from typing import Any, Callable, Dict, Generator, Optional, Sequence, TypedDict

from ..exceptions import InvalidHandshake
from ..handshake import parse_uri
from ..http11 import HeadersLike, Response
from ..protocol import DEFAULT_MAX_SIZE, ClientProtocol
from .compression import extension_factories
from .connection import Connection, Listener

__all__ = ["connect", "unix_connect", "connect_listener", "ClientConnection"]


class ClientConnection(Connection):
    """A connection opened by :func:`connect`: a :class:`Connection` on the
    client side, with the server's :attr:`~Connection.response`."""

    def _handshake_event(self, response: Response) -> None:
        if not isinstance(self.protocol.error, InvalidHandshake):
            self._connection_open()
            # Frames that came in the same read as the response.
            self._read_trailing()
        elif not self._opened.done():
            error = self.protocol.error
            self._opened.set_exception(error if error is not None else ConnectionError("handshake failed"))
            self._opened.exception()  # retrieved by connect(); no "never retrieved" log


class _ConnectionOptions(TypedDict):
    """What connect() passes on to :class:`ClientConnection`."""

    ping_interval: Optional[float]
    ping_timeout: Optional[float]
    close_timeout: Optional[float]
    max_queue: Optional[int]
    write_limit: int


class connect:
    """Open a WebSocket connection; use with ``await`` or ``async with``.

    ``await connect(...)`` returns the open :class:`ClientConnection`;
    ``async with connect(...) as websocket:`` also closes it at the end of the
    block.

    Args:
        uri: The server's ``ws://`` or ``wss://`` URI.
        origin: The ``Origin`` header to send, if any.
        subprotocols: The subprotocols to offer, in order of preference; the
            server's choice is in :attr:`~Connection.subprotocol`.
        extra_headers: Headers added to the request.
        additional_headers: The same, under the name ``websockets`` uses; it
            wins if both are given.
        user_agent_header: The ``User-Agent`` header; None for none. By default
            it names fastws and its version.
        compression: ``"deflate"`` (the default) offers permessage-deflate
            (RFC 7692); None does not.
        extensions: More extension factories (see :mod:`fastws.extensions`),
            offered after permessage-deflate.
        open_timeout: Seconds the TCP connection, the TLS handshake and the
            opening handshake may take together. None: no limit.
        ping_interval: Seconds between keepalive pings. None: no keepalive.
        ping_timeout: Seconds to wait for the pong of a keepalive ping; then
            the connection fails with 1011. None: no limit.
        close_timeout: Seconds the closing handshake may take before TCP is
            closed anyway.
        max_size: The largest message received, in bytes, across its
            fragments (after decompression): a larger one fails the connection
            with 1009 before it is buffered. None: no limit.
        max_queue: The most messages received and not yet taken by ``recv()``;
            past it, the socket is not read until the queue drains to a quarter
            of it. None: no limit.
        write_limit: The transport's buffer size, in bytes, above which
            ``send()`` waits for it to drain below a quarter of it.
        ssl: An :class:`ssl.SSLContext` for a ``wss://`` URI; by default
            :func:`ssl.create_default_context`.
        server_hostname: The host name to check the server's certificate
            against, instead of the URI's.
        listener: A factory of the :class:`~fastws.asyncio.Listener` to call
            as events arrive, instead of reading with ``recv()`` (see
            :func:`connect_listener`).
        unix: Connect to the Unix socket ``path`` instead of the URI's host
            and port (see :func:`unix_connect`).
        path: The Unix socket's path, with ``unix=True``.
        **create_connection_kwargs: Passed to
            :meth:`asyncio.loop.create_connection` (or
            :meth:`~asyncio.loop.create_unix_connection`), for example ``sock``
            to use a connected socket, or ``local_addr``.

    Raises:
        ~fastws.exceptions.InvalidURI: If ``uri`` cannot be used (at once,
            before any I/O).
        ValueError: If ``ssl`` is given with a ``ws://`` URI, or
            ``compression`` is neither ``"deflate"`` nor None.

    Awaiting it raises :class:`~fastws.exceptions.InvalidStatus` (with the
    HTTP status, headers and body) when the server refuses the upgrade, another
    :class:`~fastws.exceptions.InvalidHandshake` for a bad response,
    :class:`TimeoutError` after ``open_timeout``, and OS errors such as
    :class:`ConnectionRefusedError` as they are.
    """

    def __init__(
        self,
        uri: str,
        *,
        origin: Optional[str] = None,
        subprotocols: Optional[Sequence[str]] = None,
        extra_headers: Optional[HeadersLike] = None,
        additional_headers: Optional[HeadersLike] = None,
        user_agent_header: Optional[str] = "default",
        compression: Optional[str] = "deflate",
        extensions: Optional[Sequence[Any]] = None,
        open_timeout: Optional[float] = 10,
        ping_interval: Optional[float] = 20,
        ping_timeout: Optional[float] = 20,
        close_timeout: Optional[float] = 10,
        max_size: Optional[int] = DEFAULT_MAX_SIZE,
        max_queue: Optional[int] = 16,
        write_limit: int = 32768,
        ssl: Any = None,
        server_hostname: Optional[str] = None,
        listener: Optional[Callable[[], Listener]] = None,
        unix: bool = False,
        path: Optional[str] = None,
        **create_connection_kwargs: Any,
    ) -> None:
        factories = extension_factories(compression, extensions, server=False)
        self.uri = parse_uri(uri)  # InvalidURI at once, before any I/O
        if ssl is not None and not self.uri.secure:
            raise ValueError("connect() got an ssl context for a ws:// URI; use wss://")
        if self.uri.secure and ssl is None:
            ssl = ssl_module.create_default_context()
        self._ssl = ssl
        self._server_hostname = server_hostname
        protocol_options: Dict[str, Any] = dict(
            origin=origin,
            subprotocols=subprotocols,
            extra_headers=additional_headers if additional_headers is not None else extra_headers,
            extensions=factories,
            max_size=max_size,
        )
        if user_agent_header != "default":
            protocol_options["user_agent"] = user_agent_header
        self._protocol_options = protocol_options
        self._connection_options: _ConnectionOptions = {
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "close_timeout": close_timeout,
            "max_queue": max_queue,
            "write_limit": write_limit,
        }
        self._listener = listener
        self.open_timeout = open_timeout
        self._unix, self._path = unix, path
        self._kwargs = create_connection_kwargs
        self.connection: Optional[ClientConnection] = None

    def _make_connection(self) -> ClientConnection:
        protocol = ClientProtocol(self.uri, **self._protocol_options)
        return ClientConnection(
            protocol,
            listener=self._listener() if self._listener is not None else None,
            **self._connection_options,
        )

    async def _open(self) -> ClientConnection:
        loop = asyncio.get_running_loop()
        kwargs = dict(self._kwargs)
        if self._ssl is not None:
            kwargs["ssl"] = self._ssl
            kwargs["server_hostname"] = self._server_hostname or self.uri.host
        if self._unix:
            _, connection = await loop.create_unix_connection(self._make_connection, self._path, **kwargs)
        elif "sock" in kwargs:
            _, connection = await loop.create_connection(self._make_connection, **kwargs)
        else:
            _, connection = await loop.create_connection(
                self._make_connection, self.uri.host, self.uri.port, **kwargs
            )
        self.connection = connection
        await connection._opened
        return connection

    async def _create(self) -> ClientConnection:
        try:
            if self.open_timeout is None:
                return await self._open()
            return await asyncio.wait_for(self._open(), self.open_timeout)
        except asyncio.TimeoutError:
            if self.connection is not None and self.connection.transport is not None:
                self.connection.transport.abort()
            raise TimeoutError(f"timed out after {self.open_timeout} s during the opening handshake") from None
        except BaseException:
            if self.connection is not None and self.connection.transport is not None:
                self.connection.transport.abort()
            raise

    def __await__(self) -> Generator[Any, None, ClientConnection]:
        return self._create().__await__()

    async def __aenter__(self) -> ClientConnection:
        return await self._create()

    async def __aexit__(self, *exc_info: Any) -> None:
        assert self.connection is not None
        await self.connection.close()


def unix_connect(path: Optional[str] = None, uri: str = "ws://localhost/", **options: Any) -> connect:
    """:func:`connect` over a Unix socket.

    Args:
        path: The Unix socket's path.
        uri: The URI of the request (its host goes into the ``Host`` header).
        **options: The other options of :func:`connect`.
    """
    return connect(uri, unix=True, path=path, **options)


def connect_listener(factory: Callable[[], Listener], uri: str, **options: Any) -> connect:
    """:func:`connect` with the callback interface.

    Args:
        factory: Makes the :class:`Listener` whose methods are called as
            events arrive, straight from the parser loop.
        uri: The server's ``ws://`` or ``wss://`` URI.
        **options: The other options of :func:`connect`.
    """
    return connect(uri, listener=factory, **options)

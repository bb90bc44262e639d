"""``connect()``: a WebSocket client on asyncio.

::

    async with fastws.connect("ws://localhost:8765") as websocket:
        await websocket.send("world")
        print(await websocket.recv())

    # Reconnecting: a new connection after each lost one, with backoff.
    async for websocket in fastws.connect("ws://localhost:8765"):
        try:
            async for message in websocket:
                print(message)
        except fastws.ConnectionClosed:
            continue

Errors: :class:`~fastws.exceptions.InvalidURI` for a URI that cannot be used,
:class:`~fastws.exceptions.InvalidStatus` (with the HTTP status, headers and
body) when the server refuses, another
:class:`~fastws.exceptions.InvalidHandshake` for a bad response,
:class:`~fastws.exceptions.SecurityError` for a redirect from ``wss://`` to
``ws://`` or too many redirects, :class:`TimeoutError` when the handshake takes
longer than ``open_timeout``, and OS errors such as
:class:`ConnectionRefusedError` as they are.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import ssl as ssl_module
import traceback
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Dict,
    FrozenSet,
    Generator,
    Iterator,
    Optional,
    Sequence,
    Type,
    TypedDict,
    Union,
    cast,
)

from .. import retry
from ..compression import extension_factories
from ..exceptions import InvalidHandshake, InvalidMessage, SecurityError
from ..headers import HeadersLike
from ..http11 import Response
from ..limits import LoggerLike, QueueLimit, WriteLimit, queue_limits, resolve_logger, write_limits
from ..protocol import DEFAULT_MAX_SIZE, ClientProtocol
from ..protocol.types import MaxSize, split_max_size
from ..proxy import parse_proxy, resolve_proxy
from ..uri import parse_uri
from .connection import Connection, Listener
from .proxy import create_connection_through_proxy

__all__ = ["connect", "unix_connect", "connect_listener", "ClientConnection"]


class _InnerTimeout(Exception):
    """Carries a timeout raised inside ``open_timeout`` past ``wait_for``."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


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

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        # The server closed the connection before a whole response came: the
        # protocol reports it as an InvalidMessage, caused by the end of the
        # stream (which process_exception() retries).
        cut_short = not self._opened.done() and self.protocol.error is None
        super().connection_lost(exc)
        error = self.protocol.error
        if cut_short and isinstance(error, InvalidMessage) and error.__cause__ is None:
            error.__cause__ = EOFError("connection closed before the response was complete")


class _ConnectionOptions(TypedDict):
    """What connect() passes on to :class:`ClientConnection`."""

    ping_interval: Optional[float]
    ping_timeout: Optional[float]
    close_timeout: Optional[float]
    max_queue: QueueLimit
    write_limit: WriteLimit


def _parameters(function: Callable[..., Any]) -> FrozenSet[str]:
    names = set(inspect.signature(function).parameters)
    return frozenset(names - {"self", "protocol_factory"})


# The keyword arguments connect() passes on to the event loop, as this Python's
# asyncio names them; host, port, path, ssl and server_hostname are connect()'s.
_OWN_LOOP_ARGUMENTS = frozenset({"host", "port", "path", "ssl", "server_hostname"})
_TCP_ARGUMENTS = _parameters(asyncio.AbstractEventLoop.create_connection) - _OWN_LOOP_ARGUMENTS
_UNIX_ARGUMENTS = _parameters(asyncio.AbstractEventLoop.create_unix_connection) - _OWN_LOOP_ARGUMENTS
# proxy_ssl_handshake_timeout and the like: for the connection to an HTTPS proxy.
_PROXY_ARGUMENTS = frozenset(
    f"proxy_{name}" for name in ("ssl_handshake_timeout", "ssl_shutdown_timeout") if name in _TCP_ARGUMENTS
)


def _running_loop_arguments(unix: bool) -> Optional[FrozenSet[str]]:
    """What the running loop's create_connection (or create_unix_connection)
    takes, when a loop runs and says (uvloop takes fewer than asyncio)."""
    try:
        loop = asyncio.get_running_loop()
        return _parameters(getattr(loop, "create_unix_connection" if unix else "create_connection"))
    except (RuntimeError, AttributeError, TypeError, ValueError):
        return None


def _check_arguments(function: str, kwargs: Dict[str, Any], unix: bool) -> None:
    """Raise Python's own TypeError for a keyword argument nobody takes, at the
    call rather than when the event loop gets it: the running loop's names
    when a loop runs, this Python's asyncio's otherwise."""
    if not kwargs:
        return
    allowed = _UNIX_ARGUMENTS if unix else _TCP_ARGUMENTS | _PROXY_ARGUMENTS
    running = _running_loop_arguments(unix)
    if running is not None:
        allowed = (running - _OWN_LOOP_ARGUMENTS) | (frozenset() if unix else _PROXY_ARGUMENTS)
    for name in kwargs:
        if name not in allowed:
            raise TypeError(f"{function}() got an unexpected keyword argument {name!r}")


def _describe(exc: BaseException) -> str:
    return traceback.format_exception_only(type(exc), exc)[-1].strip()


class connect:
    """Open a WebSocket connection; use with ``await``, ``async with`` or
    ``async for``.

    ``await connect(...)`` returns the open :class:`ClientConnection`;
    ``async with connect(...) as websocket:`` also closes it at the end of the
    block. ``async for websocket in connect(...):`` is an endless loop that
    opens a new connection each time around, after a failed attempt too: the
    first attempt at once, the next after the delays of ``reconnect_delays``,
    as long as ``process_exception`` says that the error is worth retrying
    (each retry is logged at INFO level, with the delay and the error). Each
    connection is closed at the end of its turn of the loop; catch
    :class:`~fastws.exceptions.ConnectionClosed` in the body and ``continue``
    to reconnect after a lost connection.

    A redirect (300, 301, 302, 303, 307 or 308 with ``Location``) is followed,
    up to :data:`fastws.retry.MAX_REDIRECTS` times within ``open_timeout``;
    never from ``wss://`` down to ``ws://``. A redirect to another origin drops
    the ``Authorization``, ``Cookie`` and ``Proxy-Authorization`` headers.

    Args:
        uri: The server's ``ws://`` or ``wss://`` URI. User information
            (``user:password@``) is sent as Basic authentication.
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
        proxy: True (the default): the proxy the environment names for the URI
            (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``...),
            if any; None: connect directly; a proxy URL (``http://``,
            ``https://``, ``socks5h://``...): that proxy. Not used with
            ``unix=True`` or ``sock``.
        proxy_ssl: An :class:`ssl.SSLContext` for the connection to an
            ``https://`` proxy; by default :func:`ssl.create_default_context`.
        proxy_server_hostname: The host name to check the proxy's certificate
            against, instead of the proxy URL's.
        process_exception: ``process_exception(exc)`` tells ``async for``
            whether a failed attempt or a lost connection is worth retrying:
            None to retry, or the exception to raise (``exc`` itself or
            another, raised from ``exc``). By default
            :func:`fastws.retry.process_exception`.
        reconnect_delays: Makes the iterator of the delays between attempts,
            in seconds; by default :func:`fastws.retry.backoff` (exponential
            with jitter). It starts over after each connection that opened.
        open_timeout: Seconds the TCP connection, the TLS handshake and the
            opening handshake may take together, redirects included. None: no
            limit.
        ping_interval: Seconds between keepalive pings. None: no keepalive.
        ping_timeout: Seconds to wait for the pong of a keepalive ping; then
            the connection fails with 1011. None: no limit.
        close_timeout: Seconds the closing handshake may take before TCP is
            closed anyway.
        max_size: The largest message received, in bytes, across its
            fragments (after decompression): a larger one fails the connection
            with 1009 before it is buffered. None: no limit. A pair
            ``(message, fragment)`` limits each fragment as received too.
        max_queue: The most messages received and not yet taken by ``recv()``;
            past it, the socket is not read until the queue drains to a quarter
            of it. A ``(high, low)`` tuple gives both marks (the socket is read
            again once the queue is down to ``low``). None: no limit.
        write_limit: The transport's buffer size, in bytes, above which
            ``send()`` waits for it to drain below a quarter of it. A
            ``(high, low)`` tuple gives both marks.
        logger: The connections' logger, or its name; reconnection attempts
            are logged on it too. By default ``fastws.client``.
        create_connection: The :class:`ClientConnection` subclass to make the
            connection with, to customize it.
        ssl: An :class:`ssl.SSLContext` for a ``wss://`` URI; by default
            :func:`ssl.create_default_context`.
        server_hostname: The host name to check the server's certificate
            against, instead of the URI's.
        host: Connect to this host instead of the URI's; the URI still gives
            the ``Host`` header, the request's path and the TLS server name.
        port: Connect to this port instead of the URI's.
        listener: A factory of the :class:`~fastws.asyncio.Listener` to call
            as events arrive, instead of reading with ``recv()`` (see
            :func:`connect_listener`).
        unix: Connect to the Unix socket ``path`` instead of the URI's host
            and port (see :func:`unix_connect`).
        path: The Unix socket's path, with ``unix=True``.
        **create_connection_kwargs: Passed to
            :meth:`asyncio.loop.create_connection` (or
            :meth:`~asyncio.loop.create_unix_connection`), for example ``sock``
            to use a connected socket, ``local_addr``, or
            ``ssl_handshake_timeout``. Through an HTTPS proxy,
            ``proxy_ssl_handshake_timeout`` and ``proxy_ssl_shutdown_timeout``
            apply to the connection to the proxy.

    Raises:
        ~fastws.exceptions.InvalidURI: If ``uri`` cannot be used (at once,
            before any I/O).
        ~fastws.exceptions.InvalidProxy: If ``proxy`` is not a valid proxy URL.
        TypeError: If a keyword argument is unknown.
        ValueError: If ``ssl`` is given with a ``ws://`` URI,
            ``compression`` is neither ``"deflate"`` nor None, or a limit is
            out of range.

    Awaiting it raises :class:`~fastws.exceptions.InvalidStatus` (with the
    HTTP status, headers and body) when the server refuses the upgrade, another
    :class:`~fastws.exceptions.InvalidHandshake` for a bad response,
    :class:`~fastws.exceptions.SecurityError` for a redirect from ``wss://`` to
    ``ws://`` or more than :data:`~fastws.retry.MAX_REDIRECTS` redirects,
    :class:`ValueError` for a redirect that cannot be followed (with ``sock``;
    to another origin with ``unix``, ``host`` or ``port``),
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
        proxy: Union[str, bool, None] = True,
        proxy_ssl: Any = None,
        proxy_server_hostname: Optional[str] = None,
        process_exception: Callable[[Exception], Optional[Exception]] = retry.process_exception,
        reconnect_delays: Callable[[], Iterator[float]] = retry.backoff,
        open_timeout: Optional[float] = 10,
        ping_interval: Optional[float] = 20,
        ping_timeout: Optional[float] = 20,
        close_timeout: Optional[float] = 10,
        max_size: MaxSize = DEFAULT_MAX_SIZE,
        max_queue: QueueLimit = 16,
        write_limit: WriteLimit = 32768,
        logger: LoggerLike = None,
        create_connection: Optional[Type[ClientConnection]] = None,
        ssl: Any = None,
        server_hostname: Optional[str] = None,
        host: Optional[str] = None,
        port: Optional[int] = None,
        listener: Optional[Callable[[], Listener]] = None,
        unix: bool = False,
        path: Optional[str] = None,
        **create_connection_kwargs: Any,
    ) -> None:
        _check_arguments("connect", create_connection_kwargs, unix)
        factories = extension_factories(compression, extensions, server=False)
        self._uri = uri
        self.uri = parse_uri(uri)  # InvalidURI at once, before any I/O
        if ssl is not None and not self.uri.secure:
            raise ValueError("connect() got an ssl context for a ws:// URI; use wss://")
        if isinstance(proxy, str):
            parse_proxy(proxy)  # InvalidProxy at once
        elif proxy is not None and proxy is not True and proxy is not False:
            raise TypeError(f"proxy must be True, None or a URL, not {type(proxy).__name__}")
        self._ssl = ssl
        self._server_hostname = server_hostname
        self._proxy = proxy
        self._proxy_ssl = proxy_ssl
        self._proxy_server_hostname = proxy_server_hostname
        self._host, self._port = host, port
        self._extra_headers = additional_headers if additional_headers is not None else extra_headers
        split_max_size(max_size)  # a bad value is refused at the call
        protocol_options: Dict[str, Any] = dict(
            origin=origin,
            subprotocols=subprotocols,
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
        # Wrong limits fail here rather than in each connection.
        queue_limits(max_queue)
        write_limits(write_limit)
        self._logger = logger
        #: Where this client logs its reconnection attempts: the connections'
        #: logger.
        self.logger = resolve_logger(logger, "fastws.client")
        self._create_connection: Type[ClientConnection] = (
            create_connection if create_connection is not None else ClientConnection
        )
        self.process_exception = process_exception
        self.reconnect_delays = reconnect_delays
        self._listener = listener
        self.open_timeout = open_timeout
        self._unix, self._path = unix, path
        self._kwargs = create_connection_kwargs
        self.connection: Optional[ClientConnection] = None

    # --- one attempt ------------------------------------------------------------------

    def _make_connection(self) -> ClientConnection:
        protocol = ClientProtocol(self.uri, extra_headers=self._extra_headers, **self._protocol_options)
        options: Dict[str, Any] = dict(self._connection_options)
        if self._listener is not None:
            options["listener"] = self._listener()
        if self._logger is not None:
            options["logger"] = self._logger
        return self._create_connection(protocol, **options)

    async def _open(self) -> ClientConnection:
        """Open TCP (or the Unix socket), TLS and the opening handshake, once."""
        loop = asyncio.get_running_loop()
        self.connection = None
        kwargs = dict(self._kwargs)
        uri = self.uri
        if uri.secure:
            kwargs["ssl"] = self._ssl if self._ssl is not None else ssl_module.create_default_context()
            kwargs["server_hostname"] = self._server_hostname or uri.host
        if self._unix:
            _, connection = await loop.create_unix_connection(self._make_connection, self._path, **kwargs)
        elif "sock" in kwargs:
            _, connection = await loop.create_connection(self._make_connection, **kwargs)
        else:
            host = self._host if self._host is not None else uri.host
            port = self._port if self._port is not None else uri.port
            proxy = resolve_proxy(self._proxy, uri)
            if proxy is None:
                _, connection = await loop.create_connection(self._make_connection, host, port, **kwargs)
            else:
                if self._proxy_ssl is not None:
                    kwargs["proxy_ssl"] = self._proxy_ssl
                if self._proxy_server_hostname is not None:
                    kwargs["proxy_server_hostname"] = self._proxy_server_hostname
                if "user_agent" in self._protocol_options:
                    kwargs["user_agent_header"] = self._protocol_options["user_agent"]
                # The tunnel goes to host and port; the URI still names the
                # server for TLS (server_hostname, set above for wss://).
                target = dataclasses.replace(uri, host=host, port=port)
                _, protocol = await create_connection_through_proxy(
                    loop, self._make_connection, proxy, target, **kwargs
                )
                connection = cast(ClientConnection, protocol)
        self.connection = connection
        await connection._opened
        return connection

    # --- redirects ----------------------------------------------------------------------

    def _follow(self, exc: Exception) -> bool:
        """If ``exc`` is a redirect, point this client at its target and return
        True; False if it is not one. Raise if it cannot be followed."""
        try:
            new_uri = retry.redirect_uri(self._uri, exc)
        except Exception as error:  # SecurityError, InvalidURI for a bad Location
            raise error from exc
        if new_uri is None:
            return False
        new = parse_uri(new_uri)
        shown = retry.shown_uri(new)  # the URI's credentials stay out of messages
        if "sock" in self._kwargs:
            raise ValueError(f"cannot follow a redirect to {shown} with a preexisting socket") from exc
        if not retry.same_origin(self.uri, new):
            if self._unix:
                raise ValueError(f"cannot follow a redirect to another origin, {shown}, over a Unix socket") from exc
            if self._host is not None or self._port is not None:
                raise ValueError(
                    f"cannot follow a redirect to another origin, {shown}, with host or port given"
                ) from exc
            self._extra_headers = retry.strip_credentials(self._extra_headers)
        self._uri, self.uri = new_uri, new
        return True

    async def _open_following_redirects(self) -> ClientConnection:
        for _ in range(retry.MAX_REDIRECTS + 1):
            try:
                return await self._open()
            except Exception as exc:
                self._abort()
                if not self._follow(exc):
                    raise
        raise SecurityError(f"more than {retry.MAX_REDIRECTS} redirects")

    def _abort(self) -> None:
        if self.connection is not None and self.connection.transport is not None:
            self.connection.transport.abort()

    async def _open_within_timeout(self) -> ClientConnection:
        try:
            return await self._open_following_redirects()
        except (TimeoutError, asyncio.TimeoutError) as exc:
            # A timeout of the connection's own (connect(2), TLS, a proxy): told
            # apart from open_timeout's, which is the same class from 3.11 on.
            raise _InnerTimeout(exc) from None

    async def _create(self) -> ClientConnection:
        try:
            if self.open_timeout is None:
                return await self._open_following_redirects()
            return await asyncio.wait_for(self._open_within_timeout(), self.open_timeout)
        except _InnerTimeout as wrapper:
            self._abort()
            error = wrapper.error
            raise error from error.__cause__
        except asyncio.TimeoutError:
            self._abort()
            raise TimeoutError(f"timed out after {self.open_timeout} s during the opening handshake") from None
        except BaseException:
            self._abort()
            raise

    # --- await, async with, async for ---------------------------------------------------

    def __await__(self) -> Generator[Any, None, ClientConnection]:
        return self._create().__await__()

    async def __aenter__(self) -> ClientConnection:
        return await self._create()

    async def __aexit__(self, *exc_info: Any) -> None:
        assert self.connection is not None
        await self.connection.close()

    async def __aiter__(self) -> AsyncIterator[ClientConnection]:
        delays: Optional[Iterator[float]] = None
        while True:
            try:
                async with self as connection:
                    yield connection
            except Exception as exc:
                # The policy returns None or an exception; one that raises is
                # taken as returning what it raised.
                try:
                    fatal = self.process_exception(exc)
                except Exception as raised:
                    fatal = raised
                if fatal is exc:
                    raise
                if fatal is not None:
                    raise fatal from exc
                if delays is None:
                    delays = self.reconnect_delays()
                delay = next(delays)
                self.logger.info("connect failed; reconnecting in %.1f seconds: %s", delay, _describe(exc))
                await asyncio.sleep(delay)
            else:
                # This connection opened: the next failure starts the delays over.
                delays = None


def unix_connect(path: Optional[str] = None, uri: Optional[str] = None, **options: Any) -> connect:
    """:func:`connect` over a Unix socket.

    Args:
        path: The Unix socket's path.
        uri: The URI of the request (its host goes into the ``Host`` header);
            ``ws://localhost/`` by default, ``wss://localhost/`` with ``ssl``.
        **options: The other options of :func:`connect`.

    Raises:
        TypeError: If an option is unknown.
    """
    if uri is None:
        uri = "ws://localhost/" if options.get("ssl") is None else "wss://localhost/"
    _check_arguments("unix_connect", _loop_arguments(options), unix=True)
    return connect(uri, unix=True, path=path, **options)


def connect_listener(factory: Callable[[], Listener], uri: str, **options: Any) -> connect:
    """:func:`connect` with the callback interface.

    Args:
        factory: Makes the :class:`Listener` whose methods are called as
            events arrive, straight from the parser loop.
        uri: The server's ``ws://`` or ``wss://`` URI.
        **options: The other options of :func:`connect`.

    Raises:
        TypeError: If an option is unknown.
    """
    _check_arguments("connect_listener", _loop_arguments(options), unix=bool(options.get("unix")))
    return connect(uri, listener=factory, **options)


_CONNECT_PARAMETERS = _parameters(connect.__init__) - {"create_connection_kwargs"}


def _loop_arguments(options: Dict[str, Any]) -> Dict[str, Any]:
    """The options that are not connect()'s own."""
    return {name: value for name, value in options.items() if name not in _CONNECT_PARAMETERS}

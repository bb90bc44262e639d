"""``connect()``: a WebSocket client on a blocking socket.

::

    from fastws.sync.client import connect

    with connect("ws://localhost:8765") as websocket:
        websocket.send("world")
        print(websocket.recv())

:func:`reconnect` is the iterator of connections that opens a new one after a
lost connection, with exponential backoff.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
import traceback
from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Tuple, Union

from ..compression import extension_factories
from ..exceptions import InvalidHandshake, InvalidMessage, InvalidURI, SecurityError
from ..frames import CloseCode
from ..http11 import HeadersLike
from ..limits import LoggerLike, QueueLimit, queue_limits, resolve_logger
from ..protocol import CONNECTING, ClientProtocol
from ..protocol.types import MaxSize, split_max_size
from ..proxy import Proxy, parse_proxy, resolve_proxy
from ..retry import (
    MAX_REDIRECTS,
    backoff,
    process_exception,
    redirect_uri,
    same_origin,
    shown_uri,
    strip_credentials,
)
from ..uri import parse_uri
from ..version import __version__
from .connection import Connection
from .proxy import connect_through_proxy

__all__ = [
    "connect",
    "unix_connect",
    "reconnect",
    "unix_reconnect",
    "ClientConnection",
    "process_exception",
    "backoff",
    "MAX_REDIRECTS",
    "USER_AGENT",
]

#: The default ``User-Agent`` header.
USER_AGENT = f"fastws/{__version__}"


class ClientConnection(Connection):
    """A connection opened by :func:`connect`: a
    :class:`~fastws.sync.connection.Connection` on the client side, with the
    server's :attr:`~fastws.sync.connection.Connection.response`."""

    _default_logger = "fastws.client"
    protocol: ClientProtocol

    def handshake(self, timeout: Optional[float] = None) -> None:
        """Send the opening handshake request and read the response.

        Raises:
            ~fastws.exceptions.InvalidHandshake: The server refused
                (:class:`~fastws.exceptions.InvalidStatus`) or answered badly.
            TimeoutError: No complete response within ``timeout``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        protocol = self.protocol
        with self._lock:
            self._flush_locked()
        while protocol.state is CONNECTING and not self._closed.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                self._abort()
                self.socket.close()
                raise TimeoutError(f"timed out after {timeout} s during the opening handshake")
            self._read_once(remaining)
        response = protocol.response
        if (
            response is not None
            and response.status_code == 101
            and not isinstance(protocol.error, InvalidHandshake)
        ):
            # Open, or already closing: a close frame may have come with the 101.
            self._start()
            return
        self.socket.close()
        error = protocol.error
        if error is None:
            error = InvalidMessage("connection closed during the opening handshake")
        if error.__cause__ is None and isinstance(error, InvalidMessage):
            # The server closed the connection before answering (a retry may
            # succeed: see fastws.retry.process_exception).
            reason = "" if self._connection_exc is None else f": {self._connection_exc}"
            raise error from EOFError(f"connection closed by the server{reason}")
        raise error


class reconnect:
    """Connect to a WebSocket server, again after each lost connection.

    ::

        for websocket in reconnect("ws://localhost:8765"):
            try:
                for message in websocket:
                    print(message)
            except ConnectionClosed:
                continue

    Iterating yields a new :class:`ClientConnection` each time (the previous one
    is closed when the loop goes on). A failed attempt is passed to
    ``process_exception``: when it returns None the attempt is retried after the
    next of ``reconnect_delays()`` (logged at INFO); otherwise what it returns is
    raised. :meth:`connect` makes one connection, following redirects; it is
    what :func:`connect` calls.

    The arguments are those of :func:`connect`, and:

    Args:
        process_exception: ``process_exception(exc)`` returns None to retry
            after ``exc``, or the exception to raise (see
            :func:`process_exception`, the default).
        reconnect_delays: Makes the iterator of delays between attempts
            (default :func:`backoff`); it starts over after a success.
    """

    def __init__(
        self,
        uri: str,
        *,
        sock: Optional[socket.socket] = None,
        ssl: Optional[ssl.SSLContext] = None,
        server_hostname: Optional[str] = None,
        origin: Optional[str] = None,
        extensions: Optional[Sequence[Any]] = None,
        subprotocols: Optional[Sequence[str]] = None,
        compression: Optional[str] = "deflate",
        additional_headers: Optional[HeadersLike] = None,
        user_agent_header: Optional[str] = USER_AGENT,
        proxy: Union[str, bool, None] = True,
        proxy_ssl: Optional[ssl.SSLContext] = None,
        proxy_server_hostname: Optional[str] = None,
        process_exception: Callable[[Exception], Optional[Exception]] = process_exception,
        open_timeout: Optional[float] = 10,
        ping_interval: Optional[float] = 20,
        ping_timeout: Optional[float] = 20,
        close_timeout: Optional[float] = 10,
        reconnect_delays: Callable[[], Iterator[float]] = backoff,
        max_size: MaxSize = 2**20,
        max_queue: QueueLimit = 16,
        logger: LoggerLike = None,
        create_connection: Optional[Callable[..., ClientConnection]] = None,
        unix: bool = False,
        path: Union[str, os.PathLike[str], None] = None,
        address: Optional[Tuple[str, int]] = None,
        source_address: Optional[Tuple[str, int]] = None,
    ) -> None:
        self.uri = uri
        self.ws_uri = parse_uri(uri)  # InvalidURI at once, before any I/O
        if ssl is not None and not self.ws_uri.secure:
            raise ValueError("ssl argument is incompatible with a ws:// URI")
        if proxy is not True and proxy is not None and not isinstance(proxy, str):
            raise TypeError(f"proxy must be True, None or a proxy URL, not {proxy!r}")
        if isinstance(proxy, str):
            parse_proxy(proxy)  # InvalidProxy at once, before any I/O
        if unix and path is None and sock is None:
            raise TypeError("unix=True needs a path")
        self.factories = extension_factories(compression, extensions, server=False)
        queue_limits(max_queue)  # a bad value is refused at the call
        split_max_size(max_size)  # a bad value is refused at the call
        self.logger = resolve_logger(logger, "fastws.client")
        self.sock, self.ssl, self.server_hostname = sock, ssl, server_hostname
        self.origin, self.subprotocols = origin, subprotocols
        self.additional_headers = additional_headers
        self.user_agent_header = user_agent_header
        self.proxy, self.proxy_ssl, self.proxy_server_hostname = proxy, proxy_ssl, proxy_server_hostname
        self.process_exception = process_exception
        self.open_timeout = open_timeout
        self.reconnect_delays = reconnect_delays
        self.max_size = max_size
        self.unix, self.path = unix, path
        self.address, self.source_address = address, source_address
        self.create_connection = create_connection or ClientConnection
        self.connection_options: Dict[str, Any] = dict(
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_queue=max_queue,
            logger=logger,
        )
        self.connection: Optional[ClientConnection] = None

    # --- one connection -------------------------------------------------------------

    def _open_socket(self, deadline: Optional[float]) -> socket.socket:
        if self.sock is not None:
            sock = self.sock
        elif self.unix:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(_remaining(deadline))
                sock.connect(os.fspath(self.path))  # type: ignore[arg-type]
            except BaseException:
                sock.close()
                raise
        else:
            proxy = self._proxy()
            if proxy is not None:
                sock = self._connect_through_proxy(proxy, deadline)
            else:
                sock = socket.create_connection(
                    self.address or (self.ws_uri.host, self.ws_uri.port),
                    timeout=_remaining(deadline),
                    source_address=self.source_address,
                )
        try:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ws_uri.secure:
                context = self.ssl if self.ssl is not None else ssl.create_default_context()
                sock.settimeout(_remaining(deadline))
                sock = context.wrap_socket(sock, server_hostname=self.server_hostname or self.ws_uri.host)
            sock.settimeout(None)
        except BaseException:
            sock.close()
            raise
        return sock

    def _proxy(self) -> Optional[Proxy]:
        """The proxy to go through: ``proxy=``, or with True the environment's."""
        if self.unix:
            return None
        return resolve_proxy(self.proxy, self.ws_uri)

    def _connect_through_proxy(self, proxy: Proxy, deadline: Optional[float]) -> socket.socket:
        kwargs: Dict[str, Any] = {}
        if self.source_address is not None:
            kwargs["source_address"] = self.source_address
        return connect_through_proxy(
            proxy,
            self.ws_uri,
            timeout=_remaining(deadline),
            proxy_ssl=self.proxy_ssl,
            proxy_server_hostname=self.proxy_server_hostname,
            user_agent_header=self.user_agent_header,
            **kwargs,
        )

    def _open_connection(self, deadline: Optional[float]) -> ClientConnection:
        try:
            sock = self._open_socket(deadline)
        except socket.timeout as exc:
            if isinstance(exc, TimeoutError):  # Python >= 3.10: the same class
                raise
            # Python 3.9: socket.timeout is an OSError, not a TimeoutError.
            raise TimeoutError(f"timed out while opening the connection: {exc}") from exc
        try:
            options: Dict[str, Any] = dict(
                origin=self.origin,
                subprotocols=self.subprotocols,
                extensions=self.factories,
                extra_headers=self.additional_headers,
                max_size=self.max_size,
            )
            options["user_agent"] = self.user_agent_header
            protocol = ClientProtocol(self.ws_uri, **options)
            connection = self.create_connection(sock, protocol, **self.connection_options)
        except BaseException:
            sock.close()
            raise
        try:
            connection.handshake(_remaining(deadline))
        except BaseException:
            sock.close()
            raise
        return connection

    def _redirect(self, exc: Exception) -> Union[Exception, str]:
        """The URI to go to after ``exc`` if it is a redirect to follow, else
        the exception to raise."""
        try:
            new_uri = redirect_uri(self.ws_uri, exc)
        except (SecurityError, InvalidURI) as refused:
            return refused
        if new_uri is None:
            return exc
        new = parse_uri(new_uri)
        shown = shown_uri(new)  # the URI's credentials stay out of messages
        if self.sock is not None:
            return ValueError(f"cannot follow redirect to {shown} with a preexisting socket")
        if not same_origin(self.ws_uri, new):
            if self.unix:
                return ValueError(f"cannot follow cross-origin redirect to {shown} with a Unix socket")
            if self.address is not None:
                return ValueError(f"cannot follow cross-origin redirect to {shown} with an explicit address")
            # Credentials stay with the origin they were meant for.
            self.additional_headers = strip_credentials(self.additional_headers)
        return new_uri

    def connect(self) -> ClientConnection:
        """Open one connection, following redirects (at most
        :data:`~fastws.retry.MAX_REDIRECTS`), within ``open_timeout`` in all.

        Raises:
            As :func:`connect`.
        """
        deadline = None if self.open_timeout is None else time.monotonic() + self.open_timeout
        for _ in range(MAX_REDIRECTS + 1):
            try:
                return self._open_connection(deadline)
            except Exception as exc:
                target = self._redirect(exc)
                if isinstance(target, Exception):
                    if target is exc:
                        raise
                    raise target from exc
                self.logger.info("following redirect to %s", target)
                self.uri, self.ws_uri = target, parse_uri(target)
        raise SecurityError(f"more than {MAX_REDIRECTS} redirects")

    def __enter__(self) -> ClientConnection:
        self.connection = self.connect()
        return self.connection

    def __exit__(self, exc_type: Any, exc_value: Any, tb: Any) -> None:
        assert self.connection is not None
        try:
            self.connection.__exit__(exc_type, exc_value, tb)
        finally:
            self.connection = None

    # --- reconnecting ---------------------------------------------------------------

    def __iter__(self) -> Iterator[ClientConnection]:
        delays: Optional[Iterator[float]] = None
        while True:
            try:
                connection = self.connect()
            except Exception as exc:
                try:
                    outcome = self.process_exception(exc)
                except Exception as raised:
                    outcome = raised
                if outcome is exc:
                    raise
                if outcome is not None:
                    raise outcome from exc
                if delays is None:
                    delays = self.reconnect_delays()
                delay = next(delays)
                self.logger.info(
                    "connect failed; reconnecting in %.1f seconds: %s",
                    delay,
                    traceback.format_exception_only(type(exc), exc)[0].strip(),
                )
                time.sleep(delay)
                continue
            delays = None
            try:
                yield connection
            except GeneratorExit:
                connection.close()  # the loop was left (break): a normal closure
                raise
            except BaseException:
                connection.close(CloseCode.INTERNAL_ERROR)
                raise
            else:
                connection.close()


def _remaining(deadline: Optional[float]) -> Optional[float]:
    if deadline is None:
        return None
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("timed out while opening the connection")
    return remaining


def connect(
    uri: str,
    *,
    sock: Optional[socket.socket] = None,
    ssl: Optional[ssl.SSLContext] = None,
    server_hostname: Optional[str] = None,
    origin: Optional[str] = None,
    extensions: Optional[Sequence[Any]] = None,
    subprotocols: Optional[Sequence[str]] = None,
    compression: Optional[str] = "deflate",
    additional_headers: Optional[HeadersLike] = None,
    user_agent_header: Optional[str] = USER_AGENT,
    proxy: Union[str, bool, None] = True,
    proxy_ssl: Optional[ssl.SSLContext] = None,
    proxy_server_hostname: Optional[str] = None,
    open_timeout: Optional[float] = 10,
    ping_interval: Optional[float] = 20,
    ping_timeout: Optional[float] = 20,
    close_timeout: Optional[float] = 10,
    max_size: MaxSize = 2**20,
    max_queue: QueueLimit = 16,
    logger: LoggerLike = None,
    create_connection: Optional[Callable[..., ClientConnection]] = None,
    unix: bool = False,
    path: Union[str, os.PathLike[str], None] = None,
    address: Optional[Tuple[str, int]] = None,
    source_address: Optional[Tuple[str, int]] = None,
    legacy: Optional[bool] = None,
) -> Any:
    """Connect to the WebSocket server at ``uri``; returns the open
    :class:`ClientConnection`, to use in a ``with`` block (which closes it) or
    to close with :meth:`~fastws.sync.connection.Connection.close`.

    Args:
        uri: The server's ``ws://`` or ``wss://`` URI.
        sock: A connected socket to use instead of opening one.
        ssl: The :class:`ssl.SSLContext` for ``wss://`` (by default
            :func:`ssl.create_default_context`).
        server_hostname: The host name to check the certificate against,
            instead of the URI's.
        origin: The ``Origin`` header, if any.
        extensions: More extension factories, offered after
            permessage-deflate.
        subprotocols: Subprotocols to offer, in order of preference.
        compression: ``"deflate"`` (the default) offers permessage-deflate;
            None does not.
        additional_headers: Headers added to the request.
        user_agent_header: The ``User-Agent`` header; None for none.
        proxy: True (the default) uses the proxy of the environment
            (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``), a
            string is the proxy's URL, None connects directly.
        proxy_ssl: The :class:`ssl.SSLContext` for an ``https://`` proxy.
        proxy_server_hostname: The host name of the proxy's certificate.
        open_timeout: Seconds for the TCP connection, TLS and the opening
            handshake together (redirects included). None: no limit.
        ping_interval: Seconds between keepalive pings. None: no keepalive.
        ping_timeout: Seconds to wait for a keepalive pong before failing
            the connection with 1011. None: no limit.
        close_timeout: Seconds the closing handshake may take. None: no limit.
        max_size: The largest message received, in bytes (a larger one fails
            the connection with 1009), or ``(message, fragment)`` limits, the
            second on each frame. None: no limit.
        max_queue: The high-water mark of messages received and not yet read,
            or ``(high, low)``; past high, the socket is not read until the
            queue drains to low (default high // 4). None: no limit.
        logger: The logger (or its name); default ``fastws.client``.
        create_connection: The class (or factory) of the connection, called
            as ``create_connection(sock, protocol, **options)``.
        unix: Connect to the Unix socket ``path`` (see :func:`unix_connect`).
        path: The Unix socket's path.
        address: The ``(host, port)`` to connect to instead of the URI's (the
            URI still gives the ``Host`` header and the TLS host name).
        source_address: The local ``(host, port)`` to bind to.
        legacy: False returns a :class:`reconnect` instead of a connection,
            as ``websockets`` does; anything else is ignored.

    Raises:
        ~fastws.exceptions.InvalidURI: ``uri`` cannot be used.
        ~fastws.exceptions.InvalidHandshake: The handshake failed
            (:class:`~fastws.exceptions.InvalidStatus` for a refusal,
            :class:`~fastws.exceptions.SecurityError` for a redirect from
            ``wss://`` to ``ws://`` or too many redirects).
        TimeoutError: ``open_timeout`` passed.
        OSError: The TCP connection failed.
        TypeError: An unknown keyword argument.
    """
    connector = reconnect(
        uri,
        sock=sock,
        ssl=ssl,
        server_hostname=server_hostname,
        origin=origin,
        extensions=extensions,
        subprotocols=subprotocols,
        compression=compression,
        additional_headers=additional_headers,
        user_agent_header=user_agent_header,
        proxy=proxy,
        proxy_ssl=proxy_ssl,
        proxy_server_hostname=proxy_server_hostname,
        open_timeout=open_timeout,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        close_timeout=close_timeout,
        max_size=max_size,
        max_queue=max_queue,
        logger=logger,
        create_connection=create_connection,
        unix=unix,
        path=path,
        address=address,
        source_address=source_address,
    )
    if legacy is False:
        return connector
    return connector.connect()


def unix_connect(
    path: Union[str, os.PathLike[str], None] = None,
    uri: Optional[str] = None,
    **options: Any,
) -> ClientConnection:
    """:func:`connect` over the Unix socket ``path``; ``uri`` (default
    ``ws://localhost/``, ``wss://`` when ``ssl`` is given) gives the request's
    host and path. The other options are those of :func:`connect`."""
    if uri is None:
        uri = "wss://localhost/" if options.get("ssl") is not None else "ws://localhost/"
    connection: ClientConnection = connect(uri, unix=True, path=path, **options)
    return connection


def unix_reconnect(
    path: Union[str, os.PathLike[str], None] = None,
    uri: Optional[str] = None,
    **options: Any,
) -> reconnect:
    """:class:`reconnect` over the Unix socket ``path`` (see :func:`unix_connect`)."""
    if uri is None:
        uri = "wss://localhost/" if options.get("ssl") is not None else "ws://localhost/"
    return reconnect(uri, unix=True, path=path, **options)

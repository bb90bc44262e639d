"""``serve()``: a WebSocket server on asyncio.

::

    async def hello(websocket):
        name = await websocket.recv()
        await websocket.send(f"Hello {name}!")

    async with fastws.serve(hello, "localhost", 8765) as server:
        await server.serve_forever()

The handler runs once per connection, after the opening handshake; the
connection closes with 1000 when it returns and with 1011 when it raises (the
exception is logged on the ``fastws.server`` logger). ``process_request`` and
``process_response`` see the handshake's request and response, and may answer
with another response (:func:`basic_auth` makes one such hook).
``serve_listener()`` runs a :class:`~fastws.asyncio.connection.Listener` per
connection instead, for servers that cannot afford a task switch per message.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    FrozenSet,
    Generator,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
)

from ..compression import extension_factories
from ..frames import CloseCode
from ..handshake import OriginRule, check_origins
from ..headers import TOKEN
from ..http11 import HeadersLike
from ..limits import LoggerLike, QueueLimit, WriteLimit, queue_limits, resolve_logger, write_limits
from ..protocol import CONNECTING, DEFAULT_MAX_SIZE, OPEN, ServerProtocol
from ..protocol.types import MaxSize
from .auth import basic_auth
from .connection import Listener, broadcast
from .server_connection import (
    CloseTimer,
    OpenTimer,
    ProcessRequest,
    ProcessResponse,
    ServerConnection,
)

__all__ = [
    "serve",
    "unix_serve",
    "serve_listener",
    "basic_auth",
    "broadcast",
    "Server",
    "ServerConnection",
]

Handler = Callable[..., Awaitable[None]]


def _takes_path(handler: Callable[..., Any]) -> bool:
    """Whether ``handler`` is an old-style ``handler(websocket, path)``."""
    try:
        params = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    return len(positional) >= 2 and positional[1].default is inspect.Parameter.empty


class Server:
    """A running WebSocket server: what ``await serve(...)`` returns.

    Its API follows :class:`asyncio.Server`'s (:meth:`close`,
    :meth:`wait_closed`, :meth:`get_loop`, :meth:`is_serving`,
    :meth:`start_serving`, :meth:`serve_forever`, :attr:`sockets`). :meth:`close` stops
    accepting connections, closes every open connection with 1001 (going
    away) and lets handlers finish; :meth:`wait_closed` waits for it.
    ``async with server:`` does both at the end of the block.

    :func:`serve` creates it; the arguments are those of :func:`serve`.

    Args:
        handler: The connection handler, None with a :class:`Listener`.
        process_request: The ``process_request`` hook, or None.
        process_response: The ``process_response`` hook, or None.
        close_timeout: Seconds :meth:`close` gives the handlers to return
            before it cancels them; None: no limit.
        logger: The logger of the server's own lines ("server listening on
            ..."): a logger, a logger's name, or None for ``fastws.server``.

    Attributes:
        server (asyncio.Server | None): The asyncio server that listens.
        logger (logging.Logger | logging.LoggerAdapter): The server's logger.
    """

    def __init__(
        self,
        handler: Optional[Handler],
        *,
        process_request: Optional[ProcessRequest] = None,
        process_response: Optional[ProcessResponse] = None,
        close_timeout: Optional[float] = 10,
        logger: LoggerLike = None,
    ) -> None:
        self.handler = handler
        self.handler_takes_path = handler is not None and _takes_path(handler)
        self.process_request = process_request
        self.process_response = process_response
        self.close_timeout = close_timeout
        self.logger = resolve_logger(logger, "fastws.server")
        self.server: Optional[asyncio.Server] = None
        self._connections: Set[ServerConnection] = set()
        self._handlers: Set[asyncio.Task[None]] = set()
        # Each handler's task leaves _handlers when done: one bound method for
        # all of them (one made per task is 64 bytes held while it runs).
        self._handler_done = self._handlers.discard
        self._close_task: Optional[asyncio.Task[None]] = None
        self._done: Optional[asyncio.Future[None]] = None  # set once closed
        # makes one ServerConnection; set by serve()
        self._factory: Optional[Callable[[], ServerConnection]] = None
        # The open timeout of serve()'s connections; set by serve().
        self._open_timer: Optional[OpenTimer] = None
        # The close timeout of the connections serve() makes (see CloseTimer).
        self._close_timer: Optional[CloseTimer] = None

    def _started(self) -> asyncio.Server:
        if self.server is None:
            raise RuntimeError("the server is not started: await serve(...) first")
        return self.server

    @property
    def connections(self) -> Set[ServerConnection]:
        """The connections that are open: past the opening handshake, and
        not yet closing (the ones to :func:`broadcast` to)."""
        return {c for c in self._connections if c.protocol.state is OPEN}

    @property
    def all_connections(self) -> Set[ServerConnection]:
        """Every connection the server holds: from the TCP accept, through the
        opening handshake, until TCP is closed."""
        return set(self._connections)

    @property
    def sockets(self) -> Tuple[socket.socket, ...]:
        """The listening sockets (``server.sockets[0].getsockname()`` gives the port)."""
        return () if self.server is None else tuple(self.server.sockets or ())

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the server runs on.

        Raises:
            RuntimeError: If the server is not started yet.
        """
        return self._started().get_loop()

    def is_serving(self) -> bool:
        """True while the server accepts connections."""
        return self.server is not None and self.server.is_serving()

    async def connect_accepted_socket(self, sock: socket.socket, **kwargs: Any) -> ServerConnection:
        """Serve one connection on ``sock``, a socket accepted elsewhere (by
        another process, and handed over with ``socket.send_fds``), as if
        this server had accepted it: the opening handshake, the handler, and
        :meth:`close` closing it with the others.

        Args:
            sock: A connected stream socket.
            kwargs: For :meth:`asyncio.loop.connect_accepted_socket`
                (``ssl``, ``ssl_handshake_timeout``...).

        Returns:
            The connection, before its opening handshake.

        Raises:
            RuntimeError: If the server is not accepting connections (not
                started, not serving yet, or closing).
        """
        if self._factory is None or not self.is_serving():
            raise RuntimeError("the server is not accepting connections")
        loop = self.get_loop()
        # Every asyncio loop has it; AbstractEventLoop declares it from Python 3.10 on.
        accept = loop.connect_accepted_socket  # type: ignore[attr-defined,unused-ignore]
        _, connection = await accept(self._factory, sock, **kwargs)
        return connection  # type: ignore[no-any-return,unused-ignore]

    async def start_serving(self) -> None:
        """Start accepting connections, after ``serve(..., start_serving=False)``;
        does nothing if the server accepts them already.

        Raises:
            RuntimeError: If the server is not started yet.
        """
        await self._started().start_serving()

    def close(
        self,
        close_connections: bool = True,
        code: int = CloseCode.GOING_AWAY,
        reason: str = "server shutting down",
    ) -> None:
        """Stop accepting connections and close the open ones.

        Open connections are closed with ``code`` and ``reason``; a connection
        whose request has not fully arrived is dropped; one whose request a
        hook is still processing is answered 503 (Service Unavailable) when
        the hook returns. The handlers get ``close_timeout`` seconds to
        return before they are cancelled. Returns at once: :meth:`wait_closed`
        waits for the end. Calling it again does nothing.

        Args:
            close_connections: False leaves the open connections open: only
                accepting stops (the handlers still get ``close_timeout``
                seconds before they are cancelled).
            code: The close code, 1001 (going away) by default; 1012
                (service restart) tells clients to come back.
            reason: The close reason.

        Raises:
            RuntimeError: If the server is not started yet.
        """
        if self._close_task is None:
            self._close_task = self._started().get_loop().create_task(
                self._close(close_connections, code, reason)
            )

    async def _close(self, close_connections: bool, code: int, reason: str) -> None:
        try:
            server = self._started()
            self.logger.info("server closing")
            server.close()
            await asyncio.sleep(0)  # connections accepted just before close() get made
            if close_connections:
                for connection in list(self._connections):
                    protocol = connection.protocol
                    if protocol.state is OPEN:
                        protocol.send_close(code, reason)
                        connection._flush()
                    elif (
                        protocol.state is CONNECTING
                        and protocol.request is None
                        and connection.transport is not None
                    ):
                        connection.transport.close()
                closing = [c._closed for c in list(self._connections)]
                if closing:
                    # Each is bounded by its close timer, or its open timer.
                    await asyncio.wait(closing)
            if self._handlers:
                _, pending = await asyncio.wait(set(self._handlers), timeout=self.close_timeout)
                for task in pending:
                    task.cancel()
                if pending:
                    self.logger.warning(
                        "cancelled %d handlers still running at shutdown", len(pending)
                    )
                    await asyncio.wait(pending)
            self.logger.info("server closed")
        finally:
            if self._open_timer is not None:
                self._open_timer.stop()
            if self._close_timer is not None:
                self._close_timer.stop()
            done = self._done_future()
            if not done.done():
                done.set_result(None)

    def _done_future(self) -> asyncio.Future[None]:
        if self._done is None:
            self._done = self._started().get_loop().create_future()
        return self._done

    async def wait_closed(self) -> None:
        """Wait until the server is closed: after :meth:`close`, once every
        connection is closed and every handler returned.

        Raises:
            RuntimeError: If the server is not started yet.
        """
        await asyncio.shield(self._done_future())

    async def serve_forever(self) -> None:
        """Accept connections until the server is closed: by :meth:`close`
        (then it returns), or by cancelling this call (then it closes the
        server as :meth:`close` does, and raises :class:`asyncio.CancelledError`).

        Raises:
            RuntimeError: If the server is not started yet.
        """
        try:
            if self._close_task is None and not self.is_serving():
                await self.start_serving()
            await self.wait_closed()
        except asyncio.CancelledError:
            self.close()
            await self.wait_closed()
            raise

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.close()
        await self.wait_closed()


#: What serve() passes to create_server() or create_unix_server() itself.
_PASSED_BY_SERVE = frozenset({"self", "protocol_factory", "host", "port", "path"})


def _loop_options(unix: bool) -> Optional[FrozenSet[str]]:
    """The keyword arguments that the running loop's ``create_server`` (or
    ``create_unix_server``) takes besides those serve() passes; asyncio's when
    no loop runs. None when any is taken (``**kwargs``) or its signature is
    unknown."""
    name = "create_unix_server" if unix else "create_server"
    loop: Any
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = asyncio.AbstractEventLoop
    try:
        parameters = inspect.signature(getattr(loop, name)).parameters.values()
    except (AttributeError, TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return frozenset(p.name for p in parameters if p.kind in named) - _PASSED_BY_SERVE


def _check_subprotocols(subprotocols: Optional[Sequence[str]]) -> None:
    if subprotocols is None:
        return
    if isinstance(subprotocols, (str, bytes)) or not isinstance(subprotocols, Sequence):
        raise TypeError(f"subprotocols must be a list of str, not {subprotocols!r}")
    for subprotocol in subprotocols:
        if not isinstance(subprotocol, str) or not TOKEN.fullmatch(subprotocol):
            raise ValueError(f"invalid subprotocol {subprotocol!r}: not a token")


def _check_loop_options(
    function: str, options: Mapping[str, Any], unix: bool, own: FrozenSet[str] = frozenset()
) -> None:
    """Refuse, as Python does, the keyword arguments that neither ``function``
    (``own``) nor the loop's ``create_server`` takes."""
    allowed = _loop_options(unix)
    if allowed is None:
        return
    unknown = [name for name in options if name not in allowed and name not in own]
    if len(unknown) == 1:
        raise TypeError(f"{function}() got an unexpected keyword argument {unknown[0]!r}")
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        raise TypeError(f"{function}() got unexpected keyword arguments {names}")


class serve:
    """Start a WebSocket server; use with ``await`` or ``async with``.

    ``await serve(...)`` returns the running :class:`Server`;
    ``async with serve(...) as server:`` also closes it at the end of the block.
    Awaiting raises what :meth:`asyncio.loop.create_server` raises, such as
    :class:`OSError` when the address is in use.

    The handler runs once per connection, after the opening handshake: the
    connection closes with 1000 when it returns and with 1011 when it raises
    (the exception is logged on the connection's logger).

    Args:
        handler: The connection handler, ``async def handler(websocket)``
            (the older ``handler(websocket, path)`` works too). None only with
            ``listener``.
        host: The interface to listen on, as for
            :meth:`asyncio.loop.create_server` (None: every interface).
        port: The TCP port (0: any free port, see :attr:`Server.sockets`).
        subprotocols: The subprotocols the server supports, in its order of
            preference: the first of them that the client offers is chosen.
        select_subprotocol: ``select_subprotocol(connection, offered)`` chooses
            instead: it returns one of the client's ``offered`` subprotocols, or
            None for none (a value the client did not offer fails the handshake
            with 500).
        origins: The allowed values of the ``Origin`` header: strings match it
            exactly, compiled regular expressions (:func:`re.compile`) must
            match all of it, and None in the list allows requests without one
            (non-browser clients). Other requests get 403. None (the default)
            allows every origin.
        process_request: ``process_request(connection, request)``, a function or
            a coroutine function, called with the client's
            :class:`~fastws.http11.Request` before the handshake is answered.
            Returning a :class:`~fastws.http11.Response`, for example
            ``connection.respond(http.HTTPStatus.NOT_FOUND, "Not found\\n")``,
            sends it instead of the handshake; returning None goes on with the
            handshake. An exception in it is logged and answered with 500.
            :func:`basic_auth` makes one.
        process_response: ``process_response(connection, request, response)``,
            a function or a coroutine function, called with the response about
            to be sent: the 101, the refusal of a bad request, or what
            ``process_request`` returned. It may change ``response`` in place
            and return None, or return another Response to send instead. An
            exception in it is logged and answered with 500.
        extra_headers: Headers added to the 101 response.
        server_header: The ``Server`` header of the server's responses; None
            for none. By default it names fastws and its version.
        compression: ``"deflate"`` (the default) accepts permessage-deflate
            (RFC 7692) when the client offers it; None turns it off.
        extensions: More extension factories (see :mod:`fastws.extensions`),
            tried after permessage-deflate.
        open_timeout: Seconds from the TCP accept to the end of the opening
            handshake, hooks included; a client that takes longer is
            disconnected. None: no limit. With ``ssl``, the default
            ``ssl_handshake_timeout`` too.
        ping_interval: Seconds between keepalive pings. None: no keepalive.
        ping_timeout: Seconds to wait for the pong of a keepalive ping; then
            the connection fails with 1011. None: no limit.
        close_timeout: Seconds the closing handshake may take before TCP is
            closed anyway; also what :meth:`Server.close` gives the handlers to
            return before it cancels them. With ``ssl``, the default
            ``ssl_shutdown_timeout`` too (where the loop takes one).
        max_size: The largest message received, in bytes, across its
            fragments (after decompression): a larger one fails the connection
            with 1009 before it is buffered. None: no limit. A pair
            ``(message, fragment)`` limits each fragment as received too.
        max_queue: The most messages received and not yet taken by ``recv()``;
            past it, the socket is not read until the queue drains to a quarter
            of it, or to ``low`` given ``(high, low)``. None: no limit.
        write_limit: The transport's buffer size, in bytes, above which
            ``send()`` waits for it to drain below a quarter of it, or below
            ``low`` given ``(high, low)``.
        logger: The logger of the server and its connections: a logger, a
            logger's name, or None for ``fastws.server``.
        create_connection: What makes each connection: a subclass of
            :class:`ServerConnection` (or a function with its signature),
            called as ``create_connection(protocol, server, **options)``.
        listener: A factory of :class:`~fastws.asyncio.Listener` objects, one
            per connection, instead of ``handler`` (see :func:`serve_listener`).
        unix: Listen on the Unix socket ``path`` instead of TCP (see
            :func:`unix_serve`).
        path: The Unix socket's path, with ``unix=True``.
        **create_server_kwargs: Passed to :meth:`asyncio.loop.create_server`
            (or :meth:`~asyncio.loop.create_unix_server`): ``ssl`` (an
            :class:`ssl.SSLContext`, to serve ``wss://``), ``reuse_port``,
            ``backlog``, ``sock``, ``start_serving``...

    Raises:
        TypeError: If neither ``handler`` nor ``listener`` is given, if a
            keyword argument is neither one of these nor one that the event
            loop's ``create_server`` takes, or if ``subprotocols``,
            ``max_queue``, ``write_limit``, ``origins`` or
            ``create_connection`` has the wrong type.
        ValueError: If ``compression`` is neither ``"deflate"`` nor None, a
            subprotocol is not a token, or ``max_queue``, ``write_limit`` or
            ``max_size`` is out of range.
    """

    def __init__(
        self,
        handler: Optional[Handler],
        host: Optional[str] = None,
        port: Optional[int] = None,
        *,
        subprotocols: Optional[Sequence[str]] = None,
        select_subprotocol: Optional[
            Callable[[ServerConnection, Sequence[str]], Optional[str]]
        ] = None,
        origins: Optional[Sequence[OriginRule]] = None,
        process_request: Optional[ProcessRequest] = None,
        process_response: Optional[ProcessResponse] = None,
        extra_headers: Optional[HeadersLike] = None,
        server_header: Optional[str] = "default",
        compression: Optional[str] = "deflate",
        extensions: Optional[Sequence[Any]] = None,
        open_timeout: Optional[float] = 10,
        ping_interval: Optional[float] = 20,
        ping_timeout: Optional[float] = 20,
        close_timeout: Optional[float] = 10,
        max_size: MaxSize = DEFAULT_MAX_SIZE,
        max_queue: QueueLimit = 16,
        write_limit: WriteLimit = 32768,
        logger: LoggerLike = None,
        create_connection: Optional[Callable[..., ServerConnection]] = None,
        listener: Optional[Callable[[], Listener]] = None,
        unix: bool = False,
        path: Optional[str] = None,
        **create_server_kwargs: Any,
    ) -> None:
        _check_loop_options("serve", create_server_kwargs, unix)
        factories = extension_factories(compression, extensions, server=True)
        if handler is None and listener is None:
            raise TypeError("serve() needs a handler")
        # Refused here rather than in every handshake.
        _check_subprotocols(subprotocols)
        queue_limits(max_queue)
        write_limits(write_limit)
        checked_origins = check_origins(origins)
        if create_connection is None:
            create_connection = ServerConnection
        elif not callable(create_connection):
            raise TypeError(
                "create_connection must be a ServerConnection subclass or a function,"
                f" not {create_connection!r}"
            )
        if create_server_kwargs.get("ssl") is not None:
            # As websockets does: the TLS handshake and shutdown get the
            # WebSocket ones' timeouts.
            allowed = _loop_options(unix)
            for name, value in (
                ("ssl_handshake_timeout", open_timeout),
                ("ssl_shutdown_timeout", close_timeout),
            ):
                if allowed is None or name in allowed:
                    create_server_kwargs.setdefault(name, value)
        self._server = Server(
            handler,
            process_request=process_request,
            process_response=process_response,
            close_timeout=close_timeout,
            logger=logger,
        )
        protocol_options: Dict[str, Any] = dict(
            subprotocols=subprotocols,
            origins=checked_origins,
            extra_headers=extra_headers,
            extensions=tuple(factories),
            max_size=max_size,
            auto_accept=False,
        )
        if server_header != "default":
            protocol_options["server_header"] = server_header
        # One made now refuses a bad option (max_size...) at the call.
        ServerProtocol(**protocol_options)
        # The keyword arguments websockets passes to create_connection, and
        # fastws's own ones only when they are used.
        connection_options: Dict[str, Any] = dict(
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_queue=max_queue,
            write_limit=write_limit,
        )
        if logger is not None:
            connection_options["logger"] = logger
        server = self._server
        make = create_connection

        def make_connection() -> ServerConnection:
            protocol = ServerProtocol(**protocol_options)
            if listener is None:
                connection = make(protocol, server, **connection_options)
            else:
                connection = make(protocol, server, listener=listener(), **connection_options)
            connection.open_timeout = open_timeout
            if select_subprotocol is not None:
                protocol.select_subprotocol = lambda request, offered: select_subprotocol(
                    connection, offered
                )
            return connection

        self._factory = self._server._factory = make_connection
        if open_timeout is not None:
            self._server._open_timer = OpenTimer(open_timeout)
        if close_timeout is not None:
            self._server._close_timer = CloseTimer(close_timeout)
        self._host, self._port = host, port
        self._unix, self._path = unix, path
        self._kwargs = create_server_kwargs

    async def _create(self) -> Server:
        loop = asyncio.get_running_loop()
        if self._unix:
            server = await loop.create_unix_server(self._factory, self._path, **self._kwargs)
        elif self._port is None:  # any free port, or a sock= among the kwargs
            server = await loop.create_server(self._factory, self._host, **self._kwargs)
        else:
            server = await loop.create_server(self._factory, self._host, self._port, **self._kwargs)
        self._server.server = server
        if server.is_serving():
            for sock in server.sockets or ():
                self._server.logger.info("server listening on %s", _socket_name(sock))
        return self._server

    def __await__(self) -> Generator[Any, None, Server]:
        return self._create().__await__()

    async def __aenter__(self) -> Server:
        return await self._create()

    async def __aexit__(self, *exc_info: Any) -> None:
        self._server.close()
        await self._server.wait_closed()


def _socket_name(sock: Any) -> str:
    name = sock.getsockname()
    if sock.family == socket.AF_INET6:
        return f"[{name[0]}]:{name[1]}"
    if sock.family == socket.AF_INET:
        return f"{name[0]}:{name[1]}"
    return str(name)  # a Unix socket's path


#: The keyword arguments serve() takes itself.
_SERVE_OPTIONS = frozenset(inspect.signature(serve.__init__).parameters) - {
    "self",
    "create_server_kwargs",
}


def unix_serve(handler: Handler, path: Optional[str] = None, **options: Any) -> serve:
    """:func:`serve` on a Unix socket.

    Args:
        handler: The connection handler, as for :func:`serve`.
        path: The Unix socket's path.
        **options: The other options of :func:`serve`, and those of
            :meth:`asyncio.loop.create_unix_server`.

    Raises:
        TypeError: If a keyword argument is none of these.
    """
    _check_loop_options("unix_serve", options, True, _SERVE_OPTIONS)
    return serve(handler, unix=True, path=path, **options)


def serve_listener(
    factory: Callable[[], Listener],
    host: Optional[str] = None,
    port: Optional[int] = None,
    **options: Any,
) -> serve:
    """:func:`serve` with the callback interface.

    Args:
        factory: Called once per connection, it makes the :class:`Listener`
            whose methods are called as events arrive, straight from the
            parser loop.
        host: The interface to listen on, as for :func:`serve`.
        port: The TCP port.
        **options: The other options of :func:`serve`, and those of
            :meth:`asyncio.loop.create_server`.

    Raises:
        TypeError: If a keyword argument is none of these.
    """
    _check_loop_options("serve_listener", options, bool(options.get("unix")), _SERVE_OPTIONS)
    return serve(None, host, port, listener=factory, **options)

"""``serve()``: a WebSocket server on asyncio.

::

    async def hello(websocket):
        name = await websocket.recv()
        await websocket.send(f"Hello {name}!")

    async with fastws.serve(hello, "localhost", 8765) as server:
        await server.serve_forever()

The handler runs once per connection, after the opening handshake; the
connection closes with 1000 when it returns and with 1011 when it raises (the
exception is logged on the ``fastws`` logger). ``serve_listener()`` runs a
:class:`~fastws.asyncio.connection.Listener` per connection instead, for servers
that cannot afford a task switch per message.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from typing import Any, Awaitable, Callable, Dict, Generator, Optional, Sequence, Set, Tuple, Union

from ..exceptions import ConnectionClosed, InvalidHandshake, ProtocolError
from ..frames import CloseCode
from ..http11 import HeadersLike, Request, Response
from ..protocol import CONNECTING, DEFAULT_MAX_SIZE, OPEN, ServerProtocol
from .compression import extension_factories
from .connection import Connection, Listener, logger

__all__ = ["serve", "unix_serve", "serve_listener", "Server", "ServerConnection"]

Handler = Callable[..., Awaitable[None]]
ProcessRequest = Callable[["ServerConnection", Request], Union[None, Response, Awaitable[Optional[Response]]]]


class ServerConnection(Connection):
    """A connection accepted by a :class:`Server`.

    The handler receives it; it has everything :class:`Connection` has, and
    :meth:`respond` for the ``process_request`` hook.

    Attributes:
        server (Server): The server that accepted it.
        open_timeout (float | None): Seconds from the TCP accept to the end of
            the opening handshake.
        handler_task (asyncio.Task | None): The task running the handler, once
            the handshake succeeded (None with a :class:`Listener`).
    """

    protocol: ServerProtocol

    def __init__(self, server: Server, protocol: ServerProtocol, **options: Any) -> None:
        self.server = server
        self.open_timeout: Optional[float] = options.pop("open_timeout", 10)
        super().__init__(protocol, **options)
        self._open_timer: Optional[asyncio.TimerHandle] = None
        self._hook_task: Optional[asyncio.Task[None]] = None  # an async process_request
        self.handler_task: Optional[asyncio.Task[None]] = None
        self._peer: Any = None  # kept for the log line once the transport is gone
        self._refusal_logged = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._peer = transport.get_extra_info("peername")
        super().connection_made(transport)
        self.server._connections.add(self)
        if self.open_timeout is not None:
            self._open_timer = self.loop.call_later(self.open_timeout, self._open_timed_out)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if self._open_timer is not None:
            self._open_timer.cancel()
        if self._hook_task is not None:
            self._hook_task.cancel()  # nobody is left to answer
        super().connection_lost(exc)
        self.server._connections.discard(self)
        error = self.protocol.error
        if (
            isinstance(error, InvalidHandshake)
            and not self._refusal_logged
            and getattr(self.protocol, "response", None) is not None
        ):
            # A request the parser refused (garbage, TLS on a plain port...):
            # the protocol answered with an HTTP error before any hook ran.
            logger.info("refused opening handshake from %s: %s", self._peer, error)
        elif isinstance(error, ProtocolError):
            # The peer broke the protocol: one line, no traceback (not a server bug).
            sent = self.protocol.close_sent
            code = sent.code if sent is not None else error.close_code
            logger.info("failed connection from %s with %d: %s", self._peer, code, error)

    def _open_timed_out(self) -> None:
        """A client that opened TCP and never finished its request frees its slot."""
        self._open_timer = None
        if self.protocol.state is CONNECTING and self.transport is not None:
            logger.info("opening handshake from %s timed out", self._peer)
            self.transport.abort()

    def respond(self, status: int, text: str) -> Response:
        """An HTTP response with a plain-text body, to return from ``process_request``.

        Args:
            status: The HTTP status, for example 404.
            text: The body, sent as ``text/plain`` in UTF-8.

        Returns:
            The :class:`~fastws.http11.Response`, with ``Connection: close``;
            returning it from ``process_request`` sends it instead of the
            handshake, and the connection is closed after it.
        """
        return self.protocol.reject(status, text)

    # --- opening handshake ---------------------------------------------------------

    def _handshake_event(self, request: Request) -> None:
        hook = self.server.process_request
        if hook is None:
            self._respond(None)
            return
        try:
            result = hook(self, request)
        except Exception:
            logger.error("process_request failed", exc_info=True)
            self._respond(self.respond(500, "Failed to open a WebSocket connection: internal error.\n"))
            return
        if inspect.isawaitable(result):
            # A client sends nothing before the 101 (RFC 6455 section 4.1): while
            # the hook runs, the socket is not read, so that one that does cannot
            # make the server buffer it.
            self._reading_paused = True
            self.transport.pause_reading()
            self._hook_task = self.loop.create_task(self._await_response(result))
        else:
            self._respond(result)

    async def _await_response(self, awaitable: Awaitable[Optional[Response]]) -> None:
        try:
            response = await awaitable
        except asyncio.CancelledError:
            return
        except Exception:
            logger.error("process_request failed", exc_info=True)
            response = self.respond(500, "Failed to open a WebSocket connection: internal error.\n")
        self._hook_task = None
        if self._reading_paused and not self._closed.done():
            self._reading_paused = False
            self.transport.resume_reading()
        self._respond(response)

    def _respond(self, response: Optional[Response]) -> None:
        protocol = self.protocol
        if protocol.state is not CONNECTING or self._closed.done():
            return
        if response is None:
            response = protocol.accept()
        protocol.send_response(response)
        if response.status_code == 101:
            if self._open_timer is not None:
                self._open_timer.cancel()
                self._open_timer = None
            self._connection_open()
            if self.listener is None:
                self.handler_task = self.loop.create_task(self._run_handler())
                self.server._handlers.add(self.handler_task)
                self.handler_task.add_done_callback(self.server._handlers.discard)
            # Frames that came in the same read as the request.
            self._read_trailing()
        elif protocol.error is not None:
            self._refusal_logged = True
            logger.info("refused opening handshake from %s: %s", self._peer, protocol.error)
        self._flush()

    async def _run_handler(self) -> None:
        server = self.server
        handler = server.handler
        assert handler is not None  # serve() refuses neither a handler nor a listener
        try:
            if server.handler_takes_path:
                await handler(self, self.request.path)
            else:
                await handler(self)
        except ConnectionClosed as exc:
            logger.debug("connection handler ended: %s", exc)
        except Exception:
            logger.error("connection handler failed", exc_info=True)
            await self._close_quietly(CloseCode.INTERNAL_ERROR)
            return
        await self._close_quietly(CloseCode.NORMAL_CLOSURE)

    async def _close_quietly(self, code: int) -> None:
        try:
            await self.close(code)
        except Exception:  # pragma: no cover - close() does not raise on its own
            logger.error("closing the connection failed", exc_info=True)


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

    :meth:`close` stops accepting connections, closes every open connection with
    1001 (going away) and lets handlers finish; :meth:`wait_closed` waits for it.
    ``async with server:`` does both at the end of the block.

    :func:`serve` creates it; the arguments are those of :func:`serve`.

    Args:
        handler: The connection handler, None with a :class:`Listener`.
        process_request: The ``process_request`` hook, or None.
        close_timeout: Seconds :meth:`close` gives the handlers to return
            before it cancels them; None: no limit.

    Attributes:
        server (asyncio.Server | None): The asyncio server that listens.
    """

    def __init__(
        self,
        handler: Optional[Handler],
        *,
        process_request: Optional[ProcessRequest] = None,
        close_timeout: Optional[float] = 10,
    ) -> None:
        self.handler = handler
        self.handler_takes_path = handler is not None and _takes_path(handler)
        self.process_request = process_request
        self.close_timeout = close_timeout
        self.server: Optional[asyncio.Server] = None
        self._connections: Set[ServerConnection] = set()
        self._handlers: Set[asyncio.Task[None]] = set()
        self._close_task: Optional[asyncio.Task[None]] = None

    @property
    def connections(self) -> Set[ServerConnection]:
        """The connections open now (including those still in the handshake)."""
        return set(self._connections)

    @property
    def sockets(self) -> Tuple[socket.socket, ...]:
        """The listening sockets (``server.sockets[0].getsockname()`` gives the port)."""
        return () if self.server is None else tuple(self.server.sockets or ())

    def is_serving(self) -> bool:
        """True while the server accepts connections."""
        return self.server is not None and self.server.is_serving()

    def close(self, close_connections: bool = True) -> None:
        """Stop accepting connections and close the open ones.

        Every open connection is closed with 1001 (going away), connections
        still in the opening handshake are dropped, and the handlers get
        ``close_timeout`` seconds to return before they are cancelled. Returns at
        once: :meth:`wait_closed` waits for the end. Calling it again does
        nothing.

        Args:
            close_connections: False leaves the open connections open: only
                accepting stops (the handlers still get ``close_timeout``
                seconds before they are cancelled).
        """
        if self._close_task is None:
            self._close_task = asyncio.get_running_loop().create_task(
                self._close(close_connections)
            )

    async def _close(self, close_connections: bool) -> None:
        assert self.server is not None
        self.server.close()
        await asyncio.sleep(0)  # connections accepted just before close() get made
        if close_connections:
            for connection in list(self._connections):
                protocol = connection.protocol
                if protocol.state is OPEN:
                    protocol.send_close(CloseCode.GOING_AWAY, "server shutting down")
                    connection._flush()
                elif protocol.state is CONNECTING and connection.transport is not None:
                    connection.transport.close()
            closing = [c._closed for c in list(self._connections)]
            if closing:
                await asyncio.wait(closing)  # each bounded by its close timer
        if self._handlers:
            _, pending = await asyncio.wait(set(self._handlers), timeout=self.close_timeout)
            for task in pending:
                task.cancel()
            if pending:
                logger.warning("cancelled %d handlers still running at shutdown", len(pending))
                await asyncio.wait(pending)

    async def wait_closed(self) -> None:
        """Wait until the server is closed (after :meth:`close`) and its handlers finished."""
        if self._close_task is None:
            assert self.server is not None
            await self.server.wait_closed()
            return
        await asyncio.shield(self._close_task)

    async def serve_forever(self) -> None:
        """Serve until cancelled; cancelling it closes the server, as :meth:`close`."""
        assert self.server is not None
        try:
            await self.server.serve_forever()
        except asyncio.CancelledError:
            self.close()
            await self.wait_closed()
            raise

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.close()
        await self.wait_closed()


class serve:
    """Start a WebSocket server; use with ``await`` or ``async with``.

    ``await serve(...)`` returns the running :class:`Server`;
    ``async with serve(...) as server:`` also closes it at the end of the block.
    Awaiting raises what :meth:`asyncio.loop.create_server` raises, such as
    :class:`OSError` when the address is in use.

    The handler runs once per connection, after the opening handshake: the
    connection closes with 1000 when it returns and with 1011 when it raises
    (the exception is logged on the ``fastws`` logger).

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
        origins: The allowed values of the ``Origin`` header; put None in it to
            allow requests without one (non-browser clients). Other requests get
            403. None (the default) allows every origin.
        process_request: ``process_request(connection, request)``, a function or
            a coroutine function, called with the client's
            :class:`~fastws.http11.Request` before the handshake is answered.
            Returning a :class:`~fastws.http11.Response`, for example
            ``connection.respond(404, "Not found\\n")``, sends it instead of the
            handshake; returning None goes on with the handshake. An exception
            in it is logged and answered with 500.
        extra_headers: Headers added to the 101 response.
        server_header: The ``Server`` header of the server's responses; None
            for none. By default it names fastws and its version.
        compression: ``"deflate"`` (the default) accepts permessage-deflate
            (RFC 7692) when the client offers it; None turns it off.
        extensions: More extension factories (see :mod:`fastws.extensions`),
            tried after permessage-deflate.
        open_timeout: Seconds from the TCP accept to the end of the opening
            handshake; a client that takes longer is disconnected. None: no
            limit.
        ping_interval: Seconds between keepalive pings. None: no keepalive.
        ping_timeout: Seconds to wait for the pong of a keepalive ping; then
            the connection fails with 1011. None: no limit.
        close_timeout: Seconds the closing handshake may take before TCP is
            closed anyway; also what :meth:`Server.close` gives the handlers to
            return before it cancels them.
        max_size: The largest message received, in bytes, across its
            fragments (after decompression): a larger one fails the connection
            with 1009 before it is buffered. None: no limit.
        max_queue: The most messages received and not yet taken by ``recv()``;
            past it, the socket is not read until the queue drains to a quarter
            of it. None: no limit.
        write_limit: The transport's buffer size, in bytes, above which
            ``send()`` waits for it to drain below a quarter of it.
        listener: A factory of :class:`~fastws.asyncio.Listener` objects, one
            per connection, instead of ``handler`` (see :func:`serve_listener`).
        unix: Listen on the Unix socket ``path`` instead of TCP (see
            :func:`unix_serve`).
        path: The Unix socket's path, with ``unix=True``.
        **create_server_kwargs: Passed to :meth:`asyncio.loop.create_server`
            (or :meth:`~asyncio.loop.create_unix_server`): ``ssl`` (an
            :class:`ssl.SSLContext`, to serve ``wss://``), ``reuse_port``,
            ``backlog``, ``sock``...

    Raises:
        TypeError: If neither ``handler`` nor ``listener`` is given.
        ValueError: If ``compression`` is neither ``"deflate"`` nor None.
    """

    def __init__(
        self,
        handler: Optional[Handler],
        host: Optional[str] = None,
        port: Optional[int] = None,
        *,
        subprotocols: Optional[Sequence[str]] = None,
        select_subprotocol: Optional[Callable[[ServerConnection, Sequence[str]], Optional[str]]] = None,
        origins: Optional[Sequence[Optional[str]]] = None,
        process_request: Optional[ProcessRequest] = None,
        extra_headers: Optional[HeadersLike] = None,
        server_header: Optional[str] = "default",
        compression: Optional[str] = "deflate",
        extensions: Optional[Sequence[Any]] = None,
        open_timeout: Optional[float] = 10,
        ping_interval: Optional[float] = 20,
        ping_timeout: Optional[float] = 20,
        close_timeout: Optional[float] = 10,
        max_size: Optional[int] = DEFAULT_MAX_SIZE,
        max_queue: Optional[int] = 16,
        write_limit: int = 32768,
        listener: Optional[Callable[[], Listener]] = None,
        unix: bool = False,
        path: Optional[str] = None,
        **create_server_kwargs: Any,
    ) -> None:
        factories = extension_factories(compression, extensions, server=True)
        if handler is None and listener is None:
            raise TypeError("serve() needs a handler")
        self._server = Server(handler, process_request=process_request, close_timeout=close_timeout)
        protocol_options: Dict[str, Any] = dict(
            subprotocols=subprotocols,
            origins=origins,
            extra_headers=extra_headers,
            extensions=factories,
            max_size=max_size,
            auto_accept=False,
        )
        if server_header != "default":
            protocol_options["server_header"] = server_header
        connection_options = dict(
            open_timeout=open_timeout,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_queue=max_queue,
            write_limit=write_limit,
        )
        server = self._server

        def make_connection() -> ServerConnection:
            protocol = ServerProtocol(**protocol_options)
            connection = ServerConnection(
                server,
                protocol,
                listener=listener() if listener is not None else None,
                **connection_options,
            )
            if select_subprotocol is not None:
                protocol.select_subprotocol = lambda request, offered: select_subprotocol(
                    connection, offered
                )
            return connection

        self._factory = make_connection
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
        return self._server

    def __await__(self) -> Generator[Any, None, Server]:
        return self._create().__await__()

    async def __aenter__(self) -> Server:
        return await self._create()

    async def __aexit__(self, *exc_info: Any) -> None:
        self._server.close()
        await self._server.wait_closed()


def unix_serve(handler: Handler, path: Optional[str] = None, **options: Any) -> serve:
    """:func:`serve` on a Unix socket.

    Args:
        handler: The connection handler, as for :func:`serve`.
        path: The Unix socket's path.
        **options: The other options of :func:`serve`.
    """
    return serve(handler, unix=True, path=path, **options)


def serve_listener(
    factory: Callable[[], Listener], host: Optional[str] = None, port: Optional[int] = None, **options: Any
) -> serve:
    """:func:`serve` with the callback interface.

    Args:
        factory: Called once per connection, it makes the :class:`Listener`
            whose methods are called as events arrive, straight from the
            parser loop.
        host: The interface to listen on, as for :func:`serve`.
        port: The TCP port.
        **options: The other options of :func:`serve`.
    """
    return serve(None, host, port, listener=factory, **options)

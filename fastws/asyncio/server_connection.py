"""The connection a :class:`~fastws.asyncio.Server` accepts: the server side of
the opening handshake (the ``process_request`` and ``process_response``
hooks), then the handler's task. :mod:`fastws.asyncio.server` exports it."""

from __future__ import annotations

import asyncio
import http
import inspect
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Dict, Optional, Union

from ..exceptions import ConnectionClosed, InvalidHandshake, ProtocolError
from ..frames import CloseCode
from ..http11 import Request, Response
from ..protocol import CONNECTING, OPEN, ServerProtocol
from .connection import Connection

if TYPE_CHECKING:
    from .server import Server

__all__ = ["ServerConnection", "ProcessRequest", "ProcessResponse"]

#: ``process_request(connection, request)``: a function or a coroutine function.
ProcessRequest = Callable[
    ["ServerConnection", Request], Union[None, Response, Awaitable[Optional[Response]]]
]
#: ``process_response(connection, request, response)``: a function or a coroutine function.
ProcessResponse = Callable[
    ["ServerConnection", Request, Response], Union[None, Response, Awaitable[Optional[Response]]]
]

_TIMER_SLACK = 0.001  # seconds: see OpenTimer._expired
_INTERNAL_ERROR = "Failed to open a WebSocket connection: internal error.\n"


class OpenTimer:
    """The open timeout of a server's connections: one timer for all of them
    (a timer per connection, armed and cancelled, cost more than the rest of
    a short session's set-up).

    Args:
        timeout: Seconds from the TCP accept to the end of the opening handshake.

    Attributes:
        timeout (float): As given.
        deadlines (dict): The connections being watched, with their deadlines,
            in the order they were accepted: the order of their deadlines.
    """

    __slots__ = ("timeout", "deadlines", "_handle")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.deadlines: Dict[ServerConnection, float] = {}
        self._handle: Optional[asyncio.TimerHandle] = None

    def watch(self, connection: ServerConnection, loop: asyncio.AbstractEventLoop) -> None:
        """Cut ``connection`` in :attr:`timeout` seconds unless it leaves
        :attr:`deadlines` first (its handshake is over, or it is closed)."""
        deadline = loop.time() + self.timeout
        self.deadlines[connection] = deadline
        if self._handle is None:
            self._handle = loop.call_at(deadline, self._expired, loop)

    def _expired(self, loop: asyncio.AbstractEventLoop) -> None:
        """Cut the connections past their deadline, then wait for the next one."""
        self._handle = None
        deadlines = self.deadlines
        # uvloop's timers count whole milliseconds: one may run up to a
        # millisecond before its deadline by loop.time(). Without the slack,
        # the timer would be set again for a deadline already reached, and
        # run again and again until the clock passed it.
        now = loop.time() + _TIMER_SLACK
        expired = []
        while deadlines:
            connection = next(iter(deadlines))
            deadline = deadlines[connection]
            if deadline > now:
                self._handle = loop.call_at(deadline, self._expired, loop)
                break
            del deadlines[connection]
            expired.append(connection)
        # After the timer is set again for the others: one that is watched
        # again when cut (a close timer's second stage) goes after them.
        for connection in expired:
            self._fire(connection)

    def _fire(self, connection: ServerConnection) -> None:
        connection._open_timed_out()

    def stop(self) -> None:
        """The server is closed: cancel the timer, unless connections are
        still opening (a close that left them open keeps their bound)."""
        if self._handle is not None and not self.deadlines:
            self._handle.cancel()
            self._handle = None

    @property
    def armed(self) -> bool:
        """Whether the timer is set."""
        return self._handle is not None


class CloseTimer(OpenTimer):
    """The close timeout of a server's connections: one timer for all of them,
    as :class:`OpenTimer` (each closing connection armed and cancelled a timer
    of its own, one or two per session).

    Args:
        timeout: Seconds a stage of the closing handshake may take (the
            server's ``close_timeout``).
    """

    __slots__ = ()

    def _fire(self, connection: ServerConnection) -> None:
        connection._close_timed_out()


class ServerConnection(Connection):
    """A connection accepted by a :class:`Server`.

    The handler receives it; it has everything :class:`Connection` has, and
    :meth:`respond` for the ``process_request`` and ``process_response``
    hooks. :func:`serve` makes it as
    ``create_connection(protocol, server, ping_interval=..., ping_timeout=...,
    close_timeout=..., max_queue=..., write_limit=...)``, with ``listener=``
    and ``logger=`` too when they are given, then sets :attr:`open_timeout`.

    Args:
        protocol: The sans-I/O server protocol, made with ``auto_accept=False``.
        server: The server that accepted the connection.
        open_timeout: Seconds from the TCP accept to the end of the opening
            handshake.
        **options: The options of :class:`Connection`.

    Attributes:
        server (Server): The server that accepted it.
        open_timeout (float | None): Seconds from the TCP accept to the end of
            the opening handshake.
        username (str | None): The user that :func:`basic_auth` let in.
        handler_task (asyncio.Task | None): The task running the handler, once
            the handshake succeeded (None with a :class:`Listener`).
    """

    protocol: ServerProtocol

    def __init__(
        self,
        protocol: ServerProtocol,
        server: Server,
        *,
        open_timeout: Optional[float] = 10,
        **options: Any,
    ) -> None:
        self.server = server
        self.open_timeout = open_timeout
        self.username: Optional[str] = None
        super().__init__(protocol, **options)
        # Its own open timer, or the server's OpenTimer that watches it (one
        # attribute: past 30 of them, CPython stops sharing the keys of the
        # instance dicts, and each connection's dict costs 1.3 KB more).
        self._open_timer: Union[None, asyncio.TimerHandle, OpenTimer] = None
        self._hook_task: Optional[asyncio.Task[None]] = None  # an async hook's
        self.handler_task: Optional[asyncio.Task[None]] = None
        self._refusal_logged = False
        self._tls_peer: Any = None  # see _peer

    @property
    def _peer(self) -> Any:
        """The client's address, for log lines. Asked for only when a line is
        logged (it costs a getpeername() call): a TCP transport answers even
        once closed. asyncio's TLS transport forgets it before
        connection_lost(), so it is kept at connection_made() for TLS."""
        if self._tls_peer is not None:
            return self._tls_peer
        transport = self.transport
        return None if transport is None else transport.get_extra_info("peername")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if transport.get_extra_info("sslcontext") is not None:
            self._tls_peer = transport.get_extra_info("peername")
        super().connection_made(transport)
        server = self.server
        server._connections.add(self)
        timeout = self.open_timeout
        if timeout is not None:
            # getattr: a stand-in for Server (in tests) may not have it.
            shared = getattr(server, "_open_timer", None)
            if shared is not None and shared.timeout == timeout:
                shared.watch(self, self.loop)
                self._open_timer = shared
            else:
                self._open_timer = self.loop.call_later(timeout, self._open_timed_out)

    def _opened_in_time(self) -> None:
        """The opening handshake is over: the open timeout no longer applies."""
        timer = self._open_timer
        if timer is not None:
            self._open_timer = None
            if isinstance(timer, OpenTimer):
                timer.deadlines.pop(self, None)
            else:
                timer.cancel()

    def _arm_close_timer(self) -> None:
        # The server's CloseTimer when this connection's close_timeout is its
        # (getattr: a stand-in for Server, in tests, may not have one).
        shared = getattr(self.server, "_close_timer", None)
        timeout = self.close_timeout
        if shared is None or shared.timeout != timeout:
            if shared is not None:  # close_timeout changed since the shared timer took it
                shared.deadlines.pop(self, None)
            super()._arm_close_timer()
            return
        if self._gone:
            return
        if self._close_timer is not None:  # armed before close_timeout changed
            self._close_timer.cancel()
            self._close_timer = None
        # Watched again: its new deadline is the latest, it goes last.
        shared.deadlines.pop(self, None)
        shared.watch(self, self.loop)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._opened_in_time()
        shared = getattr(self.server, "_close_timer", None)
        if shared is not None:
            shared.deadlines.pop(self, None)
        if self._hook_task is not None:
            self._hook_task.cancel()  # nobody is left to answer
        super().connection_lost(exc)
        self.server._connections.discard(self)
        error = self.protocol.error
        if (
            isinstance(error, InvalidHandshake)
            and not self._refusal_logged
            and self.protocol.response is not None
        ):
            # A request the parser refused (garbage, TLS on a plain port...):
            # the protocol answered with an HTTP error before any hook ran.
            self.logger.info("refused opening handshake from %s: %s", self._peer, error)
        elif isinstance(error, ProtocolError):
            # The peer broke the protocol: one line, no traceback (not a server bug).
            sent = self.protocol.close_sent
            code = sent.code if sent is not None else error.close_code
            self.logger.info("failed connection from %s with %d: %s", self._peer, code, error)

    def _open_timed_out(self) -> None:
        """A client that opened TCP and never finished its request frees its slot."""
        self._open_timer = None
        if self.protocol.state is CONNECTING and self.transport is not None:
            self.logger.info("opening handshake from %s timed out", self._peer)
            self.transport.abort()

    def respond(self, status: Union[int, http.HTTPStatus], text: str) -> Response:
        """An HTTP response with a plain-text body, for ``process_request`` or
        ``process_response`` to return.

        Args:
            status: The HTTP status, for example ``http.HTTPStatus.NOT_FOUND``
                or 404; the reason phrase is the standard one.
            text: The body, sent as ``text/plain`` in UTF-8.

        Returns:
            The :class:`~fastws.http11.Response`, with ``Connection: close``;
            its headers may be changed before it is returned. Returned from a
            hook, it is sent instead of the handshake, and the connection is
            closed after it.
        """
        return self.protocol.reject(status, text)

    # --- opening handshake ---------------------------------------------------------
    # process_request, then accept() unless it answered, then process_response,
    # then the response goes out. A hook that returns an awaitable continues in a
    # task (_hook_task); synchronous hooks, or none, answer in the same call.

    def _handshake_event(self, request: Request) -> None:
        hook = self.server.process_request
        if hook is None:
            self._process_response(request, None)
            return
        try:
            result = hook(self, request)
        except Exception:
            self.logger.error("process_request failed", exc_info=True)
            result = self.respond(500, _INTERNAL_ERROR)
        if inspect.isawaitable(result):
            self._await_hook(self._finish_process_request(request, result))
        else:
            self._process_response(request, self._checked("process_request", result))

    async def _finish_process_request(
        self, request: Request, awaitable: Awaitable[Optional[Response]]
    ) -> None:
        try:
            result: Optional[Response] = await awaitable
        except asyncio.CancelledError:
            return
        except Exception:
            self.logger.error("process_request failed", exc_info=True)
            result = self.respond(500, _INTERNAL_ERROR)
        self._hook_task = None
        self._process_response(request, self._checked("process_request", result))

    def _process_response(self, request: Request, response: Optional[Response]) -> None:
        """The response to send, from process_request or accept(), through
        process_response."""
        protocol = self.protocol
        if protocol.state is not CONNECTING or self._gone:
            return  # the client left while process_request ran
        if response is None:
            response = protocol.accept()
        elif protocol.server_header is not None and "Server" not in response.headers:
            response.headers["Server"] = protocol.server_header
        hook = self.server.process_response
        if hook is None:
            self._respond(response)
            return
        try:
            result = hook(self, request, response)
        except Exception:
            self.logger.error("process_response failed", exc_info=True)
            result = self.respond(500, _INTERNAL_ERROR)
        if inspect.isawaitable(result):
            self._await_hook(self._finish_process_response(response, result))
        else:
            result = self._checked("process_response", result)
            self._respond(response if result is None else result)

    async def _finish_process_response(
        self, response: Response, awaitable: Awaitable[Optional[Response]]
    ) -> None:
        try:
            result: Optional[Response] = await awaitable
        except asyncio.CancelledError:
            return
        except Exception:
            self.logger.error("process_response failed", exc_info=True)
            result = self.respond(500, _INTERNAL_ERROR)
        self._hook_task = None
        result = self._checked("process_response", result)
        self._respond(response if result is None else result)

    def _checked(self, name: str, result: Any) -> Optional[Response]:
        """A hook's result, or a 500 (logged) if it is neither None nor a Response."""
        if result is None or isinstance(result, Response):
            return result
        self.logger.error("%s returned %r; expected a Response or None", name, result)
        return self.respond(500, _INTERNAL_ERROR)

    def _await_hook(self, coroutine: Any) -> None:
        # A client sends nothing before the 101 (RFC 6455 section 4.1): while
        # a hook runs, the socket is not read, so that one that does cannot
        # make the server buffer it.
        if not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        self._hook_task = self.loop.create_task(coroutine)

    def _respond(self, response: Response) -> None:
        protocol = self.protocol
        if protocol.state is not CONNECTING or self._gone:
            return
        if self._reading_paused:  # paused while a hook ran
            self._reading_paused = False
            self.transport.resume_reading()
        if response.status_code == 101 and not self.server.is_serving():
            # The server is closing: it opens no more connections.
            response = self.respond(
                http.HTTPStatus.SERVICE_UNAVAILABLE, "Server is shutting down.\n"
            )
        protocol.send_response(response)
        if response.status_code == 101:
            self._opened_in_time()
            self._connection_open()
            if self.listener is None:
                server = self.server
                task = self.handler_task = self.loop.create_task(self._run_handler())
                server._handlers.add(task)
                # getattr: a stand-in for Server (in tests) may not have it.
                task.add_done_callback(getattr(server, "_handler_done", server._handlers.discard))
            # Frames that came in the same read as the request.
            self._read_trailing()
        elif protocol.error is not None:
            self._refusal_logged = True
            self.logger.info("refused opening handshake from %s: %s", self._peer, protocol.error)
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
            self.logger.debug("connection handler ended: %s", exc)
        except asyncio.CancelledError:
            # Cancelled (at shutdown, after close_timeout): nobody reads this
            # connection any more. It goes away (1001), and TCP closes once the
            # close frame is out.
            protocol = self.protocol
            if protocol.state is OPEN:
                protocol.send_close(CloseCode.GOING_AWAY, "server shutting down")
                self._flush()
            if self.transport is not None:
                self.transport.close()
            raise
        except Exception:
            self.logger.error("connection handler failed", exc_info=True)
            await self._close_quietly(CloseCode.INTERNAL_ERROR)
            return
        await self._close_quietly(CloseCode.NORMAL_CLOSURE)

    async def _close_quietly(self, code: int) -> None:
        try:
            await self.close(code)
        except Exception:  # pragma: no cover - close() does not raise on its own
            self.logger.error("closing the connection failed", exc_info=True)

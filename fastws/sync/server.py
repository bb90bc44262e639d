"""``serve()``: a WebSocket server on blocking sockets, one thread per connection.

::

    from fastws.sync.server import serve

    def echo(websocket):
        for message in websocket:
            websocket.send(message)

    with serve(echo, "localhost", 8765) as server:
        server.serve_forever()

The handler runs in the connection's thread once the opening handshake
succeeded; the connection closes with 1000 when it returns and with 1011 when it
raises (the exception is logged). :meth:`Server.shutdown`, from another thread,
stops accepting and closes the open connections with 1001.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import socket
import ssl
import threading
import time
from typing import Any, Callable, Iterable, Optional, Pattern, Sequence, Set, Tuple, Union

from ..compression import extension_factories
from ..exceptions import ConnectionClosed
from ..frames import CloseCode
from ..http11 import HeadersLike, Request, Response
from ..limits import LoggerLike, QueueLimit, queue_limits, resolve_logger
from ..protocol import CONNECTING, OPEN, ServerProtocol
from ..protocol.types import MaxSize, split_max_size
from ..version import __version__
from .auth import basic_auth
from .connection import Connection

__all__ = ["serve", "unix_serve", "Server", "ServerConnection", "basic_auth", "SERVER"]

#: The default ``Server`` header.
SERVER = f"fastws/{__version__}"

ProcessRequest = Callable[["ServerConnection", Request], Optional[Response]]
ProcessResponse = Callable[["ServerConnection", Request, Response], Optional[Response]]
Origin = Union[str, Pattern[str], None]


class _Origins:
    """The allowed origins, for the protocol's check: values compared as they
    are, compiled regular expressions matched against the whole origin; None
    allows a request without ``Origin``."""

    def __init__(self, origins: Iterable[Origin]) -> None:
        self.values = [o for o in origins if not isinstance(o, re.Pattern)]
        self.patterns = [o for o in origins if isinstance(o, re.Pattern)]

    def __contains__(self, origin: object) -> bool:
        if origin in self.values:
            return True
        return isinstance(origin, str) and any(p.fullmatch(origin) for p in self.patterns)

    def __iter__(self) -> Any:
        return iter(self.values + self.patterns)


class ServerConnection(Connection):
    """A connection accepted by a :class:`Server`; the handler receives it.

    Attributes:
        server (Server | None): The server that accepted it.
        username (str | None): The user authenticated by :func:`basic_auth`.
    """

    _default_logger = "fastws.server"
    protocol: ServerProtocol

    def __init__(self, sock: socket.socket, protocol: ServerProtocol, **options: Any) -> None:
        super().__init__(sock, protocol, **options)
        self.server: Optional[Server] = None
        self.username: Optional[str] = None
        self._process_request: Optional[ProcessRequest] = None
        self._process_response: Optional[ProcessResponse] = None

    def respond(self, status: int, text: str) -> Response:
        """An HTTP response with a plain-text body, to return from
        ``process_request`` (it is sent instead of the handshake and the
        connection closes).

        Args:
            status: The HTTP status, for example 404.
            text: The body, sent as ``text/plain`` in UTF-8.
        """
        return self.protocol.reject(int(status), text)

    def handshake(
        self,
        process_request: Optional[Callable[[ServerConnection, Request], Optional[Response]]] = None,
        process_response: Optional[
        Callable[[ServerConnection, Request, Response], Optional[Response]]
    ] = None,
        timeout: Optional[float] = None,
    ) -> None:
        """Read the opening handshake request and answer it.

        ``process_request(connection, request)`` may return a Response to send
        instead of the handshake; ``process_response(connection, request,
        response)`` may return a Response to send instead of ``response`` (or
        change ``response`` in place and return None). An exception in either
        is logged and answered with 500.

        Raises:
            TimeoutError: No complete request within ``timeout``.
        """
        self._process_request, self._process_response = process_request, process_response
        deadline = None if timeout is None else time.monotonic() + timeout
        protocol = self.protocol
        while protocol.response is None and not self._closed.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                self._abort()
                self.socket.close()
                raise TimeoutError(f"timed out after {timeout} s during the opening handshake")
            self._read_once(remaining)
        if protocol.response is not None and protocol.response.status_code == 101:
            self._start()  # open, or closing already if a close frame came with the request
            return
        if protocol.error is not None:
            self.logger.info("opening handshake failed: %s", protocol.error)
        # Refused: the response is written; the client closes, or we do.
        self._abort()
        self.socket.close()

    def _handshake_event(self, request: Any) -> None:
        if not isinstance(request, Request):
            return
        protocol = self.protocol
        response: Optional[Response] = None
        server = self.server
        if server is not None and server._closing:
            response = self.respond(503, "Server is shutting down.\n")
        elif self._process_request is not None:
            try:
                response = self._process_request(self, request)
            except Exception:
                self.logger.error("process_request failed", exc_info=True)
                response = self.respond(500, "Failed to open a WebSocket connection: internal error.\n")
        if response is None:
            response = protocol.accept()
        if self._process_response is not None:
            try:
                replaced = self._process_response(self, request, response)
            except Exception:
                self.logger.error("process_response failed", exc_info=True)
                replaced = self.respond(500, "Failed to open a WebSocket connection: internal error.\n")
            if replaced is not None:
                response = replaced
        with self._lock:
            protocol.send_response(response)
            events = protocol.events_received()  # frames sent with the request
            self._flush_locked()
        if events:
            self._handle_events(events)


class Server:
    """A WebSocket server: what :func:`serve` returns.

    Use it as ``with serve(...) as server: server.serve_forever()``; leaving
    the block calls :meth:`shutdown`.

    Args:
        socket: The listening socket.
        handler: Called with each accepted ``(socket, address)``, in a thread of
            its own.
        logger: The logger (or its name); default ``fastws.server``.

    Attributes:
        socket (socket.socket): The listening socket.
    """

    def __init__(
        self,
        socket: socket.socket,
        handler: Callable[[socket.socket, Any], None],
        logger: LoggerLike = None,
    ) -> None:
        self.socket = socket
        self.handler = handler
        self.logger = resolve_logger(logger, "fastws.server")
        self.lock = threading.Lock()
        self.all_connections: Set[ServerConnection] = set()
        self.handler_threads: Set[threading.Thread] = set()
        # Accepted sockets still in the TLS handshake (no connection yet).
        self.tls_handshakes: Set[Any] = set()
        self._closing = False
        self._serving = False
        self._stopped = threading.Event()
        self._watch_r, self._watch_w = socket_pair()

    @property
    def connections(self) -> Set[ServerConnection]:
        """The open connections (handshake done, not closing)."""
        with self.lock:
            return {c for c in self.all_connections if c.protocol.state is OPEN}

    def fileno(self) -> int:
        """The listening socket's file descriptor."""
        return self.socket.fileno()

    def serve_forever(self) -> None:
        """Accept connections until :meth:`shutdown`, each handled in a thread."""
        with self.lock:
            if self._closing:
                return
            self._serving = True
        self.logger.info("server listening on %s", _address(self.socket))
        selector = selectors.DefaultSelector()
        selector.register(self.socket, selectors.EVENT_READ)
        selector.register(self._watch_r, selectors.EVENT_READ)
        try:
            while True:
                ready = [key.fileobj for key, _ in selector.select()]
                if self._watch_r in ready or self._closing:
                    break
                try:
                    sock, address = self.socket.accept()
                except OSError:
                    if self._closing:
                        break
                    continue  # the client left before accept(), or EMFILE: go on
                thread = threading.Thread(target=self._run, args=(sock, address), daemon=True)
                with self.lock:
                    self.handler_threads.add(thread)
                thread.start()
        finally:
            selector.close()
            self._stopped.set()

    def _run(self, sock: socket.socket, address: Any) -> None:
        try:
            self.handler(sock, address)
        finally:
            with self.lock:
                self.handler_threads.discard(threading.current_thread())

    def shutdown(self, close_connections: bool = True, code: int = CloseCode.GOING_AWAY, reason: str = "") -> None:
        """Stop the server, from another thread than the handlers'.

        It stops accepting connections, answers handshakes still coming with
        503, closes the open connections with ``code`` (1001, going away) unless
        ``close_connections`` is False, and waits until every handler
        returned. Calling it again does nothing more.

        Raises:
            RuntimeError: It is called from a connection handler (it would wait
                for that handler to return).
        """
        if threading.current_thread() in self.handler_threads:
            raise RuntimeError("shutdown() cannot run in a connection handler: it waits for the handlers to return")
        with self.lock:
            already = self._closing
            self._closing = True
            serving = self._serving
        if not already:
            self.logger.info("server closing")
            try:
                self._watch_w.send(b"x")
            except OSError:
                pass
        if serving:
            self._stopped.wait()
        self.socket.close()
        while True:
            with self.lock:
                threads = list(self.handler_threads)
                connections = list(self.all_connections)
                handshakes = list(self.tls_handshakes)
            if not threads:
                break
            for sock in handshakes:
                # No WebSocket connection yet (open_timeout may be None).
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
            if close_connections:
                closers = []
                for connection in connections:
                    if connection.protocol.state is OPEN:
                        closer = threading.Thread(target=_close_quietly, args=(connection, code, reason), daemon=True)
                        closer.start()
                        closers.append((closer, connection))
                    elif connection.protocol.state is CONNECTING and connection.protocol.response is None:
                        connection._abort()  # no request yet: nothing to answer
                started = time.monotonic()
                for closer, connection in closers:
                    # close() is bounded by close_timeout; past it (and a
                    # margin), the socket is shut down under it. The closers
                    # run at once: their deadlines count from the same start.
                    timeout = connection.close_timeout
                    if timeout is None:
                        closer.join()
                    else:
                        closer.join(max(started + timeout + _CLOSE_MARGIN - time.monotonic(), 0.0))
                    if closer.is_alive():
                        connection._abort()
            for thread in threads:
                thread.join(0.1)
        if not already:
            self._watch_r.close()
            self._watch_w.close()
            self.logger.info("server closed")

    def __enter__(self) -> Server:
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        self.shutdown()


#: Seconds :meth:`Server.shutdown` waits past a connection's close_timeout
#: before shutting its socket down.
_CLOSE_MARGIN = 1.0


def _close_quietly(connection: Connection, code: int, reason: str) -> None:
    try:
        connection.close(code, reason)
    except Exception:  # pragma: no cover - close() does not raise on its own
        connection.logger.error("closing the connection failed", exc_info=True)


def socket_pair() -> Tuple[socket.socket, socket.socket]:
    """A connected pair of sockets, to wake up a thread in select()."""
    r, w = socket.socketpair()
    r.setblocking(False)
    w.setblocking(False)
    return r, w


def _address(sock: socket.socket) -> Any:
    try:
        return sock.getsockname()
    except OSError:  # pragma: no cover
        return None


def serve(
    handler: Callable[[ServerConnection], Any],
    host: Optional[str] = None,
    port: Optional[int] = None,
    *,
    sock: Optional[socket.socket] = None,
    ssl: Optional[ssl.SSLContext] = None,
    origins: Optional[Sequence[Union[str, Pattern[str], None]]] = None,
    extensions: Optional[Sequence[Any]] = None,
    subprotocols: Optional[Sequence[str]] = None,
    select_subprotocol: Optional[Callable[[ServerConnection, Sequence[str]], Optional[str]]] = None,
    compression: Optional[str] = "deflate",
    process_request: Optional[Callable[[ServerConnection, Request], Optional[Response]]] = None,
    process_response: Optional[
        Callable[[ServerConnection, Request, Response], Optional[Response]]
    ] = None,
    server_header: Optional[str] = SERVER,
    extra_headers: Optional[HeadersLike] = None,
    open_timeout: Optional[float] = 10,
    ping_interval: Optional[float] = 20,
    ping_timeout: Optional[float] = 20,
    close_timeout: Optional[float] = 10,
    max_size: MaxSize = 2**20,
    max_queue: QueueLimit = 16,
    logger: LoggerLike = None,
    create_connection: Optional[Callable[..., ServerConnection]] = None,
    unix: bool = False,
    path: Union[str, os.PathLike[str], None] = None,
    backlog: Optional[int] = None,
    reuse_port: bool = False,
    family: int = socket.AF_INET,
    dualstack_ipv6: bool = False,
) -> Server:
    """Create a WebSocket server listening on ``host`` and ``port``.

    Args:
        handler: ``handler(connection)``, run in the connection's thread
            after the opening handshake.
        host: The interface to listen on (None or ``""``: every interface).
        port: The TCP port (0 or None: a free one; see ``server.socket``).
        sock: A listening socket to use instead of creating one.
        ssl: An :class:`ssl.SSLContext` to serve ``wss://``.
        origins: The allowed ``Origin`` values: strings, compiled regular
            expressions (matched against the whole origin), and None to allow
            requests without one. Others get 403. None: every origin.
        extensions: More extension factories, after permessage-deflate.
        subprotocols: Supported subprotocols, in order of preference.
        select_subprotocol: ``select_subprotocol(connection, offered)``
            chooses instead: one of ``offered``, or None for none.
        compression: ``"deflate"`` (the default) accepts permessage-deflate;
            None turns it off.
        process_request: ``process_request(connection, request)``: return a
            :class:`~fastws.http11.Response` (``connection.respond(404,
            "...")``) to send it instead of the handshake, or None to go on.
        process_response: ``process_response(connection, request,
            response)``: return a Response to send instead of ``response``,
            or None (``response`` may be changed in place).
        server_header: The ``Server`` header; None for none.
        extra_headers: Headers added to the 101 response.
        open_timeout: Seconds for TLS and the opening handshake. None: no limit.
        ping_interval: Seconds between keepalive pings. None: no keepalive.
        ping_timeout: Seconds to wait for a keepalive pong before failing the
            connection with 1011. None: no limit.
        close_timeout: Seconds the closing handshake may take. None: no limit.
        max_size: The largest message received, in bytes (1009 past it), or
            ``(message, fragment)`` limits, the second on each frame. None: no
            limit.
        max_queue: The high-water mark of messages not yet read, or ``(high,
            low)``. None: no limit.
        logger: The logger (or its name); default ``fastws.server``.
        create_connection: The class (or factory) of the connections, called
            as ``create_connection(sock, protocol, **options)``.
        unix: Listen on the Unix socket ``path`` (see :func:`unix_serve`).
        path: The Unix socket's path.
        backlog: The listen backlog.
        reuse_port: Set ``SO_REUSEPORT``.
        family: The address family of a TCP server (``socket.AF_INET6`` for
            IPv6).
        dualstack_ipv6: IPv4 and IPv6 on one socket.

    Raises:
        OSError: The address is in use, for example.
        ValueError: ``compression`` is neither ``"deflate"`` nor None.
        TypeError: An unknown keyword argument.
    """
    factories = extension_factories(compression, extensions, server=True)
    queue_limits(max_queue)  # a bad value is refused at the call
    split_max_size(max_size)  # a bad value is refused at the call
    if sock is None:
        if unix:
            if path is None:
                raise TypeError("unix=True needs a path")
            sock = socket.create_server(path, family=socket.AF_UNIX, backlog=backlog)  # type: ignore[arg-type]
        else:
            sock = socket.create_server(
                (host or "", port or 0),
                family=family,
                backlog=backlog,
                reuse_port=reuse_port,
                dualstack_ipv6=dualstack_ipv6,
            )
    connection_factory = create_connection or ServerConnection
    connection_options = dict(
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        close_timeout=close_timeout,
        max_queue=max_queue,
        logger=logger,
    )
    allowed = _Origins(origins) if origins is not None else None
    server: Server

    def handle(client: socket.socket, address: Any) -> None:
        deadline = None if open_timeout is None else time.monotonic() + open_timeout
        try:
            if client.family in (socket.AF_INET, socket.AF_INET6):
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ssl is not None:
                client.settimeout(open_timeout)
                client = ssl.wrap_socket(client, server_side=True, do_handshake_on_connect=False)
                with server.lock:
                    if server._closing:
                        raise ConnectionAbortedError("the server is shutting down")
                    server.tls_handshakes.add(client)  # shutdown() may abort it
                try:
                    client.do_handshake()
                finally:
                    with server.lock:
                        server.tls_handshakes.discard(client)
                client.settimeout(None)
        except Exception as exc:
            server.logger.debug("TLS handshake with %s failed: %s", address, exc)
            client.close()
            return
        try:
            protocol = ServerProtocol(
                subprotocols=subprotocols,
                extensions=factories,
                extra_headers=extra_headers,
                server_header=server_header,
                auto_accept=False,
                max_size=max_size,
            )
            if allowed is not None:
                protocol.origins = allowed  # type: ignore[assignment]
            connection = connection_factory(client, protocol, **connection_options)
        except Exception:
            server.logger.error("creating the connection failed", exc_info=True)
            client.close()
            return
        connection.server = server
        if select_subprotocol is not None:
            protocol.select_subprotocol = lambda request, offered: select_subprotocol(connection, offered)
        with server.lock:
            server.all_connections.add(connection)
        try:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                connection.handshake(process_request, process_response, remaining)
            except Exception as exc:
                connection.logger.info("opening handshake failed: %s", exc)
                return
            if connection.response is None or connection.response.status_code != 101:
                return
            try:
                handler(connection)
            except ConnectionClosed as exc:
                # Maybe from another connection: this one is closed all the same.
                connection.logger.debug("connection handler ended: %s", exc)
                connection.close(CloseCode.INTERNAL_ERROR)
            except Exception:
                connection.logger.error("connection handler failed", exc_info=True)
                connection.close(CloseCode.INTERNAL_ERROR)
            else:
                connection.close()
        finally:
            with server.lock:
                server.all_connections.discard(connection)

    server = Server(sock, handle, logger)
    return server


def unix_serve(
    handler: Callable[[ServerConnection], Any],
    path: Union[str, os.PathLike[str], None] = None,
    **options: Any,
) -> Server:
    """:func:`serve` on the Unix socket ``path``; the other options are those
    of :func:`serve`."""
    return serve(handler, unix=True, path=path, **options)


"""A WebSocket backend for uvicorn: ASGI applications served by fastws.

::

    uvicorn app:app --ws fastws.uvicorn:WebSocketProtocol

or ``uvicorn.run(app, ws=fastws.uvicorn.WebSocketProtocol)``. Every WebSocket
route of the application (FastAPI, Starlette, Django Channels...) then runs on
fastws's handshake, codec, fast path, keepalive, limits and permessage-deflate.

uvicorn parses the HTTP request, sees the upgrade and hands the connection over:
it builds :class:`WebSocketProtocol` with its ``Config``, calls
``connection_made(transport)``, switches the transport to it and feeds it the
request again with ``data_received``. From there the connection is a
:class:`fastws.asyncio.Connection`: the application's ``receive()`` takes
messages from its queue and ``send()`` writes through it.

uvicorn's settings and what they do here:

- ``ws_max_size``: the largest message, after decompression; a larger one
  fails the connection with 1009 before it is buffered;
- ``ws_max_queue``: messages received and not yet taken by ``receive()``;
  past it, the socket is not read until the application catches up;
- ``ws_ping_interval`` / ``ws_ping_timeout``: keepalive pings (an interval of
  None or 0 turns them off; a timeout of None or 0 waits for pongs without
  limit); a pong that does not come in time fails the connection with 1011;
- ``ws_per_message_deflate``: permessage-deflate (RFC 7692) when the client
  offers it, with 4 KiB windows (``max_window_bits`` 12) and ``memLevel`` 5,
  as uvicorn's own backends;
- ``root_path``, ``server_header`` / ``date_header`` and ``headers``
  (``server_state.default_headers``, added to the 101 and to denial responses);
- graceful shutdown: an open connection gets 1012 and its application a
  ``websocket.disconnect`` with 1012; one still in its handshake gets 500.

``send()`` waits while the transport holds more than ``WRITE_LIMIT`` bytes, so
an application that writes to a client that does not read is held back instead
of filling memory.

Where the ASGI specification leaves a choice, this backend does what uvicorn's
own do: an application that returns (or raises) after accepting has the TCP
connection closed without a close frame (the client sees 1006); a second
``websocket.accept`` is an error of the application, logged; a return value
other than None is logged. It departs from them where they lose data or
information: empty messages are delivered, a denial response is sent even when
the application returns before its last body part, ``receive()`` after the
disconnect returns the disconnect again instead of waiting forever, a client
gone without a close frame is reported with 1006 (RFC 6455 section 7.1.5;
uvicorn's websockets-sansio and wsproto backends say 1005), and a client that
breaks the protocol is logged in one line at INFO with the close code.
"""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Optional, Tuple, Union
from urllib.parse import unquote

from .asyncio.connection import Connection
from .deflate import ServerPerMessageDeflateFactory
from .exceptions import ConnectionClosed, InvalidState, ProtocolError
from .http11 import Headers, Request, Response
from .protocol import CLOSED, CONNECTING, OPEN, ServerProtocol

try:
    from uvicorn.protocols.utils import (
        ClientDisconnected,
        get_client_addr,
        get_local_addr,
        get_path_with_query_string,
        get_remote_addr,
        is_ssl,
    )
except ImportError as exc:  # pragma: no cover - this module is for uvicorn
    raise ImportError("fastws.uvicorn needs uvicorn: pip install uvicorn") from exc

__all__ = ["WebSocketProtocol", "WRITE_LIMIT", "EARLY_DATA_LIMIT"]

#: Bytes the transport may buffer before the application's ``send()`` waits
#: for it to drain (to a quarter of it).
WRITE_LIMIT = 64 * 1024

#: Bytes a client may send after its request and before the 101 (frames sent
#: too early: RFC 6455 section 4.1 says to wait) before the socket is no longer
#: read until the application answers.
EARLY_DATA_LIMIT = 64 * 1024

# Where the connection is in the ASGI exchange (``WebSocketProtocol.asgi_state``).
HANDSHAKE = "handshake"  # the application has not answered the request yet
DENIAL = "denial"  # the application started an HTTP response instead
ACCEPTED = "accepted"  # the WebSocket is open for the application
CLOSED_BY_APP = "closed"  # the application sent websocket.close, or its denial response
GONE = "gone"  # the server ended the handshake (a bad request, a shutdown): the client is gone

_Message = Dict[str, Any]


class WebSocketProtocol(Connection):
    """uvicorn's WebSocket protocol class, on fastws.

    uvicorn builds one per upgraded connection; applications never see it,
    only the ASGI ``receive``/``send`` it gives them. The attributes uvicorn's
    own backends have and its tooling reads are here too: ``transport``,
    ``scope``, ``close_timeout``, ``close_timer``, ``ping_timer``,
    ``ping_sent_at``, ``shutdown()``, ``pause_writing()``, ``resume_writing()``.

    Args:
        config: uvicorn's ``Config`` (loaded here if it is not yet).
        server_state: uvicorn's ``ServerState``: its ``connections`` set holds
            this protocol while the connection lives, its ``tasks`` set the
            application's task, and ``default_headers`` go on the responses.
        app_state: The lifespan state, copied into each connection's scope.
    """

    protocol: ServerProtocol

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: Optional[Dict[str, Any]] = None,
        _loop: Optional[asyncio.AbstractEventLoop] = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app = config.loaded_app
        self.root_path: str = config.root_path
        self.asgi_version: str = config.asgi_version
        self.app_state: Dict[str, Any] = app_state if app_state is not None else {}
        self.connections = server_state.connections
        self.tasks = server_state.tasks
        self.default_headers: List[Tuple[bytes, bytes]] = server_state.default_headers
        extensions = []
        if config.ws_per_message_deflate:
            extensions.append(
                ServerPerMessageDeflateFactory(
                    server_max_window_bits=12,
                    client_max_window_bits=12,
                    mem_level=5,
                )
            )
        protocol = ServerProtocol(
            extensions=extensions,
            server_header=None,  # uvicorn's default_headers carry it
            auto_accept=False,
            max_size=config.ws_max_size,
        )
        ping_interval = config.ws_ping_interval
        if ping_interval is not None and ping_interval <= 0:
            ping_interval = None
        ping_timeout = config.ws_ping_timeout
        if ping_timeout is not None and ping_timeout <= 0:
            ping_timeout = None
        super().__init__(
            protocol,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=10.0,
            max_queue=config.ws_max_queue,
            write_limit=WRITE_LIMIT,
            logger="uvicorn.error",  # where uvicorn's own backends log
        )
        self.scope: Dict[str, Any] = {}
        self.server: Optional[Tuple[str, Optional[int]]] = None
        self.client: Optional[Tuple[str, int]] = None
        self.scheme = "ws"
        #: Where the ASGI exchange is: "handshake", "denial", "accepted", "closed" or "gone".
        self.asgi_state = HANDSHAKE
        #: Monotonic time (the loop's clock) of the last keepalive ping sent.
        self.ping_sent_at = 0.0
        self._connect_pending = True  # websocket.connect not yet received by the app
        self._early_data = 0  # bytes received after the request, before the 101
        # Resolved when the handshake is over (answered, or the client left):
        # wakes a receive() that waited during it.
        self._answered: asyncio.Future[None] = self.loop.create_future()
        self._denial: Optional[Tuple[int, Headers, List[bytes]]] = None
        self._disconnect: Optional[_Message] = None  # fixed once known

    # --- what uvicorn's tooling reads ----------------------------------------------

    @property
    def close_timer(self) -> Optional[asyncio.TimerHandle]:
        """The timer that bounds the wait for the peer's close frame, while it
        runs (None otherwise)."""
        handle = self._close_timer
        if handle is None or self._close_stage != 1 or self._closed.done() or handle.cancelled():
            return None
        return handle

    @property
    def ping_timer(self) -> Optional[asyncio.TimerHandle]:
        """The keepalive timer (the next ping, or the deadline of its pong);
        None when keepalive is off or the connection is closed."""
        handle = self._keepalive
        if handle is None or handle.cancelled():
            return None
        return handle

    # --- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        # Not every transport uvicorn's tooling hands over has these.
        set_limits = getattr(transport, "set_write_buffer_limits", None)
        if set_limits is not None:
            set_limits(high=self.write_limit, low=self.write_limit_low)
        writelines = getattr(type(transport), "writelines", None)
        if writelines is None or getattr(writelines, "__module__", "").startswith("asyncio."):
            self._writelines = self._write_each  # see Connection.connection_made
        else:
            self._writelines = transport.writelines
        # uvicorn's own helpers: the scope's client and server as its backends give them.
        self.server = get_local_addr(transport)
        self.client = get_remote_addr(transport)
        self.scheme = "wss" if is_ssl(transport) else "ws"
        self.connections.add(self)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        super().connection_lost(exc)
        self.connections.discard(self)
        self._end_handshake()
        error = self.protocol.error
        if isinstance(error, ProtocolError) and self.scope:
            # The client broke the protocol: one line, no traceback (not a server bug).
            sent = self.protocol.close_sent
            code = sent.code if sent is not None else error.close_code
            self.logger.info(
                '%s - "WebSocket %s" failed with %d: %s',
                get_client_addr(self.scope),
                get_path_with_query_string(self.scope),
                code,
                error,
            )

    def data_received(self, data: Any) -> None:
        """Bytes for the protocol's own parsing (uvicorn's hand-over of the
        request, what comes before the 101, what comes after our close frame).

        The socket is read during the handshake, so that a client that leaves
        is noticed at once; one that sends frames before the 101 (RFC 6455
        section 4.1 says to wait) is no longer read past ``EARLY_DATA_LIMIT``
        bytes, until the application answers (or its denial response is out)."""
        if self.scope and self.asgi_state in (HANDSHAKE, DENIAL):
            self._early_data += len(data)
            if self._early_data > EARLY_DATA_LIMIT and not self._reading_paused:
                self._reading_paused = True
                self.transport.pause_reading()
        Connection.data_received(self, data)

    def shutdown(self) -> None:
        """uvicorn is stopping: 1012 (service restart) to an open connection,
        500 to one whose application has not answered its handshake yet."""
        protocol = self.protocol
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        if protocol.state is OPEN:
            if self._disconnect is None:
                self._disconnect = {"type": "websocket.disconnect", "code": 1012}
            protocol.send_close(1012, "")
            self._flush()
        elif protocol.state is CONNECTING and self.asgi_state == HANDSHAKE:
            self._send_http(protocol.reject(500, "Internal Server Error"), GONE)
        self._close_transport()

    def _close_transport(self) -> None:
        """Close TCP now (after what is written): no wait for the peer's close
        frame. A peer that does not read is aborted after ``close_timeout``."""
        transport = self.transport
        if transport is None or self._closed.done():
            return
        if not transport.is_closing():
            self._close_stage = 2
            transport.close()
            self._arm_close_timer()  # replaces the wait for the peer's close frame
        elif self._close_timer is None:
            self._close_stage = 2
            self._arm_close_timer()

    # --- opening handshake -------------------------------------------------------------

    def _handshake_event(self, request: Request) -> None:
        protocol = self.protocol
        response = protocol.accept()
        if response.status_code != 101:
            # Not a valid WebSocket request: answered here, no application.
            self.asgi_state = GONE
            protocol.send_response(response)
            return
        self.scope = self._build_scope(request)
        task = self.loop.create_task(self.run_asgi())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _build_scope(self, request: Request) -> Dict[str, Any]:
        raw_path, _, query = request.path.partition("?")
        headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in request.headers.items()
        ]
        subprotocols: List[str] = []
        for value in request.headers.get_all("Sec-WebSocket-Protocol"):
            subprotocols.extend(token.strip() for token in value.split(",") if token.strip())
        root_path = self.root_path
        return {
            "type": "websocket",
            "asgi": {"version": self.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": self.scheme,
            "server": self.server,
            "client": self.client,
            "root_path": root_path,
            "path": root_path + unquote(raw_path),
            "raw_path": root_path.encode("ascii") + raw_path.encode("ascii"),
            "query_string": query.encode("ascii"),
            "headers": headers,
            "subprotocols": subprotocols,
            "state": self.app_state.copy(),
            # "fastws": the connection itself, for fastws.PubSub.subscribe()
            "extensions": {"websocket.http.response": {}, "fastws": {"connection": self}},
        }

    def _log_access(self, status: Union[int, str]) -> None:
        self.logger.info(
            '%s - "WebSocket %s" %s', get_client_addr(self.scope), get_path_with_query_string(self.scope), status
        )

    def _accept(self, message: _Message) -> None:
        protocol = self.protocol
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and subprotocol not in self.scope["subprotocols"]:
            raise RuntimeError(
                f"Subprotocol {subprotocol!r} in 'websocket.accept' was not offered by the client"
                f" (offered: {self.scope['subprotocols']})"
            )
        # uvicorn's default headers, then the application's (repeats kept, as uvicorn does).
        headers = Headers(self._default_headers(()))
        for name, value in message.get("headers") or ():
            headers.add(bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
        if subprotocol is not None:
            # The protocol negotiates again with the application's choice.
            protocol.select_subprotocol = lambda request, offered: subprotocol
        protocol.extra_headers = headers
        self._log_access("[accepted]")
        if self.transport.is_closing():
            return  # the client left meanwhile: connection_lost() tells the app
        response = protocol.accept()
        self.asgi_state = ACCEPTED
        protocol.send_response(response)
        if response.status_code != 101:  # pragma: no cover - validated when it came
            self._flush()
            return
        self._connection_open()
        self._read_trailing()  # frames that came in the same read as the request
        if self._reading_paused and not self._messages:
            self._reading_paused = False  # paused for early data
            self.transport.resume_reading()
        self._flush()
        self._end_handshake()

    def _end_handshake(self) -> None:
        """The handshake is over: a receive() that waited during it goes on."""
        if not self._answered.done():
            self._answered.set_result(None)

    def _default_headers(self, present: Any) -> List[Tuple[str, str]]:
        """uvicorn's ``server`` and ``date`` headers (and its ``headers``
        setting), but those named in ``present`` (lowercase names)."""
        return [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in self.default_headers
            if name.decode("latin-1").lower() not in present
        ]

    def _send_http(self, response: Response, state: str = CLOSED_BY_APP) -> None:
        """Answer the handshake with an HTTP response (not 101); TCP closes after
        it. ``state``: the ASGI state after it (GONE when the server answers)."""
        protocol = self.protocol
        if protocol.state is not CONNECTING or self._closed.done():
            return
        self.asgi_state = state
        if self._disconnect is None:
            self._disconnect = {"type": "websocket.disconnect", "code": 1006}
        protocol.send_response(response)
        self._flush()
        self._end_handshake()

    def _refuse(self) -> None:
        """websocket.close before websocket.accept: 403."""
        self._log_access(403)
        self._send_http(self._with_defaults(self.protocol.reject(403, "")))

    def _with_defaults(self, response: Response) -> Response:
        """``response`` with uvicorn's default headers it does not have."""
        present = {name.lower() for name, _ in response.headers.items()}
        response.headers.update(self._default_headers(present))
        return response

    def _start_denial(self, message: _Message) -> None:
        status = message["status"]
        if not isinstance(status, int) or not 100 <= status < 600 or status == 101:
            raise RuntimeError(f"Invalid HTTP status code '{status!r}' in response.")
        headers = Headers()
        for name, value in message.get("headers") or ():
            headers.add(bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
        self._log_access(status)
        self.asgi_state = DENIAL
        self._denial = (status, headers, [])

    def _denial_body(self, message: _Message) -> None:
        assert self._denial is not None
        status, headers, body = self._denial
        chunk = message.get("body", b"")
        if chunk:
            body.append(bytes(chunk))
        if not message.get("more_body", False):
            self._send_denial()

    def _send_denial(self) -> None:
        """The denial response as the application gave it (all of its body, or
        what came of it before the application ended)."""
        if self._denial is not None:
            status, headers, body = self._denial
            self._denial = None
            self._send_http(self._with_defaults(Response(status, headers=headers, body=b"".join(body))))

    # --- the application ------------------------------------------------------------------

    async def run_asgi(self) -> None:
        """Run the application for this connection (uvicorn's name)."""
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self._app_failed()
        else:
            if self.asgi_state == HANDSHAKE:
                self.logger.error("ASGI callable returned without completing handshake.")
                self._app_failed()
            elif self.asgi_state == DENIAL:
                self._send_denial()  # its last body part never came: what did goes out
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
        self._app_done()

    def _app_failed(self) -> None:
        """The application raised, or ended without answering the handshake:
        500 if nothing was sent yet; a denial response started goes out as it
        stands, as uvicorn's backends that stream it do."""
        if self.asgi_state == DENIAL:
            self._send_denial()
        elif self.asgi_state == HANDSHAKE and self.protocol.state is CONNECTING:
            self._send_http(self.protocol.reject(500, "Internal Server Error"))

    def _app_done(self) -> None:
        """The application ended: the connection ends with it, once our close
        frame (if the application sent one) is answered."""
        protocol = self.protocol
        if protocol.state is CLOSED or self._closed.done():
            return
        if protocol.close_sent is not None:
            return  # the closing handshake runs on, bounded by close_timeout
        self._close_transport()

    async def receive(self) -> _Message:
        """The ASGI ``receive``: ``websocket.connect`` first, then each message
        as ``websocket.receive``, then ``websocket.disconnect``."""
        if self._connect_pending:
            self._connect_pending = False
            return {"type": "websocket.connect"}
        if self.asgi_state != ACCEPTED:
            if self._disconnect is None and not self._answered.done():
                # Still in the handshake: nothing comes before the application
                # answers (from another task), or the client leaves.
                await asyncio.shield(self._answered)
                if self.asgi_state == ACCEPTED:
                    return await self.receive()
            return self._disconnect_message()
        if self._disconnect is not None and not self._messages:
            return self._disconnect  # the messages received before it came first
        try:
            message = await self.recv()
        except ConnectionClosed:
            return self._disconnect_message()
        if type(message) is str:
            return {"type": "websocket.receive", "text": message}
        return {"type": "websocket.receive", "bytes": message}

    def _disconnect_message(self) -> _Message:
        """The ``websocket.disconnect`` event, the same every time it is asked for."""
        if self._disconnect is None:
            protocol = self.protocol
            rcvd, sent = protocol.close_rcvd, protocol.close_sent
            frame = rcvd if rcvd is not None and (sent is None or protocol.close_rcvd_then_sent) else sent
            if frame is None:
                self._disconnect = {"type": "websocket.disconnect", "code": 1006}
            else:
                self._disconnect = {"type": "websocket.disconnect", "code": int(frame.code), "reason": frame.reason}
        return self._disconnect

    async def send(self, message: _Message) -> None:  # type: ignore[override]
        """The ASGI ``send``.

        Raises:
            ClientDisconnected: uvicorn's (an :class:`OSError`) once the client
                is gone or has closed the WebSocket.
            RuntimeError: For a message that is not valid now.
        """
        kind = message["type"]
        state = self.asgi_state
        if state == ACCEPTED:
            if kind == "websocket.send":
                if self._writing_paused:
                    await self._drain_or_disconnected()
                data = message.get("bytes")
                if data is None:
                    data = message.get("text")
                    if type(data) is not str:
                        if data is None:
                            raise RuntimeError("'websocket.send' needs 'bytes' or 'text'")
                        raise TypeError(f"'text' of 'websocket.send' must be str, not {type(data).__name__}")
                elif type(data) is not bytes and not isinstance(data, (bytes, bytearray, memoryview)):
                    raise TypeError(f"'bytes' of 'websocket.send' must be bytes, not {type(data).__name__}")
                try:
                    self.send_nowait(data)
                except (ConnectionClosed, InvalidState):
                    raise ClientDisconnected() from None
            elif kind == "websocket.close":
                self._app_close(message)
            else:
                raise RuntimeError(
                    f"Expected ASGI message 'websocket.send' or 'websocket.close', but got '{kind}'."
                )
            return
        if self._closed.done() or state == GONE:
            raise ClientDisconnected()
        if state == HANDSHAKE:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                self._refuse()
            elif kind == "websocket.http.response.start":
                self._start_denial(message)
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.accept', 'websocket.close' "
                    f"or 'websocket.http.response.start' but got '{kind}'."
                )
        elif state == DENIAL:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"Expected ASGI message 'websocket.http.response.body' but got '{kind}'.")
            self._denial_body(message)
        else:
            raise RuntimeError(f"Unexpected ASGI message '{kind}', after sending 'websocket.close'.")

    async def _drain_or_disconnected(self) -> None:
        try:
            await self._drain()
        except ConnectionClosed:
            raise ClientDisconnected() from None
        if self._closed.done():
            raise ClientDisconnected()

    def _app_close(self, message: _Message) -> None:
        protocol = self.protocol
        code = message.get("code") or 1000
        reason = message.get("reason") or ""
        if protocol.state is OPEN:
            protocol.send_close(code, reason)  # ValueError for a code or reason not allowed
            self.asgi_state = CLOSED_BY_APP
            if self._disconnect is None:
                self._disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
            self._flush()
            return
        self.asgi_state = CLOSED_BY_APP
        if self._closed.done():
            raise ClientDisconnected()
        # else the peer closed first: its close frame is answered already.

    def _close_timed_out(self) -> None:
        if self._close_stage >= 2 and not hasattr(self.transport, "abort"):
            self._close_timer = None  # a transport without abort(): close() was all there is
            return
        Connection._close_timed_out(self)

    def _keepalive_ping(self) -> None:
        self.ping_sent_at = self.loop.time()
        Connection._keepalive_ping(self)

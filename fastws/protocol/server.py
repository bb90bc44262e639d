"""The server side of the opening handshake (RFC 6455 section 4.2)."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Tuple, Union

from ..exceptions import InvalidHandshake, InvalidMessage, InvalidState
from ..handshake import (
    OriginRule,
    build_response,
    check_origin,
    check_origins,
    error_response,
    negotiate_server_extensions,
    offered_subprotocols,
    reject,
    select_subprotocol,
    validate_request,
)
from ..http11 import (
    HeadersLike,
    Request,
    RequestParser,
    Response,
    ResponseParser,
    parse_request,
)
from ..version import __version__
from .connection import Protocol
from .types import DEFAULT_MAX_SIZE, MaxSize, Side, State

__all__ = ["ServerProtocol"]

_PRODUCT = f"fastws/{__version__}"
CONNECTING = State.CONNECTING


class ServerProtocol(Protocol):
    """Server side: answers the opening handshake, then a :class:`Protocol`.

    Handshake hooks:

    - ``subprotocols``: supported subprotocols in order of preference; the first
      that the client offered is selected (none if no match);
    - ``select_subprotocol(request, offered) -> str | None`` replaces that choice
      (raise :class:`~fastws.exceptions.NegotiationError` to refuse with 400);
    - ``origins``: allowed ``Origin`` values, as strings (exact match) or
      compiled regular expressions (whole match); ``None`` in the list allows
      requests without one; others get 403;
    - ``process_request(request) -> Response | None``: runs first, on every
      request; a Response is sent instead of the handshake (404 for an unknown
      path, 401, a health check...); None continues with the handshake;
    - ``extensions``: :class:`~fastws.extensions.ServerExtensionFactory` objects;
    - ``extra_headers``: added to the 101 response.

    With ``auto_accept`` (the default), :meth:`receive_data` answers as soon as
    the request is complete. With ``auto_accept=False``, the Request event is
    emitted and the protocol waits: call ``send_response(protocol.accept())`` or
    ``send_response(protocol.reject(status, text))`` (for async checks). Bytes
    received meanwhile are kept for after the handshake.

    A bad request gets an HTTP error (400, 403, 405, 426, 431...) with a short
    text body; :attr:`error` then holds the InvalidHandshake, and the state is
    CLOSED with :meth:`should_close_transport` True.
    """

    def __init__(
        self,
        *,
        subprotocols: Optional[Sequence[str]] = None,
        select_subprotocol: Optional[Callable[[Request, Sequence[str]], Optional[str]]] = None,
        origins: Optional[Sequence[OriginRule]] = None,
        process_request: Optional[Callable[[Request], Optional[Response]]] = None,
        extensions: Optional[Sequence[Any]] = None,
        extra_headers: Optional[HeadersLike] = None,
        server_header: Optional[str] = _PRODUCT,
        auto_accept: bool = True,
        max_size: MaxSize = DEFAULT_MAX_SIZE,
        codec: Any = None,
        defer_failure: bool = False,
        **http_limits: int,
    ) -> None:
        super().__init__(
            Side.SERVER, state=CONNECTING, max_size=max_size, codec=codec, defer_failure=defer_failure
        )
        self.subprotocols = list(subprotocols) if subprotocols is not None else None
        self.select_subprotocol = select_subprotocol
        self.origins = None if origins is None else check_origins(origins)
        self.process_request = process_request
        # A tuple: the empty one is shared, and none is copied per connection
        # when the server passes a tuple.
        self.extension_factories: Sequence[Any] = (
            extensions if type(extensions) is tuple else tuple(extensions or ())
        )
        self.extra_headers = extra_headers
        self.server_header = server_header
        self.auto_accept = auto_accept
        #: The client's handshake request, once received.
        self.request: Optional[Request] = None
        # The response sent (see the response property): a 101 is kept as its
        # serialized head only, parsed again if it is read.
        self._response: Optional[Response] = None
        self._response_head: Optional[bytes] = None
        # A request that comes whole in the first read (most do) is parsed by
        # parse_request(); the incremental parser is made for the others.
        self._http: Optional[RequestParser] = RequestParser(**http_limits) if http_limits else None
        # Bytes received after the request, before the response: bytes, or a
        # bytearray once more came in later reads.
        self._pending: Union[bytes, bytearray] = b""
        self._accepted: Optional[Tuple[Optional[str], Any]] = None

    def _receive_handshake(self, data) -> None:
        if self.request is not None:  # waiting for send_response()
            pending = self._pending
            if type(pending) is not bytearray:
                pending = self._pending = bytearray(pending)
            pending += data
            return
        parser = self._http
        if parser is None:
            parsed = parse_request(data)
            if parsed is not None:
                request, self._pending = parsed
            else:
                parser = self._http = RequestParser()
        if parser is not None:
            try:
                fed = parser.feed(data)
            except InvalidMessage as exc:
                self._closing.record_error(exc)
                self.send_response(error_response(exc, server_header=self.server_header))
                return
            if fed is None:
                return
            request, self._pending = fed, parser.trailing
        self.request = request
        self._events.append(request)
        if not self.auto_accept:
            return
        response = None
        if self.process_request is not None:
            try:
                response = self.process_request(request)
            except Exception as exc:  # a bug in the hook: answer 500, keep it
                self._closing.record_error(exc)
                response = self.reject(500, "Failed to open a WebSocket connection: internal error.\n")
        if response is None:
            response = self.accept()
        self.send_response(response)

    def accept(self, request: Optional[Request] = None) -> Response:
        """Validate the request and negotiate: returns the 101 response, or the
        HTTP error response (and records :attr:`error`) if the request is bad.
        Send it with :meth:`send_response`."""
        if request is None:
            request = self.request
        if request is None:
            raise InvalidState("no request received yet")
        try:
            key = validate_request(request)
            check_origin(request, self.origins)
            offered = offered_subprotocols(request)
            if self.select_subprotocol is not None:
                subprotocol = self.select_subprotocol(request, offered)
                if subprotocol is not None and subprotocol not in offered:
                    raise ValueError(
                        f"select_subprotocol returned {subprotocol!r}, which the client"
                        " did not offer"
                    )
            else:
                subprotocol = select_subprotocol(offered, self.subprotocols)
            ext_header, extensions = negotiate_server_extensions(
                request, self.extension_factories
            )
        except InvalidHandshake as exc:
            self._closing.record_error(exc)
            return error_response(exc, server_header=self.server_header)
        except Exception as exc:  # a bug in a hook or factory: 500, keep it
            self._closing.record_error(exc)
            return self.reject(500, "Failed to open a WebSocket connection: internal error.\n")
        self._accepted = (subprotocol, extensions)
        return build_response(
            key,
            subprotocol=subprotocol,
            extensions=ext_header,
            extra_headers=self.extra_headers,
            server_header=self.server_header,
        )

    def reject(self, status: int, text: str) -> Response:
        """An HTTP error response with a plain-text body, to :meth:`send_response`."""
        return reject(status, text, server_header=self.server_header)

    def send_response(self, response: Response) -> None:
        """Send the handshake response. 101 opens the connection (and processes
        any frames that came with the request); anything else refuses it and
        closes: the state becomes CLOSED."""
        state = self._closing.state
        if state is not CONNECTING or self._response is not None or self._response_head is not None:
            raise InvalidState(f"cannot send a handshake response: connection is {state.name}")
        if response.status_code == 101:
            subprotocol, extensions = self._accepted or (None, [])
            self._accepted = None
            self.subprotocol = subprotocol
            if extensions:  # none is what the protocol starts with
                self._set_extensions(extensions)
            # What an open connection keeps of its handshake is held for as
            # long as it is open: the response as the bytes sent, the
            # request's headers as one string (both read back on demand).
            head = response.serialize()
            if (
                response.body
                or b":  " in head
                or b": \t" in head
                or b" \r\n" in head
                or b"\t\r\n" in head
            ):
                # Parsed again, it could differ: a parser drops the spaces
                # and tabs around a header value (found in the bytes: a false
                # alarm, such a pair inside a value, only costs memory), and
                # a 101 has no body. Kept as it is.
                self._response = response
            else:
                self._response_head = head
            self._writer.queue(head)
            request = self.request
            if request is not None:
                request.headers._compact()
            self._start_frames()
            pending, self._pending = self._pending, b""
            if pending:
                self._receive_trailing(bytes(pending))
            return
        self._response = response
        headers = response.headers
        if "Content-Length" not in headers and "Transfer-Encoding" not in headers:
            response.headers = headers = headers.copy()
            headers["Content-Length"] = str(len(response.body))
        if "Connection" not in headers:
            response.headers = headers = headers.copy()
            headers["Connection"] = "close"
        self._writer.queue(response.serialize())
        self._pending = b""
        self._closing.refuse(None)

    @property
    def response(self) -> Optional[Response]:
        """The handshake response sent (None until it was sent). After a 101,
        the first read parses it again from the bytes sent: a
        :class:`~fastws.http11.Response` equal to the one sent."""
        response = self._response
        head = self._response_head
        if response is None and head is not None:
            size = len(head)
            parser = ResponseParser(max_header_bytes=size, max_line=size, max_headers=size)
            response = self._response = parser.feed(head)
            self._response_head = None
        return response

    def _handshake_eof(self) -> None:
        if self._response is None and self._response_head is None:
            self._closing.record_error(
                InvalidMessage("connection closed during the opening handshake")
            )

"""The client side of the opening handshake (RFC 6455 section 4.1)."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from ..exceptions import InvalidHandshake, InvalidMessage
from ..handshake import (
    WebSocketURI,
    build_request,
    generate_key,
    negotiate_client_extensions,
    parse_uri,
    validate_response,
)
from ..http11 import HeadersLike, Request, Response, ResponseParser
from ..version import __version__
from .connection import Protocol
from .types import DEFAULT_MAX_SIZE, MaxSize, Side, State

__all__ = ["ClientProtocol"]

_PRODUCT = f"fastws/{__version__}"
CONNECTING = State.CONNECTING


class ClientProtocol(Protocol):
    """Client side: sends the opening handshake request, checks the response,
    then a :class:`Protocol`.

    ``uri`` is a ``ws://`` or ``wss://`` URI (or a parsed
    :class:`~fastws.handshake.WebSocketURI`). The request is built at once, with
    a fresh key, and is the first thing :meth:`data_to_send` returns; it is kept in
    :attr:`request`. ``subprotocols`` and ``extensions``
    (:class:`~fastws.extensions.ClientExtensionFactory` objects) are offered;
    ``extra_headers`` are added to the request.

    A refusal (any status but 101) or a bad response ends the connection: the
    state becomes CLOSED and :attr:`error` holds the InvalidHandshake
    (:class:`~fastws.exceptions.InvalidStatus` with the response for a refusal).
    """

    def __init__(
        self,
        uri: Union[str, WebSocketURI],
        *,
        origin: Optional[str] = None,
        subprotocols: Optional[Sequence[str]] = None,
        extensions: Optional[Sequence[Any]] = None,
        extra_headers: Optional[HeadersLike] = None,
        user_agent: Optional[str] = _PRODUCT,
        max_size: MaxSize = DEFAULT_MAX_SIZE,
        codec: Any = None,
        defer_failure: bool = False,
        **http_limits: int,
    ) -> None:
        super().__init__(
            Side.CLIENT, state=CONNECTING, max_size=max_size, codec=codec, defer_failure=defer_failure
        )
        self.uri = parse_uri(uri) if isinstance(uri, str) else uri
        self.key = generate_key()
        self.available_subprotocols = list(subprotocols) if subprotocols else None
        self.extension_factories = list(extensions or ())
        offers = [(f.name, f.offer()) for f in self.extension_factories]
        #: The handshake request sent.
        self.request: Request = build_request(
            self.uri,
            self.key,
            origin=origin,
            subprotocols=self.available_subprotocols,
            extensions=offers or None,
            extra_headers=extra_headers,
            user_agent=user_agent,
        )
        #: The server's response, once received.
        self.response: Optional[Response] = None
        self._http = ResponseParser(**http_limits)
        self._writer.queue(self.request.serialize())

    def _receive_handshake(self, data) -> None:
        try:
            response = self._http.feed(data)
        except InvalidMessage as exc:
            self._handshake_failed(exc)
            return
        if response is not None:
            self._receive_response(response)

    def _receive_response(self, response: Response) -> None:
        self.response = response
        self._events.append(response)
        try:
            subprotocol = validate_response(response, self.key, self.available_subprotocols)
            extensions = negotiate_client_extensions(response.headers, self.extension_factories)
        except InvalidHandshake as exc:
            self._handshake_failed(exc)
            return
        self.subprotocol = subprotocol
        self._set_extensions(extensions)
        self._start_frames()
        trailing = self._http.trailing
        if trailing:
            self._receive_trailing(trailing)

    def _handshake_failed(self, exc: InvalidHandshake) -> None:
        self._closing.refuse(exc)

    def _handshake_eof(self) -> None:
        try:
            response = self._http.feed_eof()
        except InvalidMessage as exc:
            self._handshake_failed(exc)
            return
        if response is not None and self.response is None:
            self._receive_response(response)

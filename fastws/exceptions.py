"""Exceptions raised by fastws.

Every protocol violation is a :class:`ProtocolError` (or a subclass) carrying the
close code that the connection must be failed with (RFC 6455 section 7.4.1), and a
message that names what was wrong. The compiled core and the pure-Python twin
raise the same types with the same messages.
"""

from __future__ import annotations

__all__ = [
    "FastWSError",
    "WebSocketException",
    "ProtocolError",
    "PayloadTooBig",
    "InvalidUTF8",
    "TooManyFragments",
]


class FastWSError(Exception):
    """Base class for every exception fastws raises on purpose.

    ``WebSocketException`` is the same class, under the name the ``websockets``
    library gives its base class.
    """


#: The ``websockets`` name of :class:`FastWSError`.
WebSocketException = FastWSError


class ProtocolError(FastWSError):
    """The peer broke RFC 6455; the connection must be failed with :attr:`close_code`.

    Args:
        message: What was wrong, for logs and the close frame's reason.
        close_code: The close code to fail the connection with;
            :attr:`default_close_code` of the class if None.

    Attributes:
        close_code (int): The close code to send (RFC 6455 section 7.4.1).
        frames (list): The frames that were completed before the error in the
            same :meth:`~fastws.codec.FrameParser.feed` call, so that nothing the
            peer sent correctly is lost.
    """

    #: Close code for this kind of violation (1002: protocol error).
    default_close_code = 1002

    def __init__(self, message: str, close_code: int | None = None) -> None:
        super().__init__(message)
        self.close_code: int = (
            self.default_close_code if close_code is None else close_code
        )
        self.frames: list = []

    def __reduce__(self):  # keep close_code across pickling (multiprocessing, logging)
        return (type(self), (str(self), self.close_code))


class PayloadTooBig(ProtocolError):
    """A frame or message is larger than the configured ``max_size`` (1009)."""

    default_close_code = 1009


class InvalidUTF8(ProtocolError):
    """A text message or close reason is not valid UTF-8 (1007)."""

    default_close_code = 1007


# --- local misuse ---------------------------------------------------------------


class TooManyFragments(FastWSError):
    """The ``websockets`` name for a message in too many fragments. fastws
    bounds a fragmented message by its bytes (``max_size``, checked from each
    frame's header), not by its number of fragments, and never raises it: it
    exists for code that catches it.

    Args:
        max_fragments: The limit that was passed.
    """

    def __init__(self, max_fragments: int) -> None:
        super().__init__(f"fragmented message exceeds limit of {max_fragments} frames")


class InvalidState(FastWSError):
    """An operation is not allowed in the connection's current state, for example
    sending a message after the closing handshake started. This is a bug in the
    code that drives the protocol, never something the peer caused."""


class InvalidURI(FastWSError, ValueError):
    """A WebSocket URI that cannot be used to connect (not ``ws://`` or ``wss://``,
    no host, a fragment...).

    Attributes:
        uri (str): The URI as given.
        reason (str): Why it cannot be used.
    """

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"{uri!r} isn't a valid WebSocket URI: {reason}")
        self.uri = uri
        self.reason = reason


class InvalidProxy(FastWSError, ValueError):
    """A proxy URL that cannot be used (not ``http://``, ``https://``,
    ``socks4://``, ``socks4a://``, ``socks5://`` or ``socks5h://``, no host...),
    or a SOCKS proxy without the optional ``python-socks`` package.

    Attributes:
        proxy (str): The proxy URL as given (credentials hidden).
        reason (str): Why it cannot be used.
    """

    def __init__(self, proxy: str, reason: str) -> None:
        super().__init__(f"{proxy!r} isn't a valid proxy: {reason}")
        self.proxy = proxy
        self.reason = reason


class MultipleValuesError(FastWSError, LookupError):
    """A header that must appear at most once appears several times.

    Attributes:
        name (str): The header's name.
    """

    def __init__(self, name: str) -> None:
        super().__init__(f"more than one {name} header")
        self.name = name


# --- opening handshake ----------------------------------------------------------


class InvalidHandshake(FastWSError):
    """The opening handshake (RFC 6455 section 4) failed.

    :attr:`http_status` is the HTTP status a server answers with when it is the
    one that finds the problem (400 unless a subclass or the raiser says otherwise).

    Args:
        message: What was wrong.
        http_status: The HTTP status for this error, instead of the class's.
    """

    #: HTTP status for the error response a server sends.
    http_status: int = 400

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        if http_status is not None:
            self.http_status = http_status

    def __reduce__(self):
        return (_rebuild, (type(self), self.args, self.__dict__.copy()))


def _rebuild(cls, args, state):
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class SecurityError(InvalidHandshake):
    """The handshake was stopped because going on would be unsafe: a redirect
    from ``wss://`` to ``ws://``, or a response past a security limit."""


class ProxyError(InvalidHandshake):
    """Connecting through the proxy failed (see its subclasses)."""


class InvalidProxyMessage(ProxyError):
    """The proxy's answer to CONNECT cannot be parsed, or breaks a limit."""


class InvalidProxyStatus(ProxyError):
    """The proxy refused to open the tunnel: it answered CONNECT with a status
    other than 2xx (407 when it wants credentials).

    Args:
        response: The proxy's response.

    Attributes:
        response (~fastws.http11.Response): The whole response.
    """

    def __init__(self, response) -> None:
        super().__init__(
            f"proxy rejected the connection: HTTP {response.status_code}"
            + (f" {response.reason_phrase}" if response.reason_phrase else "")
        )
        self.response = response


class InvalidMessage(InvalidHandshake):
    """An HTTP request or response that cannot be parsed, or that breaks a limit
    (line length, header count, total header size). :attr:`http_status` is 400,
    414 (request line too long), 431 (headers too large) or 505 (HTTP version)."""


class RequestLineTooLong(SecurityError, InvalidMessage):
    """The request line is longer than the parser's limit (414)."""


class StatusLineTooLong(SecurityError, InvalidMessage):
    """The response's status line is longer than the parser's limit."""


class HeaderLineTooLong(SecurityError, InvalidMessage):
    """A header line is longer than the parser's limit (431)."""


class TooManyHeaders(SecurityError, InvalidMessage):
    """More headers, or more bytes of headers, than the parser's limits (431)."""


class InvalidMethod(InvalidHandshake):
    """The opening handshake's request is not a GET (405)."""

    http_status = 405


class InvalidProtocol(InvalidMessage):
    """The request or response is not HTTP/1.x (505)."""

    http_status = 505


class InvalidHeader(InvalidHandshake):
    """A header the handshake needs is missing, repeated, or has a bad value.

    Args:
        name: The header's name.
        value: Its value, or None when it is missing.
        reason: Why the value is refused, if the message should say it.
        http_status: The HTTP status for this error, instead of the class's.

    Attributes:
        name (str): The header's name.
        value (str | None): Its value (None: missing).
        reason (str | None): Why the value is refused.
    """

    def __init__(
        self,
        name: str,
        value: str | None = None,
        reason: str | None = None,
        *,
        http_status: int | None = None,
    ) -> None:
        if value is None:
            message = f"missing {name} header"
        else:
            # The value comes from the peer and ends up in logs and error pages:
            # keep it short.
            shown = value if len(value) <= 100 else value[:97] + "..."
            message = f"invalid {name} header: {shown!r}"
        if reason:
            message = f"{message} ({reason})"
        super().__init__(message, http_status=http_status)
        self.name = name
        self.value = value
        self.reason = reason


class InvalidHeaderFormat(InvalidHeader):
    """A header's value does not follow its grammar (a list of tokens, the
    extension syntax...). Takes the arguments of :class:`InvalidHeader`."""


class InvalidHeaderValue(InvalidHeader):
    """A header's value follows its grammar but is refused (a key that is not the
    base64 of 16 bytes, an accept key that does not match...). Takes the
    arguments of :class:`InvalidHeader`."""


class InvalidUpgrade(InvalidHeader):
    """The ``Upgrade`` or ``Connection`` header does not ask for a WebSocket
    upgrade, or the ``Sec-WebSocket-Version`` is not 13 (426 Upgrade Required)."""

    http_status = 426


class InvalidOrigin(InvalidHeader):
    """The ``Origin`` header is missing or not in the server's allow-list (403)."""

    http_status = 403


class NegotiationError(InvalidHandshake):
    """Subprotocol or extension negotiation failed: the peer picked something that
    was not offered, or nothing acceptable was offered."""


class DuplicateParameter(NegotiationError):
    """An extension parameter appears twice.

    Args:
        name: The parameter's name.
        message: The message, if not the default one.

    Attributes:
        name (str): The parameter's name.
    """

    def __init__(self, name: str, message: str | None = None) -> None:
        super().__init__(message or f"duplicate parameter {name}")
        self.name = name


class InvalidParameterName(NegotiationError):
    """An extension parameter is unknown. Takes the arguments of
    :class:`DuplicateParameter`, and has its ``name``."""

    def __init__(self, name: str, message: str | None = None) -> None:
        super().__init__(message or f"invalid parameter name {name!r}")
        self.name = name


class InvalidParameterValue(NegotiationError):
    """An extension parameter has a value it cannot take.

    Args:
        name: The parameter's name.
        value: Its value (None: none given).
        message: The message, if not the default one.

    Attributes:
        name (str): The parameter's name.
        value (str | None): Its value.
    """

    def __init__(self, name: str, value: str | None, message: str | None = None) -> None:
        super().__init__(message or f"invalid value {value!r} for parameter {name}")
        self.name = name
        self.value = value


class InvalidStatus(InvalidHandshake):
    """The server refused the upgrade: it answered with a status other than 101.

    Args:
        response: The server's response.

    Attributes:
        response (~fastws.http11.Response): The whole response, with
            ``status_code``, ``headers`` and ``body`` (an error page, for example).
    """

    def __init__(self, response) -> None:
        super().__init__(
            f"server rejected the WebSocket connection: HTTP {response.status_code}"
            + (f" {response.reason_phrase}" if response.reason_phrase else "")
        )
        self.response = response

    @property
    def status_code(self) -> int:
        """The response's HTTP status."""
        return self.response.status_code

    @property
    def headers(self):
        """The response's headers, a :class:`~fastws.http11.Headers`."""
        return self.response.headers

    @property
    def body(self) -> bytes:
        """The response's body."""
        return self.response.body


__all__ += [
    "InvalidState",
    "InvalidURI",
    "InvalidProxy",
    "MultipleValuesError",
    "InvalidHandshake",
    "SecurityError",
    "ProxyError",
    "InvalidProxyMessage",
    "InvalidProxyStatus",
    "InvalidMessage",
    "RequestLineTooLong",
    "StatusLineTooLong",
    "HeaderLineTooLong",
    "TooManyHeaders",
    "InvalidMethod",
    "InvalidProtocol",
    "InvalidHeader",
    "InvalidHeaderFormat",
    "InvalidHeaderValue",
    "InvalidUpgrade",
    "InvalidOrigin",
    "NegotiationError",
    "DuplicateParameter",
    "InvalidParameterName",
    "InvalidParameterValue",
    "InvalidStatus",
]


# --- connection -----------------------------------------------------------------


class ConnectionClosed(FastWSError):
    """Raised by ``recv()``, ``send()`` and friends once the connection is closed.

    The message says which close frames went through, for example
    ``received 1000 (bye); then sent 1000 (bye)``.

    Args:
        rcvd: The close frame received, or None.
        sent: The close frame sent, or None.
        rcvd_then_sent: True if the peer closed first, False if we did, None
            unless both close frames went through.

    Attributes:
        rcvd (~fastws.events.Close | None): The close frame received, or None.
            It may also be the ``Close(1006)`` that the protocol reports when the
            connection ended without a close frame (1006 never travels in one,
            and the message then says "no close frame received").
        sent (~fastws.events.Close | None): The close frame sent, or None.
        rcvd_then_sent (bool | None): True if the peer closed first, False if
            we did, None unless both close frames went through.
    """

    def __init__(self, rcvd=None, sent=None, rcvd_then_sent: bool | None = None) -> None:
        self.rcvd = rcvd
        self.sent = sent
        self.rcvd_then_sent = rcvd_then_sent
        super().__init__(self._describe())

    @property
    def code(self) -> int:
        """The code of the close frame received; 1006 if none was."""
        return 1006 if self.rcvd is None else self.rcvd.code

    @property
    def reason(self) -> str:
        """The reason of the close frame received; ``""`` if none was."""
        return "" if self.rcvd is None else self.rcvd.reason

    def _describe(self) -> str:
        def frame(close) -> str:
            text = f"{int(close.code)}"
            if close.reason:
                text += f" ({close.reason})"
            return text

        rcvd = self.rcvd
        if rcvd is not None and rcvd.code == 1006:
            # 1006 never travels in a close frame (RFC 6455 section 7.4.1): it is
            # the code reported when the connection ended without one.
            rcvd = None
        if rcvd is None and self.sent is None:
            return "no close frame received or sent"
        if rcvd is None:
            return f"sent {frame(self.sent)}; no close frame received"
        if self.sent is None:
            return f"received {frame(rcvd)}; no close frame sent"
        if self.rcvd_then_sent:
            return f"received {frame(rcvd)}; then sent {frame(self.sent)}"
        return f"sent {frame(self.sent)}; then received {frame(rcvd)}"

    def __reduce__(self):
        return (type(self), (self.rcvd, self.sent, self.rcvd_then_sent))


class ConnectionClosedOK(ConnectionClosed):
    """The connection ended with a clean closing handshake (1000, 1001 or no code)."""


class ConnectionClosedError(ConnectionClosed):
    """The connection ended with an error code, or without a closing handshake."""


class ConcurrencyError(FastWSError, RuntimeError):
    """Two coroutines did what only one at a time may do, for example ``recv()``."""


class BroadcastError(FastWSError):
    """What ``broadcast(..., raise_exceptions=True)`` raises before Python 3.11,
    which has no :class:`ExceptionGroup` (raised from 3.11 on): the message,
    and one exception per connection skipped.

    Args:
        message: What happened.
        exceptions: The exceptions.

    Attributes:
        exceptions (tuple): The exceptions, as ``ExceptionGroup.exceptions``.
    """

    def __init__(self, message: str, exceptions: list[Exception]) -> None:
        super().__init__(f"{message} ({len(exceptions)} sub-exception{'s' if len(exceptions) != 1 else ''})")
        self.message = message
        self.exceptions = tuple(exceptions)

    def __reduce__(self):
        return (type(self), (self.message, list(self.exceptions)))


class PubSubError(FastWSError):
    """A :class:`fastws.PubSub` could not do what was asked: publish before
    ``start()`` or after ``close()``, reach Redis at start, or hand Redis a
    message before it closed."""


class PublishBufferFull(PubSubError):
    """A publish found the buffer of messages waiting for Redis full: Redis has
    been away, or slower than the publishers, for longer than the buffer
    holds. The message was not published."""


__all__ += [
    "ConnectionClosed",
    "ConnectionClosedOK",
    "ConnectionClosedError",
    "ConcurrencyError",
    "BroadcastError",
    "PubSubError",
    "PublishBufferFull",
]

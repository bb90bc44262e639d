"""What :meth:`fastws.protocol.Protocol.events_received` returns.

To keep the work per message small, data messages are not wrapped:

- a text message is a :class:`str`, a binary message is :class:`bytes`;
- :class:`Ping`, :class:`Pong` and :class:`Close` are small ``__slots__`` classes;
- the opening handshake is reported with the HTTP objects themselves: a server's
  first event is the client's :class:`~fastws.http11.Request`, a client's first
  event is the server's :class:`~fastws.http11.Response` (101 or a refusal).

Dispatch with ``type(event) is str`` / ``is bytes`` / ``isinstance``, or
``match``::

    for event in protocol.events_received():
        match event:
            case str():   on_text(event)
            case bytes(): on_binary(event)
            case Ping(data=data): ...
            case Close(code=code, reason=reason): ...
"""

from __future__ import annotations

__all__ = ["Ping", "Pong", "Close"]


class _ControlData:
    __slots__ = ("data",)
    __match_args__ = ("data",)

    def __init__(self, data: bytes = b"") -> None:
        self.data = data

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.data == other.data

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.data!r})"


class Ping(_ControlData):
    """A ping was received (the protocol already queued the pong).

    Args:
        data: The ping's payload.

    Attributes:
        data (bytes): The ping's payload, 125 bytes at most.
    """

    __slots__ = ()


class Pong(_ControlData):
    """A pong was received, solicited or not.

    Args:
        data: The pong's payload.

    Attributes:
        data (bytes): The pong's payload, 125 bytes at most.
    """

    __slots__ = ()


class Close:
    """The peer closed the connection.

    Either a close frame arrived (``code`` is its code, 1005 if it had none, and
    ``reason`` its reason), or the stream ended without one (``code`` 1006,
    ``reason`` empty). Reported once per connection.

    Args:
        code: The close code.
        reason: The close reason.

    Attributes:
        code (int): The close code: a :class:`~fastws.frames.CloseCode` member
            when it has a name, else the number.
        reason (str): The close reason, ``""`` if none.
    """

    __slots__ = ("code", "reason")
    __match_args__ = ("code", "reason")

    def __init__(self, code: int, reason: str = "") -> None:
        self.code = code
        self.reason = reason

    def __eq__(self, other: object) -> bool:
        if type(other) is not Close:
            return NotImplemented
        return self.code == other.code and self.reason == other.reason

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        code = self.code
        name = getattr(code, "name", None)
        shown = f"{int(code)} {name}" if name else str(int(code))
        return f"Close({shown}, {self.reason!r})"

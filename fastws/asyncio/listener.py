"""The callback interface: a :class:`Listener` gets a connection's events
called straight from the parser loop, with no task switch per message."""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["Listener"]

Data = Union[str, bytes]


class Listener:
    """Callback interface: subclass it and override what you need.

    Methods are called from the event loop as events happen, with no task
    switch, so they must not block; send with ``connection.send_nowait()``.
    An exception in a callback is logged and fails the connection with 1011.
    """

    def on_open(self, connection: Connection) -> None:
        """The opening handshake succeeded."""

    def on_message(self, connection: Connection, message: Data) -> None:
        """A whole message arrived: ``str`` for text, ``bytes`` for binary."""

    def on_ping(self, connection: Connection, data: bytes) -> None:
        """A ping arrived (the pong is sent automatically)."""

    def on_pong(self, connection: Connection, data: bytes) -> None:
        """A pong arrived."""

    def on_close(self, connection: Connection, code: int, reason: str) -> None:
        """The connection is closed (TCP included); ``code`` 1006 if no close frame came."""

"""The connection's state and its closing handshake, as a state machine.

::

    CONNECTING --opened--> OPEN --close sent--> CLOSING --+
        |                   |                              |
        |                   +--close received / failed-----+--> done: CLOSED (server)
        |                                                  |          or CLOSING (client,
        +--refused / end of stream--> CLOSED <--end of stream--+       until TCP closes)

A server closes TCP once the closing handshake is over or failed; a client
waits for the server to (RFC 6455 section 7.1.1), and so stays CLOSING until the
end of the stream. The end of the stream makes any state CLOSED.
"""

from __future__ import annotations

from typing import Optional

from ..events import Close
from ..exceptions import InvalidState, ProtocolError
from ..frames import CloseCode
from .types import Side, State

__all__ = ["ClosingHandshake"]

CONNECTING = State.CONNECTING
OPEN = State.OPEN
CLOSING = State.CLOSING
CLOSED = State.CLOSED


class ClosingHandshake:
    """The state of one connection, the close frames either way, and why it
    ended. Its transitions are the only place the state changes.

    Args:
        side: Which end the connection is.
        state: CONNECTING, or OPEN for a connection whose handshake was done
            elsewhere.
    """

    __slots__ = (
        "side",
        "state",
        "close_rcvd",
        "close_sent",
        "close_rcvd_then_sent",
        "error",
        "pending_failure",
        "eof",
        "close_transport",
        "opened",
    )

    def __init__(self, side: Side, state: State) -> None:
        if state is not CONNECTING and state is not OPEN:
            raise ValueError(f"a protocol starts CONNECTING or OPEN, not {state.name}")
        self.side = side
        self.state = state
        #: The close frame received, or None.
        self.close_rcvd: Optional[Close] = None
        #: The close frame sent, or None.
        self.close_sent: Optional[Close] = None
        #: Once both close frames went through: True if the peer's came first.
        self.close_rcvd_then_sent: Optional[bool] = None
        #: Why the connection ended abnormally (the first reason), or None.
        self.error: Optional[BaseException] = None
        #: A failure of the peer's whose close frame waits (``defer_failure``).
        self.pending_failure: Optional[ProtocolError] = None
        #: True once the stream has ended.
        self.eof = False
        #: True once TCP should be closed.
        self.close_transport = False
        #: True once the connection was OPEN.
        self.opened = state is OPEN

    def open(self) -> None:
        """The opening handshake succeeded."""
        self.state = OPEN
        self.opened = True

    def refuse(self, error: Optional[BaseException]) -> None:
        """The opening handshake failed or was refused (``error``: why, if it
        is the first reason known)."""
        if error is not None:
            self.error = error
        self.close_transport = True
        self.state = CLOSED

    def record_error(self, error: BaseException) -> None:
        """Keep ``error`` as the reason, unless there is one already."""
        if self.error is None:
            self.error = error

    def send_close(self, close: Close) -> None:
        """We send a close frame first: OPEN becomes CLOSING.

        Raises:
            InvalidState: The connection is not OPEN.
        """
        if self.state is not OPEN:
            raise InvalidState(f"cannot send a close frame: connection is {self.state.name}")
        self.close_sent = close
        self.state = CLOSING

    def echo_close(self, close: Close) -> None:
        """We answer the peer's close frame, or fail the connection, with ``close``."""
        self.close_sent = close

    def receive_close(self, close: Close) -> bool:
        """The peer's close frame arrived. Returns True if we must answer it
        (we have not sent ours)."""
        self.close_rcvd = close
        if self.close_sent is None:
            self.close_rcvd_then_sent = True
            return True
        self.close_rcvd_then_sent = False
        return False

    def done(self) -> None:
        """The closing handshake is over, or failed: the server closes TCP now,
        the client waits for the server to (section 7.1.1)."""
        if self.side is Side.SERVER or self.eof:
            self.close_transport = True
            self.state = CLOSED
        else:
            self.state = CLOSING

    def end_of_stream(self, report: bool = True) -> Optional[Close]:
        """The stream ended: the state becomes CLOSED. Returns the
        ``Close(1006)`` to report when ``report``, the connection was open and
        no close frame came; else None."""
        self.eof = True
        self.close_transport = True
        self.pending_failure = None
        if report and self.close_rcvd is None and self.opened:
            self.close_rcvd = Close(CloseCode.ABNORMAL_CLOSURE, "")
            self.state = CLOSED
            return self.close_rcvd
        self.state = CLOSED
        return None

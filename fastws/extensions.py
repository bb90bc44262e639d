"""The seam for WebSocket extensions (RFC 6455 section 9), such as
permessage-deflate (RFC 7692), which is not implemented here.

Three roles, duck-typed (subclassing these bases is optional):

- a :class:`ClientExtensionFactory` offers the extension in the client's request
  and turns the server's answer into an :class:`Extension`;
- a :class:`ServerExtensionFactory` reads the client's offer and, if it accepts
  it, returns the parameters of its answer and an :class:`Extension`;
- an :class:`Extension` is the negotiated extension of one connection. The
  protocol hands it the data frames of the messages that have RSV1 set, on the
  way in (:meth:`Extension.decode`), and every data frame on the way out
  (:meth:`Extension.encode`), which may set RSV1 on a message's first frame.

Messages without RSV1 never reach the extension: they take the protocol's fast
path. At most one negotiated extension may use RSV1.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

__all__ = ["Extension", "ClientExtensionFactory", "ServerExtensionFactory", "ExtensionParams"]

#: Parameters of one extension offer or answer, in order: ``(name, value or None)``.
ExtensionParams = List[Tuple[str, Optional[str]]]


class Extension:
    """A negotiated extension, for one connection."""

    #: Extension token, e.g. ``"permessage-deflate"``.
    name: str = ""
    #: True if the extension marks its messages with RSV1 (the frame parser is
    #: then told to accept RSV1 on the first frame of a data message).
    uses_rsv1: bool = True

    def decode(self, payload: bytes, *, first: bool, fin: bool, max_size: Optional[int]) -> bytes:
        """Undo the extension on one received data frame of a message whose first
        frame had RSV1 set. ``first``: first frame of the message; ``fin``: last
        one. ``max_size``: how many decoded bytes the message may still grow by
        (None: no limit); raise :class:`~fastws.exceptions.PayloadTooBig` past it.
        Raise :class:`~fastws.exceptions.ProtocolError` on undecodable data: the
        connection fails with its ``close_code``."""
        raise NotImplementedError

    def encode(self, payload: bytes, *, first: bool, fin: bool) -> Tuple[bytes, bool]:
        """Apply the extension to one data frame about to be sent. Returns the new
        payload and whether RSV1 is set; RSV1 is only honoured on a message's
        first frame (continuation frames are always sent with RSV1 clear)."""
        raise NotImplementedError


class ClientExtensionFactory:
    """Client side of the negotiation of one extension."""

    name: str = ""

    def offer(self) -> ExtensionParams:
        """Parameters for the ``Sec-WebSocket-Extensions`` offer."""
        return []

    def accept(self, params: ExtensionParams, accepted: Sequence[Extension]) -> Extension:
        """The server accepted the extension with ``params``; ``accepted`` lists
        the extensions it accepted before this one. Return the extension, or raise
        :class:`~fastws.exceptions.NegotiationError` if the answer is unacceptable."""
        raise NotImplementedError


class ServerExtensionFactory:
    """Server side of the negotiation of one extension."""

    name: str = ""

    def negotiate(
        self, params: ExtensionParams, accepted: Sequence[Extension]
    ) -> Tuple[ExtensionParams, Extension]:
        """The client offered the extension with ``params``; ``accepted`` lists the
        extensions accepted so far. Return the parameters of the answer and the
        extension, or raise :class:`~fastws.exceptions.NegotiationError` to decline
        this offer (the next offer of the same extension is tried, if any)."""
        raise NotImplementedError

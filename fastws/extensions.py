"""The seam for WebSocket extensions (RFC 6455 section 9), such as
permessage-deflate (RFC 7692), which :mod:`fastws.deflate` implements on it.

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

    # Empty slots: a subclass may keep its state in slots (a server holds one
    # per connection); one without __slots__ gets an instance dict as usual.
    __slots__ = ()

    #: Extension token, e.g. ``"permessage-deflate"``.
    name: str = ""
    #: True if the extension marks its messages with RSV1 (the frame parser is
    #: then told to accept RSV1 on the first frame of a data message).
    uses_rsv1: bool = True

    def decode(self, payload: bytes, *, first: bool, fin: bool, max_size: Optional[int]) -> bytes:
        """Undo the extension on one received data frame of a message whose first
        frame had RSV1 set.

        Args:
            payload: The frame's payload, as received.
            first: True for the first frame of the message.
            fin: True for the last frame of the message.
            max_size: How many decoded bytes the message may still grow by;
                None: no limit.

        Returns:
            The decoded payload.

        Raises:
            ~fastws.exceptions.PayloadTooBig: If the decoded payload would be
                larger than ``max_size``.
            ~fastws.exceptions.ProtocolError: If the data cannot be decoded: the
                connection fails with its ``close_code``.
        """
        raise NotImplementedError

    def encode(self, payload: bytes, *, first: bool, fin: bool) -> Tuple[bytes, bool]:
        """Apply the extension to one data frame about to be sent.

        Args:
            payload: The frame's payload.
            first: True for the first frame of the message.
            fin: True for the last frame of the message.

        Returns:
            The new payload, and whether RSV1 is set. RSV1 is only honoured on a
            message's first frame (continuation frames are always sent with RSV1
            clear).
        """
        raise NotImplementedError


class ClientExtensionFactory:
    """Client side of the negotiation of one extension."""

    name: str = ""

    def offer(self) -> ExtensionParams:
        """The parameters of the offer in the ``Sec-WebSocket-Extensions`` header.

        Returns:
            The offer's ``(name, value or None)`` pairs.
        """
        return []

    def accept(self, params: ExtensionParams, accepted: Sequence[Extension]) -> Extension:
        """The server accepted the extension: check its answer.

        Args:
            params: The parameters of the server's answer.
            accepted: The extensions the server accepted before this one.

        Returns:
            The negotiated extension, for the connection.

        Raises:
            ~fastws.exceptions.NegotiationError: If the answer is unacceptable.
        """
        raise NotImplementedError


class ServerExtensionFactory:
    """Server side of the negotiation of one extension."""

    name: str = ""

    def negotiate(
        self, params: ExtensionParams, accepted: Sequence[Extension]
    ) -> Tuple[ExtensionParams, Extension]:
        """The client offered the extension: accept the offer or decline it.

        Args:
            params: The parameters of the client's offer.
            accepted: The extensions accepted so far.

        Returns:
            The parameters of the answer, and the negotiated extension.

        Raises:
            ~fastws.exceptions.NegotiationError: To decline this offer (the next
                offer of the same extension is tried, if any).
        """
        raise NotImplementedError

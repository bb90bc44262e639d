"""The frame reader: a connection's frame parser, and whether frames are read."""

from __future__ import annotations

from typing import Any, Optional

from .types import Gates

__all__ = ["FrameReader"]


class FrameReader:
    """Owns the codec's :class:`~fastws.codec.FrameParser` once the opening
    handshake is done, and :attr:`Gates.fast_parser`.

    It reads in one of three modes: not at all (before the handshake, after a
    close frame, a failure or the end of the stream), for the driver's fast
    path too (OPEN), or only through :meth:`~fastws.protocol.Protocol.receive_data`
    (CLOSING: our close frame is out and the peer's is awaited).

    Args:
        codec: The codec module whose parser to use.
        gates: The protocol's :class:`~fastws.protocol.Gates`.
        mask_required: True on the server side (RFC 6455 section 5.1).
        max_size: The limit on a message (None: no limit). A frame cannot exceed
            its message, so the parser refuses an oversize frame from its
            header. Its limit applies to control frames too: below 125 bytes,
            it is raised to 125 and the message assembler checks data frames
            instead.
    """

    __slots__ = ("_codec", "_gates", "_mask_required", "_max_size", "reading", "parser")

    def __init__(self, codec: Any, gates: Gates, *, mask_required: bool, max_size: Optional[int]):
        self._codec = codec
        self._gates = gates
        self._mask_required = mask_required
        self._max_size = max_size
        #: True while frames are read.
        self.reading = False
        #: The parser, once frames flow (it stays after reading stops).
        self.parser: Any = None

    def start(self, allow_rsv1: bool) -> None:
        """Start reading frames: the opening handshake succeeded. ``allow_rsv1``
        when an extension that uses RSV1 was negotiated."""
        max_size = self._max_size
        if max_size is not None and max_size < 125:
            max_size = 125
        self.parser = self._codec.FrameParser(
            mask_required=self._mask_required, max_size=max_size, allow_rsv1=allow_rsv1
        )
        self.reading = True
        self._gates.fast_parser = self.parser

    def closing(self) -> None:
        """Our close frame is out: read on, to find the peer's, through the
        protocol alone."""
        self._gates.fast_parser = None

    def stop(self) -> None:
        """Stop reading: what arrives from now on is discarded (RFC 6455
        section 1.4 after a close frame, section 7.1.7 after a failure)."""
        self.reading = False
        self._gates.fast_parser = None

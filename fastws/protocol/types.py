"""The names every part of the sans-I/O protocol shares: states, sides, limits,
and :class:`Gates`, the go-aheads a driver reads."""

from __future__ import annotations

import enum
from typing import Any, Optional, Tuple, Union

__all__ = [
    "State",
    "Side",
    "Gates",
    "DEFAULT_MAX_SIZE",
    "PASS_THROUGH_SIZE",
    "MaxSize",
    "split_max_size",
]

#: Default limit on the size of a received message: 1 MiB.
DEFAULT_MAX_SIZE = 1 << 20

#: ``max_size``: the limit on a message, ``(message, fragment)`` limits, or None.
MaxSize = Union[int, Tuple[Optional[int], Optional[int]], None]


def split_max_size(max_size: MaxSize) -> Tuple[Optional[int], Optional[int]]:
    """Check ``max_size`` and split it into its message and fragment limits.

    Args:
        max_size: The limit on a received message, in bytes, across its
            fragments; or ``(message, fragment)``, where ``fragment`` also
            limits each frame of a message (as the ``websockets`` library
            takes it); None for no limit.

    Returns:
        ``(message, fragment)``, each None for no limit.

    Raises:
        TypeError: If a limit is not an int or None.
        ValueError: If a limit is negative, or the tuple is not a pair.
    """
    if isinstance(max_size, tuple):
        if len(max_size) != 2:
            raise ValueError(f"max_size must be an int, None or a (message, fragment) pair, got {max_size!r}")
        message, fragment = max_size
    else:
        message, fragment = max_size, None
    for name, value in (("max_size", message), ("max_size fragment limit", fragment)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int or None, got {type(value).__name__}")
        if value < 0:
            raise ValueError(f"{name} must be >= 0 or None, got {value}")
    return message, fragment

#: Payloads from this size on, when they are ``bytes`` and go out unmasked and
#: unextended, are queued after their header instead of copied into one frame
#: (:meth:`~fastws.protocol.Protocol.chunks_to_send`). A driver sends such a
#: payload through the protocol rather than with ``build_frame``, to keep it
#: uncopied.
PASS_THROUGH_SIZE = 1 << 16


class State(enum.IntEnum):
    """Connection state (RFC 6455 sections 4 and 7)."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


class Side(enum.Enum):
    """Which end of the connection a protocol is: it decides masking (RFC 6455
    section 5.3) and who closes TCP first (section 7.1.1)."""

    SERVER = "server"
    CLIENT = "client"


class Gates:
    """What a driver may do on its own, one attribute read per question.

    Each gate has one owner among the protocol's parts, which keeps it current
    in its own methods: :attr:`fast_parser` the frame reader,
    :attr:`fast_delivery` the message assembler, :attr:`fast_send` and
    :attr:`has_data_to_send` the message writer. A driver reads them and never
    writes them.

    Attributes:
        fast_parser: The :class:`~fastws.codec.FrameParser`, for a driver that
            feeds it itself, while the connection is OPEN and reading; None
            otherwise (the driver then calls
            :meth:`~fastws.protocol.Protocol.receive_data`).
        fast_delivery: True if the driver may deliver the next whole plain
            message frame itself (:func:`~fastws.codec.plain_message` decides
            which frames are plain): no fragmented message and no partly
            validated text frame is in progress, and the parser alone checks
            ``max_size``.
        fast_send: True if a whole text or binary message may be written now as
            ``build_frame(opcode, payload, mask=protocol.mask_frames)``, without
            the protocol: the connection is OPEN, no fragmented message is being
            sent, no extension that uses RSV1 (permessage-deflate) is
            negotiated and nothing waits in
            :meth:`~fastws.protocol.Protocol.data_to_send`.
        has_data_to_send: True while
            :meth:`~fastws.protocol.Protocol.data_to_send` has bytes to return.
    """

    __slots__ = ("fast_parser", "fast_delivery", "fast_send", "has_data_to_send")

    def __init__(self) -> None:
        self.fast_parser: Any = None
        self.fast_delivery = False
        self.fast_send = False
        self.has_data_to_send = False

    def __repr__(self) -> str:
        return (
            f"Gates(fast_parser={self.fast_parser!r}, fast_delivery={self.fast_delivery},"
            f" fast_send={self.fast_send}, has_data_to_send={self.has_data_to_send})"
        )

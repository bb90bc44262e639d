"""Exceptions raised by fastws.

Every protocol violation is a :class:`ProtocolError` (or a subclass) carrying the
close code that the connection must be failed with (RFC 6455 section 7.4.1), and a
message that names what was wrong. The compiled core and the pure-Python twin
raise the same types with the same messages.
"""

from __future__ import annotations

__all__ = [
    "FastWSError",
    "ProtocolError",
    "PayloadTooBig",
    "InvalidUTF8",
]


class FastWSError(Exception):
    """Base class for every exception fastws raises on purpose."""


class ProtocolError(FastWSError):
    """The peer broke RFC 6455; the connection must be failed with :attr:`close_code`.

    ``frames`` holds the frames that were completed before the error in the same
    :meth:`FrameParser.feed` call, so that nothing the peer sent correctly is lost.
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

"""fastws: a fast, strict WebSocket (RFC 6455) stack with a compiled core.

``fastws.IMPLEMENTATION`` says which codec is active: ``"cython"`` (the compiled
core) or ``"python"`` (the pure-Python twin, forced by ``FASTWS_NO_EXTENSIONS=1``).
"""

from .codec import (
    IMPLEMENTATION,
    Frame,
    FrameParser,
    Utf8Validator,
    apply_mask,
    apply_mask_inplace,
    build_close,
    build_frame,
    parse_close,
    validate_utf8,
)
from .exceptions import FastWSError, InvalidUTF8, PayloadTooBig, ProtocolError
from .frames import CloseCode, Opcode
from .version import __version__

__all__ = [
    "__version__",
    "IMPLEMENTATION",
    # codec
    "apply_mask",
    "apply_mask_inplace",
    "validate_utf8",
    "Utf8Validator",
    "Frame",
    "FrameParser",
    "build_frame",
    "parse_close",
    "build_close",
    # constants
    "Opcode",
    "CloseCode",
    # exceptions
    "FastWSError",
    "ProtocolError",
    "PayloadTooBig",
    "InvalidUTF8",
]

# sans-I/O protocol layer
from .events import Close, Ping, Pong
from .exceptions import (
    InvalidHandshake,
    InvalidHeader,
    InvalidMessage,
    InvalidOrigin,
    InvalidState,
    InvalidStatus,
    InvalidUpgrade,
    InvalidURI,
    MultipleValuesError,
    NegotiationError,
)
from .http11 import Headers, Request, Response
from .protocol import ClientProtocol, Protocol, ServerProtocol, Side, State

__all__ += [
    # protocol
    "State",
    "Side",
    "Protocol",
    "ServerProtocol",
    "ClientProtocol",
    # events
    "Ping",
    "Pong",
    "Close",
    # handshake HTTP objects
    "Headers",
    "Request",
    "Response",
    # exceptions
    "InvalidState",
    "InvalidURI",
    "MultipleValuesError",
    "InvalidHandshake",
    "InvalidMessage",
    "InvalidHeader",
    "InvalidUpgrade",
    "InvalidOrigin",
    "NegotiationError",
    "InvalidStatus",
]

# connection exceptions
from .exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
)

__all__ += [
    "ConnectionClosed",
    "ConnectionClosedOK",
    "ConnectionClosedError",
    "ConcurrencyError",
]

# The asyncio layer, imported on first use: code that only borrows the codec
# does not pay for importing asyncio.
_ASYNCIO_NAMES = frozenset(
    {
        "serve",
        "unix_serve",
        "serve_listener",
        "Server",
        "ServerConnection",
        "connect",
        "unix_connect",
        "connect_listener",
        "ClientConnection",
        "Connection",
        "Listener",
        "broadcast",
    }
)
__all__ += sorted(_ASYNCIO_NAMES)


def __getattr__(name: str):
    if name in _ASYNCIO_NAMES:
        from . import asyncio as _asyncio_layer

        value = getattr(_asyncio_layer, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fastws' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _ASYNCIO_NAMES)

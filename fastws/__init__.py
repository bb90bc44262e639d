"""fastws: a fast, strict WebSocket (RFC 6455) stack with a compiled core.

``fastws.IMPLEMENTATION`` says which codec is active: ``"cython"`` (the compiled
core) or ``"python"`` (the pure-Python twin, forced by ``FASTWS_NO_EXTENSIONS=1``).

Only the codec, the constants and the exceptions are imported with the package:
the sans-I/O protocol, the handshake's HTTP objects, the events and the asyncio
layer are imported on first use of one of their names (``fastws.Protocol``,
``fastws.serve``...), so that code that only borrows the codec (``fastws.codec``,
``fastws.accelerate``) pays for neither the HTTP parser nor asyncio.
"""

from __future__ import annotations

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
from .exceptions import (
    BroadcastError,
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    DuplicateParameter,
    FastWSError,
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderFormat,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidOrigin,
    InvalidParameterName,
    InvalidParameterValue,
    InvalidProxy,
    InvalidProxyMessage,
    InvalidProxyStatus,
    InvalidState,
    InvalidStatus,
    InvalidUpgrade,
    InvalidURI,
    InvalidUTF8,
    MultipleValuesError,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
    ProxyError,
    PublishBufferFull,
    PubSubError,
    SecurityError,
    WebSocketException,
)
from .frames import CloseCode, Opcode
from .version import __version__

# The lazily imported names, by the submodule that defines them. The type checkers
# see them through the imports below; at run time they come from __getattr__.
_LAZY_MODULES: dict[str, tuple[str, ...]] = {
    # sans-I/O protocol layer
    "protocol": ("State", "Side", "Protocol", "ServerProtocol", "ClientProtocol"),
    # events
    "events": ("Ping", "Pong", "Close"),
    # handshake HTTP objects
    "http11": ("Headers", "Request", "Response"),
    # the asyncio layer: code that only borrows the codec does not import asyncio
    "asyncio": (
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
        "broadcast_many",
        "basic_auth",
    ),
    # topics of connections, in one process or through Redis
    "pubsub": ("PubSub", "current_pubsub"),
    # worker processes sharing a port
    "runner": ("run",),
}
#: name -> submodule (relative to fastws) that defines it
_LAZY: dict[str, str] = {
    name: module for module, names in _LAZY_MODULES.items() for name in names
}
_ASYNCIO_NAMES = frozenset(_LAZY_MODULES["asyncio"])

# True for type checkers (mypy and pyright take any name TYPE_CHECKING so), False at
# run time without importing typing, which nothing else on the codec's path needs.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .asyncio import (
        ClientConnection,
        Connection,
        Listener,
        Server,
        ServerConnection,
        basic_auth,
        broadcast,
        broadcast_many,
        connect,
        connect_listener,
        serve,
        serve_listener,
        unix_connect,
        unix_serve,
    )
    from .events import Close, Ping, Pong
    from .http11 import Headers, Request, Response
    from .protocol import ClientProtocol, Protocol, ServerProtocol, Side, State
    from .pubsub import PubSub, current_pubsub
    from .runner import run

# A literal list, so that type checkers know every exported name (strict mypy
# re-exports only the names in __all__). tests/test_implementation.py checks that
# it holds every lazy name.
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
    "WebSocketException",
    "ProtocolError",
    "PayloadTooBig",
    "InvalidUTF8",
    # protocol (lazy)
    "State",
    "Side",
    "Protocol",
    "ServerProtocol",
    "ClientProtocol",
    # events (lazy)
    "Ping",
    "Pong",
    "Close",
    # handshake HTTP objects (lazy)
    "Headers",
    "Request",
    "Response",
    # handshake exceptions
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
    # connection exceptions
    "ConnectionClosed",
    "ConnectionClosedOK",
    "ConnectionClosedError",
    "ConcurrencyError",
    "BroadcastError",
    "PubSubError",
    "PublishBufferFull",
    # asyncio (lazy)
    "Listener",
    "Server",
    "ServerConnection",
    "ClientConnection",
    "Connection",
    "basic_auth",
    "broadcast",
    "broadcast_many",
    "connect",
    "connect_listener",
    "serve",
    "serve_listener",
    "unix_connect",
    "unix_serve",
    # pub/sub (lazy)
    "PubSub",
    "current_pubsub",
    # worker processes (lazy)
    "run",
]

# Hidden from type checkers: every name it serves is imported above for them, so a
# misspelt ``fastws.serv`` stays an error for the checker as it is at run time.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'fastws' has no attribute {name!r}")
        from importlib import import_module

        value = getattr(import_module(f".{module}", __name__), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

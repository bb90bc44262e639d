"""fastws on asyncio: :func:`serve`, :func:`connect`, the connection object, and
the callback interface (:class:`Listener`, :func:`serve_listener`,
:func:`connect_listener`)."""

from .client import ClientConnection, connect, connect_listener, unix_connect
from .connection import Connection, Listener, broadcast, broadcast_many
from .server import Server, ServerConnection, basic_auth, serve, serve_listener, unix_serve

__all__ = [
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
]

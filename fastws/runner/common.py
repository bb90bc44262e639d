"""What the runner's parent and its workers share: the handler's name, the
workers' configuration, the constants, the sockets."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from typing import Any, Callable, Coroutine, Dict, List, NamedTuple, Optional, Type, TypeVar, Union

from ..asyncio.listener import Listener

T = TypeVar("T")

__all__ = ["WorkerConfig", "handler_target", "bind", "addresses", "configure_logging"]

#: A worker that dies this many times in a row soon after its start makes the
#: parent give up.
MAX_QUICK_DEATHS = 5
#: Seconds: a worker that dies sooner after its start (or before it serves)
#: died "soon"; restarts of such workers wait 0.1 s, 0.2 s, 0.4 s... up to BACKOFF_MAX.
QUICK_DEATH = 2.0
BACKOFF_MAX = 5.0
#: A worker's exit status when it cannot load its handler or listen: not retried.
EXIT_CONFIG = 3
LOG_FORMAT = "%(levelname)s [%(process)d] %(name)s: %(message)s"

# What goes over the Unix socket between the parent and a worker: the worker
# sends READY once it serves, or ERROR and a message before it exits; the parent
# sends SOCKET with the file descriptor of an accepted connection attached.
READY = b"R"
ERROR = b"E"
SOCKET = b"S"

#: serve() options the runner sets itself.
RUNNER_OPTIONS = frozenset(
    {"reuse_port", "sock", "unix", "path", "listener", "start_serving", "host", "port"}
)

class WorkerConfig(NamedTuple):
    """What a worker needs: sent to the spawned process, so picklable."""

    target: str  # "module:qualname"
    host: Optional[str]
    port: int
    reuse_port: bool
    pubsub: Optional[str]
    serve_options: Dict[str, Any]
    log_level: Union[int, str, None]
    loop: str  # "asyncio" or "uvloop"


def lookup(module: Any, qualname: str) -> Any:
    obj = module
    for name in qualname.split("."):
        obj = getattr(obj, name)
    return obj


def handler_target(handler: Union[str, Callable[..., Any], Type[Listener]]) -> str:
    """The ``"module:qualname"`` that the workers import to find ``handler``.

    Args:
        handler: A ``"module:qualname"`` string, or a function or class
            defined at the top level of a module (or in a class there).

    Raises:
        ValueError: If a string is not ``"module:qualname"``.
        TypeError: If ``handler`` is neither, or cannot be imported by its
            module and qualified name (a lambda, a function defined inside
            another one, a handler of an interactive session).
    """
    if isinstance(handler, str):
        module, sep, qualname = handler.partition(":")
        if not sep or not module or not qualname:
            raise ValueError(f"handler must be 'MODULE:NAME', not {handler!r}")
        return handler
    module_name = getattr(handler, "__module__", None)
    qualified = getattr(handler, "__qualname__", None)
    if not callable(handler) or not isinstance(module_name, str) or not isinstance(qualified, str):
        raise TypeError(
            "handler must be a coroutine function, a Listener subclass or 'MODULE:NAME',"
            f" not {handler!r}"
        )
    module, qualname = module_name, qualified
    if "<" in qualname:  # <lambda>, <locals>
        raise TypeError(
            f"cannot run {handler!r} in worker processes: they import the handler by module"
            " and name, and a lambda or a function defined inside another one has none;"
            " define it at the top level of a module"
        )
    try:
        found = lookup(sys.modules[module], qualname)
    except (KeyError, AttributeError):
        found = None
    if found is not handler:
        raise TypeError(
            f"cannot run {handler!r} in worker processes: {module}:{qualname} is not it"
        )
    main = sys.modules.get("__main__")
    if module == "__main__" and getattr(main, "__file__", None) is None:
        raise TypeError(
            f"cannot run {handler!r} in worker processes: it is defined in __main__,"
            " which has no file for them to import (an interactive session, python -c)"
        )
    return f"{module}:{qualname}"


def bind(host: Optional[str], port: int, *, reuse_port: bool, backlog: int) -> List[socket.socket]:
    """Sockets bound to every address of ``host`` (all of them on one port,
    the one the first picked when ``port`` is 0). With ``reuse_port`` they have
    SO_REUSEPORT and do not listen (they reserve the port for the workers);
    otherwise they listen, non-blocking.

    Raises:
        OSError: If an address cannot be bound.
    """
    infos = socket.getaddrinfo(
        host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
    )
    sockets: List[socket.socket] = []
    seen = set()
    try:
        for family, type_, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, type_, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                # As asyncio's create_server does: IPv4 has its own socket.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
            if not reuse_port:
                sock.listen(backlog)
                sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def addresses(sockets: List[socket.socket]) -> str:
    shown = []
    for sock in sockets:
        host, port = sock.getsockname()[:2]
        shown.append(f"ws://[{host}]:{port}/" if ":" in host else f"ws://{host}:{port}/")
    return ", ".join(shown)


def event_loop_name(loop: str) -> str:
    """``"asyncio"`` or ``"uvloop"``: what ``loop`` (one of those or ``"auto"``) means here.

    Raises:
        ValueError: If ``loop`` is none of the three, or is ``"uvloop"`` where
            uvloop is not installed.
    """
    if loop not in ("auto", "asyncio", "uvloop"):
        raise ValueError(f"loop must be 'auto', 'asyncio' or 'uvloop', not {loop!r}")
    if loop == "asyncio":
        return loop
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if loop == "uvloop":
            raise ValueError("loop='uvloop' needs uvloop: pip install uvloop") from None
        return "asyncio"
    return "uvloop"


def run_loop(main: Coroutine[Any, Any, T], loop: str) -> T:
    """``asyncio.run(main)``, on uvloop when ``loop`` is ``"uvloop"``."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run(main)  # type: ignore[no-any-return,unused-ignore]
    return asyncio.run(main)


def configure_logging(level: Union[int, str, None]) -> None:
    if level is not None:
        if isinstance(level, str):
            level = level.upper()
        logging.basicConfig(level=level, format=LOG_FORMAT)


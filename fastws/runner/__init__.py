"""``fastws.run()`` and ``python -m fastws run``: worker processes that share a port.

::

    python -m fastws run app:handler --host 0.0.0.0 --port 8765 --workers 4

    # or, from Python (in a module the workers can import, under the usual guard):
    if __name__ == "__main__":
        sys.exit(fastws.run(handler, "0.0.0.0", 8765, workers=4))

A parent process starts ``workers`` processes (the ``spawn`` way: fresh
interpreters that import the handler's module), restarts any that dies, and
stops them all on SIGTERM or SIGINT. Each worker runs :func:`fastws.serve` with
the handler, an ``async def handler(websocket)`` or a :class:`fastws.Listener`
subclass (then one instance per connection), and, with ``pubsub=URL``, a started
:class:`fastws.PubSub` that handlers reach with :func:`fastws.current_pubsub`.

How the workers share the port:

* ``reuse_port=True`` (the default on Linux): each worker listens on its own
  socket bound with ``SO_REUSEPORT`` and the kernel spreads new connections
  over them (by a hash of the client's address and port). The parent binds the
  address first, without listening, to reserve the port (and to pick one when
  ``port`` is 0) until it exits.
* ``reuse_port=False`` (the default elsewhere; macOS and the BSDs accept
  ``SO_REUSEPORT`` but do not spread connections with it): the parent alone
  listens, accepts, and hands each accepted socket to the next worker in turn
  over a Unix socket (``socket.send_fds``); the worker serves it as if it had
  accepted it. Connections handed to a worker that dies before taking them are
  closed.

Windows has neither; :func:`run` raises :class:`RuntimeError` there.

The parent prints ``listening on ws://HOST:PORT/`` on standard output once every
worker serves. On SIGTERM or SIGINT it sends SIGTERM to every worker, which
closes its server (open connections are closed with 1001, going away, and the
handlers get ``close_timeout`` to return) and exits 0; the parent returns 0 once
all are gone, or kills those still running after ``shutdown_timeout`` and
returns 1. A worker that dies otherwise is logged at WARNING and started again,
at once if it had served for a while, after a growing delay if it died soon
after its start; after :data:`MAX_QUICK_DEATHS` such deaths in a row the parent
stops everything and returns 1 (a worker that cannot reach Redis for its
PubSub at its start dies so). A worker that cannot import its handler, or cannot
listen, is not retried: the parent prints why and returns 1. Workers whose
parent is gone (killed) stop as on SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
import sys
from typing import Any, Callable, Optional, Type, Union

from ..asyncio.listener import Listener
from ..asyncio.server import serve
from .common import (
    MAX_QUICK_DEATHS,
    RUNNER_OPTIONS,
    WorkerConfig,
    bind,
    configure_logging,
    event_loop_name,
    handler_target,
)
from .supervisor import Supervisor

__all__ = ["run", "handler_target", "MAX_QUICK_DEATHS", "DEFAULT_HOST", "DEFAULT_PORT"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_BACKLOG = 100  # asyncio's default


async def _placeholder(websocket: Any) -> None:
    """Stands for the handler when the parent checks the serve() options."""


def run(
    handler: Union[str, Callable[..., Any], Type[Listener]],
    host: Optional[str] = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    workers: Optional[int] = None,
    pubsub: Optional[str] = None,
    reuse_port: Optional[bool] = None,
    shutdown_timeout: float = 30.0,
    log_level: Union[int, str, None] = "info",
    loop: str = "auto",
    **serve_options: Any,
) -> int:
    """Serve ``handler`` from ``workers`` processes sharing ``host:port``,
    until SIGTERM or SIGINT.

    Call it under ``if __name__ == "__main__":`` in a script: the workers are
    fresh interpreters that import the handler's module (and, when the handler
    is defined in the script, the script itself, as ``multiprocessing``
    does). It prints ``listening on ws://HOST:PORT/`` on standard output once
    every worker serves, and returns the exit status: 0 after a clean stop, 1
    when the port cannot be bound, a worker cannot load its handler or keeps
    dying at its start, or workers had to be killed at the end
    (``sys.exit(fastws.run(...))`` hands it on).

    Args:
        handler: An ``async def handler(websocket)`` coroutine function or a
            :class:`~fastws.Listener` subclass (one instance per connection),
            given as the object itself, defined at the top level of a module
            (it is resolved to ``"module:qualname"``), or as such a string.
        host: The interface to listen on, as for :func:`fastws.serve` (None:
            every interface).
        port: The TCP port; 0 picks a free one (printed on the ``listening
            on`` line).
        workers: How many worker processes; None: one per CPU.
        pubsub: A :class:`fastws.PubSub` URL (``redis://...``): each worker
            starts one and makes it :func:`fastws.current_pubsub` for its
            handlers. None: no pub/sub.
        reuse_port: True: each worker listens with ``SO_REUSEPORT``; False:
            the parent accepts and hands each connection to a worker in turn.
            None: True on Linux, False elsewhere.
        shutdown_timeout: Seconds the workers get to exit after SIGTERM, past
            which they are killed. Give it more than ``close_timeout``.
        log_level: The level of the ``logging`` configuration set up in the
            parent and in each worker (``"info"`` shows which worker serves
            with which pid); None leaves logging alone.
        loop: The workers' event loop: ``"uvloop"``, ``"asyncio"``, or
            ``"auto"``, uvloop when it is installed (as uvicorn does).
        **serve_options: Passed to :func:`fastws.serve` in each worker
            (``max_size``, ``ping_interval``, ``compression``,
            ``process_request`` defined at the top level of a module...);
            they must be picklable, which an :class:`ssl.SSLContext` is not:
            terminate TLS in a reverse proxy in front of the workers.

    Returns:
        The exit status.

    Raises:
        RuntimeError: On a system that lacks ``socket.send_fds`` (Windows).
        TypeError: If ``handler`` cannot be imported by the workers, if
            ``serve_options`` holds an option the runner sets itself
            (``reuse_port``, ``sock``...) or one :func:`fastws.serve` does not
            take, or one that cannot be pickled (``ssl``).
        ValueError: If ``workers`` or ``shutdown_timeout`` is not positive,
            ``loop`` is not one of the three (or names uvloop, not installed),
            ``reuse_port`` is True where the system has no ``SO_REUSEPORT``,
            ``pubsub`` is not a Redis URL, or :func:`fastws.serve` refuses an
            option's value.
        ImportError: If ``pubsub`` is given and the ``redis`` package is
            missing.
    """
    if os.name != "posix" or not hasattr(socket, "send_fds"):
        raise RuntimeError(
            "fastws.run() needs a POSIX system (it hands sockets to its workers with"
            " socket.send_fds); on Windows, run fastws.serve() in one process per port"
        )
    target = handler_target(handler)
    if workers is None:
        workers = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, not {workers!r}")
    if reuse_port is None:
        reuse_port = sys.platform.startswith("linux")
    elif reuse_port and not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("reuse_port=True needs SO_REUSEPORT, which this system does not have")
    loop = event_loop_name(loop)
    if not shutdown_timeout > 0:
        raise ValueError(f"shutdown_timeout must be positive, not {shutdown_timeout!r}")
    if pubsub is not None:
        if not isinstance(pubsub, str):
            raise TypeError(f"pubsub must be a URL, not {pubsub!r}")
        from ..pubsub import PubSub

        PubSub(pubsub)  # refuses a bad URL, or a missing redis package, here
    taken = sorted(RUNNER_OPTIONS.intersection(serve_options))
    if taken:
        raise TypeError(f"run() sets {', '.join(repr(name) for name in taken)} itself")
    serve(_placeholder, host, port, **serve_options)  # refuses a bad option here, once
    if serve_options.get("ssl") is not None:
        raise TypeError(
            "run() cannot hand an ssl.SSLContext to its workers (it cannot be pickled):"
            " terminate TLS in a reverse proxy in front of them"
        )
    try:
        pickle.dumps(serve_options)
    except Exception as exc:
        raise TypeError(f"the serve() options must be picklable to reach the workers: {exc}") from None

    configure_logging(log_level)
    backlog = serve_options.get("backlog", DEFAULT_BACKLOG)
    try:
        sockets = bind(host, port, reuse_port=reuse_port, backlog=backlog)
    except OSError as exc:
        print(f"cannot listen on {host}:{port}: {exc}", file=sys.stderr, flush=True)
        return 1
    config = WorkerConfig(
        target=target,
        host=host,
        port=sockets[0].getsockname()[1],
        reuse_port=reuse_port,
        pubsub=pubsub,
        serve_options=dict(serve_options),
        log_level=log_level,
        loop=loop,
    )
    supervisor = Supervisor(config, workers, sockets, shutdown_timeout)
    try:
        return asyncio.run(supervisor.run())
    finally:
        for sock in sockets:
            sock.close()

"""A worker process of the runner: it imports the handler, serves, and stops
when the parent says so (SIGTERM) or is gone."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import socket
import sys
import tempfile
import traceback
from typing import Any, Set

from ..asyncio.listener import Listener
from ..asyncio.server import serve
from .common import (
    ERROR,
    EXIT_CONFIG,
    READY,
    WorkerConfig,
    addresses,
    configure_logging,
    lookup,
    run_loop,
)

logger = logging.getLogger("fastws.runner")

class _LoadError(Exception):
    """The handler cannot be loaded: the worker reports the message and exits."""


def _load(target: str) -> Any:
    """Import the handler in a worker.

    Raises:
        _LoadError: With a message naming the handler and what went wrong.
    """
    module_name, _, qualname = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (
            module_name == exc.name or module_name.startswith(exc.name + ".")
        ):
            raise _LoadError(f"cannot import handler {target!r}: {exc}") from None
        raise _LoadError(f"cannot import handler {target!r}:\n{traceback.format_exc()}") from None
    except Exception:
        raise _LoadError(f"cannot import handler {target!r}:\n{traceback.format_exc()}") from None
    try:
        handler = lookup(module, qualname)
    except AttributeError:
        raise _LoadError(
            f"cannot import handler {target!r}: module {module_name!r} has no {qualname!r}"
        ) from None
    if isinstance(handler, type):
        if not issubclass(handler, Listener):
            raise _LoadError(f"handler {target!r} is a class but not a fastws.Listener subclass")
    elif not callable(handler):
        raise _LoadError(
            f"handler {target!r} is a {type(handler).__name__}, neither a coroutine function"
            " nor a fastws.Listener subclass"
        )
    return handler


def _unreachable_listener() -> socket.socket:
    """A listening Unix socket whose path is already removed: no client can
    reach it. In the parent-accept mode it keeps the worker's server serving
    (a server that does not serve refuses handshakes) while the connections
    come from the parent."""
    directory = tempfile.mkdtemp(prefix="fastws-worker-")
    path = os.path.join(directory, "handoff")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
    except BaseException:
        sock.close()
        raise
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.rmdir(directory)
    return sock


def _ignore_stop_signals(loop: asyncio.AbstractEventLoop) -> None:
    """Ignore SIGINT and SIGTERM from now on: the worker is stopping already,
    and may get the signal twice (from the parent, and from a terminal or a
    service manager that signals the whole group); once the loop closed, a
    second one would kill it. The signals stay blocked while their handlers
    change (a pending one is discarded when ignored)."""
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    try:
        for signum in stop_signals:
            loop.remove_signal_handler(signum)
            signal.signal(signum, signal.SIG_IGN)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)


class _HideListening(logging.Filter):
    """Drops the server's "server listening on ..." line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("server listening on")


# --- a worker ---------------------------------------------------------------------------


def worker_main(index: int, config: WorkerConfig, channel: socket.socket) -> None:
    """What a spawned worker runs: serve until told to stop, exit with its status."""
    configure_logging(config.log_level)
    try:
        status = run_loop(_worker(index, config, channel), config.loop)
    except KeyboardInterrupt:  # SIGINT before the loop handled it
        status = 0
    sys.exit(status)


def _report(channel: socket.socket, message: str) -> None:
    """Tell the parent why this worker cannot start (or print it if that fails)."""
    try:
        channel.setblocking(True)
        channel.sendall(ERROR + message.encode("utf-8", "replace"))
    except OSError:
        print(f"fastws run: {message}", file=sys.stderr, flush=True)


async def _worker(index: int, config: WorkerConfig, channel: socket.socket) -> int:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def on_stop(*_: Any) -> None:
        if not stop.done():
            stop.set_result(None)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_stop)
    channel.setblocking(False)
    try:
        handler = _load(config.target)
    except _LoadError as exc:
        _report(channel, str(exc))
        return EXIT_CONFIG
    options = dict(config.serve_options)
    if isinstance(handler, type):  # a Listener subclass: one per connection
        options["listener"] = handler
        handler = None
    async with contextlib.AsyncExitStack() as stack:
        if config.pubsub is not None:
            from .. import pubsub as pubsub_module

            pubsub = pubsub_module.PubSub(config.pubsub)
            try:
                await pubsub.start()
            except Exception as exc:  # Redis away: worth starting again later
                logger.error("worker %d cannot start its PubSub: %s", index, exc)
                return 1
            stack.push_async_callback(pubsub.close)
            pubsub_module.set_current(pubsub)
            stack.callback(pubsub_module.set_current, None)
        if config.reuse_port:
            starter = serve(handler, config.host, config.port, reuse_port=True, **options)
        else:
            starter = serve(handler, sock=_unreachable_listener(), **options)
        server_logger = logging.getLogger("fastws.server")
        hide = _HideListening()
        if not config.reuse_port and options.get("logger") is None:
            # Its "server listening on" line would name the unreachable socket.
            server_logger.addFilter(hide)
        try:
            server = await starter
        except OSError as exc:
            _report(channel, f"cannot listen on {config.host}:{config.port}: {exc}")
            return EXIT_CONFIG
        finally:
            server_logger.removeFilter(hide)
        stack.push_async_callback(server.wait_closed)
        stack.callback(server.close)
        adopting: Set[asyncio.Task[Any]] = set()

        async def adopt(sock: socket.socket) -> None:
            try:
                await server.connect_accepted_socket(sock)
            except BaseException:
                sock.close()  # not the event loop's: nothing else would close it
                raise

        def adopted(task: asyncio.Task[Any]) -> None:
            adopting.discard(task)
            if not task.cancelled() and task.exception() is not None:
                logger.warning("cannot serve a connection from the parent: %s", task.exception())

        def on_channel() -> None:
            while True:
                try:
                    data, fds, _, _ = socket.recv_fds(channel, 1, 1)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    data, fds = b"", []
                for fd in fds:
                    sock = socket.socket(fileno=fd)
                    if stop.done():
                        sock.close()
                        continue
                    task = loop.create_task(adopt(sock))
                    adopting.add(task)
                    task.add_done_callback(adopted)
                if not data:  # the parent is gone: stop too
                    loop.remove_reader(channel.fileno())
                    on_stop()
                    return

        loop.add_reader(channel.fileno(), on_channel)
        if config.reuse_port:
            where = f"on {addresses(list(server.sockets))}"
        else:
            where = "connections accepted by the parent"
        logger.info("worker %d (pid %d) serving %s", index, os.getpid(), where)
        channel.send(READY)
        await stop
        _ignore_stop_signals(loop)
        logger.info("worker %d (pid %d) stopping", index, os.getpid())
        loop.remove_reader(channel.fileno())
        if adopting:
            await asyncio.wait(set(adopting))
    return 0

"""Command line: ``python -m fastws``.

::

    python -m fastws --version                 # version and active implementation
    python -m fastws serve [--host H] [--port P]   # an echo server, until Ctrl-C
    python -m fastws client ws://host:port/path    # lines from stdin out, messages to stdout
    python -m fastws run MODULE:HANDLER [--host H] [--port P] [--workers N] [--pubsub URL]

``serve`` prints ``listening on ws://HOST:PORT/`` on stdout once it accepts
connections (``--port 0`` picks a free port, printed there) and shuts down
cleanly on SIGINT or SIGTERM: open connections are closed with 1001.

``client`` sends each line read from standard input as a text message (without
its line ending) and prints every message received on standard output, text as
it is, binary as ``(binary, N bytes) HEX``. Status lines go to standard error.
At the end of standard input it sends a ping and waits for its pong, so that
the server has read every line (an echo server that answers as it reads has
answered them all), then closes with 1000, printing what still arrives until
the server answers the close frame. It exits when the server closes, too. The
exit status is 0 after a clean close, 1 on a failed connection or an abnormal
close.

``run`` serves ``HANDLER`` (an ``async def handler(websocket)`` or a
``fastws.Listener`` subclass) from worker processes sharing the port: see
:func:`fastws.runner.run`. It prints ``listening on ws://HOST:PORT/`` on
stdout once every worker serves, restarts workers that die, and stops them
all on SIGINT or SIGTERM (open connections are closed with 1001).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import signal
import sys
import threading
from typing import Optional, Sequence

import fastws
from fastws.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidHandshake, InvalidURI
from fastws.frames import CloseCode
from fastws.protocol import DEFAULT_MAX_SIZE

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
BINARY_SHOWN = 64  # bytes of a binary message shown in hex by the client
PONG_WAIT = 10.0  # seconds the client waits for the server to catch up at the end of input


def version_string() -> str:
    """``fastws 0.1.0 (implementation: cython, SIMD: avx2; connection fast path: cython;
    CPython 3.11.7)``."""
    impl = fastws.IMPLEMENTATION
    if impl == "cython":
        try:
            from fastws import _speedups

            impl += f", SIMD: {_speedups.simd_level()}"
        except (ImportError, AttributeError):  # pragma: no cover - cython implies it imports
            pass
    from fastws.asyncio import fastpath

    return (
        f"fastws {fastws.__version__} (implementation: {impl};"
        f" connection fast path: {fastpath.IMPLEMENTATION};"
        f" {platform.python_implementation()} {platform.python_version()})"
    )


def _on_stop_signals(loop: asyncio.AbstractEventLoop, callback) -> None:
    """Call ``callback(signum)`` on SIGINT or SIGTERM (where the loop supports it;
    elsewhere Ctrl-C is a KeyboardInterrupt, which asyncio.run turns into a
    cancellation that still shuts down cleanly)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, callback, signum)
        except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - Windows
            pass


# --- serve -------------------------------------------------------------------------


async def echo(websocket) -> None:
    """Send every message back as it came: text as text, binary as binary."""
    async for message in websocket:
        await websocket.send(message)


async def run_server(host: str, port: int, *, max_size: Optional[int] = None) -> int:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future = loop.create_future()

    def on_signal(signum: int) -> None:
        if not stop.done():
            stop.set_result(signum)

    _on_stop_signals(loop, on_signal)
    if max_size is None:  # not given: the library's default
        max_size = DEFAULT_MAX_SIZE
    try:
        server = await fastws.serve(echo, host, port, max_size=max_size)
    except OSError as exc:
        print(f"cannot listen on {host}:{port}: {exc}", file=sys.stderr, flush=True)
        return 1
    try:
        addresses = []
        for sock in server.sockets:
            name = sock.getsockname()
            shown = f"[{name[0]}]" if ":" in name[0] else name[0]
            addresses.append(f"ws://{shown}:{name[1]}/")
        print("listening on " + ", ".join(addresses), flush=True)
        signum = await stop
        print(f"received {signal.Signals(signum).name}, shutting down", file=sys.stderr, flush=True)
    finally:
        # Stop accepting, close open connections with 1001, let handlers finish.
        server.close()
        await server.wait_closed()
    return 0


# --- client ------------------------------------------------------------------------


def _start_stdin_reader(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Optional[str]]) -> None:
    """Read standard input in a daemon thread (works for a terminal, a pipe and a
    regular file alike) and hand each line to ``queue``; None marks the end.
    Reads the file descriptor with os.read, so that no lock of sys.stdin is held
    by this thread when the interpreter exits."""

    def put(item: Optional[str]) -> bool:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: the client is done
            return False
        return True

    def reader() -> None:
        try:
            fd = sys.stdin.fileno()
        except (AttributeError, ValueError, OSError):
            put(None)
            return
        buffer = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if not put(_decode_line(line)):
                    return
        if buffer:
            if not put(_decode_line(buffer)):
                return
        put(None)

    threading.Thread(target=reader, name="fastws-stdin", daemon=True).start()


def _decode_line(line: bytes) -> str:
    if line.endswith(b"\r"):
        line = line[:-1]
    return line.decode("utf-8", errors="replace")


def _show(message) -> str:
    if isinstance(message, str):
        return message
    shown = message[:BINARY_SHOWN].hex()
    if len(message) > BINARY_SHOWN:
        shown += "..."
    return f"(binary, {len(message)} bytes) {shown}"


def _write(text: str) -> None:
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # pragma: no cover - the reader of our output went away
        pass


async def _receive(websocket) -> bool:
    """Print messages until the connection closes; True if it closed cleanly."""
    try:
        while True:
            _write(_show(await websocket.recv()))
    except ConnectionClosedOK:
        return True
    except ConnectionClosed:
        return False


async def _send_lines(websocket, lines: asyncio.Queue[Optional[str]]) -> None:
    """Send lines until the end of standard input or of the connection."""
    while True:
        line = await lines.get()
        if line is None:
            return
        try:
            await websocket.send(line)
        except ConnectionClosed:
            return


async def _barrier(websocket, others: set) -> None:
    """Wait for a pong to a new ping, the end of one of ``others``, or PONG_WAIT."""
    try:
        pong = await websocket.ping()
    except ConnectionClosed:
        return
    try:
        await asyncio.wait({pong, *others}, timeout=PONG_WAIT, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not pong.done():
            pong.cancel()
        elif not pong.cancelled():
            pong.exception()  # retrieved: a closed connection is not an error here


def _describe_close(websocket) -> str:
    protocol = websocket.protocol
    rcvd, sent = protocol.close_rcvd, protocol.close_sent
    close = rcvd if rcvd is not None else sent
    if close is None:
        return "connection closed abnormally (1006, no close frame)"
    text = f"connection closed: {int(close.code)}"
    if close.reason:
        text += f" ({close.reason})"
    return text


async def run_client(uri: str, *, max_size: Optional[int] = None) -> int:
    loop = asyncio.get_running_loop()
    if max_size is None:  # not given: the library's default
        max_size = DEFAULT_MAX_SIZE
    try:
        websocket = await fastws.connect(uri, ping_interval=None, max_size=max_size)
    except (InvalidURI, InvalidHandshake, OSError, TimeoutError, ValueError) as exc:
        print(f"failed to connect to {uri}: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"connected to {uri}", file=sys.stderr, flush=True)

    stop: asyncio.Future = loop.create_future()

    def on_signal(signum: int) -> None:
        if not stop.done():
            stop.set_result(signum)

    _on_stop_signals(loop, on_signal)
    lines: asyncio.Queue = asyncio.Queue()
    _start_stdin_reader(loop, lines)
    receiver = loop.create_task(_receive(websocket))
    sender = loop.create_task(_send_lines(websocket, lines))
    try:
        await asyncio.wait({receiver, sender, stop}, return_when=asyncio.FIRST_COMPLETED)
        if not receiver.done():
            sender.cancel()
            if stop.done():
                await websocket.close(CloseCode.GOING_AWAY)
            else:
                # End of input: a ping round trip first, so that the server has
                # read every line (and answered, if it answers as it reads)
                # before the close frame; then print what still comes back
                # until the server answers the close frame.
                await _barrier(websocket, {receiver, stop})
                await websocket.close(CloseCode.NORMAL_CLOSURE if not stop.done() else CloseCode.GOING_AWAY)
        clean = await receiver
    finally:
        sender.cancel()
        stop.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    print(_describe_close(websocket), file=sys.stderr, flush=True)
    return 0 if clean else 1


# --- main --------------------------------------------------------------------------


class _VersionAction(argparse.Action):
    """``--version`` on one line (argparse's own action wraps it to the terminal)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_string())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fastws",
        description=(
            "fastws: a WebSocket (RFC 6455) echo server, an interactive client,"
            " and worker processes serving your handler."
        ),
    )
    parser.add_argument(
        "--version", action=_VersionAction,
        help="show the version and the active implementation, and exit",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run an echo server until Ctrl-C")
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default: {DEFAULT_HOST})")
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT,
        help=f"TCP port to listen on; 0 picks a free one (default: {DEFAULT_PORT})",
    )
    serve.add_argument("--max-size", type=int, default=None, help="largest message accepted, in bytes")

    client = commands.add_parser(
        "client", help="send lines from stdin as text messages, print the messages received"
    )
    client.add_argument("uri", help="ws:// or wss:// URI to connect to")
    client.add_argument("--max-size", type=int, default=None, help="largest message accepted, in bytes")

    run = commands.add_parser(
        "run", help="serve MODULE:HANDLER from worker processes sharing the port, until Ctrl-C"
    )
    run.add_argument(
        "handler", metavar="MODULE:HANDLER",
        help="an async handler(websocket) function or a fastws.Listener subclass, imported by each worker",
    )
    run.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default: {DEFAULT_HOST})")
    run.add_argument(
        "--port", type=int, default=DEFAULT_PORT,
        help=f"TCP port to listen on; 0 picks a free one (default: {DEFAULT_PORT})",
    )
    run.add_argument(
        "--workers", type=int, default=None, help="number of worker processes (default: one per CPU)"
    )
    run.add_argument(
        "--pubsub", metavar="URL", default=None,
        help="give every worker a fastws.PubSub on this URL (redis://host:port/db), see fastws.current_pubsub()",
    )
    run.add_argument("--max-size", type=int, default=None, help="largest message accepted, in bytes")
    run.add_argument(
        "--reuse-port", action=argparse.BooleanOptionalAction, default=None,
        help="each worker listens with SO_REUSEPORT (the default on Linux); --no-reuse-port:"
        " the parent accepts and hands connections to the workers in turn (the default elsewhere)",
    )
    run.add_argument(
        "--shutdown-timeout", type=float, default=30.0,
        help="seconds the workers get to exit after SIGTERM before they are killed (default: 30)",
    )
    run.add_argument(
        "--loop", default="auto", choices=["auto", "asyncio", "uvloop"],
        help="the workers' event loop (default: auto, uvloop when it is installed)",
    )
    run.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error", "critical"],
        help="logging level of the parent and the workers (default: info)",
    )
    return parser


def run_workers(args: argparse.Namespace) -> int:
    """``python -m fastws run``: :func:`fastws.runner.run` with the options given."""
    from fastws.runner import run

    options = {}
    if args.max_size is not None:
        options["max_size"] = args.max_size
    try:
        return run(
            args.handler, args.host, args.port,
            workers=args.workers, pubsub=args.pubsub, reuse_port=args.reuse_port,
            shutdown_timeout=args.shutdown_timeout, log_level=args.log_level, loop=args.loop,
            **options,
        )
    except (TypeError, ValueError, RuntimeError, ImportError) as exc:
        print(f"fastws run: {exc}", file=sys.stderr, flush=True)
        return 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "run":  # it sets up logging itself, in every process
        return run_workers(args)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    if args.command == "serve":
        coro = run_server(args.host, args.port, max_size=args.max_size)
    else:
        coro = run_client(args.uri, max_size=args.max_size)
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:  # pragma: no cover - only where signal handlers are unavailable
        return 130


if __name__ == "__main__":
    sys.exit(main())

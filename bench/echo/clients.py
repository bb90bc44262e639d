"""Echo clients, one per stack, each in the stack's own idiom.

    python -m bench.echo.clients STACK LOOP PORT [--duration S] [--warmup S] [--server-pid PID]

Connects to the echo server of the same stack on 127.0.0.1:PORT and measures,
with one message in flight at a time (send, wait for the echo, repeat):

1. warm-up: ``--warmup`` seconds of 32 B messages, then as long of 1 MiB ones;
2. round trips per second with 32 B binary messages, for ``--duration`` seconds;
3. throughput with 1 MiB binary messages, for ``--duration`` seconds: bytes
   echoed (one direction) per second.

The 1 MiB warm-up comes before the 32 B measure on purpose: it leaves every
process with glibc's mmap threshold raised (see the README's caveats), so that no
stack's small-message numbers depend on its allocation history.

Every echo is checked against the message sent (:func:`bench.echo.check_echo`):
a stack that drops, truncates or mangles a message fails instead of looking fast.
Prints one JSON object on stdout; exits 1 with the reason on stderr on failure.

With ``--server-pid``, each measure also records the CPU time (user + system,
from Linux's /proc) that the server process and this client process used during
it: per round trip, that is what an echo costs each side, a figure that other
load on the machine disturbs much less than the rates.

Stacks with a callback interface (fastws's Listener, picows, raw TCP) run the
ping-pong from their receive callback (:class:`Phase`); the others await
``send()`` and ``recv()`` in a loop (:func:`pingpong`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import importlib
import json
import os
import sys
import time
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, Tuple

from . import (
    ALL_STACKS,
    COMPRESSION,
    HOST,
    LARGE,
    LOOPS,
    MAX_SIZE,
    SMALL,
    EchoMismatch,
    check_echo,
    make_payloads,
    run,
)

perf_counter = time.perf_counter

#: Seconds a phase may overrun its duration before it counts as stalled.
STALL_TIMEOUT = 10.0

RunPhase = Callable[[Tuple[bytes, bytes], float], Awaitable[Tuple[int, float]]]


# --- the two drivers -------------------------------------------------------------------


async def pingpong(send, recv, payloads: Tuple[bytes, bytes], duration: float) -> Tuple[int, float]:
    """Await send(message) then recv() until ``duration`` has passed; returns the
    number of round trips and the time they took."""
    count = 0
    t0 = perf_counter()
    deadline = t0 + duration
    while True:
        expected = payloads[count & 1]
        await send(expected)
        got = await recv()
        error = check_echo(got, expected, count)
        if error is not None:
            raise EchoMismatch(error)
        count += 1
        now = perf_counter()
        if now >= deadline:
            return count, now - t0


class Phase:
    """The same ping-pong, driven from a receive callback: :meth:`echo` checks an
    echo and sends the next message until the deadline, then resolves
    :attr:`done` with (round trips, seconds)."""

    def __init__(self, send: Callable[[bytes], Any], payloads: Tuple[bytes, bytes], duration: float) -> None:
        self._send = send
        self.payloads = payloads
        self.size = len(payloads[0])
        self.duration = duration
        self.done: asyncio.Future = asyncio.get_running_loop().create_future()
        self.count = 0
        self.t0 = self.deadline = 0.0

    def start(self) -> asyncio.Future:
        self.t0 = perf_counter()
        self.deadline = self.t0 + self.duration
        try:
            self._send(self.payloads[0])
        except Exception as exc:  # noqa: BLE001
            self.fail(exc)
        return self.done

    def echo(self, got: Any) -> None:
        if self.done.done():
            return
        count = self.count
        error = check_echo(got, self.payloads[count & 1], count)
        if error is not None:
            self.fail(EchoMismatch(error))
            return
        count = self.count = count + 1
        now = perf_counter()
        if now >= self.deadline:
            self.done.set_result((count, now - self.t0))
            return
        try:
            self._send(self.payloads[count & 1])
        except Exception as exc:  # noqa: BLE001
            self.fail(exc)

    def fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


async def _close_quietly(awaitable: Awaitable[Any]) -> None:
    try:
        await asyncio.wait_for(awaitable, 2)
    except Exception:  # noqa: BLE001 - the numbers are in; the server is killed anyway
        pass


# --- one client per stack ----------------------------------------------------------------
# Each is an async context manager: connect, yield run_phase(payloads, duration), close.


@contextlib.asynccontextmanager
async def client_fastws(url: str) -> AsyncIterator[RunPhase]:
    import fastws

    ws = await fastws.connect(url, ping_interval=None, max_size=MAX_SIZE, compression=COMPRESSION)
    try:
        yield functools.partial(pingpong, ws.send, ws.recv)
    finally:
        await _close_quietly(ws.close())


@contextlib.asynccontextmanager
async def client_fastws_listener(url: str) -> AsyncIterator[RunPhase]:
    import fastws

    class EchoClient(fastws.Listener):
        phase: Any = None

        def on_message(self, connection, message):
            self.phase.echo(message)

        def on_close(self, connection, code, reason):
            if self.phase is not None:
                self.phase.fail(ConnectionError(f"connection closed: {code} {reason}"))

    ws = await fastws.connect_listener(
        EchoClient, url, ping_interval=None, max_size=MAX_SIZE, compression=COMPRESSION
    )
    listener = ws.listener

    async def run_phase(payloads, duration):
        phase = listener.phase = Phase(ws.send_nowait, payloads, duration)
        return await phase.start()

    try:
        yield run_phase
    finally:
        listener.phase = None
        await _close_quietly(ws.close())


@contextlib.asynccontextmanager
async def client_websockets(url: str) -> AsyncIterator[RunPhase]:
    from websockets.asyncio.client import connect

    ws = await connect(url, compression=COMPRESSION, max_size=MAX_SIZE, ping_interval=None)
    try:
        yield functools.partial(pingpong, ws.send, ws.recv)
    finally:
        await _close_quietly(ws.close())


@contextlib.asynccontextmanager
async def client_aiohttp(url: str) -> AsyncIterator[RunPhase]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(
            url, compress=15 if COMPRESSION else 0, max_msg_size=MAX_SIZE, autoping=True, heartbeat=None
        )
        try:
            # receive_bytes() fails on anything but a binary message.
            yield functools.partial(pingpong, ws.send_bytes, ws.receive_bytes)
        finally:
            await _close_quietly(ws.close())


def _picows_client(use_aiofastnet):
    @contextlib.asynccontextmanager
    async def client_picows(url: str) -> AsyncIterator[RunPhase]:
        from picows import WSListener, WSMsgType, ws_connect

        binary = WSMsgType.BINARY

        class EchoClient(WSListener):
            phase: Any = None

            def on_ws_frame(self, transport, frame):
                if frame.msg_type == binary and frame.fin:
                    # Valid until the callback returns: checked (and dropped) before.
                    self.phase.echo(frame.get_payload_as_memoryview())
                elif self.phase is not None:
                    self.phase.fail(ConnectionError(f"unexpected frame: {frame}"))

            def on_ws_disconnected(self, transport):
                if self.phase is not None:
                    self.phase.fail(ConnectionError("disconnected"))

        transport, created = await ws_connect(
            EchoClient,
            url,
            max_frame_size=MAX_SIZE,
            enable_auto_ping=False,
            use_aiofastnet=use_aiofastnet,
        )
        listener: Any = created  # the EchoClient made above (ws_connect is typed for any WSListener)
        send = functools.partial(transport.send, binary)

        async def run_phase(payloads, duration):
            phase = listener.phase = Phase(send, payloads, duration)
            return await phase.start()

        try:
            yield run_phase
        finally:
            listener.phase = None
            transport.send_close()
            transport.disconnect()
            await _close_quietly(transport.wait_disconnected())

    return client_picows


@contextlib.asynccontextmanager
async def client_raw_tcp(url: str) -> AsyncIterator[RunPhase]:
    """Plain TCP: send the bytes, wait until as many came back (gathered, in one
    copy, into a buffer allocated once per phase)."""
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    loop = asyncio.get_running_loop()

    class EchoClient(asyncio.Protocol):
        phase: Any = None
        transport: Any = None
        view: Any = None
        pos = 0

        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            phase = self.phase
            pos = self.pos
            if pos == 0 and len(data) == phase.size:
                phase.echo(data)
                return
            end = pos + len(data)
            if end > phase.size:
                phase.fail(EchoMismatch(f"{end} bytes came back for a {phase.size}-byte message"))
                return
            self.view[pos:end] = data
            if end == phase.size:
                self.pos = 0
                phase.echo(self.view)
            else:
                self.pos = end

        def connection_lost(self, exc):
            if self.phase is not None:
                self.phase.fail(ConnectionError(f"connection lost: {exc}"))

    transport, protocol = await loop.create_connection(EchoClient, host, int(port))

    async def run_phase(payloads, duration):
        phase = Phase(transport.write, payloads, duration)
        protocol.view = memoryview(bytearray(phase.size))
        protocol.pos = 0
        protocol.phase = phase
        return await phase.start()

    try:
        yield run_phase
    finally:
        protocol.phase = None
        transport.close()


CLIENTS: Dict[str, Callable[[str], Any]] = {
    "fastws": client_fastws,
    "fastws-listener": client_fastws_listener,
    "websockets": client_websockets,
    "aiohttp": client_aiohttp,
    "picows": _picows_client(None),  # picows's default: aiofastnet when installed
    "picows-loop": _picows_client(False),
    "raw-tcp": client_raw_tcp,
}
assert set(CLIENTS) == set(ALL_STACKS)

PRELOAD = {
    "fastws": ("fastws.asyncio",),
    "fastws-listener": ("fastws.asyncio",),
    "websockets": ("websockets.asyncio.client",),
    "aiohttp": ("aiohttp",),
    "picows": ("picows",),
    "picows-loop": ("picows",),
}


# --- measuring ---------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) used so far by process ``pid``, all its threads,
    from Linux's /proc: nanoseconds from ``schedstat`` where the kernel keeps
    them, else clock ticks from ``stat``. None where /proc cannot tell."""
    task_dir = f"/proc/{pid}/task"
    try:
        total = 0
        for tid in os.listdir(task_dir):
            with open(f"{task_dir}/{tid}/schedstat", "rb") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


async def measure(
    stack: str, port: int, duration: float, warmup: float, server_pid: int | None = None
) -> Dict[str, Any]:
    small = make_payloads(SMALL)
    large = make_payloads(LARGE)
    url = f"ws://{HOST}:{port}/"
    me = os.getpid()
    cpu: Dict[str, Any] = {}

    async def timed(run_phase: RunPhase, payloads, seconds: float, what: str):
        server0 = cpu_seconds(server_pid) if server_pid else None
        client0 = cpu_seconds(me)
        try:
            result = await asyncio.wait_for(run_phase(payloads, seconds), seconds + STALL_TIMEOUT)
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"{what}: no progress for {STALL_TIMEOUT:.0f} s past the phase's {seconds} s"
            ) from None
        server1 = cpu_seconds(server_pid) if server_pid else None
        client1 = cpu_seconds(me)
        cpu[what] = {
            "server_cpu_s": None if server0 is None or server1 is None else server1 - server0,
            "client_cpu_s": None if client0 is None or client1 is None else client1 - client0,
        }
        return result

    for module in PRELOAD.get(stack, ()):
        importlib.import_module(module)  # so that connect_s is the connection, not the import
    t_connect = perf_counter()
    async with CLIENTS[stack](url) as run_phase:
        connect_s = perf_counter() - t_connect
        if warmup > 0:
            await timed(run_phase, small, warmup, "warm-up, 32 B")
            await timed(run_phase, large, warmup, "warm-up, 1 MiB")
        gc.collect()
        n_small, s_small = await timed(run_phase, small, duration, "32 B round trips")
        gc.collect()
        n_large, s_large = await timed(run_phase, large, duration, "1 MiB throughput")
    return {
        "stack": stack,
        "connect_s": connect_s,
        "small": {
            "size": SMALL,
            "round_trips": n_small,
            "seconds": s_small,
            "rate": n_small / s_small,
            **cpu["32 B round trips"],
        },
        "large": {
            "size": LARGE,
            "messages": n_large,
            "seconds": s_large,
            "bytes_per_s": n_large * LARGE / s_large,
            "mb_per_s": n_large * LARGE / s_large / 1e6,
            **cpu["1 MiB throughput"],
        },
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.echo.clients", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", choices=ALL_STACKS)
    parser.add_argument("loop", choices=LOOPS)
    parser.add_argument("port", type=int)
    parser.add_argument("--duration", type=float, default=2.0, metavar="S", help="seconds per measure (default: 2)")
    parser.add_argument(
        "--warmup", type=float, default=0.3, metavar="S", help="seconds of warm-up per size (default: 0.3)"
    )
    parser.add_argument(
        "--server-pid",
        type=int,
        metavar="PID",
        help="the server's process id: report its CPU time (and this client's) per measure",
    )
    args = parser.parse_args(argv)
    try:
        result = run(measure(args.stack, args.port, args.duration, args.warmup, args.server_pid), args.loop)
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    result["loop"] = args.loop
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

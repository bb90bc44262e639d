"""The compression group's client: one stack's own client against its server.

    python -m bench.compression.client STACK LOOP PORT [--duration S] [--warmup S] [--server-pid PID]

Run with ``FASTWS_BENCH_COMPRESSION=deflate`` in the environment (the group
sets it): every client of :mod:`bench.echo.clients` then offers
permessage-deflate. Measures, one message in flight (send, wait for the echo,
check it, repeat), with the chat-like JSON of :mod:`bench.compression.payloads`
sent as binary messages:

1. warm-up: ``--warmup`` seconds of 32 B messages, then as long of 1 MiB ones;
2. round trips per second with 32 B messages, for ``--duration`` seconds;
3. throughput with 1 MiB messages, for ``--duration`` seconds, and the bytes
   the connection carried meanwhile, read from the kernel (``TCP_INFO``'s
   ``tcpi_bytes_received`` and ``tcpi_bytes_acked`` of the client's socket):
   the wire size of the server's and the client's compressed messages, frame
   headers included.

With ``--server-pid``, the CPU time (user + system) of the server and of this
client during each measure. Prints one JSON object; exits 1 with the reason on
stderr on failure.
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
import socket
import struct
import sys
from typing import Any, AsyncIterator, Callable, Dict, Optional, Tuple

from bench.echo import COMPRESSION, HOST, LOOPS, MAX_SIZE, run
from bench.echo.clients import CLIENTS, PRELOAD, STALL_TIMEOUT, cpu_seconds, pingpong

from .payloads import LARGE, SMALL, payloads

#: Servers without a client of their own in bench.echo.clients, and the client
#: that drives them.
CLIENT_OF = {"socketify": "fastws"}


@contextlib.asynccontextmanager
async def client_picows_websockets(url: str) -> AsyncIterator[Any]:
    from picows.websockets.asyncio.client import connect

    ws = await connect(url, compression=COMPRESSION, max_size=MAX_SIZE, ping_interval=None)
    try:
        yield functools.partial(pingpong, ws.send, ws.recv)
    finally:
        try:
            await asyncio.wait_for(ws.close(), 2)
        except Exception:  # noqa: BLE001 - the numbers are in
            pass


#: Every client, by server stack.
ALL_CLIENTS: Dict[str, Callable[[str], Any]] = {**CLIENTS, "picows-websockets": client_picows_websockets}

# struct tcp_info (linux/tcp.h): tcpi_bytes_acked and tcpi_bytes_received are
# the u64 at bytes 120 and 128 (Linux 4.1 and later).
_TCP_INFO_BYTES = struct.Struct("=QQ")
_TCP_INFO_OFFSET = 120


def _socket_to(port: int) -> Optional[socket.socket]:
    """This process's TCP socket connected to (HOST, port), found among its
    file descriptors (whatever stack opened it); a duplicate, or None."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                continue
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            if sock.family == socket.AF_INET and sock.type == socket.SOCK_STREAM and sock.getpeername() == (
                HOST,
                port,
            ):
                return sock
        except OSError:
            pass
        sock.close()
    return None


def tcp_bytes(sock: Optional[socket.socket]) -> Optional[Tuple[int, int]]:
    """(bytes sent and acknowledged, bytes received) on ``sock`` so far, from
    the kernel; None where it cannot tell."""
    if sock is None or not hasattr(socket, "TCP_INFO"):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    except OSError:
        return None
    if len(info) < _TCP_INFO_OFFSET + _TCP_INFO_BYTES.size:
        return None
    acked, received = _TCP_INFO_BYTES.unpack_from(info, _TCP_INFO_OFFSET)
    return acked, received


async def measure(stack: str, port: int, duration: float, warmup: float, server_pid: Optional[int]) -> Dict[str, Any]:
    client = CLIENT_OF.get(stack, stack)
    small, large = payloads(SMALL), payloads(LARGE)
    url = f"ws://{HOST}:{port}/"
    me = os.getpid()
    for module in PRELOAD.get(client, ()):
        importlib.import_module(module)
    async with ALL_CLIENTS[client](url) as run_phase:
        sock = _socket_to(port)

        async def timed(pair: Tuple[bytes, bytes], seconds: float, what: str) -> Dict[str, Any]:
            server0 = cpu_seconds(server_pid) if server_pid else None
            client0 = cpu_seconds(me)
            wire0 = tcp_bytes(sock)
            try:
                count, elapsed = await asyncio.wait_for(run_phase(pair, seconds), seconds + STALL_TIMEOUT)
            except asyncio.TimeoutError:
                raise TimeoutError(
                    f"{what}: no progress for {STALL_TIMEOUT:.0f} s past the phase's {seconds} s"
                ) from None
            server1 = cpu_seconds(server_pid) if server_pid else None
            client1 = cpu_seconds(me)
            wire1 = tcp_bytes(sock)
            result: Dict[str, Any] = {
                "size": len(pair[0]),
                "messages": count,
                "seconds": elapsed,
                "server_cpu_s": None if server0 is None or server1 is None else server1 - server0,
                "client_cpu_s": None if client0 is None or client1 is None else client1 - client0,
            }
            if wire0 is not None and wire1 is not None:
                result["wire_sent"] = wire1[0] - wire0[0]
                result["wire_received"] = wire1[1] - wire0[1]
            return result

        try:
            if warmup > 0:
                await timed(small, warmup, "warm-up, 32 B")
                await timed(large, warmup, "warm-up, 1 MiB")
            gc.collect()
            small_result = await timed(small, duration, "32 B round trips")
            gc.collect()
            large_result = await timed(large, duration, "1 MiB throughput")
        finally:
            if sock is not None:
                sock.close()
    small_result["rate"] = small_result["messages"] / small_result["seconds"]
    large_result["mb_per_s"] = large_result["messages"] * LARGE / large_result["seconds"] / 1e6
    return {"stack": stack, "client": client, "small": small_result, "large": large_result}


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compression.client", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack")
    parser.add_argument("loop", choices=LOOPS)
    parser.add_argument("port", type=int)
    parser.add_argument("--duration", type=float, default=2.0, metavar="S")
    parser.add_argument("--warmup", type=float, default=0.3, metavar="S")
    parser.add_argument("--server-pid", type=int, metavar="PID")
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

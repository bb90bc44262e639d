"""The floor of a fan-out: one ``send()`` per subscriber, without WebSocket.

    python -m bench.pubsub.sendcost [--connections 1000] [--rounds 40]

Opens N loopback TCP connections to a child process that reads them all (an
asyncio protocol on uvloop, like the benchmark's subscribers), then writes one
66-byte frame (a 64 B text message's WebSocket frame) to each connection in a
plain Python loop of ``socket.send()``, ``--rounds`` times: back to back, and
then 20 times a second (the readers idle between fan-outs). Prints the median
time per ``send()`` and per fan-out of N: what the kernel alone costs a server
that writes a message to N subscribers, before any WebSocket or event loop code.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import sys
import time
from typing import List, Optional, Sequence

FRAME = b"\x81\x40" + b"x" * 64  # a 64 B text message, unmasked (server to client)


def _readers(port: int, count: int) -> None:
    """In the child: connect ``count`` times and read everything, until killed."""

    async def main() -> None:
        loop = asyncio.get_running_loop()

        class Reader(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                pass

        for _ in range(count):
            await loop.create_connection(Reader, "127.0.0.1", port)
        await asyncio.sleep(3600)

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


def measure(connections: int, rounds: int) -> List[str]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(connections)
    port = listener.getsockname()[1]
    pid = os.fork()
    if pid == 0:
        listener.close()
        try:
            _readers(port, connections)
        finally:
            os._exit(0)
    try:
        conns = [listener.accept()[0] for _ in range(connections)]
        for c in conns:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        out = []
        for pause, what in ((0.0, "back to back"), (0.05, "20 fan-outs/s, readers idle between")):
            per_send = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                for c in conns:
                    c.send(FRAME)
                per_send.append((time.perf_counter() - t0) / connections)
                if pause:
                    time.sleep(pause)
            us = statistics.median(per_send) * 1e6
            out.append(f"{what}: {us:.2f} us per send(), {us * connections / 1000:.1f} ms per fan-out of {connections}")
        return out
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        listener.close()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pubsub.sendcost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000, metavar="N")
    parser.add_argument("--rounds", type=int, default=40, metavar="R")
    args = parser.parse_args(argv)
    for line in measure(args.connections, args.rounds):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

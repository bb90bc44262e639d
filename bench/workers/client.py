"""One client of the scaling benchmark: one connection, 32 B round trips.

    python -m bench.workers.client CLIENT PORT [--connections C] [--loop uvloop]

Opens ``--connections`` connections (1) to 127.0.0.1:PORT with bench.echo's
CLIENT (``fastws-listener`` or ``raw-tcp``), prints ``CONNECTED`` and their
local ports, then obeys its standard input, one command a line:

- ``RECONNECT``: closes the connections and opens others (the runner asks for
  it when the workers hold unequal shares), printing ``CONNECTED`` again;
- ``GO DURATION WARMUP``: warms up (``WARMUP`` s of 32 B round trips, then as
  long of 1 MiB ones, as bench.echo does), prints ``START``, runs 32 B round
  trips for ``DURATION`` s (one message in flight per connection, every echo
  checked), prints its result as JSON and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import sys
import time
from typing import Any, List, Optional, Sequence

from bench.echo import HOST, LARGE, LOOPS, SMALL, make_payloads, run
from bench.echo.clients import CLIENTS, cpu_seconds


async def main_async(client: str, port: int, connections: int) -> dict:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    small, large = make_payloads(SMALL), make_payloads(LARGE)
    url = f"ws://{HOST}:{port}/"
    while True:
        async with contextlib.AsyncExitStack() as stack:
            phases = [await stack.enter_async_context(CLIENTS[client](url)) for _ in range(connections)]

            async def run_phase(payloads: Any, seconds: float, phases: List[Any] = phases) -> Any:
                """Every connection's ping-pong at once: (round trips, seconds)."""
                done = await asyncio.gather(*(phase(payloads, seconds) for phase in phases))
                return sum(n for n, _ in done), max(t for _, t in done)

            print("CONNECTED " + " ".join(map(str, _local_ports(port))), flush=True)
            command = (await reader.readline()).decode().split()
            if not command:
                raise RuntimeError("standard input closed before GO")
            if command[0] == "RECONNECT":
                continue
            if command[0] != "GO":
                raise RuntimeError(f"unknown command {command!r}")
            duration, warmup = float(command[1]), float(command[2])
            if warmup > 0:
                await run_phase(small, warmup)
                await run_phase(large, warmup)
            gc.collect()
            print("START", flush=True)
            cpu0, t0 = cpu_seconds(os.getpid()), time.perf_counter()
            count, seconds = await run_phase(small, duration)
            cpu1 = cpu_seconds(os.getpid())
            return {
                "round_trips": count,
                "seconds": seconds,
                "rate": count / seconds,
                "started": t0,
                "client_cpu_s": None if cpu0 is None or cpu1 is None else cpu1 - cpu0,
            }


def _local_ports(server_port: int) -> List[int]:
    """The local ports of this process's connections to ``server_port`` (from /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = []
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[9] in inodes and int(fields[2].rsplit(":", 1)[1], 16) == server_port:
                ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.workers.client", description=__doc__.split("\n\n")[0])
    parser.add_argument("client", choices=("fastws-listener", "raw-tcp"))
    parser.add_argument("port", type=int)
    parser.add_argument("--connections", type=int, default=1, metavar="C", help="connections (default: 1)")
    parser.add_argument("--loop", choices=LOOPS, default="uvloop")
    args = parser.parse_args(argv)
    try:
        result: Any = run(main_async(args.client, args.port, args.connections), args.loop)
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)

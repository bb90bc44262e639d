"""One client for every server, measured in turns.

    python -m bench.asgi.client CLIENT LOOP NAME=PORT:PID [NAME=PORT:PID ...]
        [--runs N] [--duration S] [--warmup S] [--connections N]

Connects to every echo server given (``ws://127.0.0.1:PORT/``) with the same
client of :mod:`bench.echo.clients` (``CLIENT``: fastws-listener, picows...) on
one event loop (``LOOP``), warms each connection up (``--warmup`` seconds of 32 B
messages, then as long of 1 MiB ones), then takes ``--runs`` turns: in each, every
server in turn for ``--duration`` seconds of 32 B round trips, then every server
for as long with 1 MiB messages, the order rotated by one server from one turn to
the next. A disturbance of the machine then hits every server alike instead of
the few that happened to run at the time.

Each measure is :mod:`bench.echo.clients`' own (its run_phase: every echo
checked), with the CPU time the server process (its PID) and this process used
during it. Prints one JSON object: for each server, a list of turns, each with
``small`` and ``large`` measures in bench.echo's client format; and the servers
that failed, with the reason (a failed server is left out of the later turns).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import json
import os
import sys
import time
from typing import Any, Dict, List, Tuple

from bench.echo import HOST, LARGE, LOOPS, SMALL, make_payloads, run
from bench.echo.clients import CLIENTS, PRELOAD, STALL_TIMEOUT, RunPhase, cpu_seconds


async def _measure(
    run_phases: List[RunPhase], payloads: Tuple[bytes, bytes], seconds: float, server_pid: int
) -> Dict:
    """One measure of ``seconds`` on every connection to a server at once:
    round trips (summed), time and the CPU time of both ends."""
    me = os.getpid()
    server0, client0 = cpu_seconds(server_pid), cpu_seconds(me)
    try:
        done = await asyncio.wait_for(
            asyncio.gather(*(run_phase(payloads, seconds) for run_phase in run_phases)), seconds + STALL_TIMEOUT
        )
    except asyncio.TimeoutError:
        raise TimeoutError(f"no progress for {STALL_TIMEOUT:.0f} s past a {seconds} s measure") from None
    count = sum(c for c, _ in done)
    elapsed = max(e for _, e in done)
    server1, client1 = cpu_seconds(server_pid), cpu_seconds(me)
    size = len(payloads[0])
    result: Dict[str, Any] = {
        "size": size,
        "seconds": elapsed,
        "server_cpu_s": None if server0 is None or server1 is None else server1 - server0,
        "client_cpu_s": None if client0 is None or client1 is None else client1 - client0,
    }
    if size == SMALL:
        result.update(round_trips=count, rate=count / elapsed)
    else:
        bytes_per_s = count * size / elapsed
        result.update(messages=count, bytes_per_s=bytes_per_s, mb_per_s=bytes_per_s / 1e6)
    return result


async def measure_all(
    client: str,
    servers: Dict[str, Tuple[int, int]],
    runs: int,
    duration: float,
    warmup: float,
    connections: int = 1,
) -> Dict[str, Any]:
    small, large = make_payloads(SMALL), make_payloads(LARGE)
    for module in PRELOAD.get(client, ()):
        importlib.import_module(module)
    turns: Dict[str, List[Dict[str, Any]]] = {name: [] for name in servers}
    errors: Dict[str, str] = {}
    phases: Dict[str, List[RunPhase]] = {}
    async with contextlib.AsyncExitStack() as stack:
        for name, (port, pid) in servers.items():
            try:
                phases[name] = [
                    await stack.enter_async_context(CLIENTS[client](f"ws://{HOST}:{port}/"))
                    for _ in range(connections)
                ]
                if warmup > 0:
                    await _measure(phases[name], small, warmup, pid)
                    await _measure(phases[name], large, warmup, pid)
            except Exception as exc:  # noqa: BLE001 - reported with the results
                errors[name] = f"{type(exc).__name__}: {exc}"
                phases.pop(name, None)
        for turn in range(runs):
            names = list(phases)
            shift = turn % len(names) if names else 0
            order = names[shift:] + names[:shift]
            measures: Dict[str, Dict[str, Any]] = {}
            for size, payloads in (("small", small), ("large", large)):
                gc.collect()
                for name in order:
                    if name in errors:
                        continue
                    try:
                        measure = await _measure(phases[name], payloads, duration, servers[name][1])
                    except Exception as exc:  # noqa: BLE001
                        errors[name] = f"turn {turn + 1}, {size}: {type(exc).__name__}: {exc}"
                        continue
                    measures.setdefault(name, {})[size] = measure
            for name, both in measures.items():
                if name not in errors:
                    turns[name].append(both)
    return {"turns": turns, "errors": errors}


def _server(text: str) -> Tuple[str, Tuple[int, int]]:
    name, _, rest = text.partition("=")
    port, _, pid = rest.partition(":")
    if not name or not port.isdigit() or not pid.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=PORT:PID, got {text!r}")
    return name, (int(port), int(pid))


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.asgi.client", description=__doc__.split("\n\n")[0])
    parser.add_argument("client", choices=[name for name in CLIENTS if name != "raw-tcp"])
    parser.add_argument("loop", choices=LOOPS)
    parser.add_argument("servers", nargs="+", type=_server, metavar="NAME=PORT:PID")
    parser.add_argument("--runs", type=int, default=6, metavar="N", help="turns (default: 6)")
    parser.add_argument("--duration", type=float, default=0.5, metavar="S", help="seconds per measure (default: 0.5)")
    parser.add_argument(
        "--warmup", type=float, default=0.3, metavar="S", help="warm-up seconds per size (default: 0.3)"
    )
    parser.add_argument(
        "--connections", type=int, default=1, metavar="N", help="connections per server, echoing at once (default: 1)"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        result = run(
            measure_all(args.client, dict(args.servers), args.runs, args.duration, args.warmup, args.connections),
            args.loop,
        )
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    result.update(
        client=args.client, loop=args.loop, connections=args.connections, seconds=time.monotonic() - started
    )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Echo round trips of the synchronous client, against its peers, in one run.

    python -m bench.sync                  # 7 turns of 2 s per client
    python -m bench.sync --quick          # smoke run: 2 short turns
    python -m bench.sync --size 32 --runs 9 --duration 3 --json sync.json

One fastws echo server (``python -m bench.echo.servers fastws asyncio 0``: no
compression, no keepalive) runs in its own process; this process then measures,
in turns, each client over one connection: send a message of ``--size`` bytes,
wait for its echo, again, for ``--duration`` seconds. Every client is measured
in each turn, in an order rotated from turn to turn, so that whatever else the
machine does hits them alike. The table gives the median round trips per second
over the turns and the interquartile range; the goal lines give the ratios of
the medians (the issue asks fastws.sync >= 1.0x the asyncio client and >= 1.5x
websockets.sync). The exit code is 1 if a client failed.

Clients:

- ``fastws.sync``: :func:`fastws.sync.client.connect`, ``send()`` then ``recv()``;
- ``fastws.asyncio``: :func:`fastws.connect`, ``await send()`` then ``await recv()``;
- ``websockets.sync``: :func:`websockets.sync.client.connect`, the same loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

CLIENTS = ("fastws.sync", "fastws.asyncio", "websockets.sync")
#: (numerator, denominator, the ratio asked for)
GOALS = (("fastws.sync", "fastws.asyncio", 1.0), ("fastws.sync", "websockets.sync", 1.5))


def run_fastws_sync(uri: str, payload: bytes, duration: float, warmup: float) -> float:
    from fastws.sync.client import connect

    with connect(uri, compression=None, ping_interval=None, max_size=None) as ws:
        return _loop(ws.send, ws.recv, payload, duration, warmup)


def run_websockets_sync(uri: str, payload: bytes, duration: float, warmup: float) -> float:
    from websockets.sync.client import connect

    with connect(uri, compression=None, ping_interval=None, max_size=None, proxy=None) as ws:
        return _loop(ws.send, ws.recv, payload, duration, warmup)


def run_fastws_asyncio(uri: str, payload: bytes, duration: float, warmup: float) -> float:
    import fastws

    async def main() -> float:
        async with fastws.connect(uri, compression=None, ping_interval=None, max_size=None) as ws:
            send, recv = ws.send, ws.recv
            for _phase, seconds in (("warmup", warmup), ("measure", duration)):
                count = 0
                start = time.perf_counter()
                end = start + seconds
                while True:
                    for _ in range(100):
                        await send(payload)
                        await recv()
                    count += 100
                    now = time.perf_counter()
                    if now >= end:
                        break
            return count / (now - start)

    return asyncio.run(main())


def _loop(send: Callable, recv: Callable, payload: bytes, duration: float, warmup: float) -> float:
    rate = 0.0
    for seconds in (warmup, duration):
        count = 0
        start = time.perf_counter()
        end = start + seconds
        while True:
            for _ in range(100):
                send(payload)
                recv()
            count += 100
            now = time.perf_counter()
            if now >= end:
                break
        rate = count / (now - start)
    return rate


RUNNERS: Dict[str, Callable[[str, bytes, float, float], float]] = {
    "fastws.sync": run_fastws_sync,
    "fastws.asyncio": run_fastws_asyncio,
    "websockets.sync": run_websockets_sync,
}


def start_server() -> tuple[subprocess.Popen, int]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.echo.servers", "fastws", "asyncio", "0"],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.startswith("READY "):
        server.kill()
        raise RuntimeError(f"the echo server did not start: {line!r}")
    return server, int(line.split()[1])


def stop_server(server: subprocess.Popen) -> None:
    assert server.stdin is not None
    server.stdin.close()  # the server stops at the end of its standard input
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:  # pragma: no cover
        server.kill()
        server.wait()


def quartiles(values: List[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sync", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated, from " + ", ".join(CLIENTS))
    parser.add_argument("--size", type=int, default=32, help="message size in bytes (default 32)")
    parser.add_argument("--runs", type=int, default=7, help="turns (default 7)")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per measure (default 2)")
    parser.add_argument("--warmup", type=float, default=0.3, help="seconds before each measure (default 0.3)")
    parser.add_argument("--quick", action="store_true", help="2 turns of 0.2 s")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.duration, args.warmup = 2, 0.2, 0.05
    clients = [c for c in args.clients.split(",") if c]
    unknown = [c for c in clients if c not in RUNNERS]
    if unknown:
        parser.error(f"unknown clients: {', '.join(unknown)}")
    import fastws

    payload = os.urandom(args.size)
    rates: Dict[str, List[float]] = {c: [] for c in clients}
    errors: Dict[str, str] = {}
    server, port = start_server()
    uri = f"ws://127.0.0.1:{port}/"
    try:
        for turn in range(args.runs):
            shift = turn % len(clients)
            for client in clients[shift:] + clients[:shift]:
                if client in errors:
                    continue
                try:
                    rates[client].append(RUNNERS[client](uri, payload, args.duration, args.warmup))
                except Exception as exc:  # noqa: BLE001 - reported in the table
                    errors[client] = f"{type(exc).__name__}: {exc}"
    finally:
        stop_server(server)

    print(
        f"sync echo client, {args.size} B binary round trips, one connection, fastws.serve server;"
        f" fastws {fastws.IMPLEMENTATION}; {args.runs} turns x {args.duration} s;"
        f" load {os.getloadavg()[0]:.2f}"
    )
    print(f"{'client':<18}{'median rt/s':>14}{'IQR':>22}")
    summary = {}
    for client in clients:
        if client in errors:
            print(f"{client:<18}{'failed: ' + errors[client]}")
            continue
        values = rates[client]
        median = statistics.median(values)
        low, high = quartiles(values)
        summary[client] = {"median": median, "q1": low, "q3": high, "rates": values}
        print(f"{client:<18}{median:>14,.0f}{f'{low:,.0f} - {high:,.0f}':>22}")
    goals = []
    for top, bottom, wanted in GOALS:
        if top in summary and bottom in summary:
            ratio = summary[top]["median"] / summary[bottom]["median"]
            verdict = "met" if ratio >= wanted else "NOT met"
            goals.append({"client": top, "peer": bottom, "ratio": ratio, "goal": wanted, "met": ratio >= wanted})
            print(f"goal {top} / {bottom}: {ratio:.2f}x (wanted >= {wanted}x): {verdict}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"size": args.size, "runs": args.runs, "duration": args.duration,
                 "implementation": fastws.IMPLEMENTATION, "summary": summary, "goals": goals,
                 "errors": errors},
                f, indent=2,
            )  # fmt: skip
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

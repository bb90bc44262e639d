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
over the turns and the interquartile range; the last lines give the ratios of
the medians: fastws.sync against the asyncio client and against
websockets.sync. The exit code is 1 if a client failed.

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
from typing import Any, Callable, Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

#: (round trips per second, the client process's CPU microseconds per round trip)
Measure = Tuple[float, float]

CLIENTS = ("fastws.sync", "fastws.asyncio", "websockets.sync", "raw-socket")
#: The ratios reported, (numerator, denominator): in the table's last lines and the JSON's "goals".
GOALS = (("fastws.sync", "fastws.asyncio"), ("fastws.sync", "websockets.sync"))


def run_fastws_sync(uri: str, payload: bytes, duration: float, warmup: float) -> Measure:
    from fastws.sync.client import connect

    with connect(uri, compression=None, ping_interval=None, max_size=None, proxy=None) as ws:
        return _loop(ws.send, ws.recv, payload, duration, warmup)


def run_websockets_sync(uri: str, payload: bytes, duration: float, warmup: float) -> Measure:
    from websockets.sync.client import connect

    with connect(uri, compression=None, ping_interval=None, max_size=None, proxy=None) as ws:
        return _loop(ws.send, ws.recv, payload, duration, warmup)


def run_fastws_asyncio(uri: str, payload: bytes, duration: float, warmup: float) -> Measure:
    import fastws

    async def main() -> Measure:
        async with fastws.connect(uri, compression=None, ping_interval=None, max_size=None, proxy=None) as ws:
            send, recv = ws.send, ws.recv
            for _phase, seconds in (("warmup", warmup), ("measure", duration)):
                count = 0
                cpu = time.process_time()
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
            return count / (now - start), (time.process_time() - cpu) / count * 1e6

    return asyncio.run(main())


def _loop(send: Callable, recv: Callable, payload: bytes, duration: float, warmup: float) -> Measure:
    result = (0.0, 0.0)
    for seconds in (warmup, duration):
        count = 0
        cpu = time.process_time()
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
        result = (count / (now - start), (time.process_time() - cpu) / count * 1e6)
    return result


def run_raw_socket(uri: str, payload: bytes, duration: float, warmup: float) -> Measure:
    """The floor: a blocking socket that sends a prebuilt masked frame and reads
    the echoed frame, with no WebSocket library in the loop (the handshake by
    fastws's sans-I/O ClientProtocol)."""
    import socket

    from fastws.codec import build_frame
    from fastws.protocol import OPEN, ClientProtocol

    protocol = ClientProtocol(uri, extensions=None)
    host, port = protocol.uri.host, protocol.uri.port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(protocol.data_to_send())
        while protocol.state is not OPEN:
            data = sock.recv(4096)
            if not data:
                raise ConnectionError("the server closed the connection during the handshake")
            protocol.receive_data(data)
        frame = build_frame(2, payload, mask=True)
        expected = len(payload) + (2 if len(payload) < 126 else 4 if len(payload) < 65536 else 10)
        buffer = bytearray(expected)

        def send(_: bytes) -> None:
            sock.sendall(frame)

        def recv() -> None:
            view = memoryview(buffer)
            got = 0
            while got < expected:
                n = sock.recv_into(view[got:])
                if not n:
                    raise ConnectionError("the server closed the connection")
                got += n

        rate = _loop(send, recv, payload, duration, warmup)
        protocol.send_close()
        sock.sendall(protocol.data_to_send())
        return rate


RUNNERS: Dict[str, Callable[[str, bytes, float, float], Measure]] = {
    "fastws.sync": run_fastws_sync,
    "fastws.asyncio": run_fastws_asyncio,
    "websockets.sync": run_websockets_sync,
    "raw-socket": run_raw_socket,
}


#: The echo servers, as the command lines that start them (they print READY <port>).
SERVERS = {
    "fastws.serve": lambda loop: ["bench.echo.servers", "fastws", loop, "0"],
    "fastws.sync": lambda loop: ["bench.sync.server", "0"],
}


def start_server(name: str, loop: str = "asyncio") -> tuple[subprocess.Popen, int]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    server = subprocess.Popen(
        [sys.executable, "-m", *SERVERS[name](loop)],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.startswith("READY "):
        server.kill()
        raise RuntimeError(f"the {name} echo server did not start: {line!r}")
    return server, int(line.split()[1])


def stop_server(server: subprocess.Popen) -> None:
    assert server.stdin is not None
    server.stdin.close()  # the server stops at the end of its standard input
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:  # pragma: no cover
        server.kill()
        server.wait()


def _default_loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def quartiles(values: List[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def measure(server_name: str, args: argparse.Namespace, clients: List[str], payload: bytes) -> Dict[str, Any]:
    """Every client against one server, in turns; the rates and the errors."""
    rates: Dict[str, List[float]] = {c: [] for c in clients}
    cpus: Dict[str, List[float]] = {c: [] for c in clients}
    errors: Dict[str, str] = {}
    server, port = start_server(server_name, args.server_loop)
    uri = f"ws://127.0.0.1:{port}/"
    try:
        for turn in range(args.runs):
            shift = turn % len(clients)
            for client in clients[shift:] + clients[:shift]:
                if client in errors:
                    continue
                try:
                    rate, cpu = RUNNERS[client](uri, payload, args.duration, args.warmup)
                    rates[client].append(rate)
                    cpus[client].append(cpu)
                except Exception as exc:  # noqa: BLE001 - reported in the table
                    errors[client] = f"{type(exc).__name__}: {exc}"
    finally:
        stop_server(server)
    return {"rates": rates, "cpus": cpus, "errors": errors}


def report(server_name: str, args: argparse.Namespace, clients: List[str], result: Dict[str, Any]) -> Dict[str, Any]:
    """Print one server's table and the ratios of fastws.sync to its peers; return its summary."""
    loop = f" on {args.server_loop}" if server_name == "fastws.serve" else " (a thread per connection)"
    print(f"\nserver {server_name}{loop}")
    print(f"{'client':<18}{'median rt/s':>14}{'IQR':>22}{'client CPU us/rt':>19}")
    summary: Dict[str, Any] = {}
    errors = result["errors"]
    for client in clients:
        if client in errors:
            print(f"{client:<18}failed: {errors[client]}")
            continue
        values = result["rates"][client]
        median = statistics.median(values)
        low, high = quartiles(values)
        cpu = statistics.median(result["cpus"][client])
        summary[client] = {
            "median": median, "q1": low, "q3": high, "rates": values, "cpu_us": cpu, "cpus": result["cpus"][client],
        }  # fmt: skip
        print(f"{client:<18}{median:>14,.0f}{f'{low:,.0f} - {high:,.0f}':>22}{cpu:>19.1f}")
    goals = []
    for top, bottom in GOALS:
        if top in summary and bottom in summary:
            ratio = summary[top]["median"] / summary[bottom]["median"]
            goals.append({"client": top, "peer": bottom, "ratio": ratio})
            cpu_ratio = summary[bottom]["cpu_us"] / summary[top]["cpu_us"]
            print(f"{top} / {bottom}: {ratio:.2f}x the round trips; {cpu_ratio:.2f}x less client CPU per round trip")
    return {"server": server_name, "summary": summary, "goals": goals, "errors": errors}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sync", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated, from " + ", ".join(CLIENTS))
    parser.add_argument(
        "--servers", default=",".join(SERVERS), help="comma-separated, from " + ", ".join(SERVERS)
    )
    parser.add_argument("--size", type=int, default=32, help="message size in bytes (default 32)")
    parser.add_argument("--runs", type=int, default=7, help="turns (default 7)")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per measure (default 2)")
    parser.add_argument("--warmup", type=float, default=0.3, help="seconds before each measure (default 0.3)")
    parser.add_argument("--quick", action="store_true", help="2 turns of 0.2 s")
    parser.add_argument(
        "--server-loop", choices=("asyncio", "uvloop"), default=_default_loop(),
        help="fastws.serve's event loop (default: uvloop when installed)",
    )  # fmt: skip
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.duration, args.warmup = 2, 0.2, 0.05
    clients = [c for c in args.clients.split(",") if c]
    servers = [s for s in args.servers.split(",") if s]
    unknown = [c for c in clients if c not in RUNNERS] + [s for s in servers if s not in SERVERS]
    if unknown:
        parser.error(f"unknown clients or servers: {', '.join(unknown)}")
    import fastws

    payload = os.urandom(args.size)
    print(
        f"sync echo client: {args.size} B binary round trips on one connection; fastws {fastws.IMPLEMENTATION};"
        f" median of {args.runs} turns x {args.duration} s, the clients in rotating order;"
        f" load {os.getloadavg()[0]:.2f}"
    )
    results = [report(name, args, clients, measure(name, args, clients, payload)) for name in servers]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"size": args.size, "runs": args.runs, "duration": args.duration,
                 "implementation": fastws.IMPLEMENTATION, "servers": results},
                f, indent=2,
            )  # fmt: skip
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())

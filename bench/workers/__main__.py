"""Run the worker scaling benchmark and print the table.

    python -m bench.workers                    # every server, 1 and 2 workers, median of 3 runs
    python -m bench.workers --quick            # smoke run
    python -m bench.workers --repeat 5 --duration 3 --json workers.json

For each run, server and worker count N (1, then 2): N server processes on one
port with SO_REUSEPORT (``python -m bench.workers.servers STACK PORT``), N
client processes with one connection each (``python -m bench.workers.client``);
the clients are moved until every worker holds one connection (``--no-balance``:
as the kernel placed them), then all run 32 B round trips at once. The exit code
is 1 if any case failed.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

WORKERS_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(WORKERS_DIR))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.echo import HOST, LOOPS, SMALL  # noqa: E402
from bench.echo.__main__ import (  # noqa: E402
    CaseError,
    _env,
    _fmt_int,
    _loadavg,
    _split,
    _stop,
    _table,
    _tail,
    _wait_ready,
    environment,
)
from bench.pubsub.__main__ import free_port  # noqa: E402
from bench.pubsub.procs import children, cpu_total, peers_by_pid  # noqa: E402
from bench.workers import CLIENT, LABELS, STACKS  # noqa: E402

READY_TIMEOUT = 30.0
SETTINGS = ("duration", "warmup", "repeat", "balance", "loop", "pin", "connections")
#: Reconnections allowed while spreading the clients over the workers.
MAX_MOVES = 40


def _readline(proc: subprocess.Popen, timeout: float, what: str) -> str:
    """One line of ``proc``'s stdout within ``timeout`` seconds."""
    fd = proc.stdout.fileno()  # type: ignore[union-attr]
    if not select.select([fd], [], [], timeout)[0]:
        raise CaseError(f"{what}: nothing after {timeout:.0f} s")
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if not line:
        raise CaseError(f"{what}: the client exited with status {proc.wait()}")
    return line.decode().strip()


def _spawned(pid: int) -> bool:
    """Whether ``pid`` is a worker that multiprocessing spawned (not its resource tracker)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"spawn_main" in f.read()
    except OSError:
        return False


def run_case(stack: str, n: int, args: argparse.Namespace, tmp: str) -> Dict[str, Any]:
    env = _env()
    port = free_port()
    err_path = os.path.join(tmp, f"{stack}-{n}.err")
    servers: List[subprocess.Popen] = []
    clients: List[subprocess.Popen] = []
    try:
        with open(err_path, "wb") as err:
            if stack == "fastws-run":
                runner = subprocess.Popen(
                    [
                        sys.executable, "-m", "fastws", "run", "bench.workers.handlers:echo", "--host", HOST,
                        "--port", str(port), "--workers", str(n), "--log-level", "warning",
                    ],
                    cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                )  # fmt: skip
                servers.append(runner)
                line = _readline(runner, READY_TIMEOUT, "fastws run")
                if not line.startswith("listening on"):
                    raise CaseError(f"fastws run said {line!r}")
                pids = [p for p in children(runner.pid) if _spawned(p)]
                if len(pids) != n:
                    raise CaseError(f"fastws run has {len(pids)} workers, not {n}")
            else:
                for _ in range(n):
                    servers.append(
                        subprocess.Popen(
                            [sys.executable, "-m", "bench.workers.servers", stack, str(port), "--loop", args.loop],
                            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                        )  # fmt: skip
                    )
                for server in servers:
                    _wait_ready(server, READY_TIMEOUT, err_path)
                pids = [s.pid for s in servers]
            for _ in range(n):
                clients.append(
                    subprocess.Popen(
                        [
                            sys.executable, "-m", "bench.workers.client", CLIENT[stack], str(port),
                            f"--connections={args.connections}",
                        ],
                        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                    )  # fmt: skip
                )
        if args.pin:
            # Worker i on CPU i, client i on the other: the same placement for every server.
            cpus = sorted(os.sched_getaffinity(0))
            for i, pid in enumerate(pids):
                os.sched_setaffinity(pid, {cpus[i % len(cpus)]})
            for i, c in enumerate(clients):
                os.sched_setaffinity(c.pid, {cpus[(i + 1) % len(cpus)]})
        local = [[int(p) for p in _readline(c, READY_TIMEOUT, "connect").split()[1:]] for c in clients]
        total = n * args.connections

        def placement() -> Dict[int, List[int]]:
            deadline = time.monotonic() + 5
            while True:  # until every connection has been accepted by a worker
                peers = peers_by_pid(pids, port)
                if sum(len(p) for p in peers.values()) >= total or time.monotonic() > deadline:
                    return peers
                time.sleep(0.01)

        moves = 0
        peers = placement()
        while args.balance and any(len(p) != args.connections for p in peers.values()):
            if moves >= MAX_MOVES:
                raise CaseError(f"connections still on {sorted(map(len, peers.values()))} after {moves} moves")
            # A client with a connection on the most crowded worker opens its connections again.
            crowded = max(peers.values(), key=len)
            i = moves % n if args.connections > 1 else next(i for i, p in enumerate(local) if p[0] in crowded)
            clients[i].stdin.write(b"RECONNECT\n")  # type: ignore[union-attr]
            clients[i].stdin.flush()  # type: ignore[union-attr]
            local[i] = [int(p) for p in _readline(clients[i], READY_TIMEOUT, "reconnect").split()[1:]]
            moves += 1
            peers = placement()
        spread = sorted((len(p) for p in peers.values()), reverse=True)

        for c in clients:
            c.stdin.write(f"GO {args.duration} {args.warmup}\n".encode())  # type: ignore[union-attr]
            c.stdin.flush()  # type: ignore[union-attr]
        for c in clients:
            if _readline(c, 2 * args.warmup + 30, "warm-up") != "START":
                raise CaseError("a client did not start")
        cpu0, t0 = cpu_total(pids), time.monotonic()
        results = [json.loads(_readline(c, args.duration + 30, "measure")) for c in clients]
        # The server CPU between the last START and the first result: all clients ran then.
        cpu1, t1 = cpu_total(pids), time.monotonic()
        for c in clients:
            c.wait(timeout=10)
    except CaseError as exc:
        raise CaseError(f"{exc}; stderr: {_tail(err_path, 3)}") from None
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
                c.wait()
        for server in servers:
            if server.stdin is None:  # fastws run: SIGTERM stops its workers
                server.terminate()
                try:
                    server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
                server.stdout.close()  # type: ignore[union-attr]
            else:
                _stop(server)
    rate = sum(r["rate"] for r in results)
    return {
        "stack": stack,
        "workers": n,
        "rate": rate,
        "rates": [r["rate"] for r in results],
        "spread": spread,
        "moves": moves,
        "server_us": None if cpu0 is None or cpu1 is None else (cpu1 - cpu0) / (rate * (t1 - t0)) * 1e6,
        "client_us": statistics.median(r["client_cpu_s"] / r["round_trips"] * 1e6 for r in results),
    }


def summarize(results: Dict[Tuple[str, int], List[Dict[str, Any]]]) -> Dict[Tuple[str, int], Dict[str, Any]]:
    out = {}
    for key, runs in results.items():
        ok = [r for r in runs if "error" not in r]
        if ok:
            rates = [r["rate"] for r in ok]
            out[key] = {
                "runs": len(ok),
                "rate": statistics.median(rates),
                "low": min(rates),
                "high": max(rates),
                "server_us": statistics.median(r["server_us"] for r in ok if r["server_us"] is not None),
                "client_us": statistics.median(r["client_us"] for r in ok),
                "spread": "/".join(map(str, ok[len(ok) // 2]["spread"])),
                "moves": sum(r["moves"] for r in ok),
            }
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.workers",
        description="Worker scaling: 32 B echo round trips/s with 1 worker + 1 client and 2 workers + 2 clients, "
        "fastws's serve() handler and Listener against a raw asyncio TCP echo, all on SO_REUSEPORT.",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: --duration 0.5 --warmup 0.1 --repeat 1")
    parser.add_argument("--stacks", metavar="A,B", help=f"comma-separated (default: {','.join(STACKS)})")
    parser.add_argument("--duration", type=float, metavar="S", help="seconds per measure (default: 3)")
    parser.add_argument("--warmup", type=float, metavar="S", help="warm-up seconds per size (default: 0.3)")
    parser.add_argument("--repeat", type=int, metavar="N", help="runs, median reported (default: 3)")
    parser.add_argument(
        "--no-balance", dest="balance", action="store_false",
        help="leave the connections where the kernel put them (two may share a worker)",
    )  # fmt: skip
    parser.add_argument(
        "--loop", choices=LOOPS, default="asyncio",
        help="the loop of the servers started without fastws run (default: asyncio, the runner's)",
    )  # fmt: skip
    parser.add_argument(
        "--connections", type=int, default=1, metavar="C",
        help="connections per client (default: 1); with more, the workers are the busy end",
    )  # fmt: skip
    parser.add_argument(
        "--pin", action="store_true",
        help="worker i on CPU i, client i on the next CPU (Linux): the same placement for every server",
    )  # fmt: skip
    parser.add_argument("--json", metavar="PATH", help="also write every result here")
    args = parser.parse_args(argv)
    args.duration = args.duration if args.duration is not None else (0.5 if args.quick else 3.0)
    args.warmup = args.warmup if args.warmup is not None else (0.1 if args.quick else 0.3)
    args.repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    stacks = _split(args.stacks, STACKS, STACKS, "stack")
    env = environment(("uvloop",))
    load = _loadavg()
    results: Dict[Tuple[str, int], List[Dict[str, Any]]] = {}
    cases = [(s, n) for s in stacks for n in (1, 2)]
    started = time.monotonic()
    print(f"running {len(cases) * args.repeat} cases; progress on stderr", flush=True)
    with tempfile.TemporaryDirectory(prefix="fastws-workers-") as tmp:
        done = 0
        for _ in range(args.repeat):
            for stack, n in cases:
                done += 1
                try:
                    result = run_case(stack, n, args, tmp)
                    msg = f"{result['rate']:,.0f} round trips/s, connections {result['spread']}"
                except CaseError as exc:
                    result = {"stack": stack, "workers": n, "error": str(exc)}
                    msg = f"FAILED: {exc}"
                results.setdefault((stack, n), []).append(result)
                print(f"[{done}/{len(cases) * args.repeat}] {LABELS[stack]}, {n} worker(s): {msg}", file=sys.stderr)
    summary = summarize(results)

    print()
    print("fastws worker scaling benchmark")
    print(f"  machine: {env['cpu']}, {env['cpus']} cores; {env['python']}")
    print(f"  fastws {env['fastws']}; uvloop {env['uvloop']}")
    print(f"  servers on {args.loop} (fastws run: asyncio, its loop), clients on uvloop")
    print(
        f"  N workers on one port (SO_REUSEPORT), N clients with {args.connections} connection(s) each, "
        f"{SMALL} B round trips, "
        f"one message in flight per connection; {args.duration} s per measure"
        + (f", median of {args.repeat} runs" if args.repeat > 1 else "")
        + ("; clients moved until the workers hold equal shares" if args.balance else "; connections as they fell")
        + ("; worker i on CPU i, client i on the next" if args.pin else "")
    )
    if load is not None:
        print(f"  load average (1 min) before the run: {load:.2f}" + ("  <- other processes ran" if load > 0.3 else ""))
    rows, notes = [], []
    for stack in stacks:
        one, two = summary.get((stack, 1)), summary.get((stack, 2))
        for n in (1, 2):
            failures = [r["error"] for r in results.get((stack, n), []) if "error" in r]
            if failures:
                notes.append(f"{LABELS[stack]}, {n} worker(s): {len(failures)} runs failed: {failures[-1]}")
        if not one or not two:
            rows.append([LABELS[stack], "FAILED"] + ["-"] * 7)
            continue
        rows.append(
            [
                LABELS[stack],
                _fmt_int(one["rate"]),
                _fmt_int(two["rate"]),
                f"{_fmt_int(two['low'])}-{_fmt_int(two['high'])}",
                f"{two['rate'] / one['rate']:.2f}x",
                f"{one['server_us']:.1f}",
                f"{two['server_us']:.1f}",
                f"{two['client_us']:.1f}",
                two["spread"] + (f" ({two['moves']} moves)" if two["moves"] else ""),
            ]
        )
    print()
    headers = [
        "server", "1 worker rt/s", "2 workers rt/s", "spread (2)", "2 / 1", "server us (1)", "server us (2)",
        "client us (2)", "connections per worker (2)",
    ]  # fmt: skip
    for line in _table(headers, rows, "lrrrrrrrl"):
        print(line)
    for note in notes:
        print(f"  ! {note}")
    print(
        "  server us: CPU time (user + system) of all workers per round trip; client us: of one client"
    )
    print(f"\n  ({time.monotonic() - started:.0f} s)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "environment": env,
                    "settings": {k: getattr(args, k) for k in SETTINGS},
                    "load": load,
                    "results": [r for runs in results.values() for r in runs],
                    "summary": [{"stack": k[0], "workers": k[1], **v} for k, v in summary.items()],
                },
                f,
                indent=1,
            )
        print(f"  results written to {args.json}")
    failed = sum(1 for runs in results.values() for r in runs if "error" in r)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Run the fan-out benchmark and print the comparison table.

    python -m bench.pubsub                      # every stack, median of 3 runs
    python -m bench.pubsub --quick              # smoke run: every stack once, briefly
    python -m bench.pubsub --stacks fastws-redis,socketio --repeat 5 --json pubsub.json

Starts one redis-server (persistence off, a free loopback port), then for each
run and stack: the stack's server processes (2 workers, or 1 for the
in-process fastws), the load generator (``python -m bench.pubsub.client``,
which prints its results as JSON), and stops the servers. Redis is flushed
between stacks and stopped at the end. The exit code is 1 if any case failed.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

PUBSUB_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(PUBSUB_DIR))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.echo.__main__ import (  # noqa: E402
    CaseError,
    _available,
    _env,
    _fmt_int,
    _fmt_ratio,
    _loadavg,
    _split,
    _stop,
    _table,
    _tail,
    _wait_ready,
    environment,
)
from bench.pubsub import (  # noqa: E402
    CHANNEL_LAYERS,
    HOST,
    LABELS,
    PAIRS,
    PEERS,
    REFERENCE,
    REQUIRES,
    RUNNER,
    STACKS,
    USES_REDIS,
    UVICORN,
)
from bench.pubsub.procs import children  # noqa: E402

DISTS = ("redis", "hiredis", "channels", "channels_redis", "Django", "python-socketio", "uvicorn", "uvloop")
READY_TIMEOUT = 60.0
#: Seconds the client may take beyond its warm-up and measure (connecting 1,000 subscribers, stopping).
CLIENT_SLACK = 90.0


# --- Redis and the servers -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Redis:
    """One redis-server on a free loopback port, persistence off."""

    def __init__(self, tmp: str) -> None:
        self.port = free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        self.log = os.path.join(tmp, "redis.log")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp,
            )  # fmt: skip
        deadline = time.monotonic() + 10
        while self.command(b"PING") != b"+PONG":
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise SystemExit(f"redis-server did not start: {_tail(self.log)}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def command(self, *words: bytes) -> Optional[bytes]:
        """Send one command; its reply's first line, or None if Redis does not answer."""
        request = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)
        try:
            with socket.create_connection((HOST, self.port), timeout=5) as s:
                s.sendall(request)
                return s.makefile("rb").readline().rstrip(b"\r\n")
        except OSError:
            return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Servers:
    """The server processes of one case: fastws workers, or uvicorn and its workers."""

    def __init__(self, stack: str, workers: int, redis: Optional[Redis], tmp: str, profile_dir: Optional[str]):
        self.procs: List[subprocess.Popen] = []
        self.pids: List[int] = []  # the processes that serve connections
        env = _env()
        self.err = os.path.join(tmp, f"{stack}.err")
        err = open(self.err, "wb")  # noqa: SIM115 - closed below, once every process has it
        try:
            if stack in UVICORN:
                self.port = free_port()
                if redis:
                    env["BENCH_REDIS_URL"] = redis.url
                if stack in CHANNEL_LAYERS:
                    env["BENCH_CHANNEL_LAYER"] = CHANNEL_LAYERS[stack]
                cmd = [
                    sys.executable, "-m", "uvicorn", UVICORN[stack], "--host", HOST, "--port", str(self.port),
                    "--workers", str(workers), "--no-access-log", "--log-level", "info",
                ]  # fmt: skip
                self.procs.append(
                    subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
                )
                self._wait_uvicorn(workers)
            elif stack == RUNNER:
                self.port = free_port()
                cmd = [
                    sys.executable, "-m", "fastws", "run", "bench.pubsub.handler:handler", "--host", HOST,
                    "--port", str(self.port), "--workers", str(workers), "--pubsub", redis.url,  # type: ignore[union-attr]
                    "--log-level", "warning",
                ]  # fmt: skip
                proc = subprocess.Popen(
                    cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err
                )
                self.procs.append(proc)
                self._wait_runner(workers)
            else:
                local = stack.startswith("fastws-local")
                count = 1 if local else workers
                self.port = 0 if local else free_port()
                for i in range(count):
                    cmd = [sys.executable, "-m", "bench.pubsub.servers", str(self.port)]
                    cmd += ["--loop", "uvloop" if stack.endswith("-uvloop") else "asyncio"]
                    if not local:
                        cmd += ["--reuse-port", "--redis", redis.url]  # type: ignore[union-attr]
                    if profile_dir:
                        cmd += ["--profile", os.path.join(os.path.abspath(profile_dir), f"{stack}-{i}.prof")]
                    self.procs.append(
                        subprocess.Popen(
                            cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err
                        )
                    )
                for proc in self.procs:
                    self.port = _wait_ready(proc, READY_TIMEOUT, self.err)
                self.pids = [p.pid for p in self.procs]
        except BaseException:
            self.stop()
            raise
        finally:
            err.close()

    def _wait_runner(self, workers: int) -> None:
        """Until ``python -m fastws run`` says "listening on" (once every worker serves)."""
        proc = self.procs[0]
        fd = proc.stdout.fileno()  # type: ignore[union-attr]
        deadline = time.monotonic() + READY_TIMEOUT
        data = b""
        while b"listening on" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CaseError(f"fastws run not listening after {READY_TIMEOUT:.0f} s: {_tail(self.err)}")
            if select.select([fd], [], [], min(remaining, 0.5))[0]:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise CaseError(f"fastws run exited with status {proc.wait()}: {_tail(self.err)}")
                data += chunk
        self._find_workers(workers)

    def _find_workers(self, workers: int) -> None:
        """The workers: the parent's children that multiprocessing spawned (not its resource tracker)."""
        for pid in children(self.procs[0].pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"spawn_main" in f.read():
                        self.pids.append(pid)
            except OSError:
                pass
        if len(self.pids) != workers:
            raise CaseError(f"the server has {len(self.pids)} worker processes, not {workers}")

    def _wait_uvicorn(self, workers: int) -> None:
        """Until every worker said "Application startup complete." (uvicorn's log)."""
        deadline = time.monotonic() + READY_TIMEOUT
        parent = self.procs[0]
        while True:
            with open(self.err, encoding="utf-8", errors="replace") as f:
                started = f.read().count("Application startup complete.")
            if started >= workers:
                break
            if parent.poll() is not None:
                raise CaseError(f"uvicorn exited with status {parent.returncode}: {_tail(self.err)}")
            if time.monotonic() > deadline:
                raise CaseError(f"uvicorn's workers not started after {READY_TIMEOUT:.0f} s: {_tail(self.err)}")
            time.sleep(0.1)
        self._find_workers(workers)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.stdin is None:  # uvicorn and fastws run: SIGTERM stops their workers too
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                if proc.stdout is not None:
                    proc.stdout.close()
            else:
                _stop(proc)
        for pid in self.pids:  # a worker left behind by a killed parent
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def run_case(stack: str, args: argparse.Namespace, redis: Optional[Redis], tmp: str) -> Dict[str, Any]:
    if redis is not None:
        redis.command(b"FLUSHALL")
    servers = Servers(stack, args.workers, redis if stack in USES_REDIS else None, tmp, args.profile_dir)
    try:
        cmd = [
            sys.executable, "-m", "bench.pubsub.client", stack, str(servers.port),
            f"--subscribers={args.subscribers}", f"--procs={args.procs}", f"--duration={args.duration}",
            f"--warmup={args.warmup}", f"--window={args.window}", f"--rate={args.rate}",
            f"--server-pids={','.join(map(str, servers.pids))}",
        ]  # fmt: skip
        if redis is not None and stack in USES_REDIS:
            cmd.append(f"--redis-pid={redis.pid}")
        timeout = args.duration + args.warmup + CLIENT_SLACK
        try:
            client = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise CaseError(f"client timed out after {timeout:.0f} s") from None
        if client.returncode != 0:
            reason = client.stderr.strip().splitlines()[-1:] or [f"status {client.returncode}"]
            raise CaseError(f"client failed: {reason[0]}; server stderr: {_tail(servers.err, 3)}")
        return json.loads(client.stdout.strip().splitlines()[-1])
    finally:
        servers.stop()


# --- the report ----------------------------------------------------------------------------


def _spread(values: List[float]) -> Tuple[float, float]:
    """The interquartile range with 4 values or more, else lowest-highest."""
    if len(values) >= 4:
        q = statistics.quantiles(values, n=4)
        return q[0], q[2]
    return min(values), max(values)


def summarize(results: Dict[str, List[Dict[str, Any]]]) -> Dict[str, Dict[str, Any]]:
    """Per stack: medians over the runs that succeeded."""
    out: Dict[str, Dict[str, Any]] = {}
    for stack, runs in results.items():
        ok = [r for r in runs if "error" not in r]
        if not ok:
            continue

        def med(k: str, ok: List[Dict[str, Any]] = ok) -> float:
            return statistics.median(r[k] for r in ok)

        s: Dict[str, Any] = {
            "runs": len(ok),
            "rate": med("rate"),
            "rate_spread": _spread([r["rate"] for r in ok]),
            "p50_ms": med("p50_ms"),
            "p99_ms": med("p99_ms"),
            "p99_spread": _spread([r["p99_ms"] for r in ok]),
            "first_p50_ms": med("first_p50_ms"),
            "spread": ok[len(ok) // 2]["spread"],
        }
        for side in ("server", "redis", "client"):
            values = [r[f"{side}_cpu_s"] / r["deliveries"] for r in ok if r.get(f"{side}_cpu_s") is not None]
            s[f"{side}_us"] = statistics.median(values) * 1e6 if values else None
        for side in ("subscriber_busy", "publisher_busy", "server_kernel_share", "client_kernel_share"):
            values = [r[side] for r in ok if r.get(side) is not None]
            s[side] = statistics.median(values) if values else None
        out[stack] = s
    return out


def report(
    results: Dict[str, List[Dict[str, Any]]],
    stacks: List[str],
    skipped: Dict[str, str],
    args: argparse.Namespace,
    env: Dict[str, Any],
    load: Optional[float],
    p: Callable[..., None] = print,
) -> None:
    summary = summarize(results)
    p("fastws fan-out benchmark")
    p(f"  machine: {env['cpu']}, {env['cpus']} cores; {env['python']}; fastws {env['fastws']}")
    p("  " + "; ".join(f"{d} {env.get(d)}" for d in DISTS))
    p(
        f"  1 publisher, {args.subscribers:,} subscribers on {args.workers} worker processes (fastws in one "
        f"process: 1), 64 B text messages, one topic; "
        + (f"{args.rate:g} messages/s; " if args.rate else f"at most {args.window} messages out; ")
        + f"{args.duration} s per measure after {args.warmup} s of warm-up"
        + (f"; median of {args.repeat} runs" if args.repeat > 1 else "")
    )
    p(f"  load generator: {args.procs} subscriber processes of fastws Listener connections, uvloop")
    if load is not None:
        busy = "  <- other processes were running" if load > 0.3 else ""
        p(f"  load average (1 min) before the run: {load:.2f}{busy}")
    best_peer = max((summary[s]["rate"] for s in PEERS if s in summary), default=None)
    rows, notes = [], []
    for stack in stacks:
        label = LABELS[stack]
        if stack in skipped:
            rows.append([label, "skipped"] + ["-"] * 7)
            notes.append(f"{label}: skipped, {skipped[stack]}")
            continue
        s = summary.get(stack)
        failures = [r["error"] for r in results.get(stack, []) if "error" in r]
        if failures:
            notes.append(f"{label}: {len(failures)} of {len(results[stack])} runs failed: {failures[-1]}")
        if s is None:
            rows.append([label, "FAILED" if failures else "not run"] + ["-"] * 7)
            continue
        lo, hi = s["rate_spread"]
        rows.append(
            [
                label,
                _fmt_int(s["rate"]),
                f"{_fmt_int(lo)}-{_fmt_int(hi)}",
                _fmt_ratio(s["rate"] / best_peer if best_peer else None),
                f"{s['p50_ms']:.1f}",
                f"{s['p99_ms']:.1f}",
                f"{s['first_p50_ms']:.1f}",
                "/".join(str(n) for n in s["spread"]),
                "-" if stack not in REFERENCE else f"{REFERENCE[stack][0]:,} ({REFERENCE[stack][1]} ms)",
            ]
        )
    p()
    headers = [
        "stack", "deliveries/s", "spread", "vs best peer", "p50 ms", "p99 ms", "first p50 ms",
        "connections per worker", "issue's figure (p99)",
    ]  # fmt: skip
    for line in _table(headers, rows, "lrrrrrrll"):
        p(line)
    for note in notes:
        p(f"  ! {note}")

    p()
    p(
        "CPU time (user + system, from /proc) per delivery, us; in kernel: the system time's share of it;"
        " busy: CPU time / wall time of the busiest subscriber process, of the publisher's"
    )
    cpu_rows = []
    for stack in stacks:
        s = summary.get(stack)
        if s is None:
            continue

        def us(v: Optional[float]) -> str:
            return "-" if v is None else f"{v:.2f}"

        def share(v: Optional[float]) -> str:
            return "-" if v is None else f"{v:.0%}"

        cpu_rows.append(
            [
                LABELS[stack], us(1e6 / s["rate"]), us(s["server_us"]), us(s["redis_us"]), us(s["client_us"]),
                share(s["server_kernel_share"]), share(s["client_kernel_share"]),
                share(s["subscriber_busy"]), share(s["publisher_busy"]),
            ]
        )  # fmt: skip
    headers = [
        "stack", "wall us", "workers us", "redis us", "client us", "workers in kernel", "client in kernel",
        "subscriber proc busy", "publisher busy",
    ]  # fmt: skip
    for line in _table(headers, cpu_rows, "lrrrrrrrr"):
        p(line)

    p()
    p("fastws through Redis against the faster peer and against the same fan-out in one process:")
    for redis_stack, local_stack in PAIRS:
        redis_row, local_row = summary.get(redis_stack), summary.get(local_stack)
        if redis_row is None:
            continue
        parts = []
        if best_peer:
            parts.append(f"{redis_row['rate'] / best_peer:.2f}x the faster peer's deliveries/s")
        parts.append(f"p99 {redis_row['p99_ms']:.1f} ms")
        if local_row:
            parts.append(f"{redis_row['rate'] / local_row['rate']:.0%} of {LABELS[local_stack]}")
        p(f"  {LABELS[redis_stack]}: " + "; ".join(parts))


# --- main ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pubsub",
        description="Fan-out benchmark: 1 publisher, 1,000 subscribers over 2 worker processes, 64 B messages: "
        "fastws PubSub (Redis, in-process) against Django Channels and python-socketio.",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: --duration 0.5 --warmup 0.2 --repeat 1")
    parser.add_argument("--stacks", metavar="A,B", help=f"comma-separated (default: {','.join(STACKS)})")
    parser.add_argument("--subscribers", type=int, default=1000, metavar="N", help="(default: 1000)")
    parser.add_argument("--workers", type=int, default=2, metavar="N", help="server worker processes (default: 2)")
    parser.add_argument("--procs", type=int, default=2, metavar="K", help="subscriber processes (default: 2)")
    parser.add_argument("--window", type=int, default=2, metavar="W", help="messages out at most (default: 2)")
    parser.add_argument(
        "--rate", type=float, default=0, metavar="M",
        help="publish M messages/s (M x subscribers deliveries/s) instead of as fast as the window allows",
    )  # fmt: skip
    parser.add_argument("--duration", type=float, metavar="S", help="seconds per measure (default: 3)")
    parser.add_argument("--warmup", type=float, metavar="S", help="seconds of warm-up (default: 1)")
    parser.add_argument("--repeat", type=int, metavar="N", help="runs of every stack, median reported (default: 3)")
    parser.add_argument("--json", metavar="PATH", help="also write every result, with the environment, here")
    parser.add_argument("--profile-dir", metavar="DIR", help="run fastws's servers under cProfile: DIR/STACK-I.prof")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    args.duration = args.duration if args.duration is not None else (0.5 if args.quick else 3.0)
    args.warmup = args.warmup if args.warmup is not None else (0.2 if args.quick else 1.0)
    args.repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    if args.duration <= 0 or args.warmup < 0 or args.repeat < 1 or args.window < 1 or args.subscribers < args.procs:
        raise SystemExit("--duration must be > 0, --warmup >= 0, --repeat and --window >= 1, --subscribers >= --procs")
    stacks = _split(args.stacks, STACKS, STACKS, "stack")
    if args.profile_dir:
        os.makedirs(args.profile_dir, exist_ok=True)
    skipped: Dict[str, str] = {}
    for stack in stacks:
        missing = [m for m in REQUIRES[stack] if not _available(m)]
        if missing:
            skipped[stack] = f"{', '.join(missing)} not installed"
        elif stack in USES_REDIS and not shutil.which("redis-server"):
            skipped[stack] = "redis-server not found"
    cases = [s for s in stacks if s not in skipped]
    env = environment(DISTS)
    load = _loadavg()
    results: Dict[str, List[Dict[str, Any]]] = {}
    started = time.monotonic()
    print(f"running {len(cases) * args.repeat} cases; progress on stderr", flush=True)
    with tempfile.TemporaryDirectory(prefix="fastws-pubsub-") as tmp:
        redis = Redis(tmp) if any(s in USES_REDIS for s in cases) else None
        try:
            done = 0
            for _ in range(args.repeat):
                for stack in cases:
                    done += 1
                    try:
                        result = run_case(stack, args, redis, tmp)
                        msg = f"{result['rate']:,.0f} deliveries/s, p99 {result['p99_ms']:.1f} ms"
                    except CaseError as exc:
                        result = {"stack": stack, "error": str(exc)}
                        msg = f"FAILED: {exc}"
                    results.setdefault(stack, []).append(result)
                    print(f"[{done}/{len(cases) * args.repeat}] {LABELS[stack]}: {msg}", file=sys.stderr, flush=True)
        except KeyboardInterrupt:
            print("interrupted: reporting the cases that finished", file=sys.stderr)
        finally:
            if redis is not None:
                redis.stop()
    print()
    report(results, stacks, skipped, args, env, load)
    print(f"\n  ({time.monotonic() - started:.0f} s)")
    if args.json:
        names = ("subscribers", "workers", "procs", "window", "rate", "duration", "warmup", "repeat")
        settings = {k: getattr(args, k) for k in names}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "environment": env,
                    "settings": settings,
                    "load": load,
                    "skipped": [{"stack": k, "reason": v} for k, v in skipped.items()],
                    "results": [r for runs in results.values() for r in runs],
                    "summary": [{"stack": k, **v} for k, v in summarize(results).items()],
                },
                f,
                indent=1,
            )
        print(f"  results written to {args.json}")
    failed = sum(1 for runs in results.values() for r in runs if "error" in r)
    if failed:
        print(f"\n{failed} case(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

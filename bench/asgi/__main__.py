"""Run the ASGI echo benchmark and print the comparison table.

    python -m bench.asgi                                 # every backend, both loops, 6 turns
    python -m bench.asgi --quick                         # smoke run: 2 short turns
    python -m bench.asgi --backends fastws,wsproto,fastws-serve --loops uvloop --runs 10
    python -m bench.asgi --json asgi.json --profile-dir prof/

Starts every echo server at once, each in its own process (``python -m
bench.asgi.servers BACKEND LOOP 0``), then one client process
(``python -m bench.asgi.client``, on bench.echo's clients) that measures them in
turns: every server in each turn, the order rotated from one turn to the next,
so that whatever else the machine does hits them alike. Reports the median over
the turns; the process management and the formatting come from
:mod:`bench.echo.__main__`. The exit code is 1 if any server failed, else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

ASGI_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(ASGI_DIR))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.asgi import BACKENDS, BUILTIN, CEILING, LABELS, REQUIRES, SUBJECT  # noqa: E402
from bench.echo import LABELS as CLIENT_LABELS  # noqa: E402
from bench.echo import LARGE, LOOPS, MAX_SIZE, SMALL  # noqa: E402
from bench.echo.__main__ import (  # noqa: E402
    CLIENT_SLACK,
    LOOP_MODULES,
    READY_TIMEOUT,
    CaseError,
    _available,
    _env,
    _fmt_int,
    _fmt_mb,
    _fmt_ratio,
    _loadavg,
    _pinned,
    _split,
    _stop,
    _table,
    _tail,
    _wait_ready,
    add_load,
    exit_code,
    pin_cpus,
    report_cpu,
    report_load,
    skipped_cases,
    summarize,
    write_json,
)
from bench.echo.__main__ import environment as echo_environment  # noqa: E402
from bench.echo.clients import CLIENTS  # noqa: E402

#: Clients that can drive any WebSocket server (raw TCP is not one).
CLIENT_CHOICES = tuple(name for name in CLIENTS if name != "raw-tcp")
DEFAULT_CLIENT = "fastws-listener"

Key = Tuple[str, str]  # (loop, backend)


# --- running -----------------------------------------------------------------------------------


class Servers:
    """The server processes of a run, all started at once and stopped together."""

    def __init__(self, tmp: str) -> None:
        self.tmp = tmp
        self.procs: Dict[Key, subprocess.Popen] = {}
        self.ports: Dict[Key, int] = {}
        self.errors: Dict[Key, str] = {}

    def err_path(self, key: Key) -> str:
        return os.path.join(self.tmp, f"{key[0]}-{key[1]}.err")

    def start(self, keys: List[Key], profile_dir: Optional[str], cpu: Optional[int]) -> None:
        env = _env()
        for key in keys:
            loop, backend = key
            cmd = [sys.executable, "-m", "bench.asgi.servers", backend, loop, "0"]
            if profile_dir:
                cmd += ["--profile", os.path.join(os.path.abspath(profile_dir), f"{backend}-{loop}.prof")]
            with open(self.err_path(key), "wb") as err:
                self.procs[key] = subprocess.Popen(
                    cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                    preexec_fn=_pinned(cpu),
                )
        for key in keys:
            try:
                self.ports[key] = _wait_ready(self.procs[key], READY_TIMEOUT, self.err_path(key))
            except CaseError as exc:
                self.errors[key] = str(exc)

    def stop(self) -> None:
        for proc in self.procs.values():
            _stop(proc)


def run_client(
    servers: Servers,
    keys: List[Key],
    client: str,
    client_loop: str,
    runs: int,
    duration: float,
    warmup: float,
    cpu: Optional[int],
    connections: int = 1,
) -> Dict[Key, List[Dict[str, Any]]]:
    """One client process for the servers of ``keys``, measured in turns; per
    server, a list of turns (bench.echo's client format) or of one error."""
    live = [key for key in keys if key in servers.ports]
    results: Dict[Key, List[Dict[str, Any]]] = {
        key: [{"error": servers.errors[key]}] for key in keys if key not in live
    }
    if not live:
        return results
    names = {f"{loop}/{backend}": (loop, backend) for loop, backend in live}
    cmd = [sys.executable, "-m", "bench.asgi.client", client, client_loop]
    cmd += [f"{name}={servers.ports[key]}:{servers.procs[key].pid}" for name, key in names.items()]
    cmd += [f"--runs={runs}", f"--duration={duration}", f"--warmup={warmup}", f"--connections={connections}"]
    timeout = len(live) * (2 * warmup + 2 * runs * (duration + 0.5)) + CLIENT_SLACK
    try:
        done = subprocess.run(
            cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout, preexec_fn=_pinned(cpu)
        )
    except subprocess.TimeoutExpired:
        error = f"client timed out after {timeout:.0f} s"
        results.update({key: [{"error": error}] for key in live})
        return results
    try:
        if done.returncode != 0:
            raise ValueError
        data = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        reason = (done.stderr.strip().splitlines() or [f"status {done.returncode}"])[-1]
        results.update({key: [{"error": f"client failed: {reason}"}] for key in live})
        return results
    for name, key in names.items():
        loop, backend = key
        turns = [
            dict(turn, backend=backend, loop=loop, client=client, client_loop=client_loop, connections=connections)
            for turn in data["turns"][name]
        ]
        if name in data["errors"]:
            server_err = _tail(servers.err_path(key))
            error = data["errors"][name] + (f"; server stderr: {server_err}" if server_err else "")
            turns.append({"backend": backend, "loop": loop, "error": error})
        results[key] = turns
    return results


# --- environment -----------------------------------------------------------------------------


def unavailable(backend: str) -> Optional[str]:
    """Why ``backend`` cannot run here (None: it can)."""
    missing = [m for m in REQUIRES[backend] if not _available(m)]
    if missing:
        return f"{', '.join(missing)} not installed"
    if backend == "wsproto-accel":
        import fastws

        if fastws.IMPLEMENTATION != "cython":
            # patch_wsproto() refuses the pure-Python twin: it would be slower, not faster.
            return f"fastws's compiled core is not active (fastws.IMPLEMENTATION is {fastws.IMPLEMENTATION!r})"
    return None


def uvicorn_http() -> str:
    """The HTTP/1.1 implementation uvicorn's ``http="auto"`` picks here."""
    return "httptools" if _available("httptools") else "h11"


#: The distributions whose versions the report and the JSON give.
DISTS = ("uvicorn", "starlette", "websockets", "wsproto", "hypercorn", "granian", "uvloop", "httptools")


def environment() -> Dict[str, Any]:
    """bench.echo's environment for :data:`DISTS`, and uvicorn's HTTP/1.1 implementation."""
    info = echo_environment(DISTS)
    info["uvicorn_http"] = uvicorn_http()
    return info


# --- report ----------------------------------------------------------------------------------


def spread(values: List[float]) -> Tuple[float, float]:
    """The interquartile range of ``values``; lowest and highest with fewer than 4."""
    if len(values) < 4:
        return min(values), max(values)
    q1, _, q3 = statistics.quantiles(values, n=4)
    return q1, q3


def summarize_runs(results: Dict[Key, List[Dict[str, Any]]]) -> Dict[Key, Dict[str, Any]]:
    """Per (loop, backend): :func:`bench.echo.__main__.summarize`'s medians over
    the turns (rates and CPU time per echo), and the spread of each rate."""
    out = summarize(results)
    for key, s in out.items():
        ok = [r for r in results[key] if "error" not in r]
        s["rate_lo"], s["rate_hi"] = spread([r["small"]["rate"] for r in ok])
        s["mbps_lo"], s["mbps_hi"] = spread([r["large"]["mb_per_s"] for r in ok])
    return out


def best_builtin(summary: Dict[Key, Dict[str, Any]], loop: str, measure: str) -> Optional[Tuple[str, float]]:
    """uvicorn's best built-in backend on ``loop`` for ``measure``: (name, value)."""
    measured = [(name, summary[(loop, name)][measure]) for name in BUILTIN if (loop, name) in summary]
    return max(measured, key=lambda item: item[1]) if measured else None


def _range(low: float, high: float, runs: int, fmt) -> str:
    return f"{fmt(low)}-{fmt(high)}" if runs > 1 else "-"


def report(
    results: Dict[Key, List[Dict[str, Any]]],
    loops: List[str],
    backends: List[str],
    skipped: Dict[Key, str],
    settings: Dict[str, Any],
    env: Dict[str, Any],
    out=sys.stdout,
) -> None:
    p = lambda s="": print(s, file=out)  # noqa: E731
    summary = summarize_runs(results)
    p("fastws ASGI echo benchmark: a Starlette echo endpoint on uvicorn's WebSocket backends")
    p(f"  machine: {env['cpu']}, {env['cpus']} cores; {env['python']}")
    p(
        f"  fastws {env['fastws']}; uvicorn {env['uvicorn']} (http: {env['uvicorn_http']}); "
        f"starlette {env['starlette']}; websockets {env['websockets']}; wsproto {env['wsproto']}; "
        f"hypercorn {env['hypercorn']}; granian {env['granian']}; uvloop {env['uvloop']}"
    )
    runs = settings["runs"]
    p(
        f"  {settings.get('connections', 1)} connection(s) per server, one message in flight on each, "
        "each server in its own process; "
        f"{settings['duration']} s per measure after {settings['warmup']} s of warm-up per size; median of "
        f"{runs} turns, every server measured in each (spread: "
        + ("interquartile range of the turns)" if runs >= 4 else "lowest-highest turn)")
    )
    p(
        f"  client for every server: {CLIENT_LABELS[settings['client']]} ({settings['client']}) on "
        + ("the server's loop" if settings["client_loop"] == "same" else settings["client_loop"])

        + (
            f"; server pinned to CPU {settings['pin'][0]}, client to CPU {settings['pin'][1]}"
            if settings.get("pin")
            else ""
        )
    )
    p(
        f"  round trips/s: {SMALL} B binary messages; MB/s: {LARGE // 2**20} MiB binary messages, 10^6 bytes "
        f"echoed per second (one direction); 'vs uvicorn' = this / uvicorn's best built-in backend "
        f"({', '.join(BUILTIN)}) on that measure; 'vs serve' = this / fastws.serve alone"
    )
    report_load(settings, p)

    notes: List[str] = []
    for loop in loops:
        ceiling = summary.get((loop, CEILING))
        best = {m: best_builtin(summary, loop, m) for m in ("rate", "mbps")}
        rows = []
        for backend in backends:
            key = (loop, backend)
            label = LABELS[backend]
            if key in skipped:
                rows.append([label, "skipped"] + ["-"] * 7)
                notes.append(f"{label} on {loop}: skipped, {skipped[key]}")
                continue
            s = summary.get(key)
            failures = [r["error"] for r in results.get(key, []) if "error" in r]
            if s is None:
                rows.append([label, "FAILED" if failures else "not run"] + ["-"] * 7)
                if failures:
                    notes.append(f"{label} on {loop}: {failures[-1]}")
                continue
            if failures:
                notes.append(f"{label} on {loop}: failed after {s['runs']} turns: {failures[-1]}")

            def ratio(measure: str, ref: Optional[float], s=s) -> Optional[float]:
                return s[measure] / ref if ref else None

            best_rate, best_mbps = best["rate"], best["mbps"]
            rows.append(
                [
                    label,
                    _fmt_int(s["rate"]),
                    _range(s["rate_lo"], s["rate_hi"], s["runs"], _fmt_int),
                    _fmt_ratio(ratio("rate", best_rate[1] if best_rate else None)),
                    _fmt_ratio(ratio("rate", ceiling["rate"] if ceiling else None)),
                    _fmt_mb(s["mbps"]),
                    _range(s["mbps_lo"], s["mbps_hi"], s["runs"], _fmt_mb),
                    _fmt_ratio(ratio("mbps", best_mbps[1] if best_mbps else None)),
                    _fmt_ratio(ratio("mbps", ceiling["mbps"] if ceiling else None)),
                ]
            )
        p()
        names = ", ".join(f"{what} {b[0]}" for what, b in (("round trips", best["rate"]), ("MB/s", best["mbps"])) if b)
        p(f"server loop: {loop}" + (f"  (best built-in uvicorn backend: {names})" if names else ""))
        headers = ["backend", "round trips/s", "spread", "vs uvicorn", "vs serve"]
        headers += ["MB/s", "spread", "vs uvicorn", "vs serve"]
        for line in _table(headers, rows, "lrrrrrrrr"):
            p(line)
    for note in notes:
        p(f"  ! {note}")

    report_cpu(summary, loops, backends, LABELS, "backend", p, cpu="user + system, all threads", medians=True)

    report_costs(summary, loops, out)
    report_ratios(results, summary, loops, backends, out)


def report_costs(summary: Dict[Key, Dict[str, Any]], loops: List[str], out) -> None:
    """What the ASGI layers cost fastws, in server CPU time per 32 B echo."""
    lines = []
    for loop in loops:
        serve = summary.get((loop, CEILING), {}).get("small_server")
        bare = summary.get((loop, "fastws-bare"), {}).get("small_server")
        full = summary.get((loop, SUBJECT), {}).get("small_server")
        parts = []
        if serve is not None and bare is not None:
            parts.append(f"uvicorn + ASGI calls {(bare - serve) * 1e6:+.1f} us (bare ASGI app vs fastws.serve)")
        if bare is not None and full is not None:
            parts.append(f"Starlette {(full - bare) * 1e6:+.1f} us (Starlette app vs bare ASGI app)")
        if serve is not None and full is not None:
            parts.append(f"in all {(full - serve) * 1e6:+.1f} us over fastws.serve's {serve * 1e6:.1f} us")
        if parts:
            lines.append(f"  {loop:8} " + "; ".join(parts))
    if lines:
        print(file=out)
        print(f"What the ASGI layers cost fastws: server CPU time per {SMALL} B echo", file=out)
        for line in lines:
            print(line, file=out)


def paired_ratio(results: Dict[Key, List[Dict[str, Any]]], loop: str, a: str, b: str, measure: str) -> Optional[float]:
    """The median over the turns of a / b, each turn's two measures taken
    seconds apart: less moved by a machine whose speed drifts than the ratio of
    the medians. None with fewer than 2 turns where both were measured."""
    size, field = ("small", "rate") if measure == "rate" else ("large", "mb_per_s")
    turns_a = [r for r in results.get((loop, a), []) if "error" not in r]
    turns_b = [r for r in results.get((loop, b), []) if "error" not in r]
    ratios = [x[size][field] / y[size][field] for x, y in zip(turns_a, turns_b) if y[size][field]]
    return statistics.median(ratios) if len(ratios) >= 2 else None


def report_ratios(
    results: Dict[Key, List[Dict[str, Any]]],
    summary: Dict[Key, Dict[str, Any]],
    loops: List[str],
    backends: List[str],
    out,
) -> None:
    if SUBJECT not in backends:
        return
    print(file=out)
    print(f"{LABELS[SUBJECT]} against uvicorn's best built-in backend on the same loop", file=out)
    names = {"rate": "round trips", "mbps": "MB/s"}
    for loop in loops:
        subject = summary.get((loop, SUBJECT))
        ceiling = summary.get((loop, CEILING))
        parts = []
        for measure in names:
            best = best_builtin(summary, loop, measure)
            if not subject or not best:
                parts.append(f"{names[measure]}: not measured")
                continue
            r = subject[measure] / best[1]
            paired = paired_ratio(results, loop, SUBJECT, best[0], measure)
            parts.append(
                f"{names[measure]} {r:.2f}x {best[0]}"
                + (f" (turn by turn {paired:.2f}x)" if paired is not None else "")
            )
        if subject and ceiling:
            parts.append(
                f"of fastws.serve: {subject['rate'] / ceiling['rate']:.0%} of its round trips, "
                f"{subject['mbps'] / ceiling['mbps']:.0%} of its MB/s"
            )
        print(f"  {loop:8} " + "; ".join(parts), file=out)
        # The same comparison in server CPU time per echo: what a busy server
        # (many connections, CPU-bound) would see, and less disturbed by the machine.
        cpu_parts = []
        for size, name in (("small", f"{SMALL} B"), ("large", f"{LARGE // 2**20} MiB")):
            mine = subject.get(f"{size}_server") if subject else None
            theirs = [
                (summary[(loop, b)][f"{size}_server"], b)
                for b in BUILTIN
                if (loop, b) in summary and summary[(loop, b)].get(f"{size}_server")
            ]
            if mine and theirs:
                cost, b = min(theirs)
                cpu_parts.append(f"{name} {cost / mine:.2f}x less than {b}")
        if cpu_parts:
            print(f"  {'':8} server CPU per echo: " + "; ".join(cpu_parts), file=out)


# --- main ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.asgi",
        description="ASGI echo benchmark: a Starlette echo endpoint on uvicorn with each WebSocket backend "
        "(fastws.uvicorn and uvicorn's own), Hypercorn and granian, against fastws.serve alone; "
        "32 B round trips/s and 1 MiB MB/s on asyncio and uvloop.",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: --runs 2 --duration 0.2 --warmup 0.1")
    parser.add_argument(
        "--runs", type=int, metavar="N", help="turns: every server measured N times, medians reported (default: 6)"
    )
    parser.add_argument(
        "--duration", type=float, metavar="S", help="seconds per measure (default: 0.5; --quick: 0.2)"
    )
    parser.add_argument(
        "--warmup", type=float, metavar="S", help="warm-up seconds per size (default: 0.3; --quick: 0.1)"
    )
    parser.add_argument("--backends", metavar="A,B", help=f"comma-separated backends (default: {','.join(BACKENDS)})")
    parser.add_argument("--loops", metavar="A,B", help=f"comma-separated server loops (default: {','.join(LOOPS)})")
    parser.add_argument(
        "--client",
        default=DEFAULT_CLIENT,
        choices=CLIENT_CHOICES,
        help=f"the bench.echo client that drives every server (default: {DEFAULT_CLIENT})",
    )
    parser.add_argument(
        "--client-loop",
        choices=("same",) + LOOPS,
        help="the client's loop (default: uvloop when installed, else asyncio; 'same': the server's)",
    )
    parser.add_argument(
        "--pin", action="store_true", help="run the servers on one CPU and the client on another (Linux)"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=1,
        metavar="N",
        help="connections per server echoing at once (default: 1, where the client's own cost weighs in every"
        " round trip; several: the server sets the pace, as with many clients)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write every result, with the environment, here")
    parser.add_argument(
        "--profile-dir",
        metavar="DIR",
        help="run each server under cProfile, writing DIR/BACKEND-LOOP.prof (slows the servers down)",
    )
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    duration = args.duration if args.duration is not None else (0.2 if args.quick else 0.5)
    warmup = args.warmup if args.warmup is not None else (0.1 if args.quick else 0.3)
    runs = args.runs if args.runs is not None else (2 if args.quick else 6)
    if duration <= 0 or warmup < 0 or runs < 1 or args.connections < 1:
        raise SystemExit("--duration must be > 0, --warmup >= 0, --runs >= 1, --connections >= 1")
    backends = _split(args.backends, BACKENDS, BACKENDS, "backend")
    loops = _split(args.loops, LOOPS, LOOPS, "loop")
    client_loop = args.client_loop or ("uvloop" if _available("uvloop") else "asyncio")
    if args.profile_dir:
        os.makedirs(args.profile_dir, exist_ok=True)

    skipped: Dict[Key, str] = skipped_cases(loops, backends, unavailable)
    if client_loop != "same" and not _available(LOOP_MODULES[client_loop]):
        raise SystemExit(f"--client-loop {client_loop}: not installed")

    pin = pin_cpus() if args.pin else None
    server_cpu, client_cpu = pin if pin else (None, None)
    keys = [(loop, b) for loop in loops for b in backends if (loop, b) not in skipped]
    # One client process per client loop: all the servers, in turns.
    groups: Dict[str, List[Key]] = {}
    for key in keys:
        groups.setdefault(key[0] if client_loop == "same" else client_loop, []).append(key)
    results: Dict[Key, List[Dict[str, Any]]] = {}
    env = environment()
    load_before = _loadavg()
    print(
        f"{len(keys)} servers, measured in {runs} turns of {duration} s per server and size "
        f"after {warmup} s of warm-up per size; progress on stderr"
    )
    sys.stdout.flush()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fastws-asgi-") as tmp:
        servers = Servers(tmp)
        try:
            for c_loop, group in groups.items():
                print(f"starting {len(group)} servers", file=sys.stderr, flush=True)
                servers.start(group, args.profile_dir, server_cpu)
                print(
                    f"measuring them with {args.client} on {c_loop}: about "
                    f"{len(group) * (2 * warmup + 2 * runs * duration):.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
                results.update(
                    run_client(
                        servers, group, args.client, c_loop, runs, duration, warmup, client_cpu, args.connections
                    )
                )
        except KeyboardInterrupt:
            print("interrupted: reporting what finished", file=sys.stderr)
        finally:
            servers.stop()

    settings: Dict[str, Any] = {
        "duration": duration,
        "warmup": warmup,
        "runs": runs,
        "max_size": MAX_SIZE,
        "client": args.client,
        "client_loop": client_loop,
        "connections": args.connections,
        "pin": pin,
    }
    add_load(settings, load_before)
    print()
    report(results, loops, backends, skipped, settings, env)
    print(f"\n  ({time.monotonic() - started:.0f} s)")
    if args.json:
        write_json(args.json, env, settings, skipped, results, summarize_runs(results), "backend")
    return exit_code(results)

if __name__ == "__main__":
    sys.exit(main())

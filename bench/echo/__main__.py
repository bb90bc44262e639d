"""Run the network echo benchmark and print the comparison table.

    python -m bench.echo                         # every stack on asyncio and uvloop, 2 s per measure
    python -m bench.echo --quick                 # smoke run: 0.3 s per measure (seconds in all)
    python -m bench.echo --stacks fastws-listener,picows --loops uvloop
    python -m bench.echo --duration 5 --repeat 3 --json echo.json

For each loop and stack: an echo server in one process (``python -m
bench.echo.servers STACK LOOP 0``, which prints ``READY <port>``), its client in
another (``python -m bench.echo.clients STACK LOOP PORT``, which prints its results
as JSON), then the server is stopped. Every process has a timeout. The exit code
is 1 if any case failed (a crash, a timeout, an echo that did not match), else 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import select
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

ECHO_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(ECHO_DIR))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import bench.echo  # noqa: E402
from bench.echo import (  # noqa: E402
    ALL_STACKS,
    EXTRA_STACKS,
    LABELS,
    LARGE,
    LOOPS,
    MAX_SIZE,
    REQUIRES,
    SMALL,
    STACKS,
)

#: Seconds a server may take to print READY.
READY_TIMEOUT = 30.0
#: Seconds a client may take beyond its warm-ups and measures (start-up, connect, close).
CLIENT_SLACK = 30.0

REFERENCES = ("picows", "aiohttp")  # the "vs" columns
#: Stacks with a server but no client of their own, and the stack whose client
#: drives them: the leanest of the others.
BORROWED_CLIENT = {"socketify": "picows"}
#: Those of bench.echo's server-only stacks that a borrowed client can drive
#: (run only when named with --stacks).
SERVER_ONLY: Tuple[str, ...] = tuple(
    str(s) for s in getattr(bench.echo, "SERVER_ONLY_STACKS", ()) if s in BORROWED_CLIENT
)
#: What the tables call each stack: bench.echo's label, with the client named
#: where it is borrowed ("socketify (picows client)").
CASE_LABELS: Dict[str, str] = {
    stack: (LABELS.get(stack) or stack) + (f" ({BORROWED_CLIENT[stack]} client)" if stack in BORROWED_CLIENT else "")
    for stack in ALL_STACKS + SERVER_ONLY
}
LOOP_MODULES = {"asyncio": None, "uvloop": "uvloop"}


# --- running one case --------------------------------------------------------------------


class CaseError(Exception):
    pass


def _env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def _tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read().strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def _wait_ready(server: subprocess.Popen, timeout: float, err_path: str) -> int:
    """Read the server's stdout until ``READY <port>``; returns the port."""
    deadline = time.monotonic() + timeout
    fd = server.stdout.fileno()  # type: ignore[union-attr]
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CaseError(f"server not ready after {timeout:.0f} s; stderr: {_tail(err_path)}")
        readable, _, _ = select.select([fd], [], [], min(remaining, 0.5))
        if readable:
            chunk = os.read(fd, 4096)
            if not chunk:
                server.wait(timeout=5)
                raise CaseError(
                    f"server exited with status {server.returncode} before READY; stderr: {_tail(err_path)}"
                )
            data += chunk
        elif server.poll() is not None:
            raise CaseError(
                f"server exited with status {server.returncode} before READY; stderr: {_tail(err_path)}"
            )
    line = data.split(b"\n", 1)[0].decode("ascii", "replace").strip()
    parts = line.split()
    if len(parts) != 2 or parts[0] != "READY" or not parts[1].isdigit():
        raise CaseError(f"server said {line!r} instead of 'READY <port>'")
    return int(parts[1])


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        try:
            server.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
    for stream in (server.stdin, server.stdout):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass


def _pinned(cpu: Optional[int]):
    """A preexec_fn that runs the child on one CPU (None: no pinning)."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def pin_cpus() -> Optional[tuple]:
    """Two CPUs this process may run on, for --pin: (server's, client's)."""
    if not hasattr(os, "sched_getaffinity"):
        raise SystemExit("--pin needs os.sched_setaffinity (Linux)")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit(f"--pin needs two CPUs, this process may use {cpus}")
    return cpus[0], cpus[1]


def run_case(
    stack: str,
    loop: str,
    duration: float,
    warmup: float,
    profile: Optional[str] = None,
    pin: Optional[tuple] = None,
    client_stack: Optional[str] = None,
) -> Dict[str, Any]:
    """One stack on one loop; with ``pin``, the server on CPU pin[0] and the
    client on pin[1], so that every stack runs with the same placement.
    ``client_stack``: the stack whose client drives the server (default: ``stack``'s
    own), for a server that has no client of its own."""
    server_cpu, client_cpu = pin if pin else (None, None)
    env = _env()
    with tempfile.TemporaryDirectory(prefix="fastws-echo-") as tmp:
        err_path = os.path.join(tmp, "server.err")
        server_cmd = [sys.executable, "-m", "bench.echo.servers", stack, loop, "0"]
        if profile:
            server_cmd += ["--profile", profile]
        with open(err_path, "wb") as err:
            server = subprocess.Popen(
                server_cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                preexec_fn=_pinned(server_cpu),
            )
        try:
            port = _wait_ready(server, READY_TIMEOUT, err_path)
            client_cmd = [
                sys.executable,
                "-m",
                "bench.echo.clients",
                client_stack or stack,
                loop,
                str(port),
                f"--server-pid={server.pid}",
                f"--duration={duration}",
                f"--warmup={warmup}",
            ]
            timeout = 2 * (duration + warmup) + CLIENT_SLACK
            try:
                client = subprocess.run(
                    client_cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                    preexec_fn=_pinned(client_cpu),
                )
            except subprocess.TimeoutExpired:
                raise CaseError(f"client timed out after {timeout:.0f} s") from None
            if client.returncode != 0:
                reason = client.stderr.strip().splitlines()[-1:] or [f"status {client.returncode}"]
                server_err = _tail(err_path)
                raise CaseError(
                    f"client failed: {reason[0]}" + (f"; server stderr: {server_err}" if server_err else "")
                )
            try:
                return json.loads(client.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                raise CaseError(f"client printed no result: {client.stdout[-200:]!r}") from None
        finally:
            _stop(server)


# --- environment ---------------------------------------------------------------------------


def _available(module: Optional[str]) -> bool:
    return module is None or importlib.util.find_spec(module) is not None


def _version(dist: str) -> Optional[str]:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001
        return None


#: The distributions whose versions the report and the JSON give.
DISTS = ("websockets", "aiohttp", "picows", "aiofastnet", "uvloop")


def environment(dists: Sequence[str] = DISTS) -> Dict[str, Any]:
    """Python, the machine, fastws and the versions of ``dists``."""
    info: Dict[str, Any] = {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpus": os.cpu_count(),
        "cpu": _cpu_name(),
    }
    try:
        import fastws

        info["fastws"] = f"{fastws.__version__} ({fastws.IMPLEMENTATION} core)"
    except Exception as exc:  # noqa: BLE001
        info["fastws"] = f"not importable: {exc}"
    for dist in dists:
        info[dist] = _version(dist)
    return info


def _loadavg() -> Optional[float]:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


# --- report --------------------------------------------------------------------------------


def _fmt_int(value: float) -> str:
    return f"{value:,.0f}"


def _fmt_mb(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _fmt_ratio(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _table(headers: List[str], rows: List[List[str]], align: str) -> List[str]:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells):
        padded = (c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align))
        return ("  " + "  ".join(padded)).rstrip()

    return [line(headers), "  " + "  ".join("-" * w for w in widths)] + [line(r) for r in rows]


def _median(values: List[float]) -> float:
    return statistics.median(values)


def summarize(results: Dict[tuple, List[Dict[str, Any]]]) -> Dict[tuple, Dict[str, Any]]:
    """Per (loop, stack): the median over repeats of round trips/s and MB/s."""
    out: Dict[tuple, Dict[str, Any]] = {}
    for key, runs in results.items():
        ok = [r for r in runs if "error" not in r]
        if ok:
            out[key] = {
                "rate": _median([r["small"]["rate"] for r in ok]),
                "mbps": _median([r["large"]["mb_per_s"] for r in ok]),
                "runs": len(ok),
            }
            # CPU seconds per echo, by size and side (None where /proc did not tell).
            for size, count in (("small", "round_trips"), ("large", "messages")):
                for side in ("server", "client"):
                    values = [
                        r[size][f"{side}_cpu_s"] / r[size][count]
                        for r in ok
                        if r[size].get(f"{side}_cpu_s") is not None and r[size][count]
                    ]
                    out[key][f"{size}_{side}"] = _median(values) if values else None
    return out


def report_load(settings: Dict[str, Any], p: Callable[..., None]) -> None:
    """The load average before the run, if known, with a warning when it was high."""
    load = settings.get("load")
    if load:
        # The benchmark itself keeps both cores busy: only the load before it
        # says whether something else was running.
        p(
            f"  load average (1 min) before the run: {load[0]:.2f}"
            + ("  <- other processes were running: rates are noisy; see the CPU table" if load[0] > 0.3 else "")
        )


def report_cpu(
    summary: Dict[tuple, Dict[str, Any]],
    loops: List[str],
    names: List[str],
    labels: Dict[str, str],
    column: str,
    p: Callable[..., None],
    cpu: str = "user + system",
    medians: bool = False,
) -> None:
    """The table of time per echo (wall clock, and the CPU time ``cpu`` of the
    server and client processes) for each (loop, name) in ``summary``; nothing
    where no CPU time was measured. ``column``: the heading of the names."""
    cpu_rows = []
    for loop in loops:
        for name in names:
            c = summary.get((loop, name))
            if c is None:
                continue

            def us(value: Optional[float], scale: float) -> str:
                return "-" if value is None else f"{value * scale:,.1f}"

            cpu_rows.append(
                [
                    loop,
                    labels[name],
                    us(1 / c["rate"], 1e6),
                    us(c.get("small_server"), 1e6),
                    us(c.get("small_client"), 1e6),
                    us(LARGE / 1e6 / c["mbps"], 1e3),
                    us(c.get("large_server"), 1e3),
                    us(c.get("large_client"), 1e3),
                ]
            )
    if cpu_rows and any(r[3] != "-" for r in cpu_rows):
        p()
        p(
            f"Time per echo: wall clock, and CPU time ({cpu}) of the server and client "
            f"processes; us per {SMALL} B round trip, ms per {LARGE // 2**20} MiB echo"
            + (" (medians)" if medians else "")
        )
        headers = ["loop", column, "wall us", "server us", "client us", "wall ms", "server ms", "client ms"]
        for line in _table(headers, cpu_rows, "llrrrrrr"):
            p(line)


def report(
    results: Dict[tuple, List[Dict[str, Any]]],
    loops: List[str],
    stacks: List[str],
    skipped: Dict[tuple, str],
    settings: Dict[str, Any],
    env: Dict[str, Any],
    out=sys.stdout,
) -> None:
    p = lambda s="": print(s, file=out)  # noqa: E731
    summary = summarize(results)
    p("fastws network echo benchmark")
    p(f"  machine: {env['cpu']}, {env['cpus']} cores; {env['python']}")
    p(
        f"  fastws {env['fastws']}; websockets {env['websockets']}; aiohttp {env['aiohttp']}; "
        f"picows {env['picows']} (aiofastnet {env['aiofastnet']}); uvloop {env['uvloop']}"
    )
    p(
        f"  one connection, one message in flight, server and client in separate processes; "
        f"{settings['duration']} s per measure after {settings['warmup']} s of warm-up per size"
        + (f", median of {settings['repeat']} runs" if settings["repeat"] > 1 else "")
        + (
            f"; server pinned to CPU {settings['pin'][0]}, client to CPU {settings['pin'][1]}"
            if settings.get("pin")
            else ""
        )
    )
    p(
        f"  round trips/s: {SMALL} B binary messages; MB/s: {LARGE // 2**20} MiB binary messages, "
        f"10^6 bytes echoed per second (one direction); 'vs X' = this / X (higher is faster)"
    )
    report_load(settings, p)
    rows = []
    notes = []
    for loop in loops:
        refs = {name: summary.get((loop, name)) for name in REFERENCES}
        for stack in stacks:
            key = (loop, stack)
            label = CASE_LABELS[stack]
            if key in skipped:
                rows.append([loop, label, "skipped", "-", "-", "-", "-", "-"])
                notes.append(f"{label} on {loop}: skipped, {skipped[key]}")
                continue
            s = summary.get(key)
            if s is None:
                errors = [r["error"] for r in results.get(key, []) if "error" in r]
                rows.append([loop, label, "FAILED" if errors else "not run", "-", "-", "-", "-", "-"])
                if errors:
                    notes.append(f"{label} on {loop}: {errors[-1]}")
                continue

            def ratio(measure, ref, s=s, refs=refs):
                r = refs[ref]
                return s[measure] / r[measure] if r and r[measure] else None

            rows.append(
                [
                    loop,
                    label,
                    _fmt_int(s["rate"]),
                    _fmt_ratio(ratio("rate", "picows")),
                    _fmt_ratio(ratio("rate", "aiohttp")),
                    _fmt_mb(s["mbps"]),
                    _fmt_ratio(ratio("mbps", "picows")),
                    _fmt_ratio(ratio("mbps", "aiohttp")),
                ]
            )
            failures = [r["error"] for r in results.get(key, []) if "error" in r]
            if failures:
                notes.append(f"{label} on {loop}: {len(failures)} of {len(results[key])} runs failed: {failures[-1]}")
    p()
    headers = ["loop", "stack", "round trips/s", "vs picows", "vs aiohttp", "MB/s", "vs picows", "vs aiohttp"]
    for line in _table(headers, rows, "llrrrrrr"):
        p(line)
    for note in notes:
        p(f"  ! {note}")

    report_cpu(summary, loops, stacks, CASE_LABELS, "stack", p)


# --- main ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.echo",
        description="Network echo benchmark: 32 B round trips/s and 1 MiB throughput, "
        "fastws (recv/send and Listener) against websockets, aiohttp, picows and raw TCP, "
        "on asyncio and uvloop.",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: --duration 0.3 --warmup 0.1")
    parser.add_argument("--duration", type=float, metavar="S", help="seconds per measure (default: 2; --quick: 0.3)")
    parser.add_argument(
        "--warmup", type=float, metavar="S", help="warm-up seconds per size (default: 0.3; --quick: 0.1)"
    )
    parser.add_argument(
        "--stacks",
        metavar="A,B",
        help=f"comma-separated stacks (default: {','.join(STACKS)}; also: {','.join(EXTRA_STACKS + SERVER_ONLY)},"
        " the last driven by picows's client)",
    )
    parser.add_argument("--loops", metavar="A,B", help=f"comma-separated loops (default: {','.join(LOOPS)})")
    parser.add_argument(
        "--compression",
        choices=["deflate"],
        help="measure with permessage-deflate on chat-like JSON payloads"
        " (stacks that support it: fastws, fastws-listener, websockets, aiohttp)",
    )
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="run every case N times, report the median")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="run every server on one CPU and every client on another (Linux): the same"
        " placement for every stack, steadier numbers than leaving it to the scheduler",
    )
    parser.add_argument("--json", metavar="PATH", help="also write every result, with the environment, here")
    parser.add_argument(
        "--profile-dir",
        metavar="DIR",
        help="run each server under cProfile, writing DIR/STACK-LOOP.prof (slows the servers down)",
    )
    return parser


def _split(value: Optional[str], default, allowed, what: str) -> List[str]:
    if not value:
        return list(default)
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise SystemExit(f"unknown {what}: {', '.join(bad)} (known: {', '.join(allowed)})")
    return items


def unavailable(stack: str) -> Optional[str]:
    """Why ``stack`` cannot run here (None: it can): a module it needs, or
    that the client it borrows needs, is missing."""
    needed = REQUIRES[stack] + (REQUIRES[BORROWED_CLIENT[stack]] if stack in BORROWED_CLIENT else ())
    missing = [m for m in dict.fromkeys(needed) if not _available(m)]
    return f"{', '.join(missing)} not installed" if missing else None


def skipped_cases(
    loops: List[str], names: List[str], unavailable: Callable[[str], Optional[str]]
) -> Dict[tuple, str]:
    """(loop, name): why that case cannot run here (its loop or what
    ``unavailable`` says of the name is missing)."""
    skipped: Dict[tuple, str] = {}
    for loop in loops:
        for name in names:
            if not _available(LOOP_MODULES[loop]):
                skipped[(loop, name)] = f"{loop} not installed"
            else:
                reason = unavailable(name)
                if reason:
                    skipped[(loop, name)] = reason
    return skipped


def add_load(settings: Dict[str, Any], load_before: Optional[float]) -> None:
    """settings["load"]: the load average before and after the run, where known."""
    load_after = _loadavg()
    if load_before is not None and load_after is not None:
        settings["load"] = [load_before, load_after]


def write_json(
    path: str,
    env: Dict[str, Any],
    settings: Dict[str, Any],
    skipped: Dict[tuple, str],
    results: Dict[tuple, List[Dict[str, Any]]],
    summary: Dict[tuple, Dict[str, Any]],
    column: str,
) -> None:
    """Every result, with the environment, the settings, the skipped cases
    and the summary, to ``path``; ``column`` names the second key ("stack")."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(
            {
                "environment": env,
                "settings": settings,
                "skipped": [{"loop": k[0], column: k[1], "reason": v} for k, v in skipped.items()],
                "results": [r for runs in results.values() for r in runs],
                "summary": [{"loop": k[0], column: k[1], **v} for k, v in summary.items()],
            },
            f,
            indent=1,
        )
    print(f"  results written to {path}")


def exit_code(results: Dict[tuple, List[Dict[str, Any]]]) -> int:
    """1 (said on stderr) if any case failed, else 0."""
    failed = sum(1 for runs in results.values() for r in runs if "error" in r)
    if failed:
        print(f"\n{failed} case(s) failed", file=sys.stderr)
        return 1
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    duration = args.duration if args.duration is not None else (0.3 if args.quick else 2.0)
    warmup = args.warmup if args.warmup is not None else (0.1 if args.quick else 0.3)
    if duration <= 0 or warmup < 0 or args.repeat < 1:
        raise SystemExit("--duration must be > 0, --warmup >= 0, --repeat >= 1")
    if args.compression:
        # Server and client processes read it from the environment.
        os.environ["FASTWS_BENCH_COMPRESSION"] = args.compression
        default_stacks = [s for s in STACKS if s in ("fastws", "fastws-listener", "websockets", "aiohttp")]
        stacks = _split(args.stacks, default_stacks, default_stacks, "stack")
    else:
        stacks = _split(args.stacks, STACKS, ALL_STACKS + SERVER_ONLY, "stack")
    loops = _split(args.loops, LOOPS, LOOPS, "loop")
    if args.profile_dir:
        os.makedirs(args.profile_dir, exist_ok=True)

    skipped = skipped_cases(loops, stacks, unavailable)

    cases = [(loop, stack) for loop in loops for stack in stacks if (loop, stack) not in skipped]
    pin = pin_cpus() if args.pin else None
    total = len(cases) * args.repeat
    results: Dict[tuple, List[Dict[str, Any]]] = {}
    env = environment()
    load_before = _loadavg()
    print(
        f"running {total} cases ({duration} s per measure, {warmup} s warm-up); progress on stderr",
        flush=True,
    )
    started = time.monotonic()
    done = 0
    try:
        for _ in range(args.repeat):
            for loop, stack in cases:
                done += 1
                profile = (
                    os.path.join(os.path.abspath(args.profile_dir), f"{stack}-{loop}.prof")
                    if args.profile_dir
                    else None
                )
                try:
                    result = run_case(stack, loop, duration, warmup, profile, pin, BORROWED_CLIENT.get(stack))
                    msg = f"{result['small']['rate']:,.0f} round trips/s, {result['large']['mb_per_s']:,.0f} MB/s"
                except CaseError as exc:
                    result = {"stack": stack, "loop": loop, "error": str(exc)}
                    msg = f"FAILED: {exc}"
                results.setdefault((loop, stack), []).append(result)
                print(f"[{done}/{total}] {CASE_LABELS[stack]} on {loop}: {msg}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("interrupted: reporting the cases that finished", file=sys.stderr)

    settings = {"duration": duration, "warmup": warmup, "repeat": args.repeat, "max_size": MAX_SIZE, "pin": pin}
    add_load(settings, load_before)
    print()
    report(results, loops, stacks, skipped, settings, env)
    print(f"\n  ({time.monotonic() - started:.0f} s)")
    if args.json:
        write_json(args.json, env, settings, skipped, results, summarize(results), "stack")
    return exit_code(results)


if __name__ == "__main__":
    sys.exit(main())

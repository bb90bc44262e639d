"""The compression group: permessage-deflate echo of chat-like JSON.

    python -m bench.compression            # the table (about a minute)
    python -m bench.compression --quick    # smoke run

Each stack serves an echo with permessage-deflate on, at its own default
settings, in one process (:mod:`bench.compression.servers`), and its own client
drives it from another (:mod:`bench.compression.client`), as :mod:`bench.echo`
does: a round trip is the client's compression and the server's, both
inflations, and the frames. Payloads: :mod:`bench.compression.payloads`.

Measures (``run_group``): round trips per second with a 32 B JSON object,
MB/s echoed with a 1 MiB JSON array, and the wire size of the server's 1 MiB
messages as a share of the payload (from the kernel's TCP byte counts of the
client's socket). fastws runs twice: with the zlib its run-time choice takes
here (``fastws.deflate_backends``: isal, zlib-ng or the standard library's),
and forced to the standard library's (``FASTWS_ZLIB=zlib``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from bench.results import ROOT, Context, GroupResult, GroupSkipped, Measure, subprocess_env

from .payloads import LARGE, SMALL


@dataclass(frozen=True)
class Case:
    """One line of the comparison: a server stack, driven by a client stack."""

    key: str
    label: str
    server: str
    requires: Tuple[str, ...]
    env: Dict[str, str] = field(default_factory=dict)
    fastws: bool = False


CASES: Tuple[Case, ...] = (
    Case("fastws", "fastws recv/send", "fastws", ("fastws",), fastws=True),
    Case("fastws-zlib", "fastws recv/send, stdlib zlib", "fastws", ("fastws",), {"FASTWS_ZLIB": "zlib"}, True),
    Case("fastws-listener", "fastws Listener", "fastws-listener", ("fastws",), fastws=True),
    Case("websockets", "websockets", "websockets", ("websockets",)),
    Case("aiohttp", "aiohttp", "aiohttp", ("aiohttp",)),
    Case("picows-websockets", "picows (websockets API)", "picows-websockets", ("picows",)),
    Case("socketify", "socketify (fastws client)", "socketify", ("socketify", "fastws")),
)
CASE_KEYS = tuple(case.key for case in CASES)

#: Why a stack is measured through another API than its own: a note of the
#: report, not a skip (the stack is in every table).
SUBSTITUTED = {
    "picows": "picows's own API (ws_create_server) has no permessage-deflate;"
    " measured through its websockets-compatible API (picows.websockets) instead",
}

READY_TIMEOUT = 30.0
CLIENT_SLACK = 30.0


class CaseError(Exception):
    """One run of one case failed (the message says how)."""


def unavailable(case: Case) -> Optional[str]:
    """Why ``case`` cannot run here, or None."""
    missing = [m for m in case.requires if importlib.util.find_spec(m) is None]
    if missing:
        return f"{', '.join(missing)} not installed"
    return None


def default_loop() -> str:
    return "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


def pin_cpus() -> Optional[Tuple[int, int]]:
    """(server CPU, client CPU), or None where this process may use fewer than two."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else None


def run_case(case: Case, loop: str, duration: float, warmup: float, pin: Optional[Tuple[int, int]]) -> Dict[str, Any]:
    """One run of ``case``: server up, client run, server stopped; the client's JSON."""
    from bench.echo.__main__ import _pinned, _stop, _wait_ready

    env = subprocess_env()
    env["FASTWS_BENCH_COMPRESSION"] = "deflate"
    env.setdefault("PYTHONHASHSEED", "0")
    env.pop("FASTWS_ZLIB", None)
    env.update(case.env)
    server_cpu, client_cpu = pin if pin else (None, None)
    with tempfile.TemporaryDirectory(prefix="fastws-compression-") as tmp:
        err_path = os.path.join(tmp, "server.err")
        with open(err_path, "wb") as err:
            server = subprocess.Popen(
                [sys.executable, "-m", "bench.compression.servers", case.server, loop, "0"],
                cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                preexec_fn=_pinned(server_cpu),
            )
        try:
            try:
                port = _wait_ready(server, READY_TIMEOUT, err_path)
            except Exception as exc:  # the echo's CaseError
                raise CaseError(str(exc)) from None
            timeout = 2 * (duration + warmup) + CLIENT_SLACK
            try:
                client = subprocess.run(
                    [
                        sys.executable, "-m", "bench.compression.client", case.server, loop, str(port),
                        f"--server-pid={server.pid}", f"--duration={duration}", f"--warmup={warmup}",
                    ],
                    cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                    preexec_fn=_pinned(client_cpu),
                )
            except subprocess.TimeoutExpired:
                raise CaseError(f"client timed out after {timeout:.0f} s") from None
            if client.returncode != 0:
                reason = (client.stderr.strip().splitlines() or [f"status {client.returncode}"])[-1]
                raise CaseError(f"client failed: {reason}")
            try:
                result: Dict[str, Any] = json.loads(client.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                raise CaseError(f"client printed no result: {client.stdout[-200:]!r}") from None
            return result
        finally:
            _stop(server)


def fastws_backend(env: Dict[str, str]) -> str:
    """The zlib backend fastws picks with ``env``'s FASTWS_ZLIB, with its version."""
    from fastws.deflate_backends import resolve

    backend = resolve(env.get("FASTWS_ZLIB") or "auto")
    return f"{backend.name} {backend.version}"


def settings(mode: str) -> Dict[str, Any]:
    """Seconds per measure, warm-up seconds and repeats for a mode."""
    return {
        "quick": {"duration": 0.3, "warmup": 0.1, "repeat": 1},
        "default": {"duration": 1.0, "warmup": 0.2, "repeat": 3},
        "full": {"duration": 3.0, "warmup": 0.5, "repeat": 5},
    }[mode]


def collect(
    cases: Sequence[Case],
    loop: str,
    duration: float,
    warmup: float,
    repeat: int,
    step: Callable[[str], None],
    pin: Optional[Tuple[int, int]],
) -> Tuple[Dict[str, List[Dict[str, Any]]], Dict[str, str]]:
    """Every run of every case, interleaved (case after case, ``repeat``
    rounds, so that a noisy minute spreads over all); and the failures."""
    runs: Dict[str, List[Dict[str, Any]]] = {case.key: [] for case in cases}
    failures: Dict[str, str] = {}
    for round_ in range(repeat):
        for case in cases:
            step(f"{case.label}: run {round_ + 1}/{repeat}")
            try:
                runs[case.key].append(run_case(case, loop, duration, warmup, pin))
            except CaseError as exc:
                failures[case.key] = str(exc)
    return runs, failures


def _per(result: Dict[str, Any], what: str, scale: float) -> Optional[float]:
    value = result.get(f"{what}_cpu_s")
    return None if value is None or not result["messages"] else value / result["messages"] * scale


def _median(values: List[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def measures(cases: Sequence[Case], runs: Dict[str, List[Dict[str, Any]]], loop: str) -> List[Measure]:
    """The group's three measures from the runs."""
    ok = [case for case in cases if runs.get(case.key)]
    labels = {case.key: case.label for case in ok}
    fastws = [case.label for case in ok if case.fastws]
    rtt: Dict[str, List[float]] = {}
    mbps: Dict[str, List[float]] = {}
    ratio: Dict[str, List[float]] = {}
    rtt_extra: Dict[str, Dict[str, Any]] = {}
    mbps_extra: Dict[str, Dict[str, Any]] = {}
    ratio_extra: Dict[str, Dict[str, Any]] = {}
    for case in ok:
        label, results = labels[case.key], runs[case.key]
        rtt[label] = [r["small"]["messages"] / r["small"]["seconds"] for r in results]
        mbps[label] = [r["large"]["mb_per_s"] for r in results]
        rtt_extra[label] = {
            "server CPU us per round trip": _median([_per(r["small"], "server", 1e6) for r in results]),
            "client CPU us per round trip": _median([_per(r["small"], "client", 1e6) for r in results]),
        }
        mbps_extra[label] = {
            "server CPU ms per 1 MiB echo": _median([_per(r["large"], "server", 1e3) for r in results]),
            "client CPU ms per 1 MiB echo": _median([_per(r["large"], "client", 1e3) for r in results]),
        }
        wire = [r for r in results if "wire_received" in r["large"] and r["large"]["messages"]]
        if wire:
            ratio[label] = [100 * r["large"]["wire_received"] / (r["large"]["messages"] * LARGE) for r in wire]
            ratio_extra[label] = {
                "client's messages, % of payload": _median(
                    [100 * r["large"]["wire_sent"] / (r["large"]["messages"] * LARGE) for r in wire]
                ),
                "32 B echo on the wire, bytes": _median(
                    [
                        r["small"]["wire_received"] / r["small"]["messages"]
                        for r in results
                        if r["small"].get("messages") and "wire_received" in r["small"]
                    ]
                ),
            }
    on = f"one connection, one message in flight, {loop}"
    result = [
        Measure(
            id="compression.rtt_32",
            title=f"Compressed echo: round trips per second, {SMALL} B JSON object ({on})",
            unit="round trips/s",
            higher_is_better=True,
            samples=rtt,
            fastws=[f for f in fastws if f in rtt],
            chart="compression.rtt_32",
            short=f"{SMALL} B",
            extra=rtt_extra,
            note="Each stack's own client and its default permessage-deflate settings; CPU per round trip from /proc.",
        ),
        Measure(
            id="compression.mbps_1m",
            title=f"Compressed echo: MB/s echoed, 1 MiB JSON array ({on})",
            unit="MB/s",
            higher_is_better=True,
            samples=mbps,
            fastws=[f for f in fastws if f in mbps],
            chart="compression.mbps_1m",
            short="1 MiB",
            extra=mbps_extra,
            note="10^6 payload bytes echoed per second (one direction): compress, inflate, frame, on both ends.",
        ),
    ]
    if ratio:
        result.append(
            Measure(
                id="compression.ratio",
                title="Compressed size of the server's 1 MiB JSON messages on the wire (% of the payload)",
                unit="%",
                higher_is_better=False,
                samples=ratio,
                fastws=[f for f in fastws if f in ratio],
                chart="compression.ratio",
                short="1 MiB",
                extra=ratio_extra,
                note="Bytes the client's socket received during the 1 MiB measure (TCP_INFO tcpi_bytes_received,"
                " frame headers included) / payload bytes echoed.",
            )
        )
    return result


def _version(dist: str) -> Optional[str]:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001 - not installed
        return None


def run_group(ctx: Context) -> GroupResult:
    """Measure every case in the same run (see the module docstring)."""
    if not hasattr(os, "sched_getaffinity") or not os.path.exists("/proc/self/fd"):
        raise GroupSkipped("needs Linux (/proc, TCP_INFO)")
    mode = ctx.pick(*(settings(name) for name in ("quick", "default", "full")))
    loop = default_loop()
    pin = pin_cpus()
    skipped: Dict[str, str] = {}
    cases = []
    for case in CASES:
        reason = unavailable(case)
        if reason:
            skipped[case.label] = reason
        else:
            cases.append(case)
    if not any(case.fastws for case in cases):
        raise GroupSkipped("fastws is not importable")
    runs, failures = collect(cases, loop, mode["duration"], mode["warmup"], mode["repeat"], ctx.step, pin)
    for case in cases:
        if case.key in failures and not runs[case.key]:
            skipped[case.label] = f"failed: {failures[case.key]}"
    backends = {case.label: fastws_backend(case.env) for case in cases if case.fastws}
    method = (
        "Each stack serves an echo with permessage-deflate at its own default settings in one process and its own"
        " client drives it from another (socketify, which has no Python client, is driven by fastws's)"
        + (f"; server on CPU {pin[0]}, client on CPU {pin[1]}" if pin else "")
        + f". Loop: {loop}. One connection, one message in flight: {mode['warmup']} s of warm-up per size, then"
        f" {mode['duration']} s of {SMALL} B round trips and {mode['duration']} s of 1 MiB echoes, {mode['repeat']}"
        f" run(s) per stack, interleaved. Payloads: chat-like JSON (keys type/id/room/user/ts/text, varied text),"
        f" two versions alternated and checked on every echo, sent as binary messages. Wire sizes from the kernel's"
        f" TCP byte counts of the client's socket. fastws's zlib: "
        + "; ".join(f"{label}: {name}" for label, name in backends.items())
        + "."
    )
    notes = [f"{key}: {reason}" for key, reason in failures.items() if runs.get(key)]
    measured = {case.server for case in cases if runs.get(case.key)}
    notes += [f"{stack}: {why}" for stack, why in SUBSTITUTED.items() if f"{stack}-websockets" in measured]
    versions = {
        dist: v
        for dist in ("websockets", "aiohttp", "picows", "socketify", "isal", "zlib-ng", "uvloop")
        if (v := _version(dist))
    }
    return GroupResult(
        measures=measures(cases, runs, loop), skipped=skipped, method=method, notes=notes, versions=versions
    )

"""The synchronous-client group of ``python -m bench``: :func:`run_group`.

Runs ``python -m bench.sync --servers SERVER --json FILE`` once per echo
server (``fastws.serve`` on uvloop when installed, and ``fastws.sync``'s own
server), each in a process of its own so that the clients' CPU time is theirs
alone, and turns each turn's figures into samples: round trips per second of
one connection sending 32 B messages, and the client process's CPU time per
round trip, for fastws.sync, fastws's asyncio client, websockets.sync and a
raw blocking socket (the floor).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from typing import Any, Dict, List, Tuple

from bench.echo.group import labelled
from bench.results import Context, GroupResult, GroupSkipped, Measure
from bench.sync.__main__ import CLIENTS, SERVERS, _default_loop

LABELS = {
    "fastws.sync": "fastws.sync",
    "fastws.asyncio": "fastws asyncio client",
    "websockets.sync": "websockets.sync",
    "raw-socket": "raw blocking socket (floor)",
}
FASTWS = ("fastws.sync", "fastws.asyncio")
FLOOR = "raw-socket"
SIZE = 32


def server_label(server: str, loop: str) -> str:
    return f"{server} server" + (f" on {loop}" if server == "fastws.serve" else ", a thread per connection")


def to_measures(data: List[Dict[str, Any]], loop: str) -> Tuple[List[Measure], List[str]]:
    """Measures of the ``servers`` entries of ``python -m bench.sync --json``
    (``sync.rate.SERVER`` and ``sync.cpu.SERVER``, charts ``sync.rate`` and
    ``sync.cpu`` with the servers as groups), and notes on failed clients."""
    order = [LABELS[c] for c in CLIENTS]
    measures: List[Measure] = []
    notes: List[str] = []
    for entry in data:
        server = entry["server"]
        where = server_label(server, loop)
        for client, error in entry["errors"].items():
            notes.append(f"{LABELS.get(client, client)} against the {where}: failed: {error}")
        rates = {LABELS[c]: list(row["rates"]) for c, row in entry["summary"].items()}
        cpus = {LABELS[c]: list(row["cpus"]) for c, row in entry["summary"].items()}
        slug = server.replace(".", "-")
        for kind, samples, chart_title, unit, higher, note in (
            ("rate", rates, f"Round trips per second of one client connection, {SIZE} B messages",
             "round trips/s", True, "Send a message, wait for its echo, again; the clients measured in turns."),
            ("cpu", cpus, f"Client CPU time per {SIZE} B round trip", "µs", False,
             ("User + system time of the client process per round trip: what other load on the machine disturbs"
             " least.")),
        ):  # fmt: skip
            if not samples:
                continue
            measures.append(
                Measure(
                    id=f"sync.{kind}.{slug}",
                    title=f"{chart_title} ({where})",
                    unit=unit,
                    higher_is_better=higher,
                    samples=labelled(samples, order),
                    fastws=[LABELS[c] for c in FASTWS if LABELS[c] in samples],
                    floor=LABELS[FLOOR] if LABELS[FLOOR] in samples else None,
                    chart=f"sync.{kind}",
                    chart_title=chart_title,
                    short=f"{server} server",
                    note=note,
                )
            )
    return measures, notes


def run_group(ctx: Context) -> GroupResult:
    """Every client against each echo server, in turns.

    quick: 2 turns of 0.1 s; default: 5 turns of 0.5 s; full: 7 turns of 2 s
    (the standalone default).

    Raises:
        GroupSkipped: when fastws.sync cannot be imported.
    """
    try:
        import fastws.sync.client  # noqa: F401
    except ImportError as exc:
        raise GroupSkipped(f"fastws.sync cannot be imported: {exc}") from None
    runs, duration, warmup = ctx.pick((2, 0.1, 0.05), (5, 0.5, 0.1), (7, 2.0, 0.3))
    loop = _default_loop()
    data: List[Dict[str, Any]] = []
    skipped: Dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="fastws-sync-") as tmp:
        for i, server in enumerate(SERVERS, 1):
            ctx.step(f"sync: every client against the {server} server ({i}/{len(SERVERS)}), {runs} turns")
            path = os.path.join(tmp, f"{server}.json")
            timeout = 60 + runs * len(CLIENTS) * (duration + warmup + 2)
            try:
                ctx.python(
                    "-m", "bench.sync", "--servers", server, f"--size={SIZE}", f"--runs={runs}",
                    f"--duration={duration}", f"--warmup={warmup}", f"--server-loop={loop}", f"--json={path}",
                    timeout=timeout,
                )  # fmt: skip
            except subprocess.CalledProcessError as exc:
                if not os.path.exists(path):  # with the JSON, a client failed: in its notes
                    last = (exc.stderr or "").strip().splitlines()[-1:] or [f"status {exc.returncode}"]
                    skipped[server_label(server, loop)] = f"failed: {last[0]}"
                    continue
            except subprocess.TimeoutExpired:
                skipped[server_label(server, loop)] = f"failed: timed out after {timeout:.0f} s"
                continue
            with open(path, encoding="utf-8") as f:
                data.extend(json.load(f)["servers"])
    measures, notes = to_measures(data, loop)
    method = (
        f"One connection, {SIZE} B binary messages, send then wait for the echo, again; each client measured in"
        f" {runs} turns of {duration} s (after {warmup} s of warm-up), the order rotated each turn, in one"
        " process (python -m bench.sync) per server; the servers: fastws.serve (bench.echo's, on"
        f" {loop}) and fastws.sync's own, each in a process of its own. No compression, no keepalive."
    )
    return GroupResult(measures=measures, skipped=skipped, method=method, notes=notes)

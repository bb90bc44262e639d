"""The groups ``python -m bench`` knows, and the loop that runs them.

Each group is a module with ``run_group(ctx) -> GroupResult`` (see
:mod:`bench.results`). :func:`run_suite` runs the chosen groups one after the
other, shows progress, and keeps going when one fails: its error is recorded
in the results and the report, and the exit status says so.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO

from .results import Context, GroupResult, GroupSkipped


@dataclass(frozen=True)
class Group:
    """A benchmark group of the suite.

    Attributes:
        name: What ``--only`` takes.
        module: The module holding ``run_group``.
        title: A heading for the report.
        default: Whether the default run includes it (``--quick`` and
            ``--full`` run every group).
    """

    name: str
    module: str
    title: str
    default: bool = True


GROUPS: Sequence[Group] = (
    Group("codec", "bench.kernels", "Codec kernels: masking, UTF-8 validation, frame parsing and building"),
    Group("echo", "bench.echo.group", "Echo on one connection: round trips and throughput"),
    Group("handshake", "bench.handshake", "Handshakes: new sessions per second"),
    Group("memory", "bench.memory", "Idle memory per open connection"),
    Group("broadcast", "bench.broadcast", "Broadcast to many connections"),
    Group("compression", "bench.compression", "Compression: permessage-deflate echo"),
    Group("accelerate", "bench.accelerate_group", "Patched libraries (fastws.accelerate)", default=False),
    Group("asgi", "bench.asgi.group", "ASGI: uvicorn with fastws and its other WebSocket backends", default=False),
    Group("sync", "bench.sync.group", "Synchronous API: fastws.sync against websockets.sync", default=False),
    Group("pubsub", "bench.pubsub.group", "Pub/sub fan-out across worker processes", default=False),
    Group("workers", "bench.workers.group", "Worker processes: scaling with SO_REUSEPORT", default=False),
)

GROUPS_BY_NAME: Dict[str, Group] = {group.name: group for group in GROUPS}


def select(mode: str, only: Optional[Sequence[str]] = None) -> List[Group]:
    """The groups a run covers.

    Raises:
        ValueError: If *only* names a group that does not exist.
    """
    if only:
        unknown = [name for name in only if name not in GROUPS_BY_NAME]
        if unknown:
            raise ValueError(
                f"unknown group {', '.join(unknown)}: choose from {', '.join(GROUPS_BY_NAME)}"
            )
        return [group for group in GROUPS if group.name in only]
    if mode == "default":
        return [group for group in GROUPS if group.default]
    return list(GROUPS)


@dataclass
class GroupRun:
    """How one group's run went."""

    group: Group
    result: Optional[GroupResult] = None
    skipped: Optional[str] = None  #: the whole group did not run, and why
    error: Optional[str] = None  #: the group failed: the traceback's last lines
    seconds: float = 0.0


class Progress:
    """One status line per group: rewritten in place on a terminal, else a line per step."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream = stream
        self.total = total
        self.tty = stream.isatty()
        self.index = 0
        self.name = ""
        self.started = 0.0
        self._width = 0

    def start(self, index: int, name: str) -> None:
        self.index, self.name, self.started = index, name, time.monotonic()
        self.step("starting")

    def _prefix(self) -> str:
        elapsed = time.monotonic() - self.started
        return f"[{self.index}/{self.total}] {self.name:<11} {elapsed:5.0f} s  "

    def step(self, message: str) -> None:
        line = self._prefix() + " ".join(message.split())
        if self.tty:
            columns = _columns()
            line = line[: columns - 1]
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self, run: GroupRun) -> None:
        if run.error is not None:
            outcome = f"FAILED: {run.error.splitlines()[-1] if run.error else 'error'}"
        elif run.skipped is not None:
            outcome = f"skipped: {run.skipped}"
        else:
            assert run.result is not None
            outcome = f"{len(run.result.measures)} measures"
            if run.result.skipped:
                outcome += f" ({len(run.result.skipped)} skipped: see the report)"
        line = f"[{self.index}/{self.total}] {self.name:<11} {run.seconds:5.0f} s  {outcome}"
        if self.tty:
            self.stream.write("\r" + line.ljust(self._width) + "\n")
            self._width = 0
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _columns() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 100


def run_group(group: Group, ctx: Context) -> GroupRun:
    """Import and run one group, catching whatever it raises."""
    run = GroupRun(group)
    started = time.monotonic()
    try:
        module = importlib.import_module(group.module)
        result = module.run_group(ctx)
        if not isinstance(result, GroupResult):
            raise TypeError(f"{group.module}.run_group() returned {type(result).__name__}, not GroupResult")
        run.result = result
    except GroupSkipped as exc:
        run.skipped = str(exc) or "no reason given"
    except KeyboardInterrupt:
        raise
    except Exception:
        run.error = "".join(traceback.format_exc(limit=-4)).strip()
    run.seconds = time.monotonic() - started
    return run


def run_suite(
    groups: Sequence[Group],
    mode: str,
    out_dir: str,
    stream: TextIO = sys.stdout,
    runner: Callable[[Group, Context], GroupRun] = run_group,
) -> List[GroupRun]:
    """Run *groups* in order, showing progress on *stream*."""
    progress = Progress(stream, len(groups))
    runs = []
    for index, group in enumerate(groups, 1):
        progress.start(index, group.name)
        group_dir = os.path.join(out_dir, "groups", group.name)
        os.makedirs(group_dir, exist_ok=True)
        run = runner(group, Context(mode=mode, out_dir=group_dir, step=progress.step))
        progress.finish(run)
        runs.append(run)
    return runs


# --- the machine -------------------------------------------------------------------

VERSIONED = (
    "websockets",
    "aiohttp",
    "picows",
    "socketify",
    "uvloop",
    "wsproto",
    "uvicorn",
    "zlib-ng",
    "isal",
    "redis",
    "channels",
    "python-socketio",
    "matplotlib",
    "Cython",
)


def _version(dist: str) -> Optional[str]:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total() -> Optional[str]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    except (OSError, ValueError):
        pass
    return None


def machine() -> Dict[str, Any]:
    """What the report says about where it ran."""
    import fastws

    info: Dict[str, Any] = {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory": _mem_total(),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "fastws": f"{fastws.__version__} ({fastws.IMPLEMENTATION})",
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if fastws.IMPLEMENTATION == "cython":
        from fastws import _speedups

        info["fastws_kernels"] = _speedups.simd_level()
    info["versions"] = {dist: v for dist in VERSIONED if (v := _version(dist)) is not None}
    return info

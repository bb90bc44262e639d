"""The codec kernels: masking, UTF-8 validation, frame parsing and building.

    python -m bench.kernels                      # every kernel benchmark, short settings
    python -m bench.kernels -k test_mask         # only what pytest's -k selects
    python -m bench.kernels -k "parse or build" --max-time 1 --json results.json
    python -m bench.kernels --report results.json   # print the report of an earlier run
    python -m bench.kernels -- -x --benchmark-disable-gc   # after --: passed to pytest

Runs ``pytest bench --benchmark-only --benchmark-json=FILE`` in a subprocess from
the repository root, then prints :mod:`bench.report` on FILE. Any option not listed
below also goes to pytest. The exit code is pytest's when it failed, else 0.

:func:`run_group` is the ``codec`` group of ``python -m bench``: it runs the
kernel benchmarks of ``bench/test_mask.py``, ``test_utf8.py``, ``test_parse.py``
and ``test_build.py`` a few times and turns pytest-benchmark's JSON into
:class:`~bench.results.Measure` objects (see :func:`measures_from_runs`).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

if __package__ in (None, ""):  # python bench/kernels.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.results import ROOT, Context, GroupResult, GroupSkipped, Measure, subprocess_env

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))


# --- python -m bench.kernels -------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.kernels",
        description="Run the fastws kernel benchmarks (pytest-benchmark) and print a comparison table.",
        epilog="Unknown options, and everything after --, are passed to pytest.",
    )
    parser.add_argument("-k", dest="keyword", metavar="EXPR", help="pytest -k expression, e.g. 'test_mask and 64KiB'")
    parser.add_argument(
        "--json",
        metavar="PATH",
        help="keep pytest-benchmark's JSON results here (default: a temporary file, deleted)",
    )
    parser.add_argument(
        "--max-time",
        type=float,
        default=0.2,
        metavar="S",
        help="pytest-benchmark's --benchmark-max-time per benchmark (default: 0.2)",
    )
    parser.add_argument(
        "--min-rounds",
        type=int,
        default=5,
        metavar="N",
        help="pytest-benchmark's --benchmark-min-rounds (default: 5)",
    )
    parser.add_argument(
        "--min-time",
        type=float,
        default=0.0001,
        metavar="S",
        help="pytest-benchmark's --benchmark-min-time, the least duration of one round: "
        "fast calls are repeated within a round (default: 0.0001, which keeps timer "
        "overhead small and the JSON to a few MB)",
    )
    parser.add_argument(
        "--stat",
        choices=("median", "mean", "min"),
        default="median",
        help="statistic for throughput and ratios in the report (default: median)",
    )
    parser.add_argument(
        "--baseline",
        metavar="NAME",
        help="compare every group against this implementation (its display name, e.g. 'fastws[cython] apply_mask')",
    )
    parser.add_argument(
        "--report",
        metavar="PATH",
        help="do not run anything: print the report of an existing JSON file",
    )
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: List[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    args, unknown = build_parser().parse_known_args(argv)
    extra = unknown + extra

    # Imported here so that `python -m bench.kernels --help` works without pytest.
    from bench import report

    if args.report:
        report.report(report.load(args.report), stat=args.stat, baseline=args.baseline)
        return 0

    if args.json:
        json_path = os.path.abspath(args.json)
        cleanup = False
    else:
        fd, json_path = tempfile.mkstemp(prefix="fastws-bench-", suffix=".json")
        os.close(fd)
        os.unlink(json_path)  # written by pytest-benchmark only if something ran
        cleanup = True

    cmd = [
        sys.executable,
        "-m",
        "pytest",
        BENCH_DIR,
        "--benchmark-only",
        f"--benchmark-json={json_path}",
        f"--benchmark-max-time={args.max_time}",
        f"--benchmark-min-rounds={args.min_rounds}",
        f"--benchmark-min-time={args.min_time}",
        "--benchmark-quiet",  # our report replaces pytest-benchmark's own table
        "-q",
        "-rs",  # list skipped implementations with their reasons
        "-p",
        "no:cacheprovider",
    ]
    if args.keyword:
        cmd += ["-k", args.keyword]
    cmd += extra

    print("+ " + " ".join(cmd[2:]), flush=True)
    try:
        rc = subprocess.call(cmd, cwd=ROOT, env=subprocess_env())
    except KeyboardInterrupt:
        rc = 130

    try:
        # pytest-benchmark creates the file even when nothing ran (left empty).
        data = None
        if os.path.exists(json_path) and os.path.getsize(json_path) > 0:
            try:
                data = report.load(json_path)
            except ValueError as exc:
                print(f"\ncannot read {json_path}: {exc}", file=sys.stderr)
        if data is not None:
            print()
            sys.stdout.flush()
            report.report(data, stat=args.stat, baseline=args.baseline)
            if not cleanup:
                print(f"\nresults kept in {json_path}")
        else:
            print("\nno benchmark results were written", file=sys.stderr)
    finally:
        if cleanup and os.path.exists(json_path):
            os.unlink(json_path)

    if rc != 0:
        print(f"\npytest exited with status {rc}", file=sys.stderr)
    return rc


# --- the codec group of python -m bench --------------------------------------------

#: The benchmark files of the group. Left out: test_deflate.py (the compression
#: group's subject), test_connection.py and test_protocol.py (fastws's own layers
#: above the codec, with no peer to set them against); python -m bench.kernels
#: still runs them.
GROUP_FILES = ("test_mask.py", "test_utf8.py", "test_parse.py", "test_build.py")

#: The role of a stack in a measure.
FASTWS, PURE, PEER, FLOOR = "fastws", "pure", "peer", "floor"


@dataclass(frozen=True)
class Stack:
    """What a benchmark row is, for the suite: the label a reader sees and its role.

    ``PURE`` is fastws's pure-Python twin: one of fastws's stacks
    (:attr:`Measure.fastws`), never a peer, and never the best one when the
    compiled core is built.
    """

    label: str
    role: str


#: (test function, the ``impl`` parameter) -> the stack. In-place masks and
#: allocating ones are separate measures: the kernel name says which.
STACKS: Dict[Tuple[str, str], Stack] = {
    # masking in place: a bytearray XOR-ed again and again
    ("mask_inplace", "fastws-cython-inplace"): Stack("fastws apply_mask_inplace", FASTWS),
    ("mask_inplace", "fastws-python-inplace"): Stack("fastws pure-Python apply_mask_inplace", PURE),
    ("mask_inplace", "aiohttp"): Stack("aiohttp _websocket_mask_cython (in place)", PEER),
    ("mask_inplace", "call-floor"): Stack("a C call with the same arguments (floor)", FLOOR),
    # masking into new bytes
    ("mask", "fastws-cython"): Stack("fastws apply_mask", FASTWS),
    ("mask", "fastws-python"): Stack("fastws pure-Python apply_mask", PURE),
    ("mask", "websockets-speedups"): Stack("websockets.speedups apply_mask", PEER),
    ("mask", "websockets-utils"): Stack("websockets.utils apply_mask (pure Python)", PEER),
    ("mask", "wsaccel"): Stack("wsaccel XorMaskerSimple", PEER),
    ("mask", "copy-floor"): Stack("bytes(bytearray) copy (floor)", FLOOR),
    # UTF-8 validation
    ("utf8", "fastws-cython"): Stack("fastws validate_utf8", FASTWS),
    ("utf8", "fastws-python"): Stack("fastws pure-Python validate_utf8", PURE),
    ("utf8", "decode"): Stack("bytes.decode (CPython)", PEER),
    ("utf8", "wsaccel"): Stack("wsaccel Utf8Validator", PEER),
    # frame parsing
    ("parse", "fastws-cython"): Stack("fastws FrameParser", FASTWS),
    ("parse", "fastws-python"): Stack("fastws pure-Python FrameParser", PURE),
    ("parse", "websockets"): Stack("websockets Frame.parse", PEER),
    ("parse", "wsproto"): Stack("wsproto FrameProtocol (pure Python)", PEER),
    ("parse", "aiohttp"): Stack("aiohttp WebSocketReader", PEER),
    ("parse", "picows"): Stack("picows WSProtocol", PEER),
    # frame building
    ("build", "fastws-cython"): Stack("fastws build_frame", FASTWS),
    ("build", "fastws-python"): Stack("fastws pure-Python build_frame", PURE),
    ("build", "websockets"): Stack("websockets Frame.serialize", PEER),
    ("build", "wsproto"): Stack("wsproto FrameProtocol.send_data (pure Python)", PEER),
    ("build", "aiohttp"): Stack("aiohttp WebSocketWriter", PEER),
    ("build", "picows"): Stack("picows WSTransport.send", PEER),
}

#: Kernel -> (measure title prefix, chart title, unit, what one value is).
KERNELS: Dict[str, Tuple[str, str, str]] = {
    "mask_inplace": (
        "Masking in place",
        "Masking in place (a bytearray XOR-ed with a 4-byte key, no allocation): ns per call",
        "ns",
    ),
    "mask": (
        "Masking into new bytes",
        "Masking into new bytes (XOR with a 4-byte key): ns per call",
        "ns",
    ),
    "utf8": (
        "UTF-8 validation",
        "UTF-8 validation: GB/s",
        "GB/s",
    ),
    "parse": (
        "Frame parsing",
        "Frame parsing (a buffer of masked client frames, a fresh parser): ns per frame",
        "ns/frame",
    ),
    "build": (
        "Frame building",
        "Frame building (one final binary frame): ns per frame",
        "ns/frame",
    ),
}
KERNEL_ORDER = tuple(KERNELS)
ROLE_ORDER = (FASTWS, PURE, PEER, FLOOR)

#: Row notes of the benchmark files that a measure's title already says.
SAID_BY_TITLE = frozenset({"in place on a bytearray, no allocation"})

#: From this size on, time measures also give GB/s (in ``Measure.extra``).
GBPS_FROM = 64 * 1024


def kernel_of(function: str, impl: str) -> Optional[str]:
    """The group's kernel for a benchmark (``test_mask``, ``"aiohttp"`` ->
    ``"mask_inplace"``), or ``None`` for a benchmark outside the group."""
    kernel = function[len("test_"):] if function.startswith("test_") else function
    if kernel == "mask" and ("mask_inplace", impl) in STACKS:
        return "mask_inplace"
    return kernel if kernel in KERNELS else None


def stack_of(kernel: str, impl: str, display: str) -> Stack:
    """The stack of a row; one this module does not know keeps its display name
    and is a peer unless that name says fastws."""
    known = STACKS.get((kernel, impl))
    if known is not None:
        return known
    if display.startswith("fastws[python]"):
        return Stack(display, PURE)
    if display.startswith("fastws"):
        return Stack(display, FASTWS)
    if display.startswith("floor"):
        return Stack(display, FLOOR)
    return Stack(display, PEER)


#: The statistic of a run's rounds that is its sample: the fastest round. A
#: round lasts at least 100 µs (thousands of calls of a small kernel), so the
#: fastest one is the cost of a call when no other process interrupted it; on a
#: shared machine the median round moves by ±20% from run to run, the fastest
#: by ±5%.
RUN_STAT = "min"


def _value(kernel: str, seconds: float, info: Dict[str, Any]) -> float:
    """One run's figure for a row, in its kernel's unit, from its time per call."""
    unit = KERNELS[kernel][2]
    if unit == "GB/s":
        return info["bytes_per_call"] / seconds / 1e9
    if unit == "ns/frame":
        return seconds * 1e9 / info.get("frames_per_call", 1)
    return seconds * 1e9


#: The measures that the terminal's short summary shows: one or two per kernel (every
#: measure is in report.md).
HEADLINES = frozenset(
    {
        "codec.mask_inplace.16B",
        "codec.mask_inplace.64KiB",
        "codec.mask.16B",
        "codec.utf8.mixed64KiB",
        "codec.parse.1000x16Bmasked",
        "codec.build.16Bmasked",
    }
)


def _case_id(case: str) -> str:
    return case.replace(" x ", "x").replace(" ", "")


@dataclass
class _Cell:
    kernel: str
    case: str
    order: float
    stacks: Dict[str, Stack]
    values: Dict[str, List[float]]
    notes: Dict[str, str]
    bytes_per_call: Optional[int]


def measures_from_runs(runs: Sequence[Dict[str, Any]]) -> List[Measure]:
    """Measures from the JSON of repeated pytest-benchmark runs of the kernel files.

    One measure per kernel and case (``codec.mask_inplace.16B``...), with one
    sample per run and stack: that run's fastest round (:data:`RUN_STAT`), as ns per call
    (masks), ns per frame (parsing and building: the call's time over its frame
    count) or GB/s (UTF-8 validation). Measures of a kernel share a chart
    (``codec.<kernel>``, cases on the x axis, logarithmic: sizes and stacks
    span decades). In-place masks are measured against in-place ones only,
    allocating ones against allocating ones. fastws's pure-Python twin is one
    of fastws's stacks (in ``Measure.fastws``), never a peer; floors are
    ``Measure.floor``.
    """
    cells: Dict[Tuple[str, str], _Cell] = {}
    for data in runs:
        for bench in data.get("benchmarks", []):
            info = bench.get("extra_info", {})
            function = bench.get("name", "").split("[", 1)[0]
            impl = str(bench.get("params", {}).get("impl", ""))
            kernel = kernel_of(function, impl)
            if kernel is None or "case" not in info:
                continue
            stack = stack_of(kernel, impl, str(info.get("impl", impl)))
            cell = cells.get((kernel, info["case"]))
            if cell is None:
                cell = cells[(kernel, info["case"])] = _Cell(
                    kernel, info["case"], float(info.get("order", 0)), {}, {}, {}, info.get("bytes_per_call")
                )
            cell.stacks[stack.label] = stack
            cell.values.setdefault(stack.label, []).append(_value(kernel, bench["stats"][RUN_STAT], info))
            if info.get("note"):
                cell.notes[stack.label] = info["note"]

    measures = []
    for cell in sorted(cells.values(), key=lambda c: (KERNEL_ORDER.index(c.kernel), c.order, c.case)):
        title, chart_title, unit = KERNELS[cell.kernel]
        labels = sorted(cell.values, key=lambda label: ROLE_ORDER.index(cell.stacks[label].role))
        floors = [label for label in labels if cell.stacks[label].role == FLOOR]
        extra: Dict[str, Dict[str, Any]] = {}
        if unit == "ns" and cell.bytes_per_call and cell.bytes_per_call >= GBPS_FROM:
            for label in labels:
                if cell.kernel == "mask_inplace" and cell.stacks[label].role == FLOOR:
                    continue  # a call that moves no byte has no throughput
                extra[label] = {"GB/s": round(cell.bytes_per_call / statistics.median(cell.values[label]), 2)}
        notes = "; ".join(
            f"{label}: {cell.notes[label]}"
            for label in labels
            if label in cell.notes and cell.notes[label] not in SAID_BY_TITLE
        )
        measure_id = f"codec.{cell.kernel}.{_case_id(cell.case)}"
        measures.append(
            Measure(
                id=measure_id,
                title=f"{title}, {cell.case}",
                unit=unit,
                higher_is_better=unit.endswith("/s"),
                samples={label: cell.values[label] for label in labels},
                fastws=[label for label in labels if cell.stacks[label].role in (FASTWS, PURE)],
                floor=floors[0] if floors else None,
                chart=f"codec.{cell.kernel}",
                short=cell.case,
                chart_title=chart_title,
                log=True,
                extra=extra,
                note=notes,
                headline=measure_id in HEADLINES,
            )
        )
    return measures


# --- skipped and failed rows, from pytest's JUnit XML --------------------------------


def outcomes_from_junit(path: str) -> Tuple[Dict[str, str], Dict[str, str]]:
    """``(skipped, failed)``: stack label -> why, for the rows that did not run
    (a peer not installed, the compiled core not built) and those that failed."""
    skipped: Dict[str, str] = {}
    failed: Dict[str, str] = {}
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        name = case.get("name", "")
        function, _, param = name.partition("[")
        param = param.rstrip("]")
        impls = sorted(
            {impl for kernel, impl in STACKS if param.endswith("-" + impl)}, key=len, reverse=True
        )
        impl = impls[0] if impls else param
        kernel = kernel_of(function, impl)
        if kernel is None:
            continue
        label = stack_of(kernel, impl, impl).label
        for tag, into in (("skipped", skipped), ("failure", failed), ("error", failed)):
            element = case.find(tag)
            if element is not None:
                into.setdefault(label, (element.get("message") or tag).splitlines()[0][:300])
    return skipped, failed


# --- run_group -----------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    repeats: int
    max_time: float
    deselect: str  # a pytest -k expression of what to leave out, or ""


def settings(ctx: Context) -> Settings:
    """quick: 3 short runs (about 15 s on a quiet machine), default: 5 (about
    40 s), full: 7 longer ones with the 16 MiB masks (a few minutes)."""
    return ctx.pick(
        Settings(repeats=3, max_time=0.005, deselect="16MiB"),
        Settings(repeats=5, max_time=0.02, deselect="16MiB"),
        Settings(repeats=7, max_time=0.2, deselect=""),
    )


def pytest_command(json_path: str, junit_path: str, config: Settings) -> List[str]:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *(os.path.join(BENCH_DIR, name) for name in GROUP_FILES),
        "--benchmark-only",
        f"--benchmark-json={json_path}",
        f"--benchmark-max-time={config.max_time}",
        "--benchmark-min-rounds=5",
        "--benchmark-min-time=0.0001",
        # a few calls before timing, so that the first row is not the one
        # that pays for cold caches
        "--benchmark-warmup=on",
        "--benchmark-warmup-iterations=100",
        "--benchmark-quiet",
        f"--junitxml={junit_path}",
        "-o",
        "junit_family=xunit2",
        "-q",
        "-p",
        "no:cacheprovider",
    ]
    if config.deselect:
        cmd += ["-k", f"not ({config.deselect})"]
    return cmd


def _bench_cpu() -> Optional[int]:
    """The CPU the benchmark process is pinned to: the last one this process may
    use, when it may use two or more (the first is where the runner and the
    rest of the system tend to be)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[-1] if len(cpus) >= 2 else None


def _run_once(index: int, config: Settings, ctx: Context, tmp: str) -> Tuple[Dict[str, Any], str]:
    json_path = os.path.join(tmp, f"run{index}.json")
    junit_path = os.path.join(tmp, f"run{index}.xml")
    cpu = _bench_cpu()
    done = subprocess.run(
        pytest_command(json_path, junit_path, config),
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=1800,
        preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None,
    )
    if done.returncode not in (0, 1) or not os.path.exists(json_path):
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"pytest-benchmark exited with status {done.returncode}:\n{tail}")
    with open(json_path, encoding="utf-8") as f:
        data = json.load(f)
    if ctx.out_dir:
        with open(os.path.join(ctx.out_dir, f"pytest-benchmark-run{index}.json"), "w", encoding="utf-8") as f:
            json.dump(data, f)
    return data, junit_path


def _tail(path: str) -> str:
    """The last two parts of a path: ``groups/codec`` for the runner's group directory."""
    parent, name = os.path.split(os.path.normpath(path))
    return f"{os.path.basename(parent)}/{name}" if parent else name


def _versions() -> Dict[str, str]:
    versions = {}
    for dist in ("pytest-benchmark", "wsaccel", "wsproto"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def run_group(ctx: Context) -> GroupResult:
    """The codec group: every kernel of :data:`GROUP_FILES`, every stack, repeated."""
    if importlib.util.find_spec("pytest_benchmark") is None:
        raise GroupSkipped("pytest-benchmark is not installed (it comes with the bench extra)")
    config = settings(ctx)
    runs: List[Dict[str, Any]] = []
    skipped: Dict[str, str] = {}
    failed: Dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="fastws-codec-") as tmp:
        for index in range(1, config.repeats + 1):
            ctx.step(f"pytest-benchmark run {index}/{config.repeats}")
            data, junit_path = _run_once(index, config, ctx, tmp)
            runs.append(data)
            run_skipped, run_failed = outcomes_from_junit(junit_path)
            for label, why in run_skipped.items():
                skipped.setdefault(label, why)
            for label, why in run_failed.items():
                failed.setdefault(label, why)
    mine = [label for label, why in failed.items() if label.startswith("fastws")]
    if mine:
        why = "; ".join(f"{label}: {failed[label]}" for label in mine)
        raise RuntimeError(f"fastws kernels failed their check: {why}")
    for label, why in failed.items():
        skipped.setdefault(label, f"failed: {why}")

    measures = measures_from_runs(runs)
    machine = runs[0].get("machine_info", {}).get("fastws", {}) if runs else {}
    cpu = _bench_cpu()
    method = (
        f"pytest-benchmark runs the kernel benchmarks of bench/{', bench/'.join(GROUP_FILES)} "
        f"in a subprocess{f' pinned to CPU {cpu}' if cpu is not None else ''}, {config.repeats} times; "
        f"each run times every stack of a case one after the other (at most {config.max_time:g} s each, "
        "at least 5 rounds of at least 100 µs, thousands of calls for the small kernels), and the time "
        "per call of its fastest round is one sample: the cost of a call that no other process "
        "interrupted (on this shared machine the median round moves by about ±20% from run to run, the "
        "fastest by about ±5%). "
        "Every figure includes the benchmark loop's own cost, a Python call to the measured function: "
        "the floor of the in-place masks (operator.is_ given the same two arguments) shows how much "
        "that is. Times are ns per call (masks) or per frame (parsing, building); UTF-8 validation is in GB/s."
    )
    notes = [
        (
            "In-place masks (a bytearray XOR-ed again and again, no allocation) are set only against"
            " in-place masks, allocating ones only against allocating ones."
        ),
        (
            "\"fastws pure-Python ...\" is fastws's pure-Python twin (fastws._codec_py, what runs without"
            " the compiled core): counted among fastws's stacks, never as a peer."
        ),
    ]
    if ctx.out_dir:
        notes.append(
            "pytest-benchmark's own results of each run are kept next to the report, in"
            f" {_tail(ctx.out_dir)}/pytest-benchmark-run*.json: `python -m bench.kernels --report FILE`"
            " prints their tables (mean, median, rounds, throughput)."
        )
    if machine:
        compiled = machine.get("compiled")
        notes.append(
            f"fastws compiled core: {'yes, SIMD ' + str(machine.get('simd_level')) if compiled else 'not built'}."
        )
    return GroupResult(measures=measures, skipped=skipped, method=method, notes=notes, versions=_versions())


if __name__ == "__main__":
    sys.exit(main())

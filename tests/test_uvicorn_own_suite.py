"""uvicorn's own WebSocket tests, run with fastws as the backend (slow).

The test downloads the source distribution of the installed uvicorn (its
tests are not in the wheel), takes ``tests/`` out of it and adds to its
``tests/conftest.py`` an override of two fixtures:

- ``ws_protocol_cls`` (uvicorn parametrizes every backend test with it: wsproto
  and websockets-sansio) gives ``fastws.uvicorn:WebSocketProtocol`` alone;
- ``http_protocol_cls`` gives the HTTP protocols that are installed (h11, and
  httptools where it is), so nothing is skipped.

Then it runs ``tests/protocols/test_websocket.py -k fastws`` in a subprocess
(the tests that take ``ws_protocol_cls``; the others construct uvicorn's own
backend by name) with uvicorn's pytest settings (warnings are errors), and
checks that every one passes but the few deselected below, which test another
backend's class or policy rather than behaviour.

Test dependencies that are not installed here (``httpx2`` for uvicorn 0.55;
``httpx`` and anyio for 0.39, what Python 3.9 gets) are installed with pip into
a temporary folder that goes at the end of the subprocess' ``sys.path``, so the
installed packages still win. The websockets version that uvicorn's dev
dependencies pin, if any (0.39 pins 13.1: its tests use the legacy client that
later versions deprecate, and warnings are errors there), goes into a folder at
the front. The whole test takes about 30 s (uvicorn 0.55: 140 tests, 0.39: 98).
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Set

import pytest

FASTWS = "fastws.uvicorn:WebSocketProtocol"

#: Tests of uvicorn's file that check which class the backend is, not what it does.
DESELECTED = {
    # `assert isinstance(protocol, (_WSProtocol, WebSocketsSansIOProtocol))`: the connection
    # must be one of uvicorn's own two classes. The keepalive behaviour behind it (a ping is
    # sent, answered pings keep the connection, ping_timer is None when off) is tested on
    # fastws in tests/test_uvicorn_asgi.py (test_keepalive_*).
    "test_server_keepalive_ping_pong",
    "test_server_keepalive_disabled",
    # Asserts that the mock transport's reading is paused after ONE unconsumed message: uvicorn's
    # two backends stop reading after every message whatever ws_max_queue says, fastws honours
    # ws_max_queue (32 by default), so its precondition does not hold (the test builds its Config
    # itself, without ws_max_queue). What it is about, that a close resumes paused reads so the
    # peer's close frame is still read, is tested on fastws with ws_max_queue=1 in
    # tests/test_uvicorn_asgi.py (test_close_while_reading_is_paused_still_reads_the_peer_close).
    "test_close_resumes_reads_paused_on_an_unconsumed_message",
}

#: pip names of modules that uvicorn's test files import, where they differ.
PIP_NAMES: Dict[str, str] = {}

_ROOT_CONFTEST = '''# Written by fastws (tests/test_uvicorn_own_suite.py).
import sys

sys.path.append({deps!r})  # test dependencies installed for this run, after site-packages
sys.path.insert(0, {pinned!r})  # the websockets that uvicorn's tests pin, before the installed one
# anyio's pytest plugin, when anyio itself was installed for the run (no entry point then).
pytest_plugins = {plugins!r}
'''

_CONFTEST_OVERRIDE = '''

# --- added by fastws (tests/test_uvicorn_own_suite.py): every backend test on fastws ---
@pytest.fixture(params=[pytest.param({fastws!r}, id="fastws")])
def ws_protocol_cls(request: pytest.FixtureRequest):
    return import_from_string(request.param)


@pytest.fixture(params=[pytest.param(path, id=name) for name, path in {http!r}])
def http_protocol_cls(request: pytest.FixtureRequest):
    return import_from_string(request.param)
'''


def _run(command: List[str], **kwargs: object) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _uvicorn_tests(version: str, where: Path) -> Path:
    """uvicorn's ``tests/`` from its sdist, in ``where`` (with its pyproject.toml
    for the pytest settings, without the ``uvicorn`` package: the installed one
    is tested)."""
    sdist_dir = where / "sdist"
    _run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-binary", "uvicorn", "--no-deps",
         f"uvicorn=={version}", "-d", str(sdist_dir)],
        timeout=600,
    )
    (archive,) = sdist_dir.glob("uvicorn-*.tar.gz")
    root = where / "uvicorn-tests"
    with tarfile.open(archive) as tar:
        prefix = f"{tar.getnames()[0].split('/')[0]}/"
        for member in tar.getmembers():
            name = member.name[len(prefix) :]
            if not (name.startswith("tests/") or name == "pyproject.toml") or not member.isfile():
                continue
            member.name = name
            if hasattr(tarfile, "data_filter"):  # Python 3.12+, and recent 3.9-3.11 patch releases
                tar.extract(member, root, filter="data")
            else:  # pragma: no cover
                tar.extract(member, root)
    assert (root / "tests" / "protocols" / "test_websocket.py").is_file()
    return root


def _imported_modules(*files: Path) -> Set[str]:
    names: Set[str] = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names - {"tests", "uvicorn"}


def _install_missing(root: Path, deps: Path) -> List[str]:
    """pip-install into ``deps`` the modules the test files import that are not installed."""
    tests = root / "tests"
    modules = _imported_modules(tests / "protocols" / "test_websocket.py", tests / "utils.py", tests / "response.py")
    if "anyio" in (tests / "protocols" / "test_websocket.py").read_text():
        modules.add("anyio")  # pytest.mark.anyio: its pytest plugin runs the async tests
    missing = sorted(name for name in modules if importlib.util.find_spec(name) is None)
    if missing:
        packages = [PIP_NAMES.get(name, name) for name in missing]
        _run([sys.executable, "-m", "pip", "install", "-q", "--target", str(deps), *packages], timeout=600)
    return missing


def _pin_websockets(root: Path, pinned: Path) -> str:
    """The websockets version uvicorn's dev dependencies pin (0.39: 13.1, whose legacy client
    its tests use; 0.55 pins none), installed into ``pinned`` when another one is installed."""
    match = re.search(r'"websockets==([^"]+)"', (root / "pyproject.toml").read_text())
    installed = importlib.metadata.version("websockets")
    if match is None or match.group(1) == installed:
        return installed
    _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(pinned),
          f"websockets=={match.group(1)}"], timeout=600)
    return match.group(1)


def _http_protocols() -> List[tuple]:
    protocols = [("h11", "uvicorn.protocols.http.h11_impl:H11Protocol")]
    if importlib.util.find_spec("httptools") is not None:
        protocols.append(("httptools", "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol"))
    return protocols


@pytest.mark.slow
def test_uvicorn_websocket_suite_passes_on_fastws(tmp_path: Path) -> None:
    version = importlib.metadata.version("uvicorn")
    root = _uvicorn_tests(version, tmp_path)
    deps = tmp_path / "deps"
    missing = _install_missing(root, deps)
    pinned = tmp_path / "pinned"
    websockets_version = _pin_websockets(root, pinned)

    plugins = ["anyio.pytest_plugin"] if "anyio" in missing else []
    (root / "conftest.py").write_text(_ROOT_CONFTEST.format(deps=str(deps), pinned=str(pinned), plugins=plugins))
    conftest = root / "tests" / "conftest.py"
    conftest.write_text(
        conftest.read_text() + _CONFTEST_OVERRIDE.format(fastws=FASTWS, http=_http_protocols())
    )

    report = tmp_path / "report.xml"
    command = [
        sys.executable, "-m", "pytest", "tests/protocols/test_websocket.py",
        "-k", "fastws", "-p", "no:cacheprovider", "--junitxml", str(report),
        # uvicorn's settings from its pyproject.toml, without its `-n 8` (pytest-xdist)
        "-o", "addopts=-rfEs --strict-config --strict-markers",
    ]
    for name in sorted(DESELECTED):
        command += ["--deselect", f"tests/protocols/test_websocket.py::{name}"]
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert report.is_file(), output

    outcomes: Dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        kinds = {child.tag for child in case} & {"failure", "error", "skipped"}
        outcomes[case.get("name", "?")] = kinds.pop() if kinds else "passed"
    not_passed = {name: outcome for name, outcome in outcomes.items() if outcome != "passed"}
    print(f"uvicorn {version}, websockets {websockets_version}: {len(outcomes)} tests on fastws;"
          f" installed for the run: {missing or 'nothing'}")
    print("\n".join(f"  {outcome}: {name}" for name, outcome in sorted(not_passed.items())))

    assert len(outcomes) >= 50, output  # uvicorn 0.55: 80 with h11 alone
    assert all("fastws" in name for name in outcomes), outcomes
    ran = {name.split("[")[0] for name in outcomes}
    assert not ran & DESELECTED
    assert not not_passed, output
    assert result.returncode == 0, output

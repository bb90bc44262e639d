"""The codec group of ``python -m bench`` (:mod:`bench.kernels`): pytest-benchmark's
JSON and JUnit XML turned into measures, from a small real run of the kernel
benchmarks (one case per kernel, a millisecond per benchmark).

The run hides wsaccel behind a package that fails to import, so that a stack the
machine lacks shows up as it would: skipped, with pytest's reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import kernels  # noqa: E402
from bench.results import Context, Measure  # noqa: E402

from conftest import load_speedups  # noqa: E402

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pytest_benchmark") is None, reason="pytest-benchmark is not installed"
)

#: One case of each kernel: the in-place and allocating masks at 16 B and 64 KiB.
SELECTION = "test_mask and (16B- or 64KiB-) or ascii-1KiB or 1000x16B or 16B-unmasked"


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Two runs of the group's pytest command (short), their JSON and JUnit XML paths."""
    load_speedups()  # the rows of the compiled core are expected: skip (or fail) without it
    tmp = tmp_path_factory.mktemp("kernels")
    hidden = tmp / "hide"
    (hidden / "wsaccel").mkdir(parents=True)
    (hidden / "wsaccel" / "__init__.py").write_text('raise ImportError("hidden by the test")\n')
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hidden), str(ROOT), env.get("PYTHONPATH")]))
    config = kernels.Settings(repeats=2, max_time=0.001, deselect="")
    runs, junits = [], []
    for index in range(config.repeats):
        json_path, junit_path = tmp / f"run{index}.json", tmp / f"run{index}.xml"
        cmd = kernels.pytest_command(str(json_path), str(junit_path), config) + ["-k", SELECTION]
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        runs.append(json.loads(json_path.read_text()))
        junits.append(str(junit_path))
    return runs, junits


@pytest.fixture(scope="module")
def measures(real_runs) -> Dict[str, Measure]:
    return {m.id: m for m in kernels.measures_from_runs(real_runs[0])}


def test_one_measure_per_kernel_and_case(measures):
    assert sorted(measures) == sorted(
        [
            "codec.mask_inplace.16B",
            "codec.mask_inplace.64KiB",
            "codec.mask.16B",
            "codec.mask.64KiB",
            "codec.utf8.ascii1KiB",
            "codec.parse.1000x16Bmasked",
            "codec.build.16Bunmasked",
        ]
    )


def test_headlines_are_a_few_per_kernel(measures):
    assert {m.id for m in measures.values() if m.headline} == {
        "codec.mask_inplace.16B",
        "codec.mask_inplace.64KiB",
        "codec.mask.16B",
        "codec.parse.1000x16Bmasked",
    }  # of this selection; codec.utf8.mixed64KiB and build 16 B masked too in a full run
    assert len(kernels.HEADLINES) == 6


def test_in_place_and_allocating_masks_are_apart(measures):
    inplace = measures["codec.mask_inplace.16B"]
    assert list(inplace.samples) == [
        "fastws apply_mask_inplace",
        "fastws pure-Python apply_mask_inplace",
        "aiohttp _websocket_mask_cython (in place)",
        "a C call with the same arguments (floor)",
    ]
    assert inplace.peers() == ["aiohttp _websocket_mask_cython (in place)"]
    assert inplace.floor == "a C call with the same arguments (floor)"

    allocating = measures["codec.mask.16B"]
    assert list(allocating.samples)[:2] == ["fastws apply_mask", "fastws pure-Python apply_mask"]
    assert "bytes(bytearray) copy (floor)" == allocating.floor
    assert set(allocating.peers()) == {
        "websockets.speedups apply_mask",
        "websockets.utils apply_mask (pure Python)",
    }  # wsaccel: hidden by the fixture
    assert not set(allocating.samples) & set(inplace.samples)
    assert inplace.chart == "codec.mask_inplace" and allocating.chart == "codec.mask"


def test_pure_python_twin_is_fastws_not_a_peer(measures):
    for measure in measures.values():
        pure = [label for label in measure.samples if label.startswith("fastws pure-Python")]
        assert len(pure) == 1, measure.id
        assert pure[0] in measure.fastws and pure[0] not in measure.peers()
        assert all(not label.startswith("fastws") for label in measure.peers()), measure.id
        # with the compiled core built, fastws's best is never the twin
        assert measure.best(list(measure.fastws)) != pure[0], measure.id


def test_units_and_directions(measures):
    expected = {
        "codec.mask_inplace.16B": ("ns", False),
        "codec.mask.64KiB": ("ns", False),
        "codec.utf8.ascii1KiB": ("GB/s", True),
        "codec.parse.1000x16Bmasked": ("ns/frame", False),
        "codec.build.16Bunmasked": ("ns/frame", False),
    }
    for measure_id, (unit, higher) in expected.items():
        assert (measures[measure_id].unit, measures[measure_id].higher_is_better) == (unit, higher)
        assert measures[measure_id].log


def test_values_are_the_fastest_round_of_each_run(real_runs, measures):
    runs, _ = real_runs
    for index, data in enumerate(runs):
        rows = {(b["name"], b["params"]["impl"]): b for b in data["benchmarks"]}
        mask = rows[("test_mask[16B-fastws-cython-inplace]", "fastws-cython-inplace")]
        assert measures["codec.mask_inplace.16B"].samples["fastws apply_mask_inplace"][index] == pytest.approx(
            mask["stats"]["min"] * 1e9
        )
        parse = rows[("test_parse[1000x16B-fastws-cython]", "fastws-cython")]
        assert measures["codec.parse.1000x16Bmasked"].samples["fastws FrameParser"][index] == pytest.approx(
            parse["stats"]["min"] * 1e9 / 1000
        )
        utf8 = rows[("test_utf8[ascii-1KiB-fastws-cython]", "fastws-cython")]
        assert measures["codec.utf8.ascii1KiB"].samples["fastws validate_utf8"][index] == pytest.approx(
            1024 / utf8["stats"]["min"] / 1e9
        )
    for measure in measures.values():
        assert all(len(values) == len(runs) for values in measure.samples.values()), measure.id


def test_large_masks_also_give_gb_per_second(measures):
    large = measures["codec.mask.64KiB"]
    assert set(large.extra) == set(large.samples)  # the copy floor too: it moves the bytes
    inplace = measures["codec.mask_inplace.64KiB"]
    assert set(inplace.extra) == set(inplace.samples) - {inplace.floor}
    gbps = large.extra["fastws apply_mask"]["GB/s"]
    assert gbps == pytest.approx(65536 / large.median("fastws apply_mask"), rel=0.01)
    assert measures["codec.mask.16B"].extra == {}


def test_shared_charts_and_short_names(measures):
    sizes = [m for m in measures.values() if m.chart == "codec.mask_inplace"]
    assert [m.short for m in sizes] == ["16 B", "64 KiB"]  # in size order
    assert len({m.chart_title for m in sizes}) == 1


def test_notes_name_the_rows_they_are_about(measures):
    assert measures["codec.mask_inplace.16B"].note == (
        "a C call with the same arguments (floor): the benchmark loop and one C call, no work"
    )  # "in place on a bytearray": the title says it
    assert "bytes.decode (CPython): also builds the str" in measures["codec.utf8.ascii1KiB"].note


def test_skipped_stacks_from_junit(real_runs):
    _, junits = real_runs
    skipped, failed = kernels.outcomes_from_junit(junits[0])
    assert failed == {}
    assert sorted(skipped) == ["wsaccel Utf8Validator", "wsaccel XorMaskerSimple"]
    assert all("hidden by the test" in why for why in skipped.values())


def test_measures_convert_to_json(measures):
    data = json.loads(json.dumps([m.to_json() for m in measures.values()]))
    inplace = next(m for m in data if m["id"] == "codec.mask_inplace.16B")
    assert inplace["chart"] == "codec.mask_inplace" and inplace["unit"] == "ns"


@pytest.mark.parametrize(
    "function, impl, kernel",
    [
        ("test_mask", "aiohttp", "mask_inplace"),
        ("test_mask", "fastws-cython-inplace", "mask_inplace"),
        ("test_mask", "call-floor", "mask_inplace"),
        ("test_mask", "fastws-cython", "mask"),
        ("test_mask", "copy-floor", "mask"),
        ("test_parse", "aiohttp", "parse"),
        ("test_build", "picows", "build"),
        ("test_deflate", "fastws", None),
        ("test_connection", "cython", None),
    ],
)
def test_kernel_of(function, impl, kernel):
    assert kernels.kernel_of(function, impl) == kernel


@pytest.mark.parametrize(
    "display, role",
    [
        ("fastws[cython] something new", kernels.FASTWS),
        ("fastws[python] something new", kernels.PURE),
        ("floor: something", kernels.FLOOR),
        ("newlib encode", kernels.PEER),
    ],
)
def test_unknown_rows_keep_their_names(display, role):
    stack = kernels.stack_of("mask", "new-impl", display)
    assert (stack.label, stack.role) == (display, role)


@pytest.mark.parametrize(
    "mode, repeats, deselected",
    [("quick", 3, "16MiB"), ("default", 5, "16MiB"), ("full", 7, "")],
)
def test_settings_by_mode(mode, repeats, deselected):
    config = kernels.settings(Context(mode=mode, out_dir=""))
    assert (config.repeats, config.deselect) == (repeats, deselected)
    cmd = kernels.pytest_command("r.json", "r.xml", config)
    assert [arg for arg in cmd if arg.endswith(".py")] == [
        os.path.join(kernels.BENCH_DIR, name) for name in kernels.GROUP_FILES
    ]
    assert ("-k" in cmd) == bool(deselected)


def test_cli_report_of_a_stored_run(real_runs, tmp_path):
    runs, _ = real_runs
    path = tmp_path / "run.json"
    path.write_text(json.dumps(runs[0]))
    done = subprocess.run(
        [sys.executable, "-m", "bench.kernels", "--report", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "fastws[cython] apply_mask_inplace" in done.stdout
    assert "NOT met" not in done.stdout

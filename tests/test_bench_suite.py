"""``python -m bench``'s runner: group selection, the summary's ratios, report.md,
results.json and the charts, driven by groups whose figures the tests choose
(the groups themselves are tested in their own files).
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import List

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import charts, summary  # noqa: E402
from bench.results import Context, GroupResult, GroupSkipped, Measure  # noqa: E402
from bench.suite import GROUPS, Group, GroupRun, run_group, run_suite, select  # noqa: E402


def rate(samples, **kwargs) -> Measure:
    return Measure(
        id=kwargs.pop("id", "g.rate"),
        title=kwargs.pop("title", "Round trips per second"),
        unit="msg/s",
        higher_is_better=True,
        samples=samples,
        fastws=kwargs.pop("fastws", ("fastws", "fastws Listener")),
        **kwargs,
    )


def cost(samples, **kwargs) -> Measure:
    return Measure(
        id=kwargs.pop("id", "g.cost"),
        title="KiB per idle connection",
        unit="KiB",
        higher_is_better=False,
        samples=samples,
        fastws=("fastws",),
        **kwargs,
    )


# --- the summary's arithmetic, both directions ----------------------------------------

SUMMARY_CASES = [
    # (measure, fastws's best, peer, ratio, ahead)
    (rate({"fastws": [100, 120, 110], "fastws Listener": [150, 160, 155], "picows": [140], "websockets": [50]}),
     "fastws Listener", "picows", 155 / 140, "fastws"),
    (rate({"fastws": [90.0], "aiohttp": [100.0], "raw TCP": [1000.0]}, floor="raw TCP"),
     "fastws", "aiohttp", 0.9, "peer"),
    (rate({"fastws": [100.0], "aiohttp": [101.0]}), "fastws", "aiohttp", 100 / 101, "level"),
    # lower is better: 3 KiB against 12 KiB is 4x in fastws's favour
    (cost({"fastws": [3.0, 2.0, 4.0], "websockets": [12.0], "bare protocol": [1.5]}, floor="bare protocol"),
     "fastws", "websockets", 4.0, "fastws"),
    (cost({"fastws": [8.0], "socketify": [0.5]}), "fastws", "socketify", 0.5 / 8.0, "peer"),
]


@pytest.mark.parametrize("measure, mine, peer, ratio, ahead", SUMMARY_CASES)
def test_summary_row_sets_fastws_best_against_fastest_peer(measure, mine, peer, ratio, ahead) -> None:
    row = summary.summary_row(measure)
    assert row is not None
    assert (row["fastws"], row["peer"], row["ahead"]) == (mine, peer, ahead)
    assert row["ratio"] == pytest.approx(ratio)


def test_reference_is_neither_fastws_nor_a_peer(tmp_path: Path) -> None:
    measure = rate(
        {"fastws": [50.0], "fastws in 1 process": [300.0], "socketio": [80.0]},
        fastws=("fastws",),
        references=("fastws in 1 process",),
    )
    row = summary.summary_row(measure)
    assert row is not None and (row["fastws"], row["peer"], row["ahead"]) == ("fastws", "socketio", "peer")
    run = GroupRun(Group("g", "m", "G"), GroupResult(measures=[measure]))
    summary.write_report(str(tmp_path / "report.md"), [run], {}, "quick", {}, None, 1.0)
    assert "| fastws in 1 process *(reference)* | 300 msg/s |" in (tmp_path / "report.md").read_text()


def test_floor_is_never_the_fastest_peer() -> None:
    measure = rate({"fastws": [10.0], "raw TCP": [99.0]}, floor="raw TCP")
    row = summary.summary_row(measure)
    assert row is not None and row["peer"] is None and row["ahead"] == "no peer"


def test_measure_without_fastws_has_no_summary_row() -> None:
    assert summary.summary_row(rate({"picows": [1.0]}, fastws=())) is None


@pytest.mark.parametrize(
    "value, unit, text",
    [
        (4_900.0, "sessions/s", "4 900 sessions/s"),
        (16_234.0, "sessions/s", "16.2k sessions/s"),
        (1_250_000.0, "msg/s", "1.25M msg/s"),
        (8.26, "KiB", "8.26 KiB"),
        (46.4, "ns", "46.4 ns"),
        (0.0123, "s", "0.0123 s"),
        (float("nan"), "x", "n/a"),
    ],
)
def test_fmt_value(value, unit, text) -> None:
    assert summary.fmt_value(value, unit) == text


def test_spread_is_half_the_range_over_the_median() -> None:
    measure = rate({"fastws": [90.0, 100.0, 110.0], "x": [5.0]})
    assert summary.fmt_spread(measure, "fastws") == "±10%"
    assert summary.fmt_spread(measure, "x") == "1 run"


# --- selection and the run loop ------------------------------------------------------


def test_select_default_quick_full_and_only() -> None:
    default = select("default")
    assert default and all(group.default for group in default)
    assert select("quick") == list(GROUPS) == select("full")
    assert [group.name for group in select("default", ["memory", "codec"])] == ["codec", "memory"]
    with pytest.raises(ValueError, match="unknown group nope"):
        select("default", ["nope"])


def test_every_group_names_an_importable_run_group() -> None:
    import importlib

    for group in GROUPS:
        module = importlib.import_module(group.module)
        assert callable(getattr(module, "run_group", None)), group.module


def _fake_runner(results: dict):
    def runner(group: Group, ctx: Context) -> GroupRun:
        ctx.step(f"{group.name} step one")
        outcome = results[group.name]
        run = GroupRun(group, seconds=0.5)
        if isinstance(outcome, GroupResult):
            run.result = outcome
        elif isinstance(outcome, GroupSkipped):
            run.skipped = str(outcome)
        else:
            run.error = outcome
        return run

    return runner


def test_run_suite_reports_progress_per_step_and_group(tmp_path: Path) -> None:
    groups = [Group("a", "x", "A"), Group("b", "y", "B"), Group("c", "z", "C")]
    stream = io.StringIO()
    runs = run_suite(
        groups,
        "quick",
        str(tmp_path),
        stream=stream,
        runner=_fake_runner(
            {
                "a": GroupResult(
                    measures=[rate({"fastws": [1.0], "picows": [2.0]})], skipped={"socketify": "not installed"}
                ),
                "b": GroupSkipped("redis-server is not on PATH"),
                "c": "Traceback...\nRuntimeError: server did not start",
            }
        ),
    )
    lines = stream.getvalue().splitlines()
    assert [run.group.name for run in runs] == ["a", "b", "c"]
    assert any("[1/3] a" in line and "a step one" in line for line in lines)
    assert any("[1/3] a" in line and "1 measures (1 skipped" in line for line in lines)
    assert any("[2/3] b" in line and "skipped: redis-server is not on PATH" in line for line in lines)
    assert any("[3/3] c" in line and "FAILED: RuntimeError: server did not start" in line for line in lines)
    assert (tmp_path / "groups" / "a").is_dir()


def test_run_group_catches_a_failing_group_and_a_skipped_one(tmp_path: Path) -> None:
    ctx = Context(mode="quick", out_dir=str(tmp_path))
    broken = run_group(Group("broken", "bench.no_such_module_here", "Broken"), ctx)
    assert broken.result is None and broken.error and "ModuleNotFoundError" in broken.error


# --- the files a run writes -------------------------------------------------------------


def _runs() -> List[GroupRun]:
    measures = [
        rate({"fastws": [100.0, 110.0, 105.0], "picows": [120.0, 125.0, 130.0], "raw TCP (floor)": [200.0]},
             id="echo.rt_asyncio", chart="echo.rt", short="asyncio", floor="raw TCP (floor)",
             extra={"fastws": {"server CPU/msg": "31 us"}}),
        rate({"fastws": [150.0], "picows": [140.0], "raw TCP (floor)": [260.0]},
             id="echo.rt_uvloop", chart="echo.rt", short="uvloop", floor="raw TCP (floor)"),
        cost({"fastws": [2.9], "websockets": [12.7], "socketify": [0.65]}, id="memory.idle"),
    ]
    result = GroupResult(measures=measures, method="Two processes.")
    ok = GroupRun(Group("echo", "bench.echo.group", "Echo"), result, seconds=3)
    skipped = GroupRun(Group("pubsub", "bench.pubsub.group", "Pub/sub"), skipped="redis-server is not on PATH")
    return [ok, skipped]


def test_report_and_json_hold_every_figure(tmp_path: Path) -> None:
    runs = _runs()
    info = {"cpu": "Test CPU", "cpus": 2, "python": "CPython 3.11", "versions": {"picows": "2.3.1"}}
    summary.write_json(str(tmp_path / "results.json"), runs, info, "quick", 12.0)
    drawn = {"echo": [("echo.rt", "echo.rt.png")]}
    summary.write_report(str(tmp_path / "report.md"), runs, info, "quick", drawn, None, 12.0)

    data = json.loads((tmp_path / "results.json").read_text())
    echo = data["groups"]["echo"]
    assert echo["measures"][0]["samples"]["fastws"] == [100.0, 110.0, 105.0]
    assert echo["measures"][0]["median"]["fastws"] == 105.0
    assert data["groups"]["pubsub"]["skipped_group"] == "redis-server is not on PATH"
    assert [row["id"] for row in data["summary"]] == ["echo.rt_asyncio", "echo.rt_uvloop", "memory.idle"]
    assert data["machine"]["cpu"] == "Test CPU"

    report = (tmp_path / "report.md").read_text()
    assert "- cpu: Test CPU" in report and "picows 2.3.1" in report
    assert "![echo.rt](echo.rt.png)" in report
    assert "| **fastws** | 105 msg/s | ±5% | 3 | " in report
    assert "| raw TCP (floor) | 200 msg/s |" in report  # named a floor once
    assert "31 us" in report  # the extra column
    assert "pubsub: not run: redis-server is not on PATH" in report
    assert "NOT met" not in report


def test_summary_text_names_who_is_ahead() -> None:
    text = "\n".join(summary.summary_text(_runs()))
    assert "105 msg/s" in text and "125 msg/s (picows)" in text and "0.84x" in text
    assert "2.90 KiB" in text and "0.65 KiB (socketify)" in text


def test_terminal_summary_shows_headline_measures_only(tmp_path: Path) -> None:
    runs = _runs()
    assert runs[0].result is not None
    runs[0].result.measures[1].headline = False  # echo.rt_uvloop
    text = "\n".join(summary.summary_text(runs))
    assert "150 msg/s" not in text and "105 msg/s" in text
    summary.write_report(str(tmp_path / "report.md"), runs, {}, "quick", {}, None, 1.0)
    assert "150 msg/s" in (tmp_path / "report.md").read_text()


@pytest.mark.skipif(charts.unavailable() is not None, reason="matplotlib is not installed")
def test_charts_one_png_per_chart_key(tmp_path: Path) -> None:
    drawn = charts.draw_all(_runs(), str(tmp_path))
    names = [name for _, name in drawn["echo"]]
    assert names == ["echo.rt.png", "memory.idle.png"]
    for name in names:
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_chart_groups_split_a_key_by_unit() -> None:
    a = rate({"fastws": [1.0]}, id="a", chart="k")
    b = cost({"fastws": [1.0]}, id="b", chart="k")
    assert [key for key, _ in charts.chart_groups([a, b])] == ["k-msg/s", "k-KiB"]

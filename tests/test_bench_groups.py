"""The ``run_group`` adapters of the existing benchmarks (bench.echo.group,
bench.accelerate_group, bench.asgi.group, bench.pubsub.group, bench.sync.group,
bench.workers.group): each one's conversion of real results into
:class:`bench.results.Measure` objects, from tiny real runs (a tenth of a
second per measure, one or two stacks) over loopback.

The pub/sub run needs Debian's ``redis-server``; the ASGI run uvicorn and
Starlette; each is skipped where what it needs is missing. The runs that start
several server processes (pub/sub, workers) and the sync group's whole quick
run take 5-10 s each: marked slow (``python -m pytest -m slow
tests/test_bench_groups.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.results import Context, GroupSkipped, Measure  # noqa: E402


def _env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _by_id(measures: List[Measure]) -> Dict[str, Measure]:
    by_id = {m.id: m for m in measures}
    assert len(by_id) == len(measures), [m.id for m in measures]
    return by_id


# --- echo ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def echo_run() -> Tuple[Dict[Any, List[Dict[str, Any]]], Dict[Any, str], List[str]]:
    """fastws recv/send and the raw TCP floor on asyncio, twice, 0.1 s per measure."""
    from bench.echo import group

    steps: List[str] = []
    results, skipped = group.collect(["fastws", "raw-tcp"], ["asyncio"], 0.1, 0.02, 2, steps.append)
    return results, skipped, steps


def test_echo_runs_every_case_with_a_step_each(echo_run) -> None:
    results, skipped, steps = echo_run
    assert skipped == {}
    assert steps == [
        "echo: fastws recv/send on asyncio (1/4)",
        "echo: raw TCP (floor) on asyncio (2/4)",
        "echo: fastws recv/send on asyncio (3/4)",
        "echo: raw TCP (floor) on asyncio (4/4)",
    ]
    assert sorted(results) == [("asyncio", "fastws"), ("asyncio", "raw-tcp")]
    for runs in results.values():
        assert len(runs) == 2 and not [r for r in runs if "error" in r], runs


def test_echo_measures_are_the_clients_figures(echo_run) -> None:
    from bench.echo import group

    results, _, _ = echo_run
    measures, notes = group.to_measures(results, ["asyncio"], ["fastws", "raw-tcp"])
    assert notes == []
    by_id = _by_id(measures)
    assert list(by_id) == ["echo.rate.asyncio", "echo.mbps.asyncio", "echo.cpu.asyncio"]
    fastws, floor = results[("asyncio", "fastws")], results[("asyncio", "raw-tcp")]
    expected = {
        # id: (samples of fastws, of the floor, unit, higher is better, chart)
        "echo.rate.asyncio": (
            [r["small"]["rate"] for r in fastws], [r["small"]["rate"] for r in floor], "round trips/s", True,
        ),
        "echo.mbps.asyncio": (
            [r["large"]["mb_per_s"] for r in fastws], [r["large"]["mb_per_s"] for r in floor], "MB/s", True,
        ),
        "echo.cpu.asyncio": (
            [r["small"]["server_cpu_s"] / r["small"]["round_trips"] * 1e6 for r in fastws],
            [r["small"]["server_cpu_s"] / r["small"]["round_trips"] * 1e6 for r in floor],
            "µs", False,
        ),
    }  # fmt: skip
    for measure_id, (mine, bottom, unit, higher) in expected.items():
        m = by_id[measure_id]
        assert m.samples == {"fastws recv/send": mine, "raw TCP (floor)": bottom}, measure_id
        assert (m.unit, m.higher_is_better) == (unit, higher), measure_id
        assert m.fastws == ["fastws recv/send"] and m.floor == "raw TCP (floor)" and m.peers() == []
        assert (m.chart, m.short) == (measure_id.rsplit(".", 1)[0], "asyncio")
        assert m.title == f"{m.chart_title} (asyncio)" and "one connection" in m.title
        assert all(v > 0 for values in m.samples.values() for v in values)
    large = by_id["echo.mbps.asyncio"].extra["fastws recv/send"]["server CPU per 1 MiB echo (ms)"]
    per_mib = statistics.median(r["large"]["server_cpu_s"] / r["large"]["messages"] for r in fastws)
    assert large == round(per_mib * 1e3, 2)
    client = by_id["echo.rate.asyncio"].extra["raw TCP (floor)"]["client CPU per round trip (µs)"]
    per_round_trip = statistics.median(r["small"]["client_cpu_s"] / r["small"]["round_trips"] for r in floor)
    assert client == round(per_round_trip * 1e6, 1)


def test_echo_failed_runs_become_notes(echo_run) -> None:
    from bench.echo import group

    results, _, _ = echo_run
    ok = results[("asyncio", "fastws")][0]
    mixed = {
        ("asyncio", "fastws"): [ok, {"stack": "fastws", "loop": "asyncio", "error": "client timed out after 31 s"}],
        ("asyncio", "raw-tcp"): [{"stack": "raw-tcp", "loop": "asyncio", "error": "server exited"}],
    }
    measures, notes = group.to_measures(mixed, ["asyncio"], ["fastws", "raw-tcp"])
    assert notes == [
        "fastws recv/send on asyncio: 1 of 2 runs failed: client timed out after 31 s",
        "raw TCP (floor) on asyncio: 1 of 1 runs failed: server exited",
    ]
    for m in measures:
        assert list(m.samples) == ["fastws recv/send"] and len(m.samples["fastws recv/send"]) == 1
        assert m.floor is None


def test_echo_socketify_is_driven_by_picows_client() -> None:
    from bench.echo import group

    if "socketify" not in group.group_stacks():
        pytest.skip("bench.echo.servers has no socketify server")
    reason = group.unavailable("socketify")
    if reason is not None:
        pytest.skip(reason)
    results, skipped = group.collect(["socketify"], ["asyncio"], 0.1, 0.02, 1, lambda _: None)
    assert skipped == {}
    measures, notes = group.to_measures(results, ["asyncio"], ["socketify"])
    assert notes == []
    for m in measures:
        assert list(m.samples) == ["socketify (picows client)"]
        assert m.peers() == ["socketify (picows client)"] and m.fastws == []


# --- accelerate ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def accelerate_rows(tmp_path_factory: pytest.TempPathFactory) -> List[Dict[str, Any]]:
    """``python -m bench.accelerate --json`` rows of wsproto, 2 runs of 10 ms per figure."""
    pytest.importorskip("wsproto")
    path = tmp_path_factory.mktemp("accelerate") / "wsproto.json"
    subprocess.run(
        [sys.executable, "-m", "bench.accelerate", "--libraries", "wsproto", "--time", "0.01", "--repeat", "2",
         "--json", str(path)],
        cwd=str(ROOT), env=_env(), check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return json.loads(path.read_text())


def test_accelerate_measures_pair_each_library_with_its_patched_self(accelerate_rows) -> None:
    from bench.accelerate_group import PATCHED, UNPATCHED, to_measures

    measures = to_measures(accelerate_rows)
    assert [m.id for m in measures] == [
        "accelerate.wsproto.mask-64-kib-xormaskersimple",
        "accelerate.wsproto.parse-1000-x-16b-frameprotocol",
        "accelerate.wsproto.parse-64-x-64-kib-frameprotocol",
    ]
    assert [m.chart for m in measures] == ["accelerate.gb-s", "accelerate.frames-s", "accelerate.gb-s"]
    assert [m.headline for m in measures] == [True, False, False]  # one per library in the short summary
    assert [m.short for m in measures] == [
        "wsproto: mask 64 KiB",
        "wsproto: parse 1000 x 16B",
        "wsproto: parse 64 x 64 KiB",
    ]
    for m, row in zip(measures, accelerate_rows):
        assert m.samples == {UNPATCHED: row["before_samples"], PATCHED: row["after_samples"]}
        assert len(row["before_samples"]) == len(row["after_samples"]) == 2
        # The standalone table keeps the best run.
        assert max(row["before_samples"]) == row["before"] and max(row["after_samples"]) == row["after"]
        assert m.unit == row["unit"] and m.higher_is_better and m.log
        assert m.fastws == [PATCHED] and m.peers() == [UNPATCHED] and m.floor is None
        assert m.title == f"wsproto: {row['what']}"


@pytest.mark.parametrize(
    "change, note, kept",
    [
        ({"what": "apply_mask 64 KiB, speedups (C), reference", "note": "not patched by default (force=True)"},
         "not patched by default (force=True). Unpatched: the library's compiled code.", True),
        ({"note": "server side, one receive_bytes"}, "server side, one receive_bytes.", True),
        ({"note": ""}, "", True),
        ({"after_samples": []}, None, False),
        ({"before_samples": None}, None, False),
    ],
)  # fmt: skip
def test_accelerate_rows_notes_and_missing_samples(accelerate_rows, change, note, kept) -> None:
    from bench.accelerate_group import to_measures

    row = dict(accelerate_rows[0], **change)
    measures = to_measures([row])
    assert len(measures) == (1 if kept else 0)
    if kept:
        assert measures[0].note == note


# --- asgi ----------------------------------------------------------------------------------


def test_asgi_measures_from_a_real_run() -> None:
    pytest.importorskip("uvicorn")
    pytest.importorskip("starlette")
    from bench.asgi import group

    steps: List[str] = []
    backends = ["fastws", "websockets-sansio", "fastws-serve"]
    results, skipped = group.collect(["asyncio"], backends, 2, 0.05, 0.02, steps.append, "asyncio")
    assert skipped == {}
    assert steps[0] == "asgi: starting 3 servers on asyncio"
    assert steps[1].startswith("asgi: measuring 3 servers on asyncio, 2 turns")
    measures, notes = group.to_measures(results, ["asyncio"], backends)
    assert notes == []
    by_id = _by_id(measures)
    assert list(by_id) == ["asgi.rate.asyncio", "asgi.mbps.asyncio", "asgi.cpu.asyncio"]
    labels = ["uvicorn + fastws", "uvicorn + websockets-sansio", "fastws.serve alone (ceiling)"]
    for m in measures:
        assert list(m.samples) == labels
        assert m.fastws == ["uvicorn + fastws"] and m.floor == "fastws.serve alone (ceiling)"
        assert m.peers() == ["uvicorn + websockets-sansio"]
    for backend, label in zip(backends, labels):
        turns = results[("asyncio", backend)]
        assert len(turns) == 2
        assert by_id["asgi.rate.asyncio"].samples[label] == [t["small"]["rate"] for t in turns]
        assert by_id["asgi.mbps.asyncio"].samples[label] == [t["large"]["mb_per_s"] for t in turns]


# --- pubsub --------------------------------------------------------------------------------


def test_pubsub_without_redis_server_skips_the_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.pubsub import group

    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no redis-server
    with pytest.raises(GroupSkipped, match="redis-server is not on PATH"):
        group.run_group(Context(mode="quick", out_dir=str(tmp_path)))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_pubsub_measures_from_a_real_run() -> None:
    pytest.importorskip("redis")
    pytest.importorskip("uvloop")
    from bench.pubsub import LABELS, group

    stacks = ["fastws-local", "fastws-redis-uvloop"]
    steps: List[str] = []
    results = group.collect(stacks, group.settings(6, 0.2, 0.05), 1, steps.append)
    assert steps == [f"pubsub: {LABELS[stack]} ({i}/2)" for i, stack in enumerate(stacks, 1)]
    measures, notes = group.to_measures(results, stacks, 6)
    assert notes == []
    by_id = _by_id(measures)
    assert list(by_id) == ["pubsub.rate", "pubsub.p99", "pubsub.cpu"]
    assert [by_id[i].higher_is_better for i in by_id] == [True, False, False]
    for stack in stacks:
        label = LABELS[stack]
        [run] = results[stack]
        assert by_id["pubsub.rate"].samples[label] == [run["rate"]]
        assert by_id["pubsub.p99"].samples[label] == [run["p99_ms"]]
        assert by_id["pubsub.cpu"].samples[label] == [run["server_cpu_s"] / run["deliveries"] * 1e6]
        assert by_id["pubsub.rate"].extra[label]["connections per worker"] == "/".join(map(str, run["spread"]))
        assert by_id["pubsub.p99"].extra[label]["p50 (ms)"] == round(run["p50_ms"], 1)
    redis = by_id["pubsub.cpu"].extra
    assert redis[LABELS["fastws-local"]]["redis-server CPU per delivery (µs)"] is None
    assert redis[LABELS["fastws-redis-uvloop"]]["redis-server CPU per delivery (µs)"] > 0
    for m in measures:
        # fastws in one process is shown beside the two-worker stacks, not set against the peers
        assert m.fastws == [LABELS["fastws-redis-uvloop"]] and m.references == [LABELS["fastws-local"]]
        assert m.peers() == []
        assert "6 subscribers" in m.title


# --- sync ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sync_json(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    """``python -m bench.sync --json``: both servers, every client, 2 turns of 20 ms."""
    path = tmp_path_factory.mktemp("sync") / "sync.json"
    subprocess.run(
        [sys.executable, "-m", "bench.sync", "--runs", "2", "--duration", "0.02", "--warmup", "0.01",
         "--server-loop", "asyncio", "--json", str(path)],
        cwd=str(ROOT), env=_env(), check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return json.loads(path.read_text())


def test_sync_measures_from_a_real_run(sync_json) -> None:
    from bench.sync import group

    measures, notes = group.to_measures(sync_json["servers"], "asyncio")
    assert notes == []
    by_id = _by_id(measures)
    assert list(by_id) == [
        "sync.rate.fastws-serve", "sync.cpu.fastws-serve", "sync.rate.fastws-sync", "sync.cpu.fastws-sync",
    ]  # fmt: skip
    labels = ["fastws.sync", "fastws asyncio client", "websockets.sync", "raw blocking socket (floor)"]
    for server in sync_json["servers"]:
        slug = server["server"].replace(".", "-")
        rate, cpu = by_id[f"sync.rate.{slug}"], by_id[f"sync.cpu.{slug}"]
        for client, label in zip(("fastws.sync", "fastws.asyncio", "websockets.sync", "raw-socket"), labels):
            row = server["summary"][client]
            assert rate.samples[label] == row["rates"] and len(row["rates"]) == 2
            assert cpu.samples[label] == row["cpus"] and statistics.median(row["cpus"]) == row["cpu_us"]
        for m in (rate, cpu):
            assert list(m.samples) == labels
            assert m.fastws == labels[:2] and m.floor == labels[3] and m.peers() == ["websockets.sync"]
            assert m.short == f"{server['server']} server"
        assert (rate.chart, cpu.chart) == ("sync.rate", "sync.cpu")
        assert rate.chart_title == "Round trips per second of one client connection, 32 B messages"
        assert cpu.chart_title == "Client CPU time per 32 B round trip"
        assert rate.higher_is_better and not cpu.higher_is_better
    assert "fastws.serve server on asyncio" in by_id["sync.rate.fastws-serve"].title
    assert "a thread per connection" in by_id["sync.rate.fastws-sync"].title


def test_sync_failed_client_is_a_note_and_has_no_samples(sync_json) -> None:
    from bench.sync import group

    server = dict(sync_json["servers"][0])
    summary = dict(server["summary"])
    del summary["websockets.sync"]
    server.update(summary=summary, errors={"websockets.sync": "ConnectionRefusedError: [Errno 111]"})
    measures, notes = group.to_measures([server], "uvloop")
    assert notes == [
        "websockets.sync against the fastws.serve server on uvloop: failed: ConnectionRefusedError: [Errno 111]"
    ]
    for m in measures:
        assert "websockets.sync" not in m.samples and len(m.samples) == 3


@pytest.mark.slow
def test_sync_run_group_quick_takes_two_turns(tmp_path: Path) -> None:
    from bench.sync import group

    steps: List[str] = []
    result = group.run_group(Context(mode="quick", out_dir=str(tmp_path), step=steps.append))
    assert steps == [
        "sync: every client against the fastws.serve server (1/2), 2 turns",
        "sync: every client against the fastws.sync server (2/2), 2 turns",
    ]
    assert result.skipped == {} and result.notes == []
    assert len(result.measures) == 4
    for m in result.measures:
        assert [len(v) for v in m.samples.values()] == [2, 2, 2, 2], m.id


# --- workers -------------------------------------------------------------------------------


@pytest.mark.slow
def test_workers_measures_from_a_real_run() -> None:
    from bench.workers import LABELS, group

    stacks = ["fastws-listener", "raw-tcp"]
    steps: List[str] = []
    results = group.collect(stacks, group.settings(0.1, 0.02), 1, steps.append)
    assert steps == [
        f"workers: {LABELS['fastws-listener']}, 1 worker (1/4)",
        f"workers: {LABELS['fastws-listener']}, 2 workers (2/4)",
        f"workers: {LABELS['raw-tcp']}, 1 worker (3/4)",
        f"workers: {LABELS['raw-tcp']}, 2 workers (4/4)",
    ]
    measures, notes = group.to_measures(results, stacks)
    assert notes == []
    by_id = _by_id(measures)
    assert list(by_id) == ["workers.rate.1", "workers.rate.2", "workers.scaling"]
    assert [(m.chart, m.short) for m in measures[:2]] == [("workers.rate", "1 worker"), ("workers.rate", "2 workers")]
    for stack in stacks:
        label = LABELS[stack]
        [one], [two] = results[(stack, 1)], results[(stack, 2)]
        assert by_id["workers.rate.1"].samples[label] == [one["rate"]]
        assert by_id["workers.rate.2"].samples[label] == [two["rate"]]
        assert by_id["workers.scaling"].samples[label] == [two["rate"] / one["rate"]]
        assert by_id["workers.rate.1"].extra[label]["connections per worker"] == "1"
        assert by_id["workers.rate.2"].extra[label]["connections per worker"] == "1/1"
        assert by_id["workers.rate.2"].extra[label]["server CPU per round trip (µs)"] == round(two["server_us"], 1)
    for m in measures:
        assert m.fastws == [LABELS["fastws-listener"]] and m.floor == LABELS["raw-tcp"]


def test_workers_scaling_pairs_runs_of_the_same_repeat() -> None:
    from bench.workers import LABELS, group

    def run(rate: float) -> Dict[str, Any]:
        return {"rate": rate, "server_us": 10.0, "spread": [1, 1]}

    results = {
        ("raw-tcp", 1): [run(100.0), {"error": "boom"}, run(300.0)],
        ("raw-tcp", 2): [run(150.0), run(1000.0), run(900.0)],
    }
    measures, notes = group.to_measures(results, ["raw-tcp"])
    scaling = _by_id(measures)["workers.scaling"]
    assert scaling.samples == {LABELS["raw-tcp"]: [1.5, 3.0]}
    assert notes == [f"{LABELS['raw-tcp']}, 1 worker(s): 1 of 3 runs failed: boom"]

"""The broadcast group's servers, each in a process of its own, driven by
wsload (bench.loadgen) with a handful of connections: every stack delivers
every message, in order, to every connection; the group's measures are built
from such runs; a run with a missing delivery or an error is void.

The counts are tiny (5 connections, 3 messages), so this checks behaviour, not
speed.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import broadcast, loadgen  # noqa: E402
from bench.broadcast import servers  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="wsload needs Linux (epoll)")

CLIENTS = 5
MESSAGES = 3


@pytest.fixture(scope="module", autouse=True)
def wsload_binary() -> str:
    return loadgen.build()


@pytest.mark.parametrize("stack", servers.STACKS)
def test_every_connection_gets_every_message(stack: str) -> None:
    absent = broadcast.missing(stack)
    if absent:
        pytest.skip(f"not installed: {', '.join(absent)}")
    with broadcast.server(stack) as (port, pid):
        # Twice on the same server: the first burst's connections are gone
        # (closed by wsload) and must not be written to, nor break the second.
        for _ in range(2):
            result = broadcast.measure(port, pid, CLIENTS, MESSAGES, cpu=None)
            assert result["errors"] == {}, result.get("first_error")
            assert result["connected"] == CLIENTS
            # wsload counts a delivery only for the index it expected next.
            assert result["deliveries"] == CLIENTS * MESSAGES
            assert all(ms is not None for ms in result["last_ms"])
            assert broadcast.failure(result) is None
            assert result["rate"] > 0
            assert result["latency_ms"] == result["last_ms"][0]


def test_run_stacks_builds_the_measures() -> None:
    stacks = ("fastws", "floor")
    results, problems, _ = broadcast.run_stacks(stacks, (CLIENTS,), 2, messages={CLIENTS: MESSAGES})
    assert problems == {}
    assert sorted(results) == [("fastws", CLIENTS), ("floor", CLIENTS)]
    assert all(len(runs) == 2 for runs in results.values())
    measures = {m.id: m for m in broadcast.measures(results, (CLIENTS,))}
    assert {"broadcast.latency_5", "broadcast.rate_5"} <= set(measures)
    rate = measures["broadcast.rate_5"]
    assert rate.higher_is_better and rate.unit == "deliveries/s"
    assert rate.fastws == ["fastws"] and rate.floor == "transport.write loop (floor)"
    assert all(len(samples) == 2 for samples in rate.samples.values())
    assert not measures["broadcast.latency_5"].higher_is_better


def test_a_missing_stack_is_reported_not_run() -> None:
    results, problems, _ = broadcast.run_stacks(("floor",), (CLIENTS,), 1, messages={CLIENTS: MESSAGES})
    assert list(results) == [("floor", CLIENTS)]
    # A stack whose module is absent never starts a server.
    original = dict(servers.REQUIRES)
    try:
        servers.REQUIRES["websockets"] = "no_such_module_for_this_test"
        results, problems, _ = broadcast.run_stacks(("websockets",), (CLIENTS,), 1, messages={CLIENTS: MESSAGES})
    finally:
        servers.REQUIRES.clear()
        servers.REQUIRES.update(original)
    assert results == {}
    assert problems == {"websockets": "not installed: no_such_module_for_this_test"}


def _result(**changes: Any) -> Dict[str, Any]:
    result: Dict[str, Any] = {
        "clients": 5, "messages": 3, "deliveries": 15, "error_total": 0, "latency_ms": 1.0, "first_error": None,
    }
    result.update(changes)
    return result


@pytest.mark.parametrize(
    "changes, void",
    [
        ({}, False),
        ({"deliveries": 14}, True),  # one connection missed one message
        ({"error_total": 1, "first_error": "timeout"}, True),
        ({"latency_ms": None}, True),  # not every connection had message 0
    ],
)
def test_failure_voids_runs_with_errors_or_missing_deliveries(changes: Dict[str, Any], void: bool) -> None:
    assert (broadcast.failure(_result(**changes)) is not None) is void


@pytest.mark.parametrize(
    "message, expected",
    [
        ("bcast 3 64", (3, 64)),
        (b"bcast 10 16", (10, 16)),
        ("bcast 1 2", (1, 4)),  # room for the index at least
        ("bcast 3", None),
        ("broadcast 3 64", None),
        ("bcast -1 64", None),
        (b"\xff\xfe", None),
        (42, None),
    ],
)
def test_parse_trigger(message: Any, expected: Optional[Tuple[int, int]]) -> None:
    assert servers.parse_trigger(message) == expected


def test_payloads_start_with_their_index() -> None:
    payloads = servers.payloads(3, 64)
    assert [len(p) for p in payloads] == [64, 64, 64]
    assert [struct.unpack(">I", p[:4])[0] for p in payloads] == [0, 1, 2]


@pytest.mark.parametrize("size, header", [(64, b"\x82\x40"), (200, b"\x82\x7e\x00\xc8"), (70000, b"\x82\x7f")])
def test_floor_frames(size: int, header: bytes) -> None:
    frame = servers.binary_frame(bytes(size))
    assert frame.startswith(header)
    assert len(frame) == size + {64: 2, 200: 4, 70000: 10}[size]

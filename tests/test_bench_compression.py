"""The compression group's parts: its payloads, its wire counter, its measures."""

from __future__ import annotations

import json
import os
import socket
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.compression import CASES, measures  # noqa: E402
from bench.compression.client import _socket_to, tcp_bytes  # noqa: E402
from bench.compression.payloads import LARGE, SMALL, payloads  # noqa: E402


@pytest.mark.parametrize("size", [SMALL, 4096, LARGE])
def test_payloads_are_json_of_the_exact_size_and_deterministic(size):
    first, second = payloads(size)
    assert len(first) == len(second) == size and first != second
    assert payloads(size) == (first, second)
    for data in (first, second):
        value = json.loads(data)
        if size == SMALL:
            assert set(value) == {"user", "text"}
        else:
            assert isinstance(value, list) and {"type", "id", "room", "user", "ts"} <= set(value[0])


@pytest.mark.skipif(not hasattr(socket, "TCP_INFO"), reason="TCP_INFO is Linux's")
def test_tcp_bytes_counts_what_the_socket_received_and_sent():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    server, _ = listener.accept()
    found = _socket_to(port)
    try:
        assert found is not None and found.getsockname() == client.getsockname()
        before = tcp_bytes(found)
        assert before is not None
        server.sendall(b"x" * 100_000)
        got = 0
        while got < 100_000:
            got += len(client.recv(65536))
        client.sendall(b"y" * 3000)
        received = 0
        while received < 3000:
            received += len(server.recv(65536))
        after = tcp_bytes(found)
        assert after is not None
        assert after[1] - before[1] == 100_000
        # Acknowledged bytes lag a little behind what the peer read: at most all.
        assert 0 <= after[0] - before[0] <= 3000
    finally:
        for sock in (found, client, server, listener):
            if sock is not None:
                sock.close()


def test_socket_to_an_unknown_port_is_none():
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        assert _socket_to(listener.getsockname()[1]) is None
    finally:
        listener.close()


def run(messages: int, seconds: float, received: int, sent: int) -> dict:
    small = {"messages": 1000, "seconds": 0.5, "server_cpu_s": 0.02, "client_cpu_s": 0.03, "wire_received": 6000}
    large = {
        "messages": messages,
        "seconds": seconds,
        "mb_per_s": messages * LARGE / seconds / 1e6,
        "server_cpu_s": 0.1,
        "client_cpu_s": 0.2,
        "wire_received": received,
        "wire_sent": sent,
    }
    return {"small": small, "large": large}


def test_measures_from_runs():
    fastws, aiohttp = CASES[0], next(case for case in CASES if case.key == "aiohttp")
    runs = {
        fastws.key: [run(10, 1.0, 3 * LARGE, 4 * LARGE), run(20, 1.0, 6 * LARGE, 8 * LARGE)],
        aiohttp.key: [run(5, 1.0, LARGE, LARGE)],
    }
    rtt, mbps, ratio = measures([fastws, aiohttp], runs, "uvloop")
    assert rtt.samples == {fastws.label: [2000.0, 2000.0], aiohttp.label: [2000.0]}
    assert rtt.fastws == [fastws.label] and rtt.higher_is_better
    assert mbps.samples[fastws.label] == [10 * LARGE / 1e6, 20 * LARGE / 1e6]
    assert ratio.samples == {fastws.label: [30.0, 30.0], aiohttp.label: [20.0]}
    assert not ratio.higher_is_better
    assert ratio.extra[fastws.label]["client's messages, % of payload"] == 40.0
    assert ratio.extra[fastws.label]["32 B echo on the wire, bytes"] == 6.0
    assert mbps.extra[fastws.label]["server CPU ms per 1 MiB echo"] == pytest.approx((10 + 5) / 2)


def test_picows_through_its_websockets_api_is_measured_and_noted_not_skipped(tmp_path, monkeypatch):
    # picows has no permessage-deflate in its own API: the group measures its
    # websockets-compatible API instead, so the report must not list picows as
    # "not measured" while its figures are in every table.
    import bench.compression as group
    from bench.results import Context

    cases = tuple(case for case in CASES if case.key in ("fastws", "picows-websockets"))
    monkeypatch.setattr(group, "CASES", cases)
    result = group.run_group(Context(mode="quick", out_dir=str(tmp_path)))
    assert result.skipped == {}
    assert all("picows (websockets API)" in m.samples for m in result.measures)
    assert [note for note in result.notes if note.startswith("picows: ")] == [
        f"picows: {group.SUBSTITUTED['picows']}"
    ]

"""bench.loadgen's wsload against real servers over loopback, and against
servers that misbehave on purpose: every fault is counted as an error of its
kind, never a hang. Also the handshake group's server processes (socketify and
the floor among them), in one tiny run.

The servers run in the test's event loop (fastws, websockets, hand-written
faulty ones) while wsload runs in a worker thread's subprocess; the group's
servers run in processes of their own. Counts are tiny: a tenth of a second of
sessions, 5 clients and 3 messages for the broadcast.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import fastws  # noqa: E402
from bench import loadgen  # noqa: E402
from bench.results import GroupSkipped  # noqa: E402

from asyncio_helpers import run  # noqa: E402

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="wsload needs Linux (epoll)")


@pytest.fixture(scope="module", autouse=True)
def wsload_binary() -> str:
    return loadgen.build()


async def in_thread(fn: Callable[..., Dict[str, Any]], *args: Any, **kwargs: Any) -> Dict[str, Any]:
    """Run a blocking wsload wrapper without blocking the servers' loop."""
    return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kwargs))


def port_of(server: Any) -> int:
    return list(server.sockets)[0].getsockname()[1]


# --- build ------------------------------------------------------------------------------------


def test_build_caches_the_binary_by_source_and_compiler(wsload_binary: str) -> None:
    assert os.access(wsload_binary, os.X_OK)
    assert loadgen.build() == wsload_binary
    assert os.path.basename(wsload_binary).startswith("wsload-")


def test_build_without_a_compiler_skips_the_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTWS_BENCH_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(GroupSkipped, match=r"^no C compiler: .*no-such-cc"):
        loadgen.build()
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_raise_loadgen_error() -> None:
    with pytest.raises(loadgen.LoadgenError, match="4-byte index"):
        loadgen.broadcast(1, clients=1, messages=1, size=2, timeout=1.0)


def test_a_file_descriptor_limit_out_of_reach_is_a_clear_error() -> None:
    # More than the kernel lets any process have (fs.nr_open, 1,048,576 by
    # default): refused before a single connection is opened.
    with pytest.raises(loadgen.LoadgenError, match="file descriptors"):
        loadgen.broadcast(1, clients=5_000_000, messages=1, size=64, timeout=1.0)


# --- handshake mode against real servers -------------------------------------------------------


async def _echo(websocket: Any) -> None:
    async for message in websocket:
        await websocket.send(message)


class _EchoListener(fastws.Listener):
    def on_message(self, connection: Any, message: Any) -> None:
        connection.send_nowait(message)


async def _fastws_serve() -> Any:
    return await fastws.serve(_echo, "127.0.0.1", 0, ping_interval=None, compression=None)


async def _fastws_listener() -> Any:
    return await fastws.serve_listener(_EchoListener, "127.0.0.1", 0, ping_interval=None, compression=None)


async def _websockets() -> Any:
    from websockets.asyncio.server import serve

    return await serve(_echo, "127.0.0.1", 0, ping_interval=None, compression=None)


SERVERS = {"fastws serve": _fastws_serve, "fastws Listener": _fastws_listener, "websockets": _websockets}


@pytest.mark.parametrize("name", SERVERS)
@run
async def test_handshake_sessions_complete_without_errors(name: str) -> None:
    server = await SERVERS[name]()
    try:
        result = await in_thread(loadgen.handshake, port_of(server), concurrency=4, duration=0.2, timeout=5.0)
    finally:
        server.close()
        await server.wait_closed()
    assert result["errors"] == {}, result["first_error"]
    assert result["mode"] == "handshake"
    assert result["sessions"] > 0
    assert result["completed"] >= result["sessions"]
    assert result["unfinished"] == 0 and not result["aborted"]
    assert result["rate"] == pytest.approx(result["sessions"] / result["seconds"], rel=1e-3)
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p99"] <= result["latency_ms"]["max"]


# --- broadcast mode ----------------------------------------------------------------------------


async def _broadcast_server(skip: Optional[int] = None, last: Optional[int] = None) -> Any:
    """A fastws server that answers "bcast K SIZE" by broadcasting K messages of
    SIZE bytes, each starting with its index; ``skip``: leave that index out,
    ``last``: stop before that index."""
    server: Any = None

    async def handler(websocket: Any) -> None:
        async for message in websocket:
            assert isinstance(message, str), message
            _, count, size = message.split()
            for index in range(int(count) if last is None else last):
                if index != skip:
                    payload = index.to_bytes(4, "big") + bytes(int(size) - 4)
                    fastws.broadcast(server.connections, payload)

    server = await fastws.serve(handler, "127.0.0.1", 0, ping_interval=None, compression=None)
    return server


@run
async def test_broadcast_reaches_every_client() -> None:
    server = await _broadcast_server()
    try:
        before = time.monotonic()
        result = await in_thread(loadgen.broadcast, port_of(server), 5, 3, 64, 5.0)
        after = time.monotonic()
        assert not server.connections  # wsload closed every connection cleanly
    finally:
        server.close()
        await server.wait_closed()
    assert result["errors"] == {}, result["first_error"]
    assert (result["clients"], result["connected"], result["messages"]) == (5, 5, 3)
    assert result["deliveries"] == 5 * 3
    assert all(0 < first <= last for first, last in zip(result["first_ms"], result["last_ms"]))
    assert result["last_ms"] == sorted(result["last_ms"])
    assert result["seconds"] * 1e3 == pytest.approx(max(result["last_ms"]), abs=1e-3)
    # The burst's bounds on time.monotonic()'s clock, where the broadcast group
    # reads the server's CPU time.
    assert before < result["trigger_monotonic"] < result["end_monotonic"] < after
    assert result["end_monotonic"] - result["trigger_monotonic"] == pytest.approx(result["seconds"], abs=1e-5)


@pytest.mark.parametrize(
    "fault, error, deliveries",
    [
        ({"skip": 1}, "order", 5),  # each client gets 0, then 2 instead of 1
        ({"last": 2}, "timeout", 10),  # message 2 never comes
    ],
)
@run
async def test_broadcast_faults_are_errors(fault: Dict[str, int], error: str, deliveries: int) -> None:
    server = await _broadcast_server(**fault)
    started = time.monotonic()
    try:
        result = await in_thread(loadgen.broadcast, port_of(server), 5, 3, 64, 0.5)
    finally:
        server.close()
        await server.wait_closed()
    assert error in result["errors"], result
    assert result["deliveries"] == deliveries
    assert None in result["last_ms"]
    assert time.monotonic() - started < 10


# --- servers that misbehave ------------------------------------------------------------------


class FaultyServer(asyncio.Protocol):
    """Speaks just enough WebSocket to fail in one chosen way."""

    def __init__(self, fault: str) -> None:
        self.fault = fault
        self.buffer = b""
        self.open = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.open:
            if b"\r\n\r\n" not in self.buffer:
                return
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.open = True
            self.answer(head)
        while len(self.buffer) >= 6:
            length = self.buffer[1] & 0x7F
            assert length < 126 and self.buffer[1] & 0x80  # the client's small masked frames
            if len(self.buffer) < 6 + length:
                return
            mask, payload = self.buffer[2:6], self.buffer[6 : 6 + length]
            opcode = self.buffer[0] & 0x0F
            self.buffer = self.buffer[6 + length :]
            self.frame(opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def answer(self, head: bytes) -> None:
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        fault = self.fault
        if fault == "silent":
            return
        if fault == "eof_early":
            self.transport.close()
            return
        if fault == "http_status":
            self.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return
        if fault == "http_too_long":
            self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nX-Pad: " + b"a" * 5000)
            return
        if fault == "bad_accept":
            accept = base64.b64encode(hashlib.sha1(key + b"x").digest())
        lines = [b"HTTP/1.1 101 Switching Protocols", b"Upgrade: websocket", b"Connection: Upgrade"]
        if fault != "missing_accept":
            lines.append(b"Sec-WebSocket-Accept: " + accept)
        self.transport.write(b"\r\n".join(lines) + b"\r\n\r\n")

    def frame(self, opcode: int, payload: bytes) -> None:
        if opcode == 0x2:
            if self.fault == "echo_mismatch":
                payload = bytes(b ^ 1 for b in payload)
            self.transport.write(bytes([0x82, len(payload)]) + payload)
        elif opcode == 0x8:
            code = b"\x03\xe9" if self.fault == "close_code" else b"\x03\xe8"
            self.transport.write(b"\x88\x02" + code)
            if self.fault != "no_server_close":
                self.transport.close()


FAULTS = [
    "bad_accept",
    "missing_accept",
    "http_status",
    "http_too_long",
    "eof_early",
    "silent",  # -> timeout
    "echo_mismatch",
    "close_code",
    "no_server_close",
]


@pytest.mark.parametrize("fault", FAULTS)
@run
async def test_handshake_faults_are_errors_not_hangs(fault: str) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: FaultyServer(fault), "127.0.0.1", 0)
    started = time.monotonic()
    try:
        result = await in_thread(
            loadgen.handshake, port_of(server), concurrency=2, duration=0.1, timeout=0.5, max_errors=4
        )
    finally:
        server.close()
        await server.wait_closed()
    expected = "timeout" if fault == "silent" else fault
    assert set(result["errors"]) == {expected}, result
    assert result["first_error"].startswith(expected + ":")
    assert result["sessions"] == 0
    assert time.monotonic() - started < 10


@run
async def test_the_faulty_server_itself_passes_when_it_does_not_fault() -> None:
    # The same hand-written server, fault-free: the faults above are its only failures.
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: FaultyServer("none"), "127.0.0.1", 0)
    try:
        result = await in_thread(loadgen.handshake, port_of(server), concurrency=2, duration=0.1, timeout=2.0)
    finally:
        server.close()
        await server.wait_closed()
    assert result["errors"] == {}, result["first_error"]
    assert result["sessions"] > 0


def test_broadcast_against_a_bad_accept_opens_nothing_and_returns() -> None:
    async def main() -> Dict[str, Any]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: FaultyServer("bad_accept"), "127.0.0.1", 0)
        try:
            return await in_thread(loadgen.broadcast, port_of(server), 3, 2, 64, 0.5)
        finally:
            server.close()
            await server.wait_closed()

    result = asyncio.run(main())
    assert result["errors"] == {"bad_accept": 3}
    assert (result["connected"], result["deliveries"]) == (0, 0)
    assert result["first_ms"] == result["last_ms"] == [None, None]


def test_a_refused_port_stops_at_max_errors() -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    result = loadgen.handshake(port, concurrency=2, duration=5.0, timeout=0.5, max_errors=10)
    assert result["aborted"] is True
    assert set(result["errors"]) == {"connect"} and result["error_total"] >= 10
    assert time.monotonic() - started < 4


# --- the handshake group's servers -----------------------------------------------------------


def test_handshake_group_measures_each_server_process() -> None:
    from bench import handshake

    stacks = ["fastws", "socketify", handshake.FLOOR]
    stacks = [s for s in stacks if not handshake.missing(s)]
    results, problems, pin = handshake.run_stacks(stacks, repeats=1, duration=0.2)
    assert problems == {}
    assert sorted(results) == sorted(stacks)
    for stack, runs in results.items():
        (result,) = runs
        assert result["mode"] == ("raw" if stack == handshake.FLOOR else "handshake")
        assert result["errors"] == {} and result["sessions"] > 0, (stack, result)
        assert result["server_us"] is None or result["server_us"] > 0

    # What python -m bench gets from those runs.
    sessions, cpu = handshake.measures(results, "uvloop")
    assert (sessions.id, cpu.id) == ("handshake.sessions", "handshake.cpu")
    assert sessions.higher_is_better and not cpu.higher_is_better
    labels = [handshake.label(s) for s in stacks]
    assert list(sessions.samples) == labels
    assert sessions.samples[labels[0]] == [results[stacks[0]][0]["rate"]]
    assert list(sessions.fastws) == ["fastws serve()"]
    assert sessions.floor == "bare uvloop protocol (floor)"
    assert set(sessions.extra) == set(labels)



def _children_running(module: str) -> Dict[int, str]:
    """This process's children whose command line runs ``python -m module``: pid -> stack."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and module.encode() in argv:
            found[int(name)] = argv[argv.index(module.encode()) + 1].decode()
    return found


def test_handshake_group_keeps_the_others_when_a_server_dies_during_the_runs() -> None:
    import signal

    from bench import handshake

    stacks = ["fastws", handshake.FLOOR]
    killed = []

    def step(message: str) -> None:
        # Just before fastws's run: its server dies (as a crashing server would).
        if message.startswith(handshake.label("fastws") + ": run"):
            (pid,) = [pid for pid, stack in _children_running("bench.echo.servers").items() if stack == "fastws"]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    results, problems, _ = handshake.run_stacks(stacks, repeats=1, duration=0.2, step=step)
    assert killed
    assert list(results) == [handshake.FLOOR]  # measured, and kept
    assert list(problems) == ["fastws"]

"""A connection's cost per message in process: read, dispatch, reply.

A server-side :class:`fastws.asyncio.connection.Connection` with a Listener gets
reads of masked client frames in its read buffer (``get_buffer`` then
``buffer_updated``, as the event loop does) and, in the echo rows, answers each
message with ``send_nowait``; the transport is a stub whose ``write`` is a C
function (``list.append``), as uvloop's and asyncio's are C or cheap. The rows
of a group compare the connection's hot methods:

- ``cython``: the compiled fast path (:mod:`fastws.asyncio._fastpath`);
- ``python``: its pure-Python twin (:mod:`fastws.asyncio._fastpath_py`, the
  same source run as Python);
- ``general``: every read through ``data_received`` and the sans-I/O protocol's
  events, and every reply through ``Protocol.send_binary``: the path both take
  for anything but plain messages, and the only one before the fast path.

Each row runs whichever twin it names, whichever one ``Connection`` itself
runs (:func:`fastws.asyncio.connection.connection_class`).

The network echo benchmark (``python -m bench.echo``) measures the same code
between processes; this one isolates it from the kernel and the event loop.
Self-contained: needs only pytest-benchmark.
"""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from fastws.asyncio.connection import Connection, Listener, connection_class  # noqa: E402
from fastws.codec import build_frame  # noqa: E402
from fastws.protocol import Protocol, Side  # noqa: E402

pytest.importorskip("pytest_benchmark")


class _Transport:
    """Writes go to a list (a C call); flow control is never triggered."""

    def __init__(self) -> None:
        self.out: list = []
        self.write = self.out.append

    def writelines(self, chunks) -> None:
        self.out.extend(chunks)

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass

    def get_extra_info(self, name, default=None):
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class _Echo(Listener):
    def on_message(self, connection, message):
        connection.send_nowait(message)


class _Count(Listener):
    count = 0

    def on_message(self, connection, message):
        self.count += 1


class _GeneralPath(Connection):
    """Everything through the sans-I/O protocol (the general path)."""

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self.get_buffer(-1)[:nbytes])

    def send_nowait(self, message) -> None:
        self._send_general(message)


def _classes():
    """(name, Connection class) of each row."""
    rows = [
        pytest.param(("python", connection_class(pure=True)), id="python"),
        pytest.param(("general", _GeneralPath), id="general"),
    ]
    try:
        compiled = connection_class(pure=False)
    except ImportError as exc:
        skip = pytest.mark.skip(reason=f"the compiled fast path is not built ({exc})")
        rows.insert(0, pytest.param(("cython", None), id="cython", marks=skip))
    else:
        rows.insert(0, pytest.param(("cython", compiled), id="cython"))
    return rows


def _connection(cls, listener):
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        async def make():
            conn = cls(Protocol(Side.SERVER), listener=listener, ping_interval=None)
            conn.connection_made(_Transport())
            conn._connection_open()
            return conn

        return loop.run_until_complete(make()), loop
    finally:
        asyncio.set_event_loop(None)


# (case, frames per read, payload size, listener)
CASES = [
    ("echo 1 x 32 B per read", 1, 32, _Echo),
    ("echo 1 x 32 B text per read", 1, 32, _Echo),
    ("receive 100 x 32 B per read", 100, 32, _Count),
]


@pytest.mark.parametrize("row", _classes())
@pytest.mark.parametrize("case,count,size,listener_cls", CASES, ids=[c[0] for c in CASES])
def test_connection(benchmark, row, case, count, size, listener_cls):
    name, cls = row
    benchmark.group = f"connection | {case}"
    benchmark.extra_info.update(
        impl=f"fastws[{name}] connection",
        kernel="connection",
        case=case,
        baseline="fastws[general] connection",
        frames_per_call=count,
        primary="frames",
    )
    opcode = 1 if "text" in case else 2
    payload = b"x" * size
    data = b"".join(build_frame(opcode, payload, mask=True) for _ in range(count))
    listener = listener_cls()
    conn, loop = _connection(cls, listener)
    try:
        buffer = conn.get_buffer(-1)
        n = len(data)
        buffer[:n] = data
        out = conn.transport.out

        def one_read():
            conn.buffer_updated(n)
            out.clear()

        one_read()
        if listener_cls is _Echo:
            conn.buffer_updated(n)
            expected = build_frame(opcode, payload)
            assert out == [expected] * count, out[:2]
            out.clear()
        benchmark(one_read)
        assert conn.protocol.state.name == "OPEN"
        if listener_cls is _Count:
            assert listener.count >= count * 2
    finally:
        loop.close()

"""What one echo costs each backend in user space, in process: no socket, no kernel.

    python -m bench.asgi.inproc                      # both loops, every backend
    python -m bench.asgi.inproc --loops uvloop --echoes 50000 --repeat 7

The network benchmark (``python -m bench.asgi``) measures whole servers, and on a
small shared machine most of a 32 B round trip is the kernel's (the write that
delivers it over loopback, the wake-up of the other process) and its noise. This
one times what differs between the backends: each uvicorn WebSocket protocol
class, built as uvicorn builds it (its ``Config``, ``ServerState`` and the app
wrapped by ``config.load()``), on a real event loop (asyncio's or uvloop's), with
a stub transport. After the opening handshake (the request fed as uvicorn's HTTP
protocol hands it over), each echo is: one masked 32 B binary frame fed to the
protocol (``buffer_updated`` for a buffered protocol, as the loop does, else
``data_received``), then the loop runs until the reply frame has been written to
the transport. The driver is the same for every row, and its own cost is
measured too (a protocol that writes the reply back at once, no task) and
subtracted.

Rows: fastws's ``Connection`` with a ``recv()``/``send()`` handler task (what
``fastws.serve`` runs: the ceiling), ``fastws.uvicorn`` with the bare ASGI echo
and with the Starlette app of :mod:`bench.asgi.servers`, and uvicorn's own
backends with the Starlette app. Prints microseconds per echo (the median of
``--repeat`` runs of ``--echoes`` echoes each) and each row's ratio to
fastws.uvicorn with Starlette.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

ASGI_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(ASGI_DIR))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.asgi import FASTWS_WS, LABELS  # noqa: E402
from bench.asgi.servers import UVICORN_SETTINGS, bare_echo, starlette_app  # noqa: E402
from bench.echo import LOOPS, MAX_SIZE, SMALL, run  # noqa: E402

REQUEST = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)

#: Rows: name -> (label, uvicorn ws= value or None for fastws's Connection, app factory)
ROWS: Dict[str, Tuple[str, Optional[str], Optional[Callable[[], Any]]]] = {
    "fastws-serve": ("fastws Connection, recv/send handler (fastws.serve)", None, None),
    "fastws-bare": (LABELS["fastws-bare"], FASTWS_WS, lambda: bare_echo),
    "fastws": (LABELS["fastws"], FASTWS_WS, starlette_app),
    "websockets-sansio": (LABELS["websockets-sansio"], "websockets-sansio", starlette_app),
    "websockets": (LABELS["websockets"], "websockets", starlette_app),
    "wsproto": (LABELS["wsproto"], "wsproto", starlette_app),
}
REFERENCE = "fastws"


class StubTransport:
    """What the protocols call on a transport; ``write`` counts bytes and wakes
    the driver when the reply it waits for is complete."""

    def __init__(self) -> None:
        self.written = 0
        self.want = 0
        self.waiter: Optional[asyncio.Future] = None
        self.closing = False
        self.protocol: Any = None

    def write(self, data: Any) -> None:
        self.written += len(data)
        if self.written >= self.want and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        pass

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    def set_write_buffer_limits(self, high: Optional[int] = None, low: Optional[int] = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return True


#: Bytes per read handed to a protocol: what asyncio's transports read at most (256 KiB).
READ_SIZE = 256 * 1024


def _feeder(protocol: Any) -> Callable[[List[bytes]], None]:
    """Hand ``chunks`` (reads of at most READ_SIZE) to ``protocol`` as the event loop would."""
    if isinstance(protocol, asyncio.BufferedProtocol):
        get_buffer, buffer_updated = protocol.get_buffer, protocol.buffer_updated

        def feed_buffered(chunks: List[bytes]) -> None:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    buffer = get_buffer(len(view))
                    n = min(len(buffer), len(view))
                    buffer[:n] = view[:n]
                    buffer_updated(n)
                    view = view[n:]

        return feed_buffered
    data_received = protocol.data_received

    def feed(chunks: List[bytes]) -> None:
        for chunk in chunks:
            data_received(chunk)

    return feed


async def _open(row: str) -> Tuple[Any, StubTransport]:
    """A protocol of ``row`` past its opening handshake, on a stub transport."""
    transport = StubTransport()
    loop = asyncio.get_running_loop()
    _, ws, app = ROWS[row]
    if ws is None:
        import fastws

        async def echo(websocket: Any) -> None:  # bench.echo's fastws server, as is
            async for message in websocket:
                await websocket.send(message)

        # fastws.serve's own connection factory (not awaited: no socket).
        protocol: Any = fastws.serve(echo, "127.0.0.1", 0, ping_interval=None, max_size=MAX_SIZE)._factory()
    else:
        protocol = _uvicorn_protocol(ws, app)
    protocol.connection_made(transport)
    transport.set_protocol(protocol)
    transport.want = 1  # the 101 response
    transport.waiter = loop.create_future()
    protocol.data_received(REQUEST)
    await asyncio.wait_for(transport.waiter, 5)
    for _ in range(20):  # let the connection settle (handshake tasks, the app's first receive())
        await asyncio.sleep(0)
    return protocol, transport


def _uvicorn_protocol(ws: str, app: Optional[Callable[[], Any]]) -> Any:
    """uvicorn's protocol class for ``ws=``, built as uvicorn's HTTP protocol builds it."""
    import uvicorn
    from uvicorn.server import ServerState

    assert app is not None
    config = uvicorn.Config(app(), ws=ws, **UVICORN_SETTINGS)
    config.load()
    return config.ws_protocol_class(config=config, server_state=ServerState(), app_state={})  # type: ignore[misc]


class _Immediate(asyncio.Protocol):
    """The driver's floor: writes the reply as soon as a whole frame came, no task."""

    def __init__(self, transport: StubTransport, reply: bytes, frame_size: int) -> None:
        self.transport = transport
        self.reply = reply
        self.frame_size = frame_size
        self.received = 0

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self.received >= self.frame_size:
            self.received = 0
            self.transport.write(self.reply)


async def _time_echoes(feed: Callable[[List[bytes]], None], transport: StubTransport, frame: List[bytes],
                       reply_size: int, echoes: int) -> float:
    """Seconds per echo over ``echoes`` echoes."""
    loop = asyncio.get_running_loop()
    create_future = loop.create_future
    gc.collect()
    t0 = time.perf_counter()
    for _ in range(echoes):
        transport.want = transport.written + reply_size
        waiter = transport.waiter = create_future()
        feed(frame)
        if not waiter.done():
            await waiter
    return (time.perf_counter() - t0) / echoes


async def measure(rows: List[str], size: int, echoes: int, repeat: int) -> Dict[str, List[float]]:
    from fastws.codec import build_frame

    payload = os.urandom(size)
    masked = build_frame(2, payload, mask=True)
    frame = [masked[i : i + READ_SIZE] for i in range(0, len(masked), READ_SIZE)]
    reply_size = len(build_frame(2, payload))
    out: Dict[str, List[float]] = {row: [] for row in ["driver"] + rows}
    opened = {}
    for row in rows:
        protocol, transport = await _open(row)
        feed = _feeder(protocol)
        await _time_echoes(feed, transport, frame, reply_size, min(echoes, 2000))  # warm-up, and a check
        opened[row] = (feed, transport)
    floor_transport = StubTransport()
    floor = _Immediate(floor_transport, build_frame(2, payload), len(masked))
    floor_feed = _feeder(floor)
    for _ in range(repeat):  # interleaved: every row in every round
        out["driver"].append(await _time_echoes(floor_feed, floor_transport, frame, reply_size, echoes))
        for row in rows:
            feed, transport = opened[row]
            out[row].append(await _time_echoes(feed, transport, frame, reply_size, echoes))
    for row in rows:  # the client leaves: every backend ends its connection and app
        transport = opened[row][1]
        transport.closing = True
        transport.protocol.connection_lost(None)
    for _ in range(20):
        await asyncio.sleep(0)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.asgi.inproc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", default=",".join(LOOPS), metavar="A,B", help="loops (default: asyncio,uvloop)")
    parser.add_argument("--rows", default=",".join(ROWS), metavar="A,B", help=f"rows (default: {','.join(ROWS)})")
    parser.add_argument("--size", type=int, default=SMALL, metavar="BYTES", help=f"message size (default: {SMALL})")
    parser.add_argument(
        "--echoes", type=int, metavar="N", help="echoes per timing (default: 20000, or fewer for larger messages)"
    )
    parser.add_argument("--repeat", type=int, default=5, metavar="N", help="timings per row, median (default: 5)")
    args = parser.parse_args(argv)
    if args.size < 1:
        raise SystemExit("--size must be >= 1")
    echoes = args.echoes or max(50, min(20000, (2 << 20) // args.size * 10))
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    bad = [r for r in rows if r not in ROWS]
    if bad:
        raise SystemExit(f"unknown rows: {', '.join(bad)} (known: {', '.join(ROWS)})")
    unit, scale = "us", 1e6
    print(
        f"user-space cost of one {args.size:,} B binary echo, in process (stub transport, no kernel): "
        f"median of {args.repeat} x {echoes} echoes, the driver's own cost subtracted"
    )
    width = max(len(ROWS[r][0]) for r in rows)
    for kind in [k.strip() for k in args.loops.split(",") if k.strip()]:
        times = run(measure(rows, args.size, echoes, args.repeat), kind)
        driver = statistics.median(times["driver"])
        medians = {row: statistics.median(times[row]) - driver for row in rows}
        ref = medians.get(REFERENCE)
        print()
        print(f"  {kind}: driver {driver * scale:.2f} {unit} per echo (subtracted below)")
        print(f"  {'row'.ljust(width)}  {unit}/echo  vs {REFERENCE}   range")
        for row in rows:
            lo, hi = min(times[row]) - driver, max(times[row]) - driver
            ratio = f"{medians[row] / ref:.2f}x" if ref else "-"
            print(
                f"  {ROWS[row][0].ljust(width)}  {medians[row] * scale:7.1f}  {ratio:>9}   "
                f"{lo * scale:.1f}-{hi * scale:.1f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Frame parsing on the server side: a buffer of masked client frames, each with
its own random key, fed in one piece to a fresh parser, which must return every
frame with its payload unmasked.

Groups: 1000 frames of 16 B, 1000 frames of 125 B (frames/s: per-frame overhead
dominates) and 64 frames of 64 KiB (GB/s of wire bytes: unmasking dominates).
"""

from __future__ import annotations

import functools
import logging
import socket

import pytest

from bench._support import (
    KiB,
    describe,
    masked_frame_buffer,
    record_throughput,
    require_attr,
    size_label,
)

BUFFERS = (
    # (frame count, payload size, primary throughput)
    (1000, 16, "frames"),
    (1000, 125, "frames"),
    (64, 64 * KiB, "bytes"),
)
BASELINE = "websockets Frame.parse (py, C mask)"


@functools.cache
def _buffer(count: int, size: int) -> tuple[bytes, list[bytes]]:
    return masked_frame_buffer(count, size, seed=count * 1_000_003 + size)


# Each adapter returns (function, args, payloads of the frames one call produced).
# Every function builds its parser (or state) anew, feeds the whole buffer and
# returns what it parsed, except picows, see below.


def _fastws(fixture):
    def adapter(request, buf):
        mod = request.getfixturevalue(fixture)
        cls = require_attr(mod, "FrameParser", mod.__name__)

        def fastws_parse(buf, cls=cls):
            return cls(mask_required=True).feed(buf)

        return fastws_parse, (buf,), [f.payload for f in fastws_parse(buf)]

    return adapter


def _websockets(request, buf):
    Frame, _Opcode, StreamReader = request.getfixturevalue("websockets_frames")

    def websockets_parse(buf, Frame=Frame, StreamReader=StreamReader):
        # As websockets.protocol.Protocol does: one generator parses frame after
        # frame from a StreamReader and yields when the reader runs out of data.
        reader = StreamReader()
        frames = []

        def parser(read_exact=reader.read_exact, parse=Frame.parse, append=frames.append):
            while True:
                append((yield from parse(read_exact, mask=True, max_size=None, extensions=None)))

        gen = parser()
        next(gen)  # waits for the first header
        reader.feed_data(buf)
        next(gen)  # parses everything, then waits for more
        return frames

    return websockets_parse, (buf,), [bytes(f.data) for f in websockets_parse(buf)]


def _wsproto(request, buf):
    cls = request.getfixturevalue("wsproto_frame_protocol")

    def wsproto_parse(buf, cls=cls):
        proto = cls(client=False, extensions=[])
        proto.receive_bytes(buf)
        return list(proto.received_frames())

    return wsproto_parse, (buf,), [bytes(f.payload) for f in wsproto_parse(buf)]


def _aiohttp(request, buf):
    harness = request.getfixturevalue("aiohttp_reader")

    def aiohttp_parse(buf, new=harness.new):
        reader, queue = new()
        reader.feed_data(buf)
        return queue

    reader, queue = harness.new()
    error, _ = reader.feed_data(buf)
    assert not error, f"aiohttp's reader failed: {queue.exception()!r}"
    return aiohttp_parse, (buf,), [bytes(m.data) for m in harness.messages(queue)]


class _PicowsServer:
    """picows parses only inside its connection protocol (``WSProtocol``, a
    BufferedProtocol). This drives a server-side one by hand: a fake transport
    over an unconnected TCP socket (picows sets socket options on it), an upgrade
    request to complete the handshake, then frames written into ``get_buffer()``
    and announced with ``buffer_updated()``, as asyncio would after a recv."""

    def __init__(self, top, core, loop) -> None:
        payloads: list = []

        class Listener(top.WSListener):
            def on_ws_frame(self, transport, frame):
                # Copy out the payload like every other parser here returns one.
                self.payloads.append(frame.get_payload_as_bytes())

        self.listener = Listener()
        self.listener.payloads = payloads
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        transport = _ConnTransport(self.sock)
        logger = logging.getLogger("bench.picows")
        logger.setLevel(logging.WARNING)

        async def make():  # WSProtocol wants a running loop at construction
            return core.WSProtocol(
                None,  # host_port
                None,  # ws_path
                False,  # is_client_side
                lambda request: self.listener,
                logger,
                True,  # disconnect_on_exception
                None,  # websocket_handshake_timeout: no timer
                False,  # enable_auto_ping
                10.0,
                10.0,
                top.WSAutoPingStrategy.PING_WHEN_IDLE,
                True,  # enable_auto_pong
                1 << 30,  # max_frame_size
                None,  # extra_headers
                64 * KiB,  # read_buffer_init_size
            )

        self.proto = loop.run_until_complete(make())
        self.proto.connection_made(transport)
        key = b"dGhlIHNhbXBsZSBub25jZQ=="
        self.feed(
            b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        if not transport.written.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"handshake refused: {transport.written[:80]!r}")

    def feed(self, data) -> list:
        payloads = self.listener.payloads = []
        get_buffer = self.proto.get_buffer
        buffer_updated = self.proto.buffer_updated
        view = memoryview(data)
        while view:
            dest = get_buffer(-1)
            n = min(len(dest), len(view))
            dest[:n] = view[:n]
            buffer_updated(n)
            view = view[n:]
        return payloads

    def close(self) -> None:
        self.sock.close()


class _ConnTransport:
    def __init__(self, sock) -> None:
        self.sock = sock
        self.written = b""

    def get_extra_info(self, name, default=None):
        return {
            "socket": self.sock,
            "peername": ("127.0.0.1", 50000),
            "sockname": ("127.0.0.1", 8080),
        }.get(name, default)

    def get_write_buffer_size(self) -> int:
        return 1  # so picows calls write() rather than send(2) on the socket

    def write(self, data) -> None:
        self.written += bytes(data)

    def writelines(self, lines) -> None:
        for data in lines:
            self.write(data)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


@pytest.fixture(scope="module")
def picows_server(picows_mod, bench_loop):
    top, core = picows_mod
    try:
        server = _PicowsServer(top, core, bench_loop)
    except Exception as exc:  # its private constructor changes between versions
        pytest.skip(f"picows has no standalone parser, and driving its WSProtocol by hand failed: {exc!r}")
    yield server
    server.close()


def _picows(request, buf):
    server = request.getfixturevalue("picows_server")
    return server.feed, (buf,), list(server.feed(buf))


IMPLS = {
    "fastws-cython": ("fastws[cython] FrameParser", _fastws("fastws_cython"), None),
    "fastws-python": ("fastws[python] FrameParser", _fastws("fastws_python"), None),
    "websockets": (BASELINE, _websockets, None),
    "wsproto": ("wsproto FrameProtocol (py)", _wsproto, None),
    "aiohttp": (
        "aiohttp WebSocketReader (cython)",
        _aiohttp,
        "also assembles messages into its queue",
    ),
    "picows": (
        "picows WSProtocol (emulated conn.)",
        _picows,
        "one connection reused across rounds; includes the copy into its read buffer",
    ),
}

CASES = [(count, size, primary, impl) for count, size, primary in BUFFERS for impl in IMPLS]


@pytest.mark.parametrize(
    ("count", "size", "primary", "impl"),
    CASES,
    ids=[f"{c}x{size_label(s).replace(' ', '')}-{i}" for c, s, _, i in CASES],
)
def test_parse(benchmark, request, count, size, primary, impl):
    name, adapter, note = IMPLS[impl]
    buf, payloads = _buffer(count, size)
    fn, args, produced = adapter(request, buf)
    assert len(produced) == count, f"{name} parsed {len(produced)} frames, expected {count}"
    assert produced == payloads, f"{name} returned wrong payloads"

    describe(
        benchmark,
        kernel="parse",
        case=f"{count} x {size_label(size)} masked",
        order=size,
        impl=name,
        baseline=BASELINE,
        bytes_per_call=len(buf),
        frames_per_call=count,
        primary=primary,
        note=note,
    )
    benchmark(fn, *args)
    record_throughput(benchmark)

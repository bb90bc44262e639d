"""Frame building: serialize one final binary frame.

Groups: 16 B masked (a client's small message: header, fresh random key, masked
copy), 16 B unmasked (a server's) and 64 KiB masked (the masking copy dominates).
Each call builds one frame; the report shows frames/s (and GB/s for 64 KiB).
"""

from __future__ import annotations

import functools
import logging

import pytest

from bench._support import (
    FakeTransport,
    KiB,
    check_built_frame,
    describe,
    random_bytes,
    record_throughput,
    require_attr,
    size_label,
)

CASES_ = (
    # (payload size, masked)
    (16, True),
    (16, False),
    (64 * KiB, True),
)
BASELINE = "websockets Frame.serialize (py, C mask)"


@functools.cache
def _payload(size: int) -> bytes:
    return random_bytes(size, seed=size + 7)


# Each adapter returns (function, args, kwargs, a function returning the output of
# one more call as bytes).


def _fastws(fixture):
    def adapter(request, payload, masked):
        mod = request.getfixturevalue(fixture)
        fn = require_attr(mod, "build_frame", mod.__name__)
        from fastws.frames import Opcode

        args = (Opcode.BINARY, payload)
        if not masked:
            return fn, args, {}, lambda: fn(*args)

        # mask is keyword-only: pytest-benchmark would call fn(*args, **kwargs),
        # unpacking a dict on every call (about 80 ns, more than the frame takes),
        # which callers do not do; a Python function makes the call as they do.
        def fastws_build_masked(opcode, payload, fn=fn):
            return fn(opcode, payload, mask=True)

        return fastws_build_masked, args, {}, lambda: fastws_build_masked(*args)

    return adapter


def _websockets(request, payload, masked):
    Frame, Opcode, _ = request.getfixturevalue("websockets_frames")

    def websockets_build(payload, masked, Frame=Frame, BINARY=Opcode.BINARY):
        return Frame(BINARY, payload).serialize(mask=masked, extensions=[])

    return websockets_build, (payload, masked), {}, lambda: websockets_build(payload, masked)


def _wsproto(request, payload, masked):
    cls = request.getfixturevalue("wsproto_frame_protocol")
    # The client side masks, the server side does not. One protocol object per
    # connection: send_data(fin=True) leaves it ready for the next message.
    proto = cls(client=masked, extensions=[])
    return proto.send_data, (payload,), {"fin": True}, lambda: proto.send_data(payload, fin=True)


def _aiohttp(request, payload, masked):
    WebSocketWriter, WSMsgType, FlowControl = request.getfixturevalue("aiohttp_writer")
    transport = FakeTransport()
    writer = WebSocketWriter(FlowControl(), transport, use_mask=masked)
    # The public send_frame() is a coroutine around this synchronous method
    # (compression and flow control aside); the frame goes to transport.write().
    fn = writer._write_websocket_frame
    args = (payload, WSMsgType.BINARY, 0)

    def one():
        probe = FakeTransport()
        probe.keep_all = True
        WebSocketWriter(FlowControl(), probe, use_mask=masked)._write_websocket_frame(*args)
        return b"".join(probe.chunks)

    return fn, args, {}, one


def _picows(request, payload, masked):
    top, core = request.getfixturevalue("picows_mod")
    loop = request.getfixturevalue("bench_loop")
    logger = logging.getLogger("bench.picows")

    def make(transport):
        try:
            return core.WSTransport(masked, transport, logger, loop)  # is_client_side=masked
        except Exception as exc:  # its constructor is not public API
            pytest.skip(f"picows has no standalone builder, and making a WSTransport failed: {exc!r}")

    ws = make(FakeTransport())

    def one():
        probe = FakeTransport()
        probe.keep_all = True
        make(probe).send(top.WSMsgType.BINARY, payload)
        return b"".join(probe.chunks)

    return ws.send, (top.WSMsgType.BINARY, payload), {}, one


IMPLS = {
    "fastws-cython": ("fastws[cython] build_frame", _fastws("fastws_cython"), None),
    "fastws-python": ("fastws[python] build_frame", _fastws("fastws_python"), None),
    "websockets": (BASELINE, _websockets, "includes the Frame's construction"),
    "wsproto": ("wsproto FrameProtocol.send_data (py)", _wsproto, None),
    "aiohttp": (
        "aiohttp WebSocketWriter (py, cython mask)",
        _aiohttp,
        "random.Random keys, not a CSPRNG; includes transport.write()",
    ),
    "picows": (
        "picows WSTransport.send (cython)",
        _picows,
        "rand() keys, not a CSPRNG; includes transport.write()",
    ),
}

CASES = [(size, masked, impl) for size, masked in CASES_ for impl in IMPLS]


@pytest.mark.parametrize(
    ("size", "masked", "impl"),
    CASES,
    ids=[
        f"{size_label(s).replace(' ', '')}-{'masked' if m else 'unmasked'}-{i}"
        for s, m, i in CASES
    ],
)
def test_build(benchmark, request, size, masked, impl):
    name, adapter, note = IMPLS[impl]
    payload = _payload(size)
    fn, args, kwargs, one = adapter(request, payload, masked)
    check_built_frame(one(), payload, masked)

    describe(
        benchmark,
        kernel="build",
        case=f"{size_label(size)} {'masked' if masked else 'unmasked'}",
        order=size * 2 + (0 if masked else 1),
        impl=name,
        baseline=BASELINE,
        bytes_per_call=size,
        frames_per_call=1,
        primary="bytes" if size >= 64 * KiB else "frames",
        note=note,
    )
    benchmark(fn, *args, **kwargs)
    record_throughput(benchmark)

"""The fast path of a connection (``get_buffer``, ``buffer_updated``,
``send_nowait``): the compiled :mod:`fastws.asyncio._fastpath` and its pure
twin :mod:`fastws.asyncio._fastpath_py` (one source, run as Python or compiled
by Cython) give the same results, and the results are what RFC 6455 requires.
The Connection that runs each twin comes from
:func:`~fastws.asyncio.connection.connection_class`, whichever twin Connection
itself runs.

A server-side :class:`~fastws.asyncio.connection.Connection` is driven in
memory, through a fake transport that records every call, by copying client
frames into ``get_buffer()`` and calling ``buffer_updated()`` as the event loop
does. Every row of the table runs with each implementation (fixture ``impl``),
in Listener mode and in recv() mode, and with the default and the pure codec;
with the compiled implementation the whole outcome (messages, bytes written
after each read, states, close codes, transport calls) is also compared with
the pure one's.

The contract with the sans-I/O protocol is checked on its own: which frames
go to ``Protocol.receive_frame`` / ``receive_frames`` (and none to
``receive_data`` while the connection is open), what ``fast_parser`` and
``fast_delivery`` say, and the order of a Listener's replies and of what
later frames cause, in every split of the frames into reads. Frames that come
in the same read as the opening handshake (client and server) do not take the
fast path: the last section.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import importlib
import logging
import zlib
from typing import Any, Optional, Tuple

import pytest

import fastws._codec_py
from fastws.asyncio import _fastpath_py, fastpath
from fastws.asyncio.client import ClientConnection
from fastws.asyncio.connection import Connection, Listener, connection_class
from fastws.asyncio.server import ServerConnection
from fastws.codec import FrameParser, build_close, build_frame
from fastws.deflate import PerMessageDeflate
from fastws.events import Close, Ping
from fastws.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    ProtocolError,
)
from fastws.protocol import OPEN, ClientProtocol, Protocol, ServerProtocol, Side

from asyncio_helpers import HANDSHAKE, TEST_TIMEOUT
from conftest import compiled_unavailable

# --- implementations ----------------------------------------------------------------------


def _connection(pure: bool):
    """``(class, None)`` or ``(None, reason to skip)``: the Connection that runs
    one twin, whichever one Connection itself runs (so that the compiled twin
    is tested whenever it is built, FASTWS_NO_EXTENSIONS or not)."""
    try:
        return connection_class(pure=pure), None
    except ImportError as exc:
        return None, f"fastws.asyncio._fastpath is not importable ({exc})"


#: The Connection that runs the pure twin (Connection itself under FASTWS_NO_EXTENSIONS).
PureConnection = connection_class(pure=True)


@dataclasses.dataclass(frozen=True)
class Impl:
    name: str
    cls: type


@pytest.fixture(params=["python", "cython"])
def impl(request):
    """The Connection class under test: pure or compiled FastPath."""
    cls, reason = _connection(pure=request.param == "python")
    if cls is None:
        compiled_unavailable(reason)
    return Impl(request.param, cls)


@pytest.fixture
def compiled():
    """The compiled Connection, for the tests that compare it with the pure one."""
    cls, reason = _connection(pure=False)
    if cls is None:
        compiled_unavailable(reason)
    return cls


def run(coro):
    async def bounded():
        return await asyncio.wait_for(coro, TEST_TIMEOUT)

    return asyncio.run(bounded())


def test_each_implementation_uses_its_own_fastpath(impl):
    """Each Connection class runs one twin, with Connection's own methods on
    top, and the other twin nowhere in its classes."""
    module = _fastpath_py if impl.name == "python" else importlib.import_module("fastws.asyncio._fastpath")
    other = "fastws.asyncio._fastpath" if impl.name == "python" else "fastws.asyncio._fastpath_py"
    assert module.IMPLEMENTATION == impl.name
    mro = impl.cls.__mro__
    assert mro == (impl.cls, module.FastPath, asyncio.BufferedProtocol, asyncio.BaseProtocol, object)
    assert not any(k.__module__ == other for k in mro)
    for name in ("get_buffer", "buffer_updated", "send_nowait", "data_received", "_enqueue", "_send_general"):
        assert getattr(impl.cls, name) is vars(module.FastPath)[name], name
    for name in ("__init__", "_received", "_listener_failed", "_flush", "_closed_exc", "recv", "send"):
        assert getattr(impl.cls, name) is vars(Connection)[name], name
    # the helpers of the per-read loop: Python methods in the pure twin, C ones in
    # the compiled twin (not reachable from Python, so no subclass can shadow them)
    for name in ("_feed_read", "_end_of_read", "_deliver", "_queue"):
        assert hasattr(impl.cls, name) is (impl.name == "python"), name
    # whichever twin Connection runs is the one fastws.asyncio.fastpath chose
    assert (impl.cls is Connection) is (fastpath.IMPLEMENTATION == impl.name)
    assert fastpath.load(pure=impl.name == "python") is module.FastPath


def test_the_fast_path_declares_what_it_calls_on_the_connection():
    """FastPath's four calls to its connection are declared on it (and raise
    NotImplementedError there), implemented by Connection."""
    for name in ("_received", "_listener_failed", "_flush", "_closed_exc"):
        assert vars(_fastpath_py.FastPath)[name] is not vars(Connection)[name], name
    with pytest.raises(NotImplementedError):
        _fastpath_py.FastPath()._flush()


# --- frames ---------------------------------------------------------------------------------

KEY = bytes.fromhex("37fa213d")  # a fixed mask key: byte-for-byte reproducible inputs


def frame(op: int, payload: Any = b"", *, fin: bool = True, rsv1: bool = False) -> bytes:
    """A masked client frame, built by the library."""
    return build_frame(op, payload, fin=fin, rsv1=rsv1, mask=KEY)


def raw_frame(b0: int, payload: bytes = b"", *, masked: bool = True) -> bytes:
    """A client frame built by hand, for those build_frame refuses to make."""
    n = len(payload)
    mask_bit = 0x80 if masked else 0
    if n < 126:
        header = bytes((b0, mask_bit | n))
    elif n < 1 << 16:
        header = bytes((b0, mask_bit | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((b0, mask_bit | 127)) + n.to_bytes(8, "big")
    if not masked:
        return header + payload
    return header + KEY + bytes(b ^ KEY[i % 4] for i, b in enumerate(payload))


def T(text: Any, **kw) -> bytes:
    return frame(1, text, **kw)


def B(data: bytes, **kw) -> bytes:
    return frame(2, data, **kw)


def C(data: Any, fin: bool = True) -> bytes:
    return frame(0, data, fin=fin)


def PING(data: bytes) -> bytes:
    return frame(9, data)


def CLOSE(code: Optional[int] = None, reason: str = "") -> bytes:
    return frame(8, b"" if code is None else build_close(code, reason))


def server_frame(op: int, payload: bytes, *, fin: bool = True) -> bytes:
    """An unmasked server frame, built by hand from RFC 6455 section 5.2."""
    b0 = (0x80 if fin else 0) | op
    n = len(payload)
    if n < 126:
        return bytes((b0, n)) + payload
    if n < 1 << 16:
        return bytes((b0, 126)) + n.to_bytes(2, "big") + payload
    return bytes((b0, 127)) + n.to_bytes(8, "big") + payload


def cut(data: bytes, *offsets: int) -> Tuple[bytes, ...]:
    bounds = (0,) + offsets + (len(data),)
    assert list(bounds) == sorted(bounds)
    return tuple(data[a:b] for a, b in zip(bounds, bounds[1:]))


def deflate_messages(*payloads: bytes) -> list:
    """Compressed payloads of successive messages from one client compressor
    (context takeover, 15-bit window), each ending with a sync flush whose
    trailing 00 00 ff ff is removed (RFC 7692 section 7.2.1)."""
    compressor = zlib.compressobj(wbits=-15)
    out = []
    for payload in payloads:
        data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(b"\x00\x00\xff\xff")
        out.append(data[:-4])
    return out


_NAMES = {0: "cont", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}


def token(f) -> tuple:
    """A written frame, readable: ("close", code) or (kind, payload)."""
    op = int(f.opcode)
    payload = bytes(f.payload)
    assert not f.rsv1 or op in (1, 2)
    if op == 8:
        return ("close", 1005 if not payload else int.from_bytes(payload[:2], "big"))
    if op == 1 and f.fin:
        return ("text", payload.decode())
    return (_NAMES[op] if f.fin else _NAMES[op] + "+", payload)


# --- the harness ----------------------------------------------------------------------------


class FakeTransport:
    """Records everything a connection does to its transport. close() ends the
    connection on the next loop iteration, as asyncio's transports do."""

    def __init__(self, loop):
        self.loop = loop
        self.protocol = None
        self.writes: list = []  # ("write", (data,)) / ("writelines", (chunk, ...)), objects as given
        self.calls: collections.Counter = collections.Counter()
        self.closing = False
        self.write_after_close = 0

    def chunks(self) -> list:
        return [c for _, chunks in self.writes for c in chunks]

    def data(self) -> bytes:
        return b"".join(bytes(c) for c in self.chunks())

    def shape(self) -> list:
        return [(kind, tuple(bytes(c) for c in chunks)) for kind, chunks in self.writes]

    def write(self, data):
        if self.closing:
            self.write_after_close += 1
        self.writes.append(("write", (data,)))

    def writelines(self, list_of_data):
        if self.closing:
            self.write_after_close += 1
        self.writes.append(("writelines", tuple(list_of_data)))

    def set_write_buffer_limits(self, high=None, low=None):
        self.calls["set_write_buffer_limits"] += 1
        self.limits = (high, low)

    def get_extra_info(self, name, default=None):
        return {"peername": ("192.0.2.1", 50000), "sockname": ("192.0.2.2", 8765)}.get(name, default)

    def pause_reading(self):
        self.calls["pause_reading"] += 1

    def resume_reading(self):
        self.calls["resume_reading"] += 1

    def get_write_buffer_size(self):
        return 0

    def is_closing(self):
        return self.closing

    def close(self):
        self.calls["close"] += 1
        if not self.closing:
            self.closing = True
            self.loop.call_soon(self.protocol.connection_lost, None)

    def abort(self):
        self.calls["abort"] += 1
        self.close()


class Recorder(Listener):
    def __init__(self, echo: bool = False, fail_on: Any = None):
        self.events: list = []
        self.echo = echo
        self.fail_on = fail_on

    def on_open(self, connection):
        self.events.append(("open",))

    def on_message(self, connection, message):
        self.events.append(("message", message))
        if self.fail_on is not None and message == self.fail_on:
            raise RuntimeError("on_message failed on purpose")
        if self.echo:
            connection.send_nowait(message)

    def on_ping(self, connection, data):
        self.events.append(("ping", data))

    def on_pong(self, connection, data):
        self.events.append(("pong", data))

    def on_close(self, connection, code, reason):
        self.events.append(("close", int(code), reason))


async def settle(n: int = 10) -> None:
    """Let every callback and task that is ready run (a handful of iterations)."""
    for _ in range(n):
        await asyncio.sleep(0)


async def open_connection(cls, protocol: Protocol, **options):
    options.setdefault("ping_interval", None)
    conn = cls(protocol, **options)
    transport = FakeTransport(asyncio.get_running_loop())
    transport.protocol = conn
    conn.connection_made(transport)
    conn._connection_open()
    assert conn.protocol.state is OPEN
    return conn, transport


def feed(conn, data: bytes) -> None:
    """One read, as asyncio's BufferedProtocol support does it."""
    buf = conn.get_buffer(-1)
    assert len(buf) >= len(data) > 0
    buf[: len(data)] = data
    conn.buffer_updated(len(data))


def frames_of(data: bytes, *, mask_required: bool = False, allow_rsv1: bool = False) -> list:
    parser = FrameParser(mask_required=mask_required, allow_rsv1=allow_rsv1)
    frames = parser.feed(data)
    assert parser.buffered == 0, "a frame written in part"
    return frames


CODECS = {"default": None, "pure": fastws._codec_py}


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    reads: Tuple[bytes, ...]
    messages: list  # delivered, in order
    written: list = dataclasses.field(default_factory=list)  # tokens of the frames written
    state: str = "OPEN"
    close_sent: Optional[int] = None  # code of the close frame sent
    close_code: Optional[int] = None  # Connection.close_code at the end
    error: Optional[str] = None  # type of protocol.error
    reads_fed: Optional[int] = None  # reads fed before the transport closed (None: all)
    max_size: Optional[int] = 1 << 20
    deflate: bool = False
    # protocol.gates.fast_delivery on the open connection: False when the protocol
    # must see every frame (max_size < 125, which the parser cannot enforce)
    direct: bool = True

    def failed(self, code: int, error: str = "ProtocolError") -> Case:
        return dataclasses.replace(
            self,
            written=self.written + [("close", code)],
            state="CLOSED",
            close_sent=code,
            close_code=1006,  # the peer sent no close frame
            error=error,
        )


@dataclasses.dataclass
class Outcome:
    messages: list
    listener_events: Optional[list]
    frames_per_read: list  # tokens of the frames written after each read
    raw_written: bytes
    write_shape: list
    reads_fed: int
    state: str
    close_sent: Optional[tuple]
    close_rcvd: Optional[tuple]
    close_code: Optional[int]
    error: Optional[tuple]
    parser_at_end: bool  # protocol.gates.fast_parser is not None after the last read
    direct_at_end: bool  # protocol.gates.fast_delivery after the last read
    transport_calls: dict
    write_after_close: int
    recv_end: Optional[tuple]


def _close_tuple(close):
    return None if close is None else (int(close.code), close.reason)


async def drive(cls, case: Case, mode: str, codec: str) -> Outcome:
    loop = asyncio.get_running_loop()
    protocol = Protocol(
        Side.SERVER,
        max_size=case.max_size,
        codec=CODECS[codec],
        extensions=[PerMessageDeflate()] if case.deflate else None,
    )
    # OPEN and reading: the driver always feeds the parser itself, and asks
    # fast_delivery which frames it may deliver
    parser = protocol.gates.fast_parser
    assert isinstance(parser, protocol.codec.FrameParser)
    assert protocol.gates.fast_parser is parser
    assert protocol.gates.fast_delivery is case.direct
    listener = Recorder() if mode == "listener" else None
    conn, transport = await open_connection(cls, protocol, listener=listener)
    received: list = []
    recv_end: list = []

    async def consume():
        try:
            while True:
                received.append(await conn.recv())
        except ConnectionClosed as exc:
            recv_end.append((type(exc).__name__, _close_tuple(exc.rcvd), _close_tuple(exc.sent)))

    task = loop.create_task(consume()) if mode == "recv" else None
    await settle()  # recv() is waiting before the first read

    wire = FrameParser(mask_required=False)
    seen = 0
    frames_per_read = []
    fed = 0
    for chunk in case.reads:
        if transport.closing:
            break  # a real transport reads nothing more
        feed(conn, chunk)
        fed += 1
        await settle()
        data = transport.data()
        frames_per_read.append([token(f) for f in wire.feed(data[seen:])])
        seen = len(data)
    assert wire.buffered == 0
    if task is not None and not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    error = protocol.error
    return Outcome(
        messages=[e[1] for e in listener.events if e[0] == "message"] if listener else received,
        listener_events=None if listener is None else listener.events,
        frames_per_read=frames_per_read,
        raw_written=transport.data(),
        write_shape=transport.shape(),
        reads_fed=fed,
        state=protocol.state.name,
        close_sent=_close_tuple(protocol.close_sent),
        close_rcvd=_close_tuple(protocol.close_rcvd),
        close_code=None if conn.close_code is None else int(conn.close_code),
        error=None if error is None else (type(error).__name__, str(error)),
        parser_at_end=protocol.gates.fast_parser is not None,
        direct_at_end=protocol.gates.fast_delivery,
        transport_calls=dict(transport.calls),
        write_after_close=transport.write_after_close,
        recv_end=recv_end[0] if recv_end else None,
    )


# --- the table ------------------------------------------------------------------------------

_SPLIT_A = T("first")
_SPLIT_B = B(b"b" * 300)  # 8-byte header: 2 + 2 (length) + 4 (key)
_SPLIT_C = T("naïve €uro")  # "naïve " is 7 bytes, then the 3 bytes of €
_SPLIT = _SPLIT_A + _SPLIT_B + _SPLIT_C
_A, _AB = len(_SPLIT_A), len(_SPLIT_A) + len(_SPLIT_B)

_STILL_ARRIVING = T(b"abcde\xff" + b"x" * 194)  # 200 bytes: 8-byte header
_SECOND_PIECE = T("é".encode() * 50 + b"\xc3\x28" + b"y" * 98)  # 200 bytes, bad at 100

_FRAGMENTED = (
    T("a")
    + T("fr", fin=False)
    + C("ag", fin=False)
    + PING(b"p")
    + C("ment")
    + B(b"z")
    + B(b"\x01", fin=False)
    + C(b"", fin=False)
    + C(b"\x02")
)

_BYTE_BY_BYTE = T("a€") + PING(b"x") + B(b"\x00" * 130) + T("")

_Z = deflate_messages(b"hello hello hello hello", b"\x00" * 1000, b"hello again, hello")

CASES = [
    Case(
        "several_messages_one_read",
        (B(b"\x00\x01\x02") + T("héllo") + B(bytes(range(256)) * 2) + T("€" * 100) + B(b"z" * 70_000),),
        [b"\x00\x01\x02", "héllo", bytes(range(256)) * 2, "€" * 100, b"z" * 70_000],
    ),
    Case(
        # cut in B's extended length, in B's payload, and inside the € of C
        "split_in_header_and_payload",
        cut(_SPLIT, _A + 3, _A + 8 + 100, _AB + 6 + 8),
        ["first", b"b" * 300, "naïve €uro"],
    ),
    Case(
        "one_byte_per_read",
        tuple(_BYTE_BY_BYTE[i : i + 1] for i in range(len(_BYTE_BY_BYTE))),
        ["a€", b"\x00" * 130, ""],
        written=[("pong", b"x")],
    ),
    Case(
        "empty_messages",
        (T("") + B(b"") + T("x") + B(b""),),
        ["", b"", "x", b""],
    ),
    Case(
        "utf8_edge_code_points",
        (T("\x00\x7f\u0080\u07ff\u0800\uffff\U00010000\U0010ffff"),),
        ["\x00\x7f\u0080\u07ff\u0800\uffff\U00010000\U0010ffff"],
    ),
    Case(
        "invalid_utf8_after_messages",
        (T("ok") + B(b"\x01") + T(b"ab\xffcd") + T("never"),),
        ["ok", b"\x01"],
    ).failed(1007, "InvalidUTF8"),
    Case(
        "invalid_utf8_in_next_read",
        (T("ok") + B(b"\x01"), T(b"ab\xffcd") + T("never")),
        ["ok", b"\x01"],
    ).failed(1007, "InvalidUTF8"),
    Case(
        "utf16_surrogate_in_text",
        (T("ok") + T(b"\xed\xa0\x80"),),
        ["ok"],
    ).failed(1007, "InvalidUTF8"),
    Case(
        "code_point_over_10ffff",
        (T("ok") + T(b"\xf4\x90\x80\x80"),),
        ["ok"],
    ).failed(1007, "InvalidUTF8"),
    Case(
        "overlong_encoding",
        (T(b"\xc0\xaf"),),
        [],
    ).failed(1007, "InvalidUTF8"),
    Case(
        "text_ends_mid_sequence",
        (T("ok") + T(b"ab\xe2\x82"),),
        ["ok"],
    ).failed(1007, "InvalidUTF8"),
    Case(
        # fails as soon as the bad byte arrives: the rest is never read
        "invalid_utf8_in_frame_still_arriving",
        (T("ok") + _STILL_ARRIVING[: 8 + 10], _STILL_ARRIVING[18:], T("never")),
        ["ok"],
        reads_fed=1,
    ).failed(1007, "InvalidUTF8"),
    Case(
        "invalid_utf8_in_second_piece",
        cut(_SECOND_PIECE, 8 + 60, 8 + 150),
        [],
        reads_fed=2,
    ).failed(1007, "InvalidUTF8"),
    Case(
        "ping_between_messages",
        (T("a") + PING(b"hi") + B(b"b") + frame(10, b"unsolicited") + T("c"),),
        ["a", b"b", "c"],
        written=[("pong", b"hi")],
    ),
    Case(
        "empty_ping",
        (PING(b"") + T("a"),),
        ["a"],
        written=[("pong", b"")],
    ),
    Case(
        "fragmented_between_whole",
        (_FRAGMENTED,),
        ["a", "fragment", b"z", b"\x01\x02"],
        written=[("pong", b"p")],
    ),
    Case(
        "fragmented_across_reads",
        cut(_FRAGMENTED, len(T("a")) + 3, len(T("a") + T("fr", fin=False)) + 7),
        ["a", "fragment", b"z", b"\x01\x02"],
        written=[("pong", b"p")],
    ),
    Case(
        "continuation_without_message",
        (T("a") + C(b"x") + T("never"),),
        ["a"],
    ).failed(1002),
    Case(
        # fails from the header of the continuation frame
        "continuation_without_message_header_only",
        (T("a") + C(b"x" * 50)[:7], C(b"x" * 50)[7:] + T("never")),
        ["a"],
        reads_fed=1,
    ).failed(1002),
    Case(
        "text_inside_fragmented_message",
        (T("a") + B(b"b", fin=False) + T("c"),),
        ["a"],
    ).failed(1002),
    Case(
        "reserved_data_opcode_after_messages",
        (T("a") + B(b"b") + raw_frame(0x83, b"?") + T("never"),),
        ["a", b"b"],
    ).failed(1002),
    Case(
        "reserved_control_opcode_after_messages",
        (T("a") + B(b"b") + raw_frame(0x8B, b"?") + T("never"),),
        ["a", b"b"],
    ).failed(1002),
    Case(
        "rsv1_without_extension",
        (T("a") + raw_frame(0xC1, b"x"),),
        ["a"],
    ).failed(1002),
    Case(
        "rsv2_set",
        (T("a") + raw_frame(0xA2, b"x"),),
        ["a"],
    ).failed(1002),
    Case(
        "unmasked_client_frame",
        (T("a") + raw_frame(0x82, b"x", masked=False),),
        ["a"],
    ).failed(1002),
    Case(
        "fragmented_ping",
        (T("a") + raw_frame(0x09, b"p"),),
        ["a"],
    ).failed(1002),
    Case(
        "ping_over_125_bytes",
        (T("a") + raw_frame(0x89, b"p" * 126),),
        ["a"],
    ).failed(1002),
    Case(
        "over_max_size",
        (T("a") + B(b"x" * 1000) + B(b"y" * 1001) + T("never"),),
        ["a", b"x" * 1000],
        max_size=1000,
    ).failed(1009, "PayloadTooBig"),
    Case(
        # refused from its header: the payload is never read
        "over_max_size_from_header",
        (T("a") + B(b"y" * 5000)[:8], B(b"y" * 5000)[8:]),
        ["a"],
        max_size=1000,
        reads_fed=1,
    ).failed(1009, "PayloadTooBig"),
    Case(
        "fragmented_over_max_size",
        (T("a") + B(b"x" * 600, fin=False) + C(b"y" * 600),),
        ["a"],
        max_size=1000,
    ).failed(1009, "PayloadTooBig"),
    Case(
        "close_after_messages",
        (T("a") + B(b"b") + CLOSE(1000, "bye") + T("after"),),
        ["a", b"b"],
        written=[("close", 1000)],
        state="CLOSED",
        close_sent=1000,
        close_code=1000,
    ),
    Case(
        "close_without_code",
        (T("a"), CLOSE()),
        ["a"],
        written=[("close", 1005)],
        state="CLOSED",
        close_sent=1005,
        close_code=1005,
    ),
    Case(
        "close_with_invalid_code",
        (T("a") + frame(8, (999).to_bytes(2, "big")),),
        ["a"],
    ).failed(1002),
    Case(
        "close_with_one_byte",
        (T("a") + frame(8, b"\x03"),),
        ["a"],
    ).failed(1002),
    Case(
        "close_reason_invalid_utf8",
        (T("a") + frame(8, b"\x03\xe8\xff"),),
        ["a"],
    ).failed(1007, "InvalidUTF8"),
    Case(
        # below 125 bytes the parser cannot enforce max_size (its limit covers
        # control frames too): the protocol checks every frame
        "max_size_below_125",
        (T("hello") + B(b"0123456789"), PING(b"p" * 20) + T("x" * 11) + T("never")),
        ["hello", b"0123456789"],
        written=[("pong", b"p" * 20)],
        max_size=10,
        direct=False,
    ).failed(1009, "PayloadTooBig"),
    Case(
        "max_size_below_125_stays_open",
        (T("hello") + PING(b"p" * 20), B(b"0123456789") + T("")),
        ["hello", b"0123456789", ""],
        written=[("pong", b"p" * 20)],
        max_size=10,
        direct=False,
    ),
    Case(
        "max_size_zero",
        (T("") + B(b""), B(b"x")),
        ["", b""],
        max_size=0,
        direct=False,
    ).failed(1009, "PayloadTooBig"),
    Case(
        "max_size_125_is_direct",
        (T("x" * 125) + PING(b"p" * 125), B(b"y" * 126)),
        ["x" * 125],
        written=[("pong", b"p" * 125)],
        max_size=125,
    ).failed(1009, "PayloadTooBig"),
    Case(
        "deflate_compressed_and_plain",
        (
            T(_Z[0], rsv1=True) + B(b"plain") + B(_Z[1], rsv1=True),
            T("plain too") + T(_Z[2], rsv1=True)[:9],
            T(_Z[2], rsv1=True)[9:] + B(b""),
        ),
        ["hello hello hello hello", b"plain", b"\x00" * 1000, "plain too", "hello again, hello", b""],
        deflate=True,
    ),
    Case(
        "deflate_fragmented",
        (
            B(b"x")
            + T(_Z[0][:5], rsv1=True, fin=False)
            + PING(b"!")
            + C(_Z[0][5:])
            + T("y"),
        ),
        [b"x", "hello hello hello hello", "y"],
        written=[("pong", b"!")],
        deflate=True,
    ),
    Case(
        "deflate_over_max_size_after_inflating",
        (T("a") + B(_Z[0], rsv1=True) + B(deflate_messages(b"\x00" * 5000)[0], rsv1=True),),
        ["a", b"hello hello hello hello"],
        max_size=1000,
        deflate=True,
    ).failed(1009, "PayloadTooBig"),
]


def _check_expected(out: Outcome, case: Case, mode: str) -> None:
    assert out.messages == case.messages
    assert [t for read in out.frames_per_read for t in read] == case.written
    assert out.reads_fed == (len(case.reads) if case.reads_fed is None else case.reads_fed)
    assert out.state == case.state
    assert (out.close_sent and out.close_sent[0]) == case.close_sent
    assert out.close_code == case.close_code
    assert (out.error and out.error[0]) == case.error
    assert out.write_after_close == 0
    # the parser is the driver's while the connection is open; no frame is left
    # in progress at the end of a table row
    assert out.parser_at_end is (case.state == "OPEN")
    assert out.direct_at_end is (case.state == "OPEN" and case.direct)
    closed = case.state == "CLOSED"
    assert out.transport_calls.get("close", 0) == int(closed)
    assert out.transport_calls.get("abort", 0) == 0
    assert out.transport_calls.get("pause_reading", 0) == 0
    if closed:
        # nothing after the close frame (RFC 6455 section 5.5.1)
        assert out.frames_per_read[-1][-1][0] == "close"
        assert [t[0] for read in out.frames_per_read for t in read].count("close") == 1
        if case.close_code == 1000 or case.close_code == 1005:
            assert out.close_rcvd == (case.close_code, "bye" if case.close_code == 1000 else "")
        else:
            assert out.close_rcvd == (1006, "")  # reported by connection_lost
    if mode == "listener":
        events = out.listener_events
        assert events[0] == ("open",)
        if closed:
            assert events[-1] == ("close", case.close_code, out.close_rcvd[1])
        else:
            assert not any(e[0] == "close" for e in events)
        pings = [e[1] for e in events if e[0] == "ping"]
        assert [("pong", p) for p in pings] == [t for t in case.written if t[0] == "pong"]
        assert out.recv_end is None
    else:
        assert out.listener_events is None
        if closed:
            expected = "ConnectionClosedOK" if case.close_code in (1000, 1005) else "ConnectionClosedError"
            assert out.recv_end is not None and out.recv_end[0] == expected
            assert out.recv_end[1:] == (out.close_rcvd, out.close_sent)
        else:
            assert out.recv_end is None


@pytest.mark.parametrize("codec", sorted(CODECS))
@pytest.mark.parametrize("mode", ["listener", "recv"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_received(impl, case, mode, codec, caplog):
    caplog.set_level(logging.DEBUG, logger="fastws")
    out = run(drive(impl.cls, case, mode, codec))
    _check_expected(out, case, mode)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    if impl.name == "cython":
        reference = run(drive(PureConnection, case, mode, codec))
        assert out == reference


def test_case_ids_are_unique():
    assert len({c.id for c in CASES}) == len(CASES) > 30


# --- what goes to the protocol ----------------------------------------------------------------


def frame_name(f) -> str:
    """A frame handed to the protocol: "text", "binary+" (not FIN), "text rsv1"..."""
    name = _NAMES[int(f.opcode)] + ("" if f.fin else "+")
    return name + " rsv1" if f.rsv1 else name


class SpyProtocol(Protocol):
    """Records what the driver hands over: the name of each frame given to
    receive_frame (with " (stop)" when it returned False: reading stopped),
    ("frames", [names], error type or None) for each call of receive_frames by
    the driver, "data" for receive_data."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.log: list = []
        self._in_receive_data = False

    def receive_data(self, data):
        self.log.append("data")
        self._in_receive_data = True
        try:
            super().receive_data(data)
        finally:
            self._in_receive_data = False

    def receive_frames(self, frames, error=None):
        if not self._in_receive_data:
            self.log.append(("frames", [frame_name(f) for f in frames], error and type(error).__name__))
        super().receive_frames(frames, error)

    def receive_frame(self, f):
        reading = super().receive_frame(f)
        assert type(reading) is bool
        self.log.append(frame_name(f) + ("" if reading else " (stop)"))
        return reading


_PIECES_T = T("xyz" * 10)  # 6-byte header
_PIECES_B = B(b"xyz" * 10)


@dataclasses.dataclass(frozen=True)
class Handoff:
    id: str
    reads: Tuple[bytes, ...]
    handed: list  # per read: SpyProtocol.log
    messages: list  # delivered, in order
    max_size: Optional[int] = 1 << 20
    deflate: bool = False


HANDOFFS = [
    Handoff("plain_messages", (T("a") + B(b"b"), T("c")), [[], []], ["a", b"b", "c"]),
    Handoff("ping_after_messages", (T("a") + B(b"b") + PING(b"p") + T("c"),), [["ping"]], ["a", b"b", "c"]),
    Handoff("pong_and_ping", (frame(10, b"u") + T("a") + PING(b"p"),), [["pong", "ping"]], ["a"]),
    Handoff(
        # partly validated while it arrives: the protocol takes the whole frame
        "text_arriving_in_pieces",
        (T("a") + _PIECES_T[:12], _PIECES_T[12:20], _PIECES_T[20:], T("d")),
        [[("frames", [], None)], [("frames", [], None)], ["text"], []],
        ["a", "xyz" * 10, "d"],
    ),
    Handoff(
        "binary_arriving_in_pieces",
        (T("a") + _PIECES_B[:12], _PIECES_B[12:] + T("d")),
        [[("frames", [], None)], []],
        ["a", b"xyz" * 10, "d"],
    ),
    Handoff(
        # nothing of its payload yet: nothing to validate
        "text_header_only",
        (T("a") + _PIECES_T[:6], _PIECES_T[6:]),
        [[("frames", [], None)], []],
        ["a", "xyz" * 10],
    ),
    Handoff("fragment_then_plain", (T("f", fin=False) + C("g"), T("h")), [["text+", "cont"], []], ["fg", "h"]),
    Handoff("fragment_pending", (T("f", fin=False), C("g") + T("h")), [["text+"], ["cont"]], ["fg", "h"]),
    Handoff(
        "fragment_with_ping_inside",
        (T("a") + T("f", fin=False) + PING(b"p") + C("g") + B(b"h"),),
        [["text+", "ping", "cont"]],
        ["a", "fg", b"h"],
    ),
    Handoff(
        # while a fragmented message is in progress, a whole frame goes to the
        # protocol too (which fails the connection: RFC 6455 section 5.4)
        "whole_frame_inside_fragmented",
        (T("a") + B(b"b", fin=False) + T("c") + T("never"),),
        [["binary+", "text (stop)"]],
        ["a"],
    ),
    Handoff("invalid_utf8", (T("a") + T(b"\xff") + T("b"),), [["text (stop)"]], ["a"]),
    Handoff("close_then_more", (T("a") + CLOSE(1000) + T("after"),), [["close (stop)"]], ["a"]),
    Handoff(
        "parser_error",
        (T("a") + B(b"b") + raw_frame(0x83, b"?") + T("never"),),
        [[("frames", [], "ProtocolError")]],
        ["a", b"b"],
    ),
    Handoff(
        "ping_then_parser_error",
        (PING(b"p") + T("a") + raw_frame(0x83),),
        [["ping", ("frames", [], "ProtocolError")]],
        ["a"],
    ),
    Handoff(
        "max_size_below_125",
        (T("a") + B(b"b"), PING(b"p") + T("c") + T("ééé")[:8], T("ééé")[8:] + T("d") + B(b"x" * 11)),
        [["text", "binary"], ["ping", "text", ("frames", [], None)], ["text", "text", "binary (stop)"]],
        ["a", b"b", "c", "ééé", "d"],
        max_size=10,
    ),
    Handoff(
        "deflate",
        (T(_Z[0], rsv1=True) + B(b"plain") + B(_Z[1], rsv1=True) + T("t"),),
        [["text rsv1", "binary rsv1"]],
        ["hello hello hello hello", b"plain", b"\x00" * 1000, "t"],
        deflate=True,
    ),
]


async def _handoffs(cls, row: Handoff, mode: str, codec: str):
    protocol = SpyProtocol(
        Side.SERVER,
        max_size=row.max_size,
        codec=CODECS[codec],
        extensions=[PerMessageDeflate()] if row.deflate else None,
    )
    listener = Recorder() if mode == "listener" else None
    conn, transport = await open_connection(cls, protocol, listener=listener, max_queue=None)
    per_read = []
    for chunk in row.reads:
        del protocol.log[:]
        feed(conn, chunk)
        per_read.append(list(protocol.log))
    messages = [e[1] for e in listener.events if e[0] == "message"] if listener else list(conn._messages)
    return per_read, messages, transport.shape()


def test_handoff_ids_are_unique():
    assert len({h.id for h in HANDOFFS}) == len(HANDOFFS)


@pytest.mark.parametrize("codec", sorted(CODECS))
@pytest.mark.parametrize("mode", ["listener", "recv"])
@pytest.mark.parametrize("row", HANDOFFS, ids=[h.id for h in HANDOFFS])
def test_what_the_fast_path_hands_to_the_protocol(impl, row, mode, codec):
    """While fast_delivery is True, plain messages never reach the protocol
    (the pure codec's frames included); every other frame goes to
    receive_frame, one at a time and in order, and nothing after one that
    stopped reading; receive_frames only gets the parser's error, or an empty
    list to look at a frame in progress; receive_data nothing while the
    connection is open."""
    per_read, messages, shape = run(_handoffs(impl.cls, row, mode, codec))
    assert per_read == row.handed
    assert messages == row.messages
    if impl.name == "cython":
        assert (per_read, messages, shape) == run(_handoffs(PureConnection, row, mode, codec))


async def _after_our_close(cls, codec):
    protocol = SpyProtocol(Side.SERVER, codec=CODECS[codec])
    listener = Recorder()
    conn, transport = await open_connection(cls, protocol, listener=listener)
    protocol.send_close(1001)
    conn._flush()
    assert protocol.state.name == "CLOSING"
    # still reading (for the peer's close frame), but no longer OPEN
    parser_while_closing = protocol.gates.fast_parser
    feed(conn, T("late") + PING(b"p") + B(b"later") + CLOSE(1001) + T("never"))
    await settle()
    return (
        parser_while_closing,
        protocol.log,
        listener.events,
        [token(f) for f in frames_of(transport.data())],
        protocol.state.name,
    )


@pytest.mark.parametrize("codec", sorted(CODECS))
@pytest.mark.parametrize("extra", [1, 1000, 2**64])
@pytest.mark.parametrize("sign", [1, -1], ids=["beyond_the_buffer", "negative"])
def test_a_read_count_outside_the_buffer_is_refused(impl, codec, extra, sign):
    """buffer_updated(n) with an n that the buffer cannot hold (an event loop
    bug): a ValueError that says so, in both twins, and nothing is parsed.
    The compiled twin reads the buffer's memory directly with our codec's
    parser (and slices it with the pure codec's), so this guards it."""

    async def go():
        conn, transport = await open_connection(impl.cls, Protocol(Side.SERVER, codec=CODECS[codec]))
        buf = conn.get_buffer(-1)
        data = T("x")
        buf[: len(data)] = data
        n = len(buf) + extra if sign > 0 else -extra
        with pytest.raises(ValueError, match=f"^{n} bytes read into a buffer of {len(buf)}$"):
            conn.buffer_updated(n)
        conn.buffer_updated(len(data))  # the connection goes on
        assert conn._messages == collections.deque(["x"])
        assert conn.protocol.state is OPEN and transport.data() == b""

    run(go())


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_after_our_close_frame_the_protocol_takes_the_bytes(impl, codec):
    out = run(_after_our_close(impl.cls, codec))
    parser, log, events, written, state = out
    assert parser is None
    assert log == ["data"]
    assert events == [
        ("open",),
        ("message", "late"),
        ("ping", b"p"),
        ("message", b"later"),
        ("close", 1001, ""),
    ]
    assert written == [("close", 1001), ("pong", b"p")]
    assert state == "CLOSED"
    if impl.name == "cython":
        assert out == run(_after_our_close(PureConnection, codec))


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_protocol_says_what_the_driver_may_deliver(codec):
    """protocol.gates.fast_parser and fast_delivery, step by step."""

    def new(**options) -> Protocol:
        return Protocol(Side.SERVER, codec=CODECS[codec], **options)

    for max_size, direct in [(None, True), (1 << 20, True), (125, True), (124, False), (10, False), (0, False)]:
        p = new(max_size=max_size)
        assert isinstance(p.gates.fast_parser, p.codec.FrameParser), max_size
        assert p.gates.fast_delivery is direct, max_size

    p = new()
    parser = p.gates.fast_parser
    # a fragmented message in progress, a ping inside it
    first, ping, last = parser.feed(T("a", fin=False) + PING(b"p") + C("b"))
    assert p.receive_frame(first) is True and p.gates.fast_delivery is False
    assert p.receive_frame(ping) is True and p.gates.fast_delivery is False
    assert p.gates.fast_parser is parser
    assert p.receive_frame(last) is True and p.gates.fast_delivery is True
    assert p.events_received() == [Ping(b"p"), "ab"]
    assert p.data_to_send() == server_frame(10, b"p")
    # a text frame validated while it arrives
    data = T("é" * 40)
    assert parser.feed(data[:20]) == []
    p.receive_frames([])
    assert p.gates.fast_delivery is False and p.gates.fast_parser is parser
    assert parser.feed(data[20:30]) == []
    p.receive_frames([])
    assert p.gates.fast_delivery is False
    (whole,) = parser.feed(data[30:])
    assert p.receive_frame(whole) is True and p.gates.fast_delivery is True
    assert p.events_received() == ["é" * 40]
    # a binary frame arriving: nothing to validate, nothing to wait for
    data = B(b"\xff" * 80)
    assert parser.feed(data[:20]) == []
    p.receive_frames([])
    assert p.gates.fast_delivery is True
    assert len(parser.feed(data[20:])) == 1
    assert p.events_received() == [] and p.data_to_send() == b""
    # a close frame: reading stops, what follows is discarded
    close, after = parser.feed(CLOSE(1000) + T("after"))
    assert p.receive_frame(close) is False
    assert p.gates.fast_parser is None and p.gates.fast_delivery is False
    assert p.receive_frame(after) is False
    assert p.events_received() == [Close(1000, "")]
    assert p.data_to_send() == server_frame(8, b"\x03\xe8")

    # the peer's error in a frame
    p = new()
    (bad,) = p.gates.fast_parser.feed(T(b"\xff"))
    assert p.receive_frame(bad) is False
    assert p.gates.fast_parser is None and p.gates.fast_delivery is False
    assert type(p.error).__name__ == "InvalidUTF8"
    # the parser's error: receive_frames takes it
    p = new()
    with pytest.raises(ProtocolError) as info:
        p.gates.fast_parser.feed(raw_frame(0x83))
    p.receive_frames([], info.value)
    assert p.gates.fast_parser is None and p.gates.fast_delivery is False
    assert p.error is info.value and p.close_sent.code == 1002
    # failed from this side
    p = new()
    p.fail(1011)
    assert p.gates.fast_parser is None and p.gates.fast_delivery is False
    # our close frame sent: still reading, through receive_data
    p = new()
    p.send_close(1000)
    assert p.gates.fast_parser is None
    # the opening handshake: through receive_data
    assert ServerProtocol(codec=CODECS[codec]).gates.fast_parser is None


# --- a Listener that replies -----------------------------------------------------------------

# A reply sent from on_message goes out before anything that a later frame
# causes (a pong, the echo of a close frame), however the frames fall into
# reads, whatever went to the protocol before (a ping, a fragmented message, a
# text frame validated while it arrived) and whatever max_size is.
ECHO_CASES = [
    # (id, reads, frames written, in order, max_size)
    ("message_then_close", (T("m") + CLOSE(1000),), [("text", "m"), ("close", 1000)], 1 << 20),
    ("message_then_ping", (B(b"m") + PING(b"p"),), [("binary", b"m"), ("pong", b"p")], 1 << 20),
    (
        "messages_then_ping_then_close",
        (T("m1") + B(b"m2") + PING(b"p") + CLOSE(1001),),
        [("text", "m1"), ("binary", b"m2"), ("pong", b"p"), ("close", 1001)],
        1 << 20,
    ),
    ("ping_then_message", (PING(b"p") + T("m"),), [("pong", b"p"), ("text", "m")], 1 << 20),
    (
        "message_then_invalid_utf8",
        (T("m") + T(b"\xff"),),
        [("text", "m"), ("close", 1007)],
        1 << 20,
    ),
    (
        "message_then_ping_split",
        (T("m1") + PING(b"p")[:3], PING(b"p")[3:] + T("m2")),
        [("text", "m1"), ("pong", b"p"), ("text", "m2")],
        1 << 20,
    ),
    (
        "message_then_ping_split_then_close",
        (T("m1") + PING(b"p")[:3], PING(b"p")[3:], T("m2") + CLOSE(1000)),
        [("text", "m1"), ("pong", b"p"), ("text", "m2"), ("close", 1000)],
        1 << 20,
    ),
    (
        "messages_ping_message_close",
        (T("m1") + T("m2") + PING(b"p") + B(b"m3") + CLOSE(1001),),
        [("text", "m1"), ("text", "m2"), ("pong", b"p"), ("binary", b"m3"), ("close", 1001)],
        1 << 20,
    ),
    (
        "message_ping_message_ping",
        (T("m1") + PING(b"p1") + T("m2") + PING(b"p2"),),
        [("text", "m1"), ("pong", b"p1"), ("text", "m2"), ("pong", b"p2")],
        1 << 20,
    ),
    (
        "fragmented_then_close",
        (T("a") + T("b", fin=False) + C("c") + CLOSE(1000),),
        [("text", "a"), ("text", "bc"), ("close", 1000)],
        1 << 20,
    ),
    (
        "fragmented_then_ping_then_message",
        (T("a") + T("b", fin=False) + C("c") + PING(b"p") + T("d"),),
        [("text", "a"), ("text", "bc"), ("pong", b"p"), ("text", "d")],
        1 << 20,
    ),
    (
        "ping_inside_fragmented_then_message_then_close",
        (T("f", fin=False) + PING(b"p") + C("g") + B(b"m") + CLOSE(1000),),
        [("pong", b"p"), ("text", "fg"), ("binary", b"m"), ("close", 1000)],
        1 << 20,
    ),
    (
        "text_validated_while_arriving_then_ping_then_close",
        (T("m1") + _PIECES_T[:12], _PIECES_T[12:] + PING(b"p") + T("m2") + CLOSE(1000)),
        [("text", "m1"), ("text", "xyz" * 10), ("pong", b"p"), ("text", "m2"), ("close", 1000)],
        1 << 20,
    ),
    (
        "max_size_below_125_message_then_close",
        (T("m") + CLOSE(1000),),
        [("text", "m"), ("close", 1000)],
        10,
    ),
    (
        "max_size_below_125_messages_ping_close",
        (T("m1") + PING(b"p") + B(b"m2") + CLOSE(1001),),
        [("text", "m1"), ("pong", b"p"), ("binary", b"m2"), ("close", 1001)],
        10,
    ),
    (
        "max_size_below_125_split",
        (T("m1") + PING(b"p")[:3], PING(b"p")[3:] + T("m2") + CLOSE(1000)),
        [("text", "m1"), ("pong", b"p"), ("text", "m2"), ("close", 1000)],
        10,
    ),
]


async def _echo(cls, reads, max_size, codec="default"):
    """(write shape, tokens written, listener events) of an echoing Listener."""
    listener = Recorder(echo=True)
    conn, transport = await open_connection(
        cls, Protocol(Side.SERVER, max_size=max_size, codec=CODECS[codec]), listener=listener
    )
    for chunk in reads:
        feed(conn, chunk)
        await settle()
    return transport.shape(), [token(f) for f in frames_of(transport.data())], listener.events


def test_echo_case_ids_are_unique():
    assert len({c[0] for c in ECHO_CASES}) == len(ECHO_CASES)


@pytest.mark.parametrize("codec", sorted(CODECS))
@pytest.mark.parametrize(
    "reads, expected, max_size", [c[1:] for c in ECHO_CASES], ids=[c[0] for c in ECHO_CASES]
)
def test_listener_replies_go_out_before_later_frames(impl, reads, expected, max_size, codec, caplog):
    caplog.set_level(logging.DEBUG, logger="fastws")
    shape, written, events = run(_echo(impl.cls, reads, max_size, codec))
    assert written == expected
    # every message reached on_message, every reply went out (none raised
    # ConnectionClosed: nothing logged)
    replies = [t for t in written if t[0] in ("text", "binary")]
    assert [("message", t[1]) for t in replies] == [e for e in events if e[0] == "message"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    if impl.name == "cython":
        assert (shape, written, events) == run(_echo(PureConnection, reads, max_size, codec))


@pytest.mark.parametrize("reads, max_size", [(c[1], c[3]) for c in ECHO_CASES], ids=[c[0] for c in ECHO_CASES])
def test_listener_replies_identical_in_both_implementations(compiled, reads, max_size, caplog):
    """Every row above: the compiled FastPath writes the same bytes, in the same
    transport calls, calls the Listener the same way and logs the same
    records."""

    def go(cls):
        caplog.clear()
        out = run(_echo(cls, reads, max_size))
        return out, [(r.levelname, r.getMessage()) for r in caplog.records]

    caplog.set_level(logging.DEBUG, logger="fastws")
    (shape, written, events), logs = go(compiled)
    assert written and events[0] == ("open",)
    assert ((shape, written, events), logs) == go(PureConnection)


# Every frame kind the fast path sees, and a fragmented message with a ping
# inside it: cut into reads in every way at frame boundaries, at every byte
# (two reads), and one byte per read.
_STREAM = [
    T("m1"),
    PING(b"p1"),
    T("m2"),
    T("f", fin=False),
    PING(b"p2"),
    C("g"),
    frame(10, b"u"),
    B(b"m3"),
    CLOSE(1000),
]
_STREAM_WRITTEN = [
    ("text", "m1"),
    ("pong", b"p1"),
    ("text", "m2"),
    ("pong", b"p2"),
    ("text", "fg"),
    ("binary", b"m3"),
    ("close", 1000),
]
_STREAM_EVENTS = [
    ("open",),
    ("message", "m1"),
    ("ping", b"p1"),
    ("message", "m2"),
    ("ping", b"p2"),
    ("message", "fg"),
    ("pong", b"u"),
    ("message", b"m3"),
    ("close", 1000, ""),
]


def _every_split() -> list:
    n = len(_STREAM)
    splits = []
    for cuts in range(1 << (n - 1)):  # bit i: a read ends after frame i
        reads, current = [], _STREAM[0]
        for i in range(1, n):
            if cuts >> (i - 1) & 1:
                reads.append(current)
                current = _STREAM[i]
            else:
                current += _STREAM[i]
        reads.append(current)
        splits.append(tuple(reads))
    data = b"".join(_STREAM)
    splits += [(data[:i], data[i:]) for i in range(1, len(data))]
    splits.append(tuple(data[i : i + 1] for i in range(len(data))))
    splits = list(dict.fromkeys(splits))  # the cuts at frame boundaries once
    assert len(splits) == (1 << (n - 1)) + (len(data) - n) + 1
    return splits


async def _echo_splits(cls, splits, max_size, codec):
    results = []
    for reads in splits:
        listener = Recorder(echo=True)
        protocol = Protocol(Side.SERVER, max_size=max_size, codec=CODECS[codec])
        conn, transport = await open_connection(cls, protocol, listener=listener)
        for chunk in reads:
            feed(conn, chunk)
        await asyncio.sleep(0)  # connection_lost, after transport.close()
        results.append((transport.shape(), listener.events))
    return results


@pytest.mark.parametrize(
    "max_size, codec",
    # (with max_size < 125 every frame goes to the protocol: the codec's frames
    # are never read by the fast path itself)
    [(1 << 20, "default"), (1 << 20, "pure"), (10, "default")],
    ids=["default", "pure_codec", "max_size_10"],
)
def test_listener_replies_in_order_in_every_split(impl, max_size, codec, caplog):
    caplog.set_level(logging.DEBUG, logger="fastws")
    splits = _every_split()
    results = run(_echo_splits(impl.cls, splits, max_size, codec))
    assert len(results) == len(splits)
    for reads, (shape, events) in zip(splits, results):
        data = b"".join(c for _, chunks in shape for c in chunks)
        assert [token(f) for f in frames_of(data)] == _STREAM_WRITTEN, reads
        assert events == _STREAM_EVENTS, reads
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    if impl.name == "cython":
        # the same transport calls as the pure one (on the cuts inside frames:
        # the whole table would double the time of this test)
        inside = len(splits) - (len(b"".join(_STREAM)) - len(_STREAM)) - 1
        assert results[inside:] == run(_echo_splits(PureConnection, splits[inside:], max_size, codec))


def test_echo_of_close_frame_is_exact(impl):
    """RFC 6455 section 5.5.1: the echoed close frame carries the status code
    received, and its reason as websockets echoes it, unmasked from a server."""
    shape, written, _ = run(_echo(impl.cls, (T("m") + CLOSE(1000, "bye"),), 1 << 20))
    assert shape == [
        ("write", (server_frame(1, b"m"),)),
        ("write", (server_frame(8, b"\x03\xe8bye"),)),
    ]


# --- a Listener that raises ------------------------------------------------------------------


class FailingListener(Recorder):
    """An echoing Listener whose callback ``fail_in`` raises when it gets "boom"."""

    def __init__(self, fail_in: str):
        super().__init__(echo=True, fail_on="boom" if fail_in == "on_message" else None)
        self.fail_in = fail_in

    def on_open(self, connection):
        super().on_open(connection)
        if self.fail_in == "on_open":
            raise RuntimeError("on_open failed on purpose")

    def on_ping(self, connection, data):
        super().on_ping(connection, data)
        if self.fail_in == "on_ping" and data == b"boom":
            raise RuntimeError("on_ping failed on purpose")

    def on_pong(self, connection, data):
        super().on_pong(connection, data)
        if self.fail_in == "on_pong" and data == b"boom":
            raise RuntimeError("on_pong failed on purpose")


#: The frame that makes the callback raise, and the Listener event it causes.
FAILURES = {
    "on_message": (T("boom"), ("message", "boom")),
    "on_ping": (PING(b"boom"), ("ping", b"boom")),
    "on_pong": (frame(10, b"boom"), ("pong", b"boom")),
}


def _failing_read(fail_in: str) -> bytes:
    return T("a") + FAILURES[fail_in][0] + T("after") + B(b"after") + PING(b"p") + T("after")


async def _failing_listener(cls, fail_in="on_message", path="fast"):
    listener = FailingListener(fail_in)
    conn, transport = await open_connection(cls, Protocol(Side.SERVER), listener=listener)
    data = _failing_read(fail_in)
    if path == "fast":
        feed(conn, data)
    else:  # the whole read through the protocol first, then _handle_events
        conn.data_received(data)
    await settle()
    written = [token(f) for f in frames_of(transport.data())]
    return written, listener.events, conn.protocol.state.name, _close_tuple(conn.protocol.close_sent)


@pytest.mark.parametrize("fail_in", sorted(FAILURES))
def test_listener_that_raises_fails_with_1011(impl, fail_in, caplog):
    """RFC 6455 section 7.1.7: once the connection is failed, nothing more of
    the read is processed: no message delivered, no ping answered."""
    caplog.set_level(logging.DEBUG, logger="fastws")
    out = run(_failing_listener(impl.cls, fail_in))
    written, events, state, close_sent = out
    # the reply to "a" (and the pong of the failing ping, queued before
    # on_ping ran), then 1011; nothing after
    pong = [("pong", b"boom")] if fail_in == "on_ping" else []
    assert written == [("text", "a")] + pong + [("close", 1011)]
    assert state == "CLOSED" and close_sent == (1011, "")
    assert events == [("open",), ("message", "a"), FAILURES[fail_in][1], ("close", 1006, "")]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [f"listener {fail_in} failed"]
    assert errors[0].exc_info[0] is RuntimeError
    if impl.name == "cython":
        logs = [(r.levelname, r.getMessage()) for r in caplog.records]
        caplog.clear()
        assert out == run(_failing_listener(PureConnection, fail_in))
        assert logs == [(r.levelname, r.getMessage()) for r in caplog.records]


@pytest.mark.parametrize(
    "fail_in",
    [
        "on_message",
        "on_ping",
        "on_pong",
    ],
)
def test_no_message_delivered_after_listener_failure_in_handle_events(fail_in, caplog):
    """The same read through Connection.data_received: the protocol turns it
    all into events first, and _handle_events stops at the failure."""
    caplog.set_level(logging.DEBUG, logger="fastws")
    written, events, state, close_sent = run(_failing_listener(Connection, fail_in, path="general"))
    assert events == [("open",), ("message", "a"), FAILURES[fail_in][1], ("close", 1006, "")]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [f"listener {fail_in} failed"]
    assert state == "CLOSED" and close_sent == (1011, "")
    assert ("text", "a") in written and written[-1] == ("close", 1011)
    assert [t[0] for t in written].count("close") == 1


# --- frames in the same read as the opening handshake ------------------------------------------
#
# Those go through the protocol with the handshake (ServerProtocol.send_response
# and ClientProtocol._receive_response call receive_data), and the events of the
# whole read reach the Listener afterwards (Connection._handle_events): not the
# fast path. A server may send frames right after its 101 response; a client
# must wait for the response (RFC 6455 section 4.1) but the server reads what
# comes anyway.


class _FakeServer:
    """What a ServerConnection needs of its Server here (a Listener, no hook)."""

    def __init__(self):
        self._connections: set = set()
        self._handlers: set = set()
        self.process_request = None
        self.process_response = None

    def is_serving(self):
        return True


async def _handshake_read(side: str, frames: bytes, listener, same_read: bool):
    """Frames that come in the same read as the handshake (or in the next
    one): (tokens of the frames written after the handshake, Listener events)."""
    loop = asyncio.get_running_loop()
    transport = FakeTransport(loop)
    if side == "client":
        conn = ClientConnection(ClientProtocol("ws://example.com/"), listener=listener, ping_interval=None)
        transport.protocol = conn
        conn.connection_made(transport)
        peer = ServerProtocol()
        peer.receive_data(transport.data())  # the request
        handshake = peer.data_to_send()  # the 101 response
    else:
        conn = ServerConnection(
            ServerProtocol(auto_accept=False),
            _FakeServer(),
            listener=listener,
            ping_interval=None,
            open_timeout=None,
        )
        transport.protocol = conn
        conn.connection_made(transport)
        handshake = HANDSHAKE
    sent_before = len(transport.data())
    if same_read:
        feed(conn, handshake + frames)
    else:
        feed(conn, handshake)
        feed(conn, frames)
    await settle()
    written = transport.data()[sent_before:]
    if side == "server":
        head, _, written = written.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
    return [token(f) for f in frames_of(written, mask_required=side == "client")], listener.events


def _peer_frame(side: str, op: int, payload: bytes) -> bytes:
    """A frame from the peer of ``side``: unmasked from a server, masked from a client."""
    return server_frame(op, payload) if side == "client" else frame(op, payload)


HANDSHAKE_READS = [
    # (id, frames after the handshake, frames written, in order)
    ("message_then_ping", [(1, b"hi"), (9, b"p")], [("text", "hi"), ("pong", b"p")]),
    ("message_then_close", [(1, b"hi"), (8, b"\x03\xe8")], [("text", "hi"), ("close", 1000)]),
]


@pytest.mark.parametrize(
    "same_read",
    [False, True],
    ids=["next_read", "same_read"],
)
@pytest.mark.parametrize("side", ["client", "server"])
@pytest.mark.parametrize(
    "frames, expected", [r[1:] for r in HANDSHAKE_READS], ids=[r[0] for r in HANDSHAKE_READS]
)
def test_listener_replies_to_frames_after_the_handshake(side, frames, expected, same_read, caplog):
    caplog.set_level(logging.DEBUG, logger="fastws")
    data = b"".join(_peer_frame(side, op, payload) for op, payload in frames)
    written, events = run(_handshake_read(side, data, Recorder(echo=True), same_read))
    assert events[:2] == [("open",), ("message", "hi")]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert written == expected


@pytest.mark.parametrize(
    "same_read",
    [False, True],
    ids=["next_read", "same_read"],
)
@pytest.mark.parametrize("side", ["client", "server"])
def test_no_message_delivered_after_on_open_failed(side, same_read, caplog):
    caplog.set_level(logging.DEBUG, logger="fastws")
    written, events = run(
        _handshake_read(side, _peer_frame(side, 1, b"after"), FailingListener("on_open"), same_read)
    )
    assert written == [("close", 1011)]
    assert events[0] == ("open",)
    assert not [e for e in events if e[0] == "message"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == ["listener on_open failed"]


# --- send_nowait ----------------------------------------------------------------------------

SENDS = [
    ("str", "héllo €", [("write", (server_frame(1, "héllo €".encode()),))]),
    ("bytes", b"\x00\xff" * 3, [("write", (server_frame(2, b"\x00\xff" * 3),))]),
    ("bytearray", bytearray(b"ba"), [("write", (server_frame(2, b"ba"),))]),
    ("memoryview", memoryview(b"xmemoryviewx")[1:-1], [("write", (server_frame(2, b"memoryview"),))]),
    ("empty_str", "", [("write", (b"\x81\x00",))]),
    ("empty_bytes", b"", [("write", (b"\x82\x00",))]),
    ("str_16bit_length", "s" * 300, [("write", (server_frame(1, b"s" * 300),))]),
    (
        "bytes_70000",
        b"L" * 70_000,
        [("writelines", (b"\x82\x7f" + (70_000).to_bytes(8, "big"), b"L" * 70_000))],
    ),
    ("bytearray_70000", bytearray(b"A" * 70_000), [("write", (server_frame(2, b"A" * 70_000),))]),
    ("str_70000", "t" * 70_000, [("write", (server_frame(1, b"t" * 70_000),))]),
    ("bytes_subclass", type("B", (bytes,), {})(b"sub"), [("write", (server_frame(2, b"sub"),))]),
]


async def _send(cls, side, message, *, setup=None):
    conn, transport = await open_connection(cls, Protocol(side))
    if setup is not None:
        setup(conn)
    conn.send_nowait(message)
    return conn, transport


@pytest.mark.parametrize("message, expected", [s[1:] for s in SENDS], ids=[s[0] for s in SENDS])
def test_send_nowait_server(impl, message, expected):
    _, transport = run(_send(impl.cls, Side.SERVER, message))
    assert transport.shape() == expected
    (f,) = frames_of(transport.data())
    assert f.fin and not f.rsv1
    assert f.opcode == (1 if isinstance(message, str) else 2)
    assert f.payload == (message.encode() if isinstance(message, str) else bytes(message))
    if type(message) is bytes and len(message) >= 1 << 16:
        # the payload goes to the transport uncopied, after its header
        assert transport.writes[0][1][1] is message
    if impl.name == "cython":
        _, reference = run(_send(PureConnection, Side.SERVER, message))
        assert transport.shape() == reference.shape()


@pytest.mark.parametrize("message", [s[1] for s in SENDS], ids=[s[0] for s in SENDS])
def test_send_nowait_client_masks(impl, message):
    _, transport = run(_send(impl.cls, Side.CLIENT, message))
    # every frame masked (a client must mask: RFC 6455 section 5.3), and only one
    assert [kind for kind, _ in transport.writes] == ["write"]
    (f,) = frames_of(transport.data(), mask_required=True)
    assert transport.data()[1] & 0x80
    assert (f.opcode, f.fin, f.rsv1, f.payload) == (
        1 if isinstance(message, str) else 2,
        True,
        False,
        message.encode() if isinstance(message, str) else bytes(message),
    )
    if impl.name == "cython":
        _, reference = run(_send(PureConnection, Side.CLIENT, message))
        (g,) = frames_of(reference.data(), mask_required=True)
        assert (g.opcode, g.payload) == (f.opcode, f.payload)
        assert len(reference.data()) == len(transport.data())


def test_send_nowait_after_other_bytes_keeps_order(impl):
    """Bytes already queued by the protocol (here a ping) go out first."""

    def ping_queued(conn):
        conn.protocol.send_ping(b"first")  # queued, not flushed

    async def go(cls):
        conn, transport = await _send(cls, Side.SERVER, "second", setup=ping_queued)
        conn.send_nowait(b"third")
        return transport.shape()

    shape = run(go(impl.cls))
    assert shape == [
        ("writelines", (server_frame(9, b"first"), server_frame(1, b"second"))),
        ("write", (server_frame(2, b"third"),)),
    ]
    if impl.name == "cython":
        assert shape == run(go(PureConnection))


def _closed_by_peer(conn):
    feed(conn, CLOSE(1000))


def _failed_by_peer(conn):
    feed(conn, raw_frame(0x83))


def _closing_by_us(conn):
    conn.protocol.send_close(1001)
    conn._flush()


CLOSED_SETUPS = [
    ("closed_by_peer", _closed_by_peer, ConnectionClosedOK, "CLOSED", "received 1000; then sent 1000"),
    # (the end of the stream is reported as a close with 1006: see Protocol.receive_eof)
    (
        "failed_by_peer",
        _failed_by_peer,
        ConnectionClosedError,
        "CLOSED",
        "sent 1002 (reserved opcode 3); no close frame received",
    ),
    ("closing_by_us", _closing_by_us, ConnectionClosedError, "CLOSING", "sent 1001; no close frame received"),
]


async def _send_when_closed(cls, setup, message):
    conn, transport = await open_connection(cls, Protocol(Side.SERVER))
    setup(conn)
    await settle()  # a failure of the peer is applied on the next iteration
    before = transport.shape()
    try:
        conn.send_nowait(message)
    except Exception as exc:
        error = exc
    else:
        error = None
    assert transport.shape() == before  # nothing written
    return conn.protocol.state.name, type(error), str(error), before


@pytest.mark.parametrize("message", ["text", b"bytes", bytearray(b"ba"), memoryview(b"mv"), b"L" * 70_000, ""])
@pytest.mark.parametrize(
    "setup, exc_type, state, text", [s[1:] for s in CLOSED_SETUPS], ids=[s[0] for s in CLOSED_SETUPS]
)
def test_send_nowait_when_closed_raises(impl, setup, exc_type, state, text, message):
    out = run(_send_when_closed(impl.cls, setup, message))
    got_state, got_type, got_text, _ = out
    assert got_state == state
    assert got_type is exc_type and issubclass(got_type, ConnectionClosed)
    assert got_text == text
    if impl.name == "cython":
        assert out == run(_send_when_closed(PureConnection, setup, message))


@pytest.mark.parametrize("open_", [True, False], ids=["open", "closed"])
@pytest.mark.parametrize(
    "message",
    [1, 1.5, None, {"a": 1}, ["x"], ("x",), object()],
    ids=["int", "float", "None", "dict", "list", "tuple", "object"],
)
def test_send_nowait_wrong_type(impl, message, open_):
    async def go(cls):
        conn, transport = await open_connection(cls, Protocol(Side.SERVER))
        if not open_:
            _closed_by_peer(conn)
        before = transport.shape()
        with pytest.raises(TypeError) as info:
            conn.send_nowait(message)
        assert transport.shape() == before
        return type(info.value), str(info.value)

    out = run(go(impl.cls))
    assert out == (TypeError, f"message must be str or bytes-like, not {type(message).__name__}")
    if impl.name == "cython":
        assert out == run(go(PureConnection))


class _Text(str):
    pass


class _Bytes(bytes):
    pass


@pytest.mark.parametrize("message", [_Text("héllo"), _Bytes(b"\x00bin")], ids=["str_subclass", "bytes_subclass"])
def test_subclasses_of_str_and_bytes_are_whole_messages(impl, message):
    """send_nowait() and send() take a str or bytes subclass as one message
    (not as an iterable of fragments, one per character or byte)."""

    async def go(cls):
        conn, transport = await open_connection(cls, Protocol(Side.SERVER))
        conn.send_nowait(message)
        await conn.send(message)
        return frames_of(transport.data(), mask_required=False)

    frames = run(go(impl.cls))
    opcode = 1 if isinstance(message, str) else 2
    payload = message.encode() if isinstance(message, str) else bytes(message)
    assert [(f.opcode, f.fin, f.payload) for f in frames] == [(opcode, True, payload)] * 2
    if impl.name == "cython":
        assert [(f.opcode, f.payload) for f in run(go(PureConnection))] == [(f.opcode, f.payload) for f in frames]


# --- flow control -----------------------------------------------------------------------------


async def _max_queue(cls, codec):
    protocol = Protocol(Side.SERVER, codec=CODECS[codec])
    conn, transport = await open_connection(cls, protocol, max_queue=2)
    pauses = []
    for chunk in (T("1"), B(b"2"), T("3") + B(b"4")):
        feed(conn, chunk)
        await settle()
        pauses.append(transport.calls["pause_reading"])
    queued = list(conn._messages)
    paused = conn._reading_paused
    got, resumes = [], []
    for _ in range(4):
        got.append(await conn.recv())
        resumes.append(transport.calls["resume_reading"])
    return pauses, queued, paused, got, resumes


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_recv_queue_full_pauses_reading_once(impl, codec):
    out = run(_max_queue(impl.cls, codec))
    pauses, queued, paused, got, resumes = out
    # paused when the 2nd message is queued, once, even as more come in
    assert pauses == [0, 1, 1]
    assert paused is True
    assert queued == got == ["1", b"2", "3", b"4"]
    # resumed once the queue is down to max_queue // 4 == 0
    assert resumes == [0, 0, 0, 1]
    if impl.name == "cython":
        assert out == run(_max_queue(PureConnection, codec))


async def _waiting_recv(cls, codec):
    """A message for a waiting recv() goes to it, not through the queue."""
    protocol = Protocol(Side.SERVER, codec=CODECS[codec])
    conn, transport = await open_connection(cls, protocol, max_queue=1)
    task = asyncio.get_running_loop().create_task(conn.recv())
    await settle()
    feed(conn, T("direct"))
    queued_meanwhile = list(conn._messages)
    first = await task
    feed(conn, T("queued"))
    return first, queued_meanwhile, list(conn._messages), transport.calls["pause_reading"]


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_message_goes_to_waiting_recv(impl, codec):
    out = run(_waiting_recv(impl.cls, codec))
    assert out == ("direct", [], ["queued"], 1)
    if impl.name == "cython":
        assert out == run(_waiting_recv(PureConnection, codec))


# --- extension and codec ------------------------------------------------------------------------


async def _deflate(cls, reads):
    listener = Recorder(echo=True)
    conn, transport = await open_connection(
        cls, Protocol(Side.SERVER, extensions=[PerMessageDeflate()]), listener=listener
    )
    assert not conn.protocol.gates.fast_send  # an extension: send_nowait goes through it
    for chunk in reads:
        feed(conn, chunk)
        await settle()
    return [e[1] for e in listener.events if e[0] == "message"], transport.shape()


def test_permessage_deflate_compressed_and_plain(impl):
    z = deflate_messages(b"compressed " * 20, b"again " * 20)
    reads = (T(z[0], rsv1=True) + B(b"plain"), B(z[1], rsv1=True) + T("plain text"))
    messages, shape = run(_deflate(impl.cls, reads))
    assert messages == ["compressed " * 20, b"plain", b"again " * 20, "plain text"]
    # the echoes, inflated by an independent inflater (server context takeover)
    inflater = zlib.decompressobj(wbits=-15)
    echoed = []
    for f in frames_of(b"".join(c for _, chunks in shape for c in chunks), allow_rsv1=True):
        payload = bytes(f.payload)
        if f.rsv1:
            payload = inflater.decompress(payload + b"\x00\x00\xff\xff")
        echoed.append((int(f.opcode), payload))
    assert echoed == [
        (1, b"compressed " * 20),
        (2, b"plain"),
        (2, b"again " * 20),
        (1, b"plain text"),
    ]
    if impl.name == "cython":
        assert (messages, shape) == run(_deflate(PureConnection, reads))


PURE_CODEC_CASES = [
    # (id, reads, listener events, frames written in the order the fast path promises)
    (
        "messages_ping_split_text_invalid_utf8",
        (T("a") + B(b"b") + PING(b"p") + T("c")[:4], T("c")[4:] + T(b"\xff")),
        [("open",), ("message", "a"), ("message", b"b"), ("ping", b"p"), ("message", "c"), ("close", 1006, "")],
        [("text", "a"), ("binary", b"b"), ("pong", b"p"), ("text", "c"), ("close", 1007)],
    ),
    (
        "message_then_close",
        (T("m") + CLOSE(1000),),
        [("open",), ("message", "m"), ("close", 1000, "")],
        [("text", "m"), ("close", 1000)],
    ),
    (
        "messages_then_ping",
        (T("m1") + T("m2") + PING(b"p"),),
        [("open",), ("message", "m1"), ("message", "m2"), ("ping", b"p")],
        [("text", "m1"), ("text", "m2"), ("pong", b"p")],
    ),
    (
        "ping_fragmented_message_close",
        (PING(b"p") + T("m1") + T("f", fin=False) + C("g") + B(b"m2") + CLOSE(1000),),
        [
            ("open",),
            ("ping", b"p"),
            ("message", "m1"),
            ("message", "fg"),
            ("message", b"m2"),
            ("close", 1000, ""),
        ],
        [("pong", b"p"), ("text", "m1"), ("text", "fg"), ("binary", b"m2"), ("close", 1000)],
    ),
]


def written_by_row(reads) -> list:
    (row,) = [c for c in PURE_CODEC_CASES if c[1] == reads]
    return row[3]


async def _pure_codec(cls, reads):
    protocol = Protocol(Side.SERVER, codec=fastws._codec_py)
    assert type(protocol.gates.fast_parser) is fastws._codec_py.FrameParser
    listener = Recorder(echo=True)
    conn, transport = await open_connection(cls, protocol, listener=listener)
    for chunk in reads:
        feed(conn, chunk)
        await settle()
    return listener.events, [token(f) for f in frames_of(transport.data())], transport.shape()


@pytest.mark.parametrize("reads, events", [c[1:3] for c in PURE_CODEC_CASES], ids=[c[0] for c in PURE_CODEC_CASES])
def test_protocol_with_pure_codec_delivers(impl, reads, events):
    """Both FastPaths run on a Protocol with the pure codec (whose frames the
    compiled one reads as Python objects): the same messages, the same end."""
    got_events, written, _ = run(_pure_codec(impl.cls, reads))
    assert got_events == events
    # what the protocol itself writes (pongs, the close frame), in order
    expected = [t for t in written_by_row(reads) if t[0] in ("pong", "close")]
    assert [t for t in written if t[0] in ("pong", "close")] == expected
    if events[-1][0] == "close":
        assert written[-1] == expected[-1]  # nothing after the close frame


@pytest.mark.parametrize(
    "reads, written", [c[1::2] for c in PURE_CODEC_CASES], ids=[c[0] for c in PURE_CODEC_CASES]
)
def test_protocol_with_pure_codec_replies_in_order(impl, reads, written, caplog):
    """The replies before the pong of a later ping and the echo of a later
    close frame, as with the default codec; and the compiled FastPath, reading
    the pure codec's frames, writes exactly what the pure one does (same
    bytes, same transport calls, same Listener calls, same log records)."""

    def go(cls):
        caplog.clear()
        out = run(_pure_codec(cls, reads))
        return out, [(r.levelname, r.getMessage()) for r in caplog.records]

    caplog.set_level(logging.DEBUG, logger="fastws")
    out, logs = go(impl.cls)
    assert not [r for r in logs if r[0] in ("WARNING", "ERROR", "CRITICAL")]
    assert out[1] == written
    if impl.name == "cython":
        assert (out, logs) == go(PureConnection)

"""permessage-deflate on each zlib backend (fastws.deflate_backends): the run-time
choice, what RFC 7692 needs from each (raw deflate at every window, sync
flushes, context takeover or not), and interop with websockets' deflate.

Backends that are not installed are skipped, with the reason; the standard
library's zlib always runs.
"""

from __future__ import annotations

import asyncio
import json
import random
import zlib

import pytest

import fastws
from fastws import deflate_backends
from fastws.deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from fastws.deflate_backends import ENV, NAMES, get_backend, resolve
from fastws.protocol import ClientProtocol, ServerProtocol

from protocol_helpers import pump

TAIL = b"\x00\x00\xff\xff"


def backend_param(name):
    installed = get_backend(name) is not None
    return pytest.param(name, id=name, marks=[] if installed else pytest.mark.skip(reason=f"{name} not installed"))


BACKENDS = [backend_param(name) for name in NAMES]


def far_repeats(n: int, seed: int) -> bytes:
    """Bytes that repeat earlier runs from every distance up to 64 KiB: a
    compressor with a larger window than allowed will refer too far back."""
    rng = random.Random(seed)
    out = bytearray(rng.randbytes(300))
    while len(out) < n:
        if rng.random() < 0.5:
            distance = rng.choice((200, 250, 300, 511, 600, 1100, 2100, 4000, 8000, 16000, 32000, 60000))
            start = max(0, len(out) - distance)
            out += out[start : start + rng.randint(8, 120)]
        else:
            out += rng.randbytes(rng.randint(1, 20))
    return bytes(out[:n])


def chat(n: int, seed: int) -> bytes:
    rng = random.Random(seed)
    words = "hello deploy the build is green see you at ten lunch review merge ok thanks".split()
    items = []
    while sum(map(len, items)) < n:
        text = " ".join(rng.choice(words) for _ in range(rng.randint(2, 15)))
        items.append(json.dumps({"type": "message", "room": "general", "user": rng.choice(words), "text": text}))
    return ("[" + ",".join(items) + "]").encode()


# --- the choice ---------------------------------------------------------------------------


def test_auto_takes_the_first_installed(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    expected = next(name for name in deflate_backends.AUTO if get_backend(name) is not None)
    assert resolve().name == expected
    assert resolve("auto").name == expected
    assert ServerPerMessageDeflateFactory().backend.name == expected


@pytest.mark.parametrize("name", BACKENDS)
def test_environment_variable_chooses(monkeypatch, name):
    monkeypatch.setenv(ENV, name)
    assert resolve().name == name
    server, client = ServerPerMessageDeflateFactory(), ClientPerMessageDeflateFactory()
    assert server.backend.name == client.backend.name == name
    assert f"backend={name!r}" in repr(server)


def test_environment_variable_forces_the_standard_library(monkeypatch):
    monkeypatch.setenv(ENV, "zlib")
    _, ext = ServerPerMessageDeflateFactory().negotiate([("client_max_window_bits", None)], [])
    assert ext.backend.module is zlib
    ext.encode(b"x" * 100, first=True, fin=True)
    assert isinstance(ext._encoder, type(zlib.compressobj()))


def test_argument_beats_the_environment_variable(monkeypatch):
    monkeypatch.setenv(ENV, "no-such-zlib")
    assert ServerPerMessageDeflateFactory(backend="zlib").backend.name == "zlib"
    with pytest.raises(ValueError, match="FASTWS_ZLIB='no-such-zlib': unknown zlib backend"):
        ServerPerMessageDeflateFactory()


@pytest.mark.parametrize(
    "value, message",
    [
        ("gzip", "backend='gzip': unknown zlib backend; use one of auto, zlib, zlib-ng, isal"),
        ("ZLIB", "backend='ZLIB': unknown zlib backend"),
    ],
)
def test_unknown_backend_is_refused(value, message):
    with pytest.raises(ValueError, match=message):
        ClientPerMessageDeflateFactory(backend=value)


@pytest.mark.parametrize("name", ["zlib-ng", "isal"])
def test_missing_backend_is_refused_by_name(name, monkeypatch):
    monkeypatch.setitem(deflate_backends._cache, name, None)  # as get_backend() finds it when not installed
    with pytest.raises(ValueError, match=f"{name} is not installed"):
        ServerPerMessageDeflateFactory(backend=name)


@pytest.mark.parametrize("name, level", [("zlib", 6), ("zlib-ng", 7), ("isal", 1)])
def test_default_level_of_each_backend(name, level):
    if get_backend(name) is None:
        pytest.skip(f"{name} not installed")
    assert ServerPerMessageDeflateFactory(backend=name).level == level
    assert ClientPerMessageDeflateFactory(backend=name).level == level
    assert PerMessageDeflate(backend=name).level == level


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("level", [-1, 0, 1, 5, 9])
def test_every_zlib_level_works_on_every_backend(name, level):
    ext = PerMessageDeflate(backend=name, level=level, min_size=0)
    peer = PerMessageDeflate(backend="zlib")
    message = chat(5000, seed=level + 2)
    data, rsv1 = ext.encode(message, first=True, fin=True)
    assert rsv1 and peer.decode(data, first=True, fin=True, max_size=None) == message


@pytest.mark.parametrize("level", [10, -2, True, "6"])
def test_out_of_range_level_is_refused_whatever_the_backend(level):
    with pytest.raises(ValueError, match="level must be an int from -1 to 9"):
        ServerPerMessageDeflateFactory(level=level)


# --- what RFC 7692 needs, per backend -----------------------------------------------------


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("bits", range(8, 16))
@pytest.mark.parametrize("takeover", [True, False], ids=["takeover", "no-takeover"])
def test_compresses_within_the_negotiated_window(name, bits, takeover):
    """Inflated by the standard library with exactly the negotiated window
    (8 included), message after message: a reference beyond the window, or
    into an earlier message without context takeover, fails."""
    ext = PerMessageDeflate(local_max_window_bits=bits, local_no_context_takeover=not takeover, backend=name)
    inflater = zlib.decompressobj(wbits=-bits)
    # isal reaches its window's far end only in large inputs; the small ones
    # in between go to its partner, and back (a fresh compressor each time).
    for i, size in enumerate((120_000, 700, 120_000, 100_000, 3000, 50, 120_000)):
        message = far_repeats(size, seed=bits * 10 + i)
        data, rsv1 = ext.encode(message, first=True, fin=True)
        assert rsv1
        if not takeover:
            inflater = zlib.decompressobj(wbits=-bits)
        assert inflater.decompress(data + TAIL) == message


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("bits", range(8, 16))
def test_inflates_the_standard_library_at_every_window(name, bits):
    compressor = zlib.compressobj(9, zlib.DEFLATED, -max(bits, 9), 9)
    ext = PerMessageDeflate(remote_max_window_bits=bits, backend=name)
    for i in range(4):
        message = far_repeats(30_000, seed=i)
        data = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(TAIL)
        # Fragmented: the first half in one frame, the rest in the last.
        half = len(data) // 2
        got = ext.decode(data[:half], first=True, fin=False, max_size=None)
        got += ext.decode(data[half:-4], first=False, fin=True, max_size=None)
        assert got == message


@pytest.mark.parametrize("sender", BACKENDS)
@pytest.mark.parametrize("receiver", BACKENDS)
def test_backends_talk_to_each_other(sender, receiver):
    client, server = connect(
        ClientPerMessageDeflateFactory(backend=sender), ServerPerMessageDeflateFactory(backend=receiver)
    )
    messages = [chat(n, seed=n) for n in (40, 300, 5000, 200_000)] + [b"", b"x" * 31]
    for message in messages:
        client.send_binary(message)
        server.send_binary(message)
    pump(client, server)
    assert server.events_received() == messages
    assert client.events_received() == messages


@pytest.mark.parametrize("name", BACKENDS)
def test_empty_message_is_one_byte(name):
    ext = PerMessageDeflate(backend=name, min_size=0)
    ext.encode(b"hello " * 20, first=True, fin=True)
    assert ext.encode(b"", first=True, fin=True) == (b"\x00", True)
    # The stream goes on: the next message still inflates.
    peer = PerMessageDeflate(backend="zlib")
    first, _ = PerMessageDeflate(backend=name, min_size=0).encode(b"abc" * 50, first=True, fin=True)
    assert peer.decode(first, first=True, fin=True, max_size=None) == b"abc" * 50
    assert peer.decode(b"\x00", first=True, fin=True, max_size=None) == b""


@pytest.mark.parametrize("name", BACKENDS)
def test_max_size_is_enforced_on_every_backend(name):
    from fastws.exceptions import PayloadTooBig

    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = bomb.compress(b"\x00" * 10_000_000) + bomb.flush(zlib.Z_SYNC_FLUSH)
    ext = PerMessageDeflate(backend=name)
    with pytest.raises(PayloadTooBig):
        ext.decode(data[:-4], first=True, fin=True, max_size=1 << 20)


@pytest.mark.parametrize("name", BACKENDS)
def test_bad_data_fails_with_1007_on_every_backend(name):
    from fastws.exceptions import ProtocolError

    ext = PerMessageDeflate(backend=name)
    with pytest.raises(ProtocolError) as info:
        ext.decode(b"\xff\xff\xff\xff" * 8, first=True, fin=True, max_size=None)
    assert info.value.close_code == 1007


def test_isal_partner_is_zlib_and_auto_never_picks_zlib_ng():
    isal = get_backend("isal")
    if isal is None:
        pytest.skip("isal not installed")
    assert isal.partner is get_backend("zlib")
    assert "zlib-ng" not in deflate_backends.AUTO


@pytest.mark.parametrize("partner_name", BACKENDS[:2])
@pytest.mark.parametrize("level", [None, 9])
def test_isal_leaves_messages_smaller_than_the_window_to_its_partner(partner_name, level):
    """isal compresses the messages at least as large as the window; its
    partner (zlib by default; zlib-ng can be one too: both tried here) the smaller
    ones, at the partner's default level unless one was given."""
    installed = get_backend("isal")
    if installed is None:
        pytest.skip("isal not installed")
    partner = get_backend(partner_name)
    isal = deflate_backends.Backend(
        "isal", installed.module, installed.version, level=1, levels=installed.levels,
        windows=installed.windows, partner=partner,
    )
    ext = PerMessageDeflate(local_max_window_bits=10, backend=isal, level=level)
    small, large = chat(2000, seed=1)[:1023], chat(2000, seed=2)[:1024]

    def alone(backend, level, message):
        compressor = backend.compressobj(level, 10, 5)
        return (compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]

    # Each switch starts a fresh compressor: the output is that of a new one.
    for message, backend, own_level in ((small, partner, partner.level), (large, isal, isal.level)) * 2:
        expected = alone(backend, own_level if level is None else level, message)
        assert ext.encode(message, first=True, fin=True) == (expected, True)


def test_isal_gives_an_8_bit_window_to_zlib():
    """isal refers up to 512 bytes back with its smallest window (9 bits); a
    connection that negotiated 8 bits compresses with the standard library."""
    if get_backend("isal") is None:
        pytest.skip("isal not installed")
    ext = PerMessageDeflate(local_max_window_bits=8, backend="isal")
    inflater = zlib.decompressobj(wbits=-8)
    message = far_repeats(100_000, seed=3)
    data, _ = ext.encode(message, first=True, fin=True)
    assert inflater.decompress(data + TAIL) == message
    # The same data, compressed by isal with its 9-bit window, refers too far
    # for an 8-bit inflater: the reason for the fallback.
    raw = get_backend("isal").module.compressobj(1, zlib.DEFLATED, -9)
    isal_data = raw.compress(message) + raw.flush(zlib.Z_SYNC_FLUSH)
    with pytest.raises(zlib.error, match="too far back"):
        zlib.decompressobj(wbits=-8).decompress(isal_data)


# --- interop with websockets' deflate ------------------------------------------------------

ws_pmd = pytest.importorskip("websockets.extensions.permessage_deflate")
ws_frames = pytest.importorskip("websockets.frames")


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("bits", range(9, 16))
@pytest.mark.parametrize("takeover", [True, False], ids=["takeover", "no-takeover"])
def test_interop_with_websockets_deflate(name, bits, takeover):
    """fastws's extension on each backend against websockets' PerMessageDeflate,
    both ways, at every window websockets accepts."""
    ours = PerMessageDeflate(
        remote_max_window_bits=bits,
        local_max_window_bits=bits,
        remote_no_context_takeover=not takeover,
        local_no_context_takeover=not takeover,
        backend=name,
        min_size=0,
    )
    theirs = ws_pmd.PerMessageDeflate(not takeover, not takeover, bits, bits)
    for i, size in enumerate((50, 700, 9000, 120_000)):
        message = chat(size, seed=bits + i)
        data, rsv1 = ours.encode(message, first=True, fin=True)
        frame = ws_frames.Frame(ws_frames.Opcode.BINARY, data, rsv1=rsv1)
        assert theirs.decode(frame).data == message
        frame = theirs.encode(ws_frames.Frame(ws_frames.Opcode.BINARY, message))
        assert frame.rsv1
        assert ours.decode(frame.data, first=True, fin=True, max_size=None) == message


# --- over a socket, with websockets' client -------------------------------------------------


@pytest.mark.parametrize("name", BACKENDS)
def test_fastws_server_on_each_backend_with_a_websockets_client(monkeypatch, name):
    from websockets.asyncio.client import connect as ws_connect

    monkeypatch.setenv(ENV, name)
    messages = [chat(n, seed=n) for n in (32, 1000, 300_000)]

    async def main():
        async def echo(websocket):
            async for message in websocket:
                await websocket.send(message)

        async with await fastws.serve(echo, "127.0.0.1", 0, compression="deflate") as server:
            port = server.sockets[0].getsockname()[1]
            async with ws_connect(f"ws://127.0.0.1:{port}/", compression="deflate", max_size=None) as ws:
                assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
                got = []
                for message in messages:
                    await ws.send(message)
                    got.append(await ws.recv())
        return got

    assert asyncio.run(asyncio.wait_for(main(), 30)) == messages


def connect(client_factory, server_factory):
    c = ClientProtocol("ws://example.com/", extensions=[client_factory], max_size=None)
    s = ServerProtocol(extensions=[server_factory], max_size=None)
    pump(c, s)
    s.events_received()
    c.events_received()
    return c, s

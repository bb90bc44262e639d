"""Every codec entry point, every accelerate patch and every send path takes any
bytes-like object, whatever its shape: a strided or reversed memoryview, a
two-dimensional one, an ``array('H')``, read as the bytes ``bytes(view)`` gives
(C order), which is what websockets sends for a memoryview. Both codec twins give
the same results and the same errors; anything that is not bytes-like is a
TypeError naming its type.

The shapes are built around the bytes they must read as (``content``), so each
test compares a shape's result with the result for ``bytes`` of the same
content. Contents have an even length (for the ``array('H')`` shapes).
"""

from __future__ import annotations

import importlib
import os
import sys
from array import array

import pytest

import fastws
from fastws.deflate import ClientPerMessageDeflateFactory, ServerPerMessageDeflateFactory
from fastws.protocol import OPEN, ClientProtocol, ServerProtocol

sys.path.insert(0, os.path.dirname(__file__))
from asyncio_helpers import run, server
from conftest import load_speedups
from protocol_helpers import pump

MASK = b"\x37\xfa\x21\x3d"
JUNK = 0xA5


def reference_mask(data: bytes, key: bytes) -> bytes:
    """RFC 6455 section 5.3, byte by byte: independent of both codecs."""
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def _interleaved(content: bytes) -> bytearray:
    out = bytearray([JUNK]) * (2 * len(content))
    out[::2] = content
    return out


def _2d(content: bytes, *, writable: bool = False) -> memoryview:
    source = bytearray(content) if writable else content
    return memoryview(source).cast("B", (2, len(content) // 2))


def _2d_strided(content: bytes, *, writable: bool = False) -> memoryview:
    # rows 0 and 2 of a (4, n/2) view hold the content, rows 1 and 3 junk
    half = len(content) // 2
    rows = bytearray([JUNK]) * (2 * len(content))
    rows[0:half] = content[:half]
    rows[2 * half : 3 * half] = content[half:]
    source = rows if writable else bytes(rows)
    return memoryview(source).cast("B", (4, half))[::2]


def _uint16(content: bytes) -> array:
    items = array("H")
    items.frombytes(content)
    return items


def _uint16_reversed(content: bytes) -> memoryview:
    items = _uint16(content)
    items.reverse()
    return memoryview(items)[::-1]


#: (id, content -> a read-only or writable buffer that reads as content)
SHAPES = [
    ("bytes", bytes),
    ("bytearray", bytearray),
    ("memoryview", memoryview),
    ("memoryview-of-bytearray", lambda c: memoryview(bytearray(c))),
    ("strided", lambda c: memoryview(bytes(_interleaved(c)))[::2]),
    ("strided-writable", lambda c: memoryview(_interleaved(c))[::2]),
    ("reversed", lambda c: memoryview(c[::-1])[::-1]),
    ("2d", _2d),
    ("2d-strided", _2d_strided),
    ("char-format", lambda c: memoryview(c).cast("c")),
    ("array-H", _uint16),
    ("memoryview-array-H", lambda c: memoryview(_uint16(c))),
    ("array-H-reversed", _uint16_reversed),
]
SHAPE_IDS = [s[0] for s in SHAPES]
SHAPE_MAKERS = [s[1] for s in SHAPES]

#: Things that are not bytes-like, and the type name every error must give.
NOT_BYTES_LIKE = [(5, "int"), ("text", "str"), ([1, 2], "list"), (None, "NoneType")]

TEXT = "héllo wörld, €uro 𝄞!!".encode()  # even length, multi-byte sequences
assert len(TEXT) % 2 == 0
BINARY = bytes(range(256)) * 3


def test_shapes_read_as_their_content():
    for make in SHAPE_MAKERS:
        for content in (TEXT, BINARY):
            view = memoryview(make(content))
            assert view.tobytes() == bytes(view) == content


def test_the_odd_shapes_really_are_odd():
    # the table reaches the slow paths: not contiguous, several dimensions, items of 2 bytes
    assert not memoryview(SHAPES[4][1](TEXT)).c_contiguous
    assert not memoryview(_2d_strided(TEXT)).c_contiguous
    assert memoryview(_2d(TEXT)).ndim == 2
    assert memoryview(_uint16_reversed(TEXT)).itemsize == 2


@pytest.fixture(scope="module")
def compiled():
    return load_speedups()


@pytest.fixture(scope="module")
def pure():
    return importlib.import_module("fastws._codec_py")


# --- the codec, entry point by entry point ----------------------------------------------


@pytest.mark.parametrize("make", SHAPE_MAKERS, ids=SHAPE_IDS)
def test_apply_mask(codec, make):
    for content in (b"", TEXT, BINARY):
        if not content and make in (_2d, _2d_strided):
            continue  # (a 2-D view of nothing: no rows to stride over)
        assert codec.apply_mask(make(content), MASK) == reference_mask(content, MASK)


@pytest.mark.parametrize("make", SHAPE_MAKERS, ids=SHAPE_IDS)
def test_apply_mask_key(codec, make):
    # the key: 4 bytes, in any shape
    key = make(MASK)
    assert codec.apply_mask(BINARY, key) == reference_mask(BINARY, MASK)
    assert codec.build_frame(2, BINARY, mask=key) == codec.build_frame(2, BINARY, mask=MASK)
    assert codec.apply_mask_inplace(bytearray(BINARY), key) == len(BINARY) % 4


def test_apply_mask_large_strided_payload(codec):
    # above the size where masking releases the GIL
    content = bytes(range(256)) * 600
    view = memoryview(bytes(_interleaved(content)))[::2]
    assert codec.apply_mask(view, MASK) == reference_mask(content, MASK)


WRITABLE = [
    ("bytearray", bytearray),
    ("memoryview-of-bytearray", lambda c: memoryview(bytearray(c))),
    ("strided", lambda c: memoryview(_interleaved(c))[::2]),
    ("reversed", lambda c: memoryview(bytearray(c[::-1]))[::-1]),
    ("2d", lambda c: _2d(c, writable=True)),
    ("array-H", _uint16),
    ("array-H-reversed", _uint16_reversed),
]


@pytest.mark.parametrize("make", [w[1] for w in WRITABLE], ids=[w[0] for w in WRITABLE])
@pytest.mark.parametrize("phase", [0, 1, 3])
def test_apply_mask_inplace_masks_any_one_dimensional_or_contiguous_buffer(codec, make, phase):
    key = MASK[phase:] + MASK[:phase]
    buffer = make(BINARY)
    assert codec.apply_mask_inplace(buffer, MASK, phase) == (phase + len(BINARY)) % 4
    assert bytes(memoryview(buffer)) == reference_mask(BINARY, key)


def test_apply_mask_inplace_writes_only_the_strided_bytes(codec):
    backing = _interleaved(BINARY)
    codec.apply_mask_inplace(memoryview(backing)[::2], MASK)
    assert backing[::2] == reference_mask(BINARY, MASK)
    assert set(backing[1::2]) == {JUNK}


@pytest.mark.parametrize(
    "make, message",
    [
        (bytes, "buffer must be writable"),
        (lambda c: memoryview(bytes(_interleaved(c)))[::2], "buffer must be writable"),
        (lambda c: memoryview(c).cast("B", (2, len(c) // 2)), "buffer must be writable"),
        (
            lambda c: _2d_strided(c, writable=True),
            (
                "buffer must be contiguous or one-dimensional to be masked in place,"
                " not 2-dimensional and strided"
            ),
        ),
    ],
    ids=["bytes", "strided-read-only", "2d-read-only", "2d-strided-writable"],
)
def test_apply_mask_inplace_refuses(both_codecs, make, message):
    for codec in both_codecs:
        buffer = make(BINARY)
        with pytest.raises(TypeError) as info:
            codec.apply_mask_inplace(buffer, MASK)
        assert str(info.value) == message
        assert bytes(memoryview(buffer)) == BINARY  # untouched


@pytest.mark.parametrize("make", SHAPE_MAKERS, ids=SHAPE_IDS)
def test_utf8_entry_points(codec, make):
    invalid = TEXT[:4] + b"\xed\xa0" + TEXT[6:]  # a surrogate's first bytes
    for content in (TEXT, invalid, BINARY):
        expected = codec.validate_utf8(content)
        assert codec.validate_utf8(make(content)) is expected
        validator = codec.Utf8Validator()
        assert validator.feed(make(content)) is expected
        assert codec.scan_utf8(make(content)) == codec.scan_utf8(content)
    # pending, in any shape (2 bytes of a 3-byte sequence)
    euro = "€".encode()
    assert codec.scan_utf8(make(euro[2:] + b"a"), make(euro[:2])) == (-1, b"")


@pytest.mark.parametrize("make", SHAPE_MAKERS, ids=SHAPE_IDS)
@pytest.mark.parametrize("mask", [None, MASK])
def test_build_frame(codec, make, mask):
    for opcode, content in [(1, TEXT), (2, BINARY), (9, TEXT[:20]), (0, b"")]:
        if not content and make in (_2d, _2d_strided):
            continue
        expected = codec.build_frame(opcode, content, fin=opcode != 0, mask=mask)
        assert codec.build_frame(opcode, make(content), fin=opcode != 0, mask=mask) == expected
    # a fresh key: the payload is masked with the key the frame carries
    frame = codec.build_frame(2, make(BINARY), mask=True)
    key, masked = frame[4:8], frame[8:]
    assert reference_mask(masked, key) == BINARY


@pytest.mark.parametrize("make", SHAPE_MAKERS, ids=SHAPE_IDS)
@pytest.mark.parametrize("masked", [False, True])
def test_frame_parser_feed(codec, make, masked):
    wire = codec.build_frame(2, BINARY, mask=MASK if masked else None)
    wire += codec.build_frame(1, TEXT, mask=MASK if masked else None)
    assert len(wire) % 2 == 0
    expected = codec.FrameParser(mask_required=masked).feed(wire)
    parser = codec.FrameParser(mask_required=masked)
    frames = parser.feed(make(wire[:100])) + parser.feed(make(wire[100:]))
    assert frames == expected and [f.payload for f in frames] == [BINARY, TEXT]


@pytest.mark.parametrize("make", SHAPE_MAKERS, ids=SHAPE_IDS)
def test_frame_and_plain_message(codec, make):
    frame = codec.Frame(2, make(BINARY))
    assert type(frame.payload) is bytes and frame.payload == BINARY
    assert codec.plain_message(codec.Frame(1, make(TEXT))) == TEXT.decode()


@pytest.mark.parametrize("make", SHAPE_MAKERS, ids=SHAPE_IDS)
def test_parse_close(codec, make):
    payload = codec.build_close(4000, "ça va")  # 8 bytes
    assert codec.parse_close(make(payload)) == (4000, "ça va")
    with pytest.raises(fastws.InvalidUTF8):
        codec.parse_close(make(b"\x0f\xa0ab\xff\xfe"))


def test_codec_module_exports_the_same_functions():
    # what fastws.codec (and the top-level package) exports is one of the twins
    from fastws import codec

    view = memoryview(bytes(_interleaved(BINARY)))[::2]
    assert codec.apply_mask(view, MASK) == reference_mask(BINARY, MASK)
    assert fastws.apply_mask(view, MASK) == reference_mask(BINARY, MASK)
    assert codec.build_frame(2, view) == codec.build_frame(2, BINARY)


# --- identical results and errors from both twins ---------------------------------------


def _calls(buffer):
    """Every codec entry point that reads a buffer, called on ``buffer``."""
    return {
        "apply_mask(data)": lambda c: c.apply_mask(buffer, MASK),
        "apply_mask(mask)": lambda c: c.apply_mask(b"data", buffer),
        "apply_mask_inplace(buffer)": lambda c: c.apply_mask_inplace(buffer, MASK),
        "apply_mask_inplace(mask)": lambda c: c.apply_mask_inplace(bytearray(4), buffer),
        "validate_utf8": lambda c: c.validate_utf8(buffer),
        "Utf8Validator.feed": lambda c: c.Utf8Validator().feed(buffer),
        "scan_utf8(data)": lambda c: c.scan_utf8(buffer),
        "scan_utf8(pending)": lambda c: c.scan_utf8(b"", buffer),
        "FrameParser.feed": lambda c: c.FrameParser(mask_required=False).feed(buffer),
        "build_frame(payload)": lambda c: c.build_frame(2, buffer),
        "build_frame(mask)": lambda c: c.build_frame(2, b"data", mask=buffer),
        "parse_close": lambda c: c.parse_close(buffer),
    }


def _outcome(call, codec):
    try:
        return "ok", call(codec)
    except Exception as exc:  # noqa: BLE001 - the outcome is what is compared
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("make", SHAPE_MAKERS, ids=SHAPE_IDS)
def test_both_twins_agree_on_every_shape(compiled, pure, make):
    for content in (MASK, TEXT, BINARY, b"\x03\xe8ok"):
        for name in _calls(None):
            # a fresh buffer per twin: apply_mask_inplace writes into it
            outcomes = []
            for codec in (compiled, pure):
                buffer = make(content)
                outcome = _outcome(_calls(buffer)[name], codec)
                outcomes.append((outcome, bytes(memoryview(buffer))))
            assert outcomes[0] == outcomes[1], (name, content)


@pytest.mark.parametrize("value, type_name", NOT_BYTES_LIKE, ids=[n for _, n in NOT_BYTES_LIKE])
def test_not_bytes_like_is_a_type_error_naming_the_type(compiled, pure, value, type_name):
    for name, call in _calls(value).items():
        if name == "build_frame(payload)" and type_name == "str":
            continue  # a str payload is text
        if name in ("apply_mask(mask)", "build_frame(mask)", "apply_mask_inplace(mask)"):
            if value is None:
                continue  # no mask: an unmasked frame
        outcomes = [_outcome(call, codec) for codec in (compiled, pure)]
        assert outcomes[0] == outcomes[1], name
        kind, message = outcomes[0]
        if name == "build_frame(mask)" and type_name == "int":
            continue  # (a key of 5: not True, not 4 bytes)
        assert kind == "TypeError", (name, outcomes)
        assert message.endswith(f"must be a bytes-like object, not {type_name}"), (name, message)


# --- the wsaccel-compatible layer and the accelerate patches ----------------------------

#: The shapes of one dimension and one-byte items, where len() counts bytes: the
#: ones the libraries' own functions handle (fastws handles every shape).
BYTE_SHAPES = [
    (name, make) for name, make in SHAPES
    if memoryview(make(TEXT)).ndim == 1 and memoryview(make(TEXT)).format == "B"
]


@pytest.mark.parametrize("make", SHAPE_MAKERS, ids=SHAPE_IDS)
def test_wsaccel_masker(make):
    from fastws.accelerate.wsaccel.xormask import XorMaskerSimple, createXorMasker

    masker = XorMaskerSimple(make(MASK))
    half = len(BINARY) // 2
    out = masker.process(make(BINARY[:half])) + masker.process(make(BINARY[half:]))
    assert out == reference_mask(BINARY, MASK) and masker.pointer() == len(BINARY)
    assert createXorMasker(MASK).process(make(TEXT)) == reference_mask(TEXT, MASK)


@pytest.mark.parametrize("make", SHAPE_MAKERS, ids=SHAPE_IDS)
def test_wsaccel_utf8_validator(make):
    from fastws.accelerate.wsaccel.utf8validator import Utf8Validator

    invalid = TEXT[:4] + b"\xed\xa0" + TEXT[6:]
    for content in (TEXT, invalid, BINARY):
        expected = Utf8Validator().validate(content)
        assert Utf8Validator().validate(make(content)) == expected
    rejected = Utf8Validator()
    rejected.validate(b"\xff")
    assert rejected.validate(make(TEXT)) == rejected.validate(TEXT)


def test_wsaccel_keeps_its_type_error():
    from fastws.accelerate.wsaccel.utf8validator import Utf8Validator
    from fastws.accelerate.wsaccel.xormask import XorMaskerSimple

    for call in (XorMaskerSimple(MASK).process, Utf8Validator().validate):
        with pytest.raises(TypeError, match=r"^a bytes-like object is required, not 'int'$"):
            call(5)


@pytest.fixture
def unpatched():
    import fastws.accelerate as acc

    acc.unpatch_all()
    yield acc
    acc.unpatch_all()


@pytest.mark.parametrize("make", [m for _, m in BYTE_SHAPES], ids=[n for n, _ in BYTE_SHAPES])
def test_patched_masks_match_the_libraries_own(unpatched, make):
    """For each library, fastws's replacement gives what the library's own
    function gives wherever that one works, and the RFC's bytes everywhere."""
    from fastws.accelerate import _tornado, _websockets, _wsproto  # noqa: F401

    expected = reference_mask(BINARY, MASK)
    # websockets: apply_mask(data, mask) -> bytes (its pure version as the reference)
    websockets_utils = pytest.importorskip("websockets.utils")
    assert websockets_utils.apply_mask(make(BINARY), MASK) == expected
    assert fastws.codec.apply_mask(make(BINARY), MASK) == expected
    # tornado: _websocket_mask(mask, data) -> bytes
    tornado_util = pytest.importorskip("tornado.util")
    assert tornado_util._websocket_mask_python(MASK, make(BINARY)) == expected
    assert _tornado.websocket_mask(MASK, make(BINARY)) == expected
    # wsproto: XorMaskerSimple(key).process(data) -> bytearray
    frame_protocol = pytest.importorskip("wsproto.frame_protocol")
    assert frame_protocol.XorMaskerSimple(MASK).process(make(BINARY)) == expected
    assert _wsproto.XorMaskerSimple(MASK).process(make(BINARY)) == expected
    # ws4py: Frame.mask(data) -> bytearray
    framing = pytest.importorskip("ws4py.framing")
    frame = framing.Frame(masking_key=MASK)
    assert framing.Frame.mask(frame, make(BINARY)) == expected
    unpatched.patch_ws4py(allow_pure=True)
    assert framing.Frame.mask(frame, make(BINARY)) == expected


@pytest.mark.parametrize("make", [w[1] for w in WRITABLE], ids=[w[0] for w in WRITABLE])
def test_aiohttp_mask_in_place(make):
    from fastws.accelerate._aiohttp import websocket_mask

    buffer = make(BINARY)
    websocket_mask(MASK, buffer)
    assert bytes(memoryview(buffer)) == reference_mask(BINARY, MASK)


@pytest.mark.parametrize("make", SHAPE_MAKERS, ids=SHAPE_IDS)
def test_autobahn_and_ws4py_get_maskers_and_validators_for_any_shape(unpatched, make):
    from fastws.accelerate._autobahn import create_xor_masker
    from fastws.accelerate._wsproto import XorMaskerSimple

    assert create_xor_masker(MASK, len(BINARY)).process(make(BINARY)) == reference_mask(BINARY, MASK)
    assert XorMaskerSimple(make(MASK)).process(make(BINARY)) == reference_mask(BINARY, MASK)


# --- the sans-I/O protocol's send paths --------------------------------------------------


def _pair(codec, compression: bool):
    client = ClientProtocol(
        "ws://example.com/", codec=codec,
        extensions=[ClientPerMessageDeflateFactory()] if compression else [],
    )
    server = ServerProtocol(
        codec=codec, extensions=[ServerPerMessageDeflateFactory()] if compression else []
    )
    pump(client, server)
    assert client.state is OPEN and server.state is OPEN
    client.events_received()
    server.events_received()
    return client, server


def _exchange(codec, compression: bool, make) -> list:
    """Everything a client and a server send each other, the payloads built by ``make``."""
    client, server = _pair(codec, compression)
    received = []
    for sender, receiver in ((client, server), (server, client)):
        sender.send_binary(make(BINARY))
        sender.send_text(make(TEXT))
        sender.send_binary(make(BINARY[:100]), fin=False)
        sender.send_continuation(make(BINARY[100:]), fin=True)
        sender.send_text(make(TEXT[:4]), fin=False)
        sender.send_continuation(make(TEXT[4:]), fin=True)
        sender.send_ping(make(TEXT[:20]))
        sender.send_pong(make(b"pong"))
        receiver.receive_data(sender.data_to_send())
        received.append([
            e if isinstance(e, (bytes, str)) else (type(e).__name__, bytes(e.data))
            for e in receiver.events_received()
        ])
        assert receiver.error is None
    return received


@pytest.mark.parametrize("make", SHAPE_MAKERS, ids=SHAPE_IDS)
@pytest.mark.parametrize("compression", [False, True], ids=["plain", "deflate"])
def test_protocol_sends_any_shape(codec, make, compression):
    expected = [
        BINARY, TEXT.decode(), BINARY, TEXT.decode(), ("Ping", TEXT[:20]), ("Pong", b"pong"),
    ]
    # (the client receives the answer to its ping first)
    assert _exchange(codec, compression, make) == [expected, [("Pong", TEXT[:20])] + expected]


@pytest.mark.parametrize("compression", [False, True], ids=["plain", "deflate"])
def test_protocol_refuses_what_is_not_bytes_like(codec, compression):
    client, _ = _pair(codec, compression)
    for value, type_name in NOT_BYTES_LIKE:
        if type_name == "str":
            continue
        with pytest.raises(TypeError, match=f"must be a bytes-like object, not {type_name}$"):
            client.send_binary(value)
    assert client.data_to_send() == b""  # nothing was sent (not even zeros for an int)


# --- end to end: fastws and websockets over loopback -------------------------------------

DATA = bytes(range(256)) * 400  # 100 KiB, compressible


def _to_send():
    """(message, the bytes it is) for the shapes an application sends."""
    strided = memoryview(DATA)[::2]
    array_h = memoryview(_uint16(DATA[:1000]))
    return [
        (strided, DATA[::2]),
        (memoryview(DATA)[::-1], DATA[::-1]),
        (memoryview(DATA).cast("B", (400, 256)), DATA),
        (array_h, DATA[:1000]),
        (memoryview(DATA[:100])[::3], DATA[:100:3]),  # small: the fast path's size
    ]


async def _echo_reversed(ws):
    # echoes each message, then sends it again as a reversed memoryview
    async for message in ws:
        await ws.send(message)
        await ws.send(memoryview(message)[::-1])


@pytest.mark.parametrize("compression", [None, "deflate"])
@run
async def test_fastws_client_and_server_send_any_shape(compression):
    async with server(_echo_reversed, compression=compression) as (_, uri):
        async with fastws.connect(uri, compression=compression) as ws:
            for message, sent in _to_send():
                await ws.send(message)
                assert await ws.recv() == sent
                assert await ws.recv() == sent[::-1]
            # fragments, of several shapes
            await ws.send([memoryview(DATA)[::2], memoryview(DATA[:10]).cast("B", (2, 5))])
            assert await ws.recv() == DATA[::2] + DATA[:10]
            await ws.recv()
            ws.send_nowait(memoryview(DATA)[1::2])
            assert await ws.recv() == DATA[1::2]


@run
async def test_websockets_patched_sends_a_strided_memoryview():
    websockets_client = pytest.importorskip("websockets.asyncio.client")
    import fastws.accelerate as acc

    acc.unpatch_all()
    message = memoryview(DATA)[::2]
    async with server(_echo_reversed, compression=None) as (_, uri):
        received = []
        for patched in (False, True, False):
            if patched:
                assert acc.patch_websockets(force=True, allow_pure=True).active
            try:
                import websockets.frames

                assert (websockets.frames.apply_mask is fastws.codec.apply_mask) is patched
                async with websockets_client.connect(uri, compression=None) as ws:
                    await ws.send(message)
                    received.append((await ws.recv(), await ws.recv()))
            finally:
                acc.unpatch_all()
    assert received == [(DATA[::2], DATA[::2][::-1])] * 3


@pytest.mark.parametrize("value, type_name", NOT_BYTES_LIKE, ids=[n for _, n in NOT_BYTES_LIKE])
def test_frame_payload_must_be_bytes_like(codec, value, type_name):
    # bytes(5) would be five zeros
    with pytest.raises(TypeError, match=f"^payload must be a bytes-like object, not {type_name}$"):
        codec.Frame(2, value)

"""permessage-deflate: compress + decompress of chat-like JSON messages.

Two layers, fastws against websockets at the same settings (websockets'
defaults: 12-bit windows both ways, zlib level 6, memLevel 5, context takeover;
fastws's ``min_size`` set to 0 so that every message is compressed, as
websockets does):

- ``extension``: one side's extension compresses a batch of messages, the
  other side's inflates them (fastws :class:`~fastws.deflate.PerMessageDeflate`
  ``encode``/``decode``, websockets ``PerMessageDeflate.encode``/``decode`` on
  its ``Frame`` objects);
- ``protocol``: the same through the sans-I/O protocols, the way a server
  echoes: a client protocol sends the batch as text messages, the server
  protocol parses, inflates and checks them (fastws ``send_text`` +
  ``receive_data`` + ``events_received``, websockets the same names; both are
  given UTF-8 bytes to send). Frame building, masking and unmasking are
  included; fastws's events are ``str`` (UTF-8 decoded and checked), websockets'
  are frames whose UTF-8 its sans-I/O layer has checked.

Each call handles a batch of 100 messages (90 to 400 bytes of JSON each), on
connections kept open across calls: context takeover works as it does on a
long-lived connection. The ``bytes`` throughput counts uncompressed bytes.

Self-contained: needs pytest-benchmark, and websockets for its rows.

``python -m bench.test_deflate`` prints the memory / ratio / time table of
``docs/deflate.md`` (it measures; takes a few seconds).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import fastws  # noqa: E402
from fastws.deflate import ClientPerMessageDeflateFactory, ServerPerMessageDeflateFactory  # noqa: E402
from fastws.protocol import ClientProtocol, ServerProtocol  # noqa: E402

IMPL = fastws.IMPLEMENTATION
BATCH = 100

# --- the payload: chat-like JSON -----------------------------------------------------

_USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]
_ROOMS = ["general", "random", "dev", "ops", "design"]
_WORDS = (
    "the a to and of is in it you that was for on are with as I his they be at one have"
    " this from or had by hot word but what some we can out other were all there when up"
    " use your how said an each she which do their time if will way about many then them"
    " deploy build server client message latency error retry cache queue socket ok thanks"
    " lunch meeting tomorrow today review merge branch release ticket bug fix test green"
).split()


def chat_messages(count: int, seed: int = 7) -> list:
    """``count`` JSON chat messages (str) of 90 to 400 bytes, deterministic."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        text_len = rng.randint(2, 50)
        text = " ".join(rng.choice(_WORDS) for _ in range(text_len))
        user = rng.choice(_USERS)
        msg = {
            "type": "message",
            "id": 100000 + i,
            "room": rng.choice(_ROOMS),
            "user": {"id": _USERS.index(user) + 1, "name": user},
            "text": text[: rng.randint(20, 300)],
            "ts": 1700000000 + i * 7 + rng.randint(0, 6),
        }
        if rng.random() < 0.2:
            msg["reactions"] = {rng.choice(["+1", "heart", "tada"]): rng.randint(1, 9)}
        out.append(json.dumps(msg, separators=(",", ":")))
    return out


# --- fastws ----------------------------------------------------------------------------


def fastws_pair(*, client_kwargs=None, server_kwargs=None, offer_params=None):
    """(client extension, server extension) negotiated by the factories, without
    a connection: the server reads the client's offer, the client its answer."""
    client_factory = ClientPerMessageDeflateFactory(**(client_kwargs or {}))
    server_factory = ServerPerMessageDeflateFactory(**(server_kwargs or {}))
    offer = client_factory.offer() if offer_params is None else offer_params
    answer, server_ext = server_factory.negotiate(offer, [])
    client_ext = client_factory.accept(answer, [])
    return client_ext, server_ext


def _fastws_roundtrip(sender, receiver, payloads):
    out = []
    for payload in payloads:
        data, rsv1 = sender.encode(payload, first=True, fin=True)
        out.append(receiver.decode(data, first=True, fin=True, max_size=1 << 20) if rsv1 else data)
    return out


def _connected(codec, min_size: int = 0):
    server_kwargs = dict(min_size=min_size)
    client = ClientProtocol(
        "ws://localhost/", codec=codec, extensions=[ClientPerMessageDeflateFactory(min_size=min_size)]
    )
    server = ServerProtocol(codec=codec, extensions=[ServerPerMessageDeflateFactory(**server_kwargs)])
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    client.events_received()
    server.events_received()
    assert client.extensions and server.extensions
    return client, server


def _fastws_protocol(client, server, messages):
    send = client.send_text
    for message in messages:
        send(message)
    server.receive_data(client.data_to_send())
    return server.events_received()


# --- websockets --------------------------------------------------------------------------


def _websockets():
    try:
        from websockets.extensions import permessage_deflate as pmd
        from websockets.frames import Frame, Opcode
    except ImportError as exc:
        pytest.skip(f"websockets not installed ({exc})")
    return pmd, Frame, Opcode


def websockets_pair():
    pmd, _, _ = _websockets()
    client_factory = pmd.ClientPerMessageDeflateFactory(compress_settings={"memLevel": 5})
    server_factory = pmd.ServerPerMessageDeflateFactory(
        server_max_window_bits=12, client_max_window_bits=12, compress_settings={"memLevel": 5}
    )
    answer, server_ext = server_factory.process_request_params(client_factory.get_request_params(), [])
    client_ext = client_factory.process_response_params(answer, [])
    return client_ext, server_ext


def _websockets_roundtrip(sender, receiver, frames):
    return [receiver.decode(sender.encode(frame), max_size=1 << 20).data for frame in frames]


def _websockets_connected():
    try:
        from websockets.client import ClientProtocol as WSClient
        from websockets.server import ServerProtocol as WSServer
        from websockets.uri import parse_uri
    except ImportError as exc:
        pytest.skip(f"websockets too old or missing ({exc})")
    pmd, _, _ = _websockets()
    client = WSClient(
        parse_uri("ws://localhost/"),
        extensions=[pmd.ClientPerMessageDeflateFactory(compress_settings={"memLevel": 5})],
    )
    server = WSServer(
        extensions=[
            pmd.ServerPerMessageDeflateFactory(
                server_max_window_bits=12, client_max_window_bits=12, compress_settings={"memLevel": 5}
            )
        ]
    )
    client.send_request(client.connect())
    for chunk in client.data_to_send():
        server.receive_data(chunk)
    server.send_response(server.accept(server.events_received()[0]))
    for chunk in server.data_to_send():
        client.receive_data(chunk)
    client.events_received()
    assert client.extensions and server.extensions
    return client, server


def _websockets_protocol(client, server, messages):
    send = client.send_text
    for message in messages:
        send(message)
    server.receive_data(b"".join(client.data_to_send()))
    return server.events_received()


# --- benchmarks --------------------------------------------------------------------------


def _describe(benchmark, layer: str, impl: str, order: int, nbytes: int) -> None:
    case = f"{BATCH} chat JSON messages, {layer}"
    benchmark.group = f"deflate | {case}"
    benchmark.extra_info.update(
        kernel="deflate",
        case=case,
        order=order,
        impl=impl,
        baseline="websockets PerMessageDeflate" if layer == "extension" else "websockets ServerProtocol",
        primary="frames",
        frames_per_call=BATCH,
        bytes_per_call=nbytes,
    )


_MESSAGES = chat_messages(BATCH, seed=11)
_PAYLOADS = [m.encode() for m in _MESSAGES]
_NBYTES = sum(map(len, _PAYLOADS))


@pytest.mark.parametrize("impl", ["fastws", "websockets"])
def test_deflate_extension(benchmark, impl):
    """Client compresses, server inflates (a client -> server message stream)."""
    if impl == "fastws":
        client_ext, server_ext = fastws_pair(client_kwargs={"min_size": 0})
        _describe(benchmark, "extension", "fastws PerMessageDeflate", 0, _NBYTES)
        result = benchmark(_fastws_roundtrip, client_ext, server_ext, _PAYLOADS)
        assert result == _PAYLOADS
    else:
        _, Frame, Opcode = _websockets()
        client_ext, server_ext = websockets_pair()
        frames = [Frame(Opcode.TEXT, p) for p in _PAYLOADS]
        _describe(benchmark, "extension", "websockets PerMessageDeflate", 1, _NBYTES)
        result = benchmark(_websockets_roundtrip, client_ext, server_ext, frames)
        assert [bytes(r) for r in result] == _PAYLOADS


@pytest.mark.parametrize("impl", ["fastws", "websockets"])
def test_deflate_protocol(benchmark, impl):
    """Client protocol sends text messages; server protocol turns them into str."""
    if impl == "fastws":
        client, server = _connected(fastws.codec, min_size=0)
        _describe(benchmark, "protocol", f"fastws ServerProtocol ({IMPL})", 0, _NBYTES)
        events = benchmark(_fastws_protocol, client, server, _PAYLOADS)
        assert events == _MESSAGES
    else:
        client, server = _websockets_connected()
        _describe(benchmark, "protocol", "websockets ServerProtocol", 1, _NBYTES)
        events = benchmark(_websockets_protocol, client, server, _PAYLOADS)
        # websockets' sans-I/O events are frames; a text frame's data is still
        # UTF-8 bytes, which its I/O layer decodes (done here too, to match).
        assert [e.data.decode() for e in events] == _MESSAGES


# --- the table of docs/deflate.md ------------------------------------------------------------

#: (label, client factory kwargs, server factory kwargs, client offer or None).
#: The offer is what browsers send unless given.
SETTINGS = [
    ("**fastws default** (server 12/12 bits, memLevel 5, level 6)", {}, {}, None),
    (
        "no limits (15/15 bits, memLevel 8, level 6: zlib's defaults)",
        {"mem_level": 8},
        {"server_max_window_bits": None, "client_max_window_bits": None, "mem_level": 8},
        None,
    ),
    (
        "level 1 (12/12 bits, memLevel 5)",
        {"level": 1},
        {"level": 1},
        None,
    ),
    (
        "small (9/9 bits, memLevel 1, level 1)",
        {"level": 1, "mem_level": 1},
        {"server_max_window_bits": 9, "client_max_window_bits": 9, "level": 1, "mem_level": 1},
        None,
    ),
    (
        "no context takeover both ways (12/12 bits, memLevel 5)",
        {"client_no_context_takeover": True, "server_no_context_takeover": True},
        {},
        None,
    ),
]


def _server_memory(client_kwargs, server_kwargs, message: bytes, connections: int = 200) -> float:
    """Bytes per server connection held by its extension (compressor and
    decompressor), after it sent one message and received one."""
    import gc
    import tracemalloc

    # The first message of a stream does not depend on history: one client
    # extension compresses it for every server connection.
    client_ext, _ = fastws_pair(client_kwargs={**client_kwargs, "min_size": 0}, server_kwargs=server_kwargs)
    incoming, rsv1 = client_ext.encode(message, first=True, fin=True)
    assert rsv1
    factory = ServerPerMessageDeflateFactory(**{**server_kwargs, "min_size": 0})
    offer = ClientPerMessageDeflateFactory(**client_kwargs).offer()
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        keep = []
        for _ in range(connections):
            _, ext = factory.negotiate(offer, [])
            ext.encode(message, first=True, fin=True)
            assert ext.decode(incoming, first=True, fin=True, max_size=None) == message
            keep.append(ext)
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    del keep
    return used / connections


def _websockets_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("websockets")
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _websockets_server_memory(message: bytes, connections: int = 200) -> float:
    """The same for websockets' extension at its defaults."""
    import gc
    import tracemalloc

    pmd, Frame, Opcode = _websockets()
    client_ext, _ = websockets_pair()
    incoming = client_ext.encode(Frame(Opcode.TEXT, message))
    factory = pmd.ServerPerMessageDeflateFactory(
        server_max_window_bits=12, client_max_window_bits=12, compress_settings={"memLevel": 5}
    )
    offer = pmd.ClientPerMessageDeflateFactory().get_request_params()
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        keep = []
        for _ in range(connections):
            _, ext = factory.process_request_params(offer, [])
            ext.encode(Frame(Opcode.TEXT, message))
            assert ext.decode(incoming, max_size=None).data == message
            keep.append(ext)
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    del keep
    return used / connections


def _websockets_ratio_and_time(payloads) -> tuple:
    _, Frame, Opcode = _websockets()
    frames = [Frame(Opcode.TEXT, p) for p in payloads]
    client_ext, server_ext = websockets_pair()
    sent = 0
    for frame in frames:
        data = server_ext.encode(frame)
        sent += len(data.data)
        assert client_ext.decode(data, max_size=None).data == frame.data
    best = float("inf")
    for _ in range(5):
        client_ext, server_ext = websockets_pair()
        start = time.perf_counter()
        _websockets_roundtrip(server_ext, client_ext, frames)
        best = min(best, time.perf_counter() - start)
    return sent / sum(map(len, payloads)), best / len(payloads)


def _ratio_and_time(client_kwargs, server_kwargs, payloads) -> tuple:
    """(compressed / original for the server's messages, seconds per message for
    the server's compress + the client's decompress)."""
    client_ext, server_ext = fastws_pair(
        client_kwargs={**client_kwargs, "min_size": 0}, server_kwargs={**server_kwargs, "min_size": 0}
    )
    sent = 0
    for payload in payloads:
        data, _ = server_ext.encode(payload, first=True, fin=True)
        sent += len(data)
        assert client_ext.decode(data, first=True, fin=True, max_size=None) == payload
    ratio = sent / sum(map(len, payloads))
    best = float("inf")
    for _ in range(5):
        client_ext, server_ext = fastws_pair(
            client_kwargs={**client_kwargs, "min_size": 0}, server_kwargs={**server_kwargs, "min_size": 0}
        )
        start = time.perf_counter()
        _fastws_roundtrip(server_ext, client_ext, payloads)
        best = min(best, time.perf_counter() - start)
    return ratio, best / len(payloads)


def measure_table(count: int = 2000) -> str:
    """The markdown table of docs/deflate.md, measured now."""
    payloads = [m.encode() for m in chat_messages(count)]
    one_kib = json.dumps({"messages": [m for m in chat_messages(8, seed=3)]}).encode()[:1024]
    lines = [
        "| Settings | Memory per connection | Compressed size | Compress + decompress |",
        "|---|--:|--:|--:|",
        "| compression=None | 0 | 100% | 0 |",
    ]
    rows = [
        (label, _server_memory(ckw, skw, one_kib), *_ratio_and_time(ckw, skw, payloads))
        for label, ckw, skw, _ in SETTINGS
    ]
    try:
        rows.insert(
            1,
            (
                f"websockets {_websockets_version()} default (12/12 bits, memLevel 5, level 6)",
                _websockets_server_memory(one_kib),
                *_websockets_ratio_and_time(payloads),
            ),
        )
    except BaseException as exc:  # pytest.skip's exception when websockets is missing
        if type(exc).__name__ != "Skipped":
            raise
    for label, memory, ratio, seconds in rows:
        lines.append(
            f"| {label} | {memory / 1024:.1f} KiB | {ratio * 100:.1f}% | {seconds * 1e6:.1f} µs |"
        )
    return "\n".join(lines)


def main() -> None:  # pragma: no cover - a measuring tool
    import platform
    import zlib

    print(
        f"CPython {platform.python_version()}, zlib {zlib.ZLIB_RUNTIME_VERSION},"
        f" {platform.machine()}; {2000} chat messages of 90-400 bytes"
    )
    print(measure_table())


if __name__ == "__main__":  # pragma: no cover
    main()

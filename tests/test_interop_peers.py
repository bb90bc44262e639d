"""fastws against real peers, in-process, over loopback TCP:

- the ``websockets`` library's client (``websockets.asyncio.client``, 13+) against a fastws server;
- a ``websockets`` server (``websockets.asyncio.server``) with the fastws client;
- aiohttp's client (``ClientSession.ws_connect``) against a fastws server.

Each pairing exchanges text, binary, fragmented messages (both ways where the
peer can send fragments), pings both ways, closes with codes and reasons from
each side, 1 MiB messages (the default max_size of every library involved) and
negotiates subprotocols. Compression is off on both sides (``compression=None``
on fastws and websockets, ``compress=0`` on aiohttp), except in the tests that
check that fastws, with compression off, declines a peer's offer of
permessage-deflate and the connection still works.

A peer that is not installed skips its tests, saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect

import pytest

import fastws
from fastws import CloseCode, ConnectionClosed, ConnectionClosedError

from asyncio_helpers import run, server

STEP = 10.0  # seconds one exchange may take (the run() deadline bounds the test too)
MIB = 1 << 20


def _import(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


ws_client = _import("websockets.asyncio.client")
ws_server = _import("websockets.asyncio.server")
ws_exceptions = _import("websockets.exceptions")
aiohttp = _import("aiohttp")

needs_websockets = pytest.mark.skipif(
    ws_client is None or ws_server is None,
    reason="the websockets library (13 or later, for websockets.asyncio) is not importable:"
    " pip install 'websockets>=13'",
)
needs_aiohttp = pytest.mark.skipif(
    aiohttp is None, reason="aiohttp is not importable: pip install aiohttp"
)


# --- a fastws server that echoes and obeys a few commands ------------------------------


class Seen:
    """What a server saw of one connection."""

    def __init__(self) -> None:
        self.done = asyncio.get_running_loop().create_future()  # (code, reason) received, or None
        self.request = None
        self.messages: list = []


async def fastws_commands(websocket, seen: Seen) -> None:
    seen.request = websocket.request
    try:
        async for message in websocket:
            seen.messages.append(message)
            if message == "cmd:fragments":
                await websocket.send(["frag", "ment", "ed"])
                await websocket.send([b"\x00", b"\x01\x02", b""])
            elif message == "cmd:ping":
                await asyncio.wait_for(await websocket.ping(b"from fastws"), STEP)
                await websocket.send("pong received")
            elif message == "cmd:close":
                await websocket.close(4001, "server bye")
                return
            elif message == "cmd:subprotocol":
                await websocket.send(websocket.subprotocol or "none")
            else:
                await websocket.send(message)
    except ConnectionClosed:
        pass
    finally:
        close = websocket.protocol.close_rcvd
        seen.done.set_result(None if close is None else (int(close.code), close.reason))


@contextlib.asynccontextmanager
async def fastws_server(**options):
    """A fastws server; yields (uri, seen) where ``seen`` is a list of Seen, one per connection."""
    seen: list = []

    async def handler(websocket):
        record = Seen()
        seen.append(record)
        await fastws_commands(websocket, record)

    options.setdefault("subprotocols", ["chat.v1"])
    options.setdefault("compression", None)  # what these tests check: no extension
    async with server(handler, **options) as (_, uri):
        yield uri, seen


# --- the websockets client against a fastws server -------------------------------------


def _ws_connect(uri: str, **options):
    options.setdefault("compression", None)
    options.setdefault("ping_interval", None)
    options.setdefault("open_timeout", STEP)
    options.setdefault("close_timeout", STEP)
    if "proxy" in inspect.signature(ws_client.connect.__init__).parameters:
        options.setdefault("proxy", None)  # websockets 15+ reads proxy settings from the environment
    return ws_client.connect(uri, **options)


async def _ws_recv(ws):
    return await asyncio.wait_for(ws.recv(), STEP)


@needs_websockets
@run
async def test_websockets_client_text_and_binary():
    async with fastws_server() as (uri, seen):
        async with _ws_connect(uri) as ws:
            for message in ["hello", "", "é✓🎉" * 1000, b"\x00\xff" * 100, b""]:
                await ws.send(message)
                assert await _ws_recv(ws) == message
        assert await asyncio.wait_for(seen[0].done, STEP) == (1000, "")
    assert ws.close_code == 1000


@needs_websockets
@run
async def test_websockets_client_fragmented_messages_both_ways():
    async def agen():
        yield "as"
        yield "ync"

    async with fastws_server() as (uri, seen):
        async with _ws_connect(uri) as ws:
            # websockets sends an iterable as one fragmented message.
            await ws.send(["frag", "ment", "ed", " ✓"])
            assert await _ws_recv(ws) == "fragmented ✓"
            await ws.send([b"ab", b"", b"cd"])
            assert await _ws_recv(ws) == b"abcd"
            await ws.send(agen())
            assert await _ws_recv(ws) == "async"
            # fastws sends fragments too.
            await ws.send("cmd:fragments")
            assert await _ws_recv(ws) == "fragmented"
            assert await _ws_recv(ws) == b"\x00\x01\x02"
        assert seen[0].messages[:3] == ["fragmented ✓", b"abcd", "async"]


@needs_websockets
@run
async def test_websockets_client_pings_both_ways():
    async with fastws_server() as (uri, _):
        async with _ws_connect(uri) as ws:
            pong = await ws.ping(b"from websockets")
            latency = await asyncio.wait_for(pong, STEP)
            assert latency >= 0
            await ws.send("cmd:ping")  # fastws pings; websockets answers in recv()
            assert await _ws_recv(ws) == "pong received"


@needs_websockets
@run
async def test_websockets_client_closes_with_a_code_and_reason():
    async with fastws_server() as (uri, seen):
        ws = await _ws_connect(uri)
        await ws.send("hi")
        assert await _ws_recv(ws) == "hi"
        await asyncio.wait_for(ws.close(4000, "client bye"), STEP)
        assert await asyncio.wait_for(seen[0].done, STEP) == (4000, "client bye")
        assert ws.close_code == 4000  # fastws echoed the code


@needs_websockets
@run
async def test_fastws_server_closes_websockets_client_with_a_code_and_reason():
    async with fastws_server() as (uri, _):
        async with _ws_connect(uri) as ws:
            await ws.send("cmd:close")
            with pytest.raises(ws_exceptions.ConnectionClosed) as info:
                await _ws_recv(ws)
            assert info.value.rcvd.code == 4001
            assert info.value.rcvd.reason == "server bye"
            assert ws.close_code == 4001 and ws.close_reason == "server bye"


@needs_websockets
@run
async def test_websockets_client_one_mib_messages():
    async with fastws_server() as (uri, _):
        # Exactly the default max_size of both libraries: accepted both ways.
        async with _ws_connect(uri) as ws:
            big_binary = bytes(range(256)) * (MIB // 256)
            await ws.send(big_binary)
            assert await _ws_recv(ws) == big_binary
            big_text = "é" * (MIB // 2)  # 1 MiB of UTF-8
            await ws.send(big_text)
            assert await _ws_recv(ws) == big_text
            # One byte more is too big for fastws: it fails the connection with 1009.
            await ws.send(big_binary + b"!")
            with pytest.raises(ws_exceptions.ConnectionClosed) as info:
                await _ws_recv(ws)
            assert info.value.rcvd.code == CloseCode.MESSAGE_TOO_BIG


@needs_websockets
@run
async def test_websockets_client_subprotocols():
    async with fastws_server(subprotocols=["chat.v2", "chat.v1"]) as (uri, seen):
        async with _ws_connect(uri, subprotocols=["chat.v1", "chat.v2"]) as ws:
            assert ws.subprotocol == "chat.v2"  # the server's preference
            await ws.send("cmd:subprotocol")
            assert await _ws_recv(ws) == "chat.v2"
        async with _ws_connect(uri, subprotocols=["chat.v1"]) as ws:
            assert ws.subprotocol == "chat.v1"
        # No common subprotocol: fastws selects none, which websockets accepts.
        async with _ws_connect(uri, subprotocols=["other"]) as ws:
            assert ws.subprotocol is None
        assert seen[0].request.headers["Sec-WebSocket-Protocol"] == "chat.v1, chat.v2"


@needs_websockets
@run
async def test_fastws_server_declines_permessage_deflate_from_websockets():
    async with fastws_server() as (uri, seen):
        async with _ws_connect(uri, compression="deflate") as ws:
            assert ws.protocol.extensions == []
            assert "Sec-WebSocket-Extensions" not in ws.response.headers
            for message in ["compressible " * 1000, b"\x00" * 10000]:
                await ws.send(message)
                assert await _ws_recv(ws) == message
        assert "permessage-deflate" in seen[0].request.headers["Sec-WebSocket-Extensions"]


# --- the fastws client against a websockets server -------------------------------------


async def websockets_commands(ws, seen: Seen) -> None:
    seen.request = ws.request
    try:
        async for message in ws:
            seen.messages.append(message)
            if message == "cmd:fragments":
                await ws.send(["frag", "ment", "ed"])
                await ws.send([b"\x00", b"\x01\x02", b""])
            elif message == "cmd:ping":
                await asyncio.wait_for(await ws.ping(b"from websockets"), STEP)
                await ws.send("pong received")
            elif message == "cmd:close":
                await ws.close(4001, "server bye")
                return
            elif message == "cmd:subprotocol":
                await ws.send(ws.subprotocol or "none")
            else:
                await ws.send(message)
    except ws_exceptions.ConnectionClosed:
        pass
    finally:
        code = ws.close_code
        seen.done.set_result(None if code is None else (code, ws.close_reason))


@contextlib.asynccontextmanager
async def websockets_server(**options):
    seen: list = []

    async def handler(ws):
        record = Seen()
        seen.append(record)
        await websockets_commands(ws, record)

    options.setdefault("compression", None)
    options.setdefault("ping_interval", None)
    # (With subprotocols set, a websockets server refuses clients that offer none.)
    async with ws_server.serve(handler, "127.0.0.1", 0, **options) as srv:
        port = srv.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/", seen


def _connect(uri: str, **options):
    options.setdefault("ping_interval", None)
    options.setdefault("compression", None)
    return fastws.connect(uri, **options)


async def _recv(websocket):
    return await asyncio.wait_for(websocket.recv(), STEP)


@needs_websockets
@run
async def test_fastws_client_text_and_binary_with_websockets_server():
    async with websockets_server() as (uri, seen):
        async with _connect(uri) as websocket:
            for message in ["hello", "", "é✓🎉" * 1000, b"\x00\xff" * 100, b""]:
                await websocket.send(message)
                assert await _recv(websocket) == message
        assert await asyncio.wait_for(seen[0].done, STEP) == (1000, "")
    assert websocket.close_code == 1000


@needs_websockets
@run
async def test_fastws_client_fragmented_messages_with_websockets_server():
    async def agen():
        yield b"as"
        yield b"ync"

    async with websockets_server() as (uri, seen):
        async with _connect(uri) as websocket:
            await websocket.send(["frag", "ment", "ed", " ✓"])
            assert await _recv(websocket) == "fragmented ✓"
            await websocket.send(agen())
            assert await _recv(websocket) == b"async"
            await websocket.send("cmd:fragments")
            assert await _recv(websocket) == "fragmented"
            assert await _recv(websocket) == b"\x00\x01\x02"
        assert seen[0].messages[:2] == ["fragmented ✓", b"async"]


@needs_websockets
@run
async def test_fastws_client_pings_both_ways_with_websockets_server():
    async with websockets_server() as (uri, _):
        async with _connect(uri) as websocket:
            assert await asyncio.wait_for(await websocket.ping(b"from fastws"), STEP) >= 0
            await websocket.send("cmd:ping")  # websockets pings; fastws answers by itself
            assert await _recv(websocket) == "pong received"


@needs_websockets
@run
async def test_fastws_client_closes_websockets_server_with_a_code_and_reason():
    async with websockets_server() as (uri, seen):
        websocket = await _connect(uri)
        await websocket.close(4000, "client bye")
        assert await asyncio.wait_for(seen[0].done, STEP) == (4000, "client bye")
        assert websocket.close_code == 4000  # echoed by websockets


@needs_websockets
@run
async def test_websockets_server_closes_fastws_client_with_a_code_and_reason():
    async with websockets_server() as (uri, _):
        async with _connect(uri) as websocket:
            await websocket.send("cmd:close")
            with pytest.raises(ConnectionClosedError) as info:
                await _recv(websocket)
            assert (info.value.code, info.value.reason) == (4001, "server bye")
        assert websocket.close_code == 4001 and websocket.close_reason == "server bye"


@needs_websockets
@run
async def test_fastws_client_one_mib_messages_with_websockets_server():
    async with websockets_server() as (uri, _):
        async with _connect(uri) as websocket:
            big_binary = bytes(range(256)) * (MIB // 256)
            await websocket.send(big_binary)
            assert await _recv(websocket) == big_binary
            big_text = "é" * (MIB // 2)
            await websocket.send(big_text)
            assert await _recv(websocket) == big_text
            # One byte more is too big for websockets: it closes with 1009.
            await websocket.send(big_binary + b"!")
            with pytest.raises(ConnectionClosedError) as info:
                await _recv(websocket)
            assert info.value.code == CloseCode.MESSAGE_TOO_BIG


@needs_websockets
@run
async def test_fastws_client_subprotocols_with_websockets_server():
    async with websockets_server(subprotocols=["chat.v2", "chat.v1"]) as (uri, seen):
        async with _connect(uri, subprotocols=["chat.v1", "chat.v2"]) as websocket:
            assert websocket.subprotocol == "chat.v2"
            await websocket.send("cmd:subprotocol")
            assert await _recv(websocket) == "chat.v2"
        async with _connect(uri, subprotocols=["chat.v1"]) as websocket:
            assert websocket.subprotocol == "chat.v1"
        assert seen[0].request.headers["Sec-WebSocket-Protocol"] == "chat.v1, chat.v2"
        # No common subprotocol: the websockets server refuses with 400.
        with pytest.raises(fastws.InvalidStatus) as info:
            await _connect(uri, subprotocols=["other"])
        assert info.value.status_code == 400


@needs_websockets
@run
async def test_fastws_client_with_a_compressing_websockets_server():
    # The server would compress, but fastws offered nothing: plain frames.
    async with websockets_server(compression="deflate") as (uri, seen):
        async with _connect(uri) as websocket:
            assert "Sec-WebSocket-Extensions" not in websocket.request.headers
            assert "Sec-WebSocket-Extensions" not in websocket.response.headers
            for message in ["compressible " * 1000, b"\x00" * 10000]:
                await websocket.send(message)
                assert await _recv(websocket) == message


# --- aiohttp's client against a fastws server ------------------------------------------


@contextlib.asynccontextmanager
async def aiohttp_connect(uri: str, **options):
    options.setdefault("compress", 0)
    options.setdefault("timeout", aiohttp.ClientWSTimeout(ws_receive=STEP, ws_close=STEP))
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(uri, **options) as ws:
            yield ws


async def _aio_recv(ws):
    msg = await asyncio.wait_for(ws.receive(), STEP)
    if msg.type is aiohttp.WSMsgType.TEXT:
        return msg.data
    if msg.type is aiohttp.WSMsgType.BINARY:
        return bytes(msg.data)
    return msg


async def _aio_send(ws, message):
    if isinstance(message, str):
        await ws.send_str(message)
    else:
        await ws.send_bytes(message)


@needs_aiohttp
@run
async def test_aiohttp_client_text_binary_and_fragments():
    async with fastws_server() as (uri, seen):
        async with aiohttp_connect(uri) as ws:
            for message in ["hello", "", "é✓🎉" * 1000, b"\x00\xff" * 100, b""]:
                await _aio_send(ws, message)
                assert await _aio_recv(ws) == message
            # aiohttp sends no fragments, but reassembles those fastws sends.
            await ws.send_str("cmd:fragments")
            assert await _aio_recv(ws) == "fragmented"
            assert await _aio_recv(ws) == b"\x00\x01\x02"
        assert await asyncio.wait_for(seen[0].done, STEP) == (1000, "")
        assert ws.close_code == 1000


@needs_aiohttp
@run
async def test_aiohttp_client_pings_both_ways():
    async with fastws_server() as (uri, _):
        # autoping=False: aiohttp hands us the pong of its own ping.
        async with aiohttp_connect(uri, autoping=False) as ws:
            await ws.ping(b"from aiohttp")
            msg = await _aio_recv(ws)
            assert msg.type is aiohttp.WSMsgType.PONG and msg.data == b"from aiohttp"
        # autoping=True (the default): aiohttp answers fastws' ping by itself.
        async with aiohttp_connect(uri) as ws:
            await ws.send_str("cmd:ping")
            assert await _aio_recv(ws) == "pong received"


@needs_aiohttp
@run
async def test_aiohttp_client_closes_with_a_code_and_reason():
    async with fastws_server() as (uri, seen):
        async with aiohttp_connect(uri) as ws:
            await ws.send_str("hi")
            assert await _aio_recv(ws) == "hi"
            await asyncio.wait_for(ws.close(code=4000, message=b"client bye"), STEP)
        assert await asyncio.wait_for(seen[0].done, STEP) == (4000, "client bye")


@needs_aiohttp
@run
async def test_fastws_server_closes_aiohttp_client_with_a_code_and_reason():
    async with fastws_server() as (uri, _):
        async with aiohttp_connect(uri) as ws:
            await ws.send_str("cmd:close")
            msg = await _aio_recv(ws)
            assert msg.type is aiohttp.WSMsgType.CLOSE
            assert (msg.data, msg.extra) == (4001, "server bye")
            assert ws.close_code == 4001


@needs_aiohttp
@run
async def test_aiohttp_client_one_mib_messages():
    async with fastws_server() as (uri, _):
        async with aiohttp_connect(uri) as ws:
            big_binary = bytes(range(256)) * (MIB // 256)
            await ws.send_bytes(big_binary)
            assert await _aio_recv(ws) == big_binary
            big_text = "é" * (MIB // 2)
            await ws.send_str(big_text)
            assert await _aio_recv(ws) == big_text
            await ws.send_bytes(big_binary + b"!")
            msg = await _aio_recv(ws)
            assert msg.type is aiohttp.WSMsgType.CLOSE
            assert msg.data == CloseCode.MESSAGE_TOO_BIG


@needs_aiohttp
@run
async def test_aiohttp_client_subprotocols():
    async with fastws_server(subprotocols=["chat.v2", "chat.v1"]) as (uri, seen):
        async with aiohttp_connect(uri, protocols=("chat.v1", "chat.v2")) as ws:
            assert ws.protocol == "chat.v2"
            await ws.send_str("cmd:subprotocol")
            assert await _aio_recv(ws) == "chat.v2"
        async with aiohttp_connect(uri, protocols=("other",)) as ws:
            assert ws.protocol is None  # none in common: none selected
        assert seen[0].request.headers["Sec-WebSocket-Protocol"] == "chat.v1,chat.v2"  # aiohttp's spelling


@needs_aiohttp
@run
async def test_fastws_server_declines_permessage_deflate_from_aiohttp():
    async with fastws_server() as (uri, seen):
        async with aiohttp_connect(uri, compress=15) as ws:
            assert ws.compress == 0  # declined: aiohttp sends plain frames
            for message in ["compressible " * 1000, b"\x00" * 10000]:
                await _aio_send(ws, message)
                assert await _aio_recv(ws) == message
        assert "permessage-deflate" in seen[0].request.headers["Sec-WebSocket-Extensions"]


# --- permessage-deflate with real peers ------------------------------------------------

CHAT = '{"user": "ada", "room": "general", "text": "hello, hello, hello again"}' * 20


@needs_websockets
@run
async def test_deflate_websockets_client_to_fastws_server():
    async with fastws_server(compression="deflate") as (uri, seen):
        async with ws_client.connect(uri, compression="deflate") as client:
            assert client.response.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
            for message in (CHAT, CHAT.encode(), "short", CHAT * 10):
                await client.send(message)
                assert await asyncio.wait_for(client.recv(), STEP) == message
            await client.send(["frag", CHAT, "ment"])
            assert await asyncio.wait_for(client.recv(), STEP) == "frag" + CHAT + "ment"
        await asyncio.wait_for(seen[0].done, STEP)


@needs_websockets
@run
async def test_deflate_fastws_client_to_websockets_server():
    async def echo(connection):
        async for message in connection:
            await connection.send(message)

    async with ws_server.serve(echo, "127.0.0.1", 0, compression="deflate") as peer:
        port = peer.sockets[0].getsockname()[1]
        async with fastws.connect(f"ws://127.0.0.1:{port}/") as websocket:
            assert [type(e).__name__ for e in websocket.protocol.extensions] == ["PerMessageDeflate"]
            for message in (CHAT, CHAT.encode(), "short", CHAT * 10):
                await websocket.send(message)
                assert await asyncio.wait_for(websocket.recv(), STEP) == message
            await websocket.send(["frag", CHAT, "ment"])
            assert await asyncio.wait_for(websocket.recv(), STEP) == "frag" + CHAT + "ment"


@needs_aiohttp
@run
async def test_deflate_aiohttp_client_to_fastws_server():
    async with fastws_server(compression="deflate") as (uri, seen):
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(uri, compress=15) as client:
                assert client.compress == 12  # negotiated, with our server window of 12 bits
                for message in (CHAT, "short", CHAT * 10):
                    await client.send_str(message)
                    assert (await client.receive(timeout=STEP)).data == message
                await client.send_bytes(CHAT.encode())
                assert (await client.receive(timeout=STEP)).data == CHAT.encode()

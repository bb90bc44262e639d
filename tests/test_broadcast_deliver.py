"""broadcast()'s two ways through deliver(), in one call over connections in
every state at once: the common case (no extension: the prebuilt frame goes
straight to the transport) and the others (permessage-deflate negotiated, in
the middle of a fragmented message, over the write limit, closed), each getting
what it got before deliver() had a common case of its own."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Tuple

import pytest

import fastws
import fastws.asyncio.broadcasting
from fastws.asyncio.broadcasting import deliver, deliver_many, message_opcode

from asyncio_helpers import run, server


async def connections_in_every_state(
    uri: str, opened: Dict[str, Any], all_opened: asyncio.Event
) -> Tuple[Dict[str, Any], List[asyncio.Future]]:
    """Clients named by the state their server-side connection is put in."""
    names = ("plain", "deflate", "fragmenting", "over limit", "closed")
    clients = {}
    for name in names:
        compression = "deflate" if name == "deflate" else None
        clients[name] = await fastws.connect(uri, compression=compression, max_queue=None)
    await all_opened.wait()
    # The server-side connection of each client, matched by port.
    by_port = {conn.remote_address[1]: conn for conn in opened.values()}
    side = {name: by_port[client.local_address[1]] for name, client in clients.items()}

    async def endless():
        yield "first fragment"
        await asyncio.Event().wait()

    tasks = [asyncio.ensure_future(side["fragmenting"].send(endless()))]
    await asyncio.sleep(0)  # the task's first step: the first fragment is written
    assert not side["fragmenting"].protocol.can_send_frame()
    side["over limit"].write_limit = -1  # as if its buffer were above the limit
    await clients["closed"].close()
    await side["closed"].wait_closed()
    return {"clients": clients, "side": side}, tasks


@pytest.mark.parametrize(
    "message, expected",
    [
        ("text", "text"),
        (b"\x00\x01 bytes", b"\x00\x01 bytes"),
        (bytearray(b"bytearray"), b"bytearray"),
        (memoryview(b"xmemoryview")[1:], b"memoryview"),
        ("é" * 200, "é" * 200),  # a 2-byte length
    ],
)
@run
async def test_deliver_over_connections_in_every_state(message: Any, expected: Any) -> None:
    opened: Dict[int, Any] = {}
    all_opened = asyncio.Event()

    async def handler(websocket: Any) -> None:
        opened[id(websocket)] = websocket
        if len(opened) == 5:
            all_opened.set()
        await websocket.wait_closed()

    async with server(handler) as (_, uri):
        state, tasks = await connections_in_every_state(uri, opened, all_opened)
        clients, side = state["clients"], state["side"]
        assert side["deflate"].protocol.extensions  # negotiated: the other way
        assert not side["plain"].protocol.extensions
        skipped: List[Tuple[Any, Exception]] = []
        written = deliver(
            list(side.values()), message_opcode(message, None), message, lambda c, e: skipped.append((c, e))
        )
        assert written == 2
        assert [(c, type(e).__name__) for c, e in skipped] == [
            (side["fragmenting"], "ConcurrencyError"),
            (side["over limit"], "RuntimeError"),
        ]
        assert "fragmented" in str(skipped[0][1])
        assert "not reading fast enough" in str(skipped[1][1])
        for name in ("plain", "deflate"):
            assert await clients[name].recv() == expected
        # The connections skipped are unharmed: they get the next one.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        side["over limit"].write_limit = 32768
        fastws.broadcast(side.values(), "next")
        for name in ("plain", "deflate", "over limit"):
            assert await clients[name].recv() == "next"
        for client in clients.values():
            await client.close()


@run
async def test_broadcast_many_writes_every_message_in_order_or_none() -> None:
    opened: Dict[int, Any] = {}
    all_opened = asyncio.Event()

    async def handler(websocket: Any) -> None:
        opened[id(websocket)] = websocket
        if len(opened) == 5:
            all_opened.set()
        await websocket.wait_closed()

    async with server(handler) as (_, uri):
        state, tasks = await connections_in_every_state(uri, opened, all_opened)
        clients, side = state["clients"], state["side"]
        messages = ["one", b"two", bytearray(b"three"), "four" * 100]
        with pytest.raises(Exception) as caught:
            fastws.asyncio.broadcasting.broadcast_many(side.values(), messages, raise_exceptions=True)
        reasons = sorted(str(e) for e in caught.value.exceptions)  # type: ignore[attr-defined]
        assert len(reasons) == 2
        assert "fragmented" in reasons[0] and "not reading fast enough" in reasons[1]
        for name in ("plain", "deflate"):
            assert [await clients[name].recv() for _ in messages] == ["one", b"two", b"three", "four" * 100]
        # text= applies to every message, as broadcast()'s does.
        fastws.asyncio.broadcasting.broadcast_many([side["plain"]], [b"a", b"b"], text=True)
        assert [await clients["plain"].recv() for _ in range(2)] == ["a", "b"]
        with pytest.raises(TypeError, match="message must be str or bytes-like, not int"):
            fastws.asyncio.broadcasting.broadcast_many([side["plain"]], ["fine", 3])  # type: ignore[list-item]
        assert deliver_many(side.values(), [], lambda c, e: None) == 0
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # From clients: each connection masks its own frames.
        fastws.asyncio.broadcasting.broadcast_many([clients["plain"], clients["deflate"]], ["x", b"y"])
        for name in ("plain", "deflate"):
            assert [await side[name].recv() for _ in range(2)] == ["x", b"y"]
        for client in clients.values():
            await client.close()

"""Helpers for the asyncio tests: run a coroutine with a deadline, start a server
on a free loopback port, talk raw TCP."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os

import fastws

#: Every asyncio test finishes within this, or fails (never hangs CI).
TEST_TIMEOUT = 20.0


def run(coro_fn):
    """Decorator: run an ``async def test_...`` on a fresh event loop, bounded in time.
    With FASTWS_TEST_UVLOOP=1 (and uvloop installed), on uvloop."""

    @functools.wraps(coro_fn)
    def wrapper(*args, **kwargs):
        async def bounded():
            return await asyncio.wait_for(coro_fn(*args, **kwargs), TEST_TIMEOUT)

        if os.environ.get("FASTWS_TEST_UVLOOP") == "1":
            import uvloop

            return uvloop.run(bounded())
        return asyncio.run(bounded())

    return wrapper


@contextlib.asynccontextmanager
async def server(handler, **options):
    """A fastws server on 127.0.0.1 and a free port; yields (server, "ws://..." uri)."""
    options.setdefault("ping_interval", None)
    async with fastws.serve(handler, "127.0.0.1", 0, **options) as srv:
        port = srv.sockets[0].getsockname()[1]
        yield srv, f"ws://127.0.0.1:{port}/"


@contextlib.asynccontextmanager
async def listener_server(factory, **options):
    options.setdefault("ping_interval", None)
    async with fastws.serve_listener(factory, "127.0.0.1", 0, **options) as srv:
        port = srv.sockets[0].getsockname()[1]
        yield srv, f"ws://127.0.0.1:{port}/"


def port_of(uri: str) -> int:
    return int(uri.rsplit(":", 1)[1].strip("/"))


HANDSHAKE = (
    b"GET / HTTP/1.1\r\n"
    b"Host: 127.0.0.1\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)


async def raw_client(uri: str, handshake: bytes = HANDSHAKE):
    """A TCP connection that sent ``handshake`` and read the response head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(uri))
    if handshake:
        writer.write(handshake)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def read_frame(reader: asyncio.StreamReader):
    """Read one unmasked frame from a server: (opcode, fin, payload)."""
    b0, b1 = await reader.readexactly(2)
    length = b1 & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    payload = await reader.readexactly(length)
    return b0 & 0x0F, bool(b0 & 0x80), payload

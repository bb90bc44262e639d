"""Behind nginx, as docs/deployment.md configures it: a real nginx (Debian's
``nginx-light``, which .ci/run installs) started on a free loopback port with
the guide's ``location`` block, in front of fastws servers on a TCP port and on
a Unix socket. Clients on asyncio and on threads (fastws's and websockets')
talk through it; the server sees the client's address in X-Forwarded-For, the
Origin passes unchanged, and a request nginx sends without the upgrade headers
is refused as the guide says."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
from contextlib import contextmanager
from typing import Iterator

import pytest
import websockets

import fastws
from fastws.exceptions import InvalidStatus
from fastws.sync.client import connect as sync_connect

from asyncio_helpers import run
from nginx_helpers import (
    CONNECTION_UPGRADE_MAP,
    WEBSOCKET_PROXYING,
    free_port,
    require_nginx,
    running_nginx,
)

require_nginx()

# docs/deployment.md's location block, in front of a TCP port and a Unix socket.
HTTP = """
upstream fastws_tcp {{ server 127.0.0.1:{tcp_port}; }}
upstream fastws_unix {{ server unix:{sock}; }}

server {{
    listen 127.0.0.1:{port};
    location /ws {{
        proxy_pass http://fastws_tcp;
        {proxying}
    }}
    location /unix {{
        proxy_pass http://fastws_unix;
        {proxying}
    }}
    # What the guide warns against: HTTP/1.0 and no upgrade headers.
    location /naive {{
        proxy_pass http://fastws_tcp;
    }}
}}
"""


@contextmanager
def nginx(tcp_port: int, sock: str) -> Iterator[int]:
    """nginx on a free loopback port; stopped (and waited for) at the end."""
    port = free_port()
    http = CONNECTION_UPGRADE_MAP + HTTP.format(
        port=port, tcp_port=tcp_port, sock=sock, proxying=WEBSOCKET_PROXYING
    )
    with running_nginx(http, port):
        yield port


async def echo_with_details(websocket):
    headers = websocket.request.headers
    await websocket.send(
        f"{websocket.request.path} xff={headers.get('X-Forwarded-For')}"
        f" origin={headers.get('Origin')} proto={headers.get('X-Forwarded-Proto')}"
    )
    async for message in websocket:
        await websocket.send(message)


@pytest.fixture
def servers():
    """A fastws server on a TCP port and one on a Unix socket, in a thread's
    event loop, and nginx in front of both."""
    loop = asyncio.new_event_loop()
    directory = tempfile.mkdtemp()
    path = os.path.join(directory, "ws.sock")
    tcp_port = free_port()

    async def start():
        tcp = await fastws.serve(echo_with_details, "127.0.0.1", tcp_port)
        unix = await fastws.unix_serve(echo_with_details, path)
        return tcp, unix

    ready = threading.Event()
    started = {}

    def run_loop():
        asyncio.set_event_loop(loop)
        started["servers"] = loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run_loop, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        with nginx(tcp_port, path) as port:
            yield port
    finally:

        async def stop():
            for server in started["servers"]:
                server.close()
                await server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("location", ["/ws", "/unix"])
@run
async def test_asyncio_client_through_nginx(servers, location):
    uri = f"ws://127.0.0.1:{servers}{location}?room=1"
    async with fastws.connect(uri, origin="https://example.com") as websocket:
        first = await websocket.recv()
        assert first.startswith(f"{location}?room=1 xff=127.0.0.1 origin=https://example.com")
        for message in ("hello", b"\x00\xff", "é" * 1000, b"x" * 200_000):
            await websocket.send(message)
            assert await websocket.recv() == message
        pong_waiter = await websocket.ping()
        assert await asyncio.wait_for(pong_waiter, 5) >= 0
        await websocket.close(4000, "done")
    assert websocket.close_code == 4000 and websocket.close_reason == "done"


@run
async def test_websockets_client_through_nginx(servers):
    async with websockets.connect(f"ws://127.0.0.1:{servers}/ws") as websocket:
        assert (await websocket.recv()).endswith("proto=http")
        await websocket.send("via websockets")
        assert await websocket.recv() == "via websockets"


def test_sync_client_through_nginx(servers):
    with sync_connect(f"ws://127.0.0.1:{servers}/unix") as websocket:
        assert websocket.recv(timeout=5).startswith("/unix xff=127.0.0.1")
        websocket.send("sync")
        assert websocket.recv(timeout=5) == "sync"


@run
async def test_a_proxy_without_the_upgrade_headers_is_refused(servers):
    """nginx's defaults (HTTP/1.0 upstream, hop-by-hop headers dropped) break
    the handshake with the status the deployment guide names."""
    with pytest.raises(InvalidStatus) as caught:
        await fastws.connect(f"ws://127.0.0.1:{servers}/naive")
    assert caught.value.response.status_code == 400

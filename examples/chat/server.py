#!/usr/bin/env python
"""A chat room in one process: the page over plain HTTP on ``/``, the WebSocket
on ``/ws`` of the same port, and every message broadcast to everyone connected.

    python examples/chat/server.py [PORT]       # PORT defaults to 8000

then open http://localhost:8000/ in a few browser tabs. Ctrl-C stops it.

The page is answered from the ``process_request`` hook, which sees every HTTP
request before the WebSocket handshake: returning a Response sends it instead of
the handshake, returning None lets the handshake go on.
"""

import asyncio
import sys
from pathlib import Path

import fastws
from fastws import Headers, Response

PAGE = (Path(__file__).parent / "index.html").read_bytes()
CLIENTS = set()  # the WebSocket connections in the room


def process_request(connection, request):
    if request.path == "/ws":
        return None  # go on with the WebSocket handshake
    if request.path in ("/", "/index.html"):
        return Response(
            200,
            headers=Headers({"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache"}),
            body=PAGE,
        )
    return connection.respond(404, "Not found\n")


async def chat(websocket):
    CLIENTS.add(websocket)
    try:
        async for message in websocket:
            # One frame built, written to every connection; a connection that
            # does not keep up is skipped rather than slowing the room down.
            fastws.broadcast(CLIENTS, message)
    finally:
        CLIENTS.discard(websocket)


async def main(port=8000):
    async with fastws.serve(chat, "localhost", port, process_request=process_request):
        print(f"chat room on http://localhost:{port}/", flush=True)
        await asyncio.Future()  # run forever


if __name__ == "__main__":
    try:
        asyncio.run(main(*map(int, sys.argv[1:2])))
    except KeyboardInterrupt:
        pass

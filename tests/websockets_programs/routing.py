"""Routing on request.path, a health check answered in process_request, a
header added in process_response, and a policy-violation close."""

import asyncio
import http
import urllib.request

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosedError


async def handler(websocket):
    if websocket.request.path == "/echo":
        async for message in websocket:
            await websocket.send(message)
    elif websocket.request.path == "/clock":
        await websocket.send("tick")
    else:
        await websocket.close(1008, "unknown path")


def health_check(connection, request):
    if request.path == "/healthz":
        return connection.respond(http.HTTPStatus.OK, "OK\n")


def add_header(connection, request, response):
    response.headers["X-Served-By"] = "routing example"


def get(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


async def main():
    async with serve(
        handler, "127.0.0.1", 0, process_request=health_check, process_response=add_header
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(await asyncio.to_thread(get, f"http://127.0.0.1:{port}/healthz"))
        async with connect(f"ws://127.0.0.1:{port}/echo") as websocket:
            print(websocket.response.headers["X-Served-By"])
            await websocket.send("ping")
            print(await websocket.recv())
        async with connect(f"ws://127.0.0.1:{port}/clock") as websocket:
            print(await websocket.recv())
        async with connect(f"ws://127.0.0.1:{port}/nowhere") as websocket:
            try:
                await websocket.recv()
            except ConnectionClosedError as exc:
                print(exc.rcvd.code, exc.rcvd.reason)


asyncio.run(main())

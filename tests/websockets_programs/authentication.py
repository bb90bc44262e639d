"""websockets' authentication how-to: HTTP Basic auth with basic_auth, and a
token in the query string checked in process_request."""

import asyncio
import http
import urllib.parse

from websockets.asyncio.client import connect
from websockets.asyncio.server import basic_auth, serve
from websockets.exceptions import InvalidStatus


async def hello(websocket):
    await websocket.send(f"Hello {websocket.username}!")


async def check_credentials(username, password):
    return password == f"token-{username}"


def query_param_auth(connection, request):
    token = urllib.parse.parse_qs(urllib.parse.urlparse(request.path).query).get("token")
    if token != ["sesame"]:
        return connection.respond(http.HTTPStatus.UNAUTHORIZED, "Invalid token\n")
    connection.username = "query"


async def try_connect(uri):
    try:
        async with connect(uri) as websocket:
            print(await websocket.recv())
    except InvalidStatus as exc:
        print(exc.response.status_code, exc.response.headers.get("WWW-Authenticate"))


async def main():
    auth = basic_auth(realm="example", credentials=("alice", "s3cret"))
    async with serve(hello, "127.0.0.1", 0, process_request=auth) as server:
        port = server.sockets[0].getsockname()[1]
        await try_connect(f"ws://alice:s3cret@127.0.0.1:{port}/")
        await try_connect(f"ws://alice:wrong@127.0.0.1:{port}/")
        await try_connect(f"ws://127.0.0.1:{port}/")
    auth = basic_auth(check_credentials=check_credentials)
    async with serve(hello, "127.0.0.1", 0, process_request=auth) as server:
        port = server.sockets[0].getsockname()[1]
        await try_connect(f"ws://bob:token-bob@127.0.0.1:{port}/")
        await try_connect(f"ws://bob:token-eve@127.0.0.1:{port}/")
    async with serve(hello, "127.0.0.1", 0, process_request=query_param_auth) as server:
        port = server.sockets[0].getsockname()[1]
        await try_connect(f"ws://127.0.0.1:{port}/?token=sesame")
        await try_connect(f"ws://127.0.0.1:{port}/?token=guess")


asyncio.run(main())

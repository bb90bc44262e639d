"""wss:// with a certificate from a private CA, asyncio and sync clients."""

import asyncio
import ssl

import trustme
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.sync.client import connect as sync_connect

ca = trustme.CA()
server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ca.issue_cert("localhost").configure_cert(server_context)
client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ca.configure_trust(client_context)


async def hello(websocket):
    await websocket.send(f"secure: {websocket.request.path}")


def sync_client(uri):
    with sync_connect(uri, ssl=client_context) as websocket:
        print(websocket.recv())


async def main():
    async with serve(hello, "localhost", 0, ssl=server_context) as server:
        uri = f"wss://localhost:{server.sockets[0].getsockname()[1]}"
        async with connect(uri + "/asyncio", ssl=client_context) as websocket:
            print(await websocket.recv())
        await asyncio.to_thread(sync_client, uri + "/sync")


asyncio.run(main())

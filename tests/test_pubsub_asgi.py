"""fastws.PubSub with ASGI apps: a Starlette endpoint served by uvicorn on
fastws's backend (``--ws fastws.uvicorn:WebSocketProtocol``) subscribes
Starlette's ``WebSocket`` itself; two uvicorn servers, each with its own
PubSub on one Redis, stand for two worker processes."""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator, Dict, List

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from test_pubsub_redis import STREAM, close_promptly, receive, wait_until

import fastws

from asyncio_helpers import run
from redis_helpers import RedisServer, redis_available
from uvicorn_helpers import BACKENDS, UvicornServer, uvicorn_server

pytestmark = pytest.mark.skipif(not redis_available(), reason="redis-server is not installed")


def chat(pubsub: fastws.PubSub, errors: List[str]) -> Starlette:
    """A chat app: ``/{room}`` subscribes the WebSocket to ``room`` and
    publishes what the client sends there (text as text, bytes as bytes)."""

    async def room(websocket: WebSocket) -> None:
        topic = websocket.path_params["room"]
        await websocket.accept()
        try:
            pubsub.subscribe(websocket, topic)
        except TypeError as exc:
            errors.append(str(exc))
            await websocket.close(1011)
            return
        await websocket.send_text("subscribed")
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") is not None:
                    await pubsub.publish(topic, message["text"])
                else:
                    await pubsub.publish(topic, message["bytes"])
        except WebSocketDisconnect:
            pass

    return Starlette(routes=[WebSocketRoute("/{room}", room)])


@contextlib.asynccontextmanager
async def worker(url: str, backend: str = "fastws") -> AsyncIterator[Dict[str, Any]]:
    """A PubSub on ``url`` and a uvicorn server running the chat app with it."""
    pubsub = fastws.PubSub(url, stream=STREAM)
    errors: List[str] = []
    await pubsub.start()
    try:
        async with uvicorn_server(chat(pubsub, errors), ws=BACKENDS[backend], log_config=None) as server:
            yield {"pubsub": pubsub, "server": server, "errors": errors}
    finally:
        await close_promptly(pubsub)


async def join(stack: contextlib.AsyncExitStack, server: UvicornServer, room: str) -> Any:
    client = await stack.enter_async_context(fastws.connect(f"{server.uri}/{room}", ping_interval=None))
    assert await receive(client, 1) == ["subscribed"]
    return client


@run
async def test_starlette_websockets_subscribed_on_two_uvicorn_workers(redis_server: RedisServer) -> None:
    async with worker(redis_server.url) as one, worker(redis_server.url) as two:
        async with contextlib.AsyncExitStack() as stack:
            alice = await join(stack, one["server"], "room")
            bob = await join(stack, two["server"], "room")
            carol = await join(stack, two["server"], "lobby")
            assert len(one["pubsub"].subscribers("room")) == len(two["pubsub"].subscribers("room")) == 1
            # What a client sends, its app publishes: every client in the room gets it.
            await alice.send("hello from alice")
            assert [await receive(c, 1) for c in (alice, bob)] == [["hello from alice"]] * 2
            await bob.send(b"\x00bytes from bob")
            assert [await receive(c, 1) for c in (alice, bob)] == [[b"\x00bytes from bob"]] * 2
            await one["pubsub"].publish("room", "from the app")
            await two["pubsub"].publish("lobby", "lobby only")
            await one["pubsub"].publish("room", b"also from the app", text=True)
            for client in (alice, bob):
                assert await receive(client, 2) == ["from the app", "also from the app"]
            assert await receive(carol, 1) == ["lobby only"]
            # A client that leaves is out of the room once the server sees it go.
            await bob.close()
            await wait_until(lambda: not two["pubsub"].subscribers("room"), "bob to leave the room")
            assert two["pubsub"].topics() == frozenset({"lobby"})
            await alice.send("after bob left")
            assert await receive(alice, 1) == ["after bob left"]
        assert one["errors"] == two["errors"] == []


@run
async def test_a_websocket_of_another_uvicorn_backend_cannot_subscribe(redis_server: RedisServer) -> None:
    async with worker(redis_server.url, backend="websockets-sansio") as one:
        async with contextlib.AsyncExitStack() as stack:
            client = await stack.enter_async_context(fastws.connect(f"{one['server'].uri}/room", ping_interval=None))
            with pytest.raises(fastws.ConnectionClosed):
                await receive(client, 1)
            assert client.close_code == 1011
        assert one["errors"] == [
            (
                "this ASGI WebSocket was not made by fastws: PubSub needs the app to run on"
                " uvicorn --ws fastws.uvicorn:WebSocketProtocol"
            )
        ]

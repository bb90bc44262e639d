"""The chat server of tests/test_deployment.py, run by ``python -m fastws run
deployment_app:chat --workers 2 --pubsub redis://...``: every connection joins
one room, every message it sends goes to the room (through Redis, to every
worker), and ``whoami`` is answered, to the sender only, with the worker's pid and the
scheme the client used to reach the proxy.

Joining happens before the first message is read, so a client that got its
``whoami`` answer knows it is in the room."""

from __future__ import annotations

import os

import fastws

ROOM = "room"
WHOAMI = "whoami"


async def chat(websocket: fastws.ServerConnection) -> None:
    pubsub = fastws.current_pubsub()
    pubsub.subscribe(websocket, ROOM)
    async for message in websocket:
        if message == WHOAMI:
            # X-Forwarded-Proto: how the client reached nginx.
            proto = websocket.request.headers.get("X-Forwarded-Proto")
            await websocket.send(f"pid {os.getpid()} {proto}")
        else:
            await pubsub.publish(ROOM, message)

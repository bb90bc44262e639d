"""A chat room as a FastAPI app, its WebSocket served by fastws through uvicorn.

From the repository root:

    uvicorn examples.fastapi_chat.app:app --ws fastws.uvicorn:WebSocketProtocol
    python -m examples.fastapi_chat.app [PORT]      # the same, PORT defaults to 8000

then open http://localhost:8000/ in a few browser tabs. Ctrl-C stops it.

``GET /`` serves the page, ``index.html`` next to this file. The WebSocket on
``/ws?name=...`` joins the room: every message a member sends goes to every
member, as ``name: message``, and the room says when someone joins or leaves.
A missing or empty name is refused before the handshake completes: the
dependency raises ``WebSocketException``, FastAPI closes the WebSocket before
accepting it, and the server answers the upgrade request with HTTP 403.

Nothing here is specific to fastws: the same app runs on uvicorn's own
WebSocket backends; ``--ws fastws.uvicorn:WebSocketProtocol`` is the only change.
"""

import sys
from pathlib import Path
from typing import Annotated, Dict, Optional

from fastapi import Depends, FastAPI, WebSocket, WebSocketDisconnect, WebSocketException, status
from fastapi.responses import FileResponse

PAGE = Path(__file__).with_name("index.html")

app = FastAPI(title="fastws chat")


class ChatRoom:
    """The members connected, each with its name."""

    def __init__(self) -> None:
        self.members: Dict[WebSocket, str] = {}

    async def join(self, websocket: WebSocket, name: str) -> None:
        await websocket.accept()
        self.members[websocket] = name
        await self.broadcast(f"* {name} joined")

    async def leave(self, websocket: WebSocket) -> None:
        name = self.members.pop(websocket, None)
        if name is not None:
            await self.broadcast(f"* {name} left")

    async def broadcast(self, text: str) -> None:
        for websocket in list(self.members):
            try:
                await websocket.send_text(text)
            except (WebSocketDisconnect, RuntimeError):
                # That member is gone (its own handler is about to see it and
                # say so): drop it and go on with the others.
                self.members.pop(websocket, None)


room = ChatRoom()


def member_name(name: Optional[str] = None) -> str:
    """The ``name`` query parameter, required and not blank. Raising before
    ``accept()`` closes the WebSocket unaccepted: the client gets HTTP 403."""
    if name is None or not name.strip():
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason="a name is required")
    return name.strip()


@app.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(PAGE, media_type="text/html; charset=utf-8")


@app.websocket("/ws")
async def chat(websocket: WebSocket, name: Annotated[str, Depends(member_name)]) -> None:
    await room.join(websocket, name)
    try:
        while True:
            text = await websocket.receive_text()
            await room.broadcast(f"{name}: {text}")
    except WebSocketDisconnect:
        await room.leave(websocket)


def main(port: int = 8000) -> None:
    import uvicorn

    from fastws.uvicorn import WebSocketProtocol

    uvicorn.run(app, host="127.0.0.1", port=port, ws=WebSocketProtocol)


if __name__ == "__main__":
    main(*map(int, sys.argv[1:2]))

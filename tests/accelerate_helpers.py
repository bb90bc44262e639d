"""Real client/server exchanges for the fastws.accelerate tests.

Each ``run_<library>()`` starts a server of that library on a free port of
127.0.0.1, connects a client of the same library, and:

1. sends a fragmented text message, a fragmented binary message and a large
   unfragmented binary message (masked by the client, unmasked by the server),
   which the server echoes (as fragments where the library can send them);
2. sends a text frame whose payload is invalid UTF-8 (a surrogate at byte 4),
   which the server must reject.

It returns a summary: the echoed messages as the client reassembled them, and
what the rejection looked like (close code and reason, or how the connection
ended). The tests compare the summary patched and unpatched. Everything runs
under a timeout. ``python -m tests.accelerate_helpers LIB [patch]`` prints the
summary as JSON (for runs in a subprocess with another environment).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import sys
import threading
from typing import Any, Dict, List

TIMEOUT = 10.0

TEXT_PARTS = ["Hello ", "wörld ", "€" * 3000, "𝄞!"]
BINARY_PARTS = [random.Random(7).randbytes(70_000), b"\x00\xff" * 5]
LARGE = random.Random(8).randbytes(300_000)
INVALID = b"abcd\xed\xa0\x80"  # a surrogate: the DFA rejects at index 5 (\xa0)

EXPECTED = ["".join(TEXT_PARTS), b"".join(BINARY_PARTS), LARGE]


def summary(messages: List[Any], rejection: Any) -> Dict[str, Any]:
    return {"messages": messages, "rejection": rejection}


def _invalid_frame(masked: bool = True) -> bytes:
    from fastws import Opcode, build_frame

    return build_frame(Opcode.TEXT, INVALID, mask=masked or None)


# --- wsproto (sans-I/O, over real sockets, server in a thread) ---------------------


def run_wsproto() -> Dict[str, Any]:
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import (
        AcceptConnection,
        BytesMessage,
        CloseConnection,
        Message,
        Request,
        TextMessage,
    )

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    port = listener.getsockname()[1]
    server_log: List[Any] = []

    def serve() -> None:
        conn, _ = listener.accept()
        conn.settimeout(TIMEOUT)
        ws = WSConnection(ConnectionType.SERVER)
        pieces: List[Any] = []
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                ws.receive_data(data)
                for event in ws.events():
                    if isinstance(event, Request):
                        conn.sendall(ws.send(AcceptConnection()))
                    elif isinstance(event, Message):
                        pieces.append(event.data)
                        if event.message_finished:
                            whole = ("" if isinstance(event, TextMessage) else b"").join(pieces)
                            pieces = []
                            half = len(whole) // 2
                            conn.sendall(
                                ws.send(Message(data=whole[:half], message_finished=False))
                                + ws.send(Message(data=whole[half:], message_finished=True))
                            )
                    elif isinstance(event, CloseConnection):
                        server_log.append((event.code, event.reason))
                        conn.sendall(ws.send(CloseConnection(code=event.code, reason=event.reason)))
                        return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = WSConnection(ConnectionType.CLIENT)
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.sendall(client.send(Request(host="127.0.0.1", target="/")))
    accepted = False
    while not accepted:
        data = sock.recv(65536)
        assert data, "the server closed during the handshake"
        client.receive_data(data)
        accepted = any(isinstance(e, AcceptConnection) for e in client.events())
    for i, part in enumerate(TEXT_PARTS):
        sock.sendall(client.send(Message(data=part, message_finished=i == len(TEXT_PARTS) - 1)))
    for i, part in enumerate(BINARY_PARTS):
        sock.sendall(client.send(Message(data=part, message_finished=i == len(BINARY_PARTS) - 1)))
    sock.sendall(client.send(Message(data=LARGE)))
    messages: List[Any] = []
    pieces: List[Any] = []
    rejection = None
    while rejection is None:
        data = sock.recv(65536)
        if not data:
            break
        client.receive_data(data)
        for event in client.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                pieces.append(event.data)
                if event.message_finished:
                    messages.append(("" if isinstance(event, TextMessage) else b"").join(pieces))
                    pieces = []
                    if len(messages) == len(EXPECTED):
                        sock.sendall(_invalid_frame())
            elif isinstance(event, CloseConnection):
                rejection = [event.code, event.reason]
    sock.close()
    thread.join(TIMEOUT)
    listener.close()
    return summary(messages, {"client": rejection, "server": [list(x) for x in server_log]})


# --- AutobahnPython (asyncio) ------------------------------------------------------


def run_autobahn() -> Dict[str, Any]:
    from autobahn.asyncio.websocket import (
        WebSocketClientFactory,
        WebSocketClientProtocol,
        WebSocketServerFactory,
        WebSocketServerProtocol,
    )

    async def main() -> Dict[str, Any]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()
        messages: List[Any] = []

        server_side: List[Any] = []

        class Echo(WebSocketServerProtocol):
            def onMessage(self, payload: bytes, isBinary: bool) -> None:
                self.sendMessage(payload, isBinary, fragmentSize=max(1, len(payload) // 2))

            def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
                server_side.append([code, self.wasNotCleanReason])

        class Client(WebSocketClientProtocol):
            def onOpen(self) -> None:
                self.beginMessage(isBinary=False)
                for part in TEXT_PARTS:
                    self.sendMessageFrame(part.encode())
                self.endMessage()
                self.sendMessage(b"".join(BINARY_PARTS), isBinary=True, fragmentSize=65536)
                self.sendMessage(LARGE, isBinary=True)

            def onMessage(self, payload: bytes, isBinary: bool) -> None:
                messages.append(payload if isBinary else payload.decode())
                if len(messages) == len(EXPECTED):
                    self.sendFrame(opcode=1, payload=INVALID)

            def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
                if not done.done():
                    done.set_result([code, reason])

        server_factory = WebSocketServerFactory()
        server_factory.protocol = Echo
        server = await loop.create_server(server_factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client_factory = WebSocketClientFactory(f"ws://127.0.0.1:{port}")
        client_factory.protocol = Client
        await loop.create_connection(client_factory, "127.0.0.1", port)
        rejection = await asyncio.wait_for(done, TIMEOUT)
        for _ in range(100):
            if server_side:
                break
            await asyncio.sleep(0.01)
        server.close()
        return summary(messages, {"client": rejection, "server": server_side})

    return asyncio.run(asyncio.wait_for(main(), TIMEOUT))


# --- Tornado -------------------------------------------------------------------------


def run_tornado() -> Dict[str, Any]:
    import tornado.httpserver
    import tornado.netutil
    import tornado.web
    import tornado.websocket

    async def main() -> Dict[str, Any]:
        server_closed: asyncio.Future = asyncio.get_running_loop().create_future()

        class Echo(tornado.websocket.WebSocketHandler):
            def on_message(self, message: Any) -> None:
                self.write_message(message, binary=isinstance(message, bytes))

            def on_close(self) -> None:
                if not server_closed.done():
                    server_closed.set_result([self.close_code, self.close_reason])

        app = tornado.web.Application([(r"/", Echo)])
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        port = sockets[0].getsockname()[1]
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets(sockets)
        conn = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/")
        proto = conn.protocol
        # Tornado has no API to send fragments: its frame writer does it.
        for i, part in enumerate(TEXT_PARTS):
            proto._write_frame(i == len(TEXT_PARTS) - 1, 0x1 if i == 0 else 0x0, part.encode())
        for i, part in enumerate(BINARY_PARTS):
            proto._write_frame(i == len(BINARY_PARTS) - 1, 0x2 if i == 0 else 0x0, part)
        await conn.write_message(LARGE, binary=True)
        messages = [await asyncio.wait_for(conn.read_message(), TIMEOUT) for _ in EXPECTED]
        proto._write_frame(True, 0x1, INVALID)
        end = await asyncio.wait_for(conn.read_message(), TIMEOUT)  # None: closed
        server_side = await asyncio.wait_for(server_closed, TIMEOUT)
        server.stop()
        conn.close()
        return summary(messages, {"client": [end, conn.close_code, conn.close_reason], "server": server_side})

    return asyncio.run(asyncio.wait_for(main(), TIMEOUT))


# --- websockets (asyncio implementation) ----------------------------------------------


def run_websockets() -> Dict[str, Any]:
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    async def echo(ws: Any) -> None:
        async for message in ws:
            if isinstance(message, bytes):
                half = len(message) // 2
                await ws.send([message[:half], message[half:]])
            else:
                await ws.send(message)

    async def main() -> Dict[str, Any]:
        async with serve(echo, "127.0.0.1", 0, compression=None, max_size=None) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}", compression=None, max_size=None) as ws:
                await ws.send(TEXT_PARTS)
                await ws.send(BINARY_PARTS)
                await ws.send(LARGE)
                messages = [await ws.recv() for _ in EXPECTED]
                ws.transport.write(_invalid_frame())
                try:
                    await asyncio.wait_for(ws.recv(), TIMEOUT)
                    rejection: Any = "not rejected"
                except ConnectionClosed as exc:
                    rejection = [exc.rcvd.code, exc.rcvd.reason] if exc.rcvd else None
                return summary(messages, rejection)

    return asyncio.run(asyncio.wait_for(main(), TIMEOUT))


# --- aiohttp ---------------------------------------------------------------------------


def run_aiohttp() -> Dict[str, Any]:
    import aiohttp
    from aiohttp import web

    async def handler(request: Any) -> Any:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    async def main() -> Dict[str, Any]:
        from fastws import Opcode, build_frame

        app = web.Application()
        app.router.add_get("/", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(f"http://127.0.0.1:{port}/", max_msg_size=0) as ws:
                    # aiohttp has no API to send fragments: raw frames on its transport.
                    transport = ws._writer.transport
                    for parts, first in ((TEXT_PARTS, Opcode.TEXT), (BINARY_PARTS, Opcode.BINARY)):
                        for i, part in enumerate(parts):
                            opcode = first if i == 0 else Opcode.CONTINUATION
                            transport.write(build_frame(opcode, part, fin=i == len(parts) - 1, mask=True))
                    await ws.send_bytes(LARGE)  # masked by aiohttp's writer
                    messages = []
                    for _ in EXPECTED:
                        msg = await ws.receive(timeout=TIMEOUT)
                        messages.append(msg.data)
                    transport.write(_invalid_frame())
                    msg = await ws.receive(timeout=TIMEOUT)
                    return summary(messages, [int(msg.type), msg.data, msg.extra])
        finally:
            await runner.cleanup()

    return asyncio.run(asyncio.wait_for(main(), TIMEOUT))


# --- ws4py (threaded client, wsgiref server) ----------------------------------------


def run_ws4py() -> Dict[str, Any]:
    from wsgiref.simple_server import make_server

    from ws4py.client.threadedclient import WebSocketClient
    from ws4py.server.wsgirefserver import WebSocketWSGIRequestHandler, WSGIServer
    from ws4py.server.wsgiutils import WebSocketWSGIApplication
    from ws4py.websocket import WebSocket

    class Echo(WebSocket):
        def received_message(self, message: Any) -> None:
            data = message.data
            if message.is_binary:
                half = len(data) // 2
                self.send((piece for piece in (data[:half], data[half:])), binary=True)
            else:
                self.send(data, binary=False)

    server = make_server(
        "127.0.0.1",
        0,
        server_class=WSGIServer,
        handler_class=WebSocketWSGIRequestHandler,
        app=WebSocketWSGIApplication(handler_cls=Echo),
    )
    server.initialize_websockets_manager()
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    messages: List[Any] = []
    closed = threading.Event()
    result: Dict[str, Any] = {}

    class Client(WebSocketClient):
        def received_message(self, message: Any) -> None:
            messages.append(bytes(message.data) if message.is_binary else bytes(message.data).decode())
            if len(messages) == len(EXPECTED):
                from ws4py.framing import OPCODE_TEXT, Frame

                self.sock.sendall(
                    Frame(opcode=OPCODE_TEXT, body=INVALID, masking_key=os.urandom(4), fin=1).build()
                )

        def closed(self, code: Any, reason: Any = None) -> None:
            result["close"] = [code, reason.decode() if isinstance(reason, bytes) else reason]
            closed.set()

    client = Client(f"ws://127.0.0.1:{port}/")
    client.connect()
    client.send((p.encode() for p in TEXT_PARTS), binary=False)
    client.send((p for p in BINARY_PARTS), binary=True)
    client.send(LARGE, binary=True)
    ok = closed.wait(TIMEOUT)
    client.close()
    server.shutdown()
    server.server_close()  # closes the websockets manager too
    thread.join(TIMEOUT)
    return summary(messages, result.get("close") if ok else "timeout")


RUNNERS = {
    "wsproto": run_wsproto,
    "autobahn": run_autobahn,
    "tornado": run_tornado,
    "websockets": run_websockets,
    "aiohttp": run_aiohttp,
    "ws4py": run_ws4py,
}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray)):
        return {"bytes": bytes(obj).hex()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    return obj


def main(argv: List[str]) -> int:
    """``LIB [patch [force]]``: run one exchange, print the JSON summary and, when
    patched, the PatchResult."""
    library = argv[0]
    info: Dict[str, Any] = {}
    if len(argv) > 1 and argv[1] == "patch":
        import fastws.accelerate as acc

        kwargs: Dict[str, Any] = {"allow_pure": True}
        if len(argv) > 2 and argv[2] == "force":
            kwargs["force"] = True
        result = getattr(acc, f"patch_{library}")(**kwargs)
        info = {"active": result.active, "changed": result.changed, "reason": result.reason}
    info["summary"] = _jsonable(RUNNERS[library]())
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Broadcast servers, one per stack, each in the stack's own idiom, all on uvloop.

    python -m bench.broadcast.servers STACK [PORT]

Listens on 127.0.0.1:PORT (0, the default: a free port), prints ``READY
<port>`` once it accepts connections, and serves until SIGTERM, SIGINT or the
end of its standard input. Any connection may send the text message ``"bcast K
SIZE"``: the server then sends K binary messages of SIZE bytes (at least 4) to
every open connection, the sender included, message after message (message 0
to everyone, then message 1...); each payload starts with its index 0..K-1 as
4 bytes big-endian, the rest is filler. No compression, no keepalive pings.

How each stack broadcasts:

- ``fastws``: :func:`fastws.serve` with a handler per connection;
  :func:`fastws.broadcast` to ``server.connections``.
- ``fastws-listener``: :func:`fastws.serve_listener`; the listener's
  ``on_message`` calls :func:`fastws.broadcast` itself, with no task switch.
- ``fastws-many``: the Listener server, with the whole burst given to
  ``fastws.asyncio.broadcasting.broadcast_many()`` at once: one write per
  connection for all K messages (the first message then arrives with the last).
- ``websockets``: ``websockets.asyncio.server.broadcast`` to
  ``server.connections``.
- ``aiohttp``: the idiom of its documentation, ``await ws.send_bytes(...)``
  for each connection in a set the handlers keep; each await returns at once
  while the transport takes the data (no task per send: ``asyncio.gather`` of
  the coroutines makes one task each, which costs more).
- ``picows``: ``transport.send(WSMsgType.BINARY, payload)`` for each transport
  a set of them keeps (picows frames the payload again for each one), on
  picows's default transport: aiofastnet's when it is installed (its own C
  transport on the uvloop loop, whose write costs less than uvloop's).
- ``socketify``: every connection subscribes to one topic when it opens;
  ``app.publish(topic, payload)`` (uWebSockets' own fan-out in C++).
- ``floor``: a bare ``asyncio.Protocol`` that answers the opening handshake
  with as little as possible and reads the client's frames just enough to see
  the trigger; a broadcast is a ``transport.write`` loop of one prebuilt frame
  over every transport. What a Python server cannot go below.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import resource
import signal
import struct
import sys
import threading
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Set, Tuple

HOST = "127.0.0.1"
#: Stack keys, in the order of the report.
STACKS = ("fastws", "fastws-listener", "fastws-many", "websockets", "aiohttp", "picows", "socketify", "floor")
#: What the report calls them.
LABELS = {
    "fastws": "fastws",
    "fastws-listener": "fastws Listener",
    "fastws-many": "fastws broadcast_many()",
    "websockets": "websockets",
    "aiohttp": "aiohttp",
    "picows": "picows",
    "socketify": "socketify",
    "floor": "transport.write loop (floor)",
}
#: The module each stack needs.
REQUIRES = {
    "fastws": "fastws",
    "fastws-listener": "fastws",
    "fastws-many": "fastws",
    "websockets": "websockets",
    "aiohttp": "aiohttp",
    "picows": "picows",
    "socketify": "socketify",
    "floor": None,
}
#: Large enough for the trigger; the servers receive nothing bigger.
MAX_SIZE = 1 << 16
#: The listening sockets' backlog: the load generator opens connections 128 at
#: a time, and a SYN dropped by a full backlog (asyncio's default is 100) waits
#: a second for its retransmission.
BACKLOG = 4096

Closer = Callable[[], Awaitable[None]]


def parse_trigger(message: Any) -> Optional[Tuple[int, int]]:
    """``(K, SIZE)`` from a ``"bcast K SIZE"`` text message, None for anything else."""
    if isinstance(message, (bytes, bytearray, memoryview)):
        try:
            message = bytes(message).decode()
        except UnicodeDecodeError:
            return None
    if not isinstance(message, str):
        return None
    parts = message.split()
    if len(parts) != 3 or parts[0] != "bcast" or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    count, size = int(parts[1]), int(parts[2])
    return count, max(size, 4)


def payloads(count: int, size: int) -> List[bytes]:
    """The ``count`` payloads of a broadcast: index as 4 bytes big-endian, then filler."""
    filler = b"x" * (size - 4)
    return [struct.pack(">I", index) + filler for index in range(count)]


def raise_nofile_limit() -> None:
    """Raise the soft limit of open files to the hard one (10,000 connections need it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _port_of(sockets: Any) -> int:
    return int(list(sockets)[0].getsockname()[1])


# --- one starter per stack: listens on (HOST, port), returns (bound port, closer) ---------


async def start_fastws(port: int) -> Tuple[int, Closer]:
    import fastws

    server: Any = None

    async def handler(websocket: Any) -> None:
        async for message in websocket:
            trigger = parse_trigger(message)
            if trigger is not None:
                connections = server.connections  # the open ones, one set for the burst
                for payload in payloads(*trigger):
                    fastws.broadcast(connections, payload)

    server = await fastws.serve(
        handler, HOST, port, ping_interval=None, max_size=MAX_SIZE, compression=None, backlog=BACKLOG
    )

    async def close() -> None:
        server.close()
        await server.wait_closed()

    return _port_of(server.sockets), close


async def start_fastws_listener(port: int, many: bool = False) -> Tuple[int, Closer]:
    import fastws
    from fastws.asyncio.broadcasting import broadcast_many

    server: Any = None

    class Broadcaster(fastws.Listener):
        def on_message(self, connection: Any, message: Any) -> None:
            trigger = parse_trigger(message)
            if trigger is not None:
                connections = server.connections
                if many:
                    broadcast_many(connections, payloads(*trigger))
                else:
                    for payload in payloads(*trigger):
                        fastws.broadcast(connections, payload)

    server = await fastws.serve_listener(
        Broadcaster, HOST, port, ping_interval=None, max_size=MAX_SIZE, compression=None,
        backlog=BACKLOG,
    )

    async def close() -> None:
        server.close()
        await server.wait_closed()

    return _port_of(server.sockets), close


async def start_websockets(port: int) -> Tuple[int, Closer]:
    from websockets.asyncio.server import broadcast, serve

    server: Any = None

    async def handler(websocket: Any) -> None:
        async for message in websocket:
            trigger = parse_trigger(message)
            if trigger is not None:
                connections = server.connections
                for payload in payloads(*trigger):
                    broadcast(connections, payload)

    server = await serve(
        handler, HOST, port, ping_interval=None, max_size=MAX_SIZE, compression=None, backlog=BACKLOG
    )

    async def close() -> None:
        server.close()
        await server.wait_closed()

    return _port_of(server.sockets), close


async def start_aiohttp(port: int) -> Tuple[int, Closer]:
    from aiohttp import WSMsgType, web

    clients: Set[Any] = set()

    async def handler(request: Any) -> Any:
        ws = web.WebSocketResponse(autoping=True, heartbeat=None, max_msg_size=MAX_SIZE, compress=False)
        await ws.prepare(request)
        clients.add(ws)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                trigger = parse_trigger(msg.data)
                if trigger is not None:
                    targets = list(clients)
                    for payload in payloads(*trigger):
                        for client in targets:
                            if not client.closed:
                                await client.send_bytes(payload)
        finally:
            clients.discard(ws)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, HOST, port, backlog=BACKLOG)
    await site.start()
    return int(runner.addresses[0][1]), runner.cleanup


async def start_picows(port: int) -> Tuple[int, Closer]:
    from picows import WSListener, WSMsgType, ws_create_server

    transports: Set[Any] = set()

    class Broadcaster(WSListener):
        def on_ws_connected(self, transport: Any) -> None:
            transports.add(transport)

        def on_ws_disconnected(self, transport: Any) -> None:
            transports.discard(transport)

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()
            elif frame.msg_type == WSMsgType.TEXT:
                trigger = parse_trigger(frame.get_payload_as_bytes())
                if trigger is not None:
                    for payload in payloads(*trigger):
                        for target in transports:
                            target.send(WSMsgType.BINARY, payload)

    server = await ws_create_server(
        lambda request: Broadcaster(), HOST, port, max_frame_size=MAX_SIZE, enable_auto_ping=False,
        backlog=BACKLOG,
    )

    async def close() -> None:
        server.close()
        await server.wait_closed()

    return _port_of(server.sockets), close


_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _accept_response(request: bytes) -> Optional[bytes]:
    """The 101 response to an opening handshake request, None without a key."""
    for line in request.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            accept = base64.b64encode(hashlib.sha1(value.strip() + _GUID).digest())
            return (
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
    return None


def _unmask(data: bytes, key: bytes) -> bytes:
    return bytes(b ^ key[i & 3] for i, b in enumerate(data))


def binary_frame(payload: bytes) -> bytes:
    """An unmasked FIN binary frame."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x82, length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x82, 126, length)
    else:
        header = struct.pack("!BBQ", 0x82, 127, length)
    return header + payload


async def start_floor(port: int) -> Tuple[int, Closer]:
    transports: List[asyncio.Transport] = []

    class Floor(asyncio.Protocol):
        def __init__(self) -> None:
            self.buffer = b""
            self.open = False
            self.transport: Any = None

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def connection_lost(self, exc: Optional[BaseException]) -> None:
            if self.open:
                self.open = False
                transports.remove(self.transport)

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            if not self.open:
                head, sep, rest = self.buffer.partition(b"\r\n\r\n")
                if not sep:
                    return
                response = _accept_response(head)
                if response is None:
                    self.transport.close()
                    return
                self.transport.write(response)
                self.buffer = rest
                self.open = True
                transports.append(self.transport)
            self._frames()

        def _frames(self) -> None:
            # Client frames are masked; the trigger and a close are all that come.
            buffer = self.buffer
            while len(buffer) >= 6:
                opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
                start = 2
                if length == 126:
                    if len(buffer) < 8:
                        break
                    length, start = struct.unpack_from("!H", buffer, 2)[0], 4
                elif length == 127:
                    self.transport.close()
                    return
                end = start + 4 + length
                if len(buffer) < end:
                    break
                payload = _unmask(buffer[start + 4 : end], buffer[start : start + 4])
                buffer = buffer[end:]
                if opcode == 8:
                    self.transport.write(b"\x88\x02" + payload[:2])
                    self.transport.close()
                    return
                if opcode == 1:
                    trigger = parse_trigger(payload)
                    if trigger is not None:
                        for data in payloads(*trigger):
                            frame = binary_frame(data)
                            for transport in transports:
                                transport.write(frame)
            self.buffer = buffer

    server = await asyncio.get_running_loop().create_server(Floor, HOST, port, backlog=BACKLOG)

    async def close() -> None:
        server.close()
        for transport in list(transports):
            transport.close()
        await server.wait_closed()

    return _port_of(server.sockets), close


STARTERS: Dict[str, Callable[[int], Awaitable[Tuple[int, Closer]]]] = {
    "fastws": start_fastws,
    "fastws-listener": start_fastws_listener,
    "fastws-many": lambda port: start_fastws_listener(port, many=True),
    "websockets": start_websockets,
    "aiohttp": start_aiohttp,
    "picows": start_picows,
    "floor": start_floor,
}


def _watch_stdin(on_eof: Callable[[], None]) -> None:
    """Call ``on_eof`` once standard input ends (the parent closed it, or died)."""
    try:
        while os.read(sys.stdin.fileno(), 4096):
            pass
    except (OSError, ValueError):
        pass
    on_eof()


async def _serve(stack: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def stop_now() -> None:
        if not stop.done():
            stop.set_result(None)

    def stop_threadsafe() -> None:
        try:
            loop.call_soon_threadsafe(stop_now)
        except RuntimeError:  # loop already closed
            pass

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_now)
    bound, close = await STARTERS[stack](port)
    threading.Thread(target=_watch_stdin, args=(stop_threadsafe,), daemon=True).start()
    print(f"READY {bound}", flush=True)
    await stop
    try:
        await asyncio.wait_for(close(), 2)
    except Exception:  # noqa: BLE001 - shutting down anyway
        pass


def run_socketify(port: int) -> None:
    """socketify's server: ``App().ws(...)`` on its own loop (asyncio's swapped
    for uvloop through its ``Loop.set_event_loop``), until SIGTERM, SIGINT or
    the end of standard input."""
    import uvloop
    from socketify import App, AppListenOptions, CompressOptions, OpCode  # type: ignore[import-untyped]

    topic = "broadcast"
    app = App()
    default_loop = app.loop.loop
    loop = uvloop.new_event_loop()
    app.loop.set_event_loop(loop)
    default_loop.close()

    def on_open(ws: Any) -> None:
        ws.subscribe(topic)

    def on_message(ws: Any, message: Any, opcode: Any) -> None:
        trigger = parse_trigger(message)
        if trigger is not None:
            for payload in payloads(*trigger):
                app.publish(topic, payload, OpCode.BINARY)

    app.ws(
        "/*",
        {
            "compression": CompressOptions.DISABLED,
            "max_payload_length": MAX_SIZE,
            "max_backpressure": 64 * 1024 * 1024,  # a burst is never dropped
            "idle_timeout": 0,
            "open": on_open,
            "message": on_message,
        },
    )
    bound: List[int] = []
    app.listen(AppListenOptions(port=port, host=HOST), lambda config: bound.append(config.port))
    if not bound:
        raise SystemExit(f"socketify could not listen on {HOST}:{port}")

    def stop() -> None:
        if app.loop.started:
            app.close()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)

    def stop_threadsafe() -> None:
        try:
            loop.call_soon_threadsafe(stop)
        except RuntimeError:
            pass

    threading.Thread(target=_watch_stdin, args=(stop_threadsafe,), daemon=True).start()
    print(f"READY {bound[0]}", flush=True)
    app.run()


def main(argv: Optional[Sequence[str]] = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.broadcast.servers", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", choices=STACKS)
    parser.add_argument("port", type=int, nargs="?", default=0)
    args = parser.parse_args(argv)
    raise_nofile_limit()
    if args.stack == "socketify":
        run_socketify(args.port)
        return 0
    import uvloop

    uvloop.run(_serve(args.stack, args.port))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # do not wait for the stdin watcher thread

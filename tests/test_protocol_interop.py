"""fastws against the sans-I/O protocols of the ``websockets`` library (>= 12), in
memory, both ways: what websockets sends and answers in the opening handshake,
messages, control frames, fragments, and the closing handshake from each side."""

from __future__ import annotations

import pytest

websockets = pytest.importorskip("websockets", minversion="12")

from websockets.client import ClientProtocol as WSClient  # noqa: E402
from websockets.exceptions import InvalidStatus as WSInvalidStatus  # noqa: E402
from websockets.extensions.permessage_deflate import (  # noqa: E402
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Opcode as WSOpcode  # noqa: E402
from websockets.http11 import Request as WSRequest  # noqa: E402
from websockets.http11 import Response as WSResponse  # noqa: E402
from websockets.protocol import State as WSState  # noqa: E402
from websockets.server import ServerProtocol as WSServer  # noqa: E402
from websockets.uri import parse_uri as ws_parse_uri  # noqa: E402

from fastws.events import Close, Ping, Pong  # noqa: E402
from fastws.exceptions import InvalidStatus  # noqa: E402
from fastws.http11 import Request, Response  # noqa: E402
from fastws.protocol import CLOSED, OPEN, ClientProtocol, ServerProtocol  # noqa: E402


def ws_out(proto) -> tuple:
    """(bytes, eof) that a websockets protocol wants to send; b"" marks EOF."""
    chunks = proto.data_to_send()
    return b"".join(chunks), b"" in chunks


def ws_frames(proto) -> list:
    """websockets events as comparable tuples."""
    out = []
    for event in proto.events_received():
        if isinstance(event, (WSRequest, WSResponse)):
            out.append(event)
        else:
            out.append((event.opcode, bytes(event.data), event.fin))
    return out


class Link:
    """Moves bytes between a fastws protocol and a websockets protocol."""

    def __init__(self, fast, ws):
        self.fast = fast
        self.ws = ws
        self.ws_eof = False

    def pump(self):
        while True:
            moved = False
            data = self.fast.data_to_send()
            if data:
                self.ws.receive_data(data)
                moved = True
            data, eof = ws_out(self.ws)
            if data:
                self.fast.receive_data(data)
                moved = True
            if eof and not self.ws_eof:
                self.ws_eof = True
                self.fast.receive_eof()
                moved = True
            if not moved:
                return


# --- websockets client -> fastws server ----------------------------------------------


def websockets_client(**kwargs):
    client = WSClient(ws_parse_uri("ws://localhost:8765/chat?x=1"), **kwargs)
    client.send_request(client.connect())
    return client


def test_websockets_request_accepted(codec):
    # Offer permessage-deflate like websockets' connect() does by default: fastws
    # does not negotiate it, and websockets goes on without compression.
    client = websockets_client(
        origin="http://localhost:8000",
        subprotocols=["chat", "superchat"],
        extensions=[ClientPerMessageDeflateFactory()],
    )
    server = ServerProtocol(codec=codec, subprotocols=["superchat"], origins=["http://localhost:8000"])
    Link(server, client).pump()
    (request,) = server.events_received()
    assert isinstance(request, Request) and request.path == "/chat?x=1"
    assert request.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
    assert server.state is OPEN and server.subprotocol == "superchat"
    assert client.handshake_exc is None and client.state is WSState.OPEN
    (response,) = ws_frames(client)
    assert response.status_code == 101 and client.subprotocol == "superchat"
    assert client.extensions == []


def test_websockets_client_messages_and_server_close(codec):
    client = websockets_client()
    server = ServerProtocol(codec=codec)
    link = Link(server, client)
    link.pump()
    server.events_received()
    ws_frames(client)

    client.send_text("héllo".encode())
    client.send_binary(b"\x00\x01\x02")
    client.send_text(b"frag", fin=False)
    client.send_ping(b"between")
    client.send_continuation(b"mented", fin=True)
    client.send_binary(b"B" * 70000)
    client.send_pong(b"unsolicited")
    link.pump()
    assert server.events_received() == [
        "héllo",
        b"\x00\x01\x02",
        Ping(b"between"),
        "fragmented",
        b"B" * 70000,
        Pong(b"unsolicited"),
    ]
    # websockets got the pong for its ping.
    assert ws_frames(client) == [(WSOpcode.PONG, b"between", True)]

    server.send_text("wörld")
    server.send_binary(b"b" * 300, fin=False)
    server.send_ping(b"srv")
    server.send_continuation(b"!", fin=True)
    server.send_close(1001, "going away")
    link.pump()
    assert ws_frames(client) == [
        (WSOpcode.TEXT, "wörld".encode(), True),
        (WSOpcode.BINARY, b"b" * 300, False),
        (WSOpcode.PING, b"srv", True),
        (WSOpcode.CONT, b"!", True),
        (WSOpcode.CLOSE, b"\x03\xe9going away", True),
    ]
    # websockets echoed the close (with its reason) and answered the ping.
    assert server.events_received() == [Pong(b"srv"), Close(1001, "going away")]
    assert server.state is CLOSED and server.should_close_transport()
    # The server closes TCP: websockets sees EOF and finishes.
    client.receive_eof()
    assert client.state is WSState.CLOSED
    assert client.close_code == 1001


def test_websockets_client_closes(codec):
    client = websockets_client()
    server = ServerProtocol(codec=codec)
    link = Link(server, client)
    link.pump()
    client.send_close(1000, "bye")
    link.pump()
    assert server.events_received()[-1] == Close(1000, "bye")
    assert server.state is CLOSED and server.should_close_transport()
    assert client.close_rcvd.code == 1000
    client.receive_eof()
    assert client.state is WSState.CLOSED and client.close_code == 1000


def test_websockets_client_protocol_error_reaches_fastws(codec):
    client = websockets_client()
    server = ServerProtocol(codec=codec)
    link = Link(server, client)
    link.pump()
    client.send_text(b"\xff")  # websockets does not check what it sends
    link.pump()
    assert server.error is not None and server.error.close_code == 1007
    assert client.close_rcvd.code == 1007
    assert server.should_close_transport()


def test_fastws_refusal_reaches_websockets(codec):
    client = websockets_client(origin="http://evil.example")
    server = ServerProtocol(codec=codec, origins=["http://localhost:8000"])
    Link(server, client).pump()
    assert isinstance(client.handshake_exc, WSInvalidStatus)
    assert client.handshake_exc.response.status_code == 403
    assert b"not allowed" in client.handshake_exc.response.body


# --- fastws client -> websockets server ----------------------------------------------


def websockets_server(**kwargs):
    return WSServer(**kwargs)


def serve(link, *, process=None):
    """Let the websockets server answer the handshake the way serve() does."""
    link.pump()
    events = ws_frames(link.ws)
    request = events[0]
    assert isinstance(request, WSRequest)
    response = process(link.ws, request) if process else None
    if response is None:
        response = link.ws.accept(request)
    link.ws.send_response(response)
    link.pump()
    return request


def test_fastws_request_accepted_by_websockets(codec):
    client = ClientProtocol(
        "ws://localhost:8765/chat", codec=codec, origin="http://localhost:8000", subprotocols=["v1", "v2"]
    )
    server = websockets_server(
        origins=["http://localhost:8000"],
        subprotocols=["v2"],
        extensions=[ServerPerMessageDeflateFactory()],  # not offered by fastws: not used
    )
    link = Link(client, server)
    request = serve(link)
    assert request.path == "/chat" and request.headers["Origin"] == "http://localhost:8000"
    assert server.handshake_exc is None and server.state is WSState.OPEN
    (response,) = client.events_received()
    assert isinstance(response, Response) and response.status_code == 101
    assert client.state is OPEN and client.subprotocol == "v2" == server.subprotocol
    assert "Sec-WebSocket-Extensions" not in response.headers


def test_fastws_client_messages_and_client_close(codec):
    client = ClientProtocol("ws://localhost:8765/", codec=codec)
    server = websockets_server()
    link = Link(client, server)
    serve(link)
    client.events_received()

    client.send_text("héllo")
    client.send_binary(b"\x00" * 70000)
    client.send_text("frag", fin=False)
    client.send_ping(b"p")
    client.send_continuation("ment", fin=True)
    link.pump()
    assert ws_frames(server) == [
        (WSOpcode.TEXT, "héllo".encode(), True),
        (WSOpcode.BINARY, b"\x00" * 70000, True),
        (WSOpcode.TEXT, b"frag", False),
        (WSOpcode.PING, b"p", True),
        (WSOpcode.CONT, b"ment", True),
    ]
    assert client.events_received() == [Pong(b"p")]

    server.send_text("wörld".encode())
    server.send_binary(b"x", fin=False)
    server.send_ping(b"q")
    server.send_continuation(b"y", fin=True)
    link.pump()
    assert client.events_received() == ["wörld", Ping(b"q"), b"xy"]

    client.send_close(1000, "done")
    link.pump()
    # websockets echoed and, as the server, closed TCP (EOF): the client is done.
    assert client.events_received() == [Close(1000, "done")]
    assert client.state is CLOSED and link.ws_eof and client.close_code == 1000
    assert ws_frames(server)[-1] == (WSOpcode.CLOSE, b"\x03\xe8done", True)
    assert server.state is WSState.CLOSING  # until the client's TCP close
    server.receive_eof()
    assert server.state is WSState.CLOSED and server.close_code == 1000


def test_websockets_server_closes(codec):
    client = ClientProtocol("ws://localhost:8765/", codec=codec)
    server = websockets_server()
    link = Link(client, server)
    serve(link)
    client.events_received()
    server.send_close(1001, "restart")
    link.pump()
    assert client.events_received() == [Close(1001, "restart")]
    # fastws echoed; websockets completed the handshake and sent EOF.
    assert link.ws_eof and client.state is CLOSED and client.close_code == 1001
    server.receive_eof()
    assert server.state is WSState.CLOSED and server.close_code == 1001


def test_websockets_server_protocol_error_reaches_fastws(codec):
    client = ClientProtocol("ws://localhost:8765/", codec=codec)
    server = websockets_server(max_size=10)
    link = Link(client, server)
    serve(link)
    client.events_received()
    client.send_binary(b"z" * 11)
    link.pump()
    assert client.events_received() == [Close(1009, "frame with 11 bytes exceeds limit of 10 bytes")]


def test_websockets_refusal_reaches_fastws(codec):
    client = ClientProtocol("ws://localhost:8765/private", codec=codec)
    server = websockets_server()
    link = Link(client, server)
    serve(link, process=lambda ws, request: ws.reject(404, "Nothing here.\n"))
    assert isinstance(client.error, InvalidStatus)
    assert client.error.status_code == 404
    assert client.error.body == b"Nothing here.\n"
    assert client.error.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert client.state is CLOSED and client.should_close_transport()
    assert client.events_received() == [client.response]


def test_websockets_bad_origin_refused_with_403(codec):
    client = ClientProtocol("ws://localhost:8765/", codec=codec, origin="http://evil.example")
    server = websockets_server(origins=["http://localhost:8000"])
    link = Link(client, server)
    serve(link)
    assert client.error.status_code == 403

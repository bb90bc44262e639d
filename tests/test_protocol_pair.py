"""A fastws client and a fastws server talking to each other in memory: the whole
life of a connection, with the byte stream cut at every position, control frames
interleaved with fragments, closes from each side, failures, and the extension
seam with a toy RSV1 extension. Both codec implementations."""

from __future__ import annotations

import pytest

from fastws.events import Close, Ping, Pong
from fastws.exceptions import InvalidUTF8, PayloadTooBig, ProtocolError
from fastws.extensions import ClientExtensionFactory, Extension, ServerExtensionFactory
from fastws.http11 import Request, Response
from fastws.protocol import CLOSED, CLOSING, OPEN, ClientProtocol, ServerProtocol

from protocol_helpers import byte_by_byte, make_frame, pump, sent_frames


def connect(codec, *, client_kwargs=None, server_kwargs=None):
    client = ClientProtocol("ws://example.com/chat", codec=codec, **(client_kwargs or {}))
    server = ServerProtocol(codec=codec, **(server_kwargs or {}))
    pump(client, server)
    assert client.state is OPEN and server.state is OPEN
    assert isinstance(server.events_received()[0], Request)
    assert isinstance(client.events_received()[0], Response)
    return client, server


def test_messages_both_ways(codec):
    client, server = connect(codec)
    client.send_text("héllo")
    client.send_binary(b"\x00\x01")
    client.send_text("")
    pump(client, server)
    assert server.events_received() == ["héllo", b"\x00\x01", ""]
    server.send_text("wörld")
    server.send_binary(b"B" * 70000)
    pump(client, server)
    assert client.events_received() == ["wörld", b"B" * 70000]


def test_ping_pong_both_ways(codec):
    client, server = connect(codec)
    client.send_ping(b"c")
    server.send_ping(b"s")
    server.send_pong(b"unsolicited")
    pump(client, server)
    assert server.events_received() == [Ping(b"c"), Pong(b"s")]
    assert client.events_received() == [Ping(b"s"), Pong(b"unsolicited"), Pong(b"c")]


def client_script(client):
    """Everything a client sends in the stream test, after the handshake."""
    client.send_text("first")
    client.send_text("frag", fin=False)
    client.send_ping(b"between")
    client.send_continuation("ment", fin=False)
    client.send_pong(b"also")
    client.send_continuation("ed é", fin=True)
    client.send_binary(b"\x00" * 300, fin=False)  # 16-bit length
    client.send_continuation(b"\xff" * 70000, fin=True)  # 64-bit length
    client.send_text("😀" * 3)
    client.send_close(1000, "done")


EXPECTED_AT_SERVER = [
    "first",
    Ping(b"between"),
    Pong(b"also"),
    "fragmented é",
    b"\x00" * 300 + b"\xff" * 70000,
    "😀😀😀",
    Close(1000, "done"),
]


def test_stream_split_at_every_byte(codec):
    """The client's bytes, handshake included, delivered to the server in two
    pieces cut at every position: same events, same answers."""
    client = ClientProtocol("ws://example.com/chat", codec=codec)
    request = client.data_to_send()
    # Let the client finish its handshake on a throwaway server, then record the rest.
    throwaway = ServerProtocol(codec=codec)
    throwaway.receive_data(request)
    client.receive_data(throwaway.data_to_send())
    client_script(client)
    data = request + client.data_to_send()
    # Cut points: every byte around the handshake and the small frames, and a
    # stride through the large payload (every byte there is just more payload).
    head = len(request) + 200
    cuts = list(range(0, head)) + list(range(head, len(data), 997)) + list(range(len(data) - 200, len(data) + 1))
    for cut in cuts:
        server = ServerProtocol(codec=codec)
        server.receive_data(data[:cut])
        server.receive_data(data[cut:])
        events = server.events_received()
        assert isinstance(events[0], Request)
        assert events[1:] == EXPECTED_AT_SERVER, cut
        assert server.state is CLOSED and server.should_close_transport()
        assert server.error is None


def test_stream_byte_by_byte_both_ways(codec):
    client = ClientProtocol("ws://example.com/chat", codec=codec)
    server = ServerProtocol(codec=codec)
    pump(client, server, split=byte_by_byte)
    assert client.state is OPEN and server.state is OPEN
    client.events_received()
    server.events_received()
    client_script(client)
    pump(client, server, split=byte_by_byte)
    assert server.events_received()[:-1] == EXPECTED_AT_SERVER[:-1]
    # The server answered the ping and echoed the close, the client got both.
    assert client.events_received() == [Pong(b"between"), Close(1000, "done")]
    assert server.state is CLOSED and client.state is CLOSING and client.close_expected()
    client.receive_eof()  # the server closed TCP
    assert client.state is CLOSED and client.close_code == 1000
    assert client.events_received() == []


def test_close_initiated_by_the_client(codec):
    client, server = connect(codec)
    client.send_close(1001, "bye")
    assert client.state is CLOSING
    server.receive_data(client.data_to_send())
    assert server.events_received() == [Close(1001, "bye")]
    assert server.state is CLOSED and server.should_close_transport()
    client.receive_data(server.data_to_send())
    assert client.events_received() == [Close(1001, "bye")]
    # RFC 6455 7.1.1: the client waits for the server to close TCP.
    assert client.state is CLOSING and not client.should_close_transport()
    client.receive_eof()
    server.receive_eof()
    assert client.state is CLOSED and client.close_code == 1001
    assert server.close_code == 1001 and server.close_reason == "bye"
    assert client.events_received() == [] and server.events_received() == []


def test_close_initiated_by_the_server(codec):
    client, server = connect(codec)
    server.send_text("last words")
    server.send_close(1000, "maintenance")
    assert server.state is CLOSING and server.close_expected()
    client.receive_data(server.data_to_send())
    assert client.events_received() == ["last words", Close(1000, "maintenance")]
    assert client.state is CLOSING
    server.receive_data(client.data_to_send())
    assert server.events_received() == [Close(1000, "maintenance")]
    assert server.state is CLOSED and server.should_close_transport()
    client.receive_eof()
    assert client.state is CLOSED and client.events_received() == []


def test_simultaneous_close(codec):
    client, server = connect(codec)
    client.send_close(1000, "c")
    server.send_close(1001, "s")
    to_server, to_client = client.data_to_send(), server.data_to_send()
    server.receive_data(to_server)
    client.receive_data(to_client)
    assert server.events_received() == [Close(1000, "c")]
    assert client.events_received() == [Close(1001, "s")]
    assert server.data_to_send() == b"" and client.data_to_send() == b""  # no second close
    assert server.state is CLOSED and client.state is CLOSING


def test_messages_in_flight_during_close_are_delivered(codec):
    client, server = connect(codec)
    server.send_close()
    client.send_text("crossing")  # sent before the client saw the close
    server.receive_data(client.data_to_send())
    assert server.events_received() == ["crossing"]
    assert server.state is CLOSING


@pytest.mark.parametrize(
    "send, exc_type, code",
    [
        (lambda c: c.send_text(b"\xff\xfe"), InvalidUTF8, 1007),
        (lambda c: (c.send_text(b"ok \xe2", fin=False), c.send_continuation(b"\x28", True)), InvalidUTF8, 1007),
        (lambda c: c.send_binary(b"x" * 101), PayloadTooBig, 1009),
        (lambda c: (c.send_binary(b"x" * 60, fin=False), c.send_continuation(b"y" * 60, True)), PayloadTooBig, 1009),
    ],
    ids=["invalid-utf8", "invalid-utf8-in-fragment", "too-big", "too-big-across-fragments"],
)
def test_server_fails_the_connection(codec, send, exc_type, code):
    client, server = connect(codec, server_kwargs={"max_size": 100})
    send(client)
    pump(client, server)
    assert type(server.error) is exc_type
    assert server.state is CLOSED and server.should_close_transport()
    (event,) = client.events_received()
    assert event.code == code and event.reason == str(server.error)
    # The client echoed; the server, having failed, does not read it.
    assert client.state is CLOSING and server.events_received() == []
    client.receive_eof()
    server.receive_eof()
    assert client.close_code == code
    assert server.events_received() == [Close(1006, "")]


def test_client_fails_the_connection(codec):
    client, server = connect(codec, client_kwargs={"max_size": 10})
    server.send_text("far too long for the client")
    pump(client, server)
    assert type(client.error) is PayloadTooBig
    assert client.state is CLOSING and not client.should_close_transport()
    assert server.events_received() == [Close(1009, str(client.error))]
    assert server.state is CLOSED and server.should_close_transport()
    client.receive_eof()
    assert client.state is CLOSED and client.events_received() == [Close(1006, "")]


def test_handshake_refused_end_to_end(codec):
    client = ClientProtocol("ws://example.com/chat", codec=codec, origin="https://evil.example")
    server = ServerProtocol(codec=codec, origins=["https://good.example"])
    pump(client, server)
    assert server.state is CLOSED and server.should_close_transport()
    assert client.state is CLOSED and client.should_close_transport()
    assert client.error.status_code == 403
    assert client.error.body == server.response.body
    assert b"not allowed" in client.error.body


def test_subprotocol_negotiated_end_to_end(codec):
    client, server = connect(
        codec,
        client_kwargs={"subprotocols": ["v1", "v2"]},
        server_kwargs={"subprotocols": ["v2", "v3"]},
    )
    assert client.subprotocol == server.subprotocol == "v2"


# --- the extension seam ----------------------------------------------------------


class Invert(Extension):
    """Toy RSV1 extension: inverts every byte of the messages it marks. Marks
    every non-empty message; empty ones go unmarked (the fast path)."""

    name = "x-invert"
    uses_rsv1 = True

    def __init__(self):
        self.decoded = []
        self._sending = False

    def decode(self, payload, *, first, fin, max_size):
        if payload == b"\x00boom":
            raise ProtocolError("undecodable", 1007)
        out = bytes(b ^ 0xFF for b in payload)
        if max_size is not None and len(out) > max_size:
            raise PayloadTooBig(f"decoded payload over {max_size}")
        self.decoded.append((out, first, fin))
        return out

    def encode(self, payload, *, first, fin):
        if first:
            self._sending = bool(payload) or not fin
        if not self._sending:
            return payload, False
        return bytes(b ^ 0xFF for b in payload), True


class InvertServer(ServerExtensionFactory):
    name = "x-invert"

    def negotiate(self, params, accepted):
        return [], Invert()


class InvertClient(ClientExtensionFactory):
    name = "x-invert"

    def accept(self, params, accepted):
        return Invert()


def connect_inverted(codec, **server_kwargs):
    return connect(
        codec,
        client_kwargs={"extensions": [InvertClient()]},
        server_kwargs={"extensions": [InvertServer()], **server_kwargs},
    )


def test_extension_negotiated_and_applied(codec):
    client, server = connect_inverted(codec)
    assert client.response.headers["Sec-WebSocket-Extensions"] == "x-invert"
    (ext,) = server.extensions
    client.send_text("héllo")
    client.send_binary(b"\x01\x02", fin=False)
    client.send_ping(b"p")
    client.send_continuation(b"\x03", fin=True)
    client.send_text("")  # not marked: never reaches the extension
    wire = client.data_to_send()
    assert "héllo".encode() not in wire  # it really was transformed
    server.receive_data(wire)
    assert server.events_received() == ["héllo", Ping(b"p"), b"\x01\x02\x03", ""]
    assert ext.decoded == [("héllo".encode(), True, True), (b"\x01\x02", True, False), (b"\x03", False, True)]
    server.send_text("back")
    pump(client, server)
    assert client.events_received() == [Pong(b"p"), "back"]


def test_extension_rsv1_only_on_first_frame(codec):
    client, server = connect_inverted(codec)
    client.send_binary(b"a", fin=False)
    client.send_continuation(b"b", fin=True)
    frames = sent_frames(client.data_to_send(), by_client=True, allow_rsv1=True)
    assert [(op, rsv1) for op, _, _, rsv1 in frames] == [(2, True), (0, False)]


def test_extension_decoded_size_counts(codec):
    client, server = connect_inverted(codec, max_size=200)
    client.send_text("x" * 150, fin=False)
    client.send_continuation("y" * 60, fin=True)
    pump(client, server)
    assert type(server.error) is PayloadTooBig
    assert client.events_received()[0].code == 1009


def test_extension_decode_error_fails_with_its_code(codec):
    client, server = connect_inverted(codec)
    server.receive_data(make_frame(2, b"\x00boom", rsv1=True))  # what Invert refuses
    assert type(server.error) is ProtocolError and server.error.close_code == 1007
    client.receive_data(server.data_to_send())
    assert client.events_received() == [Close(1007, "undecodable")]


def test_rsv1_refused_without_extension(codec):
    client, server = connect(codec)
    server.receive_data(make_frame(1, b"x", rsv1=True))
    assert "RSV1" in str(server.error) and server.error.close_code == 1002

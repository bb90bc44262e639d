"""What an open server connection keeps of its opening handshake (issue #18,
idle memory): the request's headers as one string, parsed again on first
access into the same Headers; the 101 as the bytes sent, parsed again into a
Response equal to the one sent; no parser, no negotiation result."""

from __future__ import annotations

import asyncio
import gc
import pickle
from typing import Any, ClassVar, List

import pytest

import fastws
from fastws.asyncio import fastpath
from fastws.compression import extension_factories
from fastws.headers import Headers
from fastws.http11 import RequestParser, Response, parse_request
from fastws.protocol import OPEN, ServerProtocol

from asyncio_helpers import listener_server, run, server

KEY_LINES = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"

# Requests a server accepts, each with something unusual in its headers.
REQUESTS = {
    "minimal": b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    + KEY_LINES + b"\r\n",
    "colons in values": b"GET /x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
    b"Origin: http://example.com:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    + KEY_LINES + b"\r\n",
    "repeated names, mixed case": b"GET / HTTP/1.1\r\nhost: a\r\nUPGRADE: websocket\r\n"
    b"connection: keep-alive\r\nConnection: Upgrade\r\nX-A: 1\r\nx-a: 2\r\n" + KEY_LINES + b"\r\n",
    "empty and spaced values": b"GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Spaces:  a  b \t\r\n"
    b"Upgrade: websocket\r\nConnection: Upgrade\r\n" + KEY_LINES + b"\r\n",
    "obs-text": b"GET / HTTP/1.1\r\nHost: a\r\nX-Latin: caf\xe9\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\n" + KEY_LINES + b"\r\n",
    "deflate offered": b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    + KEY_LINES
    + b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
}


def _reachable(obj: Any) -> List[Any]:
    """What ``obj`` refers to, its instance dict's values included."""
    found = list(gc.get_referents(obj))
    if hasattr(obj, "__dict__"):
        found += list(vars(obj).values())
    return found


def _expected_headers(data: bytes) -> Headers:
    parser = RequestParser()
    request = parser.feed(data)
    assert request is not None
    return request.headers


@pytest.mark.parametrize("name", list(REQUESTS))
@pytest.mark.parametrize("whole", [True, False], ids=["one read", "byte by byte"])
def test_request_headers_read_after_the_101_are_the_ones_received(name, whole):
    data = REQUESTS[name]
    protocol = ServerProtocol(extensions=extension_factories("deflate", None, server=True))
    if whole:
        protocol.receive_data(data)
    else:
        for i in range(len(data)):
            protocol.receive_data(data[i : i + 1])
    assert protocol.state is OPEN
    headers = protocol.request.headers
    # Until read, the headers are one string.
    held = [x for x in gc.get_referents(headers) if x is not None and not isinstance(x, type)]
    assert [type(x) for x in held] == [str]
    expected = _expected_headers(data)
    assert headers.items() == expected.items()
    assert headers == expected
    assert repr(headers) == repr(expected)
    assert len(headers) == len(expected)
    assert headers.keys() == expected.keys()
    for key in expected.keys():
        assert headers.get_all(key) == expected.get_all(key)
    assert protocol.request == parse_request(data)[0]  # type: ignore[index]


@pytest.mark.parametrize(
    "items",
    [[], [("A", "")], [("A", "b:c"), ("a", " d")], [("X", "caf\xe9"), ("Y", "1"), ("X", "2")]],
)
def test_compacted_headers_come_back_the_same_and_stay_usable(items):
    headers = Headers(items)
    headers._compact()
    assert headers.items() == items
    headers._compact()
    assert pickle.loads(pickle.dumps(headers)).items() == items
    assert headers.copy().items() == items
    headers["Z"] = "z"
    assert headers.items() == [*items, ("Z", "z")]
    headers._compact()
    del headers["Z"]
    assert headers.items() == items


def test_the_101_is_kept_as_the_bytes_sent_and_read_back_equal():
    protocol = ServerProtocol(auto_accept=False, extra_headers={"X-Extra": "a: b"})
    protocol.receive_data(REQUESTS["colons in values"])
    sent = protocol.accept()
    sent.headers["X-Added"] = "by a hook"
    protocol.send_response(sent)
    assert protocol.state is OPEN
    held = _reachable(protocol)
    assert not any(isinstance(x, (Response, RequestParser)) for x in held), held
    assert all(x == () for x in held if isinstance(x, tuple)), held  # no negotiation result
    response = protocol.response
    assert response == sent
    assert protocol.response is response  # read once, then kept
    assert protocol.data_to_send() == sent.serialize()


def test_a_refusal_is_kept_as_sent():
    protocol = ServerProtocol(auto_accept=False)
    protocol.receive_data(REQUESTS["minimal"])
    refusal = protocol.reject(404, "Not here.\n")
    protocol.send_response(refusal)
    assert protocol.response is refusal
    assert protocol.response.status_code == 404


def test_a_second_response_is_refused_after_a_101():
    protocol = ServerProtocol(auto_accept=False)
    protocol.receive_data(REQUESTS["minimal"])
    protocol.send_response(protocol.accept())
    with pytest.raises(fastws.exceptions.InvalidState):
        protocol.send_response(protocol.reject(404, "no\n"))


@run
async def test_a_handler_reads_the_request_and_response_of_its_connection():
    seen: List[Any] = []

    async def handler(ws: Any) -> None:
        seen.append((ws.request.path, ws.request.headers.get("X-Token"), ws.response.status_code))
        seen.append(ws.response.headers.get("Upgrade"))
        await ws.send("ok")

    def process_request(connection: Any, request: Any) -> None:
        request.headers["X-Token"] = request.headers.get("X-Token", "") + "+hook"

    async with server(handler, process_request=process_request) as (_, uri):
        async with fastws.connect(
            uri + "chat?room=1", additional_headers={"X-Token": "t:1"}, ping_interval=None
        ) as client:
            assert await client.recv() == "ok"
            assert client.response.status_code == 101
    assert seen == [("/chat?room=1", "t:1+hook", 101), "websocket"]


def test_a_negotiated_permessage_deflate_keeps_its_state_in_slots():
    protocol = ServerProtocol(extensions=extension_factories("deflate", None, server=True))
    protocol.receive_data(REQUESTS["deflate offered"])
    (ext,) = protocol.extensions
    assert not hasattr(ext, "__dict__")
    assert ext.name == "permessage-deflate" and ext._decoder is None


def test_an_extension_subclass_without_slots_keeps_an_instance_dict():
    class Marker(fastws.extensions.Extension):
        name = "x-marker"

        def __init__(self) -> None:
            self.seen = 0

    assert vars(Marker()) == {"seen": 0}


class _Opened(fastws.Listener):
    connections: ClassVar[List[Any]] = []
    opened: ClassVar[asyncio.Event]

    def on_open(self, connection: Any) -> None:
        type(self).connections.append(connection)
        type(self).opened.set()


@run
async def test_an_open_idle_connection_holds_no_future_and_shares_its_dict_keys():
    _Opened.connections = []
    _Opened.opened = asyncio.Event()
    async with listener_server(_Opened) as (_, uri):
        client = await fastws.connect(uri, ping_interval=None)
        await asyncio.wait_for(_Opened.opened.wait(), 5)
        (conn,) = _Opened.connections
        held = _reachable(conn)
        assert not any(isinstance(x, asyncio.Future) for x in held), held
        # CPython shares the keys of instance dicts of up to 30 names; past
        # that each connection holds a table of its own (about 1.3 KB more).
        # (The pure-Python fast path keeps a dozen more in the dict, where
        # the compiled one has C fields.)
        if fastpath.IMPLEMENTATION == "cython":
            assert len(vars(conn)) <= 30, sorted(vars(conn))
        # The futures, made when asked for, say what happened.
        assert conn._opened.done() and conn._opened.exception() is None
        waiting = asyncio.ensure_future(conn.wait_closed())
        await client.close()
        await asyncio.wait_for(waiting, 5)
        assert conn._closed.done()
        assert conn.protocol.response.status_code == 101


def _read_after(start: Any, headers: Headers, seen: List[Any]) -> None:
    start.wait()
    seen.append(headers.items())


def test_compacted_headers_read_by_several_threads_at_once_come_back_whole():
    import sys
    import threading

    items = [(f"X-{i}", str(i)) for i in range(2000)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch within the rebuild
    try:
        for _ in range(20):
            headers = Headers(items)
            headers._compact()
            start = threading.Barrier(4)
            seen: List[Any] = []
            threads = [
                threading.Thread(target=_read_after, args=(start, headers, seen)) for _ in range(4)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert seen == [items] * 4
    finally:
        sys.setswitchinterval(interval)

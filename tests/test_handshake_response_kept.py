"""ServerProtocol.response after a 101 is the Response sent, whatever its
header values: the compact form (the bytes sent, parsed again on first read)
is kept only for a response that parses back equal (issue #18 review)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import pytest

from fastws.http11 import Response
from fastws.protocol import OPEN, ServerProtocol

REQUEST = (
    b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)

CASES: Dict[str, Dict[str, Any]] = {
    "plain values": {"extra_headers": {"X-A": "a: b"}},
    "leading space": {"extra_headers": {"X-A": " padded"}},
    "trailing tab": {"extra_headers": {"X-A": "padded\t"}},
    "server header padded": {"server_header": "Srv "},
    "only spaces": {"extra_headers": {"X-A": "  "}},
    "empty value": {"extra_headers": {"X-A": ""}, "server_header": ""},
}


@pytest.mark.parametrize("options", list(CASES.values()), ids=list(CASES))
@pytest.mark.parametrize("body", [b"", b"unusual body"], ids=["no body", "body"])
def test_the_response_read_after_a_101_equals_the_one_sent(
    options: Dict[str, Any], body: Optional[bytes]
) -> None:
    protocol = ServerProtocol(auto_accept=False, **options)
    protocol.receive_data(REQUEST)
    sent = protocol.accept()
    sent.body = body or b""
    protocol.send_response(sent)
    assert protocol.state is OPEN
    assert protocol.data_to_send() == sent.serialize()
    response = protocol.response
    assert isinstance(response, Response)
    assert response == sent
    assert protocol.response is response

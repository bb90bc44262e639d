"""What ConnectionClosed says: its text, code and reason, from the close frames
received and sent (RFC 6455 section 7.1.5: 1006 when none was received)."""

from __future__ import annotations

import pickle

import pytest

from fastws.events import Close
from fastws.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK

BYE = Close(1000, "bye")
AWAY = Close(1001, "")
ERROR = Close(1002, "reserved opcode 3")
ENDED = Close(1006, "")  # what the protocol reports when TCP ends without a close frame

# (rcvd, sent, rcvd_then_sent, text, code, reason)
CASES = [
    (None, None, None, "no close frame received or sent", 1006, ""),
    (ENDED, None, None, "no close frame received or sent", 1006, ""),
    (None, AWAY, None, "sent 1001; no close frame received", 1006, ""),
    (ENDED, ERROR, False, "sent 1002 (reserved opcode 3); no close frame received", 1006, ""),
    (BYE, None, None, "received 1000 (bye); no close frame sent", 1000, "bye"),
    (BYE, BYE, True, "received 1000 (bye); then sent 1000 (bye)", 1000, "bye"),
    (AWAY, BYE, False, "sent 1000 (bye); then received 1001", 1001, ""),
]


@pytest.mark.parametrize("rcvd, sent, rcvd_then_sent, text, code, reason", CASES)
@pytest.mark.parametrize("cls", [ConnectionClosed, ConnectionClosedOK, ConnectionClosedError])
def test_connection_closed_says_what_happened(cls, rcvd, sent, rcvd_then_sent, text, code, reason):
    exc = cls(rcvd, sent, rcvd_then_sent)
    assert str(exc) == text
    assert (exc.code, exc.reason) == (code, reason)
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is cls and str(copy) == text
    assert (copy.rcvd, copy.sent, copy.rcvd_then_sent) == (rcvd, sent, rcvd_then_sent)


# --- the names websockets users catch -------------------------------------------------------


def websockets_exceptions():
    import websockets.exceptions

    return [getattr(websockets.exceptions, name) for name in websockets.exceptions.__all__]


def test_every_websockets_exception_has_its_fastws_twin():
    import fastws
    import fastws.exceptions

    for theirs in websockets_exceptions():
        ours = getattr(fastws.exceptions, theirs.__name__)
        assert issubclass(ours, fastws.exceptions.WebSocketException), ours
        assert getattr(fastws, theirs.__name__, ours) is ours


def test_the_hierarchy_is_websockets_one():
    """Where websockets makes one exception a kind of another, so does fastws:
    ``except InvalidHandshake`` catches what it catches there."""
    import fastws.exceptions

    for theirs in websockets_exceptions():
        ours = getattr(fastws.exceptions, theirs.__name__)
        for base in theirs.__mro__[1:]:
            if base.__module__ == "websockets.exceptions":
                assert issubclass(ours, getattr(fastws.exceptions, base.__name__)), (ours, base)


def test_websocket_exception_is_fastws_error():
    from fastws.exceptions import FastWSError, WebSocketException

    assert WebSocketException is FastWSError

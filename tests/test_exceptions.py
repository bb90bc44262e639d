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

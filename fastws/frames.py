"""Constants of the WebSocket framing layer: opcodes and close codes (RFC 6455)."""

from __future__ import annotations

import enum

__all__ = [
    "Opcode",
    "CloseCode",
    "DATA_OPCODES",
    "CONTROL_OPCODES",
    "CTRL_OPCODES",
    "OK_CLOSE_CODES",
    "OP_CONT",
    "OP_TEXT",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
]


class Opcode(enum.IntEnum):
    """Frame opcodes (RFC 6455 section 5.2). 3-7 and 11-15 are reserved."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


#: The opcodes of data frames: continuation, text and binary.
DATA_OPCODES = frozenset({Opcode.CONTINUATION, Opcode.TEXT, Opcode.BINARY})
#: The opcodes of control frames: close, ping and pong.
CONTROL_OPCODES = frozenset({Opcode.CLOSE, Opcode.PING, Opcode.PONG})

# The names the websockets library gives them in its ``frames`` module.
OP_CONT = Opcode.CONTINUATION
OP_TEXT = Opcode.TEXT
OP_BINARY = Opcode.BINARY
OP_CLOSE = Opcode.CLOSE
OP_PING = Opcode.PING
OP_PONG = Opcode.PONG
CTRL_OPCODES = CONTROL_OPCODES


class CloseCode(enum.IntEnum):
    """Close status codes (RFC 6455 section 7.4.1 and the IANA registry).

    1005, 1006 and 1015 are reported locally and never sent in a close frame.

    ``str()`` gives the number, as for an ``IntEnum`` from Python 3.11 on
    (``print(exc.rcvd.code)`` prints ``1001`` on every version).
    """

    def __str__(self) -> str:
        return str(self.value)

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


#: The close codes of a clean closure: ``ConnectionClosedOK`` when both close
#: frames carry one of them (no code counts as 1005).
OK_CLOSE_CODES = frozenset({CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY, CloseCode.NO_STATUS_RCVD})

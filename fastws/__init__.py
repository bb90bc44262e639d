"""fastws: a fast, strict WebSocket (RFC 6455) stack with a compiled core.

``fastws.IMPLEMENTATION`` says which codec is active: ``"cython"`` (the compiled
core) or ``"python"`` (the pure-Python twin, forced by ``FASTWS_NO_EXTENSIONS=1``).
"""

from .codec import (
    IMPLEMENTATION,
    Frame,
    FrameParser,
    Utf8Validator,
    apply_mask,
    apply_mask_inplace,
    build_close,
    build_frame,
    parse_close,
    validate_utf8,
)
from .exceptions import FastWSError, InvalidUTF8, PayloadTooBig, ProtocolError
from .frames import CloseCode, Opcode
from .version import __version__

__all__ = [
    "__version__",
    "IMPLEMENTATION",
    # codec
    "apply_mask",
    "apply_mask_inplace",
    "validate_utf8",
    "Utf8Validator",
    "Frame",
    "FrameParser",
    "build_frame",
    "parse_close",
    "build_close",
    # constants
    "Opcode",
    "CloseCode",
    # exceptions
    "FastWSError",
    "ProtocolError",
    "PayloadTooBig",
    "InvalidUTF8",
]

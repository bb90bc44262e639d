"""The fuzz targets: each takes arbitrary bytes and raises when fastws misbehaves.

A target reads its options (parser flags, limits, SIMD level, where to cut the
input into pieces...) from the first bytes of its input with :class:`Reader`,
which never fails (past the end it reads zeros), and uses the rest as the data
under test. So any byte string is a valid input, the same input always does the
same thing, and a coverage-guided fuzzer mutates options and data alike.

A target fails with an AssertionError (the implementations disagree, a
documented bound is broken, the wrong exception type...) or with whatever
unexpected exception fastws raised (a crash). Documented errors are caught and
checked: ``ProtocolError`` with the right close code from the codec,
``InvalidMessage``/``InvalidHandshake`` from the HTTP layer, 1007/1009 from
inflate; the sans-I/O protocol must never raise on peer input at all.

The codec modules under test are arguments (``cy``, ``py``): the tests pass
deliberately broken ones to prove that a target can fail.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import zlib
from typing import Callable, Dict, List, Optional

from fastws.exceptions import (
    InvalidHandshake,
    InvalidHeader,
    InvalidMessage,
    InvalidURI,
    PayloadTooBig,
    ProtocolError,
)

__all__ = ["TARGETS", "Reader", "load_codecs"]


# --- reading options from the input ---------------------------------------------------


class Reader:
    """Consumes a fuzzer's input: option bytes first, then the data (``rest``).
    Past the end every read gives zeros, so no input is ever rejected."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.pos = 0

    def byte(self) -> int:
        if self.pos < len(self.data):
            b = self.data[self.pos]
            self.pos += 1
            return b
        return 0

    def u16(self) -> int:
        return (self.byte() << 8) | self.byte()

    def pick(self, seq):
        return seq[self.byte() % len(seq)]

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.pos)

    def remaining(self) -> int:
        return len(self.data) - self.pos


class Splitter:
    """Where to cut the data into pieces, and as which type to pass each piece,
    read from the input before the data itself: a count byte (0 to 15 cuts), two
    bytes per cut (taken modulo the data length) and a byte of piece types."""

    __slots__ = ("cuts", "kinds")

    def __init__(self, reader: Reader, max_cuts: int = 15) -> None:
        count = reader.byte() % (max_cuts + 1)
        self.cuts = [reader.u16() for _ in range(count)]
        self.kinds = reader.byte()

    def split(self, data: bytes) -> list:
        """``data`` in pieces: bytes, bytearray or a memoryview of a larger buffer
        (an offset start, to catch alignment assumptions)."""
        n = len(data)
        bounds = [0, *sorted(c % (n + 1) for c in self.cuts), n]
        pieces = []
        for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
            kind = (self.kinds >> (2 * (i % 4))) & 3
            chunk = data[a:b]
            if kind == 1:
                pieces.append(bytearray(chunk))
            elif kind == 2:
                pieces.append(memoryview(b"\xa5" + chunk + b"\x5a")[1:-1])
            else:
                pieces.append(chunk)
        return pieces


# --- codec modules ----------------------------------------------------------------------


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def load_codecs():
    """``(compiled or None, pure)``. The compiled one is None when it is not built,
    unless ``FASTWS_REQUIRE_EXTENSIONS`` is set (then ImportError) - the
    differential targets then only check the pure twin on its own."""
    py = importlib.import_module("fastws._codec_py")
    try:
        cy = importlib.import_module("fastws._speedups")
    except ImportError:
        if _flag("FASTWS_REQUIRE_EXTENSIONS"):
            raise
        cy = None
    return cy, py


_CODECS: Optional[tuple] = None


def _codecs(cy, py):
    global _CODECS
    if cy is None and py is None:
        if _CODECS is None:
            _CODECS = load_codecs()
        return _CODECS
    return cy, py


SIMD_LEVELS = ("avx2", "generic")


@contextlib.contextmanager
def simd_level(module, level: str):
    """Run with the compiled module's kernels switched to ``level`` (no-op for a
    module without SIMD levels, or when the CPU lacks ``level``)."""
    get = getattr(module, "simd_level", None)
    set_ = getattr(module, "_set_simd_level", None)
    if get is None or set_ is None:
        yield
        return
    original = get()
    try:
        try:
            set_(level)
        except ValueError:
            pass
        yield
    finally:
        set_(original)


def _usable_levels(module) -> List[str]:
    if module is None or getattr(module, "_set_simd_level", None) is None:
        return []
    levels = []
    for level in SIMD_LEVELS:
        with simd_level(module, level):
            if module.simd_level() == level:
                levels.append(level)
    return levels


_LEVELS: Dict[int, List[str]] = {}


def levels_of(module) -> List[str]:
    key = id(module)
    if key not in _LEVELS:
        _LEVELS[key] = _usable_levels(module)
    return _LEVELS[key]


# --- target: FrameParser, compiled against pure -----------------------------------------

MAX_SIZES = (None, 0, 1, 5, 125, 126, 1000, 65535, 65536, 2**63 - 1, 2**64)


def _frame_tuple(frame):
    return (int(frame.opcode), frame.fin, frame.rsv1, frame.rsv2, frame.rsv3, frame.payload)


def _error_tuple(exc):
    return (type(exc).__name__, getattr(exc, "close_code", None), str(exc))


def _parse_log(module, options: dict, pieces: list) -> list:
    """What feeding ``pieces`` to ``module.FrameParser(**options)`` gives, call by
    call: frames, buffered, pending state; or the error with its frames, and the
    error a later call raises again. Checks the bounds on the way."""
    parser = module.FrameParser(**options)
    max_size = options["max_size"]
    log: list = []
    for piece in pieces:
        try:
            frames = parser.feed(piece)
        except ProtocolError as exc:
            assert exc.close_code in (1002, 1009), exc.close_code
            assert (exc.close_code == 1009) is isinstance(exc, PayloadTooBig), exc
            log.append(("error", _error_tuple(exc), [_frame_tuple(f) for f in exc.frames]))
            try:
                parser.feed(b"\x81\x00")
            except ProtocolError as again:
                log.append(("again", _error_tuple(again), again.frames, parser.buffered,
                            parser.pending(), parser.pending_payload()))
            else:
                raise AssertionError("a failed parser accepted more data")
            break
        if type(piece) is bytearray:
            # The parser must not keep a reference to the caller's buffer.
            piece[:] = b"\xcc" * len(piece)
        for frame in frames:
            assert type(frame.payload) is bytes
            if max_size is not None:
                assert len(frame.payload) <= max_size, (len(frame.payload), max_size)
            if frame.opcode >= 8:
                assert frame.fin and len(frame.payload) <= 125 and not frame.rsv1
        pending = parser.pending()
        if pending is not None:
            pending = (int(pending[0]), *pending[1:])
            assert pending[3] <= parser.buffered
        log.append(("frames", [_frame_tuple(f) for f in frames], parser.buffered, pending,
                    parser.pending_payload(), parser.pending_payload(3)))
    return log


def frame_parser(data: bytes, cy=None, py=None) -> None:
    """FrameParser: the compiled parser (every SIMD level) and the pure twin give
    the same frames, buffered sizes, pending states and errors (type, message,
    close code, frames before the error), whatever the input and however it is
    cut."""
    cy, py = _codecs(cy, py)
    r = Reader(data)
    flags = r.byte()
    options = {
        "mask_required": bool(flags & 1),
        "allow_rsv1": bool(flags & 2),
        "max_size": r.pick(MAX_SIZES),
    }
    splitter = Splitter(r)
    wire = r.rest()
    expected = _parse_log(py, options, splitter.split(wire))
    if cy is None:
        return
    for level in levels_of(cy) or [None]:
        with simd_level(cy, level):
            got = _parse_log(cy, options, splitter.split(wire))
        assert got == expected, f"compiled ({level}) and pure parsers disagree:\n{got}\n{expected}"


# --- target: UTF-8 validation -----------------------------------------------------------


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _valid_prefix(data: bytes) -> bool:
    """Reference: ``data`` can still become valid UTF-8 (complete a trailing
    partial sequence with 1 to 3 bytes; one of 80, 90, A0 suits any second byte)."""
    if _decodes(data):
        return True
    for extra in range(1, 4):
        for second in (0x80, 0x90, 0xA0):
            if _decodes(data + bytes([second]) + b"\x80" * (extra - 1)):
                return True
    return False


def _validator_log(module, pieces: list, data: bytes) -> list:
    v = module.Utf8Validator()
    log = []
    fed = 0
    for piece in pieces:
        ok = v.feed(piece)
        fed += len(piece)
        prefix = data[:fed]
        log.append((ok, v.valid, v.complete))
        assert ok is _valid_prefix(prefix), (module.__name__, prefix)
        assert v.valid is ok
        assert v.complete is (ok and _decodes(prefix)), (module.__name__, prefix)
    assert (v.complete and all(entry[0] for entry in log)) is _decodes(data)
    v.reset()
    assert v.valid and v.complete
    assert v.feed(data) is _valid_prefix(data)
    assert v.complete is _decodes(data)
    return log


def _first_bad_byte(text: bytes):
    """Reference for scan_utf8: ``(index of the first byte that no valid UTF-8
    text can have there, or -1; the incomplete sequence at the end, if valid)``."""
    try:
        text.decode("utf-8")
        return -1, b""
    except UnicodeDecodeError as exc:
        start = exc.start
    for j in range(start, min(start + 4, len(text))):
        if not _valid_prefix(text[start : j + 1]):
            return j, b""
    return -1, text[start:]  # cut short by the end: still valid


def _scan_log(module, pieces: list) -> tuple:
    """scan_utf8 over ``pieces``, carrying ``pending`` from call to call: the
    index of the first invalid byte in the whole text (-1 if none) and the
    pending bytes at the end."""
    pending = b""
    offset = 0
    for piece in pieces:
        index, pending = module.scan_utf8(piece, pending)
        if index >= 0:
            assert index < len(piece) and pending == b"", (index, len(piece), pending)
            return offset + index, b""
        assert type(pending) is bytes and len(pending) <= 3
        offset += len(piece)
    return -1, pending


def utf8(data: bytes, cy=None, py=None) -> None:
    """validate_utf8 and Utf8Validator (any chunking) agree with CPython's strict
    decoder, for the pure twin and for the compiled module at every SIMD level."""
    cy, py = _codecs(cy, py)
    r = Reader(data)
    flags = r.byte()
    # ASCII before the data moves it across the 32- and 128-byte SIMD blocks.
    pad = b"a" * (r.byte() if flags & 1 else 0)
    repeat = 1 + ((flags >> 1) & 3)  # long inputs reach the unrolled loops
    splitter = Splitter(r)
    text = pad + r.rest() * repeat
    expected = _decodes(text)
    pieces = splitter.split(text)
    runs = [(py, None)] + [(cy, level) for level in (levels_of(cy) or [None])] if cy else [(py, None)]
    logs = []
    for module, level in runs:
        with simd_level(module, level):
            for form in (text, bytearray(text), memoryview(b"\x00" + text)[1:]):
                got = module.validate_utf8(form)
                assert got is expected, (module.__name__, level, type(form).__name__, text)
            logs.append(_validator_log(module, pieces, text))
            if hasattr(module, "scan_utf8"):  # issue #7: the failure index too
                got = _scan_log(module, pieces)
                assert got == _first_bad_byte(text), (module.__name__, level, got, text)
    assert all(log == logs[0] for log in logs), logs


# --- target: HTTP parsers and the opening handshake -------------------------------------

_REQUEST_LIMITS = (
    {},
    {"max_line": 16},
    {"max_headers": 2},
    {"max_header_bytes": 128},
    {"max_line": 64, "max_headers": 4, "max_header_bytes": 200},
)
_MAX_BODIES = (1 << 20, 0, 10, 100)
_STATUSES = {400, 414, 431, 505}
#: RFC 6455's sample key, so that seeds can carry a matching Sec-WebSocket-Accept.
SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def _limits(parser) -> tuple:
    return parser.max_line, parser.max_headers, parser.max_header_bytes


def _check_error_response(exc: InvalidHandshake) -> None:
    """A server's answer to a handshake error is a well-formed HTTP response."""
    from fastws.handshake import error_response
    from fastws.http11 import ResponseParser

    response = error_response(exc, server_header="fuzz")
    parsed = ResponseParser().feed(response.serialize())
    assert parsed is not None and parsed.status_code == exc.http_status, (exc, parsed)
    assert parsed.body == response.body


def _server_side(request) -> None:
    """What ServerProtocol does with a parsed request: only InvalidHandshake may
    come out, and an accepted handshake gives a response that a client accepts."""
    from fastws.deflate import ClientPerMessageDeflateFactory, ServerPerMessageDeflateFactory
    from fastws.handshake import (
        build_response,
        check_origin,
        negotiate_client_extensions,
        negotiate_server_extensions,
        offered_subprotocols,
        select_subprotocol,
        validate_request,
        validate_response,
    )
    from fastws.http11 import ResponseParser

    factories = [
        ServerPerMessageDeflateFactory(),
        ServerPerMessageDeflateFactory(
            server_no_context_takeover=True,
            client_no_context_takeover=True,
            server_max_window_bits=9,
            client_max_window_bits=8,
            require_client_max_window_bits=True,
        ),
    ]
    try:
        key = validate_request(request)
        check_origin(request, [None, "https://example.com"])
        offered = offered_subprotocols(request)
        subprotocol = select_subprotocol(offered, ["chat", "superchat"])
        ext_header, extensions = negotiate_server_extensions(request, factories)
    except InvalidHandshake as exc:
        _check_error_response(exc)
        return
    response = build_response(key, subprotocol=subprotocol, extensions=ext_header)
    parsed = ResponseParser().feed(response.serialize())
    assert parsed is not None
    assert validate_response(parsed, key, offered) == subprotocol
    accepted = negotiate_client_extensions(parsed.headers, [ClientPerMessageDeflateFactory()])
    assert [e.name for e in accepted] == [e.name for e in extensions]


def _client_side(response) -> None:
    from fastws.deflate import ClientPerMessageDeflateFactory
    from fastws.handshake import negotiate_client_extensions, validate_response

    factories = [
        ClientPerMessageDeflateFactory(server_max_window_bits=10, server_no_context_takeover=True),
        ClientPerMessageDeflateFactory(),
    ]
    try:
        validate_response(response, SAMPLE_KEY, ["chat"])
        negotiate_client_extensions(response.headers, factories)
    except InvalidHandshake:
        pass


def _fail_again(parser) -> None:
    """A failed parser raises its error again, and has dropped its buffer."""
    try:
        parser.feed(b"GET / HTTP/1.1\r\n")
    except InvalidMessage:
        pass
    else:
        raise AssertionError("a failed HTTP parser accepted more data")
    assert len(parser._buf) == 0


def _request(r: Reader) -> None:
    from fastws.http11 import RequestParser

    limits = r.pick(_REQUEST_LIMITS)
    parser = RequestParser(**limits)
    max_line, max_headers, max_header_bytes = _limits(parser)
    splitter = Splitter(r)
    data = r.rest()
    fed = 0
    request = None
    for piece in splitter.split(data):
        try:
            request = parser.feed(piece)
        except InvalidMessage as exc:
            assert exc.http_status in _STATUSES, exc.http_status
            _fail_again(parser)
            _check_error_response(exc)
            return
        fed += len(piece)
        if request is not None:
            break
        # Memory kept while waiting: bounded by the limits, not by the input.
        assert len(parser._buf) <= max_header_bytes, (len(parser._buf), limits)
    if request is None:
        return
    head = fed - len(parser.trailing)
    assert 0 < head <= max_header_bytes, (head, limits)
    assert data[head:fed] == parser.trailing
    assert len(request.headers) <= max_headers
    # What was parsed serializes to something that parses to the same request.
    again = RequestParser().feed(request.serialize())
    assert again == request, (again, request)
    _server_side(request)


def _response(r: Reader) -> None:
    from fastws.http11 import ResponseParser

    flags = r.byte()
    limits = r.pick(_REQUEST_LIMITS)
    max_body = r.pick(_MAX_BODIES)
    parser = ResponseParser(max_body=max_body, **limits)
    splitter = Splitter(r)
    data = r.rest()
    response = None
    try:
        for piece in splitter.split(data):
            response = parser.feed(piece)
            if response is not None:
                break
            assert len(parser._body) <= max_body
            assert len(parser._buf) <= max(parser.max_header_bytes, parser.max_line + 2) + len(piece)
        if response is None and flags & 1:
            response = parser.feed_eof()
    except InvalidMessage as exc:
        assert exc.http_status in _STATUSES, exc.http_status
        _fail_again(parser)
        return
    if response is None:
        return
    assert len(response.body) <= max_body, (len(response.body), max_body)
    assert len(response.headers) <= parser.max_headers
    _client_side(response)


def _grammars(r: Reader) -> None:
    """Header grammars and URIs on arbitrary text: only their documented errors,
    and what they parse rebuilds to what parses the same."""
    from fastws.handshake import (
        build_extension_list,
        parse_extension_list,
        parse_token_list,
        parse_uri,
    )

    flags = r.byte()
    raw = r.rest()
    text = raw.decode("latin-1")
    try:
        extensions = parse_extension_list(text)
    except InvalidHeader:
        pass
    else:
        assert parse_extension_list(build_extension_list(extensions)) == extensions
    try:
        tokens = parse_token_list(text, allow_slash=bool(flags & 1))
    except InvalidHeader:
        pass
    else:
        assert parse_token_list(", ".join(tokens), allow_slash=bool(flags & 1)) == tokens
    uri_text = raw.decode("utf-8", "replace")
    if flags & 2:
        uri_text = "ws://" + uri_text
    try:
        uri = parse_uri(uri_text)
    except InvalidURI:
        return
    assert 0 <= uri.port <= 65535 and uri.host
    # The request for it is a valid HTTP request.
    from fastws.handshake import build_request
    from fastws.http11 import RequestParser

    try:
        request = build_request(uri, SAMPLE_KEY)
    except ValueError:
        return  # a header value the URI cannot give (reported by Headers)
    parsed = RequestParser().feed(request.serialize())
    assert parsed == request


def http(data: bytes) -> None:
    """RequestParser, ResponseParser (with small and default limits, input cut
    anywhere), the server and client handshake checks, the header grammars and
    parse_uri: only the documented exceptions (InvalidMessage with its HTTP
    status, InvalidHandshake, InvalidHeader, InvalidURI), memory bounded by the
    limits, and round trips that parse back the same."""
    r = Reader(data)
    mode = r.byte() % 3
    (_request, _response, _grammars)[mode](r)


# --- target: permessage-deflate inflate ---------------------------------------------------

_TAIL = b"\x00\x00\xff\xff"
_INFLATE_MAX = (None, 0, 1, 10, 100, 1000, 65536, 1 << 20)


def _reference_decoder(bits: int):
    return zlib.decompressobj(wbits=-(9 if bits == 8 else bits))


def _inflate_frames(r: Reader, flags: int) -> None:
    from fastws.deflate import PerMessageDeflate

    bits = 8 + (flags & 7)
    no_context_takeover = bool(flags & 8)
    max_size = _INFLATE_MAX[(flags >> 4) & 7]

    def fresh():
        return PerMessageDeflate(
            remote_no_context_takeover=no_context_takeover, remote_max_window_bits=bits
        )

    ext = fresh()
    ref = None
    size = None  # bytes of the current message so far; None between messages
    frames = 0
    while r.remaining() and frames < 64:
        frames += 1
        head = r.byte()
        fin = bool(head & 1)
        length = r.u16() % 8192 if head & 2 else head >> 2
        payload = r.take(length)
        first = size is None
        if first:
            size = 0
        remaining = None if max_size is None else max_size - size
        # The reference: the same zlib calls without a limit on the output.
        if first and (ref is None or ref.eof):
            ref = _reference_decoder(bits)
        try:
            want = ref.decompress(payload + _TAIL if fin else payload)
            ref_error = ref.eof and ref.unused_data and not (fin and ref.unused_data == _TAIL)
        except zlib.error:
            want, ref_error = None, True
        try:
            got = ext.decode(payload, first=first, fin=fin, max_size=remaining)
        except ProtocolError as exc:
            if isinstance(exc, PayloadTooBig):
                assert exc.close_code == 1009
                assert ref_error or len(want) > remaining, (len(want), remaining)
            else:
                assert exc.close_code == 1007, exc
                assert ref_error, (exc, want)
            # The protocol fails the connection: start over as a new one.
            ext, ref, size = fresh(), None, None
            continue
        assert type(got) is bytes
        assert not ref_error, "inflate accepted what zlib refuses"
        assert got == want, (len(got), len(want))
        if remaining is not None:
            assert len(got) <= remaining
        size += len(got)
        if fin:
            size = None
            if no_context_takeover:
                ref = None


def _inflate_round_trip(r: Reader, flags: int) -> None:
    from fastws.deflate import PerMessageDeflate

    bits = 8 + (flags & 7)
    no_context_takeover = bool(flags & 8)
    level = (flags >> 4) & 7
    sender = PerMessageDeflate(
        local_no_context_takeover=no_context_takeover, local_max_window_bits=bits, level=level,
        min_size=r.byte() % 40,
    )
    receiver = PerMessageDeflate(
        remote_no_context_takeover=no_context_takeover, remote_max_window_bits=bits
    )
    messages = 0
    while r.remaining() and messages < 32:
        messages += 1
        fragments = 1 + r.byte() % 4
        parts = [r.take(r.u16() % 4096) for _ in range(fragments)]
        compressed = None
        out = []
        for i, part in enumerate(parts):
            first, fin = i == 0, i == fragments - 1
            data, rsv1 = sender.encode(part, first=first, fin=fin)
            if first:
                compressed = rsv1
            if compressed:
                out.append(receiver.decode(data, first=first, fin=fin, max_size=None))
            else:
                out.append(data)
        assert b"".join(out) == b"".join(parts)


def inflate(data: bytes) -> None:
    """PerMessageDeflate.decode on arbitrary frames (any window bits, context
    takeover or not, with a max_size): only ProtocolError 1007 (bad data) and
    PayloadTooBig 1009, never more output than the bytes left under max_size, and
    exactly what an unbounded zlib inflater gives when that fits. Also encode
    then decode gives back the messages."""
    r = Reader(data)
    flags = r.byte()
    if flags & 0x80:
        _inflate_round_trip(r, flags)
    else:
        _inflate_frames(r, flags)


# --- target: the sans-I/O protocol --------------------------------------------------------

_PROTOCOL_MAX_SIZES = (None, 0, 1, 124, 125, 1000, 65536)
CLIENT_URI = "ws://example.com/chat"


def _handshake_request(deflate: bool) -> bytes:
    lines = [
        "GET /chat HTTP/1.1",
        "Host: example.com",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {SAMPLE_KEY}",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: chat",
    ]
    if deflate:
        lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _event(event):
    from fastws.events import Close, Ping, Pong
    from fastws.http11 import Request, Response

    if type(event) in (str, bytes):
        return event
    if type(event) in (Ping, Pong):
        assert type(event.data) is bytes and len(event.data) <= 125
        return (type(event).__name__, event.data)
    if type(event) is Close:
        return ("Close", int(event.code), event.reason)
    if isinstance(event, Request):
        return ("Request", event.method, event.path, event.headers.items())
    if isinstance(event, Response):
        # The accept value answers the client's random key: not compared.
        headers = [(n, v) for n, v in event.headers.items() if n.lower() != "sec-websocket-accept"]
        return ("Response", event.status_code, headers, event.body)
    raise AssertionError(f"undocumented event {event!r}")


def _run_protocol(module, mode: int, flags: int, extra: int, max_size, pieces: list) -> list:
    """Flags: 4 a valid handshake first, 8 permessage-deflate, 16 defer_failure;
    extra: 1 receive_eof at the end, the next bits the deflate window."""
    from fastws.deflate import (
        ClientPerMessageDeflateFactory,
        PerMessageDeflate,
        ServerPerMessageDeflateFactory,
    )
    from fastws.handshake import accept_key, build_response
    from fastws.protocol import ClientProtocol, Protocol, ServerProtocol, Side, State

    deflate = bool(flags & 8)
    defer = bool(flags & 16)
    prefix = b""
    if mode == 0:
        protocol = ServerProtocol(
            subprotocols=["chat"],
            extensions=[ServerPerMessageDeflateFactory()] if deflate else None,
            max_size=max_size,
            codec=module,
            defer_failure=defer,
        )
        if flags & 4:
            prefix = _handshake_request(deflate)
    elif mode == 1:
        protocol = ClientProtocol(
            CLIENT_URI,
            subprotocols=["chat"],
            extensions=[ClientPerMessageDeflateFactory()] if deflate else None,
            max_size=max_size,
            codec=module,
            defer_failure=defer,
        )
        if flags & 4:
            ext = "permessage-deflate; client_max_window_bits=12" if deflate else None
            prefix = build_response(protocol.key, subprotocol="chat", extensions=ext).serialize()
            assert accept_key(protocol.key) in prefix.decode()
    else:
        side = Side.SERVER if mode == 2 else Side.CLIENT
        extensions = [PerMessageDeflate(remote_max_window_bits=8 + ((extra >> 1) & 7))] if deflate else None
        protocol = Protocol(side, max_size=max_size, codec=module, extensions=extensions,
                            defer_failure=defer)
    protocol.data_to_send()  # the client's request: random key, not compared
    log: list = []
    for piece in ([prefix] if prefix else []) + pieces:
        protocol.receive_data(piece)
        log.append(("events", [_event(e) for e in protocol.events_received()]))
        out = protocol.data_to_send()
        log.append(("out", out if protocol.side is Side.SERVER else len(out)))
    for event in log:
        if event[0] == "events" and max_size is not None:
            for message in event[1]:
                if type(message) in (str, bytes):
                    size = len(message.encode()) if type(message) is str else len(message)
                    assert size <= max_size, (size, max_size)
    error = protocol.error
    assert error is None or isinstance(error, (ProtocolError, InvalidHandshake)), repr(error)
    if isinstance(error, ProtocolError):
        # The close frame names the error's code (after fail_pending() with defer_failure).
        if defer:
            assert protocol.pending_failure is error or protocol.close_sent is not None
            protocol.fail_pending()
        assert protocol.close_sent is not None, error
        assert int(protocol.close_sent.code) == error.close_code, (protocol.close_sent, error)
        log.append(("failure", protocol.data_to_send() if protocol.side is Side.SERVER else None))
    if extra & 1:
        protocol.receive_eof()
        log.append(("eof", [_event(e) for e in protocol.events_received()]))
        assert protocol.state is State.CLOSED
    log.append((
        "end",
        protocol.state.name,
        None if error is None else _error_tuple(error),
        protocol.close_code,
        protocol.close_reason,
        protocol.should_close_transport(),
    ))
    return log


def protocol(data: bytes, cy=None, py=None) -> None:
    """ServerProtocol and ClientProtocol (from the opening handshake, or with a
    valid handshake first), and open Protocol objects, with or without
    permessage-deflate, fed arbitrary bytes cut anywhere: receive_data and
    receive_eof never raise, events are only the documented ones, no message
    is larger than max_size, a failure sends a close frame with its error's
    code, and the compiled and pure codecs give the same events, errors and
    (server side) the same bytes out."""
    cy, py = _codecs(cy, py)
    r = Reader(data)
    flags = r.byte()
    mode = flags & 3
    extra = r.byte()
    max_size = r.pick(_PROTOCOL_MAX_SIZES)
    splitter = Splitter(r)
    wire = r.rest()
    expected = _run_protocol(py, mode, flags, extra, max_size, splitter.split(wire))
    if cy is not None:
        got = _run_protocol(cy, mode, flags, extra, max_size, splitter.split(wire))
        assert got == expected, f"compiled and pure codecs disagree:\n{got}\n{expected}"


#: name -> function(data); the names are the corpus directories.
TARGETS: Dict[str, Callable[[bytes], None]] = {
    "frame_parser": frame_parser,
    "utf8": utf8,
    "http": http,
    "inflate": inflate,
    "protocol": protocol,
}

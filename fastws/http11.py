"""HTTP/1.1 for the opening handshake: request and response objects, and
incremental parsers with limits (RFC 7230). Their headers are
:class:`~fastws.headers.Headers` (also importable from here).

Only what a WebSocket handshake needs: a request has no body (a body is refused),
a response may have one (an error page) delimited by ``Content-Length``, chunked
encoding, or the end of the stream. Lines must end with CRLF. Header values are
decoded as Latin-1 (lossless: every byte maps to one code point) and header names
are matched case-insensitively.

Parse errors raise :class:`~fastws.exceptions.InvalidMessage`, whose
``http_status`` is the status a server answers with: 400, 414 (request line too
long), 431 (header line too long, too many headers, headers too large), 505 (an
HTTP major version other than 1).
"""

from __future__ import annotations

import http
import re
from dataclasses import dataclass, field
from typing import Callable, Generic, Optional, Tuple, TypeVar

from .exceptions import (
    HeaderLineTooLong,
    InvalidMessage,
    InvalidProtocol,
    RequestLineTooLong,
    StatusLineTooLong,
    TooManyHeaders,
)
from .headers import FIELD_VALUE, TOKEN, Headers, HeadersLike, _as_headers

__all__ = [
    "Headers",
    "HeadersLike",
    "Request",
    "Response",
    "RequestParser",
    "ResponseParser",
    "parse_request",
    "MAX_LINE",
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "MAX_BODY",
]

#: Longest request line, status line or header line, without its CRLF.
MAX_LINE = 8192
#: Most header lines in one message.
MAX_HEADERS = 128
#: Most bytes in the start line and headers together, CRLFs included.
MAX_HEADER_BYTES = 65536
#: Largest response body the client keeps (an error page).
MAX_BODY = 1 << 20

_VERSION = re.compile(rb"HTTP/([0-9])\.([0-9])")
_STATUS = re.compile(rb"[0-9]{3}")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_REASON = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_DIGITS = re.compile(r"[0-9]+")  # a Content-Length value (a str: headers are decoded)

# The one-pass parse of a request that came whole (parse_request): a request
# line that is certainly valid, and header lines that certainly follow the
# grammar. Anything these refuse goes to the incremental parser, which finds
# the precise error; so they may be stricter than it, never laxer.
_REQUEST_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (/[\x21-\x7e]*) (HTTP/1\.[0-9])")
_HEADER_LINES = re.compile(r"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r\n)*")
# Every phrase of http.HTTPStatus: a reason phrase known to be valid.
_STANDARD_REASONS = frozenset(status.phrase for status in http.HTTPStatus)

@dataclass
class Request:
    """An HTTP request: the client's opening handshake.

    Attributes:
        path (str): The request target: path and query, such as ``/chat?room=1``.
        headers (Headers): The request's headers.
        method (str): The method, ``"GET"`` for a handshake.
        version (str): The HTTP version, ``"HTTP/1.1"``.
    """

    path: str
    headers: Headers = field(default_factory=Headers)
    method: str = "GET"
    version: str = "HTTP/1.1"

    def __post_init__(self) -> None:
        self.headers = _as_headers(self.headers)

    def serialize(self) -> bytes:
        """The request as bytes: request line, headers and the blank line.

        Raises:
            ValueError: If the method is not a token or the path is not a valid
                request target.
        """
        if not TOKEN.fullmatch(self.method):
            raise ValueError(f"invalid method {self.method!r}")
        target = self.path.encode("ascii", "strict")
        if not _TARGET.fullmatch(target):
            raise ValueError(f"invalid request target {self.path!r}")
        return (
            f"{self.method} {self.path} {self.version}\r\n".encode("ascii")
            + self.headers.serialize()
            + b"\r\n"
        )


@dataclass
class Response:
    """An HTTP response: the server's opening handshake, or a refusal with a body.

    Attributes:
        status_code (int): The status, 101 for an accepted handshake.
        reason_phrase (str): The reason phrase; the standard phrase of
            ``status_code`` if left empty.
        headers (Headers): The response's headers.
        body (bytes): The body (an error page), empty for a 101.
        version (str): The HTTP version, ``"HTTP/1.1"``.

    Raises:
        ValueError: If ``status_code`` is not between 100 and 999.
    """

    status_code: int
    reason_phrase: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = "HTTP/1.1"

    def __post_init__(self) -> None:
        self.status_code = int(self.status_code)
        if not 100 <= self.status_code <= 999:
            raise ValueError(f"invalid status code {self.status_code}")
        if not self.reason_phrase:
            try:
                self.reason_phrase = http.HTTPStatus(self.status_code).phrase
            except ValueError:
                self.reason_phrase = ""
        self.headers = _as_headers(self.headers)
        self.body = bytes(self.body)

    @property
    def status(self) -> int:
        """Alias of :attr:`status_code`."""
        return self.status_code

    def serialize(self) -> bytes:
        """The response as bytes: status line, headers, the blank line and the body.

        Raises:
            ValueError: If the reason phrase has a forbidden character.
        """
        reason = self.reason_phrase
        if reason not in _STANDARD_REASONS and (
            not _REASON.fullmatch(reason.encode("latin-1")) or "\r" in reason
        ):
            raise ValueError(f"invalid reason phrase {reason!r}")
        return (
            f"{self.version} {self.status_code} {self.reason_phrase}\r\n".encode("latin-1")
            + self.headers.serialize()
            + b"\r\n"
            + self.body
        )


# --- parsing --------------------------------------------------------------------


#: What a parser makes of the start line (RequestParser: method, target, version;
#: ResponseParser: version, status, reason).
_StartLine = TypeVar("_StartLine")


class _HeadParser(Generic[_StartLine]):
    """Start line and header lines, fed incrementally. Subclasses parse the start
    line and decide what follows the blank line."""

    _line_status = 400  # status for a start line longer than max_line
    _line_error: type[InvalidMessage] = StatusLineTooLong  # and its exception

    def __init__(
        self,
        *,
        max_line: int = MAX_LINE,
        max_headers: int = MAX_HEADERS,
        max_header_bytes: int = MAX_HEADER_BYTES,
    ) -> None:
        self.max_line = max_line
        self.max_headers = max_headers
        self.max_header_bytes = max_header_bytes
        self._buf = bytearray()
        self._pos = 0  # start of the first line not parsed yet
        self._start: Optional[_StartLine] = None  # parsed start line
        self._headers = Headers._trusted([])
        self._head_done = False
        self._error: Optional[InvalidMessage] = None

    def _fail(
        self, message: str, status: int = 400, kind: type[InvalidMessage] = InvalidMessage
    ) -> InvalidMessage:
        self._error = kind(message, http_status=status)
        self._buf.clear()
        self._pos = 0
        return self._error

    def _feed_head(self, data) -> bool:
        """Consume header lines; True once the blank line after them was read."""
        buf = self._buf
        buf += data
        pos = self._pos
        while True:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                if self._start is None:
                    # Fail on the first byte that cannot be in a start line: a peer
                    # speaking another protocol (a TLS ClientHello, binary) gets its
                    # answer at once, not after max_line bytes or a timeout.
                    self._check_start_prefix(buf)
                pending = len(buf) - pos
                if pending > self.max_line + 1:  # +1: the CR may be there already
                    raise self._line_too_long()
                if len(buf) > self.max_header_bytes:
                    raise self._fail(
                        f"headers exceed {self.max_header_bytes} bytes", 431, TooManyHeaders
                    )
                self._pos = pos
                return False
            if nl + 1 > self.max_header_bytes:
                raise self._fail(f"headers exceed {self.max_header_bytes} bytes", 431)
            if nl == pos or buf[nl - 1] != 0x0D:
                raise self._fail("line ends with LF instead of CRLF")
            line = bytes(buf[pos : nl - 1])
            if len(line) > self.max_line:
                raise self._line_too_long()
            pos = nl + 1
            if self._start is None:
                self._start = self._parse_start_line(line)
            elif not line:
                self._pos = pos
                self._head_done = True
                return True
            else:
                self._parse_header_line(line)

    #: A byte that cannot appear in the start line (CR is checked at its end).
    _start_forbidden = re.compile(rb"[^\x20-\x7e\r]")

    def _check_start_prefix(self, buf) -> None:
        bad = self._start_forbidden.search(buf)
        if bad is not None:
            if buf[:1] == b"\x16":
                raise self._fail("TLS handshake received on a plain-text port")
            spaces = buf.count(b" ", 0, bad.start())
            part = self._start_parts[min(spaces, len(self._start_parts) - 1)]
            raise self._fail(f"invalid {part}: byte {bytes(buf[bad.start() : bad.start() + 1])!r}")

    _start_parts: Tuple[str, ...] = ("start line",)

    def _line_too_long(self) -> InvalidMessage:
        if self._start is None:
            status = self._line_status
            what = "start line"
            kind = self._line_error
        else:
            status = 431
            what = "header line"
            kind = HeaderLineTooLong
        return self._fail(f"{what} longer than {self.max_line} bytes", status, kind)

    def _parse_start_line(self, line: bytes) -> _StartLine:
        raise NotImplementedError

    def _start_line(self) -> _StartLine:
        """The parsed start line, once :meth:`_feed_head` has read it."""
        start = self._start
        if start is None:
            raise RuntimeError("the start line was not parsed yet")
        return start

    def _parse_header_line(self, line: bytes) -> None:
        if len(self._headers) >= self.max_headers:
            raise self._fail(f"more than {self.max_headers} headers", 431, TooManyHeaders)
        if line[:1] in (b" ", b"\t"):
            raise self._fail("obsolete line folding in headers")
        name, colon, value = line.partition(b":")
        if not colon:
            raise self._fail(f"header line without a colon: {_shown(line)}")
        try:
            name_str = name.decode("ascii")
        except UnicodeDecodeError:
            name_str = ""
        if not TOKEN.fullmatch(name_str):
            raise self._fail(f"invalid header name {_shown(name)}")
        value = value.strip(b" \t")
        value_str = value.decode("latin-1")
        if not FIELD_VALUE.fullmatch(value_str):
            raise self._fail(f"invalid value for header {name_str}: {_shown(value)}")
        # Checked above; no lookup runs before the head is complete, so the
        # index of Headers (built on the first lookup) cannot be stale.
        self._headers._items.append((name_str, value_str))

    def _trailing(self) -> bytes:
        data = bytes(self._buf[self._pos :])
        self._buf.clear()
        self._pos = 0
        return data


def _shown(data: bytes) -> str:
    return repr(data if len(data) <= 60 else data[:57] + b"...")


def _parse_version(version: bytes, fail: Callable[..., InvalidMessage]) -> str:
    m = _VERSION.fullmatch(version)
    if m is None:
        raise fail(f"invalid HTTP version {_shown(version)}")
    if m.group(1) != b"1":
        raise fail(f"unsupported HTTP version {version.decode('ascii')}", 505, InvalidProtocol)
    return version.decode("ascii")


class RequestParser(_HeadParser[Tuple[str, str, str]]):
    """Incremental HTTP/1.1 request parser for the opening handshake.

    :meth:`feed` returns the :class:`Request` once the blank line after the
    headers has arrived, None before. Bytes after the blank line are kept in
    :attr:`trailing` (the first WebSocket frames, if the client did not wait).
    A request with a body (``Content-Length`` other than 0, or
    ``Transfer-Encoding``) is refused: a WebSocket upgrade has none.

    Args:
        max_line: The longest request line or header line, without its CRLF
            (default :data:`MAX_LINE`).
        max_headers: The most header lines (default :data:`MAX_HEADERS`).
        max_header_bytes: The most bytes of request line and headers together
            (default :data:`MAX_HEADER_BYTES`).

    Attributes:
        request (Request | None): The request, once complete.
        trailing (bytes): The bytes received after the request.
    """

    _line_status = 414
    _line_error = RequestLineTooLong
    _start_parts = ("method", "request target", "HTTP version")

    def __init__(self, **limits: int) -> None:
        super().__init__(**limits)
        self.request: Optional[Request] = None
        self.trailing = b""

    def feed(self, data) -> Optional[Request]:
        """Parse the next bytes of the request.

        Args:
            data: The bytes received, any bytes-like object.

        Returns:
            The :class:`Request` once its headers are complete, None before.

        Raises:
            ~fastws.exceptions.InvalidMessage: If the request cannot be parsed,
                breaks a limit or has a body; its ``http_status`` is the status
                to answer with. Every later call raises it again.
            RuntimeError: If the request was already complete.
        """
        if self._error is not None:
            raise self._error
        if self.request is not None:
            raise RuntimeError("request already complete")
        if self._start is None and not self._buf:
            parsed = parse_request(data, self.max_line, self.max_headers, self.max_header_bytes)
            if parsed is not None:
                self.request, self.trailing = parsed
                return self.request
        if not self._feed_head(data):
            return None
        method, target, version = self._start_line()
        headers = self._headers
        if "Transfer-Encoding" in headers:
            raise self._fail("request with a body (Transfer-Encoding)")
        lengths = headers.get_all("Content-Length")
        if any(v.strip() != "0" for v in lengths):
            raise self._fail("request with a body (Content-Length)")
        self.trailing = self._trailing()
        self.request = Request(target, headers, method, version)
        return self.request

    def _parse_start_line(self, line: bytes) -> Tuple[str, str, str]:
        parts = line.split(b" ")
        if len(parts) != 3:
            raise self._fail(f"invalid request line: {_shown(line)}")
        method, target, version = parts
        try:
            method_str = method.decode("ascii")
        except UnicodeDecodeError:
            method_str = ""
        if not TOKEN.fullmatch(method_str):
            raise self._fail(f"invalid method {_shown(method)}")
        if not _TARGET.fullmatch(target) or not target.startswith(b"/"):
            raise self._fail(f"invalid request target {_shown(target)}")
        version_str = _parse_version(version, self._fail)
        return method_str, target.decode("ascii"), version_str


def parse_request(
    data: bytes,
    max_line: int = MAX_LINE,
    max_headers: int = MAX_HEADERS,
    max_header_bytes: int = MAX_HEADER_BYTES,
) -> Optional[Tuple[Request, bytes]]:
    """Parse in one pass a request that came whole, as most do: the request
    line and headers matched by two regular expressions, the header lines
    split in one call.

    Args:
        data: The first bytes received, any bytes-like object.
        max_line: As for :class:`RequestParser`.
        max_headers: As for :class:`RequestParser`.
        max_header_bytes: As for :class:`RequestParser`.

    Returns:
        The :class:`Request` and the bytes that followed it; None when the
        request is incomplete, or anything about it is unusual (an error, a
        limit reached, a body announced, a line longer than ``max_line``):
        :class:`RequestParser` then parses it and reports the precise error.
    """
    if type(data) is not bytes:
        data = bytes(data)
    end = data.find(b"\r\n\r\n")
    if end < 0 or end + 4 > max_header_bytes or end > max_line:
        return None
    first = data.find(b"\r\n")
    start = _REQUEST_LINE.fullmatch(data, 0, first)
    if start is None:
        return None
    if first == end:
        lines = ""
    else:
        # Latin-1 maps each byte to one code point, as the header values are
        # decoded; names are ASCII tokens, the same either way.
        lines = data[first + 2 : end + 2].decode("latin-1")
        if _HEADER_LINES.fullmatch(lines) is None or lines.count("\r\n") > max_headers:
            return None
    items = []
    for line in lines.split("\r\n")[:-1]:
        name, _, value = line.partition(":")
        items.append((name, value.strip(" \t")))
    headers = Headers._trusted(items)
    index = headers._lookup()
    if "content-length" in index or "transfer-encoding" in index:
        return None  # the incremental parser decides about a body
    method, target, version = start.groups()
    return (
        Request(target.decode("ascii"), headers, method.decode("ascii"), version.decode("ascii")),
        data[end + 4 :],
    )


class ResponseParser(_HeadParser[Tuple[str, int, str]]):
    """Incremental HTTP/1.1 response parser for the client side of the handshake.

    A 101 response ends with its headers: what follows is WebSocket data, kept in
    :attr:`trailing`. Any other response has its body read too, delimited by
    ``Content-Length``, chunked transfer coding, or the end of the stream
    (:meth:`feed_eof`), up to ``max_body`` bytes. 1xx, 204 and 304 have no body.

    Args:
        max_body: The largest body kept (default :data:`MAX_BODY`).
        max_line: The longest status line or header line, without its CRLF
            (default :data:`MAX_LINE`).
        max_headers: The most header lines (default :data:`MAX_HEADERS`).
        max_header_bytes: The most bytes of status line and headers together
            (default :data:`MAX_HEADER_BYTES`).

    Attributes:
        response (Response | None): The response, once complete.
        trailing (bytes): The bytes received after the response.
    """

    # The reason phrase may hold HTAB and obs-text (RFC 7230 section 3.1.2).
    _start_forbidden = re.compile(rb"[^\t\x20-\x7e\x80-\xff\r]")

    def __init__(self, *, max_body: int = MAX_BODY, **limits: int) -> None:
        super().__init__(**limits)
        self.max_body = max_body
        self.response: Optional[Response] = None
        self.trailing = b""
        self._body_mode: Optional[str] = None  # "length", "chunked", "eof"
        self._length = 0
        self._body = bytearray()
        # > 0: chunk data bytes left; -1: a size line next; -2: the CRLF after chunk data
        self._chunk_left = -1
        self._chunk_trailers = False
        self._eof = False

    def feed(self, data) -> Optional[Response]:
        """Parse the next bytes of the response.

        Args:
            data: The bytes received, any bytes-like object.

        Returns:
            The :class:`Response` once it is complete (its body included), None
            before.

        Raises:
            ~fastws.exceptions.InvalidMessage: If the response cannot be parsed
                or breaks a limit. Every later call raises it again.
            RuntimeError: If the response was already complete.
        """
        if self._error is not None:
            raise self._error
        if self.response is not None:
            raise RuntimeError("response already complete")
        if not self._head_done:
            if not self._feed_head(data):
                return None
            data = self._trailing()
            version, status, reason = self._start_line()
            headers = self._headers
            if 100 <= status < 200 or status in (204, 304):
                self.trailing = data
                return self._complete(b"")
            self._choose_body_mode(headers)
        return self._feed_body(data)

    def feed_eof(self) -> Optional[Response]:
        """Tell the parser that the stream ended.

        Returns:
            The :class:`Response`, complete now if its body was delimited by the
            end of the stream.

        Raises:
            ~fastws.exceptions.InvalidMessage: If the response is incomplete.
        """
        if self._error is not None:
            raise self._error
        if self.response is not None:
            return self.response
        if self._head_done and self._body_mode == "eof":
            return self._complete(bytes(self._body))
        raise self._fail("connection closed before the response was complete")

    def _parse_start_line(self, line: bytes) -> Tuple[str, int, str]:
        version, sp, rest = line.partition(b" ")
        if not sp:
            raise self._fail(f"invalid status line: {_shown(line)}")
        version_str = _parse_version(version, self._fail)
        status, _, reason = rest.partition(b" ")
        if not _STATUS.fullmatch(status) or status[:1] == b"0":
            raise self._fail(f"invalid status code {_shown(status)}")
        if not _REASON.fullmatch(reason):
            raise self._fail(f"invalid reason phrase {_shown(reason)}")
        return version_str, int(status), reason.decode("latin-1")

    def _complete(self, body: bytes) -> Response:
        version, status, reason = self._start_line()
        self.response = Response(status, reason, self._headers, body, version)
        if not reason:  # keep an empty reason phrase empty
            self.response.reason_phrase = ""
        return self.response

    def _choose_body_mode(self, headers: Headers) -> None:
        te = headers.get_all("Transfer-Encoding")
        if te:
            codings = [c.strip().lower() for v in te for c in v.split(",") if c.strip()]
            if not codings or codings[-1] != "chunked":
                self._body_mode = "eof"
            else:
                self._body_mode = "chunked"
            return
        lengths = headers.get_all("Content-Length")
        if lengths:
            values = {v.strip() for v in lengths for v in v.split(",")}
            # ASCII digits only: str.isdigit() takes "¹" and other digits int() refuses
            if len(values) != 1 or not _DIGITS.fullmatch(next(iter(values))):
                raise self._fail(f"invalid Content-Length: {', '.join(lengths)!r}")
            self._length = int(next(iter(values)))
            if self._length > self.max_body:
                raise self._fail(f"response body of {self._length} bytes is too large")
            self._body_mode = "length"
        else:
            self._body_mode = "eof"

    def _feed_body(self, data) -> Optional[Response]:
        body = self._body
        mode = self._body_mode
        if mode == "length":
            need = self._length - len(body)
            body += data[:need]
            if len(body) < self._length:
                return None
            self.trailing = bytes(data[need:])
            return self._complete(bytes(body))
        if mode == "eof":
            body += data
            if len(body) > self.max_body:
                raise self._fail(f"response body larger than {self.max_body} bytes")
            return None
        return self._feed_chunked(data)

    def _feed_chunked(self, data) -> Optional[Response]:
        buf = self._buf
        buf += data
        body = self._body
        while True:
            if self._chunk_left > 0:  # chunk data
                if not buf:
                    return None
                take = min(len(buf), self._chunk_left)
                body += buf[:take]
                del buf[:take]
                self._chunk_left -= take
                if self._chunk_left == 0:
                    self._chunk_left = -2  # CRLF after the data next
                continue
            if self._chunk_left == -2:
                if len(buf) < 2:
                    return None
                if buf[:2] != b"\r\n":
                    raise self._fail("chunk data not followed by CRLF")
                del buf[:2]
                self._chunk_left = -1
                continue
            nl = buf.find(b"\r\n")
            if nl < 0:
                if len(buf) > self.max_line:
                    raise self._fail("chunk size or trailer line too long")
                return None
            line = bytes(buf[:nl])
            del buf[: nl + 2]
            if self._chunk_trailers:
                if not line:
                    self.trailing = bytes(buf)
                    buf.clear()
                    return self._complete(bytes(body))
                continue
            size_str = line.split(b";", 1)[0].strip(b" \t")
            if not size_str or not re.fullmatch(rb"[0-9A-Fa-f]+", size_str):
                raise self._fail(f"invalid chunk size {_shown(size_str)}")
            size = int(size_str, 16)
            if size == 0:
                self._chunk_trailers = True
                continue
            if len(body) + size > self.max_body:
                raise self._fail(f"response body larger than {self.max_body} bytes")
            self._chunk_left = size

"""HTTP header fields (RFC 7230 section 3.2) for the opening handshake: the
:class:`Headers` container, the grammars of the handshake's list-valued
headers (token lists, ``Sec-WebSocket-Extensions``), and HTTP Basic
authentication's headers (RFC 7617)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from .exceptions import InvalidHeaderFormat, InvalidHeaderValue, MultipleValuesError
from .extensions import ExtensionParams

__all__ = [
    "Headers",
    "HeadersLike",
    "parse_token_list",
    "parse_extension_list",
    "build_extension_list",
    "parse_authorization_basic",
    "build_authorization_basic",
    "build_www_authenticate_basic",
]

# RFC 7230 section 3.2.6: token = 1*tchar
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Field value: visible ASCII, obs-text, space and tab; no CR, LF, NUL or other controls.
FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
# Optional whitespace (RFC 7230 section 3.2.3).
_OWS = " \t"


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not TOKEN.fullmatch(name):
        raise ValueError(f"invalid header name {name!r}")
    return name


def _check_value(name: str, value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"value of header {name} must be str, not {type(value).__name__}")
    if not FIELD_VALUE.fullmatch(value):
        raise ValueError(f"invalid value for header {name}: {value!r}")
    return value


class Headers:
    """Case-insensitive, multi-valued HTTP headers that keep their order.

    ``headers[name]`` is the single value of ``name`` (:class:`KeyError` if absent,
    :class:`~fastws.exceptions.MultipleValuesError` if repeated);
    :meth:`get_all` gives every value; ``headers[name] = value`` replaces every
    value and :meth:`add` appends one. Iterating gives ``(name, value)`` pairs in
    the order they were received or added, with names as spelled.
    Names must be tokens and values must not contain CR, LF or NUL, so a header
    built from untrusted input cannot inject another header.

    Args:
        headers: Initial headers: a :class:`Headers`, a mapping of names to
            values, or an iterable of ``(name, value)`` pairs.
        **kwargs: More headers, as ``name=value``.

    Raises:
        ValueError: If a name is not a token or a value contains CR, LF or NUL.
    """

    # _raw: the compact form of headers nobody reads (see _compact()); while
    # it is set, _items is unset and __getattr__ rebuilds it on first use.
    __slots__ = ("_items", "_index", "_raw")

    def __init__(self, headers: Optional[HeadersLike] = None, **kwargs: str) -> None:
        self._items: List[Tuple[str, str]] = []
        # Lower-cased name -> its values, built on the first lookup and dropped
        # by every change: a handshake looks up a dozen names among a handful
        # of headers, and a scan lower-casing every name for each lookup cost
        # more than the rest of the checks.
        self._index: Optional[Dict[str, List[str]]] = None
        if headers is not None:
            self.update(headers)
        if kwargs:
            self.update(kwargs)

    @classmethod
    def _trusted(cls, items: List[Tuple[str, str]]) -> Headers:
        """Headers over ``items``, which the caller checked already (a parser
        that matched the grammar of names and values); ``items`` is kept."""
        headers = cls.__new__(cls)
        headers._items = items
        headers._index = None
        return headers

    def _compact(self) -> None:
        """Keep the headers as one string until they are read again: a server
        holds each connection's request for as long as it is open, and one
        string is a fraction of the pairs and the index. Names are tokens
        (no ``:``) and values hold no LF, so the string splits back into the
        same pairs."""
        self._raw = "\n".join(map(":".join, self._items))
        del self._items
        self._index = None

    def __getattr__(self, name: str) -> Any:
        # Called only for an unset slot: _items of compacted headers.
        if name != "_items":
            raise AttributeError(name)
        try:
            raw = object.__getattribute__(self, "_raw")
        except AttributeError:
            # Another thread rebuilt them meanwhile (it sets _items before it
            # deletes _raw), or they were never compacted.
            return object.__getattribute__(self, "_items")
        items: List[Tuple[str, str]] = []
        if raw:
            for line in raw.split("\n"):
                n, _, v = line.partition(":")
                items.append((n, v))
        self._items = items
        try:
            del self._raw
        except AttributeError:  # another thread's rebuild deleted it first
            pass
        return items

    def _lookup(self) -> Dict[str, List[str]]:
        index = self._index
        if index is None:
            index = {}
            for n, v in self._items:
                key = n.lower()
                values = index.get(key)
                if values is None:
                    index[key] = [v]
                else:
                    values.append(v)
            self._index = index
        return index

    def update(self, headers: HeadersLike) -> None:
        """Add every ``(name, value)`` of ``headers`` (appends, like :meth:`add`)."""
        if isinstance(headers, Headers):
            self._items.extend(headers._items)
            self._index = None
            return
        items = headers.items() if isinstance(headers, Mapping) else headers
        for name, value in items:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        """Append a value for ``name``, keeping the ones already there."""
        self._items.append((_check_name(name), _check_value(name, value)))
        self._index = None

    def get_all(self, name: str) -> list:
        """Every value of ``name``, in order; empty if absent."""
        values = self._lookup().get(name.lower())
        return [] if values is None else list(values)

    def get(self, name: str, default=None):
        """The single value of ``name``.

        Args:
            name: A header name, in any case.
            default: What to return if the header is absent.

        Returns:
            Its value, or ``default`` if absent.

        Raises:
            ~fastws.exceptions.MultipleValuesError: If the header appears more
                than once.
        """
        values = self._lookup().get(name.lower())
        if values is None:
            return default
        if len(values) > 1:
            raise MultipleValuesError(name)
        return values[0]

    def __getitem__(self, name: str) -> str:
        values = self._lookup().get(name.lower())
        if values is None:
            raise KeyError(name)
        if len(values) > 1:
            raise MultipleValuesError(name)
        return values[0]

    def __setitem__(self, name: str, value: str) -> None:
        _check_name(name)
        _check_value(name, value)
        key = name.lower()
        self._items = [(n, v) for n, v in self._items if n.lower() != key]
        self._items.append((name, value))
        self._index = None

    def __delitem__(self, name: str) -> None:
        key = name.lower()
        items = [(n, v) for n, v in self._items if n.lower() != key]
        if len(items) == len(self._items):
            raise KeyError(name)
        self._items = items
        self._index = None

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return name.lower() in self._lookup()

    def __iter__(self) -> Iterator[Tuple[str, str]]:
        return iter(list(self._items))

    def items(self) -> list:
        """``(name, value)`` pairs in order, names as spelled."""
        return list(self._items)

    def keys(self) -> list:
        """Distinct lower-cased names, in order of first appearance."""
        return list(self._lookup())

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(n.lower(), v) for n, v in self._items] == [
            (n.lower(), v) for n, v in other._items
        ]

    __hash__ = None  # type: ignore[assignment]

    def copy(self) -> Headers:
        return Headers._trusted(list(self._items))

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def serialize(self) -> bytes:
        """The header lines, each ending with CRLF (no blank line after them)."""
        return "".join([f"{n}: {v}\r\n" for n, v in self._items]).encode("latin-1")

    def __getstate__(self):
        return self._items

    def __setstate__(self, state) -> None:
        self._items = list(state)
        self._index = None


def _as_headers(headers) -> Headers:
    return headers if isinstance(headers, Headers) else Headers(headers)


HeadersLike = Union[Headers, Mapping[str, str], Iterable[Tuple[str, str]]]


def parse_token_list(value: str, name: str = "header", *, allow_slash: bool = False) -> list:
    """Parse ``1#token`` (RFC 7230 section 7): comma-separated tokens with optional
    whitespace; empty elements are skipped. Tokens keep their case.

    Args:
        value: The header's value.
        name: The header's name, for the error.
        allow_slash: Accept ``token/token`` (the ``Upgrade`` header's
            protocol/version).

    Returns:
        The tokens, in order.

    Raises:
        ~fastws.exceptions.InvalidHeaderFormat: If an element is not a token.
    """
    tokens = []
    for element in value.split(","):
        element = element.strip(_OWS)
        if not element:
            continue
        parts = element.split("/", 1) if allow_slash else [element]
        if not all(TOKEN.fullmatch(p) for p in parts):
            raise InvalidHeaderFormat(name, value, f"{element!r} is not a token")
        tokens.append(element)
    return tokens


def _parse_quoted(value: str, pos: int, name: str, header: str) -> Tuple[str, int]:
    """Parse a quoted-string starting at ``value[pos] == '"'``."""
    out: List[str] = []
    pos += 1
    while pos < len(value):
        char = value[pos]
        if char == '"':
            return "".join(out), pos + 1
        if char == "\\":
            pos += 1
            if pos >= len(value):
                break
            char = value[pos]
        out.append(char)
        pos += 1
    raise InvalidHeaderFormat(name, header, "unterminated quoted string")


def parse_extension_list(value: str, name: str = "Sec-WebSocket-Extensions") -> list:
    """Parse a ``Sec-WebSocket-Extensions`` value (RFC 6455 section 9.1).

    Args:
        value: The header's value.
        name: The header's name, for the error.

    Returns:
        ``[(extension_name, [(param, value or None), ...]), ...]``, in order. A
        quoted parameter value is unquoted, and must then be a token.

    Raises:
        ~fastws.exceptions.InvalidHeaderFormat: If the value does not follow the
            grammar.
    """
    result: list = []
    pos = 0
    n = len(value)

    def skip_ows(i: int) -> int:
        while i < n and value[i] in _OWS:
            i += 1
        return i

    def read_token(i: int, what: str) -> Tuple[str, int]:
        m = TOKEN.match(value, i)
        if m is None:
            raise InvalidHeaderFormat(name, value, f"expected {what} at position {i}")
        return m.group(), m.end()

    while True:
        pos = skip_ows(pos)
        if pos < n and value[pos] == ",":  # empty list element
            pos += 1
            continue
        if pos >= n:
            break
        ext_name, pos = read_token(pos, "an extension name")
        params: ExtensionParams = []
        while True:
            pos = skip_ows(pos)
            if pos >= n or value[pos] == ",":
                break
            if value[pos] != ";":
                raise InvalidHeaderFormat(name, value, f"unexpected {value[pos]!r} at position {pos}")
            pos = skip_ows(pos + 1)
            param, pos = read_token(pos, "a parameter name")
            pos = skip_ows(pos)
            param_value: Optional[str] = None
            if pos < n and value[pos] == "=":
                pos = skip_ows(pos + 1)
                if pos < n and value[pos] == '"':
                    param_value, pos = _parse_quoted(value, pos, name, value)
                    if not TOKEN.fullmatch(param_value):
                        raise InvalidHeaderFormat(
                            name, value, f"quoted value {param_value!r} is not a token"
                        )
                else:
                    param_value, pos = read_token(pos, "a parameter value")
            params.append((param, param_value))
        result.append((ext_name, params))
        if pos < n:  # at a comma
            pos += 1
    return result


def build_extension_list(extensions: Sequence[Tuple[str, ExtensionParams]]) -> str:
    """Serialize extensions for the ``Sec-WebSocket-Extensions`` header.

    Args:
        extensions: ``[(name, [(param, value or None), ...]), ...]``.

    Returns:
        The header's value.
    """
    parts = []
    for ext_name, params in extensions:
        items = [ext_name]
        for param, param_value in params:
            items.append(param if param_value is None else f"{param}={param_value}")
        parts.append("; ".join(items))
    return ", ".join(parts)


# --- HTTP Basic authentication (RFC 7617) ---------------------------------------

# RFC 7235 section 2.1: token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# What a quoted-string can hold once its quotes and backslashes are escaped.
_QUOTABLE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
_NEEDS_ESCAPE = re.compile(r'(["\\])')


def _quoted_string(value: str, what: str) -> str:
    if not _QUOTABLE.fullmatch(value):
        raise ValueError(f"{what} {value!r} cannot be sent in a quoted string")
    return '"' + _NEEDS_ESCAPE.sub(r"\\\1", value) + '"'


def parse_authorization_basic(header: str) -> Tuple[str, str]:
    """Parse an ``Authorization`` header with the Basic scheme (RFC 7617).

    The scheme's name is case-insensitive. Bytes that are not UTF-8 come out
    as lone surrogates (the ``surrogateescape`` error handler), so that no
    credentials are lost or made equal by decoding. The errors do not repeat
    the credentials: their value shows the scheme followed by ``***``.

    Args:
        header: The header's value.

    Returns:
        ``(username, password)``.

    Raises:
        ~fastws.exceptions.InvalidHeaderFormat: If the value is not a scheme,
            spaces and a token68.
        ~fastws.exceptions.InvalidHeaderValue: If the scheme is not Basic, or
            the credentials are not the base64 of ``username:password``.
    """
    name = "Authorization"
    match = TOKEN.match(header)
    if match is None:
        raise InvalidHeaderFormat(name, "***", "expected an authentication scheme")
    scheme = match.group()
    if scheme.lower() != "basic":
        raise InvalidHeaderValue(
            name, scheme, "unsupported authentication scheme, expected Basic"
        )
    shown = f"{scheme} ***"
    pos = match.end()
    end = len(header)
    if pos == end or header[pos] != " ":
        raise InvalidHeaderFormat(
            name, shown, "expected a space, then credentials, after the scheme"
        )
    while pos < end and header[pos] == " ":
        pos += 1
    match = _TOKEN68.fullmatch(header, pos)
    if match is None:
        raise InvalidHeaderFormat(name, shown, "credentials are not a token68")
    try:
        decoded = base64.b64decode(match.group().encode("ascii"), validate=True)
    except binascii.Error:
        raise InvalidHeaderValue(name, shown, "credentials are not base64") from None
    username, colon, password = decoded.decode("utf-8", "surrogateescape").partition(":")
    if not colon:
        raise InvalidHeaderValue(
            name, shown, "credentials have no colon between username and password"
        )
    return username, password


def build_authorization_basic(username: str, password: str) -> str:
    """The value of an ``Authorization`` header with the Basic scheme (RFC 7617).

    The credentials are encoded in UTF-8; lone surrogates, as
    :func:`parse_authorization_basic` gives them, stand for the bytes they
    came from.

    Args:
        username: The username; it cannot contain a colon.
        password: The password.

    Returns:
        ``"Basic "`` followed by the base64 of ``username:password``.

    Raises:
        ValueError: If ``username`` contains a colon.
    """
    if ":" in username:
        raise ValueError(
            f"username {username!r} contains a colon, which Basic authentication cannot send"
        )
    credentials = f"{username}:{password}".encode("utf-8", "surrogateescape")
    return "Basic " + base64.b64encode(credentials).decode("ascii")


def build_www_authenticate_basic(realm: str) -> str:
    """The value of a ``WWW-Authenticate`` header that asks for Basic
    credentials in UTF-8 (RFC 7617 section 2.1).

    Args:
        realm: The protection space, shown by browsers; keep it ASCII (RFC 7235
            section 2.2 leaves other characters' encoding undefined).

    Returns:
        ``Basic realm="...", charset="UTF-8"``.

    Raises:
        ValueError: If ``realm`` contains a control character such as CR or LF.
    """
    return f'Basic realm={_quoted_string(realm, "realm")}, charset="UTF-8"'

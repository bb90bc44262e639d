"""permessage-deflate (RFC 7692): compression of whole messages with zlib.

Plugs into the extension seam of :mod:`fastws.extensions`:

- :class:`ServerPerMessageDeflateFactory` for :class:`~fastws.protocol.ServerProtocol`
  (``extensions=[ServerPerMessageDeflateFactory()]``);
- :class:`ClientPerMessageDeflateFactory` for :class:`~fastws.protocol.ClientProtocol`
  (``extensions=[ClientPerMessageDeflateFactory()]``);
- :class:`PerMessageDeflate` is what they negotiate: the compressor and the
  decompressor of one connection.

Negotiation (RFC 7692 section 7.1). The client offers ``permessage-deflate;
client_max_window_bits`` by default, as browsers do. The server walks the offers
in the order of the header and accepts the first one it can satisfy; an offer with
an unknown parameter, a repeated parameter or a bad value is declined (the next
one is tried). It answers ``server_no_context_takeover`` when the client asked
for it (or when it is configured to), ``server_max_window_bits`` no larger than
what the client asked for, and ``client_max_window_bits`` only if the client
offered it. The client fails the handshake (:class:`~fastws.exceptions.NegotiationError`)
on an answer that does not match its offer: a parameter it did not offer, a
window larger than it asked for, a missing ``server_no_context_takeover``...

Window bits 8. zlib cannot compress raw deflate with an 8-bit window
(madler/zlib#171). fastws accepts 8 both ways and compresses with 9, as Node.js
does: a 9-bit zlib deflater never refers more than 512 - 262 = 250 bytes back,
so its output inflates with a 256-byte window (the tests check it with a strict
8-bit inflater); inflating with a larger window than the peer's is always
correct. (``websockets`` refuses to compress with 8 bits.)

Messages. The first frame of a compressed message has RSV1 set, continuation
frames never do; each frame's data is compressed and flushed with
``Z_SYNC_FLUSH``, and the final ``00 00 ff ff`` is stripped from the last frame
(appended back before inflating). A message whose single frame is smaller than
``min_size`` bytes goes uncompressed (RSV1 clear): compressing it would cost more
time than it saves bytes. A fragmented message is always compressed. Control
frames never reach the extension. Context takeover is kept unless
``*_no_context_takeover`` was negotiated: then the compressor or the decompressor
is dropped after each message, which frees its memory between messages.

Safety. Inflating is bounded with ``max_length``: a frame never produces more
than the bytes left under the protocol's ``max_size`` (plus one, to tell), so a
small frame that inflates to gigabytes fails at once with
:class:`~fastws.exceptions.PayloadTooBig` (close code 1009); the peak memory is a
few times ``max_size`` (the frame, the input zlib did not consume, the inflated
bytes), and the decompressor is dropped at once. ``max_size`` counts inflated
bytes, across the frames of a message. Undecodable data fails with 1007. RSV1 on a connection
without the extension, on a continuation frame or on a control frame is a
protocol error (1002), found by the frame parser.

zlib comes from a backend chosen at run time (:mod:`fastws.deflate_backends`):
isal for large messages when it is installed, else the standard library's zlib,
unless the factories' ``backend`` or the ``FASTWS_ZLIB`` environment variable
names one (``FASTWS_ZLIB=zlib`` forces the standard library's; zlib-ng, faster
than zlib for four times its memory, only when named).

Memory, ratio, time: ``docs/deflate.md`` and ``bench/compression/README.md``.
With the defaults and the standard library's zlib, a connection holds about 50
KiB of zlib state once it has sent and received a compressed message (nothing
before; zlib-ng: about 200 KiB; isal: its partner's, plus about 230 KiB while
it sends messages as large as the window), and chat-like JSON shrinks to about
30% of its size.

Defaults, in the spirit of ``websockets``: the server limits its own window and
the client's (when the client offers ``client_max_window_bits``, as browsers
do) to 12 bits, compresses at the backend's default level (zlib 6, zlib-ng 7,
isal 1) with ``memLevel`` 5, and sends messages under 32 bytes uncompressed. The
client offers ``client_max_window_bits`` and uses what the server answers.
Without context takeover, the zlib state is freed after each message, but each
message pays a fresh compressor and loses the shared history.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Union

from .deflate_backends import Backend, resolve
from .exceptions import (
    DuplicateParameter,
    InvalidParameterName,
    InvalidParameterValue,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
)
from .extensions import (
    ClientExtensionFactory,
    Extension,
    ExtensionParams,
    ServerExtensionFactory,
)

__all__ = [
    "PerMessageDeflate",
    "ClientPerMessageDeflateFactory",
    "ServerPerMessageDeflateFactory",
    "DEFAULT_LEVEL",
    "DEFAULT_MEM_LEVEL",
    "DEFAULT_MIN_SIZE",
    "DEFAULT_SERVER_MAX_WINDOW_BITS",
    "DEFAULT_CLIENT_MAX_WINDOW_BITS",
]

NAME = "permessage-deflate"

#: The standard library's zlib's default level; ``level=None`` (the factories'
#: default) takes each backend's own (:attr:`~fastws.deflate_backends.Backend.level`).
DEFAULT_LEVEL = 6
#: zlib ``memLevel`` (1-9): 5 keeps the compressor's hash table and buffers small
#: (zlib's default, 8, uses 8 times more for them).
DEFAULT_MEM_LEVEL = 5
#: Messages (in one frame) shorter than this are sent uncompressed.
DEFAULT_MIN_SIZE = 32
#: The server's default limit on its own LZ77 window: 2**12 = 4 KiB.
DEFAULT_SERVER_MAX_WINDOW_BITS = 12
#: The server's default limit on the client's window, when the client accepts one.
DEFAULT_CLIENT_MAX_WINDOW_BITS = 12

_TAIL = b"\x00\x00\xff\xff"
_EMPTY = b"\x00"  # an empty message, compressed: what zlib gives for it, minus the tail
_BITS = {str(bits): bits for bits in range(8, 16)}
_SYNC = 2  # Z_SYNC_FLUSH, the same in every backend
# Below this, appending the tail (a copy) is cheaper than a second decompress().
_COPY_TAIL = 2048


def _check_bits(name: str, bits: Any, *, allow_true: bool = False, allow_none: bool = True) -> None:
    if bits is None and allow_none:
        return
    if bits is True and allow_true:
        return
    if isinstance(bits, bool) or not isinstance(bits, int) or not 8 <= bits <= 15:
        allowed = "an int from 8 to 15"
        if allow_none:
            allowed += " or None"
        if allow_true:
            allowed += " or True"
        raise ValueError(f"{name} must be {allowed}, got {bits!r}")


def _check_settings(level: Optional[int], mem_level: int, min_size: int, backend: Backend) -> int:
    """Check the settings; returns the level (the backend's default for None)."""
    if level is None:
        level = backend.level
    if isinstance(level, bool) or not isinstance(level, int) or not -1 <= level <= 9:
        raise ValueError(f"level must be an int from -1 to 9, got {level!r}")
    if isinstance(mem_level, bool) or not isinstance(mem_level, int) or not 1 <= mem_level <= 9:
        raise ValueError(f"mem_level must be an int from 1 to 9, got {mem_level!r}")
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 0:
        raise ValueError(f"min_size must be an int >= 0, got {min_size!r}")
    return level


def _backend(backend: Union[None, str, Backend]) -> Backend:
    return backend if isinstance(backend, Backend) else resolve(backend)


class PerMessageDeflate(Extension):
    """The negotiated permessage-deflate of one connection.

    The factories create it from the negotiation. ``remote_*`` are the peer's
    parameters (what it compresses with, what this side inflates), ``local_*``
    this side's. The compressor is created with the first compressed message
    sent, the decompressor with the first compressed message received: a
    connection that never uses them holds no zlib memory.

    Args:
        remote_no_context_takeover: The peer resets its compressor after each
            message: this side drops its decompressor between messages.
        local_no_context_takeover: This side resets its compressor after each
            message.
        remote_max_window_bits: The peer's negotiated window, 8 to 15.
        local_max_window_bits: This side's negotiated window, 8 to 15.
        level: zlib's compression level, -1 to 9 (isal maps it onto its
            own four); None for the backend's default.
        mem_level: zlib's ``memLevel``, 1 to 9.
        min_size: Messages shorter than this (sent in one frame) go
            uncompressed.
        backend: A :class:`~fastws.deflate_backends.Backend`, its name,
            ``"auto"``, or None for ``FASTWS_ZLIB``.

    Raises:
        ValueError: If a setting is out of its range, or the backend is
            unknown or not installed.
    """

    name = NAME
    uses_rsv1 = True
    __slots__ = tuple(  # a server holds one per connection
        "backend remote_no_context_takeover local_no_context_takeover remote_max_window_bits"
        " local_max_window_bits level mem_level min_size _small_level _inflating _error _small"
        " _large_size _decoder _encoder _encoder_large _encoding".split()
    )

    def __init__(
        self,
        *,
        remote_no_context_takeover: bool = False,
        local_no_context_takeover: bool = False,
        remote_max_window_bits: int = 15,
        local_max_window_bits: int = 15,
        level: Optional[int] = None,
        mem_level: int = DEFAULT_MEM_LEVEL,
        min_size: int = DEFAULT_MIN_SIZE,
        backend: Union[None, str, Backend] = None,
    ) -> None:
        _check_bits("remote_max_window_bits", remote_max_window_bits, allow_none=False)
        _check_bits("local_max_window_bits", local_max_window_bits, allow_none=False)
        self.backend = _backend(backend)
        # With a partner (isal's), the partner compresses the messages smaller
        # than the window, at its own default level unless one was given, and
        # inflates everything (see fastws.deflate_backends).
        partner = self.backend.partner
        self._small_level = -1 if level is None else level
        level = _check_settings(level, mem_level, min_size, self.backend)
        self.remote_no_context_takeover = bool(remote_no_context_takeover)
        self.local_no_context_takeover = bool(local_no_context_takeover)
        self.remote_max_window_bits = remote_max_window_bits
        self.local_max_window_bits = local_max_window_bits
        self.level = level
        self.mem_level = mem_level
        self.min_size = min_size
        self._inflating = partner or self.backend
        self._error = self._inflating.error  # what the decompressor raises
        self._small = partner
        # Messages from this size on go to the backend, smaller ones to the partner.
        self._large_size = 1 << local_max_window_bits
        self._decoder: Any = None
        self._encoder: Any = None
        self._encoder_large = False  # the compressor is the backend's, not the partner's
        self._encoding = False  # the message being sent is compressed

    def __repr__(self) -> str:
        return (
            f"PerMessageDeflate(remote_no_context_takeover={self.remote_no_context_takeover},"
            f" local_no_context_takeover={self.local_no_context_takeover},"
            f" remote_max_window_bits={self.remote_max_window_bits},"
            f" local_max_window_bits={self.local_max_window_bits},"
            f" level={self.level}, mem_level={self.mem_level}, min_size={self.min_size},"
            f" backend={self.backend.name!r})"
        )

    # --- receiving --------------------------------------------------------------

    def decode(self, payload: bytes, *, first: bool, fin: bool, max_size: Optional[int]) -> bytes:
        decoder = self._decoder
        if first and (decoder is None or decoder.eof):
            # A new message: a fresh decompressor when there is none (first
            # message, or no context takeover), or when the peer ended the last
            # message with a final block (BFINAL set; a new stream follows).
            decoder = self._decoder = self._inflating.decompressobj(self.remote_max_window_bits)
        elif decoder is None:  # pragma: no cover - the protocol calls first=True first
            raise ProtocolError("continuation of a compressed message that did not start")
        # max_length = max_size + 1 tells "exactly max_size" from "more": inflate
        # stops there, and the rest of the input waits in unconsumed_tail.
        limit = 0 if max_size is None else max_size + 1
        try:
            if fin and len(payload) < _COPY_TAIL:
                data = decoder.decompress(payload + _TAIL, limit)
            else:
                data = decoder.decompress(payload, limit)
                if fin and (not limit or len(data) < limit):
                    tail = decoder.decompress(_TAIL, limit - len(data) if limit else 0)
                    if tail:  # normally nothing: no copy of a large message
                        data += tail
        except self._error as exc:
            self._decoder = None
            raise ProtocolError(f"invalid compressed data: {exc}", 1007) from None
        if limit and len(data) >= limit:
            self._decoder = None  # frees the window and the pending input
            raise PayloadTooBig(f"message exceeds max_size: more than the {max_size} bytes left")
        if decoder.eof and decoder.unused_data:
            # Data after a final block: only the tail this side appended may be there.
            if not (fin and decoder.unused_data == _TAIL):
                self._decoder = None
                raise ProtocolError("data after the end of the compressed stream", 1007)
        if fin and self.remote_no_context_takeover:
            self._decoder = None
        return data

    # --- sending ----------------------------------------------------------------

    def encode(self, payload: bytes, *, first: bool, fin: bool) -> Tuple[bytes, bool]:
        if first:
            if fin and len(payload) < self.min_size:
                self._encoding = False
                return payload, False
            self._encoding = True
        elif not self._encoding:
            return payload, False
        if fin and not payload and first:
            # An empty message: an empty stored block, whatever the backend
            # (zlib emits it; isal a fixed-Huffman one). The stream is byte
            # aligned after every flush, so the compressor need not know.
            if self.local_no_context_takeover:
                self._encoder = None
            return _EMPTY, True
        encoder = self._encoder
        if self._small is not None and first and (len(payload) >= self._large_size) is not self._encoder_large:
            # The other backend takes over, with a fresh compressor: the
            # current one's history is not the peer's window any more.
            self._encoder_large = not self._encoder_large
            encoder = None
        if encoder is None:
            if self._encoder_large or self._small is None:
                encoder = self.backend.compressobj(self.level, self.local_max_window_bits, self.mem_level)
            else:
                encoder = self._small.compressobj(self._small_level, self.local_max_window_bits, self.mem_level)
            self._encoder = encoder
        data = encoder.compress(payload)
        flushed = encoder.flush(_SYNC)
        # A small message stays in zlib's buffers until the flush: no join then.
        data = data + flushed if data else flushed
        if fin:
            if data.endswith(_TAIL):
                data = data[:-4]
            elif not data:
                # Nothing since the last flush: zlib emits nothing at all.
                data = _EMPTY
            else:  # pragma: no cover - a sync flush always ends with the marker
                raise AssertionError(f"zlib sync flush without the 00 00 ff ff marker: {data[-8:]!r}")
            if self.local_no_context_takeover:
                self._encoder = None
        return data, True


# --- negotiation ------------------------------------------------------------------


def _parse_params(params: ExtensionParams, *, offer: bool) -> Dict[str, Union[bool, int]]:
    """Check and read permessage-deflate parameters: an offer's (``offer=True``:
    ``client_max_window_bits`` may come without a value, read as True) or an
    answer's. NegotiationError for an unknown, repeated or invalid parameter."""
    seen: Dict[str, Union[bool, int]] = {}
    for name, value in params:
        if name in seen:
            raise DuplicateParameter(name, f"{NAME}: duplicate parameter {name}")
        if name in ("server_no_context_takeover", "client_no_context_takeover"):
            if value is not None:
                raise InvalidParameterValue(name, value, f"{NAME}: {name} takes no value, got {value!r}")
            seen[name] = True
        elif name in ("server_max_window_bits", "client_max_window_bits"):
            if value is None and offer and name == "client_max_window_bits":
                seen[name] = True
                continue
            bits = _BITS.get(value) if value is not None else None
            if bits is None:
                raise InvalidParameterValue(
                    name,
                    value,
                    f"{NAME}: {name} must be from 8 to 15, got "
                    + ("no value" if value is None else repr(value)),
                )
            seen[name] = bits
        else:
            raise InvalidParameterName(name, f"{NAME}: unknown parameter {name!r}")
    return seen


def _build_params(
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Optional[int],
    client_max_window_bits: Union[None, bool, int],
) -> ExtensionParams:
    params: ExtensionParams = []
    if server_no_context_takeover:
        params.append(("server_no_context_takeover", None))
    if client_no_context_takeover:
        params.append(("client_no_context_takeover", None))
    if server_max_window_bits is not None:
        params.append(("server_max_window_bits", str(server_max_window_bits)))
    if client_max_window_bits is True:
        params.append(("client_max_window_bits", None))
    elif client_max_window_bits is not None:
        params.append(("client_max_window_bits", str(client_max_window_bits)))
    return params


def _check_duplicate(accepted: Sequence[Any]) -> None:
    if any(getattr(ext, "name", None) == NAME for ext in accepted):
        raise NegotiationError(f"{NAME} accepted twice")


class ServerPerMessageDeflateFactory(ServerExtensionFactory):
    """The server's permessage-deflate: accepts the client's first acceptable offer.

    Pass it in the ``extensions`` of a :class:`~fastws.protocol.ServerProtocol`;
    :func:`fastws.serve() <fastws.asyncio.serve>` uses one with the defaults
    unless ``compression=None``.

    Args:
        server_no_context_takeover: Reset the compressor after each message
            (always answered when the client asks for it).
        client_no_context_takeover: Ask the client to reset its compressor
            after each message (the server then drops its decompressor between
            them).
        server_max_window_bits: The largest window this side compresses with,
            8 to 15, or None for no limit but the client's (answered when set,
            or when the client asks for a limit: the smaller of the two).
        client_max_window_bits: The largest window the client may compress
            with, when it offers ``client_max_window_bits``; None to let it
            choose.
        require_client_max_window_bits: Decline offers without
            ``client_max_window_bits`` instead of inflating with a 32 KiB
            window.
        level: zlib's compression level, -1 to 9 (isal maps it onto its
            own four); None for the backend's default.
        mem_level: zlib's ``memLevel``, 1 to 9.
        min_size: Messages shorter than this (sent in one frame) go
            uncompressed.
        backend: ``"zlib"``, ``"zlib-ng"``, ``"isal"``, ``"auto"``, or None
            for ``FASTWS_ZLIB`` (see :mod:`fastws.deflate_backends`).

    Raises:
        ValueError: If a setting is out of its range, the backend is unknown
            or not installed, or ``require_client_max_window_bits`` is set without
            ``client_max_window_bits``.
    """

    name = NAME

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: Optional[int] = DEFAULT_SERVER_MAX_WINDOW_BITS,
        client_max_window_bits: Optional[int] = DEFAULT_CLIENT_MAX_WINDOW_BITS,
        require_client_max_window_bits: bool = False,
        level: Optional[int] = None,
        mem_level: int = DEFAULT_MEM_LEVEL,
        min_size: int = DEFAULT_MIN_SIZE,
        backend: Union[None, str, Backend] = None,
    ) -> None:
        _check_bits("server_max_window_bits", server_max_window_bits)
        _check_bits("client_max_window_bits", client_max_window_bits)
        self.backend = _backend(backend)
        self._level = level  # None: each backend's default (isal's partner has its own)
        level = _check_settings(level, mem_level, min_size, self.backend)
        if require_client_max_window_bits and client_max_window_bits is None:
            raise ValueError("require_client_max_window_bits needs client_max_window_bits")
        self.server_no_context_takeover = bool(server_no_context_takeover)
        self.client_no_context_takeover = bool(client_no_context_takeover)
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.require_client_max_window_bits = bool(require_client_max_window_bits)
        self.level = level
        self.mem_level = mem_level
        self.min_size = min_size

    def __repr__(self) -> str:
        return (
            f"ServerPerMessageDeflateFactory(server_no_context_takeover={self.server_no_context_takeover},"
            f" client_no_context_takeover={self.client_no_context_takeover},"
            f" server_max_window_bits={self.server_max_window_bits},"
            f" client_max_window_bits={self.client_max_window_bits},"
            f" require_client_max_window_bits={self.require_client_max_window_bits},"
            f" level={self.level}, mem_level={self.mem_level}, min_size={self.min_size},"
            f" backend={self.backend.name!r})"
        )

    def negotiate(
        self, params: ExtensionParams, accepted: Sequence[Extension]
    ) -> Tuple[ExtensionParams, PerMessageDeflate]:
        _check_duplicate(accepted)
        offer = _parse_params(params, offer=True)

        # server_no_context_takeover: answered if asked for, or configured.
        server_nct = bool(offer.get("server_no_context_takeover")) or self.server_no_context_takeover
        # client_no_context_takeover: the client's hint is echoed (the server may
        # then drop its decompressor between messages), or the server asks for it.
        client_nct = bool(offer.get("client_no_context_takeover")) or self.client_no_context_takeover

        # server_max_window_bits: the answer must be present and <= the offer's
        # when the client asked for a limit; otherwise the configured limit.
        server_bits: Optional[int] = offer.get("server_max_window_bits")
        if server_bits is None:
            server_bits = self.server_max_window_bits
        elif self.server_max_window_bits is not None:
            server_bits = min(server_bits, self.server_max_window_bits)

        # client_max_window_bits: only answered if offered; the offer's value (if
        # any) is the client's own limit, which the answer may lower.
        client_bits: Union[None, bool, int] = offer.get("client_max_window_bits")
        if client_bits is None:
            if self.require_client_max_window_bits:
                raise NegotiationError(f"{NAME}: the offer has no client_max_window_bits")
        elif client_bits is True:
            client_bits = self.client_max_window_bits  # None: not answered
        elif self.client_max_window_bits is not None:
            client_bits = min(client_bits, self.client_max_window_bits)

        answer = _build_params(server_nct, client_nct, server_bits, client_bits)
        extension = PerMessageDeflate(
            remote_no_context_takeover=client_nct,
            local_no_context_takeover=server_nct,
            remote_max_window_bits=client_bits or 15,
            local_max_window_bits=server_bits or 15,
            level=self._level,
            mem_level=self.mem_level,
            min_size=self.min_size,
            backend=self.backend,
        )
        return answer, extension


class ClientPerMessageDeflateFactory(ClientExtensionFactory):
    """The client's permessage-deflate offer, and its check of the server's answer.

    Pass it in the ``extensions`` of a :class:`~fastws.protocol.ClientProtocol`;
    :func:`fastws.connect() <fastws.asyncio.connect>` uses one with the
    defaults unless ``compression=None``. For several offers in one header, pass several
    factories: they are offered in order, and the first whose offer matches the
    answer takes it.

    Args:
        server_no_context_takeover: Ask the server to reset its compressor
            after each message (an answer without it is refused).
        client_no_context_takeover: Reset this side's compressor after each
            message (a hint to the server, applied whatever it answers).
        server_max_window_bits: Ask the server to compress with at most this
            window, 8 to 15 (an answer without it, or with a larger one, is
            refused).
        client_max_window_bits: True (the default) offers it without a value:
            the server may limit this side's window; an int, 8 to 15, limits it
            here too; None does not offer it (an answer with it is then
            refused).
        level: zlib's compression level, -1 to 9 (isal maps it onto its
            own four); None for the backend's default.
        mem_level: zlib's ``memLevel``, 1 to 9.
        min_size: Messages shorter than this (sent in one frame) go
            uncompressed.
        backend: ``"zlib"``, ``"zlib-ng"``, ``"isal"``, ``"auto"``, or None
            for ``FASTWS_ZLIB`` (see :mod:`fastws.deflate_backends`).

    Raises:
        ValueError: If a setting is out of its range, the backend is unknown
            or not installed.
    """

    name = NAME

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: Optional[int] = None,
        client_max_window_bits: Union[None, bool, int] = True,
        level: Optional[int] = None,
        mem_level: int = DEFAULT_MEM_LEVEL,
        min_size: int = DEFAULT_MIN_SIZE,
        backend: Union[None, str, Backend] = None,
    ) -> None:
        _check_bits("server_max_window_bits", server_max_window_bits)
        _check_bits("client_max_window_bits", client_max_window_bits, allow_true=True)
        self.backend = _backend(backend)
        self._level = level  # None: each backend's default (isal's partner has its own)
        level = _check_settings(level, mem_level, min_size, self.backend)
        self.server_no_context_takeover = bool(server_no_context_takeover)
        self.client_no_context_takeover = bool(client_no_context_takeover)
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.level = level
        self.mem_level = mem_level
        self.min_size = min_size

    def __repr__(self) -> str:
        return (
            f"ClientPerMessageDeflateFactory(server_no_context_takeover={self.server_no_context_takeover},"
            f" client_no_context_takeover={self.client_no_context_takeover},"
            f" server_max_window_bits={self.server_max_window_bits},"
            f" client_max_window_bits={self.client_max_window_bits},"
            f" level={self.level}, mem_level={self.mem_level}, min_size={self.min_size},"
            f" backend={self.backend.name!r})"
        )

    def offer(self) -> ExtensionParams:
        return _build_params(
            self.server_no_context_takeover,
            self.client_no_context_takeover,
            self.server_max_window_bits,
            self.client_max_window_bits,
        )

    def accept(self, params: ExtensionParams, accepted: Sequence[Extension]) -> PerMessageDeflate:
        _check_duplicate(accepted)
        answer = _parse_params(params, offer=False)

        server_nct = bool(answer.get("server_no_context_takeover"))
        if self.server_no_context_takeover and not server_nct:
            raise NegotiationError(f"{NAME}: the answer lacks server_no_context_takeover")
        # The server may ask for it; if this side offered it, it applies anyway.
        client_nct = bool(answer.get("client_no_context_takeover")) or self.client_no_context_takeover

        server_bits: Optional[int] = answer.get("server_max_window_bits")
        if self.server_max_window_bits is not None:
            if server_bits is None:
                raise NegotiationError(f"{NAME}: the answer lacks server_max_window_bits")
            if server_bits > self.server_max_window_bits:
                raise NegotiationError(
                    f"{NAME}: server_max_window_bits={server_bits} in the answer,"
                    f" more than the {self.server_max_window_bits} offered"
                )

        client_bits: Optional[int] = answer.get("client_max_window_bits")
        if self.client_max_window_bits is None:
            if client_bits is not None:
                raise NegotiationError(f"{NAME}: client_max_window_bits in the answer was not offered")
        elif self.client_max_window_bits is not True:
            if client_bits is None:
                client_bits = self.client_max_window_bits  # this side's own limit
            elif client_bits > self.client_max_window_bits:
                raise NegotiationError(
                    f"{NAME}: client_max_window_bits={client_bits} in the answer,"
                    f" more than the {self.client_max_window_bits} offered"
                )

        return PerMessageDeflate(
            remote_no_context_takeover=server_nct,
            local_no_context_takeover=client_nct,
            remote_max_window_bits=server_bits or 15,
            local_max_window_bits=client_bits or 15,
            level=self._level,
            mem_level=self.mem_level,
            min_size=self.min_size,
            backend=self.backend,
        )

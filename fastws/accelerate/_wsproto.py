"""wsproto on fastws: masking and frame decoding.

wsproto (which carries uvicorn's ``wsproto`` backend and trio-websocket) parses
frames in pure Python: ``wsproto.frame_protocol.FrameDecoder`` reads headers
with ``struct`` from a ``Buffer`` (a bytearray sliced and trimmed per frame),
and ``XorMaskerSimple`` unmasks with four ``bytes.translate`` calls. The patch
replaces, in ``wsproto.frame_protocol``:

- ``XorMaskerSimple`` by a masker on fastws's compiled XOR kernel, with the same
  interface (``process(data) -> bytearray``, continuing where it stopped);
  wsproto uses it to unmask what it receives and to mask what a client sends;
- ``FrameDecoder`` by a subclass that, when no extension is negotiated, feeds
  the bytes to fastws's compiled :class:`~fastws.codec.FrameParser` and hands
  wsproto the same ``Frame`` tuples, in the same order and pieces (a data frame
  whose payload is still arriving comes out in parts, as wsproto does).

Exact behaviour on errors: when fastws's parser rejects a frame, the decoder
hands every frame before it to wsproto, then gives the bytes from the rejected
frame on to wsproto's own decoding code, which raises its own ``ParseFailed``
with its own message and close code, at the same point as unpatched. With an
extension (permessage-deflate), which hooks into wsproto's decoder per frame,
the decoder is wsproto's own, with the fast masker.

wsproto's UTF-8 check is CPython's incremental UTF-8 decoder, in C already and
needed anyway to produce the ``str``: it is left alone.
"""

from __future__ import annotations

from collections import deque
from typing import Any, List, Optional, Union

from ..codec import FrameParser, apply_mask_inplace
from ..exceptions import ProtocolError
from ._patching import Patcher, PatchResult

_patcher = Patcher("wsproto", "wsproto")
_decoder_classes: dict = {}
_protocol_classes: dict = {}


class XorMaskerSimple:
    """wsproto's ``XorMaskerSimple`` on fastws's XOR kernel: ``process``
    returns a new bytearray, masked, and the next call continues with the next
    byte of the key."""

    __slots__ = ("_masking_key", "_phase")

    def __init__(self, masking_key: Union[bytes, bytearray]) -> None:
        self._masking_key = masking_key
        self._phase = 0

    def process(self, data: Union[bytes, bytearray, memoryview]) -> bytearray:
        data = bytearray(data)
        if data:
            self._phase = apply_mask_inplace(data, self._masking_key, self._phase)
        return data


def _header_length(payload_length: int, masked: bool) -> int:
    """Bytes of the (minimally encoded) header of a frame with this payload."""
    n = 2 if payload_length < 126 else 4 if payload_length < 65536 else 10
    return n + 4 if masked else n


def _make_decoder(fp: Any) -> type:
    """The FrameDecoder subclass for this ``wsproto.frame_protocol`` module."""
    base = fp.FrameDecoder
    cached = _decoder_classes.get(base)
    if cached is not None:
        return cached
    Frame = fp.Frame
    Opcode = fp.Opcode
    opcodes = tuple(Opcode(i) if i in Opcode._value2member_map_ else None for i in range(16))
    CONTINUATION = Opcode.CONTINUATION
    new = tuple.__new__  # Frame(...) without the namedtuple's Python-level __new__

    class FrameDecoder(base):  # type: ignore[misc, valid-type]
        """wsproto's FrameDecoder, parsing with fastws's compiled FrameParser
        when no extension is in use (see the module docstring)."""

        def __init__(self, client: bool, extensions: Optional[list] = None) -> None:
            super().__init__(client, extensions)
            self._fast = not self.extensions
            self._ready: deque = deque()  # wsproto Frames to hand out
            self._emitted = 0  # payload bytes of the pending frame handed out
            self._head = b""  # first bytes (<= 14) of the frame in progress
            self._parser = FrameParser(mask_required=not client) if self._fast else None

        def receive_bytes(self, data: bytes) -> None:
            parser = self._parser  # None exactly when not self._fast
            if parser is None:
                return super().receive_bytes(data)
            before = parser.buffered
            try:
                frames = parser.feed(data)
            except ProtocolError as exc:
                self._take(exc.frames)
                self._fall_back(data, before, exc.frames)
                return None
            if frames:
                self._take(frames)
            # Keep the start of the frame in progress, for _fall_back.
            held = parser.buffered
            if held == 0:
                self._head = b""
            elif held <= len(data):
                start = len(data) - held
                self._head = data[start : start + 14]
            elif len(self._head) < 14:
                self._head = (self._head + data)[:14]
            return None

        def _take(self, frames: list) -> None:
            if not self._emitted:  # the common case: one tuple per frame, no Python call
                self._ready.extend(
                    [new(Frame, (opcodes[f.opcode], f.payload, True, f.fin)) for f in frames]
                )
                return
            append = self._ready.append
            for frame in frames:
                payload = frame.payload
                opcode = opcodes[frame.opcode]
                if self._emitted:
                    payload = payload[self._emitted :]
                    opcode = CONTINUATION
                    self._emitted = 0
                append(Frame(opcode, payload, True, frame.fin))

        def _fall_back(self, data: bytes, before: int, frames: list) -> None:
            """fastws rejected a frame: give wsproto's own code the bytes from
            that frame on, so that it fails (or not) exactly as it would."""
            masked = not self.client
            offset = -before
            for frame in frames:
                n = len(frame.payload)
                offset += _header_length(n, masked) + n
            rest = self._head[:before] + data if offset < 0 else data[offset:]
            self._fast = False
            self._parser = None
            self._emitted = 0
            super().receive_bytes(rest)

        def process_buffer(self) -> Any:
            if self._ready:
                return self._ready.popleft()
            parser = self._parser  # None exactly when not self._fast
            if parser is None:
                return super().process_buffer()
            pending = parser.pending()
            if pending is None:
                return None
            opcode, fin, _rsv1, received = pending
            if opcode >= 8 or received <= self._emitted:
                return None  # wsproto waits for whole control frames
            payload = parser.pending_payload(self._emitted)
            opcode = opcodes[opcode] if not self._emitted else CONTINUATION
            self._emitted = received
            return Frame(opcode, payload, False, fin)

    FrameDecoder.__qualname__ = FrameDecoder.__name__ = "FrameDecoder"
    FrameDecoder.__module__ = __name__
    _decoder_classes[base] = FrameDecoder
    return FrameDecoder


def _make_protocol(fp: Any) -> type:
    """The FrameProtocol subclass for this ``wsproto.frame_protocol`` module."""
    base = fp.FrameProtocol
    cached = _protocol_classes.get(base)
    if cached is not None:
        return cached
    Frame = fp.Frame
    TEXT, BINARY, CLOSE = fp.Opcode.TEXT, fp.Opcode.BINARY, fp.Opcode.CLOSE
    new = tuple.__new__

    class FrameProtocol(base):  # type: ignore[misc, valid-type]
        """wsproto's FrameProtocol with a shorter path for the common case: a
        whole text or binary message in one frame goes straight out (text
        decoded with ``bytes.decode``); everything else, and any text that does
        not decode, goes through wsproto's own MessageDecoder as before, so
        fragmented messages and errors behave exactly as unpatched."""

        extensions: List[Any]  # wsproto's, set by its __init__

        def _parse_more_gen(self) -> Any:
            self.extensions = [ext for ext in self.extensions if ext.enabled()]
            closed = False
            decoder = self._frame_decoder
            messages = self._message_decoder
            process_buffer = decoder.process_buffer
            ready = getattr(decoder, "_ready", None)
            # (without our decoder, `ready` is None and popleft is never called)
            popleft = ready.popleft if ready is not None else process_buffer
            while not closed:
                frame = popleft() if ready else process_buffer()
                if frame is not None:
                    opcode = frame[0]  # Frame(opcode, payload, frame_finished, message_finished)
                    if opcode is BINARY and frame[3] and frame[2] and messages.opcode is None:
                        pass  # a whole binary message: as MessageDecoder would return it
                    elif opcode is TEXT and frame[3] and frame[2] and messages.opcode is None:
                        try:
                            frame = new(Frame, (TEXT, frame[1].decode("utf-8"), True, True))
                        except UnicodeDecodeError:
                            frame = messages.process_frame(frame)  # raises as wsproto does
                    elif opcode & 8:
                        if opcode is CLOSE:
                            frame = self._process_close(frame)
                            closed = True
                    else:
                        frame = messages.process_frame(frame)
                yield frame

        def received_frames(self) -> Any:
            # The frames up to the next None from the parsing generator, as
            # wsproto's own generator gives them, without a generator of its own.
            return iter(self._parse_more.__next__, None)

    FrameProtocol.__qualname__ = FrameProtocol.__name__ = "FrameProtocol"
    FrameProtocol.__module__ = __name__
    _protocol_classes[base] = FrameProtocol
    return FrameProtocol


def patch_wsproto(*, allow_pure: bool = False) -> PatchResult:
    """Replace wsproto's masker and frame decoder by fastws's compiled code.

    Idempotent; undone by :func:`unpatch_wsproto`. Raises
    :class:`~fastws.accelerate.IncompatibleVersion` (and patches nothing) when
    ``wsproto.frame_protocol`` lacks what it replaces. Affects connections
    created after the call.
    """
    early = _patcher.begin(allow_pure)
    if early is not None:
        return early
    import wsproto.frame_protocol as fp

    for name in ("FrameDecoder", "XorMaskerSimple", "Frame", "Opcode", "FrameProtocol"):
        _patcher.require(fp, name)
    for name in ("receive_bytes", "process_buffer", "parse_header"):
        _patcher.require(fp.FrameDecoder, name)
    probe = fp.FrameDecoder(client=False, extensions=[])
    for name in ("buffer", "client", "extensions"):
        _patcher.require(probe, name)
    fields = ("opcode", "payload", "frame_finished", "message_finished")
    if tuple(getattr(fp.Frame, "_fields", ()))[:4] != fields:
        raise _patcher.incompatible(f"wsproto.frame_protocol.Frame's fields are not {fields}")
    for name in ("_parse_more_gen", "_process_close", "received_frames", "receive_bytes"):
        _patcher.require(fp.FrameProtocol, name)
    probe_protocol = fp.FrameProtocol(client=False, extensions=[])
    for name in ("_frame_decoder", "_message_decoder", "_parse_more"):
        _patcher.require(probe_protocol, name)
    for name in ("opcode", "decoder", "process_frame"):
        _patcher.require(probe_protocol._message_decoder, name)
    import wsproto.connection as connection

    _patcher.require(connection, "FrameProtocol")
    decoder = _make_decoder(fp)
    protocol = _make_protocol(fp)
    return _patcher.apply(
        [
            (fp, "XorMaskerSimple", XorMaskerSimple),
            (fp, "FrameDecoder", decoder),
            (fp, "FrameProtocol", protocol),
            (connection, "FrameProtocol", protocol),
        ],
        reason="masking and, without extensions, frame decoding run on fastws",
    )


def unpatch_wsproto() -> bool:
    """Restore wsproto's own masker and decoder; False if it was not patched."""
    return _patcher.restore()


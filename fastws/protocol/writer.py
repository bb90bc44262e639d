"""The message writer: frames to send, queued for the driver."""

from __future__ import annotations

from typing import Any, List, Optional, Union

from .types import PASS_THROUGH_SIZE, Gates

__all__ = ["MessageWriter"]

_CONT = 0
_PONG = 10


class MessageWriter:
    """Frames what a connection sends and queues it for
    :meth:`~fastws.protocol.Protocol.data_to_send`; owns
    :attr:`Gates.fast_send` and :attr:`Gates.has_data_to_send`.

    Text, binary and continuation frames take one path, :meth:`send`. A
    ``bytes`` payload of :data:`~fastws.protocol.PASS_THROUGH_SIZE` or more that
    goes out unmasked and unextended is queued after its header
    (:func:`~fastws.codec.build_header`), uncopied.

    Args:
        codec: The codec module (``build_frame``, ``build_header``).
        gates: The protocol's :class:`~fastws.protocol.Gates`.
        mask: True on the client side, which masks every frame (RFC 6455
            section 5.3).
    """

    __slots__ = (
        "_gates",
        "_build_frame",
        "_build_header",
        "_mask",
        "_out",
        "_open",
        "_ext",
        "fragmented",
        "_holding_pongs",
        "_held_pong",
    )

    def __init__(self, codec: Any, gates: Gates, *, mask: bool) -> None:
        self._gates = gates
        self._build_frame = codec.build_frame
        self._build_header = codec.build_header
        self._mask = True if mask else None
        self._out: List[bytes] = []
        self._open = False  # messages may be sent
        self._ext: Any = None  # the extension that encodes messages, if any
        #: The opcode of the message being sent in fragments, None if none.
        self.fragmented: Optional[int] = None
        self._holding_pongs = False
        self._held_pong: Optional[bytes] = None

    def _update(self) -> None:
        out = self._out
        gates = self._gates
        gates.has_data_to_send = bool(out)
        gates.fast_send = (
            self._open and self.fragmented is None and self._ext is None and not out
        )

    # --- the connection's course ----------------------------------------------------

    def open(self, ext: Any) -> None:
        """Messages may be sent from now on, through ``ext`` (the negotiated
        extension that encodes them, None if none)."""
        self._open = True
        self._ext = ext
        self._update()

    def close(self) -> None:
        """No message may be sent any more: a close frame is queued. A
        fragmented message being sent is abandoned."""
        self._open = False
        self.fragmented = None
        self._update()

    def end(self) -> None:
        """No message may be sent any more: the stream ended."""
        self._open = False
        self._update()

    # --- queueing -------------------------------------------------------------------

    def queue(self, data: bytes) -> None:
        """Queue bytes as they are (the opening handshake's request or response)."""
        self._out.append(data)
        gates = self._gates
        gates.has_data_to_send = True
        gates.fast_send = False

    def data_to_send(self) -> bytes:
        """The bytes queued since the last call, joined (``b""`` if none)."""
        out = self._out
        if not out:
            return b""
        self._out = []
        self._update()
        return out[0] if len(out) == 1 else b"".join(out)

    def chunks_to_send(self) -> List[bytes]:
        """The bytes queued since the last call, as chunks (``[]`` if none)."""
        out = self._out
        if not out:
            return out
        self._out = []
        self._update()
        return out

    # --- frames ---------------------------------------------------------------------

    def send(self, opcode: int, data: Union[str, bytes, bytearray, memoryview], fin: bool) -> None:
        """Queue a text (1), binary (2) or continuation (0) frame; the caller
        checks that the connection allows it. A first frame without ``fin``
        starts a fragmented message, a continuation with ``fin`` ends it, once
        its frame is built: a payload refused starts or ends nothing.

        Raises:
            TypeError: ``data`` is not a ``str`` or bytes-like object.
        """
        ext = self._ext
        if ext is None:
            if self._mask is None and type(data) is bytes and len(data) >= PASS_THROUGH_SIZE:
                self._out += (self._build_header(opcode, len(data), fin=fin), data)
            else:
                self._out.append(self._build_frame(opcode, data, fin=fin, mask=self._mask))
        else:
            if isinstance(data, str):
                data = data.encode("utf-8")
            elif type(data) is not bytes:
                # The extension takes bytes: those of any buffer, in C order
                # (bytes() of an int would be zeros, not a TypeError).
                try:
                    data = memoryview(data).tobytes()
                except TypeError:
                    raise TypeError(
                        f"payload must be a bytes-like object, not {type(data).__name__}"
                    ) from None
            first = opcode != _CONT
            payload, rsv1 = ext.encode(data, first=first, fin=fin)
            self._out.append(
                self._build_frame(
                    opcode, payload, fin=fin, rsv1=bool(rsv1) and first, mask=self._mask
                )
            )
        if opcode == _CONT:
            if fin:
                self.fragmented = None
        elif not fin:
            self.fragmented = opcode
        gates = self._gates  # a frame is queued, whatever the fragments
        gates.has_data_to_send = True
        gates.fast_send = False

    def control(self, opcode: int, data: Union[str, bytes]) -> None:
        """Queue a control frame (ping, pong or close).

        Raises:
            ValueError: ``data`` is longer than 125 bytes.
        """
        self._out.append(self._build_frame(opcode, data, mask=self._mask))
        gates = self._gates
        gates.has_data_to_send = True
        gates.fast_send = False

    def pong(self, data: bytes) -> None:
        """Answer a ping: at once, or held while pongs are held."""
        pong = self._build_frame(_PONG, data, mask=self._mask)
        if self._holding_pongs:
            self._held_pong = pong  # the most recent ping only
        else:
            self.queue(pong)

    def hold_pongs(self) -> None:
        """Hold the answers to pings (see :meth:`~fastws.protocol.Protocol.hold_pongs`)."""
        self._holding_pongs = True

    def release_pongs(self, send: bool) -> None:
        """Answer pings as they come again, and queue the pong held, if any and
        if ``send``."""
        self._holding_pongs = False
        pong, self._held_pong = self._held_pong, None
        if pong is not None and send:
            self.queue(pong)

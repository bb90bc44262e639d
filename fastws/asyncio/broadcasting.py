"""``broadcast()``: one message to many connections, without waiting."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Callable, Iterable, List, Optional, Sequence, Tuple, Union, cast

from ..codec import build_frame
from ..exceptions import BroadcastError, ConcurrencyError
from ..frames import Opcode
from ..protocol import OPEN

if TYPE_CHECKING:
    from .connection import Connection, Data

__all__ = ["broadcast", "broadcast_many", "deliver", "deliver_many", "message_opcode"]

Payload = Union[str, bytes, bytearray, memoryview]


def broadcast(
    connections: Iterable[Connection],
    message: Data,
    *,
    text: Optional[bool] = None,
    raise_exceptions: bool = False,
) -> None:
    """Send ``message`` to every open connection, without waiting.

    The frame is built once for all server-side connections and the same bytes
    are written to each; client-side connections mask each frame with their
    own key. Connections that are not open are skipped silently. A connection
    that cannot take the message is skipped too, and the others still get it:
    one whose write buffer is above its ``write_limit`` (so one slow reader
    never holds up the others, nor fills memory), one in the middle of sending
    a fragmented message, one whose transport fails the write.

    Args:
        connections: The connections.
        message: ``str`` for a text frame, bytes-like for a binary frame.
        text: True sends bytes-like as text (the caller vouches that it is
            UTF-8), False sends ``str`` as binary; None goes by the type.
        raise_exceptions: False (the default) logs each skipped connection on
            its logger; True raises instead, once every connection was tried,
            an :class:`ExceptionGroup` (on Python 3.11 and later; a
            :class:`fastws.exceptions.BroadcastError` with the same
            ``exceptions`` before) of one exception per skipped connection.

    Raises:
        TypeError: If ``message`` is neither ``str`` nor bytes-like.
    """
    opcode = message_opcode(message, text)
    errors: List[Exception] = []

    def skipped(connection: Connection, error: Exception) -> None:
        if raise_exceptions:
            errors.append(error)
        else:
            connection.logger.warning("skipped broadcast: %s", error)

    deliver(connections, opcode, message, skipped)
    if errors:
        raise _exception_group("skipped broadcast", errors)


def broadcast_many(
    connections: Iterable[Connection],
    messages: Sequence[Data],
    *,
    text: Optional[bool] = None,
    raise_exceptions: bool = False,
) -> None:
    """Send several messages, in order, to every open connection, without waiting.

    What calling :func:`broadcast` once per message does, with one write per
    connection instead of one per message and connection: the frames are
    built once and joined, and each connection's transport takes them all in
    one call (one system call while the kernel has room), which is where a
    burst of messages costs less than a loop of :func:`broadcast`. Each
    connection gets all the messages or none: it is skipped, for the reasons
    :func:`broadcast` gives, before any of them is written.

    Args:
        connections: The connections.
        messages: Each ``str`` for a text frame, bytes-like for a binary frame.
        text: As for :func:`broadcast`, applied to every message.
        raise_exceptions: As for :func:`broadcast`.

    Raises:
        TypeError: If a message is neither ``str`` nor bytes-like.
    """
    batch = [(message_opcode(message, text), message) for message in messages]
    errors: List[Exception] = []

    def skipped(connection: Connection, error: Exception) -> None:
        if raise_exceptions:
            errors.append(error)
        else:
            connection.logger.warning("skipped broadcast: %s", error)

    deliver_many(connections, batch, skipped)
    if errors:
        raise _exception_group("skipped broadcast", errors)


def message_opcode(message: object, text: Optional[bool]) -> Opcode:
    """The opcode of ``message`` sent with ``text`` (see :func:`broadcast`).

    Raises:
        TypeError: If ``message`` is neither ``str`` nor bytes-like.
    """
    if isinstance(message, str):
        return Opcode.BINARY if text is False else Opcode.TEXT
    if isinstance(message, (bytes, bytearray, memoryview)):
        return Opcode.TEXT if text is True else Opcode.BINARY
    raise TypeError(f"message must be str or bytes-like, not {type(message).__name__}")


def deliver(
    connections: Iterable[Connection],
    opcode: Opcode,
    message: Payload,
    skipped: Callable[[Connection, Exception], None],
) -> int:
    """Write one message to each open connection, without waiting.

    What :func:`broadcast` and :class:`fastws.PubSub` share: the frame is built
    once for the server-side connections; a connection that is not open is
    passed over; one that cannot take the message now (over its write limit,
    in the middle of a fragmented message, or whose transport fails the
    write) is handed to ``skipped`` with the reason, and the others still get
    the message.

    Args:
        connections: The connections.
        opcode: :attr:`Opcode.TEXT` or :attr:`Opcode.BINARY`.
        message: The payload (``str`` is encoded as UTF-8).
        skipped: Called with each connection skipped and why.

    Returns:
        How many connections the frame was written to.
    """
    return deliver_many(connections, ((opcode, message),), skipped)


def deliver_many(
    connections: Iterable[Connection],
    messages: Sequence[Tuple[Opcode, Payload]],
    skipped: Callable[[Connection, Exception], None],
) -> int:
    """:func:`deliver` for several messages: ``(opcode, payload)`` pairs, all
    written to each connection in one ``transport.write`` (see
    :func:`broadcast_many`).

    Returns:
        How many connections the frames were written to.
    """
    if not messages:
        return 0
    # Imported here: server_connection imports connection, which imports this.
    from .server_connection import ServerConnection

    frames = None  # built at the first connection that takes them unmasked
    written = 0
    for connection in connections:
        # The common case costs what a bare ``transport.write`` loop costs,
        # give or take a few reads: ``fast_send`` alone says the connection is
        # OPEN, sends no fragmented message, negotiated no extension and has
        # nothing queued; then the transport is not closing nor over
        # ``write_limit``, and the connection is server-side (no mask). A
        # ServerConnection's protocol is a ServerProtocol, which never masks:
        # its type, in the object's header, says so without reading the
        # protocol (with thousands of connections, every object read per
        # connection is a cache miss that costs about as much as the rest).
        transport = connection.transport
        if (
            connection._gates.fast_send
            and transport.get_write_buffer_size() <= connection.write_limit
            and not transport.is_closing()
            and (type(connection) is ServerConnection or not connection.protocol.mask_frames)
        ):
            if frames is None:
                frames = b"".join([build_frame(opcode, payload) for opcode, payload in messages])
            try:
                transport.write(frames)
            except Exception as exc:
                skipped(connection, _write_failed(connection, exc))
            else:
                written += 1
            continue
        # Any other case (permessage-deflate negotiated, the usual one with
        # browsers, comes here too), checked in the order that decides which
        # reason a skipped connection is given.
        protocol = connection.protocol
        if not protocol.can_send_frame():  # not OPEN, or sending fragments
            if protocol.state is OPEN:
                skipped(connection, ConcurrencyError(f"{connection!r} is sending a fragmented message"))
            continue
        if transport is None or transport.is_closing():
            continue  # reset by the peer: connection_lost is on its way
        if transport.get_write_buffer_size() > connection.write_limit:
            skipped(connection, RuntimeError(f"{connection!r} is not reading fast enough"))
            continue
        try:
            if protocol.gates.has_data_to_send:
                connection._flush()  # what the protocol queued goes first
            # An extension (permessage-deflate) is not asked to encode: an
            # uncompressed frame is valid on such a connection too.
            if protocol.mask_frames:
                transport.write(
                    b"".join([build_frame(opcode, payload, mask=True) for opcode, payload in messages])
                )
            else:
                if frames is None:
                    frames = b"".join([build_frame(opcode, payload) for opcode, payload in messages])
                transport.write(frames)
            written += 1
        except Exception as exc:
            skipped(connection, _write_failed(connection, exc))
    return written


def _write_failed(connection: Connection, exc: Exception) -> RuntimeError:
    """The error a connection is skipped with when its transport failed the write."""
    error = RuntimeError(f"failed to write to {connection!r}: {exc}")
    error.__cause__ = exc
    return error


def _exception_group(message: str, errors: List[Exception]) -> Exception:
    """An ExceptionGroup (Python 3.11 and later), else a BroadcastError."""
    group = getattr(builtins, "ExceptionGroup", None)
    if group is not None:
        return cast(Exception, group(message, errors))
    return BroadcastError(message, errors)

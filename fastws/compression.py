"""The ``compression`` and ``extensions`` options of every driver's serve() and
connect(): the extension factories they give the protocol."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from .deflate import ClientPerMessageDeflateFactory, ServerPerMessageDeflateFactory


def extension_factories(
    compression: Optional[str], extensions: Optional[Sequence[Any]], *, server: bool
) -> list:
    """Extension factories to offer (client) or accept (server), in order of
    preference: permessage-deflate first when ``compression="deflate"`` (the
    default, as every browser offers it), then the caller's ``extensions``."""
    factories = list(extensions or ())
    if compression == "deflate":
        factory = ServerPerMessageDeflateFactory() if server else ClientPerMessageDeflateFactory()
        factories.insert(0, factory)
    elif compression is not None:
        raise ValueError(f"unsupported compression {compression!r}: use 'deflate' or None")
    return factories

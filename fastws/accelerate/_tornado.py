"""Tornado on fastws: ``websocket_mask``.

Tornado masks and unmasks WebSocket payloads (and its XSRF tokens) with
``tornado.util._websocket_mask(mask, data) -> bytes``: its C speedup (a byte
loop, about 6 GB/s at 64 KiB here) or a pure-Python fallback. The patch
replaces it, in ``tornado.util`` and where it was imported
(``tornado.websocket``, ``tornado.web``), by fastws's kernel (about 20 GB/s);
it patches when Tornado's speedup is present too, since fastws's is faster at
every size. Tornado validates text with ``bytes.decode("utf-8")`` (C already)
and parses frames in coroutine code: both are left alone.
"""

from __future__ import annotations

from ..codec import apply_mask as _apply_mask
from ._patching import Patcher, PatchResult

_patcher = Patcher("tornado", "tornado")


def websocket_mask(mask: bytes, data: bytes) -> bytes:
    """Tornado's ``_websocket_mask(mask, data)`` on fastws's XOR kernel."""
    return _apply_mask(data, mask)


def patch_tornado(*, allow_pure: bool = False) -> PatchResult:
    """Replace Tornado's ``_websocket_mask`` by fastws's.

    Idempotent; undone by :func:`unpatch_tornado`. Raises
    :class:`~fastws.accelerate.IncompatibleVersion` (and patches nothing) when
    a module lacks ``_websocket_mask``.
    """
    early = _patcher.begin(allow_pure)
    if early is not None:
        return early
    import tornado.util as util
    import tornado.web as web
    import tornado.websocket as websocket

    speedup = getattr(util, "_websocket_mask", None) is not getattr(util, "_websocket_mask_python", None)
    return _patcher.apply(
        [
            (util, "_websocket_mask", websocket_mask),
            (websocket, "_websocket_mask", websocket_mask),
            (web, "_websocket_mask", websocket_mask),
        ],
        reason="websocket_mask runs on fastws"
        + (" (replacing tornado.speedups, which is slower)" if speedup else ""),
    )


def unpatch_tornado() -> bool:
    """Restore Tornado's own ``_websocket_mask``; False if it was not patched."""
    return _patcher.restore()

"""aiohttp on fastws: ``websocket_mask``, when aiohttp's extension is missing.

aiohttp masks in place with ``websocket_mask(mask, data: bytearray) -> None``
from ``aiohttp._websocket.helpers``: its Cython function, or a pure-Python
fallback on PyPy, in source builds without a compiler and under
``AIOHTTP_NO_EXTENSIONS=1``. Without its extension, aiohttp also runs its
pure-Python frame reader (``aiohttp._websocket.reader_py``) and writer, which
call the module-level ``websocket_mask``: the patch replaces it there, in
``helpers``, ``reader_py`` and ``writer``, by fastws's in-place kernel.

When aiohttp's extension is active the patch does nothing (and says so in its
result): its compiled reader calls its own mask through a C import that cannot
be replaced, and that mask is within about 20 % of fastws's at 64 KiB. Pass
``force=True`` to patch the Python-level references (the writer's client-side
masking) anyway. aiohttp validates text with ``bytes.decode("utf-8")`` (C
already), left alone.
"""

from __future__ import annotations

from ..codec import apply_mask_inplace
from ._patching import Patcher, PatchResult

_patcher = Patcher("aiohttp", "aiohttp")


def websocket_mask(mask: bytes, data: bytearray) -> None:
    """aiohttp's ``websocket_mask(mask, data)`` on fastws's kernel: masks the
    bytearray ``data`` in place."""
    apply_mask_inplace(data, mask)


def patch_aiohttp(*, force: bool = False, allow_pure: bool = False) -> PatchResult:
    """Replace aiohttp's pure-Python ``websocket_mask`` by fastws's.

    A no-op with an explanation (``result.active`` False) when aiohttp's own
    extension is active, unless ``force=True``. Idempotent; undone by
    :func:`unpatch_aiohttp`. Raises
    :class:`~fastws.accelerate.IncompatibleVersion` (and patches nothing) when
    aiohttp's modules lack ``websocket_mask``.
    """
    early = _patcher.begin(allow_pure)
    if early is not None:
        return early
    import aiohttp._websocket.helpers as helpers
    import aiohttp._websocket.reader_py as reader_py
    import aiohttp._websocket.writer as writer

    plan = [
        (helpers, "websocket_mask", websocket_mask),
        (reader_py, "websocket_mask", websocket_mask),
        (writer, "websocket_mask", websocket_mask),
    ]
    extension = _patcher.require(helpers, "websocket_mask") is not _patcher.require(
        helpers, "_websocket_mask_python"
    )
    if extension and not force:
        return _patcher.result(
            False,
            False,
            "aiohttp's own compiled mask is active (its C reader cannot use another one, and "
            "it is about as fast): not patched; force=True patches the writer's mask anyway",
            targets=("aiohttp._websocket.helpers.websocket_mask",),
        )
    return _patcher.apply(
        plan,
        reason="websocket_mask runs on fastws"
        + (" (forced: aiohttp's compiled reader keeps its own mask)" if extension else ""),
    )


def unpatch_aiohttp() -> bool:
    """Restore aiohttp's own ``websocket_mask``; False if it was not patched."""
    return _patcher.restore()

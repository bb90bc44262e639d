"""websockets on fastws: ``apply_mask``, when its speedups are missing.

websockets unmasks and masks with ``apply_mask(data, mask) -> bytes``, from its
C module ``websockets.speedups`` or, without it (PyPy, source builds), the
big-integer XOR of ``websockets.utils``. The patch replaces the name its frame
code calls, ``websockets.frames.apply_mask`` (and
``websockets.legacy.framing.apply_mask`` when that module is already
imported), by :func:`fastws.codec.apply_mask` itself.

When the speedups are active the patch does nothing (and says so in its
result): they are within about 25 % of fastws at 64 KiB. ``force=True`` patches
anyway. Frame parsing (generator-based, in ``websockets.frames``) and UTF-8
(``bytes.decode``, C already) are left alone. One visible difference: a mask
that is not 4 bytes long (websockets never makes one) raises ValueError with
fastws's wording.
"""

from __future__ import annotations

import sys

from .. import codec
from ._patching import Patcher, PatchResult

_patcher = Patcher("websockets", "websockets")


def patch_websockets(*, force: bool = False, allow_pure: bool = False) -> PatchResult:
    """Replace websockets' pure-Python ``apply_mask`` by fastws's.

    A no-op with an explanation (``result.active`` False) when websockets'
    speedups are active, unless ``force=True``. Idempotent; undone by
    :func:`unpatch_websockets`. Raises
    :class:`~fastws.accelerate.IncompatibleVersion` (and patches nothing) when
    ``websockets.frames`` has no ``apply_mask``.
    """
    early = _patcher.begin(allow_pure)
    if early is not None:
        return early
    import websockets.frames as frames
    import websockets.utils as utils

    current = _patcher.require(frames, "apply_mask")
    speedups = current is not _patcher.require(utils, "apply_mask")
    if speedups and not force:
        return _patcher.result(
            False,
            False,
            "websockets' C speedups are active (about as fast as fastws): not patched; "
            "force=True patches anyway",
            targets=("websockets.frames.apply_mask",),
        )
    plan = [(frames, "apply_mask", codec.apply_mask)]
    legacy = sys.modules.get("websockets.legacy.framing")
    if legacy is not None:
        plan.append((legacy, "apply_mask", codec.apply_mask))
    return _patcher.apply(
        plan,
        reason="apply_mask runs on fastws" + (" (forced over websockets.speedups)" if speedups else ""),
    )


def unpatch_websockets() -> bool:
    """Restore websockets' own ``apply_mask``; False if it was not patched."""
    return _patcher.restore()

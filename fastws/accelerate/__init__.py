"""Drop-in acceleration for other WebSocket libraries.

Programs built on another WebSocket library get fastws's compiled masking,
UTF-8 validation and, where the library's design allows it, frame parsing,
without a rewrite::

    import fastws.accelerate
    fastws.accelerate.patch_all()      # whatever is installed
    # or one library: patch_wsproto(), patch_autobahn(), patch_aiohttp(),
    # patch_websockets(), patch_tornado(), patch_ws4py()

Every ``patch_*`` function is idempotent (a second call is a no-op), returns a
:class:`PatchResult` (true when the library runs on fastws), and is undone
exactly by its ``unpatch_*`` function. When a library's internals are not what
the patch was written for, it raises :class:`IncompatibleVersion` naming the
library, its version and the missing attribute, and patches nothing;
:func:`patch_all` turns that into an :class:`AccelerationWarning`.

Policies:

- With fastws's pure-Python twin active (``fastws.IMPLEMENTATION == "python"``),
  patches refuse with an :class:`AccelerationWarning` (they would be correct,
  not faster) unless ``allow_pure=True``.
- aiohttp and websockets have compiled code of their own that is about as fast
  as fastws's: their patches only act when it is missing, unless ``force=True``.
  Autobahn's NVX and Tornado's speedups are slower than fastws: patched anyway.

Patch before connections are made: connections already open keep the objects
they were created with. :mod:`fastws.accelerate.wsaccel` is a wsaccel-compatible
layer (same modules, classes and ``patch_autobahn``/``patch_ws4py``).
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import Dict

from ._aiohttp import patch_aiohttp, unpatch_aiohttp
from ._autobahn import patch_autobahn, unpatch_autobahn
from ._patching import (
    AccelerationError,
    AccelerationWarning,
    IncompatibleVersion,
    PatchResult,
    distribution_version,
)
from ._tornado import patch_tornado, unpatch_tornado
from ._websockets import patch_websockets, unpatch_websockets
from ._ws4py import patch_ws4py, unpatch_ws4py
from ._wsproto import patch_wsproto, unpatch_wsproto

__all__ = [
    "patch_all",
    "unpatch_all",
    "patch_wsproto",
    "unpatch_wsproto",
    "patch_autobahn",
    "unpatch_autobahn",
    "patch_aiohttp",
    "unpatch_aiohttp",
    "patch_websockets",
    "unpatch_websockets",
    "patch_tornado",
    "unpatch_tornado",
    "patch_ws4py",
    "unpatch_ws4py",
    "PatchResult",
    "AccelerationError",
    "IncompatibleVersion",
    "AccelerationWarning",
    "LIBRARIES",
]

#: library -> (import name, patch function, unpatch function)
LIBRARIES: Dict[str, tuple] = {
    "wsproto": ("wsproto", patch_wsproto, unpatch_wsproto),
    "autobahn": ("autobahn", patch_autobahn, unpatch_autobahn),
    "aiohttp": ("aiohttp", patch_aiohttp, unpatch_aiohttp),
    "websockets": ("websockets", patch_websockets, unpatch_websockets),
    "tornado": ("tornado", patch_tornado, unpatch_tornado),
    "ws4py": ("ws4py", patch_ws4py, unpatch_ws4py),
}


def patch_all(*, allow_pure: bool = False) -> Dict[str, PatchResult]:
    """Patch every library of :data:`LIBRARIES` that is installed.

    A library whose internals changed is not patched: :func:`patch_all` warns
    with :class:`AccelerationWarning` instead of raising
    :class:`IncompatibleVersion`, and goes on with the others.

    Args:
        allow_pure: Patch even when fastws's pure-Python twin is active (the
            patches are correct then, not faster).

    Returns:
        ``{library: PatchResult}`` for every library of :data:`LIBRARIES`;
        ``active`` is False, with the reason, for those not installed, not
        worth patching, or whose internals changed.
    """
    results: Dict[str, PatchResult] = {}
    for name, (module, patch, _unpatch) in LIBRARIES.items():
        if importlib.util.find_spec(module) is None:
            results[name] = PatchResult(name, None, False, False, (), "not installed")
            continue
        try:
            results[name] = patch(allow_pure=allow_pure)
        except AccelerationError as exc:
            warnings.warn(f"fastws.accelerate: {exc}", AccelerationWarning, stacklevel=2)
            results[name] = PatchResult(name, distribution_version(name), False, False, (), str(exc))
    return results


def unpatch_all() -> Dict[str, bool]:
    """Undo every patch, restoring exactly what was there.

    Returns:
        ``{library: whether it was patched}``.
    """
    return {name: unpatch() for name, (_m, _p, unpatch) in LIBRARIES.items()}

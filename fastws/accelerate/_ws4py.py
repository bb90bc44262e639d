"""ws4py on fastws: masking and UTF-8 validation.

ws4py masks and unmasks with ``Frame.mask``/``Frame.unmask``, a Python loop
over every byte, and validates text with a pure-Python DFA
(``ws4py.utf8validator.Utf8Validator``, imported by ``ws4py.streaming``). The
patch replaces ``ws4py.framing.Frame.mask`` and ``.unmask`` by fastws's XOR
kernel (same result: a new bytearray) and the validator, in
``ws4py.streaming`` and ``ws4py.utf8validator``, by fastws's wsaccel-compatible
one (as wsaccel's ``patch_ws4py`` did). ws4py reads only the first two fields
of ``validate()``'s result; its own validator reports ``len(buf) - 1`` as the
index of valid input where wsaccel and fastws report ``len(buf)``, which changes
nothing ws4py does. Frame parsing (a generator in ``ws4py.framing.Frame.parser``)
is left alone.
"""

from __future__ import annotations

from typing import Any, Callable

from ..codec import apply_mask_inplace
from ._patching import Patcher, PatchResult
from .wsaccel.utf8validator import Utf8Validator

_patcher = Patcher("ws4py", "ws4py")
_masks: dict = {}  # ws4py's Frame.mask -> its replacement (the same one on every patch)


def _make_mask(original: Callable[[Any, Any], Any]) -> Callable[[Any, Any], bytearray]:
    if original in _masks:
        return _masks[original]

    def mask(self: Any, data: Any) -> bytearray:
        """ws4py's ``Frame.mask``/``unmask`` on fastws's XOR kernel."""
        key = self.masking_key
        if isinstance(key, (bytes, bytearray)) and len(key) == 4:
            masked = bytearray(data)
            apply_mask_inplace(masked, key)
            return masked
        return original(self, data)  # whatever ws4py does with odd keys

    mask.__qualname__ = "Frame.mask"
    _masks[original] = mask
    return mask


def patch_ws4py(*, allow_pure: bool = False) -> PatchResult:
    """Replace ws4py's masking and UTF-8 validator by fastws's.

    Idempotent; undone by :func:`unpatch_ws4py`. Raises
    :class:`~fastws.accelerate.IncompatibleVersion` (and patches nothing) when
    ws4py's modules lack what it replaces.
    """
    early = _patcher.begin(allow_pure)
    if early is not None:
        return early
    import ws4py.framing as framing
    import ws4py.streaming as streaming
    import ws4py.utf8validator as utf8validator

    mask = _make_mask(_patcher.require(framing.Frame, "mask"))
    return _patcher.apply(
        [
            (framing.Frame, "mask", mask),
            (framing.Frame, "unmask", mask),
            (streaming, "Utf8Validator", Utf8Validator),
            (utf8validator, "Utf8Validator", Utf8Validator),
        ],
        reason="masking and UTF-8 validation run on fastws",
    )


def unpatch_ws4py() -> bool:
    """Restore ws4py's own masking and validator; False if it was not patched."""
    return _patcher.restore()

"""The machinery every patch in :mod:`fastws.accelerate` shares.

A :class:`Patcher` replaces named attributes of another library's modules and
classes, and remembers the originals so that :meth:`Patcher.restore` puts back
exactly what was there. It checks every target before changing anything: when
a library's internals have changed (an attribute is gone), it raises
:class:`IncompatibleVersion` naming the library, its version and the missing
attribute, and leaves the library untouched. It never patches half a library
and never patches nothing silently.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

from .. import codec


class AccelerationError(RuntimeError):
    """A library could not be patched."""


class IncompatibleVersion(AccelerationError):
    """The library's internals are not what the patch was written for (an
    attribute it replaces is missing): nothing was patched."""


class AccelerationWarning(RuntimeWarning):
    """A patch was skipped or is not worthwhile (pure-Python codec active, the
    library's own compiled code active, internals changed under patch_all())."""


@dataclass(frozen=True)
class PatchResult:
    """What a ``patch_*()`` call did.

    ``active``: the library runs fastws's code after the call (also when an
    earlier call patched it). ``changed``: this call replaced something (False
    for a repeated call, which is a no-op). ``targets``: the dotted names that
    are (or would have been) replaced. ``reason``: why nothing was patched, or
    a note on what was patched. ``bool(result)`` is ``active``.
    """

    library: str
    version: Optional[str]
    active: bool
    changed: bool
    targets: Tuple[str, ...] = ()
    reason: str = ""

    def __bool__(self) -> bool:
        return self.active


def distribution_version(dist: str) -> Optional[str]:
    """The installed version of distribution ``dist``, or None."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _dotted(obj: Any, name: str) -> str:
    owner = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", type(obj).__name__)
    module = getattr(obj, "__module__", None)
    if module and not isinstance(obj, type(importlib)) and module != owner:
        owner = f"{module}.{owner}"
    return f"{owner}.{name}"


class Patcher:
    """Replaces attributes of one library and restores them.

    ``library`` is the name used in messages (``"wsproto"``), ``dist`` the
    distribution whose version is reported.
    """

    def __init__(self, library: str, dist: str) -> None:
        self.library = library
        self.dist = dist
        # (owner, attribute, original, replacement), in the order applied
        self._saved: Optional[List[Tuple[Any, str, Any, Any]]] = None
        self._targets: Tuple[str, ...] = ()

    @property
    def version(self) -> Optional[str]:
        return distribution_version(self.dist)

    @property
    def patched(self) -> bool:
        return self._saved is not None

    def incompatible(self, what: str) -> IncompatibleVersion:
        return IncompatibleVersion(
            f"{self.library} {self.version or '(version unknown)'}: {what}; its internals are "
            f"not what fastws.accelerate was written for, so nothing was patched"
        )

    def require(self, obj: Any, name: str) -> Any:
        """``getattr(obj, name)``, or :class:`IncompatibleVersion` naming it."""
        try:
            return getattr(obj, name)
        except AttributeError:
            raise self.incompatible(f"{_dotted(obj, '')[:-1]} has no attribute {name!r}") from None

    def result(self, active: bool, changed: bool, reason: str = "", targets: Sequence[str] = ()) -> PatchResult:
        return PatchResult(
            self.library, self.version, active, changed, tuple(targets) or self._targets, reason
        )

    def begin(self, allow_pure: bool) -> Optional[PatchResult]:
        """None when a patch may go on; else the result to return at once:
        already patched, or refused because the compiled core is not active.

        With the pure-Python twin (``fastws.IMPLEMENTATION == "python"``: no
        compiled core, or ``FASTWS_NO_EXTENSIONS=1``), fastws's code is correct
        but not faster than the library's own, so patches refuse with an
        :class:`AccelerationWarning` unless ``allow_pure=True`` (tests, PyPy).
        """
        if self.patched:
            return self.already()
        if codec.IMPLEMENTATION == "cython" or allow_pure:
            return None
        reason = (
            "fastws's compiled core is not active (fastws.IMPLEMENTATION == 'python'): "
            "patching would not make it faster; pass allow_pure=True to patch anyway"
        )
        warnings.warn(f"fastws.accelerate: {self.library} not patched: {reason}", AccelerationWarning, stacklevel=3)
        return self.result(False, False, reason)

    def already(self) -> PatchResult:
        return self.result(True, False, "already patched")

    def apply(self, plan: Sequence[Tuple[Any, str, Any]], reason: str = "") -> PatchResult:
        """Replace every ``(owner, attribute, replacement)`` of ``plan``, after
        checking that all of them exist. A no-op when already patched."""
        if self._saved is not None:
            return self.already()
        originals = [self.require(owner, name) for owner, name, _ in plan]
        saved = []
        for (owner, name, replacement), original in zip(plan, originals):
            setattr(owner, name, replacement)
            saved.append((owner, name, original, replacement))
        self._saved = saved
        self._targets = tuple(_dotted(owner, name) for owner, name, _ in plan)
        return self.result(True, True, reason)

    def restore(self) -> bool:
        """Put the originals back; False if nothing was patched. An attribute
        that someone else replaced after us is left alone, with a warning."""
        if self._saved is None:
            return False
        for owner, name, original, replacement in reversed(self._saved):
            if getattr(owner, name, None) is replacement:
                setattr(owner, name, original)
            else:
                warnings.warn(
                    f"fastws.accelerate: {_dotted(owner, name)} was replaced by something "
                    f"else after fastws patched {self.library}; left as it is",
                    AccelerationWarning,
                    stacklevel=3,
                )
        self._saved = None
        return True

"""A wsaccel-compatible layer on fastws's compiled codec.

`wsaccel <https://pypi.org/project/wsaccel/>`_ accelerated AutobahnPython and
ws4py; it is unmaintained and has no wheels for recent Pythons. This package
has its module names and API, so code written for it runs on fastws::

    from fastws.accelerate.wsaccel.utf8validator import Utf8Validator
    from fastws.accelerate.wsaccel.xormask import XorMaskerNull, XorMaskerSimple
    from fastws.accelerate import wsaccel
    wsaccel.patch_autobahn()
    wsaccel.patch_ws4py()

or, for a program that does ``import wsaccel`` itself, call :func:`alias_as_wsaccel`
first. ``patch_autobahn()`` and ``patch_ws4py()`` are
:func:`fastws.accelerate.patch_autobahn` and :func:`fastws.accelerate.patch_ws4py`:
they patch what current versions of those libraries really use (wsaccel's
own patch_autobahn sets attributes that Autobahn no longer reads), can be undone
with the ``unpatch_*`` functions there, and return a
:class:`~fastws.accelerate.PatchResult` where wsaccel returned None.
"""

from __future__ import annotations

import importlib.util
import sys

from .._patching import PatchResult

#: The wsaccel release whose API this layer mirrors.
__version__ = "0.6.6"

__all__ = ["patch_autobahn", "patch_ws4py", "alias_as_wsaccel"]


def patch_autobahn() -> PatchResult:
    """Make AutobahnPython use fastws's UTF-8 validator and XOR masker."""
    from .. import patch_autobahn as _patch

    return _patch()


def patch_ws4py() -> PatchResult:
    """Make ws4py use fastws's UTF-8 validator and masking."""
    from .. import patch_ws4py as _patch

    return _patch()


def alias_as_wsaccel(*, replace: bool = False) -> bool:
    """Register this package as ``wsaccel`` (and ``wsaccel.utf8validator``,
    ``wsaccel.xormask``) in ``sys.modules``, so that ``import wsaccel`` finds
    it. Does nothing and returns False when the real wsaccel is importable (or
    already imported), unless ``replace=True``."""
    if not replace and ("wsaccel" in sys.modules or importlib.util.find_spec("wsaccel") is not None):
        return False
    from . import utf8validator, xormask

    sys.modules["wsaccel"] = sys.modules[__name__]
    sys.modules["wsaccel.utf8validator"] = utf8validator
    sys.modules["wsaccel.xormask"] = xormask
    return True

"""Chooses, once at import time, the implementation of a connection's hot methods.

:class:`~fastws.asyncio.connection.Connection` inherits ``get_buffer``,
``buffer_updated`` and ``send_nowait`` from :class:`FastPath`, which has one
source, ``fastws/asyncio/_fastpath_py.py``, and two twins: that module run as
Python (:mod:`fastws.asyncio._fastpath_py`), and the same source compiled by
Cython (:mod:`fastws.asyncio._fastpath`, with the C declarations of
``_fastpath.pxd``). The compiled one is taken when the compiled codec is
active (``fastws.IMPLEMENTATION == "cython"``, see :mod:`fastws.codec`), the
pure-Python one otherwise. ``FASTWS_NO_EXTENSIONS=1`` and
``FASTWS_REQUIRE_EXTENSIONS=1`` apply here as they do to the codec.

:data:`IMPLEMENTATION` says which one is active: ``"cython"`` or ``"python"``.
:func:`load` gives either twin, whichever is active; with it,
:func:`fastws.asyncio.connection.connection_class` gives a Connection that runs
the other one, so that tests and benchmarks compare both in one process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import codec

__all__ = ["FastPath", "IMPLEMENTATION", "load"]


def load(*, pure: bool) -> type[FastPath]:
    """The ``FastPath`` of one twin: the pure-Python one, or the compiled one
    (ImportError if it is not built)."""
    if pure:
        from . import _fastpath_py

        return _fastpath_py.FastPath
    from . import _fastpath

    return _fastpath.FastPath


if TYPE_CHECKING:
    # Both twins have the same names and types (_fastpath.pyi says so).
    from ._fastpath_py import IMPLEMENTATION, FastPath
elif codec.IMPLEMENTATION == "cython":
    try:
        from ._fastpath import IMPLEMENTATION, FastPath
    except ImportError as exc:
        if codec._flag("FASTWS_REQUIRE_EXTENSIONS"):
            raise codec._missing_extension("fastws.asyncio._fastpath", exc) from exc
        from ._fastpath_py import IMPLEMENTATION, FastPath
else:
    from ._fastpath_py import IMPLEMENTATION, FastPath

"""Chooses, once at import time, the implementation of a connection's hot methods.

:class:`~fastws.asyncio.connection.Connection` inherits ``get_buffer``,
``buffer_updated`` and ``send_nowait`` from :class:`FastPath`: the compiled one
(:mod:`fastws.asyncio._fastpath`) when the compiled codec is active
(``fastws.IMPLEMENTATION == "cython"``, see :mod:`fastws.codec`), the pure-Python
twin (:mod:`fastws.asyncio._fastpath_py`) otherwise. ``FASTWS_NO_EXTENSIONS=1``
and ``FASTWS_REQUIRE_EXTENSIONS=1`` apply here as they do to the codec.

:data:`IMPLEMENTATION` says which one is active: ``"cython"`` or ``"python"``.
"""

from __future__ import annotations

from .. import codec

if codec.IMPLEMENTATION == "cython":
    try:
        from ._fastpath import FastPath  # type: ignore[no-redef]
    except ImportError:
        if codec._flag("FASTWS_REQUIRE_EXTENSIONS"):
            raise
        from ._fastpath_py import FastPath  # type: ignore[no-redef]

        IMPLEMENTATION = "python"
    else:
        IMPLEMENTATION = "cython"
else:
    from ._fastpath_py import FastPath  # type: ignore[no-redef]

    IMPLEMENTATION = "python"

__all__ = ["FastPath", "IMPLEMENTATION"]

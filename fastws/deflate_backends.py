"""The zlib implementations permessage-deflate can run on, chosen at run time.

permessage-deflate (:mod:`fastws.deflate`) needs raw deflate streams (negative
``wbits``, 9 to 15), ``Z_SYNC_FLUSH``, compressors and decompressors that keep
their window from one message to the next, and ``max_length`` on
``decompress()``. Three modules offer that with the standard library's API:

- ``zlib`` (the standard library): always there; the leanest in memory
  (about 50 KiB per connection with fastws's default 12-bit windows).
- ``isal`` (``pip install isal``, module ``isal.isal_zlib``): Intel's ISA-L,
  levels 0 to 3 only; at level 1 it compresses chat-like JSON five to eight
  times faster than zlib at level 6, for a slightly lower ratio at 12-bit
  windows (the same at 14 bits and more), but each call costs a few
  microseconds more than zlib's, and its compressor takes about 230 KiB
  whatever the window. So isal compresses the messages at least as large as
  the window (4 KiB with the default 12 bits), which gain little from the
  history of earlier ones anyway; its partner (:attr:`Backend.partner`, the
  standard library's zlib, the leanest in memory) compresses the smaller ones. The compressor changes hands only
  between messages, and starts afresh when it does (a new compressor refers to
  nothing before it, which every inflater accepts): a connection holds one
  compressor at a time, isal's only while it sends large messages.
- ``zlib-ng`` (``pip install zlib-ng``, module ``zlib_ng.zlib_ng``): zlib-ng,
  at level 7 the ratio of zlib's level 6 and about 1.4 times its speed, twice as
  fast at inflating, with about 200 KiB per connection (its hash table has a
  fixed size: ``mem_level`` does not shrink it). Its levels 1 to 6 lose much of
  the history of earlier messages at small windows, hence level 7. Four times
  zlib's memory on every connection that compresses is a trade a server makes on
  purpose, so ``auto`` never picks it: name it.

Which one a connection uses: the ``backend`` argument of the deflate factories,
else the ``FASTWS_ZLIB`` environment variable, else ``"auto"``: isal (with the
standard library's zlib as its partner) when it is installed, else the standard
library's zlib. ``FASTWS_ZLIB=zlib`` forces the standard library. ``docs/deflate.md`` has the
measurements behind the choice.

Levels are zlib's, -1 to 9, whatever the backend: isal maps them onto its own
four (:attr:`Backend.levels`), so that code written for zlib keeps working
when isal gets installed.

Windows. Every backend compresses with exactly the window it is given, 9 to
15 bits (the tests check each one with an inflater of exactly that window). A
negotiated window of 8 bits is compressed with 9 by zlib and zlib-ng, which
never refer more than 250 bytes back with 9 bits (see :mod:`fastws.deflate`);
isal refers up to 512 bytes back, so it cannot honour 8 bits: a connection that
negotiated them compresses with the standard library's zlib
(:meth:`Backend.compressobj`), and still inflates with isal.
"""

from __future__ import annotations

import importlib
import os
import zlib
from typing import Any, Dict, FrozenSet, Optional, Tuple, Type

__all__ = ["Backend", "ENV", "NAMES", "AUTO", "available", "get_backend", "resolve"]

#: The environment variable that chooses the backend when the factories are
#: not given one: ``auto``, ``zlib``, ``zlib-ng`` or ``isal``.
ENV = "FASTWS_ZLIB"
#: The backends fastws knows, by name.
NAMES: Tuple[str, ...] = ("zlib", "zlib-ng", "isal")
#: What ``auto`` tries, in order.
AUTO: Tuple[str, ...] = ("isal", "zlib")

_WINDOWS = frozenset(range(8, 16))


class Backend:
    """One zlib implementation, as permessage-deflate uses it.

    Attributes:
        name: ``"zlib"``, ``"zlib-ng"`` or ``"isal"``.
        module: The module with ``compressobj``, ``decompressobj`` and ``error``.
        version: The version of the library underneath (zlib's, zlib-ng's, ISA-L's
            Python binding's).
        level: The zlib level (0 to 9) used when none is given: this
            backend's best trade of speed and ratio on chat-like JSON at
            12-bit windows (``docs/deflate.md``): 6 for zlib, 7 for zlib-ng, 1
            for isal.
        levels: zlib's levels 0 to 9 -> this backend's own.
        windows: The negotiated window bits (8 to 15) it compresses with
            without ever referring further back.
        error: The exception its decompressor raises on bad data.
        partner: The backend that compresses the messages smaller than the
            window and inflates every message, or None: this one does all.
    """

    __slots__ = ("name", "module", "version", "level", "levels", "windows", "error", "partner")

    def __init__(
        self,
        name: str,
        module: Any,
        version: str,
        *,
        level: int,
        levels: Tuple[int, ...] = tuple(range(10)),
        windows: FrozenSet[int] = _WINDOWS,
        partner: Optional[Backend] = None,
    ) -> None:
        self.name = name
        self.module = module
        self.version = version
        self.level = level
        self.levels = levels
        self.windows = windows
        self.error: Type[Exception] = module.error
        self.partner = partner

    def __repr__(self) -> str:
        return f"<Backend {self.name} {self.version}>"

    def compressobj(self, level: int, bits: int, mem_level: int) -> Any:
        """A raw-deflate compressor for a negotiated window of ``bits`` (8 to
        15) at zlib's ``level`` (-1 to 9; -1: this backend's default).

        When this backend cannot honour that window, the standard library's
        zlib compresses instead: a compressor never refers further back than
        the peer's window.
        """
        if level == -1:
            level = self.level
        wbits = 9 if bits == 8 else bits
        if bits in self.windows:
            return self.module.compressobj(self.levels[level], zlib.DEFLATED, -wbits, mem_level)
        return zlib.compressobj(level, zlib.DEFLATED, -wbits, mem_level)

    def decompressobj(self, bits: int) -> Any:
        """A raw-deflate decompressor for a negotiated window of ``bits`` (8 to
        15): inflating with a larger window than the peer's is always correct."""
        return self.module.decompressobj(wbits=-9 if bits == 8 else -bits)


def _load(name: str) -> Optional[Backend]:
    """The backend ``name``, or None when its module is not installed."""
    if name == "zlib":
        return Backend("zlib", zlib, zlib.ZLIB_RUNTIME_VERSION, level=6)
    if name == "zlib-ng":
        try:
            module = importlib.import_module("zlib_ng.zlib_ng")
        except ImportError:
            return None
        return Backend("zlib-ng", module, module.ZLIBNG_VERSION, level=7)
    if name == "isal":
        try:
            module = importlib.import_module("isal.isal_zlib")
            version = importlib.import_module("isal").__version__
        except ImportError:
            return None
        # isal's levels: 0 (fastest, weakest on small messages), 1, 2, 3.
        return Backend(
            "isal",
            module,
            version,
            level=1,
            levels=(0, 1, 1, 1, 2, 2, 2, 3, 3, 3),
            windows=frozenset(range(9, 16)),
            partner=get_backend("zlib"),
        )
    raise ValueError(f"unknown zlib backend {name!r}: use one of auto, {', '.join(NAMES)}")


_cache: Dict[str, Optional[Backend]] = {}


def get_backend(name: str) -> Optional[Backend]:
    """The backend ``name`` (one of :data:`NAMES`), or None when it is not installed.

    Raises:
        ValueError: If ``name`` is not one of :data:`NAMES`.
    """
    if name not in _cache:
        _cache[name] = _load(name)
    return _cache[name]


def available() -> Dict[str, Backend]:
    """The installed backends, by name, in the order of :data:`NAMES`."""
    found = {}
    for name in NAMES:
        backend = get_backend(name)
        if backend is not None:
            found[name] = backend
    return found


def resolve(name: Optional[str] = None) -> Backend:
    """The backend to use for ``name``: one of :data:`NAMES`, ``"auto"``, or
    None for the :data:`ENV` environment variable (``auto`` when unset).

    Raises:
        ValueError: If the name is unknown, or names a backend that is not
            installed.
    """
    source = "backend"
    if name is None:
        name = os.environ.get(ENV, "").strip().lower() or "auto"
        source = ENV
    if name == "auto":
        for candidate in AUTO:
            backend = get_backend(candidate)
            if backend is not None:
                return backend
        raise AssertionError("the standard library's zlib is always available")  # pragma: no cover
    if name not in NAMES:
        raise ValueError(f"{source}={name!r}: unknown zlib backend; use one of auto, {', '.join(NAMES)}")
    backend = get_backend(name)
    if backend is None:
        module = {"zlib-ng": "zlib-ng", "isal": "isal"}[name]
        raise ValueError(f"{source}={name!r}: {name} is not installed (pip install {module})")
    return backend

"""ASGI echo benchmark: fastws's uvicorn backend against uvicorn's own ones.

    python -m bench.asgi            # every backend, both loops, median of 3 runs (a few minutes)
    python -m bench.asgi --quick    # smoke run: every case once, briefly

One Starlette app (a ``WebSocketRoute`` that echoes each message as it came)
served by uvicorn with each WebSocket backend, by Hypercorn and by granian, and
``fastws.serve`` alone (no ASGI) as the ceiling. Each server runs in its own
process (:mod:`bench.asgi.servers`); every one is driven by the same client,
one of :mod:`bench.echo.clients` (fastws's Listener by default), in another
process: 32 B round trips per second and 1 MiB throughput, one message in
flight. :mod:`bench.asgi.__main__` interleaves the servers within each run,
takes the median of the runs and prints the table; see ``bench/asgi/README.md``.

This module holds what the runner and the servers share: the backends, their
labels and what each needs.
"""

from __future__ import annotations

from typing import Dict, Tuple

#: uvicorn's ``ws=`` value for fastws's backend.
FASTWS_WS = "fastws.uvicorn:WebSocketProtocol"

#: Backends measured by default, in table order. Each has a starter in
#: ``servers.py`` with this name.
BACKENDS: Tuple[str, ...] = (
    "fastws",
    "fastws-bare",
    "websockets-sansio",
    "websockets",
    "wsproto",
    "wsproto-accel",
    "hypercorn",
    "granian",
    "fastws-serve",
)

LABELS: Dict[str, str] = {
    "fastws": "uvicorn + fastws",
    "fastws-bare": "uvicorn + fastws, bare ASGI app",
    "websockets-sansio": "uvicorn + websockets-sansio",
    "websockets": "uvicorn + websockets (legacy)",
    "wsproto": "uvicorn + wsproto",
    "wsproto-accel": "uvicorn + wsproto, patch_wsproto()",
    "hypercorn": "Hypercorn (asyncio worker)",
    "granian": "granian (embedded)",
    "fastws-serve": "fastws.serve alone (ceiling)",
}

#: uvicorn's own WebSocket backends: the best of them on each measure is the
#: reference of the "vs uvicorn" columns and of the closing ratios.
BUILTIN: Tuple[str, ...] = ("websockets-sansio", "websockets", "wsproto")
#: The row the closing ratios are about, and the ceiling it is held against.
SUBJECT = "fastws"
CEILING = "fastws-serve"

#: Modules a backend needs in the server process; a missing one skips the backend.
REQUIRES: Dict[str, Tuple[str, ...]] = {
    "fastws": ("uvicorn", "starlette", "fastws.uvicorn"),
    "fastws-bare": ("uvicorn", "fastws.uvicorn"),
    "websockets-sansio": ("uvicorn", "starlette", "websockets"),
    "websockets": ("uvicorn", "starlette", "websockets"),
    "wsproto": ("uvicorn", "starlette", "wsproto"),
    "wsproto-accel": ("uvicorn", "starlette", "wsproto", "fastws.accelerate"),
    "hypercorn": ("hypercorn", "starlette"),
    "granian": ("granian", "starlette"),
    "fastws-serve": ("fastws",),
}

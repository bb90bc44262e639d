"""The echo handler that ``python -m fastws run`` serves in the scaling benchmark.

    python -m fastws run bench.workers.handlers:echo --workers 2
"""

from __future__ import annotations

from typing import Any


async def echo(websocket: Any) -> None:
    async for message in websocket:
        await websocket.send(message)

"""Worker scaling benchmark: 32 B echo round trips, one client per worker.

    python -m bench.workers            # 1 worker + 1 client, then 2 + 2; median of 3 runs
    python -m bench.workers --quick    # smoke run

N server processes share one port with SO_REUSEPORT (``python -m fastws run
--workers N``, or N processes of :mod:`bench.workers.servers`),
N client processes each hold one connection and run 32 B round trips at the
same time (:mod:`bench.workers.client`): total round trips/s with 1 and with 2
workers, the ratio, and the server CPU time per round trip, for fastws's runner
and its ``serve()`` handler and ``Listener`` and for a raw asyncio TCP echo
(the floor). :mod:`bench.workers.__main__` runs it; see ``bench/workers/README.md``.
"""

from __future__ import annotations

from typing import Dict, Tuple

#: Servers measured, in table order.
STACKS: Tuple[str, ...] = ("fastws-run", "fastws", "fastws-listener", "raw-tcp")

LABELS: Dict[str, str] = {
    "fastws-run": "python -m fastws run --workers N",
    "fastws": "fastws serve(), recv/send handler",
    "fastws-listener": "fastws serve_listener(), Listener",
    "raw-tcp": "raw asyncio TCP echo (floor)",
}

#: bench.echo's client for each server: fastws's Listener client for every
#: fastws server (the lightest client; the same for all), raw TCP for the floor.
CLIENT = {
    "fastws-run": "fastws-listener",
    "fastws": "fastws-listener",
    "fastws-listener": "fastws-listener",
    "raw-tcp": "raw-tcp",
}

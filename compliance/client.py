"""Client driver for the Autobahn|Testsuite ``fuzzingserver`` (which tests clients).

    python compliance/client.py ws://127.0.0.1:PORT [--agent NAME] [--case-timeout S]

Asks the fuzzing server how many cases it has (``/getCaseCount``), runs each one
(``/runCase?case=N&agent=NAME``) by echoing every message until the server closes,
then asks it to write its reports (``/updateReports?agent=NAME``). Options as in
``server.py``: no keepalive pings, messages up to 64 MiB, permessage-deflate offered
(the default). ``FASTWS_NO_EXTENSIONS=1`` runs it on the pure-Python twin.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import urllib.parse

import fastws
from fastws.exceptions import ConnectionClosed

MAX_SIZE = 64 * 1024 * 1024
OPTIONS = dict(max_size=MAX_SIZE, max_queue=64, ping_interval=None, close_timeout=5, open_timeout=30)


async def run_case(base: str, case: int, agent: str) -> None:
    uri = f"{base}/runCase?case={case}&agent={urllib.parse.quote(agent)}"
    async with fastws.connect(uri, **OPTIONS) as websocket:
        try:
            async for message in websocket:
                await websocket.send(message)
        except ConnectionClosed:
            pass


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("uri", help="the fuzzing server, e.g. ws://127.0.0.1:9001")
    parser.add_argument("--agent", default="fastws", help="agent name in the reports")
    parser.add_argument("--case-timeout", type=float, default=300.0, help="seconds per case")
    args = parser.parse_args()
    base = args.uri.rstrip("/")

    async with fastws.connect(f"{base}/getCaseCount", **OPTIONS) as websocket:
        count = int(await websocket.recv())
    print(f"fastws {fastws.__version__} ({fastws.IMPLEMENTATION}): {count} cases", flush=True)

    failures = 0
    for case in range(1, count + 1):
        started = time.monotonic()
        try:
            await asyncio.wait_for(run_case(base, case, args.agent), args.case_timeout)
        except asyncio.TimeoutError:
            failures += 1
            print(f"case {case}: timed out after {args.case_timeout:.0f} s", flush=True)
        except (OSError, fastws.InvalidHandshake, ConnectionClosed) as exc:
            # The suite judges the connection itself; a refused or broken one is
            # in its report. Only the driver's own trouble is counted here.
            print(f"case {case}: {type(exc).__name__}: {exc}", flush=True)
        elapsed = time.monotonic() - started
        if elapsed > 5:
            print(f"case {case}: {elapsed:.1f} s", flush=True)

    async with fastws.connect(
        f"{base}/updateReports?agent={urllib.parse.quote(args.agent)}", **OPTIONS
    ) as websocket:
        try:
            await websocket.recv()
        except ConnectionClosed:
            pass
    print("reports updated", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

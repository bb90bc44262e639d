"""The fastws fan-out server: one worker process.

    python -m bench.pubsub.servers PORT [--redis URL] [--reuse-port] [--loop uvloop] [--profile FILE]

``fastws.serve(handler)`` on 127.0.0.1:PORT (0: a free port) with a
``fastws.PubSub`` (through Redis with ``--redis URL``, in this process
without); the handler is :mod:`bench.pubsub.handler`'s, which ``python -m
fastws run`` serves for the Redis stack. Prints ``READY <port>`` once it accepts connections and
serves until SIGTERM, SIGINT or the end of its standard input.
``--reuse-port`` lets several such processes share the port (SO_REUSEPORT):
the ``fastws-redis-own`` stack starts two of them, on uvloop. ``--profile FILE`` runs the
process under cProfile and writes the stats to FILE on the way out.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Optional, Sequence

from bench.echo import LOOPS, run
from bench.echo.servers import serve_until_stopped

from . import HOST
from .handler import make_handler


async def start_fastws(port: int, redis_url: Optional[str], reuse_port: bool) -> Any:
    import fastws

    pubsub = fastws.PubSub(redis_url) if redis_url else fastws.PubSub()
    await pubsub.start()
    server = await fastws.serve(make_handler(pubsub), HOST, port, reuse_port=reuse_port or None)

    async def close() -> None:
        server.close()
        await server.wait_closed()
        await pubsub.close()

    return list(server.sockets)[0].getsockname()[1], close


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pubsub.servers", description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int, help="TCP port on 127.0.0.1; 0 for a free one")
    parser.add_argument("--redis", metavar="URL", help="fastws.PubSub(URL) instead of the in-process PubSub()")
    parser.add_argument("--reuse-port", action="store_true", help="bind with SO_REUSEPORT")
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    parser.add_argument("--profile", metavar="FILE", help="run under cProfile, write the stats here")
    args = parser.parse_args(argv)

    async def serve() -> None:
        await serve_until_stopped(lambda port: start_fastws(port, args.redis, args.reuse_port), args.port, 2)

    if not args.profile:
        run(serve(), args.loop)
        return 0
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        run(serve(), args.loop)
    finally:
        profiler.disable()
        profiler.dump_stats(args.profile)
    return 0


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    code = main()
    sys.stdout.flush()
    os._exit(code)  # do not wait for the stdin watcher thread

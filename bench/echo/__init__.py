"""Network echo benchmark: fastws against websockets, aiohttp and picows.

    python -m bench.echo            # the whole comparison (about a minute)
    python -m bench.echo --quick    # smoke run: every case, briefly (seconds)

Each stack serves an echo in one process (:mod:`bench.echo.servers`) and is
driven by its own client in another (:mod:`bench.echo.clients`): round trips per
second with 32 B binary messages, then throughput with 1 MiB messages, one
message in flight, on asyncio's default loop and on uvloop. A raw asyncio TCP echo
(no WebSocket at all) is the floor. :mod:`bench.echo.__main__` starts the
processes, collects the numbers and prints the table; see ``bench/echo/README.md``.

This module holds what the three share: the stacks, the loops, the message sizes,
the payloads and the echo check.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any, Callable, Coroutine, Optional, Tuple

#: Stacks measured by default, in table order. Each has an echo server in
#: ``servers.py`` and a client in ``clients.py`` with this name.
STACKS: Tuple[str, ...] = (
    "fastws",
    "fastws-listener",
    "websockets",
    "aiohttp",
    "picows",
    "raw-tcp",
)
#: Extra stacks, run only when named with ``--stacks``.
EXTRA_STACKS: Tuple[str, ...] = ("picows-loop",)
ALL_STACKS: Tuple[str, ...] = STACKS + EXTRA_STACKS
#: Stacks with a server in ``servers.py`` but no client in ``clients.py``: other
#: groups drive them with their own clients (``bench.handshake``'s wsload,
#: memory and compression groups), the echo comparison does not.
SERVER_ONLY_STACKS: Tuple[str, ...] = ("socketify",)
#: Every stack ``servers.py`` can start.
SERVER_STACKS: Tuple[str, ...] = ALL_STACKS + SERVER_ONLY_STACKS

LABELS = {
    "fastws": "fastws recv/send",
    "fastws-listener": "fastws Listener",
    "websockets": "websockets",
    "aiohttp": "aiohttp",
    "picows": "picows",
    "picows-loop": "picows (loop transport)",
    "raw-tcp": "raw TCP (floor)",
    "socketify": "socketify",
}

#: Modules a stack needs (server and client alike); missing ones skip the stack.
REQUIRES = {
    "fastws": ("fastws",),
    "fastws-listener": ("fastws",),
    "websockets": ("websockets",),
    "aiohttp": ("aiohttp",),
    "picows": ("picows",),
    "picows-loop": ("picows",),
    "raw-tcp": (),
    "socketify": ("socketify",),
}

LOOPS: Tuple[str, ...] = ("asyncio", "uvloop")

HOST = "127.0.0.1"
SMALL = 32  #: bytes per message of the round-trip measure
LARGE = 1 << 20  #: bytes per message of the throughput measure (1 MiB)
#: Message size limit given to every stack, server and client: 4 MiB, well above
#: LARGE (several default to exactly 1 MiB, which a 1 MiB message would only just fit).
MAX_SIZE = 1 << 22

#: Bytes compared in full below this size; above it, the length and three
#: 64-byte samples (head, tail, and a window that moves with every message).
FULL_CHECK = 4096
SAMPLE = 64


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if kind == "asyncio":
        return asyncio.SelectorEventLoop  # the default loop on Linux
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    raise ValueError(f"unknown loop {kind!r} (expected one of {', '.join(LOOPS)})")


def run(main: Coroutine[Any, Any, Any], kind: str) -> Any:
    """Run ``main`` to completion on a new event loop of ``kind``."""
    loop = loop_factory(kind)()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


#: "deflate" when the run measures permessage-deflate (``--compression deflate``);
#: the runner passes it to the server and client processes in the environment.
COMPRESSION = os.environ.get("FASTWS_BENCH_COMPRESSION") or None


def _chat_text(rng: random.Random, size: int) -> bytes:
    """``size`` bytes of chat-like JSON lines: what compression is for."""
    words = ["hello", "room", "general", "ada", "grace", "linus", "ok", "see", "you", "at", "ten", "deploy"]
    lines = []
    total = 0
    while total < size:
        text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 12)))
        line = f'{{"user": "{rng.choice(words)}", "id": {rng.randint(1, 10**6)}, "text": "{text}"}}\n'
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


def make_payloads(size: int) -> Tuple[bytes, bytes]:
    """Two different pseudo-random payloads of ``size`` bytes: messages alternate
    between them, so an echo of the previous message fails the check. Random
    bytes without compression, chat-like JSON with it."""
    rng = random.Random(size)
    if COMPRESSION:
        first, second = _chat_text(rng, size), _chat_text(rng, size)
    else:
        first, second = rng.randbytes(size), rng.randbytes(size)
    assert first != second
    return first, second


class EchoMismatch(AssertionError):
    """An echo was not the message sent: the stack is broken, its numbers void."""


def check_echo(got: Any, expected: bytes, index: int) -> Optional[str]:
    """None if ``got`` (bytes, bytearray or memoryview) is ``expected``; else what
    differs. Small messages are compared whole; large ones by length and three
    64-byte samples, one of which moves by a prime stride with every message so
    that a run covers the whole payload."""
    n = len(expected)
    if len(got) != n:
        return f"echo #{index}: {len(got)} bytes instead of {n}"
    if n <= FULL_CHECK:
        if got != expected:
            return f"echo #{index}: {n} bytes, content differs"
        return None
    at = (index * 4099) % (n - SAMPLE)
    for start in (0, n - SAMPLE, at):
        if got[start : start + SAMPLE] != expected[start : start + SAMPLE]:
            return f"echo #{index}: {n} bytes, content differs at bytes {start}..{start + SAMPLE}"
    return None

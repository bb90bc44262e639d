"""The fan-out load generator: subscribers and the publisher, on fastws.

    python -m bench.pubsub.client STACK PORT [--subscribers N] [--procs K] [--duration S]
        [--warmup S] [--window W] [--server-pids A,B] [--redis-pid P]

The process started with this command line is the *coordinator*: it starts
``--procs`` subscriber processes (``--subscriber COUNT``, the same module),
which between them open ``--subscribers`` fastws Listener connections to the
server on 127.0.0.1:PORT, then it connects the publisher and publishes.

Every message is 64 characters of text: a 12-digit sequence number, the
CLOCK_MONOTONIC time it was sent in nanoseconds (20 digits), padding. A
subscriber process counts the receipts of each message over its connections;
when all of them have it, it tells the coordinator (one line on its stdout: the
sequence number, the time of the last receipt and of the first), so the
coordinator learns when the *last* subscriber of all got each message:
latency = that time - the send time, in one clock for every process.

Flow control: the publisher keeps at most ``--window`` messages (default 4;
the runner passes 2) that not every subscriber has received yet, publishing the
next one as soon as one completes: a closed loop that runs each stack at the
rate it sustains, with its queues no longer than the window. ``--rate M``
publishes M messages/s instead, whatever is out (an open loop: the latency at
a given load), and fails if 500 messages are out at once. A warm-up (``--warmup`` s), then the measure
(``--duration`` s): publishing stops when it has passed and the measure ends
when the messages still out complete; deliveries/s = messages completed x
subscribers / the time from the first send to the last completion.

Every connection counts what it got: the run fails unless each one received
every message published, exactly once (a duplicate stays incomplete). Prints
one JSON object; exits 1 with the reason on stderr on failure.

Socket.IO: each connection does the Engine.IO v4 handshake over the WebSocket
(open packet ``0{...}``, ``40`` to connect the namespace, pings ``2`` answered
with ``3``), publishes ``42["pub","<message>"]`` events and receives
``42["msg","<message>"]`` ones: the framing written here, not the slow
python-socketio client.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional

from bench.echo import run

from . import HELLO, HOST, KEY, SOCKETIO, STACKS, make_message
from .procs import connections_by_pid, cpu_seconds, cpu_total, system_share

monotonic_ns = time.monotonic_ns

#: Seconds without any message completing before the run counts as stalled.
STALL_TIMEOUT = 10.0
#: Messages out at once past which a fixed-rate run fails (the stack does not keep up).
MAX_BEHIND = 500
#: Connections opened at once by a subscriber process.
CONNECT_BATCH = 50

SIO_MSG = '42["msg","'
SIO_HELLO = f'42["{HELLO}"'


def url(stack: str, port: int, role: str) -> str:
    if stack == SOCKETIO:
        return f"ws://{HOST}:{port}/socket.io/?EIO=4&transport=websocket&role={role}"
    return f"ws://{HOST}:{port}/{role}"


# --- subscriber processes --------------------------------------------------------------


class Tally:
    """What one subscriber process has received, over all its connections."""

    def __init__(self, count: int, out_fd: int) -> None:
        self.count = count  # connections of this process
        self.out_fd = out_fd
        self.receipts: Dict[str, int] = {}  # message key -> connections that got it
        self.first: Dict[str, int] = {}  # message key -> time of the first receipt
        self.ready = 0
        self.all_ready = asyncio.get_running_loop().create_future()
        self.completed = 0
        self.malformed: List[str] = []

    def hello(self) -> None:
        self.ready += 1
        if self.ready == self.count and not self.all_ready.done():
            self.all_ready.set_result(None)

    def got(self, key: str) -> None:
        n = self.receipts.get(key, 0) + 1
        if n == self.count:
            now = monotonic_ns()
            del self.receipts[key]
            first = self.first.pop(key, now)
            self.completed += 1
            os.write(self.out_fd, f"D {key} {now} {first}\n".encode())
        else:
            self.receipts[key] = n
            if n == 1:
                self.first[key] = monotonic_ns()


def subscriber_factory(stack: str, tally: Tally) -> Any:
    import fastws

    class Subscriber(fastws.Listener):
        received = 0
        closed: Optional[str] = None

        def on_message(self, connection: Any, message: Any) -> None:
            if message[0] == "0":  # a message number: never "0{" (Engine.IO open) nor "hello"
                if message[1] == "{":
                    connection.send_nowait("40")
                    return
                self.received += 1
                tally.got(message[:KEY])
            elif message == HELLO:
                tally.hello()
            else:
                tally.malformed.append(message[:80])

        def on_close(self, connection: Any, code: int, reason: str) -> None:
            self.closed = f"{code} {reason}"

    class SocketIOSubscriber(Subscriber):
        def on_message(self, connection: Any, message: Any) -> None:
            if message.startswith(SIO_MSG):
                self.received += 1
                tally.got(message[10 : 10 + KEY])
            elif message == "2":
                connection.send_nowait("3")
            elif message[0] == "0":
                connection.send_nowait("40")
            elif message.startswith(SIO_HELLO):
                tally.hello()
            elif not message.startswith("40"):
                tally.malformed.append(message[:80])

    return SocketIOSubscriber if stack == SOCKETIO else Subscriber


async def subscribe(stack: str, port: int, count: int) -> Dict[str, Any]:
    """Open ``count`` subscriber connections, say READY, then report completed
    messages on stdout until stdin closes; returns the process's tally."""
    import fastws

    out_fd = sys.stdout.fileno()
    tally = Tally(count, out_fd)
    factory = subscriber_factory(stack, tally)
    target = url(stack, port, "sub")
    connections: List[Any] = []
    for start in range(0, count, CONNECT_BATCH):
        batch = min(CONNECT_BATCH, count - start)
        connections += await asyncio.gather(
            *(fastws.connect_listener(factory, target, ping_interval=None, open_timeout=60) for _ in range(batch))
        )
    await asyncio.wait_for(tally.all_ready, 60)
    os.write(out_fd, f"READY {count}\n".encode())

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()  # until EOF: the coordinator is done
    received = [c.listener.received for c in connections]
    closed = [c.listener.closed for c in connections if c.listener.closed]
    return {
        "connections": count,
        "completed": tally.completed,
        "incomplete": len(tally.receipts),
        "received_min": min(received),
        "received_max": max(received),
        "received": sum(received),
        "closed": closed[:3],
        "closed_count": len(closed),
        "malformed": tally.malformed[:3],
        "malformed_count": len(tally.malformed),
    }


# --- the coordinator and its publisher ------------------------------------------------


class Failure(Exception):
    pass


class Phase:
    """Publish with at most ``window`` messages incomplete, until ``seconds``
    have passed; then wait for the rest. :meth:`completed` is fed by the
    subscriber processes' reports."""

    def __init__(
        self, send: Any, stack: str, procs: int, window: int, first_seq: int, seconds: float, rate: float = 0
    ) -> None:
        self.send = send
        self.rate = rate  # messages/s, at a fixed rate instead of the window (0: the window)
        self.socketio = stack == SOCKETIO
        self.procs = procs
        self.window = window
        self.seq = first_seq
        self.seconds = seconds
        self.pending: Dict[str, List[int]] = {}  # key -> [reports awaited, sent, last, first]
        self.latency: List[int] = []  # ns, send -> last receipt
        self.first_latency: List[int] = []  # ns, send -> first receipt
        self.done: asyncio.Future = asyncio.get_running_loop().create_future()
        self.t0 = self.deadline = self.t_end = 0
        self.last_progress = time.monotonic()

    def start(self) -> asyncio.Future:
        self.t0 = monotonic_ns()
        self.deadline = self.t0 + int(self.seconds * 1e9)
        if self.rate:
            self.tick(0)
        else:
            self.fill()
        return self.done

    def tick(self, n: int) -> None:
        """Fixed rate: publish message ``n`` of the phase, schedule the next."""
        now = monotonic_ns()
        if now >= self.deadline:
            if not self.pending and not self.done.done():
                self.t_end = now
                self.done.set_result(None)
            return
        if len(self.pending) >= MAX_BEHIND:
            if not self.done.done():
                self.done.set_exception(
                    Failure(f"{len(self.pending)} messages out: the stack does not keep up with {self.rate:g}/s")
                )
            return
        self.publish(now)
        loop = asyncio.get_running_loop()
        loop.call_at(loop.time() + (self.t0 + (n + 1) * 1e9 / self.rate - monotonic_ns()) / 1e9, self.tick, n + 1)

    def publish(self, now: int) -> None:
        message = make_message(self.seq, now)
        self.pending[message[:KEY]] = [self.procs, now, 0, 1 << 63]
        self.seq += 1
        self.send(f'42["pub","{message}"]' if self.socketio else message)

    def fill(self) -> None:
        while len(self.pending) < self.window:
            now = monotonic_ns()
            if now >= self.deadline:
                if not self.pending and not self.done.done():
                    self.t_end = now
                    self.done.set_result(None)
                return
            self.publish(now)

    def completed(self, key: str, last: int, first: int) -> None:
        entry = self.pending.get(key)
        if entry is None:
            raise Failure(f"a report for message {key}, which is not out")
        entry[0] -= 1
        entry[2] = max(entry[2], last)
        entry[3] = min(entry[3], first)
        if entry[0]:
            return
        del self.pending[key]
        self.last_progress = time.monotonic()
        self.latency.append(entry[2] - entry[1])
        self.first_latency.append(entry[3] - entry[1])
        if not self.pending and monotonic_ns() >= self.deadline:
            self.t_end = entry[2]
            if not self.done.done():
                self.done.set_result(None)
            return
        if not self.rate:
            self.fill()


async def publisher(stack: str, port: int) -> Any:
    """The publisher's connection, ready to publish (Socket.IO: connected to the namespace)."""
    import fastws

    connected = asyncio.get_running_loop().create_future()

    class Publisher(fastws.Listener):
        def on_message(self, connection: Any, message: Any) -> None:
            if message == "2":
                connection.send_nowait("3")
            elif message[0] == "0":
                connection.send_nowait("40")
            elif message.startswith("40") and not connected.done():
                connected.set_result(None)

    ws = await fastws.connect_listener(Publisher, url(stack, port, "pub"), ping_interval=None)
    if stack == SOCKETIO:
        await asyncio.wait_for(connected, 10)
    return ws


def percentile(values: List[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


async def coordinate(args: argparse.Namespace) -> Dict[str, Any]:
    k = args.procs
    shares = [args.subscribers // k + (1 if i < args.subscribers % k else 0) for i in range(k)]
    env = dict(os.environ)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.pubsub.client", args.stack, str(args.port), "--subscriber", str(n),
            "--loop", args.loop, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
        )
        for n in shares
    ]  # fmt: skip
    phase: Optional[Phase] = None
    ready = [asyncio.get_running_loop().create_future() for _ in procs]
    stats: List[Dict[str, Any]] = [{} for _ in procs]

    async def read(i: int, proc: Any) -> None:
        while True:
            line = await proc.stdout.readline()
            if not line:
                if not ready[i].done():
                    ready[i].set_exception(Failure(f"subscriber process {i} exited with status {await proc.wait()}"))
                return
            if line.startswith(b"D "):
                _, key, last, first = line.split()
                if phase is None:
                    raise Failure(f"a report for message {key!r} before publishing")
                phase.completed(key.decode(), int(last), int(first))
            elif line.startswith(b"READY"):
                ready[i].set_result(None)
            elif line.startswith(b"STATS "):
                stats[i] = json.loads(line[6:])

    readers = [asyncio.ensure_future(read(i, p)) for i, p in enumerate(procs)]
    try:
        t_connect = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*ready), 120)
        connect_s = time.monotonic() - t_connect
        ws = await publisher(args.stack, args.port)
        server_pids = [int(p) for p in args.server_pids.split(",")] if args.server_pids else []
        spread = sorted(connections_by_pid(server_pids, args.port).values(), reverse=True) if server_pids else []
        client_pids = [os.getpid()] + [p.pid for p in procs]

        async def timed(seconds: float, first_seq: int) -> Dict[str, Any]:
            nonlocal phase
            gc.collect()
            phase = Phase(ws.send_nowait, args.stack, k, args.window, first_seq, seconds, args.rate)
            cpu0 = [cpu_total(server_pids), cpu_seconds(args.redis_pid) if args.redis_pid else None]
            client0 = [cpu_seconds(p) for p in client_pids]
            split0 = [system_share(server_pids), system_share(client_pids)]
            done = phase.start()
            while not done.done():
                await asyncio.wait([done, *readers], timeout=1, return_when=asyncio.FIRST_COMPLETED)
                for r in readers:
                    if r.done() and r.exception() is not None:
                        raise r.exception()  # type: ignore[misc]
                if time.monotonic() - phase.last_progress > STALL_TIMEOUT:
                    raise Failure(
                        f"no message completed for {STALL_TIMEOUT:.0f} s ({len(phase.pending)} out, "
                        f"{len(phase.latency)} completed in this phase)"
                    )
            cpu1 = [cpu_total(server_pids), cpu_seconds(args.redis_pid) if args.redis_pid else None]
            client1 = [cpu_seconds(p) for p in client_pids]
            split1 = [system_share(server_pids), system_share(client_pids)]
            kernel: List[Optional[float]] = []
            for a, b in zip(split0, split1):
                if a is None or b is None or (b[0] - a[0]) + (b[1] - a[1]) <= 0:
                    kernel.append(None)
                else:
                    kernel.append((b[1] - a[1]) / ((b[0] - a[0]) + (b[1] - a[1])))
            wall = (phase.t_end - phase.t0) / 1e9
            messages = len(phase.latency)
            deliveries = messages * args.subscribers

            def diff(a: Optional[float], b: Optional[float]) -> Optional[float]:
                return None if a is None or b is None else b - a

            client_cpu = [diff(a, b) for a, b in zip(client0, client1)]
            known = [c for c in client_cpu if c is not None]
            complete = len(known) == len(client_cpu)
            return {
                "messages": messages,
                "deliveries": deliveries,
                "seconds": wall,
                "rate": deliveries / wall,
                "p50_ms": percentile(phase.latency, 0.5),
                "p99_ms": percentile(phase.latency, 0.99),
                "max_ms": max(phase.latency) / 1e6,
                "first_p50_ms": percentile(phase.first_latency, 0.5),
                "server_cpu_s": diff(cpu0[0], cpu1[0]),
                "redis_cpu_s": diff(cpu0[1], cpu1[1]),
                "client_cpu_s": sum(known) if complete else None,
                "server_kernel_share": kernel[0],
                "client_kernel_share": kernel[1],
                "publisher_busy": known[0] / wall if complete else None,
                "subscriber_busy": max(known[1:]) / wall if complete else None,
                "last_seq": phase.seq,
            }

        warm = await timed(args.warmup, 0) if args.warmup > 0 else {"last_seq": 0}
        result = await timed(args.duration, warm["last_seq"])
        published = result.pop("last_seq")
        await ws.close()
    finally:
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.close()
        try:
            await asyncio.wait_for(asyncio.gather(*readers, return_exceptions=True), 30)
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.kill()
                await proc.wait()

    # Every connection got every message, exactly once.
    for i, s in enumerate(stats):
        if not s:
            raise Failure(f"subscriber process {i} reported no statistics")
        problems = []
        if s["received_min"] != published or s["received_max"] != published:
            problems.append(f"connections received {s['received_min']}-{s['received_max']} messages of {published}")
        if s["incomplete"]:
            problems.append(f"{s['incomplete']} messages not received by every connection")
        if s["closed_count"]:
            problems.append(f"{s['closed_count']} connections closed: {s['closed']}")
        if s["malformed_count"]:
            problems.append(f"{s['malformed_count']} unexpected messages: {s['malformed']}")
        if problems:
            raise Failure(f"subscriber process {i}: " + "; ".join(problems))
    return {
        "stack": args.stack,
        "subscribers": args.subscribers,
        "client_procs": k,
        "window": args.window,
        "fixed_rate": args.rate,
        "published": published,
        "delivered": sum(s["received"] for s in stats),
        "connect_s": connect_s,
        "spread": spread,
        **result,
    }


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pubsub.client", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", choices=STACKS)
    parser.add_argument("port", type=int)
    parser.add_argument("--subscribers", type=int, default=1000, metavar="N")
    parser.add_argument("--procs", type=int, default=2, metavar="K", help="subscriber processes (default: 2)")
    parser.add_argument("--duration", type=float, default=3.0, metavar="S")
    parser.add_argument("--warmup", type=float, default=1.0, metavar="S")
    parser.add_argument("--window", type=int, default=4, metavar="W", help="messages out at most (default: 4)")
    parser.add_argument(
        "--rate", type=float, default=0, metavar="M", help="publish M messages/s instead (open loop; 0: the window)"
    )
    parser.add_argument("--server-pids", metavar="A,B", help="the server's processes: their CPU time and connections")
    parser.add_argument("--redis-pid", type=int, metavar="PID", help="redis-server's process: its CPU time")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    parser.add_argument("--subscriber", type=int, metavar="COUNT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.subscriber is not None:
            stats = run(subscribe(args.stack, args.port, args.subscriber), args.loop)
            os.write(sys.stdout.fileno(), f"STATS {json.dumps(stats)}\n".encode())
            return 0
        result = run(coordinate(args), args.loop)
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)

"""The deployment of docs/deployment.md, for real: a Redis, two worker
processes started by ``python -m fastws run --workers 2 --pubsub redis://...``
with the chat handler of tests/deployment_app.py, and nginx in front of them,
terminating TLS with the guide's ``location`` block. Clients connect through
nginx with ``wss://`` until some are on each worker; every client receives what
every other publishes, whichever worker it is on, each publisher's messages in
order and none twice; SIGTERM to the runner closes every client with 1001 and
the runner exits 0. And the guide's rule for the timeouts: nginx keeps an idle
connection open when the server pings more often than proxy_read_timeout, and
closes it when nothing is sent for that long."""

from __future__ import annotations

import asyncio
import contextlib
import os
import selectors
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple

import pytest

import fastws
from fastws.frames import CloseCode

from asyncio_helpers import run
from deployment_app import WHOAMI
from nginx_helpers import (
    CONNECTION_UPGRADE_MAP,
    WEBSOCKET_PROXYING,
    free_port,
    require_nginx,
    running_nginx,
)
from redis_helpers import redis_available, running_redis

require_nginx()
if not redis_available():
    pytest.skip("redis-server is not installed (apt-get install redis-server)", allow_module_level=True)
trustme = pytest.importorskip("trustme")

TESTS = Path(__file__).resolve().parent
#: Seconds the runner gets to print that every worker serves, and to exit.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
#: Seconds the clients' part of the test gets, from the first connection to the last close.
CLIENTS_TIMEOUT = 30.0
#: Seconds a client waits for the next publication before the test says what it got.
RECEIVE_TIMEOUT = 5.0
#: Clients opened at most to find both workers: with the kernel spreading
#: connections over two SO_REUSEPORT sockets by a hash of nginx's source port,
#: all of them on one worker would happen once in 2**31 (the parent-accept mode
#: hands them out in turn).
MAX_CLIENTS = 32
#: Messages each client publishes.
PER_CLIENT = 3
#: nginx's proxy_read_timeout, longer than the workers' ping_interval (20 s by default).
READ_TIMEOUT = "60s"

# docs/deployment.md's configuration: TLS ends at nginx, which passes WebSocket
# connections on to the workers' port.
HTTP = """
upstream fastws {{
    server 127.0.0.1:{workers_port};
}}

server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate     {cert};
    ssl_certificate_key {key};

    location /ws {{
        proxy_pass http://fastws;
        {proxying}
        proxy_read_timeout {read_timeout};
    }}
}}
"""


class Runner(NamedTuple):
    process: subprocess.Popen
    port: int
    log: Path


@contextlib.contextmanager
def fastws_run(target: str, port: int, pubsub: str, mode: str, log: Path) -> Iterator[Runner]:
    """``python -m fastws run TARGET --workers 2 --pubsub URL MODE`` on 127.0.0.1:``port``,
    in a process group of its own, with tests/ on the workers' import path.
    Yields once it prints that it listens; at the end, whatever of the group
    is still there is terminated, then killed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    command = [
        sys.executable, "-m", "fastws", "run", target,
        "--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--pubsub", pubsub, mode,
    ]
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            start_new_session=True,
        )
    try:
        try:
            line = _read_line(process, START_TIMEOUT)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its log:\n{log.read_text()}") from None
        assert line.startswith("listening on ws://127.0.0.1:"), (line, log.read_text())
        yield Runner(process, port, log)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        # Workers that outlived their parent (after a failure) are in its group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        if process.stdout is not None:
            process.stdout.close()


def _read_line(process: subprocess.Popen, timeout: float) -> str:
    """The first line the process prints, within ``timeout`` seconds."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    data = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while not data.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"the runner printed nothing within {timeout} s")
            if selector.select(remaining):
                chunk = os.read(process.stdout.fileno(), 4096)
                if not chunk:
                    raise AssertionError(f"the runner exited with {process.wait()}")
                data += chunk
    return data.decode().splitlines()[0]


class Deployment(NamedTuple):
    runner: Runner
    uri: str
    ssl: ssl.SSLContext


@pytest.fixture(params=["--reuse-port", "--no-reuse-port"], ids=["reuse_port", "parent_accept"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    """Redis, ``fastws run`` with two workers, nginx with TLS in front; the
    workers listen with SO_REUSEPORT, or the runner accepts for them."""
    ca = trustme.CA()
    certificate = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.private_key_pem.write_to_path(str(key))
    certificate.cert_chain_pems[0].write_to_path(str(cert))
    for pem in certificate.cert_chain_pems[1:]:
        pem.write_to_path(str(cert), append=True)
    client_ssl = ssl.create_default_context()
    ca.configure_trust(client_ssl)

    workers_port, port = free_port(), free_port()
    http = CONNECTION_UPGRADE_MAP + HTTP.format(
        workers_port=workers_port,
        port=port,
        cert=cert,
        key=key,
        proxying=WEBSOCKET_PROXYING,
        read_timeout=READ_TIMEOUT,
    )
    with running_redis() as redis, fastws_run(
        "deployment_app:chat", workers_port, redis.url, request.param, tmp_path / "runner.log"
    ) as runner, running_nginx(http, port):
        yield Deployment(runner, f"wss://127.0.0.1:{port}/ws", client_ssl)


def parent_of(pid: int) -> int:
    """The parent's pid, from /proc (Linux, where these tests run)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


async def connect_to_both_workers(
    uri: str, context: ssl.SSLContext, by_pid: Dict[int, List]
) -> None:
    """Connect through nginx until clients are on two workers; ``by_pid``
    gets {pid: [clients]}."""
    for _ in range(MAX_CLIENTS):
        client = await fastws.connect(uri, ssl=context)
        await client.send(WHOAMI)
        answer = await client.recv()
        # The worker saw the request come from nginx over TLS.
        word, pid, proto = answer.split()
        assert (word, proto) == ("pid", "https"), answer
        by_pid.setdefault(int(pid), []).append(client)
        if len(by_pid) == 2:
            break


async def close_all(clients: List) -> None:
    await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)


async def chat_through_nginx(deployment: Deployment) -> None:
    by_pid: Dict[int, List] = {}
    try:
        await connect_to_both_workers(deployment.uri, deployment.ssl, by_pid)
        clients = [client for group in by_pid.values() for client in group]
        assert len(by_pid) == 2, f"{len(clients)} clients, all on worker {list(by_pid)}"
        # Two workers of this runner, not the runner itself.
        runner_pid = deployment.runner.process.pid
        assert all(parent_of(pid) == runner_pid for pid in by_pid), (by_pid.keys(), runner_pid)

        # Every client publishes; each of its messages reaches every client,
        # on both workers, in the order it sent them, and only once.
        sent = {
            index: [f"client {index} message {n}" for n in range(PER_CLIENT)]
            for index in range(len(clients))
        }
        await asyncio.gather(
            *(
                client.send(message)
                for index, client in enumerate(clients)
                for message in sent[index]
            )
        )

        async def receive(client) -> List[str]:
            """The messages the client gets, until all arrived or RECEIVE_TIMEOUT."""
            messages: List[str] = []
            with contextlib.suppress(asyncio.TimeoutError):
                while len(messages) < len(clients) * PER_CLIENT:
                    messages.append(await asyncio.wait_for(client.recv(), RECEIVE_TIMEOUT))
            return messages

        received = await asyncio.gather(*(receive(client) for client in clients))
        expected = sorted(message for messages in sent.values() for message in messages)
        for messages in received:
            assert sorted(messages) == expected
            for index in sent:
                mine = [m for m in messages if m.startswith(f"client {index} ")]
                assert mine == sent[index]
        # Nothing more came in between: the next message everyone gets is the
        # last one published.
        await clients[-1].send("end")
        assert await asyncio.gather(*(client.recv() for client in clients)) == ["end"] * len(clients)

        # SIGTERM to the runner: the workers close every connection with 1001
        # (nginx passes the close frame on) and the runner exits 0.
        os.kill(runner_pid, signal.SIGTERM)
        await asyncio.gather(*(client.wait_closed() for client in clients))
        assert [client.close_code for client in clients] == [CloseCode.GOING_AWAY] * len(clients)
        status = await asyncio.to_thread(deployment.runner.process.wait, STOP_TIMEOUT)
        assert status == 0, deployment.runner.log.read_text()
    finally:
        await close_all([client for group in by_pid.values() for client in group])


def test_chat_on_two_workers_behind_nginx(deployment: Deployment) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(chat_through_nginx(deployment), CLIENTS_TIMEOUT)

    asyncio.run(bounded())


# --- the timeouts ------------------------------------------------------------------------

#: nginx's proxy_read_timeout in the timeout test, in seconds: short, to run fast.
SHORT_READ_TIMEOUT = 1.0

TIMEOUT_HTTP = """
upstream fastws {{
    server 127.0.0.1:{server_port};
}}

server {{
    listen 127.0.0.1:{port};
    location /ws {{
        proxy_pass http://fastws;
        {proxying}
        proxy_read_timeout {read_timeout_ms}ms;
    }}
}}
"""


async def echo(websocket) -> None:
    async for message in websocket:
        await websocket.send(message)


@pytest.mark.parametrize(
    "ping_interval, stays_open",
    [
        (SHORT_READ_TIMEOUT / 4, True),  # pings more often than the timeout: kept open
        (None, False),  # no keepalive: nginx closes the idle connection
    ],
    ids=["ping_interval_below_read_timeout", "no_ping"],
)
@run
async def test_proxy_read_timeout_and_ping_interval(ping_interval, stays_open):
    """docs/deployment.md's rule: nginx closes a WebSocket connection through
    which nothing goes for proxy_read_timeout; the server's pings count."""
    async with fastws.serve(echo, "127.0.0.1", 0, ping_interval=ping_interval) as server:
        server_port = server.sockets[0].getsockname()[1]
        port = free_port()
        http = CONNECTION_UPGRADE_MAP + TIMEOUT_HTTP.format(
            server_port=server_port,
            port=port,
            proxying=WEBSOCKET_PROXYING,
            read_timeout_ms=int(SHORT_READ_TIMEOUT * 1000),
        )
        with running_nginx(http, port):
            # A client that sends nothing by itself either.
            async with fastws.connect(f"ws://127.0.0.1:{port}/ws", ping_interval=None) as client:
                closed = asyncio.ensure_future(client.wait_closed())
                # Idle for twice nginx's timeout (or until nginx closes).
                await asyncio.wait([closed], timeout=2 * SHORT_READ_TIMEOUT)
                if stays_open:
                    assert not closed.done(), f"nginx closed it: {client.close_code}"
                    await client.send("still there")
                    assert await client.recv() == "still there"
                else:
                    assert closed.done(), "nginx did not close an idle connection"
                    assert client.close_code == CloseCode.ABNORMAL_CLOSURE
                closed.cancel()

"""async for websocket in connect(...): reconnection, the retry policy, delays, logs."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

import fastws
from fastws import retry
from fastws.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

from asyncio_helpers import run, server


def no_delays():
    return retry.backoff(0, 0, 0)


def reconnect_lines(caplog, name="fastws.client"):
    return [r.getMessage() for r in caplog.records if r.name == name and "reconnecting" in r.getMessage()]


def refuse(statuses):
    """A process_request answering the given statuses, one per request, then
    accepting; the requests seen are in .requests."""

    def process_request(connection, request):
        process_request.requests.append(request.path)
        if statuses:
            return connection.respond(statuses.pop(0), "go away\n")
        return None

    process_request.requests = []
    return process_request


async def greet(websocket):
    await websocket.send(f"hello {websocket.request.path}")
    await websocket.wait_closed()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@run
async def test_reconnects_after_lost_connections():
    opened = []

    async def handler(websocket):
        opened.append(websocket)
        if len(opened) <= 2:
            await websocket.close(1011, "not now")  # the first two are lost at once
            return
        await websocket.send("stay")
        await websocket.wait_closed()

    messages, closes = [], []
    async with server(handler) as (_, uri):
        async for websocket in fastws.connect(uri, reconnect_delays=no_delays):
            try:
                messages.append(await websocket.recv())
            except ConnectionClosed as exc:
                closes.append(exc.code)
                continue
            break
    assert closes == [1011, 1011]
    assert messages == ["stay"]
    assert len(opened) == 3


@run
async def test_connection_closed_at_end_of_each_turn():
    async with server(greet) as (_, uri):
        seen = []
        async for websocket in fastws.connect(uri, reconnect_delays=no_delays):
            seen.append(websocket)
            if len(seen) == 3:
                break
            # The turn ends normally: the connection is closed, a new one opens.
        for websocket in seen[:2]:
            assert websocket.state is fastws.State.CLOSED
        await seen[2].close()


@run
async def test_retries_until_server_listens(caplog):
    caplog.set_level(logging.INFO, logger="fastws.client")
    port = free_port()
    refused = []
    second_refusal = asyncio.Event()

    def policy(exc):
        refused.append(type(exc))
        if len(refused) == 2:
            second_refusal.set()
        return retry.process_exception(exc)

    async def client():
        delays = lambda: retry.backoff(0, 0.01, 0.01)  # noqa: E731
        async for websocket in fastws.connect(
            f"ws://127.0.0.1:{port}/late", process_exception=policy, reconnect_delays=delays
        ):
            message = await websocket.recv()
            await websocket.close()
            return message

    task = asyncio.ensure_future(client())
    await second_refusal.wait()
    async with fastws.serve(greet, "127.0.0.1", port, ping_interval=None):
        assert await task == "hello /late"
    assert len(refused) >= 2 and set(refused) == {ConnectionRefusedError}
    lines = reconnect_lines(caplog)
    assert len(lines) == len(refused)
    assert lines[0].startswith("connect failed; reconnecting in 0.0 seconds: ConnectionRefusedError: ")


@run
async def test_503_retried_then_open(caplog):
    caplog.set_level(logging.INFO, logger="fastws.client")
    hook = refuse([503, 502])
    async with server(greet, process_request=hook) as (_, uri):
        async for websocket in fastws.connect(uri + "retry", reconnect_delays=no_delays):
            assert await websocket.recv() == "hello /retry"
            break
    assert hook.requests == ["/retry"] * 3
    prefix = "connect failed; reconnecting in 0.0 seconds: fastws.exceptions.InvalidStatus: "
    assert reconnect_lines(caplog) == [
        prefix + "server rejected the WebSocket connection: HTTP 503 Service Unavailable",
        prefix + "server rejected the WebSocket connection: HTTP 502 Bad Gateway",
    ]


@run
async def test_403_raised_at_once(caplog):
    caplog.set_level(logging.INFO, logger="fastws.client")
    hook = refuse([403])
    async with server(greet, process_request=hook) as (_, uri):
        with pytest.raises(InvalidStatus) as info:
            async for _ in fastws.connect(uri, reconnect_delays=no_delays):
                pytest.fail("connected despite the 403")
    assert info.value.response.status_code == 403
    assert hook.requests == ["/"]
    assert reconnect_lines(caplog) == []


class Fatal(Exception):
    pass


def retry_twice_then(outcome):
    """A policy retrying the first two failures, then doing ``outcome``."""

    def policy(exc):
        policy.seen.append(exc)
        if len(policy.seen) <= 2:
            return None
        return outcome(exc)

    policy.seen = []
    return policy


def raise_fatal(exc):
    raise Fatal("raised by the policy")


@pytest.mark.parametrize(
    "outcome, expected, chained",
    [
        (lambda exc: exc, InvalidStatus, False),  # the exception itself
        (lambda exc: Fatal("returned"), Fatal, True),  # another one, raised from exc
        (raise_fatal, Fatal, True),  # a policy that raises instead of returning
    ],
    ids=["returns-exc", "returns-other", "raises"],
)
@run
async def test_custom_process_exception(outcome, expected, chained):
    policy = retry_twice_then(outcome)
    hook = refuse([403] * 5)  # 403 is fatal by default: the policy retries it anyway
    async with server(greet, process_request=hook) as (_, uri):
        with pytest.raises(expected) as info:
            async for _ in fastws.connect(uri, process_exception=policy, reconnect_delays=no_delays):
                pytest.fail("connected despite the 403")
    assert len(hook.requests) == 3
    assert all(isinstance(exc, InvalidStatus) for exc in policy.seen)
    if chained:
        assert info.value.__cause__ is policy.seen[-1]
    else:
        assert info.value is policy.seen[-1]


@run
async def test_policy_makes_a_retried_error_fatal():
    hook = refuse([503])
    async with server(greet, process_request=hook) as (_, uri):
        with pytest.raises(InvalidStatus):
            async for _ in fastws.connect(uri, process_exception=lambda exc: exc, reconnect_delays=no_delays):
                pytest.fail("connected despite the 503")
    assert hook.requests == ["/"]


@run
async def test_delays_used_in_order_and_restarted_after_success(caplog):
    caplog.set_level(logging.INFO, logger="fastws.client")
    made = []

    def delays():
        made.append(None)
        return iter([0.1, 0.2, 30.0])

    # Two refusals, a connection, two more refusals, a connection.
    statuses = [503, 503]
    hook = refuse(statuses)
    async with server(greet, process_request=hook) as (_, uri):
        turns = 0
        async for websocket in fastws.connect(uri, reconnect_delays=delays):
            turns += 1
            await websocket.recv()
            if turns == 2:
                break
            statuses.extend([504, 500])
    assert len(hook.requests) == 6
    assert len(made) == 2  # the delays start over after the connection that opened
    delays_logged = [line.split(" seconds")[0].rsplit(" ", 1)[1] for line in reconnect_lines(caplog)]
    assert delays_logged == ["0.1", "0.2", "0.1", "0.2"]


@run
async def test_eof_during_handshake_is_retried():
    """A server that closes TCP without answering: InvalidMessage caused by
    EOFError, which the default policy retries."""
    accepted = []

    async def hang_up(reader, writer):
        accepted.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    tcp = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    try:
        with pytest.raises(InvalidMessage) as info:
            await fastws.connect(f"ws://127.0.0.1:{port}/")
        assert isinstance(info.value.__cause__, EOFError)
        assert retry.process_exception(info.value) is None

        policy = retry_twice_then(lambda exc: exc)
        client = fastws.connect(f"ws://127.0.0.1:{port}/", process_exception=policy, reconnect_delays=no_delays)
        with pytest.raises(InvalidMessage):
            async for _ in client:
                pytest.fail("connected to a server that hangs up")
        assert [retry.process_exception(exc) for exc in policy.seen] == [None, None, None]
        assert len(accepted) == 4
    finally:
        tcp.close()
        await tcp.wait_closed()


@run
async def test_retries_logged_on_given_logger(caplog):
    caplog.set_level(logging.INFO, logger="my.client")
    hook = refuse([500])
    async with server(greet, process_request=hook) as (_, uri):
        client = fastws.connect(uri, logger="my.client", reconnect_delays=no_delays)
        assert client.logger is logging.getLogger("my.client")
        async for websocket in client:
            await websocket.recv()
            break
    lines = reconnect_lines(caplog, "my.client")
    assert len(lines) == 1 and "HTTP 500" in lines[0]
    assert reconnect_lines(caplog) == []


@run
async def test_await_and_async_with_do_not_retry():
    hook = refuse([503, 503])
    async with server(greet, process_request=hook) as (_, uri):
        with pytest.raises(InvalidStatus):
            await fastws.connect(uri, reconnect_delays=no_delays)
        with pytest.raises(InvalidStatus):
            async with fastws.connect(uri, reconnect_delays=no_delays):
                pytest.fail("connected despite the 503")
        async with fastws.connect(uri) as websocket:
            assert await websocket.recv() == "hello /"
    assert len(hook.requests) == 3

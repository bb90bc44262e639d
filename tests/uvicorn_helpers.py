"""Helpers for the tests of :mod:`fastws.uvicorn`: a real ``uvicorn.Server`` on a
free loopback port, in the test's own event loop (asyncio, or uvloop under
FASTWS_TEST_UVLOOP=1: see ``asyncio_helpers.run``), stopped at the end.

``BACKENDS`` names the WebSocket backends a test can run on: fastws's, and
uvicorn's own ones (the reference for behaviour that the ASGI spec leaves open).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any, AsyncIterator, Iterator

import pytest
import uvicorn

#: uvicorn's ``ws=`` values: fastws's backend and uvicorn's built-in ones.
FASTWS = "fastws.uvicorn:WebSocketProtocol"
BACKENDS = {
    "fastws": FASTWS,
    "websockets-sansio": "websockets-sansio",
    "wsproto": "wsproto",
}


@pytest.fixture(name="logs")
def uvicorn_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """The ``logs`` fixture: caplog at INFO that also sees uvicorn's loggers
    (uvicorn's own logging setup, used by other tests in the same process,
    stops them from propagating to the root logger). A test module takes it
    with ``from uvicorn_helpers import uvicorn_logs  # noqa: F401``; serve with
    ``log_config=None`` (no ``dictConfig``) so that the records get here."""
    saved = {}
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        saved[name] = logger.propagate
        logger.propagate = True
        caplog.set_level(logging.INFO, logger=name)
    caplog.set_level(logging.INFO)
    try:
        yield caplog
    finally:
        for name, propagate in saved.items():
            logging.getLogger(name).propagate = propagate


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class UvicornServer:
    """A running ``uvicorn.Server``: :attr:`uri` is ``ws://127.0.0.1:<port>``
    (append the path), :attr:`server` the ``uvicorn.Server``."""

    def __init__(self, server: uvicorn.Server, port: int) -> None:
        self.server = server
        self.port = port
        self.uri = f"ws://127.0.0.1:{port}"
        self.http = f"http://127.0.0.1:{port}"

    @property
    def state(self) -> Any:
        """uvicorn's ``ServerState``: ``connections``, ``tasks``, ``default_headers``."""
        return self.server.server_state


@contextlib.asynccontextmanager
async def uvicorn_server(app: Any, ws: Any = FASTWS, **config: Any) -> AsyncIterator[UvicornServer]:
    """Serve ``app`` with uvicorn on 127.0.0.1 and a free port, with the
    WebSocket backend ``ws`` (a ``module:Class`` string, a class, or a name of
    uvicorn's own backends); ``config`` goes to ``uvicorn.Config``.

    Defaults for tests: no lifespan, no access log unless asked, keepalive
    pings off, a short graceful-shutdown timeout. Leaving the block shuts the
    server down as Ctrl-C does (``shutdown()`` of every connection).
    """
    config.setdefault("lifespan", "off")
    config.setdefault("log_level", "info")
    config.setdefault("ws_ping_interval", None)
    config.setdefault("timeout_graceful_shutdown", 2)
    port = free_port()
    cfg = uvicorn.Config(app, host="127.0.0.1", port=port, ws=ws, loop="none", **config)
    server = uvicorn.Server(cfg)
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # the error that stopped it
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield UvicornServer(server, port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)

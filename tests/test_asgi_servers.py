"""Hypercorn and Daphne on fastws, through :mod:`fastws.accelerate`.

Neither server has a pluggable WebSocket backend: Hypercorn runs its WebSockets
on wsproto, Daphne on Autobahn (over Twisted), and fastws comes in by patching
those libraries (``patch_wsproto()``, ``patch_autobahn()``). Each server runs a
real ASGI app (a Starlette echo endpoint on Hypercorn, a Django Channels
consumer on Daphne) in a process of its own (the patches are process-wide),
started by ``tests/asgi_servers_helpers.py`` on a free port of 127.0.0.1, once
patched and once not, side by side.

A fastws client exchanges text and binary messages with each (fragmented ones,
and one of 300 000 bytes: a frame with a 64-bit length), without and with
permessage-deflate offered, closes with a code and a reason, and has the server
close with a code and a reason. Both runs must give the same results (the patch
changes speed, not behaviour), and the patched server must report that its
connections really run on fastws's classes (found on the live connection
objects), the unpatched one that they run on the library's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any, AsyncIterator, Dict, List, Tuple

import pytest

import fastws
from fastws import ConnectionClosed

from asyncio_helpers import run

ROOT = Path(__file__).resolve().parents[1]
HELPER = Path(__file__).resolve().with_name("asgi_servers_helpers.py")
STARTUP = 12.0  # seconds for a server process to import its framework and listen
STEP = 5.0  # seconds any one exchange step may take

TEXT = "héllo wörld ✓ 🎉"
BINARY = bytes(range(256)) * 4
TEXT_PARTS = ["Hello ", "wörld ", "€" * 3000, "𝄞!"]  # sent as one fragmented message
BINARY_PARTS = [random.Random(7).randbytes(70_000), b"\x00\xff" * 5]
LARGE = random.Random(8).randbytes(300_000)  # one frame, 64-bit length
SENT: List[Any] = [TEXT, BINARY, TEXT_PARTS, BINARY_PARTS, LARGE]
EXPECTED: List[Any] = [TEXT, BINARY, "".join(TEXT_PARTS), b"".join(BINARY_PARTS), LARGE]


class ServerProcess:
    """A server started by asgi_servers_helpers.py: :attr:`uri` is
    ``ws://127.0.0.1:<port>``, :attr:`ready` what it printed once listening."""

    def __init__(self, proc: asyncio.subprocess.Process, ready: Dict[str, Any], log: Any) -> None:
        self.proc = proc
        self.ready = ready
        self.uri = f"ws://127.0.0.1:{ready['port']}"
        self.log = log

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-4000:]


@contextlib.asynccontextmanager
async def server_process(server: str, patch: bool) -> AsyncIterator[ServerProcess]:
    """Start ``asgi_servers_helpers.py server [patch]``; at the end close its
    standard input (it stops then) and wait for it, bounded, killing it if it
    does not stop."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with tempfile.TemporaryFile() as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(HELPER), server, *(["patch"] if patch else []),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            cwd=str(ROOT),
            env=env,
        )
        try:
            assert proc.stdin is not None and proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), STARTUP)
            if not line:
                await asyncio.wait_for(proc.wait(), STEP)
                log.seek(0)
                raise AssertionError(f"{server} exited ({proc.returncode}) before listening:\n{log.read().decode()}")
            running = ServerProcess(proc, json.loads(line), log)
            yield running
            proc.stdin.close()
            code = await asyncio.wait_for(proc.wait(), STEP)
            assert code == 0, f"{server} exited with {code}:\n{running.stderr()}"
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def recv(websocket: Any) -> Any:
    return await asyncio.wait_for(websocket.recv(), STEP)


async def echoes(websocket: Any) -> List[Any]:
    """Send every message of SENT, each time reading its echo."""
    received = []
    for message in SENT:
        await websocket.send(message)
        received.append(await recv(websocket))
    return received


async def exchange(uri: str) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """The client's side: (what it observed, the server's two status reports).

    1. No compression: the echoes, ``status``, then the client closes with
       4000 "client bye".
    2. permessage-deflate offered: the echoes, ``status``, then ``close-me``:
       the server closes with 4001 and a reason.
    3. ``seen``: how the app saw the client's close of the first connection.
    """
    observed: Dict[str, Any] = {}
    statuses = []
    options: Dict[str, Any] = {"ping_interval": None, "max_size": None, "close_timeout": STEP}

    websocket = await fastws.connect(f"{uri}/echo", compression=None, **options)
    observed["echoes"] = await echoes(websocket)
    await websocket.send("status")
    statuses.append(json.loads(await recv(websocket)))
    await asyncio.wait_for(websocket.close(4000, "client bye"), STEP)
    observed["client close, answered with"] = [websocket.close_code, websocket.close_reason]

    websocket = await fastws.connect(f"{uri}/echo", compression="deflate", **options)
    observed["extensions"] = websocket.response.headers.get("Sec-WebSocket-Extensions")
    observed["echoes, deflate offered"] = await echoes(websocket)
    await websocket.send("status")
    statuses.append(json.loads(await recv(websocket)))
    await websocket.send("close-me")
    with pytest.raises(ConnectionClosed) as closed:
        await recv(websocket)
    observed["server close"] = [closed.value.rcvd.code, closed.value.rcvd.reason]
    await asyncio.wait_for(websocket.wait_closed(), STEP)

    async with fastws.connect(f"{uri}/echo", **options) as websocket:
        await websocket.send("seen")
        observed["the app saw the client close as"] = json.loads(await recv(websocket))
    return observed, statuses


async def patched_and_not(server: str) -> Dict[bool, Tuple[Dict[str, Any], Dict[str, Any], List[Dict[str, Any]]]]:
    """Both processes side by side, the exchange with each: {patched: (what
    the server printed when ready, observed, statuses)}."""
    async with server_process(server, True) as patched, server_process(server, False) as plain:
        runs = await asyncio.gather(exchange(patched.uri), exchange(plain.uri))
        return {
            True: (patched.ready, *runs[0]),
            False: (plain.ready, *runs[1]),
        }


def check_same_behaviour(runs: Dict[bool, Any]) -> Dict[str, Any]:
    (_, observed, _), (_, plain_observed, _) = runs[True], runs[False]
    assert observed["echoes"] == EXPECTED
    assert observed["echoes, deflate offered"] == EXPECTED
    # The patch changes speed, not behaviour.
    assert observed == plain_observed
    return observed


def check_patch_reported(ready: Dict[str, Any], statuses: List[Dict[str, Any]], targets: List[str]) -> None:
    assert ready["patch"]["applied"] and ready["patch"]["active"] and ready["patch"]["changed"], ready
    assert ready["patch"]["targets"] == targets
    for status in statuses:
        assert status["patch"] == ready["patch"]
        assert status["implementation"] == fastws.IMPLEMENTATION  # the server's fastws is this one
        assert len(status["connections"]) == 1, status  # the connection asking, the only one open


@run
async def test_hypercorn_with_and_without_patch_wsproto():
    runs = await patched_and_not("hypercorn")
    observed = check_same_behaviour(runs)
    # Hypercorn accepts permessage-deflate; wsproto answers a close with the
    # same code and reason; Hypercorn sends the app's close reason. Its
    # disconnect event has no reason, and reports a close the client starts
    # as 1006 instead of the client's code (pgjones/hypercorn#127, open; with
    # or without the patch, as the comparison above shows).
    assert observed["extensions"].startswith("permessage-deflate")
    assert observed["client close, answered with"] == [4000, "client bye"]
    assert observed["server close"] == [4001, "server says bye"]
    assert observed["the app saw the client close as"] in ([[1006, None]], [[4000, None]])

    ready, _, statuses = runs[True]
    check_patch_reported(
        ready,
        statuses,
        [
            "wsproto.frame_protocol.XorMaskerSimple",
            "wsproto.frame_protocol.FrameDecoder",
            "wsproto.frame_protocol.FrameProtocol",
            "wsproto.connection.FrameProtocol",
        ],
    )
    fast = "fastws.accelerate._wsproto."
    # Without extensions, fastws's FrameParser decodes the frames...
    assert statuses[0]["connections"] == [
        {"protocol": fast + "FrameProtocol", "decoder": fast + "FrameDecoder", "fast_decoder": True, "extensions": []}
    ]
    # ...with permessage-deflate, wsproto's own decoding code (with fastws's masker).
    assert statuses[1]["connections"] == [
        {
            "protocol": fast + "FrameProtocol",
            "decoder": fast + "FrameDecoder",
            "fast_decoder": False,
            "extensions": ["permessage-deflate"],
        }
    ]

    ready, _, statuses = runs[False]
    assert ready["patch"] == {"applied": False}
    own = "wsproto.frame_protocol."
    assert [status["connections"] for status in statuses] == [
        [{"protocol": own + "FrameProtocol", "decoder": own + "FrameDecoder", "fast_decoder": False, "extensions": []}],
        [
            {
                "protocol": own + "FrameProtocol",
                "decoder": own + "FrameDecoder",
                "fast_decoder": False,
                "extensions": ["permessage-deflate"],
            }
        ],
    ]


@run
async def test_daphne_with_and_without_patch_autobahn():
    runs = await patched_and_not("daphne")
    observed = check_same_behaviour(runs)
    # Daphne does not negotiate permessage-deflate; Autobahn answers a close
    # with 1000 (not echoing the code: its echoCloseCodeReason option is off);
    # Daphne drops the app's close reason; its disconnect event has the code only.
    assert observed["extensions"] is None
    assert observed["client close, answered with"] == [1000, ""]
    assert observed["server close"] == [4001, ""]
    assert observed["the app saw the client close as"] == [[4000, None]]

    ready, _, statuses = runs[True]
    check_patch_reported(
        ready,
        statuses,
        [
            "autobahn.websocket.protocol.create_xor_masker",
            "autobahn.websocket.protocol.Utf8Validator",
            "autobahn.websocket.xormasker.create_xor_masker",
            "autobahn.websocket.utf8validator.Utf8Validator",
        ],
    )
    for status in statuses:
        (connection,) = status["connections"]
        assert connection["protocol"] == "daphne.ws_protocol.WebSocketProtocol"
        # The validator of the connection, and the masker of the frame just received.
        assert connection["utf8validator"] == "fastws.accelerate.wsaccel.utf8validator.Utf8Validator"
        assert connection["masker"] == "fastws.accelerate.wsaccel.xormask.XorMaskerSimple"

    ready, _, statuses = runs[False]
    assert ready["patch"] == {"applied": False}
    for status in statuses:
        (connection,) = status["connections"]
        assert connection["protocol"] == "daphne.ws_protocol.WebSocketProtocol"
        # Autobahn's own classes, or wsaccel's where autobahn picks them up itself
        # (autobahn 24.4, what Python 3.9 gets, does when wsaccel is installed).
        assert connection["utf8validator"].startswith(("autobahn.", "wsaccel.")), connection
        assert connection["masker"].startswith(("autobahn.", "wsaccel.")), connection

"""examples/fastapi_chat works: the FastAPI app on a real uvicorn with fastws's
WebSocket backend (``tests/uvicorn_helpers.py``), chatted with by fastws and
websockets clients, a nameless client refused with HTTP 403, the page served at
``/`` and driven in headless Chromium (started as ``tests/test_browser.py``
does, and skipped like it when there is none, which FASTWS_FORBID_SKIPS turns
into a failure), and the two commands of its README run as subprocesses."""

from __future__ import annotations

import asyncio
import importlib.util
import urllib.parse
from pathlib import Path
from typing import Any, Dict, Tuple

import pytest
import test_browser as browser
import test_examples as examples
import websockets
from starlette.responses import HTMLResponse, Response

import fastws
import fastws.uvicorn
from fastws import InvalidStatus

from asyncio_helpers import run
from uvicorn_helpers import BACKENDS, free_port, uvicorn_server

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "fastapi_chat"
STEP = 10.0  # seconds any one step may take


def load_example() -> Any:
    """examples/fastapi_chat/app.py, imported from its path (as test_examples.py
    does: an unrelated installed package called ``examples`` cannot shadow it)."""
    spec = importlib.util.spec_from_file_location("example_fastapi_chat_app", EXAMPLE / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


chat = load_example()


async def recv(websocket: Any) -> Any:
    return await asyncio.wait_for(websocket.recv(), STEP)


async def http_get(port: int, path: str) -> Tuple[int, Dict[str, str], bytes]:
    """A plain HTTP/1.1 GET, ``Connection: close``: (status, headers, body)."""
    return await examples.http_get(port, path, host="127.0.0.1", header="Connection: close")


async def room_is(members: Dict[str, int], deadline: float = STEP) -> None:
    """Wait (bounded) until the room's members have these names, with these counts."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        names: Dict[str, int] = {}
        for name in chat.room.members.values():
            names[name] = names.get(name, 0) + 1
        if names == members:
            return
        assert loop.time() < end, f"the room has {names}, expected {members}"
        await asyncio.sleep(0.01)


# --- in-process: uvicorn with fastws's backend ------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@run
async def test_two_members_chat(backend):
    # uvicorn's own backends too: the app is the same whatever serves it.
    async with uvicorn_server(chat.app, ws=BACKENDS[backend]) as server:
        uri = f"{server.uri}/ws"
        alice = await fastws.connect(f"{uri}?name=alice", ping_interval=None)
        assert await recv(alice) == "* alice joined"
        async with websockets.connect(f"{uri}?name=%20bob%20", compression=None) as bob:
            assert await recv(bob) == "* bob joined"  # the name, stripped
            assert await recv(alice) == "* bob joined"
            # Both connections are fastws's (or not), in uvicorn's own bookkeeping.
            served = [c for c in server.state.connections if isinstance(c, fastws.uvicorn.WebSocketProtocol)]
            assert len(served) == (2 if backend == "fastws" else 0)
            await room_is({"alice": 1, "bob": 1})

            await alice.send("hi bob")
            assert await recv(alice) == "alice: hi bob"
            assert await recv(bob) == "alice: hi bob"
            await bob.send("héllo ✓ " + "x" * 70_000)  # a 64-bit length on the way back
            assert await recv(bob) == "bob: héllo ✓ " + "x" * 70_000
            assert await recv(alice) == "bob: héllo ✓ " + "x" * 70_000
        # Bob closed: the room says so, and he is gone from it.
        assert await recv(alice) == "* bob left"
        await room_is({"alice": 1})
        await alice.close()
        assert alice.close_code == 1000
        await room_is({})


@pytest.mark.parametrize("backend", BACKENDS)
@run
async def test_a_missing_or_empty_name_is_refused_with_403(backend):
    async with uvicorn_server(chat.app, ws=BACKENDS[backend]) as server:
        async with fastws.connect(f"{server.uri}/ws?name=carol", ping_interval=None) as carol:
            assert await recv(carol) == "* carol joined"
            for query in ("", "?name=", "?name=%20%20", "?other=dave"):
                with pytest.raises(InvalidStatus) as refused:
                    await fastws.connect(f"{server.uri}/ws{query}", ping_interval=None)
                assert refused.value.status_code == 403, query
            # websockets sees the same refusal.
            with pytest.raises(websockets.InvalidStatus) as also_refused:
                await websockets.connect(f"{server.uri}/ws")
            assert also_refused.value.response.status_code == 403
            # Nobody else joined: the next thing Carol hears is her own message.
            await carol.send("anyone?")
            assert await recv(carol) == "carol: anyone?"
            await room_is({"carol": 1})
        await room_is({})


@run
async def test_the_page_is_served_at_the_root():
    async with uvicorn_server(chat.app) as server:
        status, headers, body = await http_get(server.port, "/")
        assert status == 200
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert body == (EXAMPLE / "index.html").read_bytes()
        assert b"/ws?name=" in body
        status, _, _ = await http_get(server.port, "/nothing-here")
        assert status == 404


# --- the page in a real browser -------------------------------------------------------------

# Added to the page for the test: plays a user who joins as "chromium", sends a
# message, waits until the room shows a reply, then reports what the page shows.
# The image holds the load event (after which --dump-dom prints) until then.
DRIVER = """
<img src="/wait" alt="">
<script>
(async () => {
  const until = (condition) => new Promise((resolve) => {
    if (condition()) return resolve();
    const observer = new MutationObserver(() => {
      if (condition()) { observer.disconnect(); resolve(); }
    });
    observer.observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
  });
  const items = () => [...document.querySelectorAll("#log li")].map((li) => li.textContent);
  document.getElementById("name").value = "chromium";
  document.getElementById("join").requestSubmit();
  await until(() => document.getElementById("status").textContent === "connected as chromium");
  document.getElementById("text").value = "hello from the browser";
  document.getElementById("send").requestSubmit();
  await until(() => items().includes("python: hello from python"));
  fetch("/report?" + new URLSearchParams({log: items().join("|")}));
})();
</script>
</body>"""


def driven(app: Any, report: asyncio.Future) -> Any:
    """The example app, with the page served with DRIVER in it, and the two
    routes DRIVER uses; everything else goes to the app."""
    page = (EXAMPLE / "index.html").read_text(encoding="utf-8").replace("</body>", DRIVER)

    async def asgi(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path")
        if scope["type"] != "http" or path not in ("/", "/report", "/wait"):
            return await app(scope, receive, send)
        if path == "/":
            response: Response = HTMLResponse(page)
        elif path == "/report":
            if not report.done():
                report.set_result(urllib.parse.parse_qs(scope["query_string"].decode())["log"][0])
            response = Response(status_code=204)
        else:
            await asyncio.shield(report)
            response = Response(status_code=204)
        await response(scope, receive, send)

    return asgi


def test_the_page_in_chromium(tmp_path):
    if browser.BROWSER is None:
        pytest.skip("no Chromium found on PATH; on Debian: apt-get install -y chromium")

    async def main() -> Tuple[Any, ...]:
        loop = asyncio.get_running_loop()
        report: asyncio.Future = loop.create_future()
        async with uvicorn_server(driven(chat.app, report)) as server:
            async with fastws.connect(f"{server.uri}/ws?name=python", ping_interval=None) as python:
                assert await recv(python) == "* python joined"
                browsing = loop.create_task(browser.run_chromium(f"{server.http}/", str(tmp_path / "profile")))
                received = []
                # The browser joins, and its message reaches the other members...
                while len(received) < 2:
                    receiving = loop.create_task(python.recv())
                    await asyncio.wait({receiving, browsing}, return_when=asyncio.FIRST_COMPLETED)
                    if not receiving.done():  # Chromium ended first: show why
                        receiving.cancel()
                        code, dom, err = browsing.result()
                        raise AssertionError(f"chromium exited ({code}) early:\n{err[-3000:]}\n{dom[-3000:]}")
                    received.append(receiving.result())
                # ...and the page shows theirs.
                await python.send("hello from python")
                assert await recv(python) == "python: hello from python"
                code, dom, err = await asyncio.wait_for(browsing, browser.DEADLINE / 2)
                # The browser is gone: so is its member.
                received.append(await recv(python))
        return received, code, dom, err, report.result() if report.done() else None

    received, code, dom, err, log = asyncio.run(asyncio.wait_for(main(), browser.DEADLINE))
    assert received == ["* chromium joined", "chromium: hello from the browser", "* chromium left"]
    assert code == 0, err[-3000:]
    assert log == "* chromium joined|chromium: hello from the browser|python: hello from python"
    assert '<p id="status">connected as chromium</p>' in dom
    assert "<li>chromium: hello from the browser</li><li>python: hello from python</li>" in dom
    assert chat.room.members == {}


# --- the README's commands ------------------------------------------------------------------

COMMANDS = {
    "uvicorn": ["-m", "uvicorn", "examples.fastapi_chat.app:app", "--ws", "fastws.uvicorn:WebSocketProtocol"],
    "python -m": ["-m", "examples.fastapi_chat.app"],
}


async def start(command: str, port: int) -> asyncio.subprocess.Process:
    args = [*COMMANDS[command], *(["--port", str(port)] if command == "uvicorn" else [str(port)])]
    return await examples.start_python(*args)


async def chat_with(command: str) -> Tuple[int, str]:
    """Start the example with ``command`` on a free port, wait for uvicorn's
    startup line, chat, Ctrl-C: (return code, what it logged)."""
    port = free_port()
    proc = await start(command, port)
    assert proc.stderr is not None
    err = b""
    try:
        while b"Uvicorn running on" not in err:
            line = await asyncio.wait_for(proc.stderr.readline(), STEP)
            assert line, f"{command}: exited before listening:\n{err.decode()}"
            err += line
        uri = f"ws://127.0.0.1:{port}/ws"
        async with fastws.connect(f"{uri}?name=one", ping_interval=None) as one:
            assert await recv(one) == "* one joined"
            async with fastws.connect(f"{uri}?name=two", ping_interval=None) as two:
                assert await recv(two) == "* two joined"
                assert await recv(one) == "* two joined"
                await one.send("hello")
                assert await recv(two) == "one: hello"
        with pytest.raises(InvalidStatus) as refused:
            await fastws.connect(uri, ping_interval=None)
        assert refused.value.status_code == 403
    finally:
        code, _, rest = await examples.stop(proc)  # Ctrl-C
    return code, err.decode() + rest


@run
async def test_the_readme_commands():
    for command, (code, log) in zip(COMMANDS, await asyncio.gather(*map(chat_with, COMMANDS))):
        assert code == 0, f"{command}:\n{log}"
        assert "Traceback" not in log, f"{command}:\n{log}"
        assert "Uvicorn running on http://127.0.0.1:" in log

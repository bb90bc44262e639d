"""The examples in examples/ work: their handlers in-process, the scripts as
subprocesses on free ports (each takes the port as its first argument), and
the chat page in headless Chromium when it is installed."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import socket
import sys
import urllib.parse
from pathlib import Path

import pytest

import fastws
from fastws import Headers, InvalidStatus, Response

from asyncio_helpers import run

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
STEP = 10.0  # seconds any one step may take


def load(relative: str):
    """Import an example file as a module (its ``__main__`` block does not run)."""
    path = EXAMPLES / relative
    name = "example_" + relative.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hello_server = load("hello_server.py")
hello_client = load("hello_client.py")
chat = load("chat/server.py")


def free_localhost_port() -> int:
    """A port free on every address ``localhost`` resolves to (the examples
    listen on "localhost", which may be both 127.0.0.1 and ::1)."""
    addresses = {info[4][0]: info[0] for info in socket.getaddrinfo("localhost", None, type=socket.SOCK_STREAM)}
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        try:
            for host, family in addresses.items():
                with socket.socket(family) as sock:
                    sock.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port on localhost")


async def start_script(relative: str, *args: str) -> asyncio.subprocess.Process:
    return await start_python(str(EXAMPLES / relative), *args)


async def start_python(*args: str) -> asyncio.subprocess.Process:
    """``python *args`` from the repository's root, with it on PYTHONPATH; its
    stdout and stderr piped."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return await asyncio.create_subprocess_exec(
        sys.executable, *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(ROOT),
        env=env,
    )


async def stop(proc: asyncio.subprocess.Process, signum=signal.SIGINT) -> tuple:
    """Send ``signum`` (if still running) and wait: (returncode, stdout, stderr)."""
    try:
        if proc.returncode is None:
            proc.send_signal(signum)
        out, err = await asyncio.wait_for(proc.communicate(), STEP)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode, out.decode(), err.decode()


async def http_get(port: int, path: str, host: str = "localhost", header: str = "Accept: text/html") -> tuple:
    """A plain HTTP/1.1 GET with ``header``: (status, headers as a dict, body).
    The server closes after it (with ``header="Connection: close"`` one that
    keeps connections alive does too)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{header}\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(), STEP)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    assert int(headers["content-length"]) == len(body)
    return int(status_line.split()[1]), headers, body


# --- hello ------------------------------------------------------------------------------


@run
async def test_hello_handler_in_process(capsys):
    async with fastws.serve(hello_server.hello, "127.0.0.1", 0, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with fastws.connect(f"ws://127.0.0.1:{port}/") as websocket:
            await websocket.send("world")
            assert await websocket.recv() == "Hello world!"
        # The tutorial client, connecting to localhost.
        await asyncio.wait_for(hello_client.hello(port), STEP)
    assert capsys.readouterr().out == "Hello world!\n"


@run
async def test_hello_scripts_as_subprocesses():
    port = free_localhost_port()
    server = await start_script("hello_server.py", str(port))
    try:
        # The tutorial's server prints nothing: poll until it accepts (bounded).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STEP
        while True:
            assert server.returncode is None, (await stop(server))[2]
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                assert loop.time() < deadline, "hello_server.py did not start listening"
                await asyncio.sleep(0.05)
                continue
            writer.close()
            break
        client = await start_script("hello_client.py", str(port))
        code, out, err = await _wait(client)
        assert code == 0, err
        assert out == "Hello world!\n"
    finally:
        await stop(server, signal.SIGTERM)


async def _wait(proc) -> tuple:
    out, err = await asyncio.wait_for(proc.communicate(), STEP)
    return proc.returncode, out.decode(), err.decode()


# --- chat -------------------------------------------------------------------------------


async def _recv(websocket):
    return await asyncio.wait_for(websocket.recv(), STEP)


@run
async def test_chat_in_process():
    async with fastws.serve(
        chat.chat, "127.0.0.1", 0, process_request=chat.process_request, ping_interval=None
    ) as server:
        port = server.sockets[0].getsockname()[1]

        # The page, over plain HTTP on the same port.
        status, headers, body = await http_get(port, "/")
        assert status == 200
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert body == (EXAMPLES / "chat" / "index.html").read_bytes()
        assert b"/ws" in body
        status, _, body = await http_get(port, "/nothing-here")
        assert (status, body) == (404, b"Not found\n")
        # The page is not a WebSocket endpoint.
        with pytest.raises(InvalidStatus) as info:
            await fastws.connect(f"ws://127.0.0.1:{port}/")
        assert info.value.status_code == 200

        uri = f"ws://127.0.0.1:{port}/ws"
        alice, bob, carol = [await fastws.connect(uri, ping_interval=None) for _ in range(3)]
        await alice.send("alice: hi all")
        for websocket in (alice, bob, carol):
            assert await _recv(websocket) == "alice: hi all"
        await carol.close()
        await bob.send(b"\x00binary too")
        for websocket in (alice, bob):
            assert await _recv(websocket) == b"\x00binary too"
        await bob.send("bob: bye")
        assert await _recv(alice) == "bob: bye"
        assert await _recv(bob) == "bob: bye"
        await alice.close()
        await bob.close()
    # Every handler finished, and left the room.
    assert chat.CLIENTS == set()


@run
async def test_chat_script_as_a_subprocess():
    port = free_localhost_port()
    proc = await start_script("chat/server.py", str(port))
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), STEP)).decode()
        assert line == f"chat room on http://localhost:{port}/\n"
        status, headers, body = await http_get(port, "/")
        assert status == 200 and headers["content-type"].startswith("text/html")
        uri = f"ws://localhost:{port}/ws"
        async with fastws.connect(uri, ping_interval=None) as one, fastws.connect(uri, ping_interval=None) as two:
            await one.send("one: hello")
            assert await _recv(one) == "one: hello"
            assert await _recv(two) == "one: hello"
    finally:
        code, _, err = await stop(proc)  # Ctrl-C
    assert code == 0, err
    assert "Traceback" not in err


# --- the chat page in a real browser ------------------------------------------------------

# Added to the page for the test: plays a user who types a message, waits until
# the room shows it and a reply, then reports what the page shows. The image
# holds the load event (after which --dump-dom prints) until that report.
DRIVER = """
<img src="/wait" alt="">
<script>
(async () => {
  const until = (condition) => new Promise((resolve) => {
    if (condition()) return resolve();
    const observer = new MutationObserver(() => {
      if (condition()) { observer.disconnect(); resolve(); }
    });
    observer.observe(document.body, {subtree: true, childList: true, characterData: true});
  });
  const items = () => [...document.querySelectorAll("#log li")].map((li) => li.textContent);
  await until(() => document.getElementById("status").textContent === "connected");
  document.getElementById("name").value = "chromium";
  document.getElementById("text").value = "hello from the browser";
  document.getElementById("form").requestSubmit();
  await until(() => items().includes("python: hello from python"));
  fetch("/report?" + new URLSearchParams({log: items().join("|")}));
})();
</script>
</body>"""


def test_chat_page_in_chromium(tmp_path):
    browser = pytest.importorskip("test_browser")
    if browser.BROWSER is None:
        pytest.skip("no Chromium found on PATH; on Debian: apt-get install -y chromium")

    async def main():
        loop = asyncio.get_running_loop()
        report = loop.create_future()

        async def process_request(connection, request):
            path, _, query = request.path.partition("?")
            if path == "/report":
                if not report.done():
                    report.set_result(urllib.parse.parse_qs(query)["log"][0])
                return connection.respond(204, "")
            if path == "/wait":
                await asyncio.shield(report)
                return connection.respond(204, "")
            response = chat.process_request(connection, request)
            if path == "/" and response is not None and response.status_code == 200:
                body = response.body.replace(b"</body>", DRIVER.encode())
                response = Response(200, headers=Headers(response.headers), body=body)
            return response

        async with fastws.serve(
            chat.chat, "127.0.0.1", 0, process_request=process_request, ping_interval=None
        ) as server:
            port = server.sockets[0].getsockname()[1]
            async with fastws.connect(f"ws://127.0.0.1:{port}/ws", ping_interval=None) as python:
                browsing = loop.create_task(
                    browser.run_chromium(f"http://127.0.0.1:{port}/", str(tmp_path / "profile"))
                )
                # The browser's message reaches the other people in the room...
                receiving = loop.create_task(python.recv())
                await asyncio.wait({receiving, browsing}, return_when=asyncio.FIRST_COMPLETED)
                if not receiving.done():  # Chromium ended first: show why
                    receiving.cancel()
                    code, dom, err = browsing.result()
                    raise AssertionError(f"chromium exited ({code}) before sending:\n{err[-3000:]}\n{dom[-3000:]}")
                received = receiving.result()
                # ...and the page shows theirs.
                await python.send("python: hello from python")
                assert await _recv(python) == "python: hello from python"
                code, dom, err = await asyncio.wait_for(browsing, browser.DEADLINE / 2)
        return received, code, dom, err, report.result() if report.done() else None

    received, code, dom, err, log = asyncio.run(asyncio.wait_for(main(), browser.DEADLINE))
    assert received == "chromium: hello from the browser"
    assert code == 0, err[-3000:]
    assert log == "chromium: hello from the browser|python: hello from python"
    assert '<p id="status">connected</p>' in dom
    assert "<li>chromium: hello from the browser</li><li>python: hello from python</li>" in dom

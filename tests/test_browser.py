"""A real browser against a fastws server: headless Chromium loads a test page
from the server (plain HTTP through ``process_request``), whose JavaScript
talks WebSocket to the same server; the page writes its verdict into the DOM,
which ``chromium --dump-dom`` prints.

How the test knows the page is done, without sleeping: the page holds an
``<img src="/wait">`` that the server answers only once the page has reported
its result (with ``fetch("/report?...")``, after the WebSocket work). The load
event, after which ``--dump-dom`` prints the DOM, therefore cannot fire before
the verdict is in the DOM. Every wait is bounded.

Chromium runs as root here, hence ``--no-sandbox``; it is kept off every
network but loopback (``--host-resolver-rules``, no background services).
Install it with ``apt-get install -y chromium`` (Debian); without it the test
is skipped.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import urllib.parse

import pytest

import fastws
from fastws import Headers, Response

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((path for path in map(shutil.which, BROWSERS) if path), None)
pytestmark = pytest.mark.skipif(
    BROWSER is None,
    reason="no Chromium found on PATH (looked for " + ", ".join(BROWSERS) + "); on Debian: apt-get install -y chromium",
)

DEADLINE = 90.0  # seconds for the whole test: Chromium's first start is slow on 2 cores
BIG = 100 * 1024

PAGE = """<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>fastws browser test</title></head>
<body>
<p id="result">RESULT:PENDING</p>
<pre id="log"></pre>
<img src="/wait" alt="">
<script>
"use strict";
const BIG = @BIG@;
const base = `ws://${location.host}`;
const done = [];
const log = (text) => { document.getElementById("log").textContent += text + "\\n"; };

function open(path, protocols) {
  const ws = new WebSocket(base + path, protocols);
  ws.binaryType = "arraybuffer";
  return ws;
}

// The next message, the close event, or a failure, as a promise.
function next(ws) {
  return new Promise((resolve, reject) => {
    ws.onmessage = (event) => resolve(event.data);
    ws.onclose = (event) => reject(new Error(`closed early: ${event.code} ${event.reason}`));
    ws.onerror = () => reject(new Error("WebSocket error"));
  });
}
function opened(ws) {
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onclose = (event) => reject(new Error(`could not open: ${event.code}`));
  });
}
function closed(ws) {
  return new Promise((resolve) => { ws.onclose = (event) => resolve(event); });
}
function check(condition, what) {
  if (!condition) throw new Error("check failed: " + what);
}

async function main() {
  const ws = open("/ws", ["chat.v2", "chat.v1"]);
  await opened(ws);
  check(ws.protocol === "chat.v1", `subprotocol ${JSON.stringify(ws.protocol)}`);
  // ?deflate=1: the server accepts permessage-deflate; otherwise it declines.
  const deflate = new URLSearchParams(location.search).get("deflate") === "1";
  check(deflate ? ws.extensions.startsWith("permessage-deflate") : ws.extensions === "",
        `extensions ${JSON.stringify(ws.extensions)}`);
  done.push("protocol");

  const text = "héllo wörld ✓ 🎉";
  ws.send(text);
  check(await next(ws) === text, "text echo");
  done.push("text");

  const bytes = new Uint8Array(256 * 4);
  for (let i = 0; i < bytes.length; i++) bytes[i] = i % 256;
  ws.send(bytes.buffer);
  const echo = await next(ws);
  check(echo instanceof ArrayBuffer, `binary echo type ${Object.prototype.toString.call(echo)}`);
  const got = new Uint8Array(echo);
  check(got.length === bytes.length && got.every((b, i) => b === bytes[i]), "binary echo bytes");
  done.push("binary");

  let big = "";
  while (big.length < BIG) big += "0123456789abcdeé";
  big = big.slice(0, BIG);
  ws.send(big);
  check(await next(ws) === big, "big echo");
  done.push("big");

  // The browser closes, with a code and a reason.
  const byClient = closed(ws);
  ws.close(1000, "done");
  const event = await byClient;
  check(event.wasClean && event.code === 1000, `client close ${event.code}`);
  done.push("client-close");

  // The server closes, with a code and a reason.
  const other = open("/close-me");
  const event2 = await closed(other);
  check(event2.wasClean && event2.code === 4001 && event2.reason === "server says bye",
        `server close ${event2.wasClean} ${event2.code} ${JSON.stringify(event2.reason)}`);
  done.push("server-close");
}

function finish(result) {
  document.getElementById("result").textContent = result;
  log(result);
  fetch("/report?" + new URLSearchParams({result})).catch(() => {});
}

main().then(
  () => finish("RESULT:OK " + done.join(",")),
  (error) => finish(`RESULT:FAIL after [${done.join(",")}]: ${error.message}`),
);
</script>
</body>
</html>
""".replace("@BIG@", str(BIG))


class Peer:
    """What the server saw of the browser."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.report: asyncio.Future = loop.create_future()
        self.requests: list = []  # every HTTP request, WebSocket or not
        self.handshakes: list = []  # (request, response) of the WebSocket connections
        self.echoed: list = []  # types and sizes of the messages echoed
        self.closes: list = []  # (code, reason) received from the browser
        self.latency = None


def make_server(compression, peer: Peer):
    async def process_request(connection, request):
        peer.requests.append(request)
        path, _, query = request.path.partition("?")
        if path == "/page":
            return Response(
                200,
                headers=Headers({"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}),
                body=PAGE.encode(),
            )
        if path == "/report":
            result = urllib.parse.parse_qs(query).get("result", [""])[0]
            if not peer.report.done():
                peer.report.set_result(result)
            return connection.respond(204, "")
        if path == "/wait":
            # Holds the page's load event until the verdict is in the DOM.
            await asyncio.shield(peer.report)
            return connection.respond(204, "")
        if path in ("/ws", "/close-me"):
            return None
        return connection.respond(404, "Not found\n")

    async def handler(websocket):
        peer.handshakes.append((websocket.request, websocket.response))
        if websocket.request.path == "/close-me":
            await websocket.close(4001, "server says bye")
            return
        # Chromium answers a ping by itself.
        peer.latency = await asyncio.wait_for(await websocket.ping(b"probe"), 10)
        try:
            async for message in websocket:
                peer.echoed.append((type(message).__name__, len(message)))
                await websocket.send(message)
        finally:
            if websocket.protocol.close_rcvd is not None:
                close = websocket.protocol.close_rcvd
                peer.closes.append((int(close.code), close.reason))

    return fastws.serve(
        handler, "127.0.0.1", 0,
        process_request=process_request,
        subprotocols=["chat.v1"],
        compression=compression,  # Chromium offers permessage-deflate
        ping_interval=None,
    )


async def run_chromium(url: str, profile: str) -> tuple:
    """``chromium --dump-dom url``: (returncode, stdout, stderr)."""
    args = [
        BROWSER,
        "--headless=new",
        "--no-sandbox",  # we are root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-domain-reliability",
        "--no-proxy-server",
        "--disable-breakpad",
        "--disable-crash-reporter",
        # Nothing but the loopback address resolves: no traffic leaves the machine.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--dump-dom",
        url,
    ]
    # Its own home too: nothing read from or left in the real one.
    home = os.path.join(profile, "home")
    os.makedirs(home, exist_ok=True)
    env = dict(os.environ, HOME=home, XDG_CONFIG_HOME=home, XDG_CACHE_HOME=home)
    proc = await asyncio.create_subprocess_exec(
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its helper processes too, to end them all on timeout
    )
    try:
        out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await proc.wait()
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


@pytest.mark.parametrize("compression", ["deflate", None])
def test_chromium_talks_to_fastws(tmp_path, compression):
    async def main():
        peer = Peer(asyncio.get_running_loop())
        async with make_server(compression, peer) as server:
            port = server.sockets[0].getsockname()[1]
            query = "?deflate=1" if compression else ""
            code, dom, err = await run_chromium(
                f"http://127.0.0.1:{port}/page{query}", str(tmp_path / "profile")
            )
            report = peer.report.result() if peer.report.done() else None
        return peer, port, code, dom, err, report

    peer, port, code, dom, err, report = asyncio.run(asyncio.wait_for(main(), DEADLINE))
    expected = "RESULT:OK protocol,text,binary,big,client-close,server-close"
    assert code == 0, f"chromium exited with {code}:\n{err[-3000:]}"
    assert report == expected, f"page reported {report!r}; DOM:\n{dom[-3000:]}"
    # What --dump-dom printed is the page after its work.
    assert f'<p id="result">{expected}</p>' in dom, dom[-3000:]

    # The server saw Chromium's own handshake, and accepted or declined its
    # compression offer as configured.
    assert [r.path for r in peer.requests if r.path.startswith(("/ws", "/close-me"))] == ["/ws", "/close-me"]
    request, response = peer.handshakes[0]
    assert "Chrome" in request.headers["User-Agent"]
    assert request.headers["Origin"] == f"http://127.0.0.1:{port}"
    assert "permessage-deflate" in request.headers["Sec-WebSocket-Extensions"]
    assert request.headers["Sec-WebSocket-Protocol"].replace(" ", "") == "chat.v2,chat.v1"
    assert response.status_code == 101
    if compression is None:
        assert "Sec-WebSocket-Extensions" not in response.headers
    else:
        assert response.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
    assert response.headers["Sec-WebSocket-Protocol"] == "chat.v1"

    assert peer.echoed == [("str", len("héllo wörld ✓ 🎉")), ("bytes", 1024), ("str", BIG)]
    assert peer.latency is not None and peer.latency >= 0  # Chromium answered the ping
    assert peer.closes == [(1000, "done")]

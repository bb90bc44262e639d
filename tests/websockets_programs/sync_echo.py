"""The sync API both ways: serve() with serve_forever()/shutdown(), connect()
with recv(timeout=), iteration and ping()."""

import threading

from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect
from websockets.sync.server import serve


def echo(websocket):
    for message in websocket:
        websocket.send(message)


with serve(echo, "127.0.0.1", 0) as server:
    port = server.socket.getsockname()[1]
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    with connect(f"ws://127.0.0.1:{port}") as websocket:
        websocket.send("sync")
        print(websocket.recv())
        websocket.send(b"\x00\x01")
        print(websocket.recv())
        websocket.send(["frag", "ments"])
        print(websocket.recv())
        try:
            websocket.recv(timeout=0.05)
        except TimeoutError:
            print("timed out")
        print(websocket.ping().wait(5))
        websocket.close(1000, "done")
        try:
            websocket.recv()
        except ConnectionClosedOK:
            print("closed OK")
        except Exception as exc:
            print(type(exc).__name__, exc.rcvd.code, exc.rcvd.reason)
    server.shutdown()
    thread.join()
print("stopped")

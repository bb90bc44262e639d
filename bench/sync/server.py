"""The fastws.sync echo server of the benchmark, in a process of its own.

    python -m bench.sync.server PORT

Listens on 127.0.0.1:PORT (0: a free port), prints ``READY <port>`` once it
accepts connections, and serves until its standard input reaches end of file.
Like bench.echo's servers: no compression, no keepalive, 4 MiB messages at most.
"""

from __future__ import annotations

import sys
import threading

from fastws.sync.server import ServerConnection, serve

MAX_SIZE = 4 * 1024 * 1024


def echo(websocket: ServerConnection) -> None:
    for message in websocket:
        websocket.send(message)


def main(port: int) -> None:
    with serve(echo, "127.0.0.1", port, compression=None, ping_interval=None, max_size=MAX_SIZE) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        print(f"READY {server.socket.getsockname()[1]}", flush=True)
        sys.stdin.read()  # until the parent closes it (or dies)


if __name__ == "__main__":
    main(int(sys.argv[1]))

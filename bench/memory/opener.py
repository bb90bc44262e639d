"""Opens WebSocket connections and holds them, idle, for the memory group.

    python -m bench.memory.opener PORT [--deflate] [--floor] [--concurrency N]

Reads commands on standard input, one per line, and answers each on standard
output with one line of JSON:

- ``open N``: open N more connections to 127.0.0.1:PORT, each with a complete
  opening handshake (``Sec-WebSocket-Extensions: permessage-deflate;
  client_max_window_bits`` offered with ``--deflate``), and keep them; answers
  ``{"open": total, "negotiated": how many got permessage-deflate}``;
- ``check``: answers ``{"open": total, "closed": how many the server closed}``
  (an idle connection must stay open);
- ``quit`` (or the end of standard input): every connection is reset (RST: no
  TIME_WAIT left behind) and the opener exits.

A connection counts once the server's ``101 Switching Protocols`` has come
with the right ``Sec-WebSocket-Accept`` (with ``--floor``, any ``101``: the
floor server answers without reading the request). After that the opener
never reads or writes it again: the server holds an idle connection. At most
``--concurrency`` handshakes are in flight, so that the server's listen
backlog never overflows. Any failure (refused, reset, not a 101) ends the
opener with a message on standard error and status 1.
"""

from __future__ import annotations

import argparse
import base64
import errno
import hashlib
import json
import os
import resource
import selectors
import socket
import struct
import sys
import time
from typing import Dict, List, Optional

HOST = "127.0.0.1"
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: Seconds a batch of handshakes may take in all.
OPEN_TIMEOUT = 120.0
_LINGER_RST = struct.pack("ii", 1, 0)


def raise_nofile() -> int:
    """Raise this process's open file limit to its hard limit; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Pending:
    """One handshake in flight."""

    __slots__ = ("sock", "key", "sent", "received")

    def __init__(self, sock: socket.socket, key: bytes) -> None:
        self.sock = sock
        self.key = key
        self.sent = False
        self.received = b""


class OpenError(Exception):
    pass


class Opener:
    def __init__(self, port: int, deflate: bool, floor: bool, concurrency: int) -> None:
        self.port = port
        self.deflate = deflate
        self.floor = floor
        self.concurrency = concurrency
        self.held: List[socket.socket] = []
        self.negotiated = 0
        self.selector = selectors.DefaultSelector()

    def _request(self, key: bytes) -> bytes:
        lines = [
            "GET / HTTP/1.1",
            f"Host: {HOST}:{self.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key.decode()}",
            "Sec-WebSocket-Version: 13",
        ]
        if self.deflate:
            lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def _start(self) -> Pending:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex((HOST, self.port))
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            raise OpenError(f"connect to {HOST}:{self.port} failed: {os.strerror(code)}")
        pending = Pending(sock, base64.b64encode(os.urandom(16)))
        self.selector.register(sock, selectors.EVENT_WRITE, pending)
        return pending

    def _finish(self, pending: Pending) -> None:
        """The response head is complete: check it, keep the connection."""
        head, _, _ = pending.received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split(" ", 2)
        if len(status) < 2 or status[1] != "101":
            raise OpenError(f"the server answered {lines[0]!r} instead of 101")
        headers: Dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if not self.floor:
            expected = base64.b64encode(hashlib.sha1(pending.key + _GUID).digest()).decode()
            if headers.get("sec-websocket-accept") != expected:
                raise OpenError(f"wrong Sec-WebSocket-Accept: {headers.get('sec-websocket-accept')!r}")
        if "permessage-deflate" in headers.get("sec-websocket-extensions", ""):
            self.negotiated += 1
        self.held.append(pending.sock)

    def open(self, count: int) -> None:
        """Open ``count`` more connections, ``concurrency`` handshakes at a time."""
        deadline = time.monotonic() + OPEN_TIMEOUT
        started = 0
        in_flight = 0
        select = self.selector.select
        while started < count or in_flight:
            while in_flight < self.concurrency and started < count:
                self._start()
                started += 1
                in_flight += 1
            if time.monotonic() > deadline:
                raise OpenError(f"{in_flight} handshakes still in flight after {OPEN_TIMEOUT:.0f} s")
            for key, _ in select(1.0):
                pending: Pending = key.data
                sock = pending.sock
                if not pending.sent:
                    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if error:
                        raise OpenError(f"connect to {HOST}:{self.port} failed: {os.strerror(error)}")
                    sock.sendall(self._request(pending.key))  # ~200 bytes: fits the empty buffer
                    pending.sent = True
                    self.selector.modify(sock, selectors.EVENT_READ, pending)
                    continue
                try:
                    data = sock.recv(4096)
                except ConnectionError as exc:
                    raise OpenError(f"handshake failed: {exc}") from None
                if not data:
                    raise OpenError(
                        "the server closed the connection during the handshake"
                        f" (after {len(pending.received)} bytes of response: {pending.received[:80]!r})"
                    )
                pending.received += data
                if b"\r\n\r\n" in pending.received:
                    self.selector.unregister(sock)
                    in_flight -= 1
                    self._finish(pending)

    def closed_count(self) -> int:
        """How many held connections the server has closed (or reset)."""
        closed = 0
        poller = selectors.DefaultSelector()
        try:
            for sock in self.held:
                poller.register(sock, selectors.EVENT_READ)
            ready = {key.fileobj for key, _ in poller.select(0)}
        finally:
            poller.close()
        for sock in self.held:
            if sock not in ready:
                continue
            try:
                data = sock.recv(65536, socket.MSG_PEEK)
            except ConnectionError:
                closed += 1
                continue
            if not data:
                closed += 1
        return closed

    def close_all(self) -> None:
        for sock in self.held:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
                sock.close()
            except OSError:
                pass
        self.held.clear()
        self.selector.close()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory.opener", description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    parser.add_argument("--floor", action="store_true", help="accept any 101 (the floor server's canned answer)")
    parser.add_argument("--concurrency", type=int, default=64, help="handshakes in flight at most (default: 64)")
    args = parser.parse_args(argv)
    raise_nofile()
    opener = Opener(args.port, args.deflate, args.floor, args.concurrency)
    try:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            if words[0] == "open" and len(words) == 2 and words[1].isdigit():
                opener.open(int(words[1]))
                answer = {"open": len(opener.held), "negotiated": opener.negotiated}
            elif words[0] == "check":
                answer = {"open": len(opener.held), "closed": opener.closed_count()}
            elif words[0] == "quit":
                break
            else:
                print(f"unknown command {line.strip()!r}", file=sys.stderr)
                return 2
            print(json.dumps(answer), flush=True)
    except OpenError as exc:
        print(f"opener: {exc} (after {len(opener.held)} connections)", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"opener: {exc} (after {len(opener.held)} connections)", file=sys.stderr)
        return 1
    finally:
        opener.close_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())

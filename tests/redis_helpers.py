"""A real Redis for the tests: Debian's ``redis-server`` (installed by .ci/run)
on a free loopback port or a Unix socket, persistence off, in a temporary
directory, stopped at the end. It can be killed and started again on the same
address, which is how the tests take Redis away from a running PubSub."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Iterator, List, Optional

import pytest

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
START_TIMEOUT = 10.0


def redis_available() -> bool:
    return os.access(REDIS_SERVER, os.X_OK)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """One ``redis-server`` process, restartable on the same address.

    Args:
        unix: Listen on a Unix socket in the temporary directory instead of TCP.
        tls: A ``trustme.CA``: listen with TLS only (``rediss://``), with a
            certificate for 127.0.0.1 issued by that CA.
    """

    def __init__(self, *, unix: bool = False, tls=None) -> None:
        self.directory = tempfile.mkdtemp(prefix="fastws-redis-")
        self.port = _free_port()
        self.unix_path = os.path.join(self.directory, "redis.sock") if unix else None
        self.tls = tls
        self.process: Optional[subprocess.Popen] = None
        self.starts = 0
        if tls is not None:
            cert = tls.issue_cert("127.0.0.1")
            self.cert_file = os.path.join(self.directory, "server.pem")
            self.key_file = os.path.join(self.directory, "server.key")
            self.ca_file = os.path.join(self.directory, "ca.pem")
            cert.cert_chain_pems[0].write_to_path(self.cert_file)
            cert.private_key_pem.write_to_path(self.key_file)
            tls.cert_pem.write_to_path(self.ca_file)

    @property
    def url(self) -> str:
        if self.unix_path is not None:
            return f"unix://{self.unix_path}"
        scheme = "rediss" if self.tls is not None else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def _command(self) -> List[str]:
        command = [
            REDIS_SERVER,
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", self.directory,
            "--protected-mode", "no",
            "--loglevel", "warning",
        ]
        if self.unix_path is not None:
            command += ["--port", "0", "--unixsocket", self.unix_path]
        elif self.tls is not None:
            command += [
                "--port", "0",
                "--tls-port", str(self.port),
                "--tls-cert-file", self.cert_file,
                "--tls-key-file", self.key_file,
                "--tls-ca-cert-file", self.ca_file,
                "--tls-auth-clients", "no",
            ]
        else:
            command += ["--port", str(self.port)]
        return command

    def start(self) -> None:
        """Start redis-server and wait until it answers PING."""
        assert self.process is None, "redis-server is running already"
        self.process = subprocess.Popen(
            self._command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers():
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                self.process = None
                raise RuntimeError(f"redis-server exited at start: {error}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT} s")
            time.sleep(0.01)

    def _answers(self) -> bool:
        """True when a PING is answered (a TLS port only needs to accept)."""
        try:
            if self.unix_path is not None:
                sock = socket.socket(socket.AF_UNIX)
                sock.settimeout(1.0)
                sock.connect(self.unix_path)
            else:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=1.0)
        except OSError:
            return False
        with sock:
            if self.tls is not None:
                return True
            try:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
            except OSError:
                return False

    def kill(self) -> None:
        """SIGKILL: Redis goes away at once, with everything it held."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            if self.process.stderr:
                self.process.stderr.close()
            self.process = None
        if self.unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.unix_path)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.process.stderr:
                self.process.stderr.close()
            self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def running_redis(**options) -> Iterator[RedisServer]:
    """A started :class:`RedisServer`, stopped and removed at the end."""
    if not redis_available():
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(**options)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()

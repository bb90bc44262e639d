"""A real nginx for the tests: Debian's ``nginx-light`` (installed by .ci/run),
started in the foreground with a configuration written to a temporary prefix,
listening on a free loopback port, and stopped at the end.

The proxying directives are those of docs/deployment.md, so that the tests run
what the guide tells users to write."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
#: Seconds nginx gets to listen at start, and to exit at the end.
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

# From docs/deployment.md: "Connection: upgrade" when the client asked for an
# upgrade, "close" otherwise.
CONNECTION_UPGRADE_MAP = """
map $http_upgrade $connection_upgrade {
    default upgrade;
    ''      close;
}
"""

# From docs/deployment.md: the directives of the WebSocket location, after proxy_pass.
WEBSOCKET_PROXYING = """
proxy_http_version 1.1;
proxy_set_header Upgrade $http_upgrade;
proxy_set_header Connection $connection_upgrade;
proxy_set_header Host $host;
proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
proxy_set_header X-Forwarded-Proto $scheme;
"""

# Everything nginx writes goes to the temporary prefix: no root, no /var.
_MAIN = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
{http}
}}
"""


def require_nginx() -> None:
    """Skip the calling module when nginx is not installed."""
    if not os.access(NGINX, os.X_OK):
        pytest.skip("nginx is not installed (apt-get install nginx-light)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_nginx(http: str, port: int) -> Iterator[Path]:
    """nginx with ``http`` inside its ``http`` block, which must make it listen
    on 127.0.0.1:``port``. Yields its temporary prefix once the port accepts
    connections; nginx is stopped and waited for at the end, and the prefix
    removed.

    Raises:
        RuntimeError: With nginx's error log, if it exits at start or does not
            listen within START_TIMEOUT.
    """
    with tempfile.TemporaryDirectory(prefix="fastws-nginx-") as directory:
        conf = Path(directory, "nginx.conf")
        conf.write_text(_MAIN.format(dir=directory, http=http))
        log = Path(directory, "error.log")
        process = subprocess.Popen(
            [NGINX, "-p", directory, "-c", str(conf), "-e", str(log)],
            stdin=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        error = log.read_text() if log.exists() else "(no error log)"
                        raise RuntimeError(f"nginx did not start: {error}") from None
                    time.sleep(0.02)
            yield Path(directory)
        finally:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

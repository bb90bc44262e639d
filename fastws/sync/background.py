"""The background thread of a :class:`~fastws.sync.connection.Connection`
(one per connection, see :mod:`fastws.sync.core`): it sends the keepalive
pings, enforces the keepalive and closing timeouts, and reads the socket while
no thread is in ``recv()`` (after :data:`~fastws.sync.connection.IDLE_TAKEOVER`
seconds), so that pings are answered and a close frame is seen while the
application only sends."""

from __future__ import annotations

import select
import socket
import threading
import time
from typing import Optional

from ..exceptions import ConnectionClosed
from ..frames import CloseCode
from ..protocol import OPEN
from .core import _INF, _POLLIN, IDLE_TAKEOVER, ConnectionCore

__all__ = ["ConnectionThreads"]


class ConnectionThreads(ConnectionCore):
    """A :class:`~fastws.sync.core.ConnectionCore` with its background thread."""

    def _start(self) -> None:
        """The opening handshake succeeded: start the background thread."""
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        if self.ping_interval is not None:
            self._next_ping = time.monotonic() + self.ping_interval
        self._bg_thread = threading.Thread(
            target=self._background, name=f"fastws-{self.id}", daemon=True
        )
        self._bg_thread.start()


    def _background(self) -> None:
        try:
            self._background_loop()
        except Exception:  # pragma: no cover - a bug: keep the connection usable
            self.logger.error("background thread failed", exc_info=True)
        finally:
            assert self._wake_r is not None and self._wake_w is not None
            if self._closed.is_set():
                self._wake_r.close()
                self._wake_w.close()

    def _background_loop(self) -> None:
        closed = self._closed
        bg_cond = self._bg_cond
        while not closed.is_set():
            gen = self._bg_gen
            timeout = self._timers()
            if self._in_recv or self._paused or self._reader.locked():
                with bg_cond:
                    # Parked first, then checked again: recv() sees the flag
                    # when it returns, or this check sees that it returned.
                    self._bg_parked = True
                    try:
                        if closed.is_set() or gen != self._bg_gen:
                            continue
                        if not (self._in_recv or self._paused or self._reader.locked()):
                            continue
                        bg_cond.wait(timeout if not self._reader.locked() or self._in_recv else _cap(timeout))
                    finally:
                        self._bg_parked = False
                continue
            if self._close_deadline is None:
                # Nobody reads: give the application IDLE_TAKEOVER to call recv().
                epoch = self._recv_epoch
                with bg_cond:
                    if gen == self._bg_gen:
                        bg_cond.wait(IDLE_TAKEOVER if timeout is None else min(IDLE_TAKEOVER, timeout))
                if self._in_recv or self._recv_epoch != epoch or self._paused:
                    continue
            if not self._reader.acquire(False):
                continue
            self._bg_reading = True
            try:
                self._background_read()
            finally:
                self._bg_reading = False
                self._reader.release()
                if self._waiting:
                    self._notify()

    def _background_read(self) -> None:
        """Read while no thread is in recv() (the reader lock held)."""
        assert self._wake_r is not None
        wake = self._wake_r
        poller = None
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(wake, _POLLIN)
            if self.socket.fileno() >= 0:
                poller.register(self.socket, _POLLIN)
        while not self._closed.is_set() and not self._in_recv and not self._paused:
            timeout = self._timers()
            if timeout is not None and timeout <= 0:
                continue
            pending = getattr(self.socket, "pending", None)
            if pending is not None and pending():
                self._read_once(0)
                continue
            if poller is not None:
                ready = [fd for fd, _ in poller.poll(None if timeout is None else timeout * 1000.0)]
            else:  # pragma: no cover - no poll() on this platform
                ready = [s.fileno() for s in select.select([wake, self.socket], [], [], timeout)[0]]
            if wake.fileno() in ready:
                try:
                    while wake.recv(64):
                        pass
                except OSError:
                    pass
            if self.socket.fileno() in ready or self.socket.fileno() < 0:
                self._read_once(0)
                if self._waiting:
                    self._notify()

    def _timers(self) -> Optional[float]:
        """Run what is due (keepalive ping, keepalive timeout, closing
        timeout); return the seconds until the next one, or None."""
        now = time.monotonic()
        due: Optional[float] = None
        close_deadline = self._close_deadline
        if close_deadline is not None:
            if close_deadline == _INF:
                pass
            elif now >= close_deadline:
                self._abort()
                self._close_deadline = _INF
                if not self._reader.locked():
                    return 0.0
            else:
                due = close_deadline
        elif self.protocol.state is OPEN:
            keepalive = self._keepalive
            if keepalive is not None:
                # One keepalive ping at a time: the next waits for its pong.
                event, sent = keepalive
                if event.is_set() or self.ping_timeout is None:
                    self._keepalive = None
                elif now >= sent + self.ping_timeout:
                    self._keepalive = None
                    self._keepalive_failed()
                    return 0.0
                else:
                    due = sent + self.ping_timeout
            if self._keepalive is None and self._next_ping is not None and self.ping_interval is not None:
                if now >= self._next_ping:
                    self._next_ping = now + self.ping_interval
                    try:
                        self._keepalive = (self._send_ping(None, False), now)
                    except ConnectionClosed:
                        return 0.0
                    if self.ping_timeout is not None:
                        due = now + self.ping_timeout
                due = self._next_ping if due is None else min(due, self._next_ping)
        return None if due is None else max(due - now, 0.0)

    def _keepalive_failed(self) -> None:
        self.logger.info("keepalive ping timed out after %s s; failing the connection", self.ping_timeout)
        self._connection_exc = TimeoutError("keepalive ping timeout")
        with self._lock:
            if self.protocol.state is OPEN:
                self.protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
            self._flush_locked()


def _cap(timeout: Optional[float]) -> float:
    """A bounded wait, for a reader lock held by a thread that is not in recv()."""
    return IDLE_TAKEOVER if timeout is None else min(timeout, IDLE_TAKEOVER)

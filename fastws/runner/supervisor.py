"""The runner's parent process: it starts the workers, starts again those that
die, hands them connections in the parent-accept mode, and stops them all."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import socket
import sys
import time
from multiprocessing.process import BaseProcess
from typing import List, Optional

from .common import (
    BACKOFF_MAX,
    ERROR,
    EXIT_CONFIG,
    MAX_QUICK_DEATHS,
    QUICK_DEATH,
    READY,
    SOCKET,
    WorkerConfig,
    addresses,
)
from .worker import worker_main

__all__ = ["Supervisor"]

logger = logging.getLogger("fastws.runner")

ACCEPT_BATCH = 64  # connections accepted per wake-up in the parent-accept mode
ACCEPT_PAUSE = 1.0  # seconds without accepting after accept() fails (EMFILE...)
KILL_WAIT = 5.0  # seconds to wait for killed workers to be reaped


def describe_exit(status: Optional[int]) -> str:
    """``"exit status 1"`` or ``"killed by SIGKILL"``, from a process's exitcode."""
    if status is None:
        return "still running"
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


class _Slot:
    """One of the N workers: the process that runs it now, if any."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: Optional[BaseProcess] = None
        self.channel: Optional[socket.socket] = None  # the parent's end
        self.received = b""  # from the worker, past READY
        self.started = 0.0
        self.ready = False
        self.quick_deaths = 0  # in a row
        self.restart: Optional[asyncio.TimerHandle] = None


class Supervisor:
    """Runs the workers until a signal or a failure; :meth:`run` returns the
    exit status.

    Args:
        config: What each worker runs (its ``port`` is the one bound).
        workers: How many.
        sockets: In the reuse-port mode, the sockets that reserve the port;
            otherwise the listening sockets the parent accepts on. Closed at
            the end.
        shutdown_timeout: Seconds the workers get to exit after SIGTERM.
    """

    def __init__(
        self,
        config: WorkerConfig,
        workers: int,
        sockets: List[socket.socket],
        shutdown_timeout: float,
    ) -> None:
        self.config = config
        self.sockets = sockets
        self.shutdown_timeout = shutdown_timeout
        self.slots = [_Slot(index) for index in range(1, workers + 1)]
        self.context = multiprocessing.get_context("spawn")
        self.ready: List[_Slot] = []  # the workers that take connections
        self.next = 0  # the next of them in turn
        self.accepting = False
        self.paused = False
        self.announced = False
        self.stopping = False

    async def run(self) -> int:
        loop = self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[int] = loop.create_future()
        self.gone: asyncio.Future[None] = loop.create_future()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal, signum)
        try:
            for slot in self.slots:
                self._start(slot)
            status = await self.done
            return max(status, await self._shutdown())
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            for slot in self.slots:  # only after a failure of the runner itself
                if slot.process is not None and slot.process.exitcode is None:
                    slot.process.kill()
                    slot.process.join()
            for sock in self.sockets:
                sock.close()

    # --- workers ----------------------------------------------------------------

    def _start(self, slot: _Slot) -> None:
        slot.restart = None
        if self.stopping:
            return
        parent_end, child_end = socket.socketpair()
        process = self.context.Process(
            target=worker_main,
            args=(slot.index, self.config, child_end),
            name=f"fastws-worker-{slot.index}",
        )
        try:
            process.start()
        except Exception as exc:
            parent_end.close()
            print(f"fastws run: cannot start worker {slot.index}: {exc}", file=sys.stderr, flush=True)
            self._finish(1)
            return
        finally:
            child_end.close()
        parent_end.setblocking(False)
        slot.process, slot.channel = process, parent_end
        slot.received, slot.ready, slot.started = b"", False, time.monotonic()
        self.loop.add_reader(parent_end.fileno(), self._on_channel, slot)
        self.loop.add_reader(process.sentinel, self._on_exit, slot)

    def _on_channel(self, slot: _Slot) -> None:
        assert slot.channel is not None
        try:
            data = slot.channel.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the worker is exiting: its sentinel will say so
            self.loop.remove_reader(slot.channel.fileno())
            return
        self._received(slot, data)

    def _received(self, slot: _Slot, data: bytes) -> None:
        if not slot.ready and not slot.received and data.startswith(READY):
            slot.ready = True
            data = data[len(READY):]
            self.ready.append(slot)
            self._update_accepting()
            if not self.announced and all(s.ready for s in self.slots):
                self.announced = True
                print(f"listening on {addresses(self.sockets)}", flush=True)
        slot.received += data

    def _drain(self, slot: _Slot) -> None:
        """Read what the worker sent before it exited."""
        assert slot.channel is not None
        while True:
            try:
                data = slot.channel.recv(4096)
            except OSError:
                return
            if not data:
                return
            self._received(slot, data)

    def _on_exit(self, slot: _Slot) -> None:
        process, channel = slot.process, slot.channel
        assert process is not None and channel is not None
        self.loop.remove_reader(process.sentinel)
        process.join()  # it has exited: this reaps it
        self.loop.remove_reader(channel.fileno())
        self._drain(slot)
        channel.close()
        slot.process = slot.channel = None
        if slot in self.ready:
            self.ready.remove(slot)
            self._update_accepting()
        status = process.exitcode
        how = describe_exit(status)
        if self.stopping:
            if status != 0:
                logger.warning("worker %d (pid %s) stopped: %s", slot.index, process.pid, how)
            if all(s.process is None for s in self.slots) and not self.gone.done():
                self.gone.set_result(None)
            return
        if self.done.done():
            return  # the runner is stopping for another worker's reason: one is enough
        if slot.received.startswith(ERROR) or status == EXIT_CONFIG:
            message = slot.received[len(ERROR):].decode("utf-8", "replace")
            if not message:
                message = f"worker {slot.index} could not start ({how})"
            print(f"fastws run: {message}", file=sys.stderr, flush=True)
            self._finish(1)
            return
        lifetime = time.monotonic() - slot.started
        quick = not slot.ready or lifetime < QUICK_DEATH
        slot.quick_deaths = slot.quick_deaths + 1 if quick else 0
        if slot.quick_deaths >= MAX_QUICK_DEATHS:
            print(
                f"fastws run: worker {slot.index} died {slot.quick_deaths} times in a row"
                f" within {QUICK_DEATH:g} s of its start (the last time: {how}); giving up",
                file=sys.stderr,
                flush=True,
            )
            self._finish(1)
            return
        delay = min(BACKOFF_MAX, 0.1 * 2 ** (slot.quick_deaths - 1)) if quick else 0.0
        logger.warning(
            "worker %d (pid %s) died (%s) after %.1f s; starting it again%s",
            slot.index,
            process.pid,
            how,
            lifetime,
            f" in {delay:.1f} s" if delay else "",
        )
        slot.restart = self.loop.call_later(delay, self._start, slot)

    # --- the parent-accept mode --------------------------------------------------

    def _update_accepting(self) -> None:
        if self.config.reuse_port:
            return
        accepting = bool(self.ready) and not self.stopping and not self.paused
        if accepting == self.accepting:
            return
        self.accepting = accepting
        for sock in self.sockets:
            if accepting:
                self.loop.add_reader(sock.fileno(), self._accept, sock)
            else:
                self.loop.remove_reader(sock.fileno())

    def _resume(self) -> None:
        self.paused = False
        self._update_accepting()

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                connection, _ = sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:  # out of file descriptors, memory...
                logger.warning("cannot accept connections for %g s: %s", ACCEPT_PAUSE, exc)
                self.paused = True
                self._update_accepting()
                self.loop.call_later(ACCEPT_PAUSE, self._resume)
                return
            with connection:  # the worker has its own copy
                self._hand_over(connection)

    def _hand_over(self, connection: socket.socket) -> None:
        """Send ``connection`` to the next worker in turn that takes it."""
        for _ in range(len(self.ready)):
            self.next %= len(self.ready)
            slot = self.ready[self.next]
            self.next += 1
            assert slot.channel is not None
            try:
                socket.send_fds(slot.channel, [SOCKET], [connection.fileno()])
                return
            except OSError:  # its buffer is full, or it is exiting: the next one
                continue
        logger.warning("no worker could take a connection: closed it")

    # --- stopping -----------------------------------------------------------------

    def _on_signal(self, signum: int) -> None:
        if not self.done.done():
            print(
                f"received {signal.Signals(signum).name}, stopping the workers",
                file=sys.stderr,
                flush=True,
            )
        self._finish(0)

    def _finish(self, status: int) -> None:
        if not self.done.done():
            self.done.set_result(status)

    async def _shutdown(self) -> int:
        """Stop every worker; 0 if all exited within the timeout, 1 otherwise."""
        self.stopping = True
        self._update_accepting()
        if not self.config.reuse_port:
            for sock in self.sockets:  # refuse new connections now
                sock.close()
        for slot in self.slots:
            if slot.restart is not None:
                slot.restart.cancel()
                slot.restart = None
            if slot.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.terminate()
        if all(s.process is None for s in self.slots):
            return 0
        try:
            await asyncio.wait_for(asyncio.shield(self.gone), self.shutdown_timeout)
        except asyncio.TimeoutError:
            pass
        else:
            return 0
        for slot in self.slots:
            if slot.process is not None:
                print(
                    f"fastws run: worker {slot.index} (pid {slot.process.pid}) still running"
                    f" {self.shutdown_timeout:g} s after SIGTERM: killing it",
                    file=sys.stderr,
                    flush=True,
                )
                with contextlib.suppress(ProcessLookupError):
                    slot.process.kill()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.gone), KILL_WAIT)
        return 1

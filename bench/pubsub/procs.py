"""What Linux's /proc says about the processes of a benchmark: CPU time,
children, and which process holds the connections to a port."""

from __future__ import annotations

import os
from typing import Dict, Iterable, List, Optional, Set, Tuple

from bench.echo.clients import cpu_seconds

__all__ = ["children", "connections_by_pid", "cpu_seconds", "cpu_total", "peers_by_pid", "system_share"]


def children(pid: int) -> List[int]:
    """The child processes of ``pid`` (all its threads'), [] where /proc cannot tell."""
    out: List[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(c) for c in f.read().split())
    except (OSError, ValueError):
        return []
    return out


def cpu_total(pids: Iterable[int]) -> Optional[float]:
    """CPU seconds (user + system) used so far by all of ``pids``; None if any is unknown."""
    total = 0.0
    for pid in pids:
        value = cpu_seconds(pid)
        if value is None:
            return None
        total += value
    return total


def system_share(pids: Iterable[int]) -> Optional[Tuple[float, float]]:
    """(user, system) CPU seconds used so far by all of ``pids`` (clock ticks
    from /proc/PID/stat: coarse, for the split of a measure of seconds); None
    where /proc cannot tell."""
    user = system = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            return None
        user += int(fields[11]) / tick
        system += int(fields[12]) / tick
    return user, system


def _socket_inodes(pid: int) -> Set[str]:
    inodes: Set[str] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def peers_by_pid(pids: Iterable[int], port: int) -> Dict[int, List[int]]:
    """For each of ``pids``: the remote ports of the established TCP connections
    to local port ``port`` that it holds (from /proc/net/tcp and the processes'
    file descriptors)."""
    established: Dict[str, int] = {}  # inode -> remote port
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
                    if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                        established[inode] = int(remote.rsplit(":", 1)[1], 16)
        except OSError:
            continue
    return {
        pid: sorted(established[i] for i in _socket_inodes(pid) if i in established) for pid in pids
    }


def connections_by_pid(pids: Iterable[int], port: int) -> Dict[int, int]:
    """For each of ``pids``: how many established TCP connections to local port ``port`` it holds."""
    return {pid: len(peers) for pid, peers in peers_by_pid(pids, port).items()}

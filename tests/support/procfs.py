"""What the kernel knows about a server's processes and sockets, read from ``/proc`` (Linux).

Tests use it to see which worker process holds which connection without adding anything to
the server's responses: a worker's sockets are the ``socket:[inode]`` links in
``/proc/<pid>/fd``, and ``/proc/net/tcp{,6}`` gives each inode's addresses and state.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
ESTABLISHED = "01"
LISTEN = "0A"


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid``, in ascending order."""
    found = []
    for stat in PROC.glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return sorted(found)


@dataclass(frozen=True)
class TcpSocket:
    inode: int
    local_port: int
    remote_port: int
    state: str


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1], 16)  # "0100007F:1F90": hex address, hex port


def tcp_sockets() -> list[TcpSocket]:
    out = []
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in (PROC / "net" / table).read_text().splitlines()[1:]:
                fields = line.split()
                local, remote, state, inode = (
                    _port(fields[1]),
                    _port(fields[2]),
                    fields[3],
                    fields[9],
                )
                out.append(TcpSocket(int(inode), local, remote, state))
    return out


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in (PROC / str(pid) / "fd").iterdir():
            with contextlib.suppress(OSError):
                target = fd.readlink().as_posix()
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def holds_sockets(pid: int) -> bool:
    """Whether ``pid`` still has a socket open (a killed process loses them as it exits)."""
    return bool(_socket_inodes(pid))


def listeners(port: int) -> int:
    """How many sockets listen on ``port`` (one per serving worker)."""
    return sum(1 for s in tcp_sockets() if s.local_port == port and s.state == LISTEN)


def client_ports_by_pid(pids: list[int], port: int) -> dict[int, set[int]]:
    """For each pid, the client-side ports of the established connections to ``port`` that
    it holds (connections a process has not accepted yet belong to nobody)."""
    served = {
        s.inode: s.remote_port
        for s in tcp_sockets()
        if s.local_port == port and s.state == ESTABLISHED
    }
    return {pid: {served[i] for i in _socket_inodes(pid) if i in served} for pid in pids}


def wait_for(check: Callable[[], bool], *, timeout: float, what: str) -> float:
    """Poll ``check`` until it returns true; the seconds it took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - started

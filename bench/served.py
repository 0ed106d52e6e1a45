"""A token server under test, seen only from outside: a command, its process tree, its log.

Shared by ``bench_peers.py`` and ``bench_scale.py``. A server is ready when ``POST /token`` with
the bench's own credentials first answers 200 (the real thing, whatever health endpoints the
server has); the time from starting the process to that answer is its start-up time. Memory
is read per process from /proc (RSS, and PSS, which splits pages the forked workers share).
The log is scanned for errors and failed requests after each run and then truncated, so that
a long soak does not fill the disk with audit lines (the child writes with ``O_APPEND``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from bench_token import BenchError, Reaper, process_tree


@dataclass(frozen=True)
class TokenRequest:
    """The request the load generator sends: ``POST url`` with Basic credentials and a form."""

    url: str
    basic: str  # base64(client_id:client_secret)
    body: str

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Basic {self.basic}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }

    def send(self, http: httpx.Client) -> httpx.Response:
        return http.post(self.url, content=self.body, headers=self.headers)


@dataclass(frozen=True)
class Memory:
    """Resident memory of a process tree, in bytes, summed over its processes."""

    rss: int
    pss: int
    processes: int

    @property
    def rss_mib(self) -> float:
        return self.rss / 2**20

    @property
    def pss_mib(self) -> float:
        return self.pss / 2**20


def _status_kib(pid: int, name: str) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return 0


def _pss_kib(pid: int) -> int:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def memory_of(pids: set[int]) -> Memory:
    rss = pss = count = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            rss += _status_kib(pid, "VmRSS")
            pss += _pss_kib(pid)
            count += 1
    return Memory(rss * 1024, pss * 1024, count)


@dataclass
class LogScan:
    """What a server wrote since the last scan: error lines, failed requests, the last lines."""

    lines: int = 0
    errors: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    tail: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.errors and not self.failures

    def summary(self) -> str:
        reasons = ", ".join(f"{k} x{v}" for k, v in self.failures.most_common(5)) or "none"
        return f"{self.errors} error lines; failed requests: {reasons}"


_ERROR_MARKS = ('"level":"error"', '"level": "error"', "Traceback", "ERROR:", "Error:")


def scan_log(path: Path, *, truncate: bool) -> LogScan:
    """Count error lines and failed-request audit events (tokenward's JSON log) in ``path``."""
    scan = LogScan()
    try:
        handle = path.open(errors="replace")
    except OSError:
        return scan
    with handle:
        for line in handle:
            scan.lines += 1
            if any(mark in line for mark in _ERROR_MARKS):
                scan.errors += 1
                scan.tail.append(line.rstrip())
            if '"outcome":"failure"' in line:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    event = json.loads(line)["audit"]
                    scan.failures[f"{event['error']}: {event.get('reason')}"] += 1
    scan.tail = scan.tail[-10:]
    if truncate:
        with contextlib.suppress(OSError):
            os.truncate(path, 0)
    return scan


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class Served:
    """One server process group: started at once, ready after its first 200 on /token."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        cpus: str | None,
        log_path: Path,
        reaper: Reaper,
        request: TokenRequest,
        workers: int,
    ) -> None:
        self.name = name
        self.request = request
        self.workers = workers
        self.log_path = log_path
        self.reaper = reaper
        full = ["taskset", "-c", cpus, *command] if cpus is not None else list(command)
        self.command = full
        with log_path.open("ab") as log:
            self.started = time.monotonic()
            self.proc = subprocess.Popen(
                full,
                env=dict(env),
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        reaper.add_group(self.proc)
        self.startup_seconds = 0.0

    def wait_ready(self, timeout: float = 300.0) -> float:
        """Poll ``POST /token`` until a 200; return the start-up time in seconds.

        With several worker processes the first 200 comes from the first worker to listen;
        afterwards wait (bounded) until the process tree has at least ``workers`` processes
        and has stopped growing, so the load does not start on half a server.
        """
        deadline = self.started + timeout
        last = ""
        with httpx.Client(timeout=5.0) as http:
            while True:
                if self.proc.poll() is not None:
                    raise BenchError(f"{self.name} exited:\n{log_tail(self.log_path)}")
                try:
                    response = self.request.send(http)
                    if response.status_code == 200:
                        break
                    last = f"HTTP {response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    last = type(exc).__name__
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"{self.name} gave no 200 on /token in {timeout:g} s (last: {last}):\n"
                        f"{log_tail(self.log_path)}"
                    )
                time.sleep(0.02)
        self.startup_seconds = time.monotonic() - self.started
        self._wait_for_workers()
        return self.startup_seconds

    def _wait_for_workers(self, limit: float = 60.0) -> None:
        deadline = time.monotonic() + limit
        seen, stable_since = 0, time.monotonic()
        while time.monotonic() < deadline:
            count = len(self.pids())
            if count != seen:
                seen, stable_since = count, time.monotonic()
            elif count >= self.workers and time.monotonic() - stable_since >= 1.0:
                return
            time.sleep(0.1)

    def pids(self) -> set[int]:
        return process_tree(self.proc.pid)

    def memory(self) -> Memory:
        return memory_of(self.pids())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def scan_log(self) -> LogScan:
        return scan_log(self.log_path, truncate=True)

    def stop(self) -> None:
        self.reaper.stop_group(self.proc)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def spread(values: Sequence[float]) -> float:
    """(best - worst) / best: 0.10 means the worst run was 10 % below the best."""
    return (max(values) - min(values)) / max(values) if values and max(values) > 0 else 0.0


def ensure_tools(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (Debian: apt-get install {tool})")


def child_environ(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without TOKENWARD_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENWARD_")}
    env.update(extra)
    return env

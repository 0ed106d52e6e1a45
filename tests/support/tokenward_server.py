"""Start a real ``tokenward serve`` process on loopback, and run the real CLI against it.

The server and the CLI share one environment: a temporary directory holding the SQLite
database (or a PostgreSQL URL) and the development secrets file.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.live import free_port
from tests.support.procfs import children, listeners, wait_for


@dataclass
class TokenwardEnv:
    """The settings a test's server and CLI share."""

    home: Path
    database_url: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)

    @property
    def issuer(self) -> str:
        return self.extra.get("TOKENWARD_ISSUER", f"http://127.0.0.1:{self.port}")

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENWARD_")}
        env.update(
            {
                "TOKENWARD_HOME": str(self.home),
                "TOKENWARD_DATABASE_URL": self.database_url or f"sqlite:///{self.home}/tw.db",
                "TOKENWARD_ISSUER": self.issuer,
                "TOKENWARD_SECRETS_FILE": str(self.home / "secrets.json"),
                "TOKENWARD_CACHE_REFRESH_SECONDS": "0.5",
                # A client created by one process is used by the next request: the server's
                # single-row read after the failed authentication must not give up at the
                # production bound (0.25 s) on a test machine loaded beyond its cores (seen
                # once: tests/e2e/test_first_hour.py, 401 in the two-process suite).
                "TOKENWARD_AUTH_FAILURE_LOOKUP_TIMEOUT": "2",
                "TOKENWARD_LOG_FORMAT": "json",
            }
        )
        env.update(self.extra)
        return env

    def cli(
        self,
        *args: str,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``tokenward ARGS`` as a user would (``env``: extra variables; ``cwd``: another
        working directory than the home)."""
        proc = subprocess.run(
            [sys.executable, "-m", "tokenward", *args],
            env={**self.environ(), **(env or {})},
            cwd=cwd or self.home,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"tokenward {' '.join(args)} failed: {proc.stderr}")
        return proc

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)


class LoggedProcess:
    """A server subprocess in its own session, output in a log file, ready when a URL answers."""

    def __init__(
        self,
        argv: list[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
        url: str,
        ready_path: str,
        name: str,
    ) -> None:
        self.url = url
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(
            argv,
            env=dict(env),
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_ready(ready_path)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, ready_path: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}{ready_path}", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not become ready:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


class ServerProcess(LoggedProcess):
    """``tokenward serve`` on the environment's port; started once ``ready_path`` answers 200
    (``/livez`` for a server that cannot be ready yet, its database being down)."""

    def __init__(self, env: TokenwardEnv, *, workers: int = 1, ready_path: str = "/readyz") -> None:
        self.env = env
        super().__init__(
            [
                sys.executable,
                "-m",
                "tokenward",
                "serve",
                "--port",
                str(env.port),
                "--workers",
                str(workers),
            ],
            env=env.environ(),
            cwd=env.home,
            log_path=env.home / f"server-{env.port}.log",
            url=f"http://127.0.0.1:{env.port}",
            ready_path=ready_path,
            name="tokenward serve",
        )
        self.workers = workers
        try:
            # Ready once every worker listens: one answering is not enough for tests that
            # count on the kernel spreading connections over all of them.
            wait_for(lambda: listeners(env.port) >= workers, timeout=30, what="all workers")
        except BaseException:
            self.stop()
            raise

    def worker_pids(self) -> list[int]:
        """The worker processes (``--workers 1``: the server process itself)."""
        return children(self.proc.pid) if self.workers > 1 else [self.proc.pid]


@contextlib.contextmanager
def tokenward_server(
    env: TokenwardEnv, *, workers: int = 1, extra: Mapping[str, str] | None = None
) -> Iterator[ServerProcess]:
    if extra:
        env.extra.update(extra)
    server = ServerProcess(env, workers=workers)
    try:
        yield server
    finally:
        server.stop()

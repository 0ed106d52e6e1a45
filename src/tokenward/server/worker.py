"""One worker process of ``tokenward serve``: its own listening socket and a ``uvicorn.Server``
(uvloop, httptools) running the app.

**Its own socket.** Every worker binds the same address with ``SO_REUSEPORT``, so the kernel
keeps one accept queue per worker and hands each new connection to one of them by a hash of its
address and port: connections spread evenly whatever their number. With one shared socket
(uvicorn's ``--workers``) whichever worker wakes first takes the connection; 64 keep-alive
connections were seen split 5 / 69 over two workers, halving throughput.

**Stopping.** On SIGTERM uvicorn closes the listening socket at once (new connections are
refused, not queued where nobody will answer them), closes idle keep-alive connections, lets
in-flight requests finish for up to ``shutdown_drain_seconds``, cancels what is left, then runs
the app's lifespan shutdown: the runtime flushes the audit buffer and the "last used" stamps.
A supervised worker ignores SIGINT (Ctrl-C reaches the whole process group; the supervisor
decides and sends SIGTERM) and stops by itself when its supervisor disappears.

:func:`uvicorn_config` is the one place the uvicorn configuration is built.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
from collections.abc import Iterator
from types import FrameType
from typing import Any

import uvicorn
import uvloop

from tokenward.server.app import wrap
from tokenward.server.composition import build_server
from tokenward.server.events import configure_logging
from tokenward.server.secrets import ServerSecrets
from tokenward.server.settings import Settings

__all__ = ["WorkerServer", "bind_socket", "check_address", "run_worker", "uvicorn_config"]

log = logging.getLogger("tokenward.worker")

#: How often a supervised worker checks that its supervisor is still there.
PARENT_CHECK_SECONDS = 1.0


def uvicorn_config(app: Any, settings: Settings, *, host: str, port: int) -> uvicorn.Config:
    """The uvicorn configuration of every worker (the one place it is built)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="tokenward.server.http.limits:LimitedHttpToolsProtocol",  # header limits
        proxy_headers=False,  # the app decides whom to trust (TOKENWARD_TRUSTED_PROXIES)
        lifespan="on",
        log_config=None,  # configure_logging: JSON lines, shared with tokenward's loggers
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
        limit_concurrency=settings.max_concurrent_connections,  # 503: http/limits.py
        timeout_graceful_shutdown=settings.shutdown_drain_seconds,
    )


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT``, not yet listening (uvicorn
    listens once the app has started, so no connection waits on a worker still starting)."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def check_address(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be served, or None. A plain bind (no ``SO_REUSEPORT``) fails
    when anything listens there already, another tokenward instance included: two instances
    must not share one port by accident."""
    if not hasattr(socket, "SO_REUSEPORT"):
        return "this platform has no SO_REUSEPORT (tokenward serve needs Linux or a BSD)"
    try:
        with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return f"port {port} on {host} is in use"
        return f"port {port} on {host} cannot be used: {exc.strerror}"
    return None


class WorkerServer(uvicorn.Server):
    """uvicorn's server with tokenward's signal handling: SIGTERM drains, and so does SIGINT
    when this process runs alone (supervised, SIGINT is left to the supervisor); a second
    signal exits at once."""

    def __init__(self, config: uvicorn.Config, *, supervised: bool) -> None:
        super().__init__(config)
        self.supervised = supervised

    @property
    def signals(self) -> tuple[signal.Signals, ...]:
        return (signal.SIGTERM,) if self.supervised else (signal.SIGTERM, signal.SIGINT)

    def install_signal_handlers(self) -> None:
        """From the moment the process starts, so a stop requested during start-up counts."""
        if self.supervised:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        for sig in self.signals:
            signal.signal(sig, self.handle_exit)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn's version re-raises the signal after a graceful stop, so the process would
        # die by it; a drained worker exits 0 instead.
        self.install_signal_handlers()
        yield

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """The first stop signal drains; a second one (SIGTERM or SIGINT) exits at once."""
        if self.should_exit:
            self.force_exit = True
            return
        log.info("draining: stopped accepting connections", extra={"pid": os.getpid()})
        self.should_exit = True


async def _watch_parent(server: WorkerServer, parent: int) -> None:
    """Stop (draining) when the supervisor is gone: a worker is never left orphaned."""
    while not server.should_exit:
        await asyncio.sleep(PARENT_CHECK_SECONDS)
        if os.getppid() != parent:
            log.warning("supervisor gone: stopping")
            server.should_exit = True


async def _serve(server: WorkerServer, sock: socket.socket) -> None:
    watch = None
    if server.supervised:
        watch = asyncio.create_task(_watch_parent(server, os.getppid()), name="tw parent")
    try:
        await server.serve(sockets=[sock])
    finally:
        if watch is not None:
            watch.cancel()


def run_worker(
    settings: Settings, server_secrets: ServerSecrets, *, host: str, port: int, supervised: bool
) -> None:
    """Serve until SIGTERM (or SIGINT when not supervised), then drain and return."""
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    sock = bind_socket(host, port)
    app = wrap(build_server(settings, server_secrets=server_secrets, freeze_heap=True))
    server = WorkerServer(
        uvicorn_config(app, settings, host=host, port=port), supervised=supervised
    )
    server.install_signal_handlers()
    with sock, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(server, sock))

"""The supervisor of ``tokenward serve --workers N``: starts N worker processes, restarts any
that dies, and stops them all gracefully on SIGTERM or SIGINT.

* **Workers are forked** from the supervisor once it has checked the settings, upgraded the
  schema and made the first key, so a replacement starts in well under a second (it imports
  nothing; spawning a fresh interpreter costs seconds of imports on a busy 2-core machine).
  The supervisor runs no event loop and no thread, so forking it is safe.
* **A worker that dies is restarted**: at once when it had run for ``STABLE_SECONDS``,
  otherwise after a delay doubling from ``RESTART_DELAY_FIRST`` up to ``RESTART_DELAY_MAX``.
  The supervisor never gives up on a worker whose replacement fails, and never stops healthy
  workers because one failed: an instance stops only when it is told to.
* **Stopping**: the first SIGTERM or SIGINT sends SIGTERM to every worker (each drains for up
  to ``shutdown_drain_seconds``, then flushes); workers still running ``stop_grace`` seconds
  later are killed. A second signal kills them at once.

The supervisor sleeps in ``multiprocessing.connection.wait`` on the workers' sentinels and a
self-pipe that ``signal.set_wakeup_fd`` writes to, so a signal or a worker's death wakes it at
once; it holds no listening socket (each worker binds its own, see ``worker.py``).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

__all__ = ["RESTART_DELAY_FIRST", "RESTART_DELAY_MAX", "STABLE_SECONDS", "Supervisor"]

log = logging.getLogger("tokenward.supervisor")

#: A worker that ran this long before dying is restarted at once.
STABLE_SECONDS = 10.0
#: Delay before restarting a worker that died young; doubles per quick death, up to the max.
RESTART_DELAY_FIRST = 0.1
RESTART_DELAY_MAX = 10.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: How long to wait for a killed worker to be gone.
KILL_WAIT_SECONDS = 5.0


@dataclass
class Slot:
    """One worker position: its current process and its restart bookkeeping."""

    index: int
    process: BaseProcess | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    restart_at: float | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.exitcode is None


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


class Supervisor:
    """Runs ``target`` in ``workers`` forked processes until told to stop."""

    def __init__(self, target: Callable[[], None], *, workers: int, stop_grace: float) -> None:
        self._target = target
        self._slots = [Slot(index) for index in range(workers)]
        self._stop_grace = stop_grace
        self._context = multiprocessing.get_context("fork")
        self._signals = 0
        self._wake_r = self._wake_w = -1

    def run(self) -> int:
        """Supervise until a stop signal, then stop every worker; returns the exit status."""
        with self._signal_pipe():
            for slot in self._slots:
                self._start(slot)
            while not self._signals:
                self._sleep(self._next_deadline())
                self._reap(restart=True)
                self._restart_due()
            self._stop_all()
        return 0

    # -- signals ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _signal_pipe(self) -> Iterator[None]:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        previous_fd = signal.set_wakeup_fd(self._wake_w)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous_fd)
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            self._kill_all()

    def _child_reset(self) -> None:
        """In a new worker, before anything else: the supervisor's signal plumbing is not its."""
        signal.set_wakeup_fd(-1)
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        os.close(self._wake_r)
        os.close(self._wake_w)

    # -- workers ---------------------------------------------------------------------------------

    def _start(self, slot: Slot) -> None:
        def main() -> None:
            self._child_reset()
            self._target()

        process = self._context.Process(target=main, name=f"tokenward worker {slot.index}")
        process.start()
        slot.process, slot.started_at, slot.restart_at = process, time.monotonic(), None
        log.info("worker %d started (pid %d)", slot.index, process.pid, extra={"pid": process.pid})

    def _reap(self, *, restart: bool) -> None:
        for slot in self._slots:
            process = slot.process
            if process is None or process.exitcode is None:
                continue
            process.join()
            slot.process = None
            if restart:
                self._schedule_restart(slot, process)

    def _schedule_restart(self, slot: Slot, process: BaseProcess) -> None:
        lived = time.monotonic() - slot.started_at
        slot.quick_deaths = 0 if lived >= STABLE_SECONDS else slot.quick_deaths + 1
        delay = 0.0
        if slot.quick_deaths:
            delay = min(RESTART_DELAY_FIRST * 2 ** (slot.quick_deaths - 1), RESTART_DELAY_MAX)
        slot.restart_at = time.monotonic() + delay
        log.warning(
            "worker %d (pid %d) stopped (%s) after %.1f s; restarting in %.1f s",
            slot.index,
            process.pid,
            _exit_text(process.exitcode),
            lived,
            delay,
            extra={"pid": process.pid},
        )

    def _restart_due(self) -> None:
        now = time.monotonic()
        for slot in self._slots:
            if slot.process is None and slot.restart_at is not None and slot.restart_at <= now:
                self._start(slot)

    def _next_deadline(self) -> float | None:
        due = [s.restart_at for s in self._slots if s.process is None and s.restart_at]
        return min(due) if due else None

    def _sleep(self, deadline: float | None) -> None:
        """Until a worker exits, a signal arrives, or ``deadline`` (monotonic) passes."""
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        # Every process not yet reaped, dead or alive: one that died since the last look has
        # a readable sentinel, so this returns at once instead of missing its death.
        sentinels = [s.process.sentinel for s in self._slots if s.process is not None]
        wait([self._wake_r, *sentinels], timeout)
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 512):
                pass

    # -- stopping --------------------------------------------------------------------------------

    def _stop_all(self) -> None:
        running = [s.process for s in self._slots if s.alive and s.process]
        log.warning("stopping %d worker(s): draining", len(running))
        for process in running:
            self._signal(process, signal.SIGTERM)
        deadline = time.monotonic() + self._stop_grace
        while any(s.process for s in self._slots) and time.monotonic() < deadline:
            self._sleep(deadline)
            self._reap(restart=False)
        self._kill_all()
        for slot in self._slots:
            if slot.process is not None:
                slot.process.join(KILL_WAIT_SECONDS)
        log.warning("stopped")

    def _kill_all(self) -> None:
        """SIGKILL every worker not yet reaped (safe in a signal handler: no waitpid here)."""
        for slot in self._slots:
            if slot.process is not None:
                self._signal(slot.process, signal.SIGKILL)

    @staticmethod
    def _signal(process: BaseProcess, sig: signal.Signals) -> None:
        if process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, sig)

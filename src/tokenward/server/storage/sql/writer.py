"""The token path's write transactions, each run whole on a thread of their own.

Through the async engine one transaction is a dozen hand-offs between the event loop and the
driver (aiosqlite runs every call on its thread; psycopg's round trips wake the loop), and
each hand-off is a wake-up of a loop that is busy with requests. So the group commit
(``group_commit.py``) writes through a :class:`WriterThread`: one thread with a synchronous
engine on the same database, which runs a whole transaction per hand-off. With 32 concurrent
writers a used ``jti`` costs the process 47-53 µs of CPU on SQLite this way, against 89-90 µs
through the async engine with the former 2 ms batch delay (``bench/bench_group_commit.py``,
docs/consistency.md).

The async engine stays for everything else (reads, admin writes, the audit trail).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeAlias, TypeVar

import sqlalchemy as sa

__all__ = ["WriterThread"]

T = TypeVar("T")

#: A transaction to run: the loop and future to answer, and the work (None: stop the thread).
_Job: TypeAlias = tuple[
    asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[[sa.Connection], Any] | None
]


class WriterThread:
    """Runs ``work(connection)`` in one transaction on its own thread; the engine and the
    thread start at the first transaction (after a worker forked, never before).

    The thread is a daemon and :meth:`close` waits for it a bounded time: a transaction stuck
    on an unreachable database can delay neither a graceful stop nor the process's exit."""

    def __init__(
        self,
        url: str,
        *,
        configure: Callable[[sa.Engine], None] | None = None,
        close_wait: float = 5.0,
        **options: Any,
    ) -> None:
        self._url = url  # a synchronous driver's
        self._close_wait = close_wait
        self._configure = configure
        self._options = options
        self._jobs: queue.SimpleQueue[_Job] | None = None

    async def transaction(self, work: Callable[[sa.Connection], T]) -> T:
        """The result of ``work``, once its transaction committed; its error otherwise."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._started().put((loop, future, work))
        return await future

    def _started(self) -> queue.SimpleQueue[_Job]:
        if self._jobs is None:
            engine = sa.create_engine(self._url, **self._options)
            if self._configure is not None:
                self._configure(engine)
            self._jobs = queue.SimpleQueue()
            threading.Thread(
                target=_serve, args=(engine, self._jobs), name="tokenward-writes", daemon=True
            ).start()
        return self._jobs

    async def close(self) -> None:
        """Stop the thread after the transactions already handed to it, and close the
        engine's connections; wait for that at most ``close_wait`` seconds."""
        jobs, self._jobs = self._jobs, None
        if jobs is None:
            return
        loop = asyncio.get_running_loop()
        stopped: asyncio.Future[None] = loop.create_future()
        jobs.put((loop, stopped, None))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopped, self._close_wait)


def _serve(engine: sa.Engine, jobs: queue.SimpleQueue[_Job]) -> None:
    """The thread: one transaction per job, in order, until the stop job."""
    while True:
        loop, future, work = jobs.get()
        if work is None:
            engine.dispose()
            _answer(loop, future, None, None)
            return
        try:
            with engine.begin() as conn:
                result = work(conn)
        except Exception as exc:
            _answer(loop, future, None, exc)
        else:
            _answer(loop, future, result, None)


def _answer(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    result: object,
    error: Exception | None,
) -> None:
    with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
        loop.call_soon_threadsafe(_settle, future, result, error)


def _settle(future: asyncio.Future[Any], result: object, error: Exception | None) -> None:
    if future.done():  # cancelled: its caller went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)

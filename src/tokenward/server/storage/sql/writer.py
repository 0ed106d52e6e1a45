"""The token path's write transactions, each run whole on a thread of their own.

Through the async engine one transaction is a dozen hand-offs between the event loop and the
driver (aiosqlite runs every call on its thread; psycopg's round trips wake the loop), and
each hand-off is a wake-up of a loop that is busy with requests. So the group commit
(``group_commit.py``) writes through a :class:`WriterThread`: one thread with a synchronous
engine on the same database, which runs a whole transaction per hand-off. With 32 concurrent
writers a used ``jti`` costs the process 57-60 µs of CPU on SQLite this way, against 96-99 µs
through the async engine (``bench/bench_group_commit.py``, docs/consistency.md).

The async engine stays for everything else (reads, admin writes, the audit trail).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL

__all__ = ["WriterThread", "sync_driver"]

T = TypeVar("T")


def sync_driver(url: URL) -> URL:
    """The synchronous counterpart of an async driver URL (psycopg 3 is both)."""
    if url.drivername == "sqlite+aiosqlite":
        return url.set(drivername="sqlite")
    return url


class WriterThread:
    """Runs ``work(connection)`` in one transaction on its own thread; the engine and the
    thread start at the first transaction (after a worker forked, never before)."""

    def __init__(
        self, url: URL, *, configure: Callable[[sa.Engine], None] | None = None, **options: Any
    ) -> None:
        self._url = sync_driver(url)
        self._configure = configure
        self._options = options
        self._engine: sa.Engine | None = None
        self._thread: ThreadPoolExecutor | None = None

    async def transaction(self, work: Callable[[sa.Connection], T]) -> T:
        """The result of ``work``, once its transaction committed; its error otherwise."""
        if self._thread is None or self._engine is None:
            self._engine = sa.create_engine(self._url, **self._options)
            if self._configure is not None:
                self._configure(self._engine)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="tokenward-writes")
        engine = self._engine
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, _in_transaction, engine, work
        )

    async def close(self) -> None:
        """Close the engine's connections on the thread, after any transaction under way."""
        thread, engine = self._thread, self._engine
        self._thread = self._engine = None
        if thread is None or engine is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(thread, engine.dispose)
        finally:
            thread.shutdown(wait=False)


def _in_transaction(engine: sa.Engine, work: Callable[[sa.Connection], T]) -> T:
    with engine.begin() as conn:
        return work(conn)

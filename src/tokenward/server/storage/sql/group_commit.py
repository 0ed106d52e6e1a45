"""Group commit: the token path's writes from concurrent requests share one transaction.

private_key_jwt (one used ``jti`` per request) and opaque tokens (one row per token) are the
only writes on the token path. One transaction per request spent about a millisecond of CPU in
the async SQL stack, capping those requests below 1,000/s. Here each request hands its row to
a :class:`GroupCommit` and awaits its own future; one writer task per kind of row collects
what arrives for at most ``delay`` seconds (or until ``max_rows``), writes it in one
transaction, and resolves every future with that row's own outcome. Rows arriving while a
transaction is in flight form the next batch without further waiting, so the batch grows with
the load and an idle server adds at most ``delay`` to a request.

What each request is told is what was committed: its future resolves only after the commit
(an opaque token is stored before it is returned, so it is introspectable at once), and a
failed transaction fails every request of the batch (the callers answer 503, fail closed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

Row = TypeVar("Row")
Result = TypeVar("Result")


class GroupCommit(Generic[Row, Result]):
    """Rows of one kind, written together by ``write`` (which returns one result per row, in
    order, after its transaction committed)."""

    def __init__(
        self,
        write: Callable[[Sequence[Row]], Awaitable[Sequence[Result]]],
        *,
        delay: float,
        max_rows: int,
    ) -> None:
        self._write = write
        self._delay = delay
        self._max_rows = max_rows
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[tuple[Row, asyncio.Future[Result]]] = []
        self._full = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, row: Row) -> Result:
        """Queue ``row`` and wait until the transaction holding it committed."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (a CLI command, a test): start afresh
            self._loop, self._pending, self._full, self._writer = loop, [], asyncio.Event(), None
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((row, future))
        if len(self._pending) >= self._max_rows:
            self._full.set()
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._drain(), name="tokenward group commit")
        return await future

    async def _drain(self) -> None:
        if self._delay > 0 and len(self._pending) < self._max_rows:
            try:
                async with asyncio.timeout(self._delay):
                    await self._full.wait()
            except TimeoutError:
                pass
        while self._pending:
            batch = self._pending[: self._max_rows]
            del self._pending[: self._max_rows]
            self._full.clear()
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[Row, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._write([row for row, _ in batch])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

"""Group commit of the token path's writes (``storage/sql/group_commit.py``).

Concurrent submissions share transactions, each caller gets its own row's outcome only after
the commit, a failed transaction fails exactly its batch, and no batch exceeds ``max_rows``.
The replay store's bulk insert decides each ``jti`` once, within a batch and across batches,
on SQLite and PostgreSQL (races across real workers and instances: tests/e2e).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tokenward.server.storage.sql.group_commit import GroupCommit
from tokenward.server.storage.sql.repository import Repository

pytestmark = pytest.mark.anyio


class Recorder:
    def __init__(self, *, fail_batches: Sequence[int] = ()) -> None:
        self.batches: list[list[int]] = []
        self.committed: list[int] = []
        self._fail = set(fail_batches)

    async def write(self, rows: Sequence[int]) -> list[int]:
        self.batches.append(list(rows))
        await asyncio.sleep(0.001)  # the transaction's round trip
        if len(self.batches) - 1 in self._fail:
            raise OSError("database unreachable")
        self.committed.extend(rows)
        return [row * 10 for row in rows]


async def test_concurrent_rows_share_transactions_and_get_their_own_results() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.write, delay=0.005, max_rows=256)
    results = await asyncio.gather(*(group.submit(n) for n in range(100)))
    assert results == [n * 10 for n in range(100)]
    assert len(recorder.batches) < 10
    assert sorted(recorder.committed) == list(range(100))


async def test_a_result_arrives_only_after_its_commit() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.write, delay=0.0, max_rows=8)

    async def submit(n: int) -> None:
        await group.submit(n)
        assert n in recorder.committed

    await asyncio.gather(*(submit(n) for n in range(30)))


async def test_batches_never_exceed_max_rows() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.write, delay=0.05, max_rows=10)
    await asyncio.gather(*(group.submit(n) for n in range(35)))
    assert max(len(b) for b in recorder.batches) == 10
    assert sum(len(b) for b in recorder.batches) == 35


async def test_a_failed_transaction_fails_its_batch_only() -> None:
    recorder = Recorder(fail_batches=[0])
    group = GroupCommit(recorder.write, delay=0.01, max_rows=256)
    first = await asyncio.gather(*(group.submit(n) for n in range(5)), return_exceptions=True)
    assert all(isinstance(r, OSError) for r in first)
    assert await group.submit(7) == 70  # the next batch commits
    assert recorder.committed == [7]


def test_a_new_event_loop_starts_afresh() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.write, delay=0.001, max_rows=4)
    assert asyncio.run(group.submit(1)) == 10
    assert asyncio.run(group.submit(2)) == 20


async def test_each_jti_is_fresh_once_within_and_across_batches(repo: Repository) -> None:
    rows = [("c1", "j1", 9), ("c1", "j1", 9), ("c2", "j1", 9), ("c1", "j2", 9)]
    assert await repo.use_assertions(rows) == [True, False, True, True]
    assert await repo.use_assertions([("c1", "j2", 9), ("c1", "j3", 9)]) == [False, True]
    copies = await asyncio.gather(
        *(repo.use_assertion("c9", "jx", expires_at=9) for _ in range(30))
    )
    assert sorted(copies) == [False] * 29 + [True]

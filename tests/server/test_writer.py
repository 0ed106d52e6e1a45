"""The token path's write transactions on their own thread (``storage/sql/writer.py``).

A transaction runs whole off the event loop, is committed (visible to the async engine's
reads) when its caller resumes, rolls back entirely when it fails, and the thread and its
engine start only at the first transaction (never in a process that forks workers later);
on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import sqlalchemy as sa

from tokenward.server.storage.sql import tables as t
from tokenward.server.storage.sql.migrate import sync_url, upgrade
from tokenward.server.storage.sql.repository import Repository
from tokenward.server.storage.sql.writer import WriterThread

pytestmark = pytest.mark.anyio


def _writes(repo: Repository) -> WriterThread:
    writes = repo._writes  # the writer under test is the repository's own
    assert isinstance(writes, WriterThread)
    return writes


async def _stored_jtis(repo: Repository) -> set[str]:
    """The used ``jti``\\ s as the async engine (another connection) reads them."""
    async with repo.engine.connect() as conn:
        return set((await conn.execute(sa.select(t.used_assertions.c.jti))).scalars())


def _new_writers(before: set[threading.Thread]) -> list[threading.Thread]:
    """Writer threads alive now that were not in ``before`` (other tests' may linger)."""
    return [
        thread
        for thread in threading.enumerate()
        if thread.name == "tokenward-writes" and thread not in before
    ]


async def test_a_transaction_runs_off_the_loop_and_is_visible_when_it_returns(
    repo: Repository,
) -> None:
    loop_thread = threading.current_thread()

    def insert(conn: sa.Connection) -> threading.Thread:
        conn.execute(sa.insert(t.used_assertions).values(client_id="c1", jti="j1", expires_at=9))
        return threading.current_thread()

    ran_on = await _writes(repo).transaction(insert)
    assert ran_on is not loop_thread
    assert ran_on.name.startswith("tokenward-writes")
    assert await _stored_jtis(repo) == {"j1"}  # committed: another connection sees it


async def test_a_failed_transaction_writes_nothing_and_the_next_one_works(
    repo: Repository,
) -> None:
    def insert_then_fail(conn: sa.Connection) -> None:
        conn.execute(sa.insert(t.used_assertions).values(client_id="c1", jti="lost", expires_at=9))
        raise RuntimeError("the batch failed after its first row")

    with pytest.raises(RuntimeError, match="batch failed"):
        await _writes(repo).transaction(insert_then_fail)
    assert await _stored_jtis(repo) == set()
    assert await repo.use_assertions([("c1", "lost", 9), ("c1", "kept", 9)]) == [True, True]
    assert await repo.use_assertions([("c1", "kept", 9)]) == [False]


async def test_opaque_tokens_written_on_the_thread_are_found_at_once(repo: Repository) -> None:
    claims = {"sub": "c1", "scope": "read", "aud": "https://api.example"}
    await repo.store_opaque("digest-1", client_id="c1", claims=claims, expires_at=9)
    assert await repo.find_opaque("digest-1") == claims


async def test_nothing_starts_before_the_first_transaction_and_close_stops_it(
    db_url: str,
) -> None:
    assert upgrade(db_url)
    repo = Repository.from_url(db_url)
    before = set(threading.enumerate())
    try:
        await repo.version()  # a read through the async engine starts no writer
        assert _new_writers(before) == []
        assert await repo.use_assertions([("c1", "j1", 9)]) == [True]
        [writer] = _new_writers(before)
    finally:
        await repo.close()
    writer.join(5)
    assert not writer.is_alive()
    # Closed, then used again (a CLI command after a server stopped): it starts afresh.
    assert await repo.use_assertions([("c1", "j2", 9)]) == [True]
    [again] = _new_writers(before | {writer})
    await repo.close()
    again.join(5)
    assert not again.is_alive()


async def test_a_stuck_transaction_delays_close_a_bounded_time_and_never_the_exit(
    db_url: str,
) -> None:
    """A database that stops answering mid-transaction must not hang a graceful stop: close
    waits ``close_wait`` at most, and the thread is a daemon, so the process can exit."""
    writes = WriterThread(sync_url(db_url), close_wait=0.2)
    release = threading.Event()

    def stuck(conn: sa.Connection) -> threading.Thread:
        conn.execute(sa.text("SELECT 1"))
        release.wait(10)
        return threading.current_thread()

    pending = asyncio.create_task(writes.transaction(stuck))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await writes.close()
    assert time.monotonic() - started < 2
    release.set()
    ran_on = await pending  # handed over before the close: still answered
    assert ran_on.daemon
    ran_on.join(5)  # then the thread stops
    assert not ran_on.is_alive()

"""The counts behind the failure throttle and the issuance quotas (``counters.py``), shared by
workers through the database, and the throttle's two keys, in-process.

The same properties against real ``tokenward serve`` processes are in
tests/e2e/test_client_auth_hardening.py; here the exchange is driven by hand
(``Runtime.flush_counts``, what the one-second loop calls) so each step can be seen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any, cast

import httpx
import pytest

from tests.server.harness import C1, FORM, InProcess, basic, encode_form
from tokenward.server.counters import SharedCounter, digest
from tokenward.server.stores import CounterStore, CountIncrement

pytestmark = pytest.mark.anyio

LIMIT = 4


@pytest.fixture(scope="module")
def tw_settings_overrides() -> dict[str, Any]:
    return {"failed_auth_limit": LIMIT, "failed_auth_limit_per_address": 3 * LIMIT}


async def token_from(
    tw: InProcess, address: str, secret: str, client_id: str = C1.client_id
) -> httpx.Response:
    transport = httpx.ASGITransport(app=cast(Any, tw.app), client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="https://as.example") as http:
        return await http.post(
            "/token",
            content=encode_form({"grant_type": "client_credentials"}),
            headers={"content-type": FORM, "authorization": basic(client_id, secret)},
        )


async def test_a_guesser_elsewhere_does_not_lock_the_client_out(tw: InProcess) -> None:
    for _ in range(LIMIT):
        assert (await token_from(tw, "203.0.113.1", "wrong")).status_code == 401
    assert (await token_from(tw, "203.0.113.1", C1.secret)).status_code == 429
    assert (await token_from(tw, "198.51.100.1", C1.secret)).status_code == 200


async def test_an_address_is_throttled_over_every_client_id(tw: InProcess) -> None:
    for i in range(3 * LIMIT):
        guess = await token_from(tw, "203.0.113.2", "wrong", client_id=f"guess-{i}")
        assert guess.status_code == 401
    assert (await token_from(tw, "203.0.113.2", C1.secret)).status_code == 429


async def test_ipv6_counts_by_its_64(tw: InProcess) -> None:
    for i in range(LIMIT):
        response = await token_from(tw, f"2001:db8:1:2::{i + 1}", "wrong")
        assert response.status_code == 401
    assert (await token_from(tw, "2001:db8:1:2::ffff", C1.secret)).status_code == 429
    assert (await token_from(tw, "2001:db8:1:3::1", C1.secret)).status_code == 200


async def test_workers_share_the_count_through_the_database(tw: InProcess) -> None:
    async with tw.sibling() as other:
        for _ in range(LIMIT):
            assert (await token_from(other, "203.0.113.3", "wrong")).status_code == 401
        assert (await token_from(tw, "203.0.113.3", C1.secret)).status_code == 200
        await other.server.runtime.flush_counts()  # the one-second exchange, on each worker
        await tw.server.runtime.flush_counts()
        assert (await token_from(tw, "203.0.113.3", C1.secret)).status_code == 429


class SlowStore:
    """A counter store whose exchange waits until released, then adds like a database."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.rows: dict[tuple[str, int], int] = {}

    async def exchange_counts(
        self, increments: Sequence[CountIncrement], *, read: Iterable[str], hot: int, now: int
    ) -> dict[tuple[str, int], int]:
        await self.release.wait()
        for item in increments:
            slot = (item.key, item.window)
            self.rows[slot] = self.rows.get(slot, 0) + item.amount
        return dict(self.rows)

    async def purge_counts(self, now: int) -> int:
        return 0


async def test_counts_being_exchanged_still_count() -> None:
    store = SlowStore()
    counter = SharedCounter(cast(CounterStore, store), hot=1)
    key = digest("test", "k")
    counter.add(key, 0, period=60)
    counter.add(key, 0, period=60)
    flushing = asyncio.create_task(counter.flush(now=10))
    await asyncio.sleep(0)
    assert counter.count(key, 0) == 2  # handed to the store, not yet back
    counter.add(key, 0, period=60)
    assert counter.count(key, 0) == 3
    store.release.set()
    await flushing
    assert counter.count(key, 0) == 3
    assert counter.recent(key) == 3
    await counter.flush(now=61)  # the window is over: forgotten
    assert counter.count(key, 0) == 0


async def test_a_stopping_worker_hands_over_its_counts(tw: InProcess) -> None:
    """A worker that stops (a restart, a scale-down) writes the counts of its last second:
    a guesser cannot reset the count by waiting for a deploy."""
    async with tw.sibling() as other:
        for _ in range(LIMIT):
            assert (await token_from(other, "203.0.113.4", "wrong")).status_code == 401
    # `other` stopped without its one-second exchange having run.
    await tw.server.runtime.flush_counts()
    assert (await token_from(tw, "203.0.113.4", C1.secret)).status_code == 429

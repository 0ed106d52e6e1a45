"""The usage-statistics sink (server/usage.py) and the overview's bucketing (admin/usage.py):
per-minute counts per client and outcome, made-up client ids in one row, other events ignored."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from tokenward.server.admin.usage import series
from tokenward.server.stores import UsageCount
from tokenward.server.usage import NO_CLIENT, UNKNOWN_CLIENT, UsageSink

pytestmark = pytest.mark.anyio
MINUTE = 1_800_000_000 // 60 * 60


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[UsageCount]] = []

    async def add_usage(self, counts: Sequence[UsageCount]) -> None:
        self.batches.append(list(counts))

    async def usage_series(self, since: int, *, client_id: str | None = None) -> list[UsageCount]:
        raise NotImplementedError

    async def top_clients(self, since: int, *, suffix: str, limit: int) -> list[tuple[str, int]]:
        raise NotImplementedError

    async def purge_usage(self, before: int) -> int:
        raise NotImplementedError


def event(name: str, at: float, client_id: str | None) -> dict[str, Any]:
    return {"event": name, "at": at, "client_id": client_id}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_batch_becomes_one_write_of_per_minute_counts() -> None:
    store = Recorder()
    sink = UsageSink(store, known=lambda cid: cid in {"billing", "reports"})
    await sink(
        [
            event("token.issued", MINUTE + 1.5, "billing"),
            event("token.issued", MINUTE + 59.9, "billing"),
            event("token.issued", MINUTE + 60, "billing"),
            event("token.failed", MINUTE + 2, "reports"),
            event("introspection.failed", MINUTE + 3, "reports"),
            event("token.failed", MINUTE + 4, "made-up-1"),
            event("token.failed", MINUTE + 5, "made-up-2"),
            event("token.failed", MINUTE + 6, None),
            event("token.introspected", MINUTE + 7, "reports"),
            event("token.revoked", MINUTE + 8, "reports"),
        ]
    )
    assert store.batches == [
        [
            UsageCount(MINUTE, NO_CLIENT, "token.failed", 1),
            UsageCount(MINUTE, UNKNOWN_CLIENT, "token.failed", 2),
            UsageCount(MINUTE, "billing", "token.issued", 2),
            UsageCount(MINUTE, "reports", "introspection.failed", 1),
            UsageCount(MINUTE, "reports", "token.failed", 1),
            UsageCount(MINUTE + 60, "billing", "token.issued", 1),
        ]
    ]
    await sink([event("token.revoked", MINUTE, "reports")])
    assert len(store.batches) == 1  # nothing to count: no write


def test_counts_fall_into_their_buckets() -> None:
    end = MINUTE + 60
    counts = [
        UsageCount(MINUTE, "*", "token.issued", 5),
        UsageCount(MINUTE, "*", "token.failed", 2),
        UsageCount(MINUTE - 59 * 60, "*", "token.issued", 1),  # the oldest minute shown
        UsageCount(MINUTE - 60 * 60, "*", "token.issued", 100),  # just outside the hour
        UsageCount(MINUTE - 3600, "*", "introspection.failed", 3),
    ]
    hour = series(counts, end=end, span=3600, bucket=60)
    assert len(hour.issued) == 60
    assert (hour.issued[0], hour.issued[-1], hour.failed[-1]) == (1, 5, 2)
    assert (hour.total_issued, hour.total_failed) == (6, 2)
    assert hour.start == datetime.fromtimestamp(end - 3600, UTC)
    day = series(counts, end=end, span=86400, bucket=3600)
    assert (len(day.issued), day.total_issued, day.total_failed) == (24, 106, 5)
    assert (day.issued[-1], day.issued[-2]) == (6, 100)

"""Reports over the usage statistics (``usage_minutes``, filled by ``server/usage.py``): tokens
issued and failures over the last hour (per minute) and the last day (per hour), and the
clients that failed most."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from tokenward.server.admin.views import UsageOverview, UsageSeries
from tokenward.server.clock import Clock
from tokenward.server.stores import UsageCount, UsageStore

__all__ = ["UsageReports", "series"]

HOUR = 3600
DAY = 86400


def series(counts: Sequence[UsageCount], *, end: int, span: int, bucket: int) -> UsageSeries:
    """Bucket per-minute counts into ``span // bucket`` buckets ending at ``end`` (exclusive)."""
    size = span // bucket
    start = end - span
    issued, failed = [0] * size, [0] * size
    for count in counts:
        index = (count.minute - start) // bucket
        if not 0 <= index < size:
            continue
        if count.event == "token.issued":
            issued[index] += count.count
        elif count.event.endswith(".failed"):
            failed[index] += count.count
    return UsageSeries(
        start=datetime.fromtimestamp(start, UTC),
        bucket_seconds=bucket,
        issued=issued,
        failed=failed,
    )


class UsageReports:
    def __init__(self, *, store: UsageStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def _end(self) -> int:
        """The end of the current minute: the charts include it."""
        return int(self._clock()) // 60 * 60 + 60

    async def overview(self, *, top: int = 10) -> UsageOverview:
        end = self._end()
        counts = await self._store.usage_series(end - DAY)
        failing = await self._store.top_clients(end - DAY, suffix=".failed", limit=top)
        return UsageOverview(
            last_hour=series(counts, end=end, span=HOUR, bucket=60),
            last_day=series(counts, end=end, span=DAY, bucket=HOUR),
            top_failing=failing,
        )

    async def client_day(self, client_id: str) -> UsageSeries:
        """One client's tokens and failures over the last day, per hour."""
        end = self._end()
        counts = await self._store.usage_series(end - DAY, client_id=client_id)
        return series(counts, end=end, span=DAY, bucket=HOUR)

"""Event counts shared by every worker and instance, written behind: the failure throttle and
the issuance quotas count here (``throttle.py``, ``quotas.py``).

Each worker counts in memory. Once a second (``Runtime``) it hands what it counted since the
last time to the database in one statement (an upsert of the batch) and, in the same
transaction, reads back the shared totals of every key it has counted, plus every row that
has reached ``hot`` (a key another worker is throttling). A key's count as a worker sees it
is the shared total of the last exchange plus what this worker counted since. So a worker
underestimates a key by at most what the *other* workers counted since their last exchange:
about one second of their traffic. That is the bound docs/security.md states.

Keys are digests (``digest``): the table never holds a client id or an address. Counting and
checking never touch the database; if it is down, counts stay per process until it is back.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Iterable

from tokenward.server.stores import CounterStore, CountIncrement

__all__ = ["FLUSH_SECONDS", "PURGE_SECONDS", "SharedCounter", "digest", "window_of"]

log = logging.getLogger("tokenward.counters")
#: How often each worker exchanges its counts with the database.
FLUSH_SECONDS = 1.0
#: How often each worker deletes expired count rows.
PURGE_SECONDS = 60


@functools.lru_cache(maxsize=65536)
def digest(*parts: str) -> str:
    """The stored key of a count: 128 bits of BLAKE2b over the parts, as hex."""
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()


def window_of(now: int, period: int) -> int:
    """The start of the fixed window of ``period`` seconds holding ``now``."""
    return now - now % period


Slot = tuple[str, int]  # (key digest, window start)


class SharedCounter:
    """In-memory counts, exchanged with a :class:`CounterStore` by :meth:`flush`."""

    def __init__(self, store: CounterStore | None, *, hot: int) -> None:
        self._store = store
        self._hot = hot
        self._pending: dict[Slot, int] = {}
        self._inflight: dict[Slot, int] = {}  # handed to the store, totals not back yet
        self._expires: dict[Slot, int] = {}
        self._shared: dict[Slot, int] = {}
        self._recent: dict[str, int] = {}
        self._last_purge = 0

    def count(self, key: str, window: int) -> int:
        slot = (key, window)
        counted = self._shared.get(slot, 0) + self._pending.get(slot, 0)
        return counted + self._inflight.get(slot, 0) if self._inflight else counted

    def recent(self, key: str) -> int:
        """An upper bound of ``key``'s count over every live window: one dict read, so a key
        far from its limit (every request that succeeds) is checked at almost no cost."""
        return self._recent.get(key, 0)

    def add(self, key: str, window: int, *, period: int, amount: int = 1) -> int:
        """Count ``amount`` events; the new count."""
        slot = (key, window)
        self._pending[slot] = self._pending.get(slot, 0) + amount
        self._expires[slot] = window + period
        self._recent[key] = self._recent.get(key, 0) + amount
        return self.count(key, window)

    async def flush(self, now: int) -> None:
        """Hand the counts of the last second to the store, read the shared totals back."""
        if self._store is None:
            self._forget_expired(now)
            return
        pending, self._pending = self._pending, {}
        self._inflight = pending
        increments = [
            CountIncrement(key, window, amount, self._expires.get((key, window), now))
            for (key, window), amount in pending.items()
        ]
        read = self._keys(pending, now)
        try:
            totals = await self._store.exchange_counts(
                increments, read=read, hot=self._hot, now=now
            )
        except Exception:
            self._inflight = {}
            self._restore(pending)
            raise
        self._shared, self._inflight = totals, {}
        self._forget_expired(now)
        await self._purge(now)

    def _keys(self, pending: Iterable[Slot], now: int) -> set[str]:
        live = (slot for slot, end in self._expires.items() if end > now)
        return {key for key, _ in pending} | {key for key, _ in live}

    def _restore(self, pending: dict[Slot, int]) -> None:
        """The exchange failed: keep the counts for the next one (and for this worker)."""
        for slot, amount in pending.items():
            self._pending[slot] = self._pending.get(slot, 0) + amount

    def _forget_expired(self, now: int) -> None:
        expired = [slot for slot, end in self._expires.items() if end <= now]
        for slot in expired:
            del self._expires[slot]
            self._pending.pop(slot, None)
            self._shared.pop(slot, None)
        recent: dict[str, int] = {}
        for counts in (self._shared, self._pending):
            for (key, _), amount in counts.items():
                recent[key] = recent.get(key, 0) + amount
        self._recent = recent

    async def _purge(self, now: int) -> None:
        if self._store is not None and now - self._last_purge >= PURGE_SECONDS:
            self._last_purge = now
            removed = await self._store.purge_counts(now)
            if removed:
                log.debug("expired count rows deleted", extra={"rows": removed})

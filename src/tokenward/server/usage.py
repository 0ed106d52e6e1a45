"""Usage statistics: a sink of the audit buffer (``server/events.py``) that counts token-endpoint
outcomes per minute, client and event, and adds them to the ``usage_minutes`` table in one
write per flush. The token path pays nothing: the counting happens when the buffer drains, once
a second, off the request path.

Only outcomes are counted (``token.issued`` and every ``*.failed`` event). A failure naming a
client id the registry does not know counts under :data:`UNKNOWN_CLIENT`, so that requests with
made-up client ids cannot grow the table by one row per id.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from tokenward.server.stores import UsageCount, UsageStore

__all__ = ["NO_CLIENT", "UNKNOWN_CLIENT", "UsageSink"]

log = logging.getLogger("tokenward.usage")

#: Counts of failures naming a client id that is not registered (client ids cannot contain
#: parentheses, so neither marker is ever a real client id).
UNKNOWN_CLIENT = "(unknown)"
#: Counts of failures of requests that named no client at all.
NO_CLIENT = "(none)"


class UsageSink:
    """Subscribe with ``audit.subscribe(UsageSink(store, known=...))``."""

    def __init__(self, store: UsageStore, *, known: Callable[[str], bool]) -> None:
        self._store = store
        self._known = known

    def _client(self, client_id: object) -> str:
        if not isinstance(client_id, str) or not client_id:
            return NO_CLIENT
        return client_id if self._known(client_id) else UNKNOWN_CLIENT

    def count(self, events: Sequence[dict[str, Any]]) -> list[UsageCount]:
        """Per-minute counts of the outcome events in ``events``. Runs in the flush loop, on
        the event loop: one dictionary lookup per event, client ids resolved once per batch."""
        counts: Counter[tuple[int, object, str]] = Counter()
        for event in events:
            name = event["event"]
            if name == "token.issued" or name.endswith(".failed"):
                counts[(int(event["at"]) // 60 * 60, event.get("client_id"), name)] += 1
        clients = {client_id: self._client(client_id) for _, client_id, _ in counts}
        merged: Counter[tuple[int, str, str]] = Counter()
        for (minute, client_id, name), n in counts.items():
            merged[(minute, clients[client_id], name[:64])] += n
        return [UsageCount(m, c, e, n) for (m, c, e), n in sorted(merged.items())]

    async def __call__(self, events: Sequence[dict[str, Any]]) -> None:
        counts = self.count(events)
        if counts:
            await self._store.add_usage(counts)

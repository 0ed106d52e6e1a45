"""Per-client issuance quotas: at most ``quota_per_minute`` and ``quota_per_hour`` tokens.

A client that asks for a new token per call instead of caching it is the commonest M2M
failure; a quota turns it from a load problem into a ``429 slow_down`` with ``Retry-After``
(the seconds until the window ends) that the client's owner sees in the audit log. Windows
are fixed (aligned minutes and hours); counts are shared by every worker and instance
(``counters.py``, about one second of lag per worker). A client without quotas costs nothing.
"""

from __future__ import annotations

from tokenward.protocol.errors import SlowDown
from tokenward.protocol.model import Client
from tokenward.server.counters import SharedCounter, digest, window_of

__all__ = ["IssuanceQuota"]

_DESCRIPTION = "token quota exceeded; reuse the tokens already issued"


class IssuanceQuota:
    def __init__(self, counter: SharedCounter) -> None:
        self._counter = counter

    def take(self, client: Client, now: int) -> None:
        """Count one token for ``client``, or raise ``SlowDown`` past a quota."""
        if client.quota_per_minute is None and client.quota_per_hour is None:
            return
        limits = [
            (limit, period, name)
            for limit, period, name in (
                (client.quota_per_minute, 60, "minute"),
                (client.quota_per_hour, 3600, "hour"),
            )
            if limit is not None
        ]
        for limit, period, name in limits:
            window = window_of(now, period)
            if self._counter.count(digest("quota", name, client.client_id), window) >= limit:
                raise SlowDown(
                    retry_after=window + period - now,
                    reason=f"quota per {name} exceeded ({limit})",
                    description=_DESCRIPTION,
                )
        for _, period, name in limits:
            key = digest("quota", name, client.client_id)
            self._counter.add(key, window_of(now, period), period=period)
